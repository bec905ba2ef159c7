/* Wire format helpers: see wire.h. */
#include "wire.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wire_depth(const char *data, size_t len)
{
	int depth = 0, max = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']') {
			if (--depth < 0)
				return -1;
		}
	}
	return depth == 0 && !in_str ? max : -1;
}

int wire_parse(const char *data, size_t len, int max_depth, json_t **out, char *msg, size_t msglen)
{
	json_error_t jerr;
	int depth;

	*out = NULL;
	if (len == 0) {
		snprintf(msg, msglen, "empty body: send a JSON object");
		return OUTPOST_E_BAD_JSON;
	}
	/* JSON text never holds a raw NUL, but jansson drops one right after a number
	 * ("{\"a\":5<NUL> }" parsed): found by tests/fuzz/body_fuzz.c. */
	if (memchr(data, '\0', len)) {
		snprintf(msg, msglen, "invalid JSON: a NUL byte (write it as \\u0000 in a string)");
		return OUTPOST_E_BAD_JSON;
	}
	depth = wire_depth(data, len);
	if (depth > max_depth) {
		snprintf(msg, msglen, "JSON nested %d deep, limit is %d", depth, max_depth);
		return OUTPOST_E_BAD_JSON;
	}
	*out = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!*out) {
		snprintf(msg, msglen, "invalid JSON at line %d column %d: %s", jerr.line,
		         jerr.column, jerr.text);
		return OUTPOST_E_BAD_JSON;
	}
	return 0;
}

/* ---- wire_scan_object: a validating scan, no allocation ---- */

struct scan {
	const unsigned char *p, *end;
	int depth, max;
};

static void scan_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int scan_hex4(struct scan *s, unsigned *v)
{
	*v = 0;
	if (s->end - s->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned c = *s->p++, d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

size_t wire_utf8_len(const char *str, size_t n)
{
	const unsigned char *p = (const unsigned char *)str;
	unsigned c, lo = 0x80, hi = 0xBF;
	size_t len;

	if (n == 0)
		return 0;
	c = p[0];
	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
	else
		return 0; /* NUL, a continuation byte, C0, C1, F5..FF */
	/* lo/hi on the second byte refuse overlongs (E0, F0), surrogates (ED), > U+10FFFF (F4) */
	if (n < 2 || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (i >= n || (p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* One UTF-8 sequence of 2 to 4 bytes at s->p (its lead byte >= 0x80). */
static int scan_utf8(struct scan *s)
{
	size_t n = wire_utf8_len((const char *)s->p, (size_t)(s->end - s->p));

	if (n < 2)
		return -1;
	s->p += n;
	return 0;
}

/* A string, s->p just after its opening quote. *esc: it held an escape. */
static int scan_string(struct scan *s, int *esc)
{
	unsigned v, w;

	*esc = 0;
	while (s->p < s->end) {
		unsigned c = *s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			if (scan_utf8(s) < 0)
				return -1;
			continue;
		}
		s->p++;
		if (c != '\\')
			continue;
		*esc = 1;
		if (s->p >= s->end)
			return -1;
		c = *s->p++;
		if (c != 'u') {
			if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
				return -1;
			continue;
		}
		if (scan_hex4(s, &v) < 0 || v == 0 || (v >= 0xDC00 && v <= 0xDFFF))
			return -1;
		if (v >= 0xD800 && v <= 0xDBFF) { /* a high surrogate wants its low one */
			if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
				return -1;
			s->p += 2;
			if (scan_hex4(s, &w) < 0 || w < 0xDC00 || w > 0xDFFF)
				return -1;
		}
	}
	return -1;
}

static int scan_digits(struct scan *s)
{
	const unsigned char *b = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > b ? 0 : -1;
}

static int scan_number(struct scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (scan_digits(s) < 0)
		return -1;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	return 0;
}

static int scan_value(struct scan *s, const char *key, int *has_key);

/* An object or array, s->p on its opening bracket. At the top level (depth 0 before it) the
 * names of an object are compared with key. */
static int scan_container(struct scan *s, const char *key, int *has_key)
{
	int obj = *s->p == '{', top = s->depth == 0, esc;
	char close = obj ? '}' : ']';

	if (++s->depth > s->max)
		return -1;
	s->p++;
	scan_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	for (;;) {
		if (obj) {
			const unsigned char *name;
			if (s->p >= s->end || *s->p != '"')
				return -1;
			name = ++s->p;
			if (scan_string(s, &esc) < 0)
				return -1;
			if (top && key &&
			    (esc || ((size_t)(s->p - 1 - name) == strlen(key) &&
			             memcmp(name, key, strlen(key)) == 0)))
				*has_key = 1;
			scan_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return -1;
			s->p++;
			scan_ws(s);
		}
		if (scan_value(s, NULL, NULL) < 0)
			return -1;
		scan_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == close) {
			s->p++;
			s->depth--;
			return 0;
		}
		if (*s->p != ',')
			return -1;
		s->p++;
		scan_ws(s);
	}
}

static int scan_value(struct scan *s, const char *key, int *has_key)
{
	static const char *const words[] = {"true", "false", "null"};
	int esc;

	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{':
	case '[':
		return scan_container(s, key, has_key);
	case '"':
		s->p++;
		return scan_string(s, &esc);
	case '-':
		return scan_number(s);
	default:
		if (*s->p >= '0' && *s->p <= '9')
			return scan_number(s);
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			size_t n = strlen(words[i]);
			if ((size_t)(s->end - s->p) >= n && memcmp(s->p, words[i], n) == 0) {
				s->p += n;
				return 0;
			}
		}
		return -1;
	}
}

int wire_utf8_ok(const char *str, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (!(k = wire_utf8_len(str + i, n - i)))
			return 0;
		i += k;
	}
	return 1;
}

int wire_scan_object(const char *data, size_t len, int max_depth, const char *key)
{
	struct scan s = {(const unsigned char *)data, (const unsigned char *)data + len, 0,
	                 max_depth};
	int has_key = 0;

	if (!data)
		return -1;
	scan_ws(&s);
	if (s.p >= s.end || *s.p != '{' || scan_container(&s, key, &has_key) < 0)
		return -1;
	scan_ws(&s);
	return s.p == s.end ? has_key : -1;
}

json_t *wire_ok(json_t *result)
{
	return json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
}

json_t *wire_error(int code, const char *msg)
{
	return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", err_name(code), "message",
	                 msg ? msg : "");
}

char *wire_dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

const char *wire_arg_type_name(enum outpost_arg_type t)
{
	switch (t) {
	case OUTPOST_ARG_STRING:
		return "string";
	case OUTPOST_ARG_INT:
		return "integer";
	case OUTPOST_ARG_BOOL:
		return "boolean";
	case OUTPOST_ARG_ARRAY:
		return "array";
	case OUTPOST_ARG_OBJECT:
		return "object";
	case OUTPOST_ARG_NUMBER:
		return "number";
	}
	return "any";
}

static int wire_type_ok(enum outpost_arg_type t, const json_t *v)
{
	switch (t) {
	case OUTPOST_ARG_STRING:
		return json_is_string(v);
	case OUTPOST_ARG_INT:
		return json_is_integer(v);
	case OUTPOST_ARG_BOOL:
		return json_is_boolean(v);
	case OUTPOST_ARG_ARRAY:
		return json_is_array(v);
	case OUTPOST_ARG_OBJECT:
		return json_is_object(v);
	case OUTPOST_ARG_NUMBER:
		return json_is_number(v);
	}
	return 0;
}

int wire_check_named(const struct outpost_arg *spec, const json_t *obj, const char *what, char *msg,
                     size_t msglen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		snprintf(msg, msglen, "expected a JSON object of %ss", what);
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct outpost_arg *a = spec;
		while (a && a->name && strcmp(a->name, key) != 0)
			a++;
		if (!a || !a->name) {
			snprintf(msg, msglen, "unknown %s '%.64s'", what, key);
			return OUTPOST_E_BAD_ARGS;
		}
		if (!json_is_null(v) && a->type != WIRE_ARG_ANY && !wire_type_ok(a->type, v)) {
			snprintf(msg, msglen, "%s '%s' must be %s", what, a->name,
			         wire_arg_type_name(a->type));
			return OUTPOST_E_BAD_ARGS;
		}
	}
	for (const struct outpost_arg *a = spec; a && a->name; a++) {
		v = json_object_get(obj, a->name);
		if (a->required && (!v || json_is_null(v))) {
			snprintf(msg, msglen, "missing required %s '%s' (%s)", what, a->name,
			         wire_arg_type_name(a->type));
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

int wire_check_args(const struct outpost_arg *spec, const json_t *args, char *msg, size_t msglen)
{
	return wire_check_named(spec, args, "argument", msg, msglen);
}

static int wire_chars_ok(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr(extra, c))))
			return 0;
	}
	return 1;
}

int wire_name_ok(const char *s)
{
	return s && wire_name_okn(s, strlen(s));
}

int wire_name_okn(const char *s, size_t n)
{
	if (!s || n == 0 || n > WIRE_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

int wire_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	return n >= 1 && n <= 128 && wire_chars_ok(id, n, "._:-");
}

int wire_host_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	return n >= 1 && n <= 64 && id[0] != '.' && id[0] != '-' && !strstr(id, "..") &&
	       wire_chars_ok(id, n, "._-");
}

const struct wire_unit wire_units_duration[] = {
    {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {0, 0}};
const struct wire_unit wire_units_bytes[] = {
    {'K', 1LL << 10}, {'M', 1LL << 20}, {'G', 1LL << 30}, {'T', 1LL << 40}, {0, 0}};

int64_t wire_scaled(const json_t *v, const struct wire_unit *units, int64_t limit)
{
	const char *s;
	char *end;
	long long n;
	int64_t factor = 1;

	if (json_is_integer(v))
		return json_integer_value(v) >= 0 && json_integer_value(v) <= limit
		           ? json_integer_value(v)
		           : -1;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || n < 0)
		return -1;
	if (*end) {
		const struct wire_unit *u = units;
		while (u->suffix && u->suffix != *end)
			u++;
		if (!u->suffix || end[1])
			return -1;
		factor = u->factor;
	}
	if (n > limit / factor)
		return -1;
	return n * factor;
}
