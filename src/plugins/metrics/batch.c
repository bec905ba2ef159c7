/* The metrics plugin's batch for the hub: see batch.h. */
#include "batch.h"

#include "core/wire.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Bytes of a label value once escaped. */
static size_t escaped_len(const char *v)
{
	size_t n = 0;

	for (; *v; v++)
		n += (*v == '\\' || *v == '"' || *v == '\n') ? 2 : 1;
	return n;
}

/* Walks the labels of a packed key with xk merged in its sorted place: calls fn for each
 * (name, value) in order. fn returns < 0 to stop. */
typedef int (*label_fn)(void *arg, int first, const char *k, const char *v);

static int each_label(const char *key, size_t keylen, const char *xk, const char *xv, label_fn fn,
                      void *arg)
{
	size_t i = strlen(key) + 1;
	int first = 1, rc;

	while (i < keylen) {
		const char *k = key + i, *v = k + strlen(k) + 1;
		if (xk && strcmp(xk, k) < 0) {
			if ((rc = fn(arg, first, xk, xv)) < 0)
				return rc;
			first = 0;
			xk = NULL;
		}
		if ((rc = fn(arg, first, k, v)) < 0)
			return rc;
		first = 0;
		i = (size_t)(v - key) + strlen(v) + 1;
	}
	if (xk && (rc = fn(arg, first, xk, xv)) < 0)
		return rc;
	return 0;
}

static int count_label(void *arg, int first, const char *k, const char *v)
{
	/* [,]k="v" */
	*(size_t *)arg += (first ? 0 : 1) + strlen(k) + 2 + escaped_len(v) + 1;
	return 0;
}

size_t batch_key_len(const char *key, size_t keylen, const char *xk, const char *xv)
{
	size_t n = strlen(key), labels = 0;

	each_label(key, keylen, xk, xv, count_label, &labels);
	return labels ? n + 2 + labels : n;
}

static int put_label(void *arg, int first, const char *k, const char *v)
{
	struct buf *out = arg;

	if ((!first && buf_puts(out, ",") < 0) || buf_puts(out, k) < 0 ||
	    buf_puts(out, "=\"") < 0 || buf_put_label_value(out, v) < 0 || buf_puts(out, "\"") < 0)
		return -1;
	return 0;
}

int batch_key(struct buf *out, const char *key, size_t keylen, const char *xk, const char *xv)
{
	int labels = strlen(key) + 1 < keylen || xk;

	if (buf_puts(out, key) < 0 || (labels && buf_puts(out, "{") < 0) ||
	    each_label(key, keylen, xk, xv, put_label, out) < 0 ||
	    (labels && buf_puts(out, "}") < 0))
		return -1;
	return 0;
}

int batch_begin(struct buf *out, int64_t t)
{
	buf_reset(out);
	return buf_printf(out, "{\"t\":%lld,\"samples\":[", (long long)t);
}

int batch_end(struct buf *out)
{
	return buf_puts(out, "]}");
}

int batch_value(struct buf *out, double v)
{
	char num[40];
	int n;

	if (isnan(v))
		return buf_puts(out, "\"NaN\"");
	if (isinf(v))
		return buf_puts(out, v > 0 ? "\"+Inf\"" : "\"-Inf\"");
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return buf_printf(out, "%lld", (long long)v);
	/* As jansson writes a real: 17 significant digits (exact), and never like an integer. */
	n = snprintf(num, sizeof(num), "%.17g", v);
	if (n <= 0 || (size_t)n >= sizeof(num) - 2)
		return -1;
	if (!strpbrk(num, ".eE"))
		memcpy(num + n, ".0", 3);
	return buf_puts(out, num);
}

/* Appends s (n bytes, valid UTF-8) as a JSON string, escaped as jansson escapes. */
static int put_json_string(struct buf *out, const char *s, size_t n)
{
	const char *run = s, *end = s + n;
	char u[8];

	if (buf_puts(out, "\"") < 0)
		return -1;
	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		const char *esc;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		esc = c == '"'    ? "\\\""
		      : c == '\\' ? "\\\\"
		      : c == '\n' ? "\\n"
		      : c == '\t' ? "\\t"
		      : c == '\r' ? "\\r"
		      : c == '\b' ? "\\b"
		      : c == '\f' ? "\\f"
		                  : NULL;
		if (!esc) {
			snprintf(u, sizeof(u), "\\u%04X", c);
			esc = u;
		}
		if (buf_append(out, run, (size_t)(s - run)) < 0 || buf_puts(out, esc) < 0)
			return -1;
		run = s + 1;
	}
	if (buf_append(out, run, (size_t)(end - run)) < 0 || buf_puts(out, "\"") < 0)
		return -1;
	return 0;
}

int batch_add(struct buf *out, struct buf *scratch, const char *key, size_t keylen, const char *xk,
              const char *xv, double v)
{
	size_t start = out->len;

	if (batch_key_len(key, keylen, xk, xv) > BATCH_KEY_MAX)
		return 1;
	buf_reset(scratch);
	if (batch_key(scratch, key, keylen, xk, xv) < 0)
		return -1;
	if (!wire_utf8_ok(scratch->data, scratch->len))
		return 1; /* a mount point's raw bytes: the hub takes UTF-8 only */
	if ((out->len > 0 && out->data[out->len - 1] != '[' && buf_puts(out, ",") < 0) ||
	    buf_puts(out, "[") < 0 || put_json_string(out, scratch->data, scratch->len) < 0 ||
	    buf_puts(out, ",") < 0 || batch_value(out, v) < 0 || buf_puts(out, "]") < 0) {
		out->len = start; /* no half sample */
		if (out->data)
			out->data[start] = '\0';
		return -1;
	}
	return 0;
}
