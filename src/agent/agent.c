/* The agent's life cycle: see agent.h. */
#include "agent_impl.h"
#include "hubtask.h"
#include "link.h"
#include "spool.h"
#include "watch.h"
#include "core/clk.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/db.h"
#include "core/httpd.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define AGENT_PRUNE_MS (3600 * 1000)

static void agent_prune(void *arg)
{
	struct agent *a = arg;
	int n = ledger_prune(a->ledger, a->conf->ledger.keep_days * 86400 * 1000,
	                     a->conf->ledger.max_rows);

	if (n > 0)
		log_info(a->log, "ledger", "pruned %d finished ids", n);
}

static void agent_apply_log(struct agent *a)
{
	int level = log_level_parse(a->conf->log.level);

	if (level >= 0)
		a->log->level = level;
}

/* ---- outpost_publish: batches for the hub, into the link's spool on the loop thread ---- */

struct agent_batch {
	struct agent *a;
	char stream[16];
	char *text;
	size_t len;
};

/* Loop thread. Before the link exists (a plugin's init) and after it is gone (a plugin's own
 * thread still publishing during fini) there is nowhere to store. */
static int agent_publish_store(struct agent *a, const char *stream, const char *text, size_t len)
{
	if (!a->link)
		return OUTPOST_E_UNAVAILABLE;
	return a->link->ops->publish(a->link, stream, text, len);
}

static void agent_publish_posted(void *arg)
{
	struct agent_batch *b = arg;
	int rc = agent_publish_store(b->a, b->stream, b->text, b->len);

	if (rc < 0)
		log_warn(b->a->log, "agent", "a %s batch of %zu bytes was not spooled: %s",
		         b->stream, b->len, err_name(rc));
	free(b->text);
	free(b);
}

/* plugin_host.publish: any thread; text is borrowed. The spool shares the agent's database
 * connection with the ledger's workers and never opens a transaction, so it is used from the
 * loop thread only: a batch from another thread is copied and handed to the loop. */
static int agent_publish(void *arg, const char *stream, const char *text, size_t len)
{
	struct agent *a = arg;
	struct agent_batch *b;

	if (len > SPOOL_BATCH_MAX)
		return OUTPOST_E_TOO_LARGE;
	if (loop_in_thread(a->loop))
		return agent_publish_store(a, stream, text, len);
	if (strlen(stream) >= sizeof(((struct agent_batch *)0)->stream))
		return OUTPOST_E_BAD_ARGS;
	b = calloc(1, sizeof(*b));
	if (!b || !(b->text = malloc(len ? len : 1))) {
		free(b);
		return OUTPOST_E_INTERNAL;
	}
	memcpy(b->text, text, len);
	b->a = a;
	snprintf(b->stream, sizeof(b->stream), "%s", stream);
	b->len = len;
	if (loop_post(a->loop, agent_publish_posted, b) < 0) {
		free(b->text);
		free(b);
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

/* The link to the hub, when hub.url is set; tasks it brings go to the hubtask. */
static int agent_link_start(struct agent *a, char *msg, size_t msglen)
{
	const struct agent_conf *c = a->conf;
	const char *url = c->hub.link.url;
	struct hubtask_config hc = {0};
	struct link_config lc = {0};
	char host_id[HUBTASK_HOST_ID_MAX + 1];
	int rc;

	if (!url || !*url) {
		log_info(a->log, "agent", "no hub.url: local only, no link to a hub");
		return 0;
	}
	rc = hubtask_host_id(c->hub.host_id, host_id, msg, msglen);
	if (rc < 0)
		return rc;
	hc.loop = a->loop;
	hc.log = a->log;
	hc.dispatch = a->dispatch;
	hc.ledger = a->ledger;
	hc.phases = &a->phases;
	hc.host_id = host_id;
	hc.max_ttl_ms = c->ledger.keep_days * 86400 * 1000;
	{
		/* The plugins that add to the host's facts: each with an op `facts`. */
		const char *names[64];
		size_t n = 0;
		for (size_t i = 0; i < plugins_count(a->plugins) && n < 63; i++) {
			struct outpost_plugin_ctx *pc = plugins_at(a->plugins, i);
			if (pc->enabled && strcmp(pc->plugin->name, "sys") != 0 &&
			    plugins_find_op(pc, "facts", NULL))
				names[n++] = pc->plugin->name;
		}
		names[n] = NULL;
		hc.fact_plugins = names;
		rc = hubtask_new(&hc, &a->hubtask);
	}
	if (rc < 0)
		return OUTPOST_E_INTERNAL;
	lc.loop = a->loop;
	lc.log = a->log;
	lc.db = a->db;
	lc.spool_max_bytes = c->hub.spool_max_bytes;
	lc.state_dir = a->state_dir;
	agent_conf_link(&lc, &c->hub.link);
	lc.host_id = host_id;
	lc.refused_retry_ms = c->hub.refused_retry_s * 1000;
	lc.on_task = hubtask_receive;
	lc.arg = a->hubtask;
	lc.phases = &a->phases;
	if (c->hub.mode && strcmp(c->hub.mode, "zookeeper") == 0)
		rc = link_zk_new(&lc, c->zk.connect, (int)c->zk.session_timeout_ms, &a->link, msg,
		                 msglen);
	else
		rc = link_http_new(&lc, &a->link, msg, msglen);
	if (rc < 0)
		return rc;
	hubtask_set_link(a->hubtask, a->link);
	return a->link->ops->start(a->link, msg, msglen);
}

int agent_new(struct loop *loop, const struct outpost_plugin *const *builtins, json_t *conf,
              struct logger *log, struct agent **out, char *msg, size_t msglen)
{
	struct agent *a;
	struct httpd_config hc = {0};
	struct dispatch_config dc = {0};
	const struct httpd_route *routes;
	const struct agent_conf *c;
	char path[4200];
	size_t nroutes;
	int lost = 0;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return OUTPOST_E_INTERNAL;
	a->loop = loop;
	a->log = log;
	a->lock_fd = -1;
	if (conf_new(&agent_conf_kind, conf, (void **)&a->conf, msg, msglen) < 0) {
		free(a);
		return OUTPOST_E_BAD_ARGS;
	}
	c = a->conf;
	a->started_ms = clk_real_ms();
	a->state_dir = strdup(c->state_dir);
	if (!a->state_dir)
		goto fail;
	agent_apply_log(a);
	if (daemon_state_dir(a->state_dir, "agent.lock", &a->lock_fd, msg, msglen) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/agent.db", a->state_dir);
	if (db_open(path, &a->db, msg, msglen) < 0)
		goto fail;
	if (api_auth_open(a, msg, msglen) < 0)
		goto fail;
	if (ledger_open(a->db, log, &a->ledger, &lost) < 0) {
		snprintf(msg, msglen, "cannot open the ledger in %s", path);
		goto fail;
	}
	if (lost)
		log_warn(log, "ledger",
		         "%d call(s) were running when the agent stopped: marked lost, they will "
		         "not run again",
		         lost);
	if (watch_new(loop, &a->watch) < 0)
		log_warn(log, "agent", "no inotify: plugins' file watches are unavailable");
	a->host.log = log;
	a->host.loop = loop;
	a->host.watch = a->watch;
	a->host.db = a->db;
	a->host.state_dir = a->state_dir;
	if (c->hub.link.url && *c->hub.link.url) {
		/* Without a hub, outpost_publish answers unavailable and nothing is stored. */
		a->host.publish = agent_publish;
		a->host.publish_arg = a;
	}
	if (plugins_new(&a->host, &a->plugins) < 0) {
		snprintf(msg, msglen, "cannot set up plugin state in %s", path);
		goto fail;
	}
	for (size_t i = 0; builtins && builtins[i]; i++)
		plugins_add(a->plugins, builtins[i], "builtin",
		            json_object_get(c->plugins, builtins[i]->name), NULL);
	if (c->plugin_dir && *c->plugin_dir)
		plugins_load_dir(a->plugins, c->plugin_dir, (json_t *)c->plugins);
	plugins_init_all(a->plugins);

	dc.workers = (int)c->dispatch.workers;
	dc.max_inflight = (int)c->dispatch.max_inflight;
	dc.default_timeout_ms = c->dispatch.default_timeout_ms;
	dc.timeouts = (json_t *)c->dispatch.timeouts;
	dc.phases = &a->phases;
	if (dispatch_new(loop, a->plugins, a->ledger, log, &dc, &a->dispatch) < 0) {
		snprintf(msg, msglen, "cannot start worker threads");
		goto fail;
	}

	routes = api_routes(&nroutes);
	a->routes = calloc(nroutes, sizeof(*a->routes));
	if (!a->routes)
		goto fail;
	memcpy(a->routes, routes, nroutes * sizeof(*routes));
	for (size_t i = 0; i < nroutes; i++)
		if (a->routes[i].body_limit)
			a->routes[i].body_limit = (size_t)c->api.body_limit;
	hc.listen = c->listen && *c->listen ? c->listen : NULL;
	hc.unix_path = c->socket && *c->socket ? c->socket : NULL;
	hc.unix_mode = a->api_group_set ? 0660 : 0600;
	hc.unix_gid = a->api_group_set ? (long)a->api_gid : 0;
	hc.routes = a->routes;
	hc.nroutes = nroutes;
	hc.ctx = a;
	hc.auth_headers = api_auth_headers;
	hc.conn_limit = (unsigned)c->api.conn_limit;
	hc.conn_timeout_s = (unsigned)c->api.conn_timeout_s;
	hc.max_depth = (int)c->api.max_depth;
	hc.log = log;
	/* A link-only agent (hub.url, neither listen nor socket) has no local API at all:
	 * nothing listens on the host, it works through its hub only (a->httpd stays NULL). */
	if ((hc.listen || hc.unix_path) && httpd_start(loop, &hc, &a->httpd, msg, msglen) < 0)
		goto fail;
	if (loop_timer_add(loop, AGENT_PRUNE_MS, AGENT_PRUNE_MS, agent_prune, a, &a->prune_timer) <
	    0)
		goto fail;
	agent_prune(a);
	if (agent_link_start(a, msg, msglen) < 0)
		goto fail;
	if (a->httpd)
		log_info(log, "agent", "outpost-agent %s ready: %zu plugins, API on %s%s%s",
		         OUTPOST_VERSION, plugins_count(a->plugins), hc.listen ? hc.listen : "",
		         hc.listen && hc.unix_path ? " and " : "",
		         hc.unix_path ? hc.unix_path : "");
	else
		log_info(log, "agent",
		         "outpost-agent %s ready: %zu plugins, no local API (listen and socket are "
		         "empty): working through the hub only",
		         OUTPOST_VERSION, plugins_count(a->plugins));
	*out = a;
	return 0;
fail:
	if (!msg[0])
		snprintf(msg, msglen, "out of memory");
	agent_free(a);
	return OUTPOST_E_INTERNAL;
}

int agent_reload(struct agent *a, json_t *conf, char *msg, size_t msglen)
{
	struct agent_conf *next, *old;
	int rc = conf_reload(&agent_conf_kind, a->conf, conf, a->log, (void **)&next, msg, msglen);

	if (rc < 0)
		return rc;
	/* Swapped whole; what reads it picks up the reloadable keys (CONF_RELOAD rows). The
	 * plugins and the dispatcher take their own references before the old one goes. */
	old = a->conf;
	a->conf = next;
	agent_apply_log(a);
	plugins_reconfigure(a->plugins, (json_t *)next->plugins);
	dispatch_set_timeouts(a->dispatch, (json_t *)next->dispatch.timeouts,
	                      next->dispatch.default_timeout_ms);
	conf_free(old);
	log_info(a->log, "agent", "configuration reloaded");
	return 0;
}

static void agent_check_drained(void *arg)
{
	struct agent *a = arg;
	int busy = dispatch_inflight(a->dispatch) > 0 || (a->httpd && httpd_pending(a->httpd) > 0);

	if (busy && clk_mono_ms() < a->drain_until)
		return;
	if (busy) {
		log_warn(a->log, "agent",
		         "%d call(s) still running at the end of the grace period: ending them",
		         dispatch_inflight(a->dispatch));
		dispatch_abandon(a->dispatch);
	}
	loop_timer_del(a->loop, a->drain_timer);
	a->drain_timer = NULL;
	a->on_drained(a->on_drained_arg);
}

void agent_shutdown(struct agent *a, int64_t grace_ms, void (*done)(void *arg), void *arg)
{
	if (a->stopping)
		return;
	a->stopping = 1;
	a->on_drained = done;
	a->on_drained_arg = arg;
	a->drain_until = clk_mono_ms() + grace_ms;
	if (a->httpd)
		httpd_quiesce(a->httpd);
	if (a->link)
		a->link->ops->stop(a->link); /* no new tasks; results wait in the outbox */
	log_info(a->log, "agent", "stopping: waiting for %d call(s) in flight",
	         dispatch_inflight(a->dispatch));
	loop_timer_add(a->loop, 0, 20, agent_check_drained, a, &a->drain_timer);
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	loop_timer_del(a->loop, a->drain_timer);
	loop_timer_del(a->loop, a->prune_timer);
	if (a->link)
		a->link->ops->stop(a->link);
	/* Workers first, then the server and the outbox that take their answers. Nothing waits
	 * for a command any longer: handlers that can (exec) end what still runs, and their
	 * results are recorded (docs/plugins/exec.md#when-the-agent-stops). */
	if (a->dispatch)
		dispatch_abandon(a->dispatch);
	dispatch_free(a->dispatch);
	loop_run_once(a->loop, 0); /* deliver the last results to their requests */
	hubtask_free(a->hubtask);
	link_free(a->link);
	a->link = NULL;
	httpd_stop(a->httpd);
	plugins_free(a->plugins);
	watch_free(a->watch);
	/* Batches a plugin's own thread posted until its fini returned: dropped (logged) now,
	 * while the agent still exists, not by loop_free after it. */
	loop_run_once(a->loop, 0);
	ledger_close(a->ledger);
	db_close(a->db);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	api_auth_close(a);
	free(a->routes);
	free(a->state_dir);
	conf_free(a->conf);
	free(a);
}

unsigned agent_port(const struct agent *a)
{
	return a->httpd ? httpd_port(a->httpd) : 0;
}

const char *agent_api_token(const struct agent *a)
{
	return a->api_token;
}
