/* Events from agents and from other systems, and their listing (events.h). The format and its
 * one check are core/event.c's, shared with the agent. */
#include "hub_impl.h"
#include "events.h"
#include "audit.h"
#include "batch.h"
#include "query.h"
#include "registry.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/event.h"
#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 1000
#define EVENTS_ID_MAX 128

/* Checks the events of one batch and gives each its dedupe key. 0, or BAD_ARGS with msg. */
static int events_keyed(json_t *evs, const char *host_id, const char *epoch, int64_t seq, char *msg,
                        size_t msglen)
{
	json_t *ev;
	size_t i;
	char key[160];

	if (!json_is_array(evs) || json_array_size(evs) == 0 ||
	    json_array_size(evs) > EVENT_BATCH_MAX) {
		snprintf(msg, msglen, "events: 1 to %d events", EVENT_BATCH_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	json_array_foreach(evs, i, ev)
	{
		char sub[200];
		if (event_check(ev, sub, sizeof(sub)) < 0) {
			snprintf(msg, msglen, "events[%zu]: %s", i, sub);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	json_array_foreach(evs, i, ev)
	{
		snprintf(key, sizeof(key), "agent/%s/%s/%lld/%zu", host_id, epoch, (long long)seq,
		         i);
		if (json_object_set_new(ev, "key", json_string(key)) < 0)
			return OUTPOST_E_INTERNAL;
	}
	return 0;
}

int events_from_agent(struct hub *h, const char *host_id, const char *body, size_t len,
                      struct batch_post *post, const uint8_t *want)
{
	/* A batch's reason must outlive this call (batch_info.bad is static text): the
	 * particulars go to the log, the agent gets the gist. */
	static const char bad_events[] = "its events are not well-formed (the hub's log says why)";
	json_t *root = NULL, *batches, *all = NULL;
	size_t i;
	int rc, stored = 0;
	char msg[256];

	/* batch_scan read these bytes already: they parse. */
	if ((rc = wire_parse(body, len, WIRE_MAX_DEPTH_DEFAULT, &root, msg, sizeof(msg))) < 0)
		return rc;
	batches = json_object_get(root, "batches");
	if (!(all = json_array())) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	for (i = 0; i < post->n; i++) {
		json_t *evs = json_object_get(json_array_get(batches, i), "events");
		if (!want[i])
			continue;
		if ((rc = events_keyed(evs, host_id, post->epoch, post->b[i].seq, msg,
		                       sizeof(msg))) < 0) {
			if (rc != OUTPOST_E_BAD_ARGS)
				goto out;
			post->b[i].bad = bad_events;
			h->st.events_rejected += json_array_size(evs);
			log_warn(h->log, "events", "host %s: batch %lld refused: %s", host_id,
			         (long long)post->b[i].seq, msg);
			continue;
		}
		if (json_array_extend(all, evs) < 0) {
			rc = OUTPOST_E_INTERNAL;
			goto out;
		}
	}
	rc = 0;
	if (json_array_size(all) == 0)
		goto out;
	if ((rc = h->store->ops->events_add(h->store, host_id, "agent", all, &stored)) < 0) {
		log_warn(h->log, "events", "host %s: storing %zu events failed (%d)", host_id,
		         json_array_size(all), rc);
		goto out;
	}
	h->st.events_agent += (unsigned long long)stored;
	h->st.events_duplicate += json_array_size(all) - (size_t)stored;
out:
	json_decref(all);
	json_decref(root);
	return rc;
}

/* ---- GET /api/v1/events ---- */

static const char *const list_params[] = {"host",  "hosts", "kind",   "since",
                                          "until", "limit", "before", NULL};

/* A time parameter: absent is 0. 0, or -1 after answering. */
static int events_time(struct httpd_req *req, const char *name, int64_t now, int64_t *out)
{
	const char *s = httpd_req_query(req, name);

	*out = 0;
	if (!s)
		return 0;
	if (query_parse_time(s, now, out) < 0 || *out <= 0) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "%s: '%.64s' is not a time: ms since 1970, 'now', or before now "
		    "such as -1h, -90m, -2d",
		    name, s);
		return -1;
	}
	return 0;
}

/* A positive integer parameter up to max; absent is def. 0, or -1 after answering. */
static int events_count(struct httpd_req *req, const char *name, int64_t def, int64_t max,
                        int64_t *out)
{
	const char *s = httpd_req_query(req, name);
	char *end;
	long long v;

	*out = def;
	if (!s)
		return 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || v < 1 || v > max) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "%s: an integer from 1 to %lld", name,
		                    (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

void events_api_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct store_events_query q = {0};
	const char *bad, *sel;
	json_t *ids = NULL, *v = NULL;
	int64_t now = clk_real_ms(), limit, before;
	char kind[EVENT_KIND_MAX + 2], msg[400];
	int rc;

	if ((bad = httpd_req_query_unknown(req, list_params))) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "unknown parameter '%.64s': this route takes host, hosts, kind, "
		    "since, until, limit, before",
		    bad);
		return;
	}
	q.host_id = httpd_req_query(req, "host");
	if (q.host_id && !hub_host_id_ok(q.host_id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "host: 1 to 64 of A-Z a-z 0-9 . _ - (a host id; hosts= takes a "
		                    "selector)");
		return;
	}
	if ((q.kind = httpd_req_query(req, "kind"))) {
		/* "security." means what "security" does: the kinds under it. */
		snprintf(kind, sizeof(kind), "%s", q.kind);
		if (strlen(q.kind) < sizeof(kind) && kind[0] && kind[strlen(kind) - 1] == '.')
			kind[strlen(kind) - 1] = '\0';
		if (strlen(q.kind) >= sizeof(kind) || !event_kind_ok(kind)) {
			httpd_respond_error(
			    req, OUTPOST_E_BAD_ARGS,
			    "kind: a kind or the start of one, in words of a-z 0-9 _ - "
			    "joined by dots (security, security.passwd_changed)");
			return;
		}
		q.kind = kind;
	}
	if (events_time(req, "since", now, &q.since_ms) < 0 ||
	    events_time(req, "until", now, &q.until_ms) < 0 ||
	    events_count(req, "limit", EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, &limit) < 0 ||
	    events_count(req, "before", 0, INT64_MAX, &before) < 0)
		return;
	q.limit = (int)limit;
	q.before_id = before;
	if ((sel = httpd_req_query(req, "hosts")) && strcmp(sel, "*") != 0) {
		rc = registry_select(h, sel, REGISTRY_ANY_CACHED, &ids, msg, sizeof(msg));
		if (rc < 0) {
			httpd_respond_error(req, rc, "hosts: %s", msg);
			return;
		}
		q.host_ids = ids;
	}
	rc = h->store->ops->events_list(h->store, &q, &v);
	json_decref(ids);
	hub_respond_store(req, rc, v, "events");
}

/* ---- POST /api/v1/events: an event from another system ---- */

static const struct outpost_arg post_fields[] = {
    {"id", OUTPOST_ARG_STRING, 1, "the caller's id of the event: a repeat stores nothing"},
    {"host", OUTPOST_ARG_STRING, 0, "the host it concerns (a known host id)"},
    {"kind", OUTPOST_ARG_STRING, 1, "words of a-z 0-9 _ - joined by dots"},
    {"severity", OUTPOST_ARG_STRING, 1, "info, notice, warning or critical"},
    {"message", OUTPOST_ARG_STRING, 1, "one line for people"},
    {"ts", OUTPOST_ARG_INT, 0, "when it happened, ms since 1970; absent: now"},
    {"data", OUTPOST_ARG_OBJECT, 0, "what happened, at most 16 KiB of JSON"},
    {NULL, 0, 0, NULL},
};

static int events_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > EVENTS_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("._:-", s[i])))
			return 0;
	return 1;
}

void events_api_post(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *ev = NULL, *evs = NULL;
	const char *id, *host;
	struct store_host_key hk;
	char msg[256], key[EVENTS_ID_MAX + 8], *source = NULL;
	int rc, stored = 0;

	if (httpd_req_fields(req, post_fields, &body) < 0) {
		h->st.events_rejected++;
		return;
	}
	id = json_string_value(json_object_get(body, "id"));
	host = json_string_value(json_object_get(body, "host"));
	if (!events_id_ok(id)) {
		h->st.events_rejected++;
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "id: 1 to %d of A-Z a-z 0-9 . _ : -",
		                    EVENTS_ID_MAX);
		goto out;
	}
	if (host && (!hub_host_id_ok(host) ||
	             h->store->ops->host_key(h->store, host, &hk) == OUTPOST_E_NOT_FOUND)) {
		h->st.events_rejected++;
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "host: no host '%.64s'", host);
		goto out;
	}
	ev = json_deep_copy(body);
	if (!ev || json_object_del(ev, "id") < 0 || (host && json_object_del(ev, "host") < 0) ||
	    (!json_object_get(ev, "ts") &&
	     json_object_set_new(ev, "ts", json_integer(clk_real_ms())) < 0)) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	if (event_check(ev, msg, sizeof(msg)) < 0) {
		h->st.events_rejected++;
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "%s", msg);
		goto out;
	}
	snprintf(key, sizeof(key), "api/%s", id);
	if (json_object_set_new(ev, "key", json_string(key)) < 0 || !(evs = json_array()) ||
	    json_array_append(evs, ev) < 0 || asprintf(&source, "api:%s", audit_caller(req)) < 0) {
		source = NULL;
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	rc = h->store->ops->events_add(h->store, host ? host : "", source, evs, &stored);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "event");
		goto out;
	}
	if (stored)
		h->st.events_api++;
	else
		h->st.events_duplicate++;
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "id", id, "duplicate", !stored));
out:
	free(source);
	json_decref(evs);
	json_decref(ev);
	json_decref(body);
}

void events_stats(const struct hub *h, struct buf *b)
{
	buf_printf(b,
	           "# HELP outpost_hub_events_total Events from agents and the API, by outcome.\n"
	           "# TYPE outpost_hub_events_total counter\n"
	           "outpost_hub_events_total{outcome=\"agent\"} %llu\n"
	           "outpost_hub_events_total{outcome=\"api\"} %llu\n"
	           "outpost_hub_events_total{outcome=\"duplicate\"} %llu\n"
	           "outpost_hub_events_total{outcome=\"rejected\"} %llu\n",
	           h->st.events_agent, h->st.events_api, h->st.events_duplicate,
	           h->st.events_rejected);
}
