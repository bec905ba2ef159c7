/* What both stores decide alike outside SQL (store_rules.h): selector attributes of facts, the
 * host state machine, the shape of a token row. */
#include "store_rules.h"
#include "store.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <string.h>

static int in_set(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

/* The fact attributes selectors know, flattened from the sys plugin's facts:
 * name = facts.section.field, as text (numbers in decimal, booleans true/false). host_list adds
 * "hostname" and "agent_version" from the host row, then every label. A label never shadows
 * one of these names: host_labels refuses to set one (BAD_ARGS), and one that came some other
 * way (an enrollment token) is left out of attrs, so os=debian* always means what the host
 * itself reported. */
static const struct {
	const char *name, *section, *field;
} fact_attrs[] = {
    {"os", "os", "id"},                 /* debian */
    {"os_version", "os", "version_id"}, /* 12 */
    {"kernel", "kernel", "release"},    /* 6.1.0-18-amd64 */
    {"arch", "kernel", "machine"},      /* x86_64 */
    {"cpus", "cpu", "count"},           /* 8 */
    {"fqdn", "host", "fqdn"},           /* web-01.example.com */
};
#define FACT_NATTRS (sizeof(fact_attrs) / sizeof(fact_attrs[0]))
static const char *const row_attrs[] = {"hostname", "agent_version"};

int store_attr_reserved(const char *key)
{
	for (size_t i = 0; i < FACT_NATTRS; i++)
		if (strcmp(key, fact_attrs[i].name) == 0)
			return 1;
	return in_set(key, row_attrs, 2);
}

/* A fact as the text a selector compares, or NULL when it has none. */
static json_t *attr_value(const json_t *v)
{
	char num[32];

	if (json_is_string(v))
		return json_string(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return json_string(num);
	}
	if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		return json_string(num);
	}
	if (json_is_boolean(v))
		return json_string(json_is_true(v) ? "true" : "false");
	return NULL;
}

/* Compact text of the fact attributes of facts (see fact_attrs); caller frees. */
char *store_attrs_text(const json_t *facts)
{
	json_t *a = json_object();
	char *text;

	if (!a)
		return NULL;
	for (size_t i = 0; i < FACT_NATTRS; i++) {
		json_t *sec = json_object_get(facts, fact_attrs[i].section);
		json_t *v = attr_value(json_object_get(sec, fact_attrs[i].field));
		if (v)
			json_object_set_new(a, fact_attrs[i].name, v);
	}
	text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return text;
}

json_t *store_host_attrs(json_t *stored, const char *hostname, const char *version,
                         const json_t *labels)
{
	json_t *a = stored;
	const char *k;
	json_t *v;

	if (!json_is_object(a)) {
		json_decref(a);
		a = json_object();
	}
	if (!a)
		return NULL;
	if (hostname)
		json_object_set_new(a, "hostname", json_string(hostname));
	if (version)
		json_object_set_new(a, "agent_version", json_string(version));
	json_object_foreach((json_t *)labels, k, v)
	{
		if (!store_attr_reserved(k))
			json_object_set(a, k, v);
	}
	return a;
}

/* The event kind of a state change, or NULL when the change is not allowed. Revoked is the end:
 * only host_remove clears it (then the id may enroll again). Rejected is a pending host refused:
 * accepting it still is the way back. */
const char *store_host_transition(const char *from, const char *to)
{
	if (strcmp(from, HOST_REVOKED) == 0)
		return NULL;
	if (strcmp(to, HOST_REVOKED) == 0)
		return "revoked";
	if (strcmp(to, HOST_REJECTED) == 0)
		return strcmp(from, HOST_PENDING) == 0 ? "rejected" : NULL;
	if (strcmp(to, HOST_UP) == 0)
		return strcmp(from, HOST_PENDING) == 0 || strcmp(from, HOST_REJECTED) == 0
		           ? "accepted"
		           : "up";
	if (strcmp(to, HOST_DOWN) == 0 && strcmp(from, HOST_UP) == 0)
		return "down";
	return NULL;
}

static const char *const token_roles[] = {"viewer", "operator", "admin"};

/* sha256 in lowercase hex: anything else is not a hash, and might be a secret. */
static int hash_ok(const char *h)
{
	size_t n = h ? strlen(h) : 0;

	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	return 1;
}

int store_token_check(const json_t *tok)
{
	const char *id = json_string_value(json_object_get(tok, "id"));
	const char *hash = json_string_value(json_object_get(tok, "hash"));
	const char *kind = json_string_value(json_object_get(tok, "kind"));
	json_t *role = json_object_get(tok, "role");
	json_t *labels = json_object_get(tok, "labels");
	json_t *created = json_object_get(tok, "created_ms");
	json_t *expires = json_object_get(tok, "expires_ms");
	json_t *by = json_object_get(tok, "created_by");
	json_t *uses = json_object_get(tok, "max_uses"); /* enrollment tokens only */
	const char *k;
	json_t *v;
	int op = kind && strcmp(kind, "operator") == 0;

	if (!id || !*id || !hash_ok(hash) || !kind || (!op && strcmp(kind, "enroll") != 0) ||
	    (op ? !in_set(json_string_value(role), token_roles, 3) : role && !json_is_null(role)) ||
	    (labels && !json_is_null(labels) && !json_is_object(labels)) ||
	    !json_is_integer(created) || json_integer_value(created) < 0 ||
	    (expires && (!json_is_integer(expires) || json_integer_value(expires) < 0)) ||
	    (by && !json_is_null(by) && !json_is_string(by)) ||
	    (uses && (!json_is_integer(uses) || json_integer_value(uses) < 0 ||
	              (op && json_integer_value(uses)))))
		return OUTPOST_E_BAD_ARGS;
	json_object_foreach(json_is_object(labels) ? labels : NULL, k, v)
	{
		if (!json_is_string(v))
			return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}
