/* The metrics plugin's batch for the hub: see batch.h. */
#include "batch.h"

#include <math.h>
#include <string.h>

/* Bytes of a label value once escaped. */
static size_t escaped_len(const char *v)
{
	size_t n = 0;

	for (; *v; v++)
		n += (*v == '\\' || *v == '"' || *v == '\n') ? 2 : 1;
	return n;
}

static int put_escaped(struct buf *out, const char *v)
{
	const char *run = v;

	for (; *v; v++) {
		const char *esc = *v == '\\'   ? "\\\\"
		                  : *v == '"'  ? "\\\""
		                  : *v == '\n' ? "\\n"
		                               : NULL;
		if (!esc)
			continue;
		if (buf_append(out, run, (size_t)(v - run)) < 0 || buf_puts(out, esc) < 0)
			return -1;
		run = v + 1;
	}
	return buf_append(out, run, (size_t)(v - run));
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
	    buf_puts(out, "=\"") < 0 || put_escaped(out, v) < 0 || buf_puts(out, "\"") < 0)
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

json_t *batch_value(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "+Inf" : "-Inf");
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return json_integer((json_int_t)v);
	return json_real(v);
}

int batch_add(json_t *samples, struct buf *scratch, const char *key, size_t keylen, const char *xk,
              const char *xv, double v)
{
	json_t *k, *val, *pair;

	if (batch_key_len(key, keylen, xk, xv) > BATCH_KEY_MAX)
		return 1;
	buf_reset(scratch);
	if (batch_key(scratch, key, keylen, xk, xv) < 0)
		return -1;
	k = json_stringn(scratch->data, scratch->len);
	if (!k)
		return 1; /* not UTF-8 (or no memory: the next sample will tell) */
	val = batch_value(v);
	/* Each *_new call takes its value, even when it fails. */
	pair = json_array();
	if ((json_array_append_new(pair, k) | json_array_append_new(pair, val)) < 0) {
		json_decref(pair);
		return -1;
	}
	return json_array_append_new(samples, pair) < 0 ? -1 : 0;
}
