/* Target selectors: the small language that picks which hosts a task goes to
 * ("role=web and dc!=sh or db-*"). Grammar and examples in docs/selectors.md. */
#ifndef OUTPOST_SELECTOR_H
#define OUTPOST_SELECTOR_H

#include <jansson.h>
#include <stddef.h>

#define SELECTOR_MAX_TEXT 4096 /* bytes of selector text */
#define SELECTOR_MAX_TERMS 64
#define SELECTOR_MAX_KEY 63             /* characters of a key */
#define SELECTOR_MAX_VALUE 1024         /* bytes of a value or host word, after unquoting */
#define SELECTOR_MAX_NAMES 16384        /* names node-set ranges expand to, in all */
#define SELECTOR_MAX_NAME_BYTES 1048576 /* bytes those names may take, in all */

struct selector;

/* Says whether a label or fact key exists: 1 known, 0 unknown, or a negative outpost_err when
 * it cannot tell (selector_parse then fails with that code). */
typedef int (*selector_key_fn)(void *arg, const char *key);

/* Parses text. Returns 0 and a new selector in *out (caller frees with selector_free), or
 * OUTPOST_E_BAD_ARGS with a message in msg that starts "at column N: " (N counts characters
 * from 1). key_ok may be NULL: any well-formed key is then accepted. OUTPOST_E_INTERNAL when
 * memory runs out. *out is NULL on failure. */
int selector_parse(const char *text, selector_key_fn key_ok, void *arg, struct selector **out,
                   char *msg, size_t msglen);

/* Whether a host matches: 1 yes, 0 no. id (may be NULL) is the host id the hub accepted, the
 * only thing a bare word matches. attrs (borrowed, may be NULL) is a JSON object of
 * key -> value, facts flattened and labels, matched only by terms that name a key; strings,
 * integers, reals and booleans are compared by their text, other values count as missing. */
int selector_match(const struct selector *s, const char *id, const json_t *attrs);

/* Canonical text, which parses back to the same selector (for logs and the audit trail).
 * Caller frees; NULL when memory runs out. */
char *selector_format(const struct selector *s);

void selector_free(struct selector *s); /* NULL is a no-op */

#endif
