/* The event format (docs/protocol.md, "Events"): what a plugin publishes on the stream
 * "events", what the hub stores and what POST /api/v1/events takes. One check, shared by the
 * agent (outpost_publish) and the hub (agents' posts, the API), so both refuse the same. */
#ifndef OUTPOST_CORE_EVENT_H
#define OUTPOST_CORE_EVENT_H

#include <jansson.h>
#include <outpost/plugin.h>
#include <stddef.h>

#define EVENT_KIND_MAX 64
#define EVENT_MESSAGE_MAX 1024
#define EVENT_DATA_MAX (16 * 1024) /* data's compact JSON, bytes */
#define EVENT_BATCH_MAX 1000       /* events in one published batch */

/* Fields of one event, as a table (wire_check_named): kind, severity, ts, message, data. */
extern const struct outpost_arg event_fields[];

/* 1 when s is a kind: 1 to EVENT_KIND_MAX of a-z 0-9 _ -, in words separated by single dots,
 * starting with a letter ("security.passwd_changed"). */
int event_kind_ok(const char *s);
/* 1 for info, notice, warning, critical. */
int event_severity_ok(const char *s);
/* Checks one event (fields, kind, severity, ts > 0, message one line of at most
 * EVENT_MESSAGE_MAX bytes, data an object of at most EVENT_DATA_MAX). 0, or
 * OUTPOST_E_BAD_ARGS with msg naming the field. */
int event_check(const json_t *ev, char *msg, size_t msglen);
/* A published batch: {"events": [1 to EVENT_BATCH_MAX events]} and nothing else. 0, or
 * OUTPOST_E_BAD_ARGS with msg ("events[3]: ..."). */
int event_batch_check(const json_t *batch, char *msg, size_t msglen);

#endif
