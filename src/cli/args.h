/* Command-line values of the operator CLI: durations, counts, key=value arguments, labels,
 * ids. Pure functions (no I/O), so the rules are unit-tested; each error message names what
 * was wrong and the caller adds the flag. */
#ifndef OUTPOST_CLI_ARGS_H
#define OUTPOST_CLI_ARGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ARGS_MAX_DURATION_MS (366LL * 86400 * 1000) /* a year and a day */
#define ARGS_ID_MAX 64
#define ARGS_LABEL_KEY_MAX 63

/* "90s", "5m", "2h", "1d", "500ms", compounds such as "1h30m"; a bare number is seconds.
 * 0 and *ms set, or -1 (not a duration, zero, or over a year). */
int args_duration(const char *s, int64_t *ms);

/* A decimal integer in [min, max], nothing else around it. 0 or -1. */
int args_int(const char *s, long long min, long long max, long long *out);

/* --batch: "10" (hosts at a time, >= 1) or "10%" (1..100 percent of the matched hosts).
 * 0 and a new JSON value (integer or string) in *out, or -1. */
int args_batch(const char *s, json_t **out);

/* A host or task id: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. 1 if valid. */
int args_id_ok(const char *s);

/* A label key: [A-Za-z_][A-Za-z0-9_.-]*, at most 63 characters (the selector key grammar). */
int args_label_key_ok(const char *s);

/* "key=value" for a label: sets set[key] = "value" (always a string). Refuses a key that is
 * already in set or in remove (an array of keys; may be NULL). 0 or -1 with msg set. */
int args_label_set(json_t *set, const json_t *remove, const char *arg, char *msg, size_t msglen);

/* "k=v,k2=v2" (commas separate; a value cannot hold a comma): args_label_set for each. */
int args_label_list(json_t *set, const char *list, char *msg, size_t msglen);

/* An argument of `outpost call`: "key=value" sets the string "value"; "key:=JSON" sets the
 * JSON value (any type). Keys are [A-Za-z_][A-Za-z0-9_.-]*; a key given twice is refused.
 * 0 or -1 with msg set. */
int args_call_arg(json_t *args, const char *arg, char *msg, size_t msglen);

/* "PLUGIN.OP" with both parts [a-z0-9_-]+ : 0 and new strings (caller frees), or -1. */
int args_plugin_op(const char *s, char **plugin, char **op);

/* "NAME=VALUE" for exec's env: NAME is [A-Za-z_][A-Za-z0-9_]*. 0 or -1 with msg set. */
int args_env(json_t *env, const char *arg, char *msg, size_t msglen);

/* A file mode for file.put: 3 or 4 octal digits ("644", "0640"). 1 if valid. */
int args_mode_ok(const char *s);

/* viewer | operator | admin. 1 if valid. */
int args_role_ok(const char *s);

#endif
