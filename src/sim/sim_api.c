/* outpost-sim's control API (docs/sim.md): HTTP on a loopback address, every route one row,
 * answers in the one envelope. Whoever reads <state_dir>/control.token (0600, the sim's user)
 * may act; /v1/health is open to whoever reaches the port. Browsers are refused. */
#include "sim.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/sec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SIM_ROLE_OPEN 0
#define SIM_ROLE_CONTROL 1
#define SIM_BODY_LIMIT (4u << 20)
#define SIM_TOKEN_FILE "control.token"

enum sim_action { SIM_KILL, SIM_PAUSE, SIM_START };
static const char *const sim_action_names[] = {"kill", "pause", "start"};

static void api_health(void *ctx, struct httpd_req *req)
{
	struct sim *s = ctx;
	json_int_t by_state[4] = {0};

	for (unsigned i = 0; i < s->n; i++)
		by_state[s->v[i].state]++;
	httpd_respond_ok(
	    req, json_pack("{s:I, s:{s:I, s:I, s:I, s:I}}", "agents", (json_int_t)s->n, "states",
	                   "off", by_state[VAGENT_OFF], "starting", by_state[VAGENT_STARTING],
	                   "running", by_state[VAGENT_RUNNING], "paused", by_state[VAGENT_PAUSED]));
}

static void api_status(void *ctx, struct httpd_req *req)
{
	httpd_respond_ok(req, sim_status(ctx));
}

static void api_agents(void *ctx, struct httpd_req *req)
{
	static const char *const known[] = {"state", NULL};
	struct sim *s = ctx;
	const char *want = httpd_req_query(req, "state"), *unknown;
	json_t *arr = json_array();

	unknown = httpd_req_query_unknown(req, known);
	if (unknown) {
		json_decref(arr);
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "unknown parameter '%.40s' (state=)",
		                    unknown);
		return;
	}
	if (want && strcmp(want, "off") != 0 && strcmp(want, "starting") != 0 &&
	    strcmp(want, "running") != 0 && strcmp(want, "paused") != 0) {
		json_decref(arr);
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "state must be off, starting, running or paused");
		return;
	}
	for (unsigned i = 0; i < s->n && arr; i++)
		if (!want || strcmp(want, vagent_state_name(s->v[i].state)) == 0)
			json_array_append_new(arr, vagent_status(&s->v[i]));
	if (!arr) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	httpd_respond_ok(req, arr);
}

/* The agent of a host id, or NULL. */
static struct vagent *api_find(struct sim *s, const char *id)
{
	size_t plen = strlen(s->conf->host_prefix);
	char *end;
	unsigned long n;

	if (strncmp(id, s->conf->host_prefix, plen) != 0 || !id[plen] || id[plen] == '-' ||
	    id[plen] == '+')
		return NULL;
	errno = 0;
	n = strtoul(id + plen, &end, 10);
	if (errno || *end || n < 1 || n > s->n || strcmp(s->v[n - 1].host_id, id) != 0)
		return NULL;
	return &s->v[n - 1];
}

/* Which agents a body names: {"hosts": [ids]}, or {"count": N} or {"percent": P} of the
 * fleet, from "offset" (default 0) in host order. The same body names the same agents, so
 * repeating a call changes nothing more. 0 with first/count or the hosts array; or negative
 * after answering. */
static int api_select(struct sim *s, struct httpd_req *req, const json_t *body, json_t **hosts,
                      unsigned *first, unsigned *count)
{
	const json_t *h = json_object_get(body, "hosts"), *c = json_object_get(body, "count"),
	             *p = json_object_get(body, "percent"), *o = json_object_get(body, "offset");
	const char *key;
	json_t *v;
	size_t i;
	double k;

	*hosts = NULL;
	json_object_foreach((json_t *)body, key, v)
	{
		if (strcmp(key, "hosts") != 0 && strcmp(key, "count") != 0 &&
		    strcmp(key, "percent") != 0 && strcmp(key, "offset") != 0) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "unknown field '%.40s': give hosts, count or percent "
			                    "(and offset)",
			                    key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if (!!h + !!c + !!p != 1) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "give exactly one of hosts (an array of host ids), count (an "
		                    "integer) or percent (a number of 0 to 100)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (h) {
		if (!json_is_array(h) || json_array_size(h) == 0 || json_array_size(h) > s->n ||
		    o) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "hosts must be an array of 1 to %u host ids, without "
			                    "offset",
			                    s->n);
			return OUTPOST_E_BAD_ARGS;
		}
		json_array_foreach(h, i, v)
		{
			if (!json_is_string(v) || !api_find(s, json_string_value(v))) {
				httpd_respond_error(
				    req, OUTPOST_E_NOT_FOUND,
				    "hosts[%zu]: no virtual agent %.80s (ids are "
				    "%s00001 to %s%05u)",
				    i, json_is_string(v) ? json_string_value(v) : "?",
				    s->conf->host_prefix, s->conf->host_prefix, s->n);
				return OUTPOST_E_NOT_FOUND;
			}
		}
		*hosts = (json_t *)h;
		return 0;
	}
	if (o && (!json_is_integer(o) || json_integer_value(o) < 0 ||
	          json_integer_value(o) >= (json_int_t)s->n)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "offset must be an integer of 0 to %u",
		                    s->n - 1);
		return OUTPOST_E_BAD_ARGS;
	}
	*first = o ? (unsigned)json_integer_value(o) : 0;
	if (c) {
		if (!json_is_integer(c) || json_integer_value(c) < 1 ||
		    json_integer_value(c) > (json_int_t)s->n) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "count must be an integer of 1 to %u", s->n);
			return OUTPOST_E_BAD_ARGS;
		}
		k = (double)json_integer_value(c);
	} else {
		if (!json_is_number(p) || !(json_number_value(p) > 0) ||
		    json_number_value(p) > 100) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "percent must be a number above 0 and at most 100");
			return OUTPOST_E_BAD_ARGS;
		}
		k = ceil(json_number_value(p) * s->n / 100.0);
	}
	*count = (unsigned)k;
	if (*count > s->n - *first)
		*count = s->n - *first;
	return 0;
}

static int api_apply(struct vagent *v, enum sim_action a)
{
	switch (a) {
	case SIM_KILL:
		return vagent_kill(v);
	case SIM_PAUSE:
		return vagent_pause(v);
	case SIM_START:
		return vagent_start(v, v->state == VAGENT_OFF
		                           ? (int64_t)(((unsigned)v->index * 2654435761u) % 1000u)
		                           : 0);
	}
	return 0;
}

/* A group's links stopped first, all of them, then freed one by one: a ZooKeeper link closes
 * its session on a thread of its own, so the group's sessions close side by side rather than
 * one round trip after another on the loop (each free waits for its own close). */
static void api_cut_links(struct sim *s, const json_t *hosts, unsigned first, unsigned count)
{
	const json_t *v;
	size_t i;

	if (hosts) {
		json_array_foreach(hosts, i, v)
		{
			sim_cut_link(api_find(s, json_string_value(v)));
		}
		return;
	}
	for (unsigned k = first; k < first + count; k++)
		sim_cut_link(&s->v[k]);
}

static void api_act(struct sim *s, struct httpd_req *req, enum sim_action a)
{
	json_t *body = NULL, *hosts, *changed = json_array(), *v;
	unsigned first = 0, count = 0, same = 0;
	size_t i;

	if (httpd_req_json(req, &body) < 0) {
		json_decref(changed);
		return;
	}
	if (!json_is_object(body)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "the body must be a JSON object");
		goto out;
	}
	if (api_select(s, req, body, &hosts, &first, &count) < 0)
		goto out;
	if (a == SIM_KILL)
		api_cut_links(s, hosts, first, count);
	if (hosts) {
		json_array_foreach(hosts, i, v)
		{
			struct vagent *va = api_find(s, json_string_value(v));
			if (api_apply(va, a) > 0)
				json_array_append_new(changed, json_string(va->host_id));
			else
				same++;
		}
	} else {
		for (unsigned k = first; k < first + count; k++) {
			if (api_apply(&s->v[k], a) > 0)
				json_array_append_new(changed, json_string(s->v[k].host_id));
			else
				same++;
		}
	}
	httpd_respond_ok(req, json_pack("{s:s, s:O, s:I}", "action", sim_action_names[a], "changed",
	                                changed, "unchanged", (json_int_t)same));
out:
	json_decref(changed);
	json_decref(body);
}

static void api_kill(void *ctx, struct httpd_req *req)
{
	api_act(ctx, req, SIM_KILL);
}

static void api_pause(void *ctx, struct httpd_req *req)
{
	api_act(ctx, req, SIM_PAUSE);
}

static void api_start(void *ctx, struct httpd_req *req)
{
	api_act(ctx, req, SIM_START);
}

/* {"sampling": bool}: the metrics timer samples or not; what is spooled still ships, so a test
 * can wait for the fleet's spools to drain and compare with the hub. */
static void api_metrics(void *ctx, struct httpd_req *req)
{
	struct sim *s = ctx;
	json_t *body = NULL, *v;

	if (httpd_req_json(req, &body) < 0)
		return;
	v = json_object_get(body, "sampling");
	if (!json_is_object(body) || json_object_size(body) != 1 || !json_is_boolean(v)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "the body is {\"sampling\": true} or {\"sampling\": false}");
		json_decref(body);
		return;
	}
	s->sampling = json_is_true(v);
	json_decref(body);
	httpd_respond_ok(req, json_pack("{s:b}", "sampling", s->sampling));
}

static const struct httpd_route sim_routes[] = {
    {"GET", "/v1/health", api_health, SIM_ROLE_OPEN, 0},
    {"GET", "/v1/status", api_status, SIM_ROLE_CONTROL, 0},
    {"GET", "/v1/agents", api_agents, SIM_ROLE_CONTROL, 0},
    {"POST", "/v1/agents/kill", api_kill, SIM_ROLE_CONTROL, SIM_BODY_LIMIT},
    {"POST", "/v1/agents/pause", api_pause, SIM_ROLE_CONTROL, SIM_BODY_LIMIT},
    {"POST", "/v1/agents/start", api_start, SIM_ROLE_CONTROL, SIM_BODY_LIMIT},
    {"POST", "/v1/metrics", api_metrics, SIM_ROLE_CONTROL, 1024},
};

static int api_auth(void *ctx, struct httpd_req *req, int role)
{
	struct sim *s = ctx;
	const char *h = httpd_req_header(req, "Authorization");

	/* A page in a browser on this host must not drive the sim (DNS rebinding, CSRF). */
	if (httpd_req_header(req, "Origin") || httpd_req_header(req, "Sec-Fetch-Mode")) {
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
		                    "browsers may not call the control API");
		return OUTPOST_E_FORBIDDEN;
	}
	if (role == SIM_ROLE_OPEN)
		return 0;
	if (h && strncasecmp(h, "Bearer ", 7) == 0 && sec_streq(h + 7, s->api_token))
		return 0;
	httpd_respond_error(req, OUTPOST_E_UNAUTHORIZED,
	                    "the control API needs 'Authorization: Bearer <token>' with the token "
	                    "in %s/" SIM_TOKEN_FILE,
	                    s->conf->state_dir);
	return OUTPOST_E_UNAUTHORIZED;
}

int sim_api_start(struct sim *s, const char *listen, char *msg, size_t msglen)
{
	struct httpd_config hc = {0};
	char path[4200], line[128];
	int rc;

	/* A new token at every start, readable by the sim's user only. */
	s->api_token = sec_token("sim_");
	if (!s->api_token)
		return OUTPOST_E_INTERNAL;
	snprintf(path, sizeof(path), "%s/" SIM_TOKEN_FILE, s->conf->state_dir);
	snprintf(line, sizeof(line), "%s\n", s->api_token);
	unlink(path);
	rc = sec_write_secret(path, line, strlen(line), msg, msglen);
	if (rc < 0)
		return rc;
	hc.listen = listen;
	hc.routes = sim_routes;
	hc.nroutes = sizeof(sim_routes) / sizeof(sim_routes[0]);
	hc.ctx = s;
	hc.auth_headers = api_auth;
	hc.conn_limit = 64;
	hc.log = s->log;
	return httpd_start(s->loop, &hc, &s->api, msg, msglen);
}

void sim_api_stop(struct sim *s)
{
	httpd_stop(s->api);
	s->api = NULL;
	if (s->api_token) {
		explicit_bzero(s->api_token, strlen(s->api_token));
		free(s->api_token);
		s->api_token = NULL;
	}
}
