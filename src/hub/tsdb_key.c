/* Series keys of the time-series store: the Prometheus exposition form name{a="x",b="y"},
 * parsed from what agents send and rendered canonical (labels sorted by name), so that one
 * series has one key whatever order its labels came in. */
#include "tsdb.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct span {
	const char *p;
	size_t n;
};

struct label {
	struct span name;
	struct span value; /* escaped, as it came */
};

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int span_cmp(const struct span *a, const struct span *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	int c = memcmp(a->p, b->p, n);

	return c ? c : (a->n > b->n) - (a->n < b->n);
}

static int label_cmp(const void *a, const void *b)
{
	return span_cmp(&((const struct label *)a)->name, &((const struct label *)b)->name);
}

#define BAD(...)                                                                                   \
	do {                                                                                       \
		snprintf(msg, msglen, __VA_ARGS__);                                                \
		return OUTPOST_E_BAD_ARGS;                                                         \
	} while (0)

int tsdb_key_canon(const char *key, size_t len, char *out, size_t cap, size_t *outlen, char *msg,
                   size_t msglen)
{
	struct label lab[TSDB_LABELS_MAX];
	size_t i = 0, n = 0, o;

	if (len == 0 || len > TSDB_KEY_MAX)
		BAD("a series key must be 1 to %d bytes", TSDB_KEY_MAX);
	if (!is_alpha((unsigned char)key[0]) && key[0] != ':')
		BAD("a metric name must begin with a letter, '_' or ':'");
	while (i < len && (is_alpha((unsigned char)key[i]) || is_digit((unsigned char)key[i]) ||
	                   key[i] == ':'))
		i++;
	if (i > 200)
		BAD("a metric name is at most 200 bytes");
	if (i >= 2 && key[0] == '_' && key[1] == '_')
		BAD("metric names beginning with '__' are reserved");
	o = i;
	if (i < len) {
		if (key[i] != '{' || key[len - 1] != '}')
			BAD("bad character at byte %zu of a series key: expected "
			    "name{label=\"value\",...}",
			    i);
		i++;
		while (i < len - 1) {
			struct label *l;
			if (n == TSDB_LABELS_MAX)
				BAD("a series has at most %d labels", TSDB_LABELS_MAX);
			l = &lab[n++];
			l->name.p = key + i;
			if (!is_alpha((unsigned char)key[i]))
				BAD("a label name must begin with a letter or '_' (byte %zu)", i);
			while (i < len &&
			       (is_alpha((unsigned char)key[i]) || is_digit((unsigned char)key[i])))
				i++;
			l->name.n = (size_t)(key + i - l->name.p);
			if (i + 1 >= len || key[i] != '=' || key[i + 1] != '"')
				BAD("expected =\" after a label name (byte %zu)", i);
			i += 2;
			l->value.p = key + i;
			for (;;) {
				if (i >= len - 1)
					BAD("a label value is not closed");
				if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
					BAD("control character in a label value (byte %zu)", i);
				if (key[i] == '"')
					break;
				if (key[i] == '\\') {
					if (i + 1 >= len - 1 ||
					    (key[i + 1] != '\\' && key[i + 1] != '"' &&
					     key[i + 1] != 'n'))
						BAD("bad escape in a label value (byte %zu): use "
						    "\\\\, \\\" or "
						    "\\n",
						    i);
					i++;
				}
				i++;
			}
			l->value.n = (size_t)(key + i - l->value.p);
			i++; /* the closing quote */
			if (l->name.n >= 2 && l->name.p[0] == '_' && l->name.p[1] == '_')
				BAD("label names beginning with '__' are reserved");
			if (l->name.n == 4 && memcmp(l->name.p, "host", 4) == 0)
				BAD("the host label is the hub's: leave it out of the agent's "
				    "series");
			if (i < len - 1) {
				if (key[i] != ',')
					BAD("expected ',' or '}' (byte %zu)", i);
				i++;
				if (i == len - 1)
					BAD("a trailing ',' in a series key");
			}
		}
		if (n == 0 && len - o != 2)
			BAD("empty label set");
	}
	qsort(lab, n, sizeof(lab[0]), label_cmp);
	for (size_t k = 1; k < n; k++)
		if (span_cmp(&lab[k - 1].name, &lab[k].name) == 0)
			BAD("label '%.*s' appears twice", (int)lab[k].name.n, lab[k].name.p);
	/* The canonical form is never longer than the input (only the order changes, and "{}"
	 * goes). */
	if (cap < len + 1)
		BAD("key buffer too small");
	memcpy(out, key, o);
	if (n) {
		out[o++] = '{';
		for (size_t k = 0; k < n; k++) {
			if (k)
				out[o++] = ',';
			memcpy(out + o, lab[k].name.p, lab[k].name.n);
			o += lab[k].name.n;
			out[o++] = '=';
			out[o++] = '"';
			memcpy(out + o, lab[k].value.p, lab[k].value.n);
			o += lab[k].value.n;
			out[o++] = '"';
		}
		out[o++] = '}';
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}
