/* What both stores (SQLite, PostgreSQL) decide alike outside SQL: the fact attributes that
 * selectors see, the host state machine, and what a token row must look like. */
#ifndef OUTPOST_HUB_STORE_RULES_H
#define OUTPOST_HUB_STORE_RULES_H

#include <jansson.h>

/* Compact text of the selector attributes of facts (see store_rules.c); caller frees. */
char *store_attrs_text(const json_t *facts);
/* 1 when key is an attribute name a label may not take (a fact's or the row's own). */
int store_attr_reserved(const char *key);
/* host_list's "attrs": the stored fact attributes (stolen; not an object: none), hostname and
 * agent version (may be NULL), then the labels that do not shadow a reserved name. A new
 * object, or NULL. */
json_t *store_host_attrs(json_t *stored, const char *hostname, const char *version,
                         const json_t *labels);
/* The event kind of a state change, or NULL when the change is not allowed. */
const char *store_host_transition(const char *from, const char *to);
/* 0 when tok is a token row token_add accepts (store.h), else OUTPOST_E_BAD_ARGS. */
int store_token_check(const json_t *tok);

#endif
