/* The wire format: JSON parsing with limits, the one response envelope, argument checks. */
#ifndef OUTPOST_WIRE_H
#define OUTPOST_WIRE_H

#include <outpost/plugin.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAX_DEPTH_DEFAULT 32

/* Parses len bytes as one JSON value, nested at most max_depth deep, duplicate keys refused.
 * Returns 0 and a new reference in *out, or OUTPOST_E_BAD_JSON with a message in msg. */
int wire_parse(const char *data, size_t len, int max_depth, json_t **out, char *msg, size_t msglen);
/* Nesting depth of a JSON text, counted without parsing (strings skipped); -1 if unbalanced. */
int wire_depth(const char *data, size_t len);

/* Checks, without building anything, that len bytes are one JSON object (whitespace around it
 * allowed) nested at most max_depth deep, with strings that are valid UTF-8 and hold no NUL
 * (nor \u0000, nor a lone surrogate): what wire_parse takes, but for duplicate keys and numbers
 * too large for jansson. key (or NULL): a member name looked for at the top level; a top-level
 * name written with escapes counts as key, to be safe. Returns -1 when the text is not such an
 * object, 1 when it is and has key, 0 when it is and has not. About 10 us for 4 KB: cheap
 * enough for every batch the agent spools and sends. */
int wire_scan_object(const char *data, size_t len, int max_depth, const char *key);

/* The one UTF-8 rule of the tree (RFC 3629): the length (1 to 4) of the valid sequence at s,
 * reading at most n bytes, or 0 when there is none there: NUL, a stray continuation byte, a
 * lead byte never valid (C0, C1, F5..FF), an overlong form, a surrogate (U+D800..DFFF), a code
 * point past U+10FFFF, or a sequence cut short by n or by a byte that does not continue it.
 * Never reads past a byte that ends the sequence, so a NUL-terminated string is safe with any
 * n up to its length. */
size_t wire_utf8_len(const char *s, size_t n);
/* 1 when n bytes are valid UTF-8 (wire_utf8_len's rule) without NUL. */
int wire_utf8_ok(const char *s, size_t n);

/* {"ok":true,"result":result}; steals result (NULL is JSON null). NULL on OOM. */
json_t *wire_ok(json_t *result);
/* {"ok":false,"error":{"code":name,"message":msg}}. NULL on OOM. */
json_t *wire_error(int code, const char *msg);
/* Compact UTF-8 text of v; caller frees; NULL on OOM. */
char *wire_dump(const json_t *v);

/* Checks args (an object) against a NULL-terminated spec: every required name present, every
 * present name known and of the right type (null counts as absent). Returns 0 or
 * OUTPOST_E_BAD_ARGS with msg set, naming the argument. */
int wire_check_args(const struct outpost_arg *spec, const json_t *args, char *msg, size_t msglen);
/* The same check for any object of named values, what naming them in msg ("field" for the
 * hub's request bodies, "argument" for ops'): "unknown field 'x'", "field 'x' must be
 * integer", "missing required field 'x' (string)". */
int wire_check_named(const struct outpost_arg *spec, const json_t *obj, const char *what, char *msg,
                     size_t msglen);
/* A spec entry's type that takes any JSON value (its user checks it): for a field such as a
 * task's batch, a count or a percentage. Not part of the plugin contract. */
#define WIRE_ARG_ANY ((enum outpost_arg_type)0)
const char *wire_arg_type_name(enum outpost_arg_type t);

/* The one name rule of plugins and ops (and of executable plugins' argument names): 1 to
 * WIRE_NAME_MAX of a-z 0-9 _, starting with a letter. What the agent's API, its task check,
 * executable plugins, the plugin registry, the hub's task creation and the CLI all accept.
 * wire_name_ok: a NUL-terminated s (NULL: 0); wire_name_okn: n bytes of s, no NUL needed. */
#define WIRE_NAME_MAX 32
int wire_name_ok(const char *s);
int wire_name_okn(const char *s, size_t n);

/* Call and task ids (ledger, tasks): 1..128 of A-Z a-z 0-9 . _ : - */
int wire_id_ok(const char *id);
/* Host ids: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -, no "..": safe as a path
 * component, a label and a log field. */
int wire_host_id_ok(const char *id);

/* A config value with an optional one-letter unit: a non-negative JSON integer, or a string of
 * digits followed by at most one of units' suffixes ("90", "15m", "512K"). units ends with
 * {0, 0}; a suffix is named once. Returns the number times its unit's factor, or -1 when v is
 * no such value or the product passes limit. */
struct wire_unit {
	char suffix;
	int64_t factor;
};
extern const struct wire_unit wire_units_duration[]; /* s m h d: seconds */
extern const struct wire_unit wire_units_bytes[];    /* K M G T: powers of 1024 */
int64_t wire_scaled(const json_t *v, const struct wire_unit *units, int64_t limit);

#endif
