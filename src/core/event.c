/* The event format's one check (event.h). */
#include "event.h"
#include "wire.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct outpost_arg event_fields[] = {
    {"kind", OUTPOST_ARG_STRING, 1, "words of a-z 0-9 _ - joined by dots: security.passwd_changed"},
    {"severity", OUTPOST_ARG_STRING, 1, "info, notice, warning or critical"},
    {"ts", OUTPOST_ARG_INT, 1, "when it happened, ms since 1970"},
    {"message", OUTPOST_ARG_STRING, 1, "one line for people"},
    {"data", OUTPOST_ARG_OBJECT, 0, "what changed"},
    {NULL, 0, 0, NULL},
};

int event_kind_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > EVENT_KIND_MAX || !(s[0] >= 'a' && s[0] <= 'z') || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.' && s[i + 1] == '.')
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

int event_severity_ok(const char *s)
{
	static const char *const names[] = {"info", "notice", "warning", "critical"};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return 1;
	return 0;
}

int event_check(const json_t *ev, char *msg, size_t msglen)
{
	const char *message;
	json_t *data;
	char *text;
	size_t n;

	if (wire_check_named(event_fields, ev, "field", msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	if (!event_kind_ok(json_string_value(json_object_get(ev, "kind")))) {
		snprintf(
		    msg, msglen,
		    "kind: 1 to %d of a-z 0-9 _ - in words joined by single dots, starting with "
		    "a letter",
		    EVENT_KIND_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!event_severity_ok(json_string_value(json_object_get(ev, "severity")))) {
		snprintf(msg, msglen, "severity: one of info, notice, warning, critical");
		return OUTPOST_E_BAD_ARGS;
	}
	if (json_integer_value(json_object_get(ev, "ts")) <= 0) {
		snprintf(msg, msglen, "ts: ms since 1970, above 0");
		return OUTPOST_E_BAD_ARGS;
	}
	message = json_string_value(json_object_get(ev, "message"));
	n = strlen(message);
	if (n == 0 || n > EVENT_MESSAGE_MAX || strpbrk(message, "\r\n")) {
		snprintf(msg, msglen, "message: one line of 1 to %d bytes", EVENT_MESSAGE_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	data = json_object_get(ev, "data");
	if (data && !json_is_null(data)) {
		if (!(text = wire_dump(data)))
			return OUTPOST_E_INTERNAL;
		n = strlen(text);
		free(text);
		if (n > EVENT_DATA_MAX) {
			snprintf(msg, msglen, "data: at most %d bytes of JSON (this is %zu)",
			         EVENT_DATA_MAX, n);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

int event_batch_check(const json_t *batch, char *msg, size_t msglen)
{
	json_t *evs = json_object_get(batch, "events"), *ev;
	char sub[200];
	size_t i;
	int rc;

	if (!json_is_object(batch) || json_object_size(batch) != 1 || !json_is_array(evs) ||
	    json_array_size(evs) == 0 || json_array_size(evs) > EVENT_BATCH_MAX) {
		snprintf(msg, msglen, "an events batch is {\"events\": [1 to %d events]}",
		         EVENT_BATCH_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	json_array_foreach(evs, i, ev) if ((rc = event_check(ev, sub, sizeof(sub))) < 0)
	{
		snprintf(msg, msglen, "events[%zu]: %s", i, sub);
		return rc;
	}
	return 0;
}
