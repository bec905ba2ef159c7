/* Config files: JSON with comments (// and # to end of line, slash-star blocks), checked
 * against a schema of known keys. Debian 12 has no libucl (its libucl-dev is a compression
 * library), so comments are blanked to spaces and jansson parses the rest: error line and
 * column stay exact, and config and wire are one format family. */
#ifndef OUTPOST_CONF_H
#define OUTPOST_CONF_H

#include <jansson.h>
#include <stddef.h>

#define CONF_MAX_BYTES (1u << 20)

enum conf_type {
	CONF_STRING = 1,
	CONF_INT,
	CONF_BOOL,
	CONF_NUMBER,
	CONF_OBJECT,      /* a section: its keys are in the schema too */
	CONF_OBJECT_FREE, /* an object whose keys are checked elsewhere (plugin sections) */
	CONF_STRING_ARRAY,
	CONF_OBJECT_ARRAY, /* [{...}, ...]: each element's keys are "path.key" in the schema */
};

struct conf_field {
	const char *path; /* dotted: "log.level" */
	enum conf_type type;
	double min, max; /* for INT and NUMBER; both 0: no range */
	const char *help;
};

/* Parses text (name is used in messages, e.g. the file path). 0 and a new reference in *out,
 * or OUTPOST_E_BAD_JSON with "name:line:column: what" in msg. */
int conf_parse(const char *text, size_t len, const char *name, json_t **out, char *msg,
               size_t msglen);
/* Reads and parses a regular file of at most CONF_MAX_BYTES. */
int conf_load(const char *path, json_t **out, char *msg, size_t msglen);
/* Checks conf (an object) against a NULL-terminated schema: unknown keys, types, ranges.
 * 0, or OUTPOST_E_BAD_ARGS with the key path in msg. */
int conf_check(const json_t *conf, const struct conf_field *schema, char *msg, size_t msglen);
/* Merges src into dst: objects key by key, recursively; anything else replaces. */
int conf_merge(json_t *dst, const json_t *src);
/* The effective config of a daemon: defaults (stolen), merged with the file at path (or at
 * default_path when path is NULL and that file exists), then overrides (borrowed) set by
 * dotted key. The caller checks the result against its schema. */
int conf_layer(json_t *defaults, const char *path, const char *default_path,
               const json_t *overrides, json_t **out, char *msg, size_t msglen);
/* The checks of the log section every daemon has (log.level, log.target). */
int conf_check_log(const json_t *conf, char *msg, size_t msglen);
/* The value at a dotted path, or NULL (borrowed). */
json_t *conf_get(const json_t *conf, const char *path);
/* Sets a value at a dotted path, creating sections; steals v. 0 or -1. */
int conf_set(json_t *conf, const char *path, json_t *v);

#endif
