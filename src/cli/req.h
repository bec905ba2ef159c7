/* Request bodies and query strings the CLI sends to the hub (docs/protocol.md), built from
 * parsed options. Pure: no I/O, so every field the hub sees is unit-tested. */
#ifndef OUTPOST_CLI_REQ_H
#define OUTPOST_CLI_REQ_H

#include "core/buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define REQ_ID_PREFIX "cli-"

/* What every task takes, whatever it runs. */
struct req_task {
	const char *id;         /* caller id: a retried POST returns the first task */
	const char *target;     /* the selector, sent exactly as given */
	int64_t timeout_ms;     /* 0: the hub's default */
	int64_t expires_in_ms;  /* 0: the hub's default */
	json_t *batch;          /* borrowed; NULL: all hosts at once */
	long long max_failures; /* < 0: not sent (no limit) */
};

/* The body of POST /api/v1/tasks; steals args. NULL on OOM. */
json_t *req_task_body(const struct req_task *t, const char *plugin, const char *op, json_t *args);

/* exec.run arguments. argv (NULL-terminated) or script, exactly one; env may be NULL (borrowed);
 * user, cwd may be NULL; timeout_ms 0: not sent. NULL on OOM or invalid UTF-8. */
json_t *req_run_args(char *const *argv, const char *script, const char *user, const char *cwd,
                     const json_t *env, int64_t timeout_ms);

/* file.put arguments: content as base64 with its sha256; mode, owner, group may be NULL. */
json_t *req_put_args(const void *content, size_t len, const char *path, const char *mode,
                     const char *owner, const char *group, int make_dirs);

/* The remote path of `cp LOCAL REMOTE`: REMOTE, or REMOTE + basename(LOCAL) when REMOTE ends
 * with '/'. Caller frees; NULL when REMOTE is not absolute or LOCAL has no name ("-"). */
char *req_cp_path(const char *local, const char *remote);

/* Appends s percent-encoded for a query value (RFC 3986 unreserved characters kept). */
int req_escape(struct buf *b, const char *s);
/* Appends "?key=value" (or "&key=value" when b has a query already), value escaped; nothing
 * for a NULL value. 0 or -1. */
int req_param(struct buf *b, const char *key, const char *value);

/* A new task id: "cli-" + 32 random hex digits. */
void req_new_id(char out[64]);

#endif
