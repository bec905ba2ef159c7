/* Rule conditions: the small expression language of docs/rules.md (window functions over the
 * metric query's series selectors, predict, host state, events; and, or; a `for` duration),
 * parsed into a tree whose leaves the evaluator (rules.c) computes host by host. Series
 * selectors are parsed by the metric query's own parser (query_selector_parse). */
#ifndef OUTPOST_HUB_RULE_EXPR_H
#define OUTPOST_HUB_RULE_EXPR_H

#include "query.h"

#include <stddef.h>
#include <stdint.h>

#define RX_MAX_TEXT 4096                  /* bytes of a condition */
#define RX_MAX_LEAVES 16                  /* terms of one condition */
#define RX_MAX_WINDOW_MS (7LL * 86400000) /* a window or a prediction's horizon */

enum rx_kind { RX_AND, RX_OR, RX_LEAF };

enum rx_leaf_kind {
	RX_METRIC,  /* fn(series[window]) OP number */
	RX_DOWN,    /* down [for D] */
	RX_PENDING, /* pending */
	RX_EVENT,   /* event(kind[window]) */
};

enum rx_fn { RX_AVG, RX_MIN, RX_MAX, RX_LAST, RX_RATE, RX_DELTA, RX_PCT, RX_PREDICT };
enum rx_op { RX_GT, RX_GE, RX_LT, RX_LE, RX_EQ, RX_NE };

struct rx_leaf {
	int kind;
	char *text; /* the term as written, normalised spaces: the key of its matched value */
	char *key;  /* RX_METRIC: fn(series[window]) alone, the same for terms that differ only
	             * in their comparison (their values are computed once per cycle) */
	/* RX_METRIC */
	int fn;
	double pct; /* RX_PCT: 0..1 */
	char *name; /* the series name (a __name__ matcher's value), or NULL: any */
	struct query_matcher m[QUERY_MAX_MATCHERS];
	size_t nm;
	int64_t window_ms;
	int64_t ahead_ms; /* RX_PREDICT: the horizon */
	int op;
	double value;
	/* RX_DOWN: for_ms (0: down now); RX_EVENT: window_ms (0: since the last cycle) */
	int64_t for_ms;
	char *event; /* RX_EVENT: the kind */
};

struct rx_node {
	int kind;
	struct rx_node *l, *r; /* RX_AND, RX_OR */
	int leaf;              /* RX_LEAF: index into leaves */
};

struct rule_expr {
	struct rx_node *root;
	struct rx_leaf leaves[RX_MAX_LEAVES];
	size_t nleaves;
	int64_t for_ms; /* the condition holds this long before the alert fires */
};

/* Parses text. 0 and a new expression in *out, or OUTPOST_E_BAD_ARGS with *col (characters
 * from 1) where it went wrong and msg saying what was expected there. */
int rule_expr_parse(const char *text, struct rule_expr **out, int *col, char *msg, size_t msglen);
void rule_expr_free(struct rule_expr *e); /* NULL ok */

/* Whether v op threshold holds. */
int rule_expr_compare(int op, double v, double threshold);

#endif
