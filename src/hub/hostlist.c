/* GET /api/v1/hosts: the hosts a selector picks, whole (the CLI's `hosts ls`), or a page of
 * them sorted, with the counts a fleet overview shows (the web console's host list, fast at
 * 10,000 hosts: the selection is made here, the browser gets one page). */
#include "registry.h"
#include "hub_impl.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOSTLIST_PAGE_MAX 1000
#define HOSTLIST_LABEL_PAIRS_MAX 200 /* "labels" counts in a page: distinct key=value pairs */

/* The fields a list sorts on: strings compared bytewise, the times as numbers. */
static const char *const sort_keys[] = {"id",           "hostname",      "state", "version",
                                        "last_seen_ms", "first_seen_ms", NULL};

struct sort_by {
	const char *key;
	int desc;
};

/* A host with its sort key read once (a sort of 10,000 compares ~140,000 times). */
struct sort_row {
	json_t *host;
	const char *id, *s; /* s: a string key ("" when absent), or NULL for a time (n) */
	json_int_t n;
};

static int host_cmp(const void *a, const void *b, void *arg)
{
	const struct sort_row *x = a, *y = b;
	const struct sort_by *by = arg;
	int c = x->s ? strcmp(x->s, y->s) : (x->n < y->n ? -1 : x->n > y->n);

	if (c == 0) /* ties in id order, whatever the direction: pages never overlap */
		return strcmp(x->id, y->id);
	return by->desc ? -c : c;
}

/* limit, offset: absent or a whole number in range; else -1 after answering. */
static long query_num(struct httpd_req *req, const char *name, long def, long min, long max)
{
	const char *s = httpd_req_query(req, name);
	char *end;
	long n;

	if (!s)
		return def;
	n = strtol(s, &end, 10);
	if (!*s || *end || n < min || n > max) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "%s: a whole number, %ld to %ld", name,
		                    min, max);
		return -1;
	}
	return n;
}

static void count(json_t *counts, const char *key)
{
	json_t *n = json_object_get(counts, key);
	json_object_set_new(counts, key, json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* The page's counts over every host the selector matched: by state, by agent version, by
 * label (key=value, the first HOSTLIST_LABEL_PAIRS_MAX distinct pairs). */
static json_t *page_counts(json_t *hosts)
{
	json_t *states = json_object(), *versions = json_object(), *labels = json_object(), *host;
	int truncated = 0;
	size_t i;

	json_array_foreach(hosts, i, host)
	{
		const char *k, *v = json_string_value(json_object_get(host, "version"));
		json_t *lv;
		char pair[512];

		count(states, json_string_value(json_object_get(host, "state")));
		count(versions, v ? v : "");
		json_object_foreach(json_object_get(host, "labels"), k, lv)
		{
			snprintf(pair, sizeof(pair), "%s=%s", k, json_string_value(lv));
			if (!json_object_get(labels, pair) &&
			    json_object_size(labels) >= HOSTLIST_LABEL_PAIRS_MAX) {
				truncated = 1;
				continue;
			}
			count(labels, pair);
		}
	}
	return json_pack("{s:o, s:o, s:o, s:b}", "states", states, "versions", versions, "labels",
	                 labels, "labels_truncated", truncated);
}

static json_t *host_row(json_t *host)
{
	json_t *row = json_copy(host); /* the host without its attrs, which are selectors' */
	json_object_del(row, "attrs");
	return row;
}

/* GET /hosts?target=SEL&sort=[-]KEY&limit=N&offset=N: the hosts registry_match picks, in any
 * state, so what `hosts ls -t X` lists is what `run -t X` reaches (pending, rejected and
 * revoked hosts aside). Without limit: all of them, an array. With limit: one page, an
 * object {total, offset, limit, sort, hosts, states, versions, labels, labels_truncated},
 * read from the registry snapshot dashboards share (refreshed on every host change). */
void registry_hosts_list(void *ctx, struct httpd_req *req)
{
	static const char *const known[] = {"target", "sort", "limit", "offset", NULL};
	struct hub *h = ctx;
	const char *target = httpd_req_query(req, "target"), *sort = httpd_req_query(req, "sort");
	const char *unknown = httpd_req_query_unknown(req, known);
	struct sort_by by = {"id", 0};
	json_t *hosts = NULL, *out = NULL, *host;
	struct sort_row *rows = NULL;
	long limit, offset;
	char msg[256];
	size_t i, n;
	int rc, numeric;

	if (unknown) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "unknown parameter '%.64s' (target, sort, limit, offset)",
		                    unknown);
		return;
	}
	if (sort) {
		by.desc = sort[0] == '-';
		by.key = sort + by.desc;
		for (i = 0; sort_keys[i] && strcmp(sort_keys[i], by.key); i++)
			;
		if (!sort_keys[i]) {
			httpd_respond_error(
			    req, OUTPOST_E_BAD_ARGS,
			    "sort: one of id, hostname, state, version, last_seen_ms, "
			    "first_seen_ms, '-' before it for descending");
			return;
		}
	}
	if ((limit = query_num(req, "limit", 0, 1, HOSTLIST_PAGE_MAX)) < 0 ||
	    (offset = query_num(req, "offset", 0, 0, 100000000)) < 0)
		return;
	if (offset && !limit) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "offset: only with limit");
		return;
	}
	rc = registry_match(h, target, limit ? REGISTRY_ANY_CACHED : REGISTRY_ANY, &hosts, msg,
	                    sizeof(msg));
	if (rc == OUTPOST_E_BAD_ARGS) {
		httpd_respond_error(req, rc, "target: %s", msg);
		return;
	}
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "hosts");
		return;
	}
	n = json_array_size(hosts);
	if (n && !(rows = malloc(n * sizeof(*rows))))
		goto oom;
	numeric = strstr(by.key, "_ms") != NULL; /* last_seen_ms, first_seen_ms */
	json_array_foreach(hosts, i, host)
	{
		json_t *k = json_object_get(host, by.key);
		rows[i].host = host;
		rows[i].id = json_string_value(json_object_get(host, "id"));
		rows[i].s = numeric ? NULL : json_string_value(k) ? json_string_value(k) : "";
		rows[i].n = json_integer_value(k); /* a time absent sorts as 0 */
	}
	if (n && (sort || limit))
		qsort_r(rows, n, sizeof(*rows), host_cmp, &by);
	if (!limit) {
		out = json_array();
		for (i = 0; out && i < n; i++)
			json_array_append_new(out, host_row(rows[i].host));
	} else {
		json_t *page = json_array();
		for (i = (size_t)offset; page && i < n && i < (size_t)(offset + limit); i++)
			json_array_append_new(page, host_row(rows[i].host));
		out = page_counts(hosts);
		if (out && page)
			json_object_update_new(
			    out, json_pack("{s:I, s:I, s:I, s:s, s:o}", "total", (json_int_t)n,
			                   "offset", (json_int_t)offset, "limit", (json_int_t)limit,
			                   "sort", sort ? sort : "id", "hosts", page));
		else
			json_decref(page);
	}
	if (!out)
		goto oom;
	free(rows);
	json_decref(hosts);
	httpd_respond_ok(req, out);
	return;
oom:
	free(rows);
	json_decref(hosts);
	httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
}
