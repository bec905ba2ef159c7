/* Metric query parameters: names, label matchers (the API's label=value form and Prometheus
 * selectors for /federate), times, steps, aggregations. Pure text to struct query_params;
 * the engine that runs them is query.c. */
#include "query.h"
#include "re.h"
#include "core/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 200)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

static int label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

void query_matcher_clear(struct query_matcher *m)
{
	re_free(m->re);
	free(m->label);
	free(m->value);
	memset(m, 0, sizeof(*m));
}

int query_matcher_set(struct query_matcher *m, const char *label, int op, const char *value,
                      char *msg, size_t msglen)
{
	memset(m, 0, sizeof(*m));
	if (!label_ok(label, strlen(label))) {
		snprintf(msg, msglen, "'%.64s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
		         label);
		return OUTPOST_E_BAD_ARGS;
	}
	if (strlen(value) > 1024) {
		snprintf(msg, msglen, "the value of label %s is longer than 1024 bytes", label);
		return OUTPOST_E_BAD_ARGS;
	}
	m->op = op;
	m->label = strdup(label);
	m->value = strdup(value);
	if (!m->label || !m->value)
		goto oom;
	if (op == QUERY_RE || op == QUERY_NRE) {
		char err[200];
		int rc = re_compile(value, &m->re, err, sizeof(err));
		if (rc == OUTPOST_E_BAD_ARGS) {
			snprintf(msg, msglen,
			         "'%.128s' is not a regular expression in RE2 syntax (as "
			         "Prometheus's; no back-references): %s",
			         value, err);
			query_matcher_clear(m);
			return rc;
		}
		if (rc < 0)
			goto oom;
	}
	return 0;
oom:
	query_matcher_clear(m);
	snprintf(msg, msglen, "out of memory");
	return OUTPOST_E_INTERNAL;
}

int query_matcher_parse(const char *text, struct query_matcher *m, char *msg, size_t msglen)
{
	size_t n = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
	const char *rest = text + n;
	char label[129];
	int op;

	memset(m, 0, sizeof(*m));
	if (strncmp(rest, "!=", 2) == 0)
		op = QUERY_NE, rest += 2;
	else if (strncmp(rest, "!~", 2) == 0)
		op = QUERY_NRE, rest += 2;
	else if (strncmp(rest, "=~", 2) == 0)
		op = QUERY_RE, rest += 2;
	else if (rest[0] == '=')
		op = QUERY_EQ, rest += 1;
	else {
		snprintf(msg, msglen,
		         "'%.128s' is not a matcher: write label=value, label!=value, "
		         "label=~regex or label!~regex",
		         text);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!label_ok(text, n)) {
		snprintf(msg, msglen, "'%.128s': the label name must match [a-zA-Z_][a-zA-Z0-9_]*",
		         text);
		return OUTPOST_E_BAD_ARGS;
	}
	memcpy(label, text, n);
	label[n] = '\0';
	return query_matcher_set(m, label, op, rest, msg, msglen);
}

/* "1h30m", "90s", "500ms", "2d", "1w": at least one number with a unit. 0 or -1. */
static int parse_dur(const char *s, int64_t *out)
{
	int64_t total = 0;

	if (!*s)
		return -1;
	while (*s) {
		int64_t v = 0, unit;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			if (++digits > 12)
				return -1;
			v = v * 10 + (*s++ - '0');
		}
		if (!digits)
			return -1;
		if (strncmp(s, "ms", 2) == 0)
			unit = 1, s += 2;
		else if (*s == 's')
			unit = 1000, s++;
		else if (*s == 'm')
			unit = 60000, s++;
		else if (*s == 'h')
			unit = 3600000, s++;
		else if (*s == 'd')
			unit = 86400000, s++;
		else if (*s == 'w')
			unit = 7 * 86400000LL, s++;
		else
			return -1;
		total += v * unit;
		if (total > 100LL * 366 * 86400000) /* a century: nothing sensible is longer */
			return -1;
	}
	*out = total;
	return 0;
}

static int parse_ms(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 15)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0)
		return -1;
	*out = v;
	return 0;
}

int query_parse_time(const char *s, int64_t now, int64_t *out)
{
	int64_t d;

	if (strcmp(s, "now") == 0) {
		*out = now;
		return 0;
	}
	if (strncmp(s, "now-", 4) == 0)
		s += 3;
	if (s[0] == '-') {
		if (parse_dur(s + 1, &d) < 0)
			return -1;
		*out = now - d;
		return 0;
	}
	return parse_ms(s, out);
}

int query_parse_step(const char *s, int64_t *out)
{
	int64_t v;

	if (parse_ms(s, &v) < 0 && parse_dur(s, &v) < 0)
		return -1;
	if (v <= 0)
		return -1;
	*out = v;
	return 0;
}

static int parse_agg(const char *s, struct query_params *p)
{
	static const char *const names[] = {"none", "avg", "min", "max", "sum", "count"};
	char *end;
	double v;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			p->agg = (int)i;
			snprintf(p->agg_name, sizeof(p->agg_name), "%s", s);
			return 0;
		}
	if (s[0] != 'p' || !(s[1] >= '0' && s[1] <= '9') || strlen(s) > 10)
		return -1;
	errno = 0;
	v = strtod(s + 1, &end);
	if (*end || errno || !(v >= 0 && v <= 100) || strchr(s, 'e') || strchr(s, 'x'))
		return -1;
	p->agg = QUERY_AGG_PCT;
	p->pct = v / 100.0;
	snprintf(p->agg_name, sizeof(p->agg_name), "%s", s);
	return 0;
}

void query_params_clear(struct query_params *p)
{
	for (size_t i = 0; i < p->nm; i++)
		query_matcher_clear(&p->m[i]);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

int query_parse(const struct query_args *a, int64_t now, int need_name, struct query_params *p,
                char *msg, size_t msglen)
{
	char why[400];
	long long lim;

	memset(p, 0, sizeof(*p));
	p->limit = QUERY_LIMIT_DEFAULT;
	snprintf(p->agg_name, sizeof(p->agg_name), "none");
	if (a->name && *a->name) {
		if (!name_ok(a->name)) {
			snprintf(msg, msglen,
			         "name: '%.128s' is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, "
			         "at most 200 bytes)",
			         a->name);
			goto bad;
		}
		if (!(p->name = strdup(a->name)))
			goto oom;
	} else if (need_name) {
		snprintf(msg, msglen,
		         "name: a metric name is required, e.g. name=host_load1 (GET "
		         "/api/v1/metrics/series lists them)");
		goto bad;
	}
	if (a->nmatch > QUERY_MAX_MATCHERS) {
		snprintf(msg, msglen, "match: at most %d matchers", QUERY_MAX_MATCHERS);
		goto bad;
	}
	for (size_t i = 0; i < a->nmatch; i++) {
		int rc = query_matcher_parse(a->match[i], &p->m[i], why, sizeof(why));
		if (rc < 0) {
			snprintf(msg, msglen, "match: %s", why);
			query_params_clear(p);
			return rc;
		}
		p->nm++;
	}
	p->to = now;
	if (a->to && query_parse_time(a->to, now, &p->to) < 0) {
		snprintf(msg, msglen,
		         "to: '%.64s' is not a time: ms since 1970, 'now', or before now such as "
		         "-1h, -90m, -2d",
		         a->to);
		goto bad;
	}
	p->from = p->to - 3600000;
	if (a->from && query_parse_time(a->from, now, &p->from) < 0) {
		snprintf(msg, msglen,
		         "from: '%.64s' is not a time: ms since 1970, 'now', or before now such "
		         "as -1h, -90m, -2d",
		         a->from);
		goto bad;
	}
	if (p->from >= p->to) {
		snprintf(msg, msglen, "from (%" PRId64 ") must be before to (%" PRId64 ")", p->from,
		         p->to);
		goto bad;
	}
	if (a->step && query_parse_step(a->step, &p->step) < 0) {
		snprintf(msg, msglen,
		         "step: '%.64s' is not a step: 30s, 5m, 1h, or a number of ms greater "
		         "than 0",
		         a->step);
		goto bad;
	}
	if (a->agg && parse_agg(a->agg, p) < 0) {
		snprintf(msg, msglen,
		         "agg: '%.64s' is not an aggregation: none, avg, min, max, sum, count, or "
		         "a percentile p0..p100 such as p50, p99, p99.9",
		         a->agg);
		goto bad;
	}
	if (a->limit) {
		char *end;
		errno = 0;
		lim = strtoll(a->limit, &end, 10);
		if (!*a->limit || *end || errno || lim < 1 || lim > QUERY_LIMIT_MAX) {
			snprintf(msg, msglen, "limit: '%.64s' is not a count from 1 to %d",
			         a->limit, QUERY_LIMIT_MAX);
			goto bad;
		}
		p->limit = (size_t)lim;
	}
	return 0;
bad:
	query_params_clear(p);
	return OUTPOST_E_BAD_ARGS;
oom:
	query_params_clear(p);
	snprintf(msg, msglen, "out of memory");
	return OUTPOST_E_INTERNAL;
}

/* ---- Prometheus selectors (/federate) ---- */

/* A double-quoted label value of a Prometheus selector: \\ \" \n and \t escapes. Returns the
 * position after the closing quote, or NULL. The value goes to v (vlen bytes). */
static const char *sel_string(const char *s, char *v, size_t vlen)
{
	size_t n = 0;

	if (*s != '"')
		return NULL;
	for (s++; *s && *s != '"'; s++) {
		char c = *s;
		if (c == '\\') {
			s++;
			if (*s == 'n')
				c = '\n';
			else if (*s == 't')
				c = '\t';
			else if (*s == '\\' || *s == '"')
				c = *s;
			else
				return NULL;
		}
		if (n + 1 >= vlen)
			return NULL;
		v[n++] = c;
	}
	if (*s != '"')
		return NULL;
	v[n] = '\0';
	return s + 1;
}

int query_selector_parse(const char *text, struct query_matcher *m, size_t max, size_t *n,
                         char *msg, size_t msglen)
{
	const char *s = text;
	char label[130], value[1030], why[300];
	size_t k;
	int rc;

	*n = 0;
	while (*s == ' ')
		s++;
	k = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
	if (k) {
		if (k > 200)
			goto bad;
		memcpy(value, s, k);
		value[k] = '\0';
		if (!name_ok(value))
			goto bad;
		if ((rc = query_matcher_set(&m[(*n)++], "__name__", QUERY_EQ, value, why,
		                            sizeof(why))) < 0)
			goto fail;
		s += k;
	}
	while (*s == ' ')
		s++;
	if (*s == '{') {
		s++;
		for (;;) {
			int op;
			while (*s == ' ')
				s++;
			if (*s == '}')
				break;
			k = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
			              "0123456789");
			if (!k || k > 128)
				goto bad;
			memcpy(label, s, k);
			label[k] = '\0';
			s += k;
			while (*s == ' ')
				s++;
			if (strncmp(s, "!=", 2) == 0)
				op = QUERY_NE, s += 2;
			else if (strncmp(s, "!~", 2) == 0)
				op = QUERY_NRE, s += 2;
			else if (strncmp(s, "=~", 2) == 0)
				op = QUERY_RE, s += 2;
			else if (*s == '=')
				op = QUERY_EQ, s += 1;
			else
				goto bad;
			while (*s == ' ')
				s++;
			if (!(s = sel_string(s, value, sizeof(value))))
				goto bad;
			if (*n >= max) {
				snprintf(msg, msglen, "match[]: more than %zu matchers", max);
				rc = OUTPOST_E_BAD_ARGS;
				goto clear;
			}
			if ((rc = query_matcher_set(&m[(*n)++], label, op, value, why,
			                            sizeof(why))) < 0) {
				(*n)--;
				goto fail;
			}
			while (*s == ' ')
				s++;
			if (*s == ',')
				s++;
			else if (*s != '}')
				goto bad;
		}
		s++;
	}
	while (*s == ' ')
		s++;
	if (*s || *n == 0)
		goto bad;
	return 0;
bad:
	snprintf(msg, msglen,
	         "match[]: '%.200s' is not a series selector such as host_load1, "
	         "host_cpu_percent{mode=\"user\"} or {__name__=~\"host_.*\",host=\"web-01\"}",
	         text);
	rc = OUTPOST_E_BAD_ARGS;
	goto clear;
fail:
	snprintf(msg, msglen, "match[]: %s", why);
clear:
	for (size_t i = 0; i < *n; i++)
		query_matcher_clear(&m[i]);
	*n = 0;
	return rc;
}
