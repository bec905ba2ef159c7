/* Wire format helpers: see wire.h. */
#include "wire.h"
#include "err.h"

#include <stdio.h>
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

int wire_check_args(const struct outpost_arg *spec, const json_t *args, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(args)) {
		snprintf(msg, msglen, "args must be a JSON object");
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)args, key, v)
	{
		const struct outpost_arg *a = spec;
		while (a && a->name && strcmp(a->name, key) != 0)
			a++;
		if (!a || !a->name) {
			snprintf(msg, msglen, "unknown argument '%.64s'", key);
			return OUTPOST_E_BAD_ARGS;
		}
		if (!json_is_null(v) && !wire_type_ok(a->type, v)) {
			snprintf(msg, msglen, "argument '%s' must be %s", a->name,
			         wire_arg_type_name(a->type));
			return OUTPOST_E_BAD_ARGS;
		}
	}
	for (const struct outpost_arg *a = spec; a && a->name; a++) {
		v = json_object_get(args, a->name);
		if (a->required && (!v || json_is_null(v))) {
			snprintf(msg, msglen, "missing required argument '%s' (%s)", a->name,
			         wire_arg_type_name(a->type));
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
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
