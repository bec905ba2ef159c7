/* The hub's life cycle: state directory and lock, signing key, TLS identity, store, the admin
 * token of the first start, the HTTP server and the once-a-second tick. */
#include "hub_impl.h"
#include "ingest.h"
#include "tasks.h"
#include "flows.h"
#include "mail.h"
#include "report.h"
#include "rwrite.h"
#include "agents.h"
#include "auth_limit.h"
#include "query.h"
#include "registry.h"
#include "retention.h"
#include "rules.h"
#include "store_pg.h"
#include "tls.h"
#include "tsdb.h"
#include "zk.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/daemon.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

/* First start: an admin token in <state>/admin.token (0600), said in the log. */
static int hub_admin_token(struct hub *h, char *msg, size_t msglen)
{
	char path[4200], hash[65], *secret, *id;
	json_t *tok;
	int rc;

	snprintf(path, sizeof(path), "%s/admin.token", h->state_dir);
	if (access(path, F_OK) == 0)
		return sec_check_secret_file(path, msg, msglen);
	secret = sec_token("opo_");
	id = sec_token("");
	if (!secret || !id) {
		free(secret);
		free(id);
		return OUTPOST_E_INTERNAL;
	}
	id[12] = '\0';
	sec_sha256_hex(secret, strlen(secret), hash);
	tok = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", id, "hash", hash, "kind",
	                "operator", "role", "admin", "created_ms", (json_int_t)clk_real_ms(),
	                "expires_ms", (json_int_t)0, "created_by", "hub-first-start");
	rc = tok ? h->store->ops->token_add(h->store, tok) : OUTPOST_E_INTERNAL;
	json_decref(tok);
	if (rc == 0) {
		char line[128];
		snprintf(line, sizeof(line), "%s\n", secret);
		rc = sec_write_secret(path, line, strlen(line), msg, msglen);
	}
	if (rc == 0)
		log_info(h->log, "hub", "first start: admin token written to %s (mode 0600)", path);
	free(secret);
	free(id);
	return rc;
}

/* Whether this hub does the fleet's periodic maintenance now (task expiry and rolling
 * batches, retention, metric rollups and their expiry): always in embedded mode; in scale
 * mode only the leader (zk.c), so that the hubs sharing one store do it once between them
 * and it moves with the leadership. */
int hub_maintains(struct hub *h)
{
	return zk_leads(h->zk);
}

void hub_batch_begin(struct hub *h)
{
	if (!h->batch && h->store->ops->batch_begin(h->store) == 0)
		h->batch = 1;
}

int hub_batch_end(struct hub *h, const char *who)
{
	int rc;

	if (!h->batch)
		return 0;
	h->batch = 0;
	if ((rc = h->store->ops->batch_end(h->store)) < 0)
		log_error(h->log, who, "a batch of writes could not be committed (%s): lost",
		          err_name(rc));
	return 1;
}

static void hub_on_tick(void *arg)
{
	struct hub *h = arg;

	if (hub_maintains(h))
		h->st.maintenance_ticks++;
	admit_tick(h);
	registry_tick(h);
	zk_tick(h->zk, h->conf->agents.beat_ms);
	tasks_tick(h);
	flows_tick(h);
	mail_tick(h);
	report_tick(h);
	rules_tick(h);
}

/* The time-series store's background work: a slice a second, so requests never wait long. */
static void hub_on_compact(void *arg)
{
	struct hub *h = arg;

	ingest_commit(h->ingest); /* the agents waiting are answered by the flush it starts with */
	tsdb_compact(h->tsdb, clk_real_ms(), 50, hub_maintains(h));
}

/* Ended flow runs and mail that was sent or given up are kept as long as tasks
 * (tasks.keep_days): a slice of each once a minute. */
static void hub_prune_records(struct hub *h, int64_t keep_ms)
{
	static const char *const kinds[] = {"flow_run", "mail"};
	int64_t now = clk_real_ms(), n;

	if (now - h->recs_pruned_ms < 60000)
		return;
	h->recs_pruned_ms = now;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (h->store->ops->rec_prune(h->store, kinds[i], now - keep_ms, 1000, &n) == 0 && n)
			log_info(h->log, "retention", "deleted %lld ended %s records", (long long)n,
			         kinds[i]);
}

/* Retention's background work: a slice a second while a pass is under way, as compaction.
 * A pass a hub stops leading in the middle of is taken up where it was if it leads again;
 * the new leader starts its own (the deletes are idempotent). */
static void hub_on_retain(void *arg)
{
	struct hub *h = arg;
	const int64_t day = 86400000;
	int64_t keep_ms[RETENTION_NKINDS] = {
	    [RETENTION_EVENTS] = h->conf->events.keep_days * day,
	    [RETENTION_AUDIT] = h->conf->audit.keep_days * day,
	    [RETENTION_TASKS] = h->conf->tasks.keep_days * day,
	    [RETENTION_PENDING] = h->conf->enroll.pending_keep_days * day,
	};

	if (!hub_maintains(h))
		return;
	retention_step(h->retention, keep_ms, clk_real_ms(), 50);
	hub_prune_records(h, keep_ms[RETENTION_TASKS]);
}

/* The store store.backend names (hub_conf.c checked it): SQLite in state_dir unless told. */
static int hub_open_store(struct hub *h, char *msg, size_t msglen)
{
	const char *backend = h->conf->store.backend;
	int rc;

	if (!backend || strcmp(backend, "sqlite") == 0)
		return store_sqlite_open(h->state_dir, &h->store, msg, msglen);
	rc = store_pg_open(h->conf->store.dsn, h->state_dir, &h->store, msg, msglen);
	if (rc == 0)
		log_info(h->log, "hub", "store: postgresql (metrics too; this hub is %s/hub.id)",
		         h->state_dir);
	return rc;
}

static int hub_open_tsdb(struct hub *h, char *msg, size_t msglen)
{
	const int64_t hour = 3600000, day = 24 * hour;
	struct tsdb_config tc = {
	    .store = h->store,
	    .log = h->log,
	    .keep_ms = {h->conf->metrics.raw_hours * hour, h->conf->metrics.rollup_1m_days * day,
	                h->conf->metrics.rollup_1h_days * day},
	    .checkpoint_ms = h->conf->metrics.checkpoint_s * 1000,
	};
	int64_t t0 = clk_mono_ms();
	int rc = tsdb_open(&tc, &h->tsdb, msg, msglen);

	if (rc == 0)
		log_info(h->log, "metrics", "time-series store ready in %lld ms",
		         (long long)(clk_mono_ms() - t0));
	if (rc < 0 || (rc = ingest_new(h, &h->ingest)) < 0)
		return rc;
	return rwrite_start(h->conf, h->log, &h->rwrite, msg, msglen);
}

static void hub_on_answer(void *ctx, struct httpd_req *req, unsigned status, int64_t ms)
{
	struct hub *h = ctx;
	static const int64_t bounds[] = {1, 5, 10, 50, 100, 500, 1000};
	int i = 0;

	/* httpd refused it on arrival: the handler never saw it. */
	if (status == 413 && httpd_req_route(req) &&
	    httpd_req_route(req)->fn == ingest_agent_metrics)
		ingest_refused_large(h->ingest);
	/* Long-polls wait on purpose: they would drown the figure. */
	if (httpd_req_query(req, "wait"))
		return;
	while (i < 7 && ms > bounds[i])
		i++;
	h->st.latency_buckets[i]++;
	h->st.latency_sum += (double)ms / 1000.0;
}

/* ---- what the registry asks of the links (registry_hooks): the HTTPS long-polls (agents.c)
 * and, in scale mode, ZooKeeper (zk.c) ---- */

static int hub_keeps_up(void *arg, const char *host)
{
	struct hub *h = arg;

	return zk_keeps_up(h->zk, host) || agents_keeps_up(h->agents, host);
}

static void hub_cut_off(void *arg, const char *host, const char *why)
{
	struct hub *h = arg;

	agents_cut_off(h->agents, host, why);
	zk_host_gone(h->zk, host); /* its ZooKeeper credentials open nothing any more */
}

static void hub_accepted(void *arg, const char *host, const char *pubkey, json_t *answer)
{
	struct hub *h = arg;

	if (!h->zk)
		return;
	zk_host_nodes(h->zk, host, pubkey, 0);
	/* Where ZooKeeper is; the credentials come only by a signed request (GET .../zk). */
	if (answer)
		json_object_set_new(answer, "zk", zk_hint(h->zk));
}

static int hub_sweeps(void *arg)
{
	return zk_leads(((struct hub *)arg)->zk);
}

/* Enrollment and beats carry facts of up to enroll.facts_max_bytes (to 16 MiB): their rows
 * take that much and room for the rest of the body, when it is more than the table's. */
static void hub_routes_facts(struct httpd_route *routes, size_t n, const struct hub_conf *c)
{
	size_t want = (size_t)c->enroll.facts_max_bytes + (64 << 10);

	for (size_t i = 0; i < n; i++)
		if ((routes[i].fn == registry_enroll || routes[i].fn == registry_beat) &&
		    routes[i].body_limit < want)
			routes[i].body_limit = want;
}

static void hub_apply_log(struct hub *h)
{
	int level = log_level_parse(h->conf->log.level);

	if (level >= 0)
		h->log->level = level;
}

/* libmicrohttpd's memory pool per connection: request line, headers and the answer's headers
 * (bodies stream through it in pieces). It zeroes the whole pool after every request, so each
 * kept-alive connection holds all of it: at its default of 32 KiB that was two thirds of the
 * hub's memory per idle agent. 8 KiB is nginx's header bound (large_client_header_buffers);
 * agents' and the CLI's requests use under 1 KiB of it. */
#define HUB_CONN_MEMORY (8u << 10)

int hub_new(struct loop *loop, json_t *conf, struct logger *log, struct hub **out, char *msg,
            size_t msglen)
{
	struct hub *h;
	struct httpd_config hc = {0};
	const struct httpd_route *routes;
	const struct hub_conf *c;
	const char *names[17] = {NULL};
	char path[4200];
	size_t nroutes;
	int created = 0, tls_created = 0;

	*out = NULL;
	msg[0] = '\0';
	if (sec_init() < 0) {
		snprintf(msg, msglen, "libsodium failed to start");
		return OUTPOST_E_INTERNAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return OUTPOST_E_INTERNAL;
	h->loop = loop;
	h->log = log;
	h->lock_fd = -1;
	h->started_ms = clk_real_ms();
	if (conf_new(&hub_conf_kind, conf, (void **)&h->conf, msg, msglen) < 0) {
		free(h);
		return OUTPOST_E_BAD_ARGS;
	}
	c = h->conf;
	h->limit = auth_limit_new();
	h->state_dir = strdup(c->state_dir);
	if (!h->state_dir || !h->limit)
		goto fail;
	hub_apply_log(h);
	if (daemon_state_dir(h->state_dir, "hub.lock", &h->lock_fd, msg, msglen) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/hub.key", h->state_dir);
	if (sec_keyfile(path, h->pk, h->sk, &created, msg, msglen) < 0)
		goto fail;
	h->pk_b64 = sec_b64(h->pk, sizeof(h->pk));
	if (!h->pk_b64)
		goto fail;
	/* mail_new first: curl's global init, before remote_write's threads start */
	if (mail_new(h, &h->mail) < 0 || hub_open_store(h, msg, msglen) < 0 ||
	    hub_open_tsdb(h, msg, msglen) < 0)
		goto fail;
	if (hub_admin_token(h, msg, msglen) < 0 ||
	    retention_new(h->store, h->log, &h->retention) < 0)
		goto fail;
	if (c->tls == 1) {
		for (size_t i = 0; i < c->tls_names.n && i < 16; i++)
			names[i] = c->tls_names.v[i];
		if (tls_identity(h->state_dir, names, &h->cert_pem, &h->key_pem, h->fingerprint,
		                 &tls_created, msg, msglen) < 0)
			goto fail;
	} else {
		snprintf(h->fingerprint, sizeof(h->fingerprint), "none (plain HTTP)");
	}

	if (agents_new(h, &h->agents) < 0)
		goto fail;
	{
		struct registry_hooks hooks = {hub_keeps_up, hub_cut_off, hub_accepted, hub_sweeps,
		                               h};
		if (registry_new(&hooks, &h->registry) < 0)
			goto fail;
	}
	{
		struct rules *rs;
		if (rules_new(h, &rs, msg, msglen) < 0)
			goto fail;
	}
	routes = api_routes(&nroutes);
	h->routes = calloc(nroutes, sizeof(*h->routes));
	if (!h->routes)
		goto fail;
	memcpy(h->routes, routes, nroutes * sizeof(*routes));
	hub_routes_facts(h->routes, nroutes, c);
	hc.listen = c->listen;
	hc.routes = h->routes;
	hc.nroutes = nroutes;
	hc.ctx = h;
	hc.auth = auth_check;
	hc.auth_headers = auth_headers;
	hc.on_answer = hub_on_answer;
	hc.conn_limit = (unsigned)c->api.conn_limit;
	hc.per_ip_limit = (unsigned)c->api.per_ip_limit;
	hc.conn_timeout_s = (unsigned)c->api.conn_timeout_s;
	hc.unauth_per_ip_limit = (unsigned)c->api.unauth_per_ip_limit;
	hc.unauth_timeout_s = (unsigned)c->api.unauth_timeout_s;
	hc.admit_unread = (unsigned)c->api.admit_unread;
	hc.conn_memory = HUB_CONN_MEMORY;
	admit_configure(&h->admit, (double)c->api.admit_rate);
	hc.tls_cert_pem = h->cert_pem;
	hc.tls_key_pem = h->key_pem;
	hc.log = log;
	if (httpd_start(loop, &hc, &h->httpd, msg, msglen) < 0)
		goto fail;
	if (zk_start(h, msg, msglen) < 0)
		goto fail;
	if (loop_timer_add(loop, 1000, 1000, hub_on_compact, h, &h->compact) < 0)
		goto fail;
	if (loop_timer_add(loop, 1000, 1000, hub_on_tick, h, &h->tick) < 0)
		goto fail;
	if (loop_timer_add(loop, 1000, 1000, hub_on_retain, h, &h->retain) < 0)
		goto fail;
	log_info(log, "hub", "%s signing key: ed25519:%s", created ? "new" : "loaded", h->pk_b64);
	if (h->cert_pem)
		log_info(log, "hub", "%s TLS certificate %s/hub.crt: %s",
		         tls_created ? "new" : "loaded", h->state_dir, h->fingerprint);
	log_info(log, "hub", "outpost-hub %s ready on %s://%s (store: %s)", OUTPOST_VERSION,
	         h->cert_pem ? "https" : "http", hc.listen, h->store->ops->name);
	*out = h;
	return 0;
fail:
	if (!msg[0])
		snprintf(msg, msglen, "out of memory");
	hub_free(h);
	return OUTPOST_E_INTERNAL;
}

int hub_reload(struct hub *h, json_t *conf, char *msg, size_t msglen)
{
	struct hub_conf *next;
	int rc = conf_reload(&hub_conf_kind, h->conf, conf, h->log, (void **)&next, msg, msglen);

	if (rc < 0)
		return rc;
	/* Swapped whole: what reads h->conf at use picks up the CONF_RELOAD rows from now on. */
	conf_free(h->conf);
	h->conf = next;
	hub_apply_log(h);
	agents_configure(h->agents, h->conf);
	admit_configure(&h->admit, (double)h->conf->api.admit_rate);
	log_info(h->log, "hub", "configuration reloaded");
	{
		char why[1024];
		/* The rules file is its own: refused, the rules in force stay; the config stands.
		 */
		if (rules_reload_file(h, why, sizeof(why)) < 0)
			log_warn(h->log, "rules", "rules file refused, the rules in force stay: %s",
			         why);
	}
	return 0;
}

void hub_shutdown(struct hub *h, void (*done)(void *arg), void *arg)
{
	h->stopping = 1;
	httpd_quiesce(h->httpd);
	tasks_release_all(h);
	agents_release_all(h->agents);
	query_api_release_all(h);
	ingest_commit(h->ingest);
	done(arg);
}

void hub_free(struct hub *h)
{
	if (!h)
		return;
	if (h->httpd) {
		tasks_release_all(h);
		agents_release_all(h->agents);
		query_api_release_all(h);
	}
	zk_stop(h->zk); /* its session closes: this hub leaves /outpost/hubs and the election */
	h->zk = NULL;
	loop_timer_del(h->loop, h->tick);
	loop_timer_del(h->loop, h->compact);
	loop_timer_del(h->loop, h->retain);
	retention_free(h->retention);
	mail_free(h->mail); /* waits for a delivery under way (bounded by mail.timeout_s) */
	rules_free(h->rules);
	h->rules = NULL;
	ingest_free(h->ingest);
	rwrite_stop(h->rwrite); /* after ingest_free: its last commit hands over a batch */
	httpd_stop(h->httpd);
	query_free(h->query);
	tsdb_close(h->tsdb);
	agents_free(h->agents);
	registry_free(h->registry);
	if (h->store)
		h->store->ops->close(h->store);
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	sodium_memzero(h->sk, sizeof(h->sk));
	if (h->key_pem)
		sodium_memzero(h->key_pem, strlen(h->key_pem));
	free(h->key_pem);
	free(h->cert_pem);
	free(h->pk_b64);
	free(h->routes);
	free(h->state_dir);
	conf_free(h->conf);
	auth_limit_free(h->limit);
	free(h);
}

unsigned hub_port(const struct hub *h)
{
	return h->httpd ? httpd_port(h->httpd) : 0;
}
