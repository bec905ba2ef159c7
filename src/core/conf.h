/* Config files: JSON with comments (// and # to end of line, slash-star blocks), checked
 * against a schema of known keys. Debian 12 has no libucl (its libucl-dev is a compression
 * library), so comments are blanked to spaces and jansson parses the rest: error line and
 * column stay exact, and config and wire are one format family. */
#ifndef OUTPOST_CONF_H
#define OUTPOST_CONF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct logger;

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

/* The member a row fills (conf_read), by type: CONF_STRING const char * (NULL: absent),
 * CONF_INT int64_t, CONF_NUMBER double, CONF_BOOL int64_t (1, 0, or -1: absent with no
 * default), CONF_OBJECT_FREE const json_t * (NULL: absent), CONF_STRING_ARRAY struct
 * conf_strv, CONF_OBJECT_ARRAY struct conf_list; a CONF_OBJECT section has no member. Every
 * member is a multiple of 8 bytes, so a daemon's struct has no padding and
 * conf_schema_verify can tell that every byte of it is some row's. Strings and objects are
 * borrowed from the struct's own JSON (struct conf_head) and live as long as the struct. */
struct conf_strv {
	const char **v; /* n strings, then NULL */
	size_t n;
};
struct conf_list {
	void *v; /* n structs of the row's elem_size, each filled from the rows "path.key" */
	size_t n;
};

#define CONF_RELOAD 1u /* takes effect on SIGHUP; without it a key needs a restart */

struct conf_field {
	const char *path; /* dotted: "log.level" */
	enum conf_type type;
	double min, max; /* for INT and NUMBER; both 0: no range */
	const char *help;
	const char *def;      /* the default as JSON text ("30", "\"info\"", "[]"); NULL: none */
	const char *def_root; /* the default when running as root, when it differs */
	unsigned flags;       /* CONF_RELOAD */
	size_t off, size;     /* the member it fills (offsetof, sizeof); size 0: none */
	size_t elem_size;     /* CONF_OBJECT_ARRAY: sizeof one element's struct */
};

/* Rows of a daemon's schema (struct T). The key is the member's name, so the two cannot
 * differ: CONF_KEY(T, api.body_limit, ...) is the key "api.body_limit" filling
 * T.api.body_limit. Adding a key is one member and one row (docs/config.md). */
#define CONF_SECTION(name)                                                                         \
	{                                                                                          \
		.path = (name), .type = CONF_OBJECT                                                \
	}
#define CONF_KEY_AT(T, p, m, t, lo, hi, d, fl, h)                                                  \
	{                                                                                          \
		.path = (p), .type = (t), .min = (lo), .max = (hi), .help = (h), .def = (d),       \
		.flags = (fl), .off = offsetof(T, m), .size = sizeof(((T *)0)->m)                  \
	}
#define CONF_KEY(T, m, t, lo, hi, d, fl, h) CONF_KEY_AT(T, #m, m, t, lo, hi, d, fl, h)
/* A row checked but read into no struct (the CLI's file, tests). */
#define CONF_CHECK_ONLY(p, t, lo, hi, h)                                                           \
	{                                                                                          \
		.path = (p), .type = (t), .min = (lo), .max = (hi), .help = (h)                    \
	}
/* A key whose default differs for root (paths under /var/lib, /run). */
#define CONF_KEY_ROOT(T, m, t, d, droot, fl, h)                                                    \
	{                                                                                          \
		.path = #m, .type = (t), .help = (h), .def = (d), .def_root = (droot),             \
		.flags = (fl), .off = offsetof(T, m), .size = sizeof(((T *)0)->m)                  \
	}
/* [{...}]: the list's row, then one CONF_KEY_AT row per element key ("list.key", member of
 * the element struct E). */
#define CONF_LIST(T, m, E, fl, h)                                                                  \
	{                                                                                          \
		.path = #m, .type = CONF_OBJECT_ARRAY, .help = (h), .flags = (fl),                 \
		.off = offsetof(T, m), .size = sizeof(((T *)0)->m), .elem_size = sizeof(E)         \
	}

/* Every daemon's config struct starts with this. */
struct conf_head {
	json_t *json; /* the effective config it was read from, defaults filled in; owned */
	const struct conf_field *schema;
};

/* The log section every daemon has, one type and one pair of rows for all (level: the
 * default level as JSON text). */
struct conf_log {
	const char *level, *target;
};
#define CONF_LOG_ROWS(T, dlevel)                                                                   \
	CONF_SECTION("log"),                                                                       \
	    CONF_KEY(T, log.level, CONF_STRING, 0, 0, dlevel, CONF_RELOAD,                         \
	             "error, warn, info, debug"),                                                  \
	    CONF_KEY(T, log.target, CONF_STRING, 0, 0, "\"stderr\"", 0, "stderr or syslog")

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
int conf_check_log(const struct conf_log *log, char *msg, size_t msglen);

/* A daemon's defaults: every row's default set at its path. New reference, or NULL when a
 * default is not valid JSON text (a bug conf_test catches). */
json_t *conf_defaults(const struct conf_field *schema);
/* The typed reader: checks conf against schema (conf_check's messages), then fills the struct
 * at base, which starts with a struct conf_head, from a copy of conf with the defaults filled
 * in (the rows' defaults apply inside each element of a list too). 0, or negative with msg;
 * on failure base holds nothing to release. */
int conf_read(const json_t *conf, const struct conf_field *schema, void *base, char *msg,
              size_t msglen);
/* Frees what conf_read allocated; the struct is zeroed. NULL or a zeroed struct: no-op. */
void conf_release(void *base);
/* Whether schema and a struct of size bytes (headed by struct conf_head) agree: every row but
 * a section has a member of its type's size, no two rows share a byte, and every byte of the
 * struct is some row's (a member no row fills). Lists' element rows are checked against
 * their elem_size. 0, or -1 with the first disagreement in msg. For unit tests. */
int conf_schema_verify(const struct conf_field *schema, size_t size, char *msg, size_t msglen);

/* A daemon's kind of config: its rows, the size of its struct, and its checks beyond types and
 * ranges (a URL, keys that go together; NULL: none), on the struct. */
struct conf_kind {
	const struct conf_field *schema;
	size_t size;
	int (*check)(const void *c, char *msg, size_t msglen);
};
/* Makes a struct of kind k from a whole effective config (defaults, file, flags): conf_read,
 * then k->check. 0 and *out (conf_free), or negative with msg naming the key and nothing made
 * (a check that fails is OUTPOST_E_BAD_ARGS). */
int conf_new(const struct conf_kind *k, const json_t *conf, void **out, char *msg, size_t msglen);
void conf_free(void *c); /* NULL ok */
/* conf_new and conf_free: whether conf is a valid config of kind k (--check-config). */
int conf_check_kind(const struct conf_kind *k, const json_t *conf, char *msg, size_t msglen);
/* A reload, the same for every daemon: the next struct is made from conf first, so a bad file
 * is refused whole with the message it gets at start. Then the keys without CONF_RELOAD whose
 * value differs from cur's are set back to cur's (a change that needs a restart is not
 * silently half-applied), named in one line on log, and the struct made again from that. 0
 * and *out (the caller swaps it in whole and frees cur with conf_free), or negative with msg
 * and nothing made: cur is untouched either way. */
int conf_reload(const struct conf_kind *k, const void *cur, const json_t *conf, struct logger *log,
                void **out, char *msg, size_t msglen);
/* The value at a dotted path, or NULL (borrowed). */
json_t *conf_get(const json_t *conf, const char *path);
/* Sets a value at a dotted path, creating sections; steals v. 0 or -1. */
int conf_set(json_t *conf, const char *path, json_t *v);

#endif
