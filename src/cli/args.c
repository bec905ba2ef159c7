/* Command-line values of the operator CLI: see args.h. */
#include "args.h"
#include "core/wire.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int args_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
	    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	int64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	while (*p) {
		int64_t n = 0, mul = 0;
		size_t ulen = 0;

		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			n = n * 10 + (*p++ - '0');
			if (n > ARGS_MAX_DURATION_MS)
				return -1;
		}
		while (p[ulen] && isalpha((unsigned char)p[ulen]))
			ulen++;
		if (ulen == 0) {
			/* A bare number is seconds, and only when it is the whole value. */
			if (p != s + strspn(s, "0123456789"))
				return -1;
			mul = 1000;
		}
		for (size_t i = 0; ulen && i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0)
				mul = units[i].ms;
		if (mul == 0)
			return -1;
		p += ulen;
		if (n > (ARGS_MAX_DURATION_MS - total) / mul)
			return -1;
		total += n * mul;
	}
	if (total <= 0)
		return -1;
	*ms = total;
	return 0;
}

int args_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '+')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int args_batch(const char *s, json_t **out)
{
	size_t n = s ? strlen(s) : 0;
	long long v;

	*out = NULL;
	if (n > 1 && s[n - 1] == '%') {
		char num[8];
		if (n - 1 >= sizeof(num))
			return -1;
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (args_int(num, 1, 100, &v) < 0)
			return -1;
		*out = json_sprintf("%lld%%", v);
	} else {
		if (args_int(s, 1, 1000000000, &v) < 0)
			return -1;
		*out = json_integer(v);
	}
	return *out ? 0 : -1;
}

int args_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > ARGS_ID_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* [A-Za-z_][A-Za-z0-9_.-]* of len bytes. */
static int args_key_ok(const char *s, size_t len)
{
	if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return 0;
	return 1;
}

int args_label_key_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n <= ARGS_LABEL_KEY_MAX && args_key_ok(s, n);
}

static int args_in_array(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v) if (json_is_string(v) &&
	                                strcmp(json_string_value(v), s) == 0) return 1;
	return 0;
}

int args_label_set(json_t *set, const json_t *remove, const char *arg, char *msg, size_t msglen)
{
	const char *eq = strchr(arg, '=');
	char key[ARGS_LABEL_KEY_MAX + 1];
	size_t klen;

	if (!eq) {
		snprintf(msg, msglen, "'%s' is not key=value", arg);
		return -1;
	}
	klen = (size_t)(eq - arg);
	if (klen > ARGS_LABEL_KEY_MAX || !args_key_ok(arg, klen)) {
		snprintf(msg, msglen,
		         "'%.*s' is not a label key: use letters, digits, '_', '.', '-', starting "
		         "with a letter or '_', at most %d characters",
		         (int)klen, arg, ARGS_LABEL_KEY_MAX);
		return -1;
	}
	memcpy(key, arg, klen);
	key[klen] = '\0';
	if (json_object_get(set, key) || args_in_array(remove, key)) {
		snprintf(msg, msglen, "label '%s' is given twice", key);
		return -1;
	}
	if (json_object_set_new(set, key, json_string(eq + 1)) < 0) {
		snprintf(msg, msglen, "label '%s': the value is not UTF-8 text", key);
		return -1;
	}
	return 0;
}

int args_label_list(json_t *set, const char *list, char *msg, size_t msglen)
{
	char *copy = strdup(list), *save = NULL, *item;
	int rc = 0;

	if (!copy) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	if (!*copy) {
		snprintf(msg, msglen, "empty label list: give k=v,k2=v2");
		rc = -1;
	}
	for (item = strtok_r(copy, ",", &save); rc == 0 && item; item = strtok_r(NULL, ",", &save))
		rc = args_label_set(set, NULL, item, msg, msglen);
	free(copy);
	return rc;
}

int args_call_arg(json_t *args, const char *arg, char *msg, size_t msglen)
{
	const char *eq = strchr(arg, '=');
	size_t klen;
	int is_json;
	char *key;
	json_t *v = NULL;

	if (!eq || eq == arg) {
		snprintf(msg, msglen, "'%s' is not key=value or key:=JSON", arg);
		return -1;
	}
	is_json = eq[-1] == ':';
	klen = (size_t)(eq - arg) - (is_json ? 1 : 0);
	if (!args_key_ok(arg, klen)) {
		snprintf(msg, msglen,
		         "'%.*s' is not an argument name: use letters, digits, '_', '.', '-', "
		         "starting with a letter or '_'",
		         (int)klen, arg);
		return -1;
	}
	key = strndup(arg, klen);
	if (!key) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	if (json_object_get(args, key)) {
		snprintf(msg, msglen, "argument '%s' is given twice", key);
		goto fail;
	}
	if (is_json) {
		char why[200];
		if (wire_parse(eq + 1, strlen(eq + 1), WIRE_MAX_DEPTH_DEFAULT, &v, why,
		               sizeof(why)) < 0) {
			snprintf(msg, msglen, "argument '%s': %s (use %s=TEXT for a string)", key,
			         strlen(eq + 1) ? why : "no JSON after ':='", key);
			goto fail;
		}
	} else {
		v = json_string(eq + 1);
		if (!v) {
			snprintf(msg, msglen, "argument '%s': the value is not UTF-8 text", key);
			goto fail;
		}
	}
	if (json_object_set_new(args, key, v) < 0) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	free(key);
	return 0;
fail:
	free(key);
	return -1;
}

int args_plugin_op(const char *s, char **plugin, char **op)
{
	const char *dot = strchr(s, '.');

	*plugin = *op = NULL;
	if (!dot || !wire_name_okn(s, (size_t)(dot - s)) ||
	    !wire_name_okn(dot + 1, strlen(dot + 1)))
		return -1;
	*plugin = strndup(s, (size_t)(dot - s));
	*op = strdup(dot + 1);
	if (!*plugin || !*op) {
		free(*plugin);
		free(*op);
		*plugin = *op = NULL;
		return -1;
	}
	return 0;
}

int args_env(json_t *env, const char *arg, char *msg, size_t msglen)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;
	char *name;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		if (!(isalpha((unsigned char)arg[i]) || arg[i] == '_' ||
		      (i > 0 && isdigit((unsigned char)arg[i])))) {
			n = 0;
			break;
		}
	if (n == 0) {
		snprintf(
		    msg, msglen,
		    "'%s' is not NAME=VALUE with NAME of letters, digits and '_', not starting "
		    "with a digit",
		    arg);
		return -1;
	}
	name = strndup(arg, n);
	if (!name) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	if (json_object_get(env, name))
		snprintf(msg, msglen, "'%s' is given twice", name);
	else if (json_object_set_new(env, name, json_string(eq + 1)) < 0)
		snprintf(msg, msglen, "'%s': the value is not UTF-8 text", name);
	else
		rc = 0;
	free(name);
	return rc;
}

int args_mode_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 3 || n > 4)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '7')
			return 0;
	return 1;
}

int args_role_ok(const char *s)
{
	return s &&
	       (strcmp(s, "viewer") == 0 || strcmp(s, "operator") == 0 || strcmp(s, "admin") == 0);
}
