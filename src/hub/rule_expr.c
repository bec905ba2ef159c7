/* Rule conditions (rule_expr.h): a recursive-descent parser over the grammar of
 * docs/rules.md. Series selectors are cut out by their extent (a name, then {...} with quoted
 * values) and handed to the metric query's parser, so a condition names series exactly as
 * GET /api/v1/metrics/query and /federate do. */
#include "rule_expr.h"

#include <ctype.h>
#include <math.h>
#include <outpost/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rx_parse {
	const char *text, *p;
	struct rule_expr *e;
	const char *err_at;
	char *msg;
	size_t msglen;
	int depth;
};

static int rx_fail(struct rx_parse *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rx_fail(struct rx_parse *ps, const char *at, const char *fmt, ...)
{
	va_list ap;

	if (!ps->err_at) {
		ps->err_at = at;
		va_start(ap, fmt);
		vsnprintf(ps->msg, ps->msglen, fmt, ap);
		va_end(ap);
	}
	return OUTPOST_E_BAD_ARGS;
}

static void rx_space(struct rx_parse *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static int is_word(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* The next word (letters, digits, _ and :) without consuming it; its length. */
static size_t rx_peek_word(struct rx_parse *ps)
{
	size_t n = 0;

	rx_space(ps);
	while (is_word(ps->p[n]))
		n++;
	return n;
}

static int rx_keyword(struct rx_parse *ps, const char *kw)
{
	size_t n = rx_peek_word(ps);

	if (n == strlen(kw) && strncmp(ps->p, kw, n) == 0) {
		ps->p += n;
		return 1;
	}
	return 0;
}

static int rx_char(struct rx_parse *ps, char c)
{
	rx_space(ps);
	if (*ps->p != c)
		return 0;
	ps->p++;
	return 1;
}

/* A duration: digits and units, as the metric query's steps ("5m", "1h30m", "90s"). */
static int rx_duration(struct rx_parse *ps, int64_t *out, const char *what)
{
	char buf[32];
	size_t n;
	const char *at;

	rx_space(ps);
	at = ps->p;
	n = strspn(at, "0123456789smhdw");
	if (n == 0 || n >= sizeof(buf) || !isdigit((unsigned char)at[0]) ||
	    isdigit((unsigned char)at[n - 1]))
		return rx_fail(ps, at, "expected %s, a duration such as 30s, 5m, 2h or 1d", what);
	memcpy(buf, at, n);
	buf[n] = '\0';
	if (query_parse_step(buf, out) < 0 || *out > RX_MAX_WINDOW_MS)
		return rx_fail(ps, at, "'%s' is not a duration from 1s to 7d", buf);
	ps->p += n;
	return 0;
}

static int rx_number(struct rx_parse *ps, double *out)
{
	char *end;
	const char *at;

	rx_space(ps);
	at = ps->p;
	if (!(isdigit((unsigned char)*at) || *at == '-' || *at == '+' || *at == '.'))
		return rx_fail(ps, at, "expected a number");
	*out = strtod(at, &end);
	if (end == at || !isfinite(*out))
		return rx_fail(ps, at, "expected a number");
	ps->p = end;
	return 0;
}

static int rx_cmp_op(struct rx_parse *ps, int *op)
{
	static const struct {
		const char *s;
		int op;
	} ops[] = {{">=", RX_GE}, {"<=", RX_LE}, {"==", RX_EQ},
	           {"!=", RX_NE}, {">", RX_GT},  {"<", RX_LT}};

	rx_space(ps);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strncmp(ps->p, ops[i].s, strlen(ops[i].s)) == 0) {
			*op = ops[i].op;
			ps->p += strlen(ops[i].s);
			return 0;
		}
	return rx_fail(ps, ps->p, "expected a comparison: > >= < <= == !=");
}

/* The extent of a series selector: name{...} with quoted values skipped whole. */
static size_t rx_series_extent(const char *s)
{
	size_t n = 0;

	while (is_word(s[n]))
		n++;
	while (s[n] == ' ')
		n++;
	if (s[n] != '{')
		return n;
	for (n++; s[n] && s[n] != '}'; n++) {
		if (s[n] != '"')
			continue;
		for (n++; s[n] && s[n] != '"'; n++)
			if (s[n] == '\\' && s[n + 1])
				n++;
		if (!s[n])
			return 0;
	}
	return s[n] == '}' ? n + 1 : 0;
}

/* series[window] into leaf: the metric query's selector parser does the series. */
static int rx_series(struct rx_parse *ps, struct rx_leaf *lf)
{
	char *sel, why[512];
	const char *at;
	size_t n;
	int rc;

	rx_space(ps);
	at = ps->p;
	n = rx_series_extent(at);
	while (n && at[n - 1] == ' ')
		n--;
	if (n == 0)
		return rx_fail(ps, at,
		               "expected a series such as host_fs_used_percent{mount=\"/\"}");
	if (!(sel = strndup(at, n)))
		return OUTPOST_E_INTERNAL;
	rc = query_selector_parse(sel, lf->m, QUERY_MAX_MATCHERS, &lf->nm, why, sizeof(why));
	free(sel);
	if (rc < 0)
		/* its message starts "match[]: ": the query's parameter, not ours */
		return rx_fail(ps, at, "%s", strncmp(why, "match[]: ", 9) == 0 ? why + 9 : why);
	/* The name's own matcher becomes the walk's name (tsdb_series_each by name): the walk
	 * sees only series of that name, so the matcher would only cost a compare per series. */
	for (size_t i = 0; i < lf->nm; i++) {
		if (strcmp(lf->m[i].label, "__name__") != 0 || lf->m[i].op != QUERY_EQ || lf->name)
			continue;
		if (!(lf->name = strdup(lf->m[i].value)))
			return OUTPOST_E_INTERNAL;
		query_matcher_clear(&lf->m[i]);
		memmove(&lf->m[i], &lf->m[i + 1], (lf->nm - i - 1) * sizeof(lf->m[0]));
		lf->nm--;
		break;
	}
	ps->p = at + n;
	if (!rx_char(ps, '['))
		return rx_fail(ps, ps->p, "expected [window] after the series, such as [5m]");
	if ((rc = rx_duration(ps, &lf->window_ms, "a window")) < 0)
		return rc;
	if (!rx_char(ps, ']'))
		return rx_fail(ps, ps->p, "expected ]");
	return 0;
}

static int rx_fn_name(const char *w, size_t n, struct rx_leaf *lf)
{
	static const char *const names[] = {"avg", "min", "max", "last", "rate", "delta"};
	char num[16];
	char *end;

	for (int i = 0; i < 6; i++)
		if (strlen(names[i]) == n && strncmp(w, names[i], n) == 0) {
			lf->fn = i;
			return 1;
		}
	if (n >= 2 && n < sizeof(num) && w[0] == 'p' && isdigit((unsigned char)w[1])) {
		memcpy(num, w + 1, n - 1);
		num[n - 1] = '\0';
		lf->pct = strtod(num, &end) / 100.0;
		if (*end || lf->pct <= 0 || lf->pct > 1)
			return 0;
		lf->fn = RX_PCT;
		return 1;
	}
	if (n == 7 && strncmp(w, "predict", 7) == 0) {
		lf->fn = RX_PREDICT;
		return 1;
	}
	return 0;
}

static struct rx_leaf *rx_new_leaf(struct rx_parse *ps, int kind, const char *at)
{
	struct rx_leaf *lf;

	if (ps->e->nleaves >= RX_MAX_LEAVES) {
		rx_fail(ps, at, "more than 16 terms in one condition");
		return NULL;
	}
	lf = &ps->e->leaves[ps->e->nleaves++];
	lf->kind = kind;
	return lf;
}

/* [from, to) with its runs of spaces cut to one: a new string, or NULL. */
static char *rx_squeeze(const char *from, const char *to)
{
	size_t n = 0;
	char *t;

	while (to > from && isspace((unsigned char)to[-1]))
		to--;
	if (!(t = malloc((size_t)(to - from) + 1)))
		return NULL;
	for (const char *s = from; s < to; s++) {
		if (isspace((unsigned char)*s)) {
			if (n && t[n - 1] == ' ')
				continue;
			t[n++] = ' ';
		} else {
			t[n++] = *s;
		}
	}
	t[n] = '\0';
	return t;
}

/* The term as written. */
static int rx_leaf_text(struct rx_leaf *lf, const char *from, const char *to)
{
	return (lf->text = rx_squeeze(from, to)) ? 0 : OUTPOST_E_INTERNAL;
}

static int rx_node_new(struct rx_parse *ps, int kind, struct rx_node **out)
{
	(void)ps;
	if (!(*out = calloc(1, sizeof(**out))))
		return OUTPOST_E_INTERNAL;
	(*out)->kind = kind;
	return 0;
}

static int rx_or(struct rx_parse *ps, struct rx_node **out);

/* event(kind) or event(kind[window]); kind a word or a quoted string. */
static int rx_event(struct rx_parse *ps, struct rx_leaf *lf)
{
	const char *at;
	size_t n;
	int rc;

	if (!rx_char(ps, '('))
		return rx_fail(ps, ps->p, "expected ( after event");
	rx_space(ps);
	at = ps->p;
	if (*at == '"') {
		const char *q = strchr(at + 1, '"');
		if (!q || q == at + 1)
			return rx_fail(ps, at, "expected an event kind in quotes");
		n = (size_t)(q - at - 1);
		lf->event = strndup(at + 1, n);
		ps->p = q + 1;
	} else {
		n = rx_peek_word(ps);
		if (!n)
			return rx_fail(ps, at,
			               "expected an event kind: up, down, task_failed or a custom "
			               "event's kind");
		lf->event = strndup(at, n);
		ps->p += n;
	}
	if (!lf->event)
		return OUTPOST_E_INTERNAL;
	if (n > 64)
		return rx_fail(ps, at, "an event kind has at most 64 characters");
	if (rx_char(ps, '[')) {
		if ((rc = rx_duration(ps, &lf->for_ms, "a window")) < 0)
			return rc;
		if (!rx_char(ps, ']'))
			return rx_fail(ps, ps->p, "expected ]");
	}
	if (!rx_char(ps, ')'))
		return rx_fail(ps, ps->p, "expected ) after the event kind");
	return 0;
}

static int rx_term(struct rx_parse *ps, struct rx_node **out)
{
	struct rx_leaf *lf;
	const char *at;
	size_t n;
	int rc;

	rx_space(ps);
	at = ps->p;
	if (rx_char(ps, '(')) {
		if (++ps->depth > 32)
			return rx_fail(ps, at, "parentheses nested too deep");
		if ((rc = rx_or(ps, out)) < 0)
			return rc;
		ps->depth--;
		if (!rx_char(ps, ')'))
			return rx_fail(ps, ps->p, "expected ) or and/or");
		return 0;
	}
	if ((rc = rx_node_new(ps, RX_LEAF, out)) < 0)
		return rc;
	(*out)->leaf = (int)ps->e->nleaves;
	n = rx_peek_word(ps);
	if (rx_keyword(ps, "down")) {
		if (!(lf = rx_new_leaf(ps, RX_DOWN, at)))
			return OUTPOST_E_BAD_ARGS;
		/* "down for 3m": the for binds to down (the condition's own for comes after). */
		if (rx_keyword(ps, "for") && (rc = rx_duration(ps, &lf->for_ms, "how long")) < 0)
			return rc;
		return rx_leaf_text(lf, at, ps->p);
	}
	if (rx_keyword(ps, "pending")) {
		if (!(lf = rx_new_leaf(ps, RX_PENDING, at)))
			return OUTPOST_E_BAD_ARGS;
		return rx_leaf_text(lf, at, ps->p);
	}
	if (rx_keyword(ps, "event")) {
		if (!(lf = rx_new_leaf(ps, RX_EVENT, at)))
			return OUTPOST_E_BAD_ARGS;
		if ((rc = rx_event(ps, lf)) < 0)
			return rc;
		return rx_leaf_text(lf, at, ps->p);
	}
	if (!(lf = rx_new_leaf(ps, RX_METRIC, at)))
		return OUTPOST_E_BAD_ARGS;
	if (!n || !rx_fn_name(ps->p, n, lf))
		return rx_fail(ps, at,
		               "expected a term: avg, min, max, last, rate, delta, pNN or "
		               "predict(series[window]...), down, pending, event(kind) or (");
	ps->p += n;
	if (!rx_char(ps, '('))
		return rx_fail(ps, ps->p, "expected ( after the function's name");
	if ((rc = rx_series(ps, lf)) < 0)
		return rc;
	if (lf->fn == RX_PREDICT) {
		if (!rx_char(ps, ','))
			return rx_fail(ps, ps->p,
			               "expected , and how far ahead: predict(series[6h], 24h)");
		if ((rc = rx_duration(ps, &lf->ahead_ms, "how far ahead")) < 0)
			return rc;
	}
	if (!rx_char(ps, ')'))
		return rx_fail(ps, ps->p, "expected ) after the window");
	if (!(lf->key = rx_squeeze(at, ps->p)))
		return OUTPOST_E_INTERNAL;
	if ((rc = rx_cmp_op(ps, &lf->op)) < 0 || (rc = rx_number(ps, &lf->value)) < 0)
		return rc;
	return rx_leaf_text(lf, at, ps->p);
}

static int rx_binary(struct rx_parse *ps, struct rx_node **out, int kind, const char *kw,
                     int (*sub)(struct rx_parse *, struct rx_node **))
{
	struct rx_node *n;
	int rc;

	if ((rc = sub(ps, out)) < 0)
		return rc;
	while (rx_keyword(ps, kw)) {
		if ((rc = rx_node_new(ps, kind, &n)) < 0)
			return rc;
		n->l = *out;
		*out = n;
		if ((rc = sub(ps, &n->r)) < 0)
			return rc;
	}
	return 0;
}

static int rx_and(struct rx_parse *ps, struct rx_node **out)
{
	return rx_binary(ps, out, RX_AND, "and", rx_term);
}

static int rx_or(struct rx_parse *ps, struct rx_node **out)
{
	return rx_binary(ps, out, RX_OR, "or", rx_and);
}

static void rx_node_free(struct rx_node *n)
{
	if (!n)
		return;
	rx_node_free(n->l);
	rx_node_free(n->r);
	free(n);
}

void rule_expr_free(struct rule_expr *e)
{
	if (!e)
		return;
	rx_node_free(e->root);
	for (size_t i = 0; i < e->nleaves; i++) {
		struct rx_leaf *lf = &e->leaves[i];
		for (size_t j = 0; j < lf->nm; j++)
			query_matcher_clear(&lf->m[j]);
		free(lf->text);
		free(lf->key);
		free(lf->name);
		free(lf->event);
	}
	free(e);
}

/* Characters (not bytes) from the start to at, from 1. */
static int rx_column(const char *text, const char *at)
{
	int col = 1;

	for (const char *s = text; s < at && *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			col++;
	return col;
}

int rule_expr_parse(const char *text, struct rule_expr **out, int *col, char *msg, size_t msglen)
{
	struct rx_parse ps = {.text = text, .p = text, .msg = msg, .msglen = msglen};
	int rc;

	*out = NULL;
	*col = 1;
	if (strlen(text) > RX_MAX_TEXT) {
		snprintf(msg, msglen, "a condition has at most %d bytes", RX_MAX_TEXT);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!(ps.e = calloc(1, sizeof(*ps.e))))
		return OUTPOST_E_INTERNAL;
	rc = rx_or(&ps, &ps.e->root);
	if (rc == 0 && rx_keyword(&ps, "for"))
		rc =
		    rx_duration(&ps, &ps.e->for_ms, "how long the condition holds before it fires");
	rx_space(&ps);
	if (rc == 0 && *ps.p)
		rc = rx_fail(&ps, ps.p, "expected and, or, for DURATION or the end");
	if (rc < 0) {
		if (rc == OUTPOST_E_INTERNAL)
			snprintf(msg, msglen, "out of memory");
		*col = rx_column(text, ps.err_at ? ps.err_at : ps.p);
		rule_expr_free(ps.e);
		return rc;
	}
	*out = ps.e;
	return 0;
}

int rule_expr_compare(int op, double v, double t)
{
	switch (op) {
	case RX_GT:
		return v > t;
	case RX_GE:
		return v >= t;
	case RX_LT:
		return v < t;
	case RX_LE:
		return v <= t;
	case RX_EQ:
		return v == t;
	default:
		return v != t;
	}
}
