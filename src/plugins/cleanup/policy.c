/* Cleanup policies checked into structs: see policy.h. Every message starts with the key path
 * of what is wrong, so an operator finds it in a long config or a pushed policy at once. */
#include "policy.h"
#include "core/wire.h"

#include <outpost/plugin.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pctx {
	char *msg;
	size_t msglen;
	char at[256]; /* key path of the object being read: "policies[0].paths[1]" */
};

__attribute__((format(printf, 3, 4))) static int perr(struct pctx *c, const char *key,
                                                      const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->msg, c->msglen, "%s%s%s: ", c->at, key ? "." : "", key ? key : "");
	if (n < 0 || (size_t)n >= c->msglen)
		return OUTPOST_E_BAD_ARGS;
	va_start(ap, fmt);
	vsnprintf(c->msg + n, c->msglen - (size_t)n, fmt, ap);
	va_end(ap);
	return OUTPOST_E_BAD_ARGS;
}

/* Durations stay in range as milliseconds too. */
int64_t cl_duration(const json_t *v)
{
	return wire_scaled(v, wire_units_duration, INT64_MAX / 1000);
}

int64_t cl_bytes(const json_t *v)
{
	return wire_scaled(v, wire_units_bytes, INT64_MAX);
}

int cl_path_ok(const char *s)
{
	size_t n = strlen(s), i = 0;

	if (n == 0 || n >= PATH_MAX || s[0] != '/')
		return 0;
	if (n == 1)
		return 1;
	if (s[n - 1] == '/')
		return 0;
	while (i < n) {
		size_t j = ++i;
		while (j < n && s[j] != '/')
			j++;
		if (j == i || j - i > NAME_MAX)
			return 0;
		if ((j - i == 1 && s[i] == '.') || (j - i == 2 && s[i] == '.' && s[i + 1] == '.'))
			return 0;
		i = j;
	}
	return 1;
}

/* Refuses keys the section does not know: a typo ("max_ag") must not silently do nothing. */
static int check_keys(struct pctx *c, const json_t *obj, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (!known[i]) {
			char l[256] = "";
			size_t n = 0;
			for (i = 0; known[i] && n < sizeof(l); i++)
				n += (size_t)snprintf(l + n, sizeof(l) - n, "%s%s", i ? ", " : "",
				                      known[i]);
			return perr(c, NULL, "unknown key '%.64s' (known: %s)", key, l);
		}
	}
	return 0;
}

static int get_string(struct pctx *c, const json_t *obj, const char *key, int required, char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v) {
		if (required)
			return perr(c, key, "required");
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return perr(c, key, "must be a non-empty string");
	if (json_string_length(v) > 4096)
		return perr(c, key, "over 4096 bytes");
	*out = strdup(json_string_value(v));
	return *out ? 0 : OUTPOST_E_INTERNAL;
}

static int get_bool(struct pctx *c, const json_t *obj, const char *key, int dflt, int *out)
{
	json_t *v = json_object_get(obj, key);

	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return perr(c, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

static int get_path(struct pctx *c, const json_t *obj, const char *key, char **out)
{
	int rc = get_string(c, obj, key, 1, out);

	if (rc < 0)
		return rc;
	if (!cl_path_ok(*out))
		return perr(c, key,
		            "'%.128s' must be an absolute path without '.', '..', empty components "
		            "or a trailing '/'",
		            *out);
	return 0;
}

static int parse_rule(struct pctx *c, const json_t *o, struct cl_rule *r)
{
	static const char *const known[] = {"dir",  "match",          "recurse",        "max_age",
	                                    "keep", "max_total_size", "compress_after", NULL};
	json_t *v;
	int rc;

	r->keep = -1;
	r->max_total_bytes = -1;
	if (!json_is_object(o))
		return perr(c, NULL, "must be an object {\"dir\": ..., rules}");
	if ((rc = check_keys(c, o, known)) < 0 || (rc = get_path(c, o, "dir", &r->dir)) < 0 ||
	    (rc = get_string(c, o, "match", 0, &r->match)) < 0 ||
	    (rc = get_bool(c, o, "recurse", 0, &r->recurse)) < 0)
		return rc;
	if (strcmp(r->dir, "/") == 0)
		return perr(c, "dir", "'/' is refused: name the directory to clean");
	if (!r->match && !(r->match = strdup("*")))
		return OUTPOST_E_INTERNAL;
	if (strchr(r->match, '/'))
		return perr(c, "match", "'%.128s' matches names, not paths: no '/'", r->match);
	if ((v = json_object_get(o, "max_age")) && ((r->max_age_s = cl_duration(v)) <= 0))
		return perr(c, "max_age",
		            "must be a positive duration: seconds, or a number with s, m, h or d "
		            "(\"14d\")");
	if ((v = json_object_get(o, "keep"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000)
			return perr(c, "keep", "must be an integer from 0 to 1000000");
		r->keep = json_integer_value(v);
	}
	if ((v = json_object_get(o, "max_total_size")) && (r->max_total_bytes = cl_bytes(v)) < 0)
		return perr(c, "max_total_size",
		            "must be bytes: an integer, or a number with K, M, G or T (\"500M\")");
	if ((v = json_object_get(o, "compress_after")) &&
	    ((r->compress_after_s = cl_duration(v)) <= 0))
		return perr(c, "compress_after",
		            "must be a positive duration: seconds, or a number with s, m, h or d");
	if (!r->max_age_s && r->keep < 0 && r->max_total_bytes < 0 && !r->compress_after_s)
		return perr(c, NULL,
		            "has no rule: give max_age, keep, max_total_size or compress_after");
	return 0;
}

static int sysctl_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > 255 || k[0] == '.' || k[n - 1] == '.' || strstr(k, ".."))
		return 0;
	for (const char *p = k; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

static int parse_sysctl(struct pctx *c, const char *key, const json_t *v, struct cl_sysctl *s)
{
	static const char *const known[] = {"value", "enforce", NULL};
	const json_t *val = v;
	size_t at = strlen(c->at);
	int rc;

	if (!sysctl_key_ok(key))
		return perr(c, NULL,
		            "'%.64s' is not a sysctl name (a.b.c of letters, digits, _ and -)",
		            key);
	if (at + 1 + strlen(key) >= sizeof(c->at))
		return perr(c, NULL, "the name '%.64s' is too long", key);
	c->at[at] = '.';
	memcpy(c->at + at + 1, key, strlen(key) + 1);
	if (json_is_object(v)) {
		if ((rc = check_keys(c, v, known)) < 0 ||
		    (rc = get_bool(c, v, "enforce", 0, &s->enforce)) < 0)
			return rc;
		val = json_object_get(v, "value");
		if (!val)
			return perr(c, "value", "required");
	}
	if (json_is_integer(val)) {
		char num[32];
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(val));
		s->value = strdup(num);
	} else if (json_is_string(val) && json_string_length(val) > 0 &&
	           json_string_length(val) <= 1024 &&
	           strlen(json_string_value(val)) == json_string_length(val) &&
	           !strchr(json_string_value(val), '\n')) {
		s->value = strdup(json_string_value(val));
	} else {
		return perr(c, json_is_object(v) ? "value" : NULL,
		            "must be an integer, a one-line string, or {\"value\": ..., "
		            "\"enforce\": true}");
	}
	if (!(s->key = strdup(key)) || !s->value)
		return OUTPOST_E_INTERNAL;
	c->at[at] = '\0';
	return 0;
}

static int parse_id(struct pctx *c, const json_t *o, const char *key, int group, unsigned *out)
{
	json_t *v = json_object_get(o, key);
	char buf[4096];
	const char *s;
	char *end;

	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < UINT_MAX) {
		*out = (unsigned)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v) || !json_string_length(v))
		return perr(c, key, "must be a name or a numeric id");
	s = json_string_value(v);
	errno = 0;
	*out = (unsigned)strtoul(s, &end, 10);
	if (isdigit((unsigned char)s[0]) && !*end && !errno)
		return 0;
	if (group) {
		struct group gr, *res = NULL;
		if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) == 0 && res) {
			*out = (unsigned)res->gr_gid;
			return 0;
		}
		return perr(c, key, "no group '%.64s' on this host", s);
	}
	struct passwd pw, *res = NULL;
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) == 0 && res) {
		*out = (unsigned)res->pw_uid;
		return 0;
	}
	return perr(c, key, "no user '%.64s' on this host", s);
}

static int parse_required(struct pctx *c, const json_t *o, struct cl_required *q)
{
	static const char *const known[] = {"path",  "type",    "mode", "owner",
	                                    "group", "enforce", NULL};
	json_t *v;
	char *type = NULL;
	int rc;

	if (!json_is_object(o))
		return perr(c, NULL, "must be an object {\"path\": ..., \"type\": \"dir\"}");
	if ((rc = check_keys(c, o, known)) < 0 || (rc = get_path(c, o, "path", &q->path)) < 0 ||
	    (rc = get_bool(c, o, "enforce", 0, &q->enforce)) < 0 ||
	    (rc = get_string(c, o, "type", 0, &type)) < 0)
		goto out;
	if (!type || strcmp(type, "file") == 0)
		q->dir = 0;
	else if (strcmp(type, "dir") == 0)
		q->dir = 1;
	else {
		rc = perr(c, "type", "must be \"file\" or \"dir\" (it is '%.32s')", type);
		goto out;
	}
	if ((v = json_object_get(o, "mode"))) {
		const char *s = json_string_value(v);
		char *end;
		unsigned long m = s ? strtoul(s, &end, 8) : 0;
		if (!s || !*s || *end || m > 07777 || strlen(s) > 5) {
			rc = perr(c, "mode", "must be an octal string (\"0750\")");
			goto out;
		}
		q->has_mode = 1;
		q->mode = (mode_t)m;
	}
	if (json_object_get(o, "owner")) {
		unsigned id;
		if ((rc = parse_id(c, o, "owner", 0, &id)) < 0)
			goto out;
		q->has_owner = 1;
		q->uid = (uid_t)id;
	}
	if (json_object_get(o, "group")) {
		unsigned id;
		if ((rc = parse_id(c, o, "group", 1, &id)) < 0)
			goto out;
		q->has_group = 1;
		q->gid = (gid_t)id;
	}
out:
	free(type);
	return rc;
}

static int package_name_ok(const char *s)
{
	size_t n = strlen(s);

	/* Debian policy 5.6.1: lower case letters, digits, + - . ; at least two, alnum first. */
	if (n < 2 || n > 128 || !isalnum((unsigned char)s[0]))
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '+' ||
		      *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Sets c->at to where[i].section[j] for the duration of one item. */
static void at_item(struct pctx *c, const char *where, size_t i, const char *section, size_t j)
{
	snprintf(c->at, sizeof(c->at), "%s[%zu].%s[%zu]", where, i, section, j);
}

static int section_array(struct pctx *c, const json_t *p, const char *key, json_t **out)
{
	json_t *v = json_object_get(p, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return perr(c, key, "must be an array");
	if (json_array_size(v) > CL_ITEMS_MAX)
		return perr(c, key, "has %zu entries, over %d", json_array_size(v), CL_ITEMS_MAX);
	*out = v;
	return 0;
}

static int parse_policy(struct pctx *c, const char *where, size_t i, const json_t *p,
                        struct cl_policy *pol)
{
	static const char *const known[] = {"name",     "paths",    "sysctl",
	                                    "required", "packages", NULL};
	json_t *paths, *req, *pkgs, *sys, *v;
	const char *key;
	size_t j;
	int rc;

	snprintf(c->at, sizeof(c->at), "%s[%zu]", where, i);
	if (!json_is_object(p))
		return perr(c, NULL, "must be an object {\"name\": ..., \"paths\": [...], ...}");
	if ((rc = check_keys(c, p, known)) < 0 ||
	    (rc = get_string(c, p, "name", 1, &pol->name)) < 0)
		return rc;
	if (strlen(pol->name) > 64)
		return perr(c, "name", "over 64 bytes");
	if ((rc = section_array(c, p, "paths", &paths)) < 0 ||
	    (rc = section_array(c, p, "required", &req)) < 0 ||
	    (rc = section_array(c, p, "packages", &pkgs)) < 0)
		return rc;
	sys = json_object_get(p, "sysctl");
	if (sys && (!json_is_object(sys) || json_object_size(sys) > CL_ITEMS_MAX))
		return perr(c, "sysctl", "must be an object of at most %d \"name\": value entries",
		            CL_ITEMS_MAX);
	pol->rules = calloc(json_array_size(paths) + 1, sizeof(*pol->rules));
	pol->required = calloc(json_array_size(req) + 1, sizeof(*pol->required));
	pol->packages = calloc(json_array_size(pkgs) + 1, sizeof(*pol->packages));
	pol->sysctls = calloc(json_object_size(sys) + 1, sizeof(*pol->sysctls));
	if (!pol->rules || !pol->required || !pol->packages || !pol->sysctls)
		return OUTPOST_E_INTERNAL;
	json_array_foreach(paths, j, v)
	{
		at_item(c, where, i, "paths", j);
		rc = parse_rule(c, v, &pol->rules[j]);
		pol->nrules = j + 1; /* freed whatever was filled */
		if (rc < 0)
			return rc;
	}
	json_array_foreach(req, j, v)
	{
		at_item(c, where, i, "required", j);
		rc = parse_required(c, v, &pol->required[j]);
		pol->nrequired = j + 1;
		if (rc < 0)
			return rc;
	}
	json_array_foreach(pkgs, j, v)
	{
		at_item(c, where, i, "packages", j);
		if (!json_is_string(v) || !package_name_ok(json_string_value(v)))
			return perr(
			    c, NULL,
			    "must be a Debian package name (lower case letters, digits, + - .)");
		if (!(pol->packages[j] = strdup(json_string_value(v))))
			return OUTPOST_E_INTERNAL;
		pol->npackages = j + 1;
	}
	snprintf(c->at, sizeof(c->at), "%s[%zu].sysctl", where, i);
	json_object_foreach(sys, key, v)
	{
		rc = parse_sysctl(c, key, v, &pol->sysctls[pol->nsysctls]);
		pol->nsysctls++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int cl_policy_parse(const json_t *policies, const char *where, struct cl_set *out, char *msg,
                    size_t msglen)
{
	struct pctx c = {.msg = msg, .msglen = msglen};
	size_t i;
	json_t *p;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(c.at, sizeof(c.at), "%s", where);
	if (!json_is_array(policies))
		return perr(&c, NULL, "must be an array of policies");
	if (json_array_size(policies) > CL_POLICIES_MAX)
		return perr(&c, NULL, "has %zu policies, over %d", json_array_size(policies),
		            CL_POLICIES_MAX);
	out->v = calloc(json_array_size(policies) + 1, sizeof(*out->v));
	if (!out->v)
		return OUTPOST_E_INTERNAL;
	json_array_foreach(policies, i, p)
	{
		out->n = i + 1;
		if ((rc = parse_policy(&c, where, i, p, &out->v[i])) < 0)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (strcmp(out->v[k].name, out->v[i].name) == 0) {
				snprintf(c.at, sizeof(c.at), "%s[%zu]", where, i);
				return perr(&c, "name", "'%s' is also the name of %s[%zu]",
				            out->v[i].name, where, k);
			}
	}
	return 0;
}

void cl_set_free(struct cl_set *s)
{
	if (!s || !s->v)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct cl_policy *p = &s->v[i];
		for (size_t j = 0; j < p->nrules; j++) {
			free(p->rules[j].dir);
			free(p->rules[j].match);
		}
		for (size_t j = 0; j < p->nsysctls; j++) {
			free(p->sysctls[j].key);
			free(p->sysctls[j].value);
		}
		for (size_t j = 0; j < p->nrequired; j++)
			free(p->required[j].path);
		for (size_t j = 0; j < p->npackages; j++)
			free(p->packages[j]);
		free(p->rules);
		free(p->sysctls);
		free(p->required);
		free(p->packages);
		free(p->name);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
