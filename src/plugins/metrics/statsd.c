/* StatsD lines into the metrics table: see statsd.h. Everything here is bounded by the line:
 * no allocation but the table's own, and no input that can make a line cost more than a
 * pass over it. */
#include "batch.h"
#include "statsd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t statsd_name(const char *in, size_t len, char *out, size_t cap, int colon)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '.')
			c = '_';
		else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '_' || (colon && c == ':')))
			continue;
		if (n == 0 && c >= '0' && c <= '9') {
			if (n + 1 >= cap)
				return 0;
			out[n++] = '_';
		}
		if (n + 1 >= cap)
			return 0;
		out[n++] = c;
	}
	out[n] = '\0';
	if (n == 0 || n > MTAB_NAME_MAX)
		return 0;
	return n;
}

/* A finite number filling the whole of s (NUL-terminated). */
static int statsd_number(const char *s, double *out)
{
	char *end;

	if (!*s)
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(*out))
		return -1;
	return 0;
}

static uint64_t statsd_hash64(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

struct statsd_line {
	char name[MTAB_NAME_MAX + 2];
	const char *labels[2 * MTAB_LABELS_MAX];
	size_t nlabels;
	char tags[STATSD_LINE_MAX * 2]; /* mapped tag names and values, NUL-separated */
	char *value;
	int type;
	int delta; /* a gauge's +/- */
	double rate;
};

/* Tags in DogStatsD form: k:v,k2:v2 (a tag without a value has the value ""). */
static int statsd_tags(char *s, struct statsd_line *l)
{
	size_t used = 0;

	while (*s) {
		char *comma = strchr(s, ','), *colon, *v;
		size_t n;
		if (comma)
			*comma = '\0';
		colon = strchr(s, ':');
		v = colon ? colon + 1 : s + strlen(s);
		if (l->nlabels == MTAB_LABELS_MAX || strlen(v) > MTAB_LABEL_VALUE_MAX)
			return -1;
		n = statsd_name(s, colon ? (size_t)(colon - s) : strlen(s), l->tags + used,
		                sizeof(l->tags) - used, 0);
		/* host: the hub adds it (this host's id) to every series. */
		if (n == 0 || !mtab_label_name_ok(l->tags + used, n) ||
		    strcmp(l->tags + used, "host") == 0)
			return -1;
		for (size_t i = 0; i < l->nlabels; i++)
			if (strcmp(l->labels[2 * i], l->tags + used) == 0)
				return -1;
		l->labels[2 * l->nlabels] = l->tags + used;
		used += n + 1;
		if (used + strlen(v) + 1 > sizeof(l->tags))
			return -1;
		memcpy(l->tags + used, v, strlen(v) + 1);
		l->labels[2 * l->nlabels + 1] = l->tags + used;
		used += strlen(v) + 1;
		l->nlabels++;
		if (!comma)
			break;
		s = comma + 1;
	}
	return 0;
}

/* Splits one line (NUL-terminated, writable) into l. */
static int statsd_parse(char *line, struct statsd_line *l)
{
	char *colon = strchr(line, ':'), *type, *field;

	if (!colon)
		return -1;
	if (statsd_name(line, (size_t)(colon - line), l->name, sizeof(l->name), 1) == 0 ||
	    !mtab_name_ok(l->name, strlen(l->name)) || mtab_name_reserved(l->name))
		return -1;
	l->value = colon + 1;
	type = strchr(l->value, '|');
	if (!type)
		return -1;
	*type++ = '\0';
	field = strchr(type, '|');
	if (field)
		*field++ = '\0';
	if (strcmp(type, "c") == 0)
		l->type = MTAB_COUNTER;
	else if (strcmp(type, "g") == 0)
		l->type = MTAB_GAUGE;
	else if (strcmp(type, "ms") == 0 || strcmp(type, "h") == 0 || strcmp(type, "d") == 0)
		l->type = MTAB_TIMER;
	else if (strcmp(type, "s") == 0)
		l->type = MTAB_SET;
	else
		return -1;
	l->delta = l->type == MTAB_GAUGE && (l->value[0] == '+' || l->value[0] == '-');
	l->rate = 1;
	l->nlabels = 0;
	while (field) {
		char *next = strchr(field, '|');
		if (next)
			*next++ = '\0';
		if (field[0] == '@') {
			if (statsd_number(field + 1, &l->rate) < 0 ||
			    !(l->rate > 0 && l->rate <= 1))
				return -1;
		} else if (field[0] == '#') {
			if (statsd_tags(field + 1, l) < 0)
				return -1;
		} else {
			return -1;
		}
		field = next;
	}
	return 0;
}

/* Returns 0, -1 for a bad line, -2 when the series would go over max_series. */
static int statsd_apply(struct mtab *t, size_t max_series, struct statsd_line *l, int64_t now_ms)
{
	char key[MTAB_NAME_MAX + 2 + MTAB_LABELS_MAX * (MTAB_NAME_MAX + MTAB_LABEL_VALUE_MAX + 4)];
	struct mtab_series *s;
	double v = 0;
	size_t keylen;
	int created;

	if (l->type != MTAB_SET && statsd_number(l->value, &v) < 0)
		return -1;
	if (l->type == MTAB_COUNTER && v < 0)
		return -1;
	if (l->type == MTAB_SET && !l->value[0])
		return -1;
	for (size_t i = 0; l->type == MTAB_TIMER && i < l->nlabels; i++)
		if (strcmp(l->labels[2 * i], "stat") == 0)
			return -1; /* the label of a timer's summaries */
	keylen = mtab_key(key, sizeof(key), l->name, l->labels, l->nlabels);
	if (keylen == 0)
		return -1;
	s = mtab_find(t, key, keylen);
	if (s && s->type != l->type)
		return -1;
	/* A key the hub would refuse (its longest form: a timer's stat="count"). */
	if (!s && batch_key_len(key, keylen, l->type == MTAB_TIMER ? "stat" : NULL, "count") >
	              BATCH_KEY_MAX)
		return -1;
	if (!s && mtab_output_count(t) + mtab_type_width(l->type) > max_series)
		return -2;
	s = mtab_get(t, key, keylen, l->type, &created);
	if (!s)
		return -2; /* out of memory: refused like a series over the limit */
	switch (l->type) {
	case MTAB_COUNTER:
		s->value = (isnan(s->value) ? 0 : s->value) + v / l->rate;
		break;
	case MTAB_GAUGE:
		s->value = l->delta ? (isnan(s->value) ? 0 : s->value) + v : v;
		break;
	case MTAB_TIMER:
		if (mtab_timer_add(t, s, v) < 0)
			return -2;
		break;
	case MTAB_SET:
		if (mtab_set_add(s, statsd_hash64(l->value, strlen(l->value))) < 0)
			return -2;
		break;
	}
	s->updated_ms = now_ms;
	return 0;
}

void statsd_packet(struct mtab *t, size_t max_series, const char *buf, size_t len, int64_t now_ms,
                   struct statsd_stats *st)
{
	struct statsd_line l;
	char line[STATSD_LINE_MAX + 1];
	size_t i = 0;

	st->packets++;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		int rc;
		if (n > 0 && buf[i + n - 1] == '\r')
			n--;
		if (n == 0) {
			/* empty lines (a trailing newline) are not errors */
		} else if (n > STATSD_LINE_MAX || memchr(buf + i, '\0', n)) {
			st->bad_lines++;
		} else {
			memcpy(line, buf + i, n);
			line[n] = '\0';
			rc = statsd_parse(line, &l) < 0 ? -1
			                                : statsd_apply(t, max_series, &l, now_ms);
			if (rc == -1)
				st->bad_lines++;
			else if (rc == -2)
				st->refused++;
		}
		i += (nl ? (size_t)(nl - (buf + i)) + 1 : len - i);
	}
}
