/* outpost-sim's fleet: virtual agents started with a ramp, killed, paused and restarted; one
 * metrics timer for all of them; see sim.h and docs/sim.md. */
#include "sim.h"
#include "agent/dispatch.h"
#include "agent/hubtask.h"
#include "agent/ledger.h"
#include "agent/link.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/daemon.h"
#include "core/db.h"
#include "core/err.h"
#include "core/loop.h"
#include "plugins/metrics/batch.h"
#include "plugins/metrics/mtab.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_PRUNE_MS (3600 * 1000)
#define SIM_KEEP_DAYS 7
#define SIM_LEDGER_ROWS 100000
#define SIM_RESTART_SPREAD_MS 1000
#define SIM_MAX_SOURCES 64262 /* 127.0.1.1 .. 127.0.254.254 */

static const char *const vagent_states[] = {"off", "starting", "running", "paused"};

const char *vagent_state_name(enum vagent_state st)
{
	return vagent_states[st];
}

/* ---- one virtual agent ---- */

/* The host's disk: a database of its own in memory (no file, no fd), kept across kills so a
 * restarted agent finds its ledger, outbox and spool as a real one finds agent.db. */
static int vagent_disk(struct vagent *v)
{
	char msg[200];

	if (v->db)
		return 0;
	if (sqlite3_open_v2(":memory:", &v->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		log_error(&v->log, "sim", "cannot open the database: %s",
		          v->db ? sqlite3_errmsg(v->db) : "out of memory");
		sqlite3_close(v->db);
		v->db = NULL;
		return -1;
	}
	/* Its pages are its data: a small cache is all it needs. */
	return db_exec(v->db, "PRAGMA cache_size=-64; PRAGMA temp_store=MEMORY;", msg,
	               sizeof(msg)) < 0
	           ? -1
	           : 0;
}

static void vagent_down(struct vagent *v)
{
	int running = v->hubtask ? hubtask_stats(v->hubtask)->running : 0;

	link_free(v->link);
	v->link = NULL;
	hubtask_free(v->hubtask);
	v->hubtask = NULL;
	/* A call still on a worker keeps journaling in this ledger: it stays open (its rows end
	 * "done", not "lost" as after a real kill; docs/sim.md). */
	if (!running) {
		ledger_close(v->ledger);
		v->ledger = NULL;
	}
}

/* What outpost-agent's start does for its link: ledger (running rows of the last life become
 * lost), hubtask, link, facts, start. */
static int vagent_boot(struct vagent *v)
{
	struct sim *s = v->sim;
	struct hubtask_config hc = {0};
	struct link_config lc = {0};
	char msg[400];
	int lost = 0;

	msg[0] = '\0';
	if (vagent_disk(v) < 0)
		return -1;
	if (!v->ledger && ledger_open(v->db, &v->log, &v->ledger, &lost) < 0) {
		log_error(&v->log, "sim", "cannot open the ledger");
		return -1;
	}
	if (lost)
		log_warn(&v->log, "ledger", "%d call(s) were running when the agent was killed",
		         lost);
	hc.loop = s->loop;
	hc.log = &v->log;
	hc.dispatch = s->dispatch;
	hc.ledger = v->ledger;
	hc.host_id = v->host_id;
	hc.max_ttl_ms = (int64_t)SIM_KEEP_DAYS * 86400 * 1000;
	hc.facts_interval_ms = -1; /* the facts are made up once, below */
	if (hubtask_new(&hc, &v->hubtask) < 0)
		goto fail;
	lc.loop = s->loop;
	lc.log = &v->log;
	lc.db = v->db;
	lc.state_dir = v->dir;
	agent_conf_link(&lc, &s->conf->hub.link);
	lc.host_id = v->host_id;
	lc.source_addr = v->source;
	lc.on_task = hubtask_receive;
	lc.arg = v->hubtask;
	/* The link the real agent picks by hub.mode (agent.c): in zookeeper mode each virtual
	 * agent is a ZooKeeper session of its own (docs/sim.md, "ZooKeeper mode"). */
	if ((s->zk_mode ? link_zk_new(&lc, s->conf->zk.connect, (int)s->conf->zk.session_timeout_ms,
	                              &v->link, msg, sizeof(msg))
	                : link_http_new(&lc, &v->link, msg, sizeof(msg))) < 0)
		goto fail;
	hubtask_set_link(v->hubtask, v->link);
	v->link->ops->facts(v->link, v->facts);
	if (v->link->ops->start(v->link, msg, sizeof(msg)) < 0)
		goto fail;
	v->lives++;
	return 0;
fail:
	log_error(&v->log, "sim", "cannot start: %s", msg[0] ? msg : "out of memory");
	vagent_down(v);
	return -1;
}

static void vagent_on_start(void *arg)
{
	struct vagent *v = arg;

	v->start_timer = NULL; /* one-shot: freed by the loop */
	v->state = vagent_boot(v) == 0 ? VAGENT_RUNNING : VAGENT_OFF;
}

int vagent_start(struct vagent *v, int64_t delay_ms)
{
	if (v->state == VAGENT_PAUSED)
		return vagent_resume(v);
	if (v->state != VAGENT_OFF)
		return 0;
	if (loop_timer_add(v->sim->loop, delay_ms, 0, vagent_on_start, v, &v->start_timer) < 0)
		return OUTPOST_E_INTERNAL;
	v->state = VAGENT_STARTING;
	return 1;
}

void sim_cut_link(struct vagent *v)
{
	if (v && v->link && v->state == VAGENT_RUNNING)
		v->link->ops->stop(v->link);
}

int vagent_kill(struct vagent *v)
{
	if (v->state == VAGENT_OFF)
		return 0;
	loop_timer_del(v->sim->loop, v->start_timer);
	v->start_timer = NULL;
	vagent_down(v);
	v->state = VAGENT_OFF;
	return 1;
}

int vagent_pause(struct vagent *v)
{
	if (v->state != VAGENT_RUNNING)
		return 0;
	v->link->ops->stop(v->link);
	v->state = VAGENT_PAUSED;
	return 1;
}

int vagent_resume(struct vagent *v)
{
	char msg[400];

	if (v->state != VAGENT_PAUSED)
		return 0;
	if (v->link->ops->start(v->link, msg, sizeof(msg)) < 0) {
		log_error(&v->log, "sim", "cannot resume: %s", msg);
		vagent_kill(v);
		return 1;
	}
	v->state = VAGENT_RUNNING;
	return 1;
}

json_t *vagent_status(const struct vagent *v)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "host_id", v->host_id, "state",
	                 vagent_state_name(v->state), "source", v->source, "samples",
	                 (json_int_t)v->samples, "batches", (json_int_t)v->batches, "lives",
	                 (json_int_t)v->lives, "link",
	                 v->link ? v->link->ops->status(v->link) : json_null());
}

json_t *sim_status(struct sim *s)
{
	static const char *const sums[] = {"tasks_received", "results_sent", "outbox_depth",
	                                   "spool_depth",    "batches_sent", "spool_dropped",
	                                   "reconnects",     "busy_answers"};
	json_int_t by_state[4] = {0}, sum[sizeof(sums) / sizeof(sums[0])] = {0};
	json_int_t connected = 0, up = 0, samples = 0, batches = 0;
	json_t *st, *links = json_object();

	for (unsigned i = 0; i < s->n; i++) {
		struct vagent *v = &s->v[i];
		json_t *ls = v->link ? v->link->ops->status(v->link) : NULL;
		by_state[v->state]++;
		samples += (json_int_t)v->samples;
		batches += (json_int_t)v->batches;
		if (!ls)
			continue;
		connected += json_is_true(json_object_get(ls, "connected"));
		up += json_string_value(json_object_get(ls, "state")) &&
		      strcmp(json_string_value(json_object_get(ls, "state")), "up") == 0;
		for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++)
			sum[k] += json_integer_value(json_object_get(ls, sums[k]));
		json_decref(ls);
	}
	for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++)
		json_object_set_new(links, sums[k], json_integer(sum[k]));
	json_object_set_new(links, "connected", json_integer(connected));
	json_object_set_new(links, "enrolled_up", json_integer(up));
	st = json_pack("{s:I, s:{s:I, s:I, s:I, s:I}, s:b, s:I, s:I, s:I, s:I, s:o}", "agents",
	               (json_int_t)s->n, "states", "off", by_state[VAGENT_OFF], "starting",
	               by_state[VAGENT_STARTING], "running", by_state[VAGENT_RUNNING], "paused",
	               by_state[VAGENT_PAUSED], "sampling", s->sampling, "samples_published",
	               samples, "batches_published", batches, "publish_errors",
	               (json_int_t)s->publish_errors, "sources", (json_int_t)s->sources, "links",
	               links);
	return st;
}

/* ---- the fleet's shared timers ---- */

/* One batch of synthetic series per living agent, through the real batch writer
 * (plugins/metrics/batch.c) into the agent's real spool (link publish). Series 0,
 * sim_batch_seq, counts the agent's batches (1, 2, 3 ...): the hub's copy shows at once
 * whether one was lost or stored twice. */
static void sim_metrics_tick(void *arg);

/* Armed for the next grid instant, as the metrics plugin does: a late wake-up samples the
 * slot it falls in, never one slot twice (the hub keeps one sample per series and time). */
static int sim_metrics_arm(struct sim *s)
{
	int64_t iv = s->conf->metrics.interval_ms;

	return loop_timer_add(s->loop, iv - clk_real_ms() % iv, 0, sim_metrics_tick, s,
	                      &s->metrics_timer);
}

static void sim_metrics_tick(void *arg)
{
	struct sim *s = arg;
	int64_t iv = s->conf->metrics.interval_ms, t = clk_real_ms() / iv * iv;
	char key[128], num[16];

	s->metrics_timer = NULL; /* one-shot: freed by the loop */
	if (sim_metrics_arm(s) < 0)
		log_error(s->log, "sim", "out of memory: metrics stop");
	if (t <= s->last_t)
		return;
	s->last_t = t;
	for (unsigned i = 0; s->sampling && i < s->n; i++) {
		struct vagent *v = &s->v[i];
		int bad = 0;
		if ((v->state != VAGENT_RUNNING && v->state != VAGENT_PAUSED) || !v->link)
			continue;
		bad |= batch_begin(&s->batch, t) < 0;
		for (unsigned k = 0; k < s->conf->metrics.series && !bad; k++) {
			const char *labels[2] = {"n", num};
			size_t klen;
			double val;
			if (k == 0) {
				klen = mtab_key(key, sizeof(key), "sim_batch_seq", NULL, 0);
				val = (double)(v->batches + 1);
			} else {
				snprintf(num, sizeof(num), "%u", k);
				klen = mtab_key(key, sizeof(key), "sim_value", labels, 1);
				/* A slow wave per host and series: values a dashboard can draw. */
				val =
				    (double)((v->index * 31u + k * 7u + (uint64_t)(t / iv)) % 100u);
			}
			bad |= batch_add(&s->batch, &s->scratch, key, klen, NULL, NULL, val) < 0;
		}
		bad |= batch_end(&s->batch) < 0;
		if (bad ||
		    v->link->ops->publish(v->link, "metrics", s->batch.data, s->batch.len) < 0) {
			s->publish_errors++;
			continue;
		}
		v->batches++;
		v->samples += s->conf->metrics.series;
	}
}

static void sim_prune(void *arg)
{
	struct sim *s = arg;

	for (unsigned i = 0; i < s->n; i++)
		if (s->v[i].ledger)
			ledger_prune(s->v[i].ledger, (int64_t)SIM_KEEP_DAYS * 86400 * 1000,
			             SIM_LEDGER_ROWS);
}

/* ---- start ---- */

/* Every connection is an fd: two per agent (the long-poll, and beats and posts), plus the
 * loop's own; in zookeeper mode, per agent, its session's socket and the ZooKeeper client's
 * wake-up pipe (2) beside the HTTPS connection for results and batches (two at times).
 * Raised as far as the hard limit (root: further); refused below what is needed. */
#define SIM_FDS_HTTP 3
#define SIM_FDS_ZK 6
static int sim_fd_limit(unsigned agents, unsigned per_agent, char *msg, size_t msglen)
{
	rlim_t need = (rlim_t)agents * per_agent + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max < need) {
		struct rlimit want = {need, need};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return 0;
		snprintf(
		    msg, msglen,
		    "%u virtual agents need %llu file descriptors and the hard limit is %llu: "
		    "raise it (ulimit -Hn, LimitNOFILE=, or run as root; fs.nr_open bounds it; "
		    "docs/sim.md)",
		    agents, (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return OUTPOST_E_UNAVAILABLE;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(msg, msglen, "cannot raise the fd limit to %llu: %s",
		         (unsigned long long)need, strerror(errno));
		return OUTPOST_E_UNAVAILABLE;
	}
	return 0;
}

/* libzookeeper-mt runs two threads per session (its I/O and its completion thread): a
 * virtual agent in zookeeper mode is two threads, as the real agent's session is. Every
 * thread is a task of the kernel, counted against kernel.pid_max and kernel.threads-max for
 * the whole machine: a fleet that cannot fit is refused at start, saying so. */
static long sim_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int sim_thread_limit(unsigned agents, char *msg, size_t msglen)
{
	long pid_max = sim_read_long("/proc/sys/kernel/pid_max");
	long threads_max = sim_read_long("/proc/sys/kernel/threads-max");
	long bound =
	    pid_max > 0 && (threads_max < 0 || pid_max < threads_max) ? pid_max : threads_max;
	long need = 2L * agents + 64;

	if (bound > 0 && need > bound) {
		snprintf(msg, msglen,
		         "%u virtual agents in zookeeper mode need %ld threads (two per ZooKeeper "
		         "session: libzookeeper-mt's I/O and completion threads) and this machine "
		         "allows %ld tasks in all (kernel.pid_max, kernel.threads-max): run fewer, "
		         "or raise them (docs/sim.md)",
		         agents, need, bound);
		return OUTPOST_E_UNAVAILABLE;
	}
	return 0;
}

/* One address per agent by default, as a real fleet has: the hub's per-address bookkeeping
 * sees what it would see; past 64,262 agents they share. */
static unsigned sim_sources(const struct sim_conf *c)
{
	int64_t n = c->sources ? c->sources : c->agents;

	return (unsigned)(n < SIM_MAX_SOURCES ? n : SIM_MAX_SOURCES);
}

static void sim_apply_log(struct sim *s)
{
	int level = log_level_parse(s->conf->log.level);

	if (level < 0)
		return;
	s->log->level = level;
	for (unsigned i = 0; s->v && i < s->n; i++)
		s->v[i].log.level = level;
}

static int vagent_init(struct sim *s, struct vagent *v, unsigned i, char *msg, size_t msglen)
{
	unsigned src = i % s->sources;
	char path[4200];

	v->sim = s;
	v->index = i;
	snprintf(v->host_id, sizeof(v->host_id), "%s%05u", s->conf->host_prefix, i + 1);
	snprintf(v->source, sizeof(v->source), "127.0.%u.%u", 1 + src / 254, 1 + src % 254);
	log_init(&v->log, v->host_id, s->log->level, s->log->target);
	v->log.journal = s->log->journal;
	snprintf(path, sizeof(path), "%s/agents/%s", s->conf->state_dir, v->host_id);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(msg, msglen, "cannot make %s: %s", path, strerror(errno));
		return OUTPOST_E_UNAVAILABLE;
	}
	v->dir = strdup(path);
	v->facts = sim_facts(v->host_id, i);
	return v->dir && v->facts ? 0 : OUTPOST_E_INTERNAL;
}

int sim_new(struct loop *loop, const json_t *conf, struct logger *log, struct sim **out, char *msg,
            size_t msglen)
{
	struct sim *s;
	struct dispatch_config dc = {0};
	char path[4200];
	int rc = OUTPOST_E_INTERNAL;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return OUTPOST_E_INTERNAL;
	if (conf_new(&sim_conf_kind, conf, (void **)&s->conf, msg, msglen) < 0) {
		free(s);
		return OUTPOST_E_BAD_ARGS;
	}
	s->loop = loop;
	s->log = log;
	s->lock_fd = -1;
	s->sampling = 1;
	s->batch = (struct buf)BUF_INIT;
	s->scratch = (struct buf)BUF_INIT;
	s->sources = sim_sources(s->conf);
	s->state_dir = strdup(s->conf->state_dir);
	if (!s->state_dir)
		goto fail;
	sim_apply_log(s);
	s->zk_mode = strcmp(s->conf->hub.mode, "zookeeper") == 0;
	rc = sim_fd_limit((unsigned)s->conf->agents, s->zk_mode ? SIM_FDS_ZK : SIM_FDS_HTTP, msg,
	                  msglen);
	if (rc == 0 && s->zk_mode)
		rc = sim_thread_limit((unsigned)s->conf->agents, msg, msglen);
	if (rc < 0)
		goto fail;
	rc = OUTPOST_E_UNAVAILABLE;
	if (daemon_state_dir(s->conf->state_dir, "sim.lock", &s->lock_fd, msg, msglen) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/agents", s->conf->state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(msg, msglen, "cannot make %s: %s", path, strerror(errno));
		goto fail;
	}
	rc = OUTPOST_E_INTERNAL;
	sim_plugins_make(&s->pset, strcmp(s->conf->exec.mode, "real") == 0);
	s->host.log = log;
	s->host.loop = loop;
	s->host.state_dir = s->state_dir;
	if (plugins_new(&s->host, &s->plugins) < 0)
		goto fail;
	for (size_t i = 0; s->pset.table[i]; i++)
		plugins_add(s->plugins, s->pset.table[i], "builtin", NULL, NULL);
	plugins_init_all(s->plugins);
	dc.workers = (int)s->conf->dispatch.workers;
	/* Bounded per agent by the hub's fan-out, not here: every agent's calls share it. */
	dc.max_inflight = (int)(s->conf->agents * 4 < 1000000 ? s->conf->agents * 4 : 1000000);
	dc.default_timeout_ms = 30000;
	if (dispatch_new(loop, s->plugins, NULL, log, &dc, &s->dispatch) < 0) {
		snprintf(msg, msglen, "cannot start worker threads");
		goto fail;
	}
	s->n = (unsigned)s->conf->agents;
	s->v = calloc(s->n, sizeof(*s->v));
	if (!s->v)
		goto fail;
	for (unsigned i = 0; i < s->n; i++) {
		rc = vagent_init(s, &s->v[i], i, msg, msglen);
		if (rc < 0)
			goto fail;
	}
	rc = sim_api_start(s, s->conf->listen, msg, msglen);
	if (rc < 0)
		goto fail;
	rc = OUTPOST_E_INTERNAL;
	if (s->conf->metrics.interval_ms > 0 && sim_metrics_arm(s) < 0)
		goto fail;
	if (loop_timer_add(loop, SIM_PRUNE_MS, SIM_PRUNE_MS, sim_prune, s, &s->prune_timer) < 0)
		goto fail;
	/* The ramp: agent i at i/ramp_per_s seconds, plus up to a second of jitter. */
	for (unsigned i = 0; i < s->n; i++)
		if (vagent_start(&s->v[i], (int64_t)i * 1000 / s->conf->ramp_per_s +
		                               (int64_t)randombytes_uniform(1000)) < 0)
			goto fail;
	log_warn(log, "sim",
	         "outpost-sim %s ready: %u virtual agents of %s, from %u source address(es), "
	         "starting %u/s; control API on %s",
	         OUTPOST_VERSION, s->n, s->conf->hub.link.url, s->sources,
	         (unsigned)s->conf->ramp_per_s, s->conf->listen);
	*out = s;
	return 0;
fail:
	if (!msg[0])
		snprintf(msg, msglen, "out of memory");
	sim_free(s);
	return rc;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	sim_api_stop(s);
	loop_timer_del(s->loop, s->metrics_timer);
	loop_timer_del(s->loop, s->prune_timer);
	for (unsigned i = 0; s->v && i < s->n; i++)
		vagent_kill(&s->v[i]);
	/* Workers end; what they finished last is handed over (to nobody: the hubtasks are
	 * gone), then every ledger closes. */
	if (s->dispatch)
		dispatch_abandon(s->dispatch);
	dispatch_free(s->dispatch);
	for (unsigned i = 0; s->v && i < s->n; i++) {
		struct vagent *v = &s->v[i];
		ledger_close(v->ledger);
		sqlite3_close(v->db);
		json_decref(v->facts);
		free(v->dir);
	}
	free(s->v);
	plugins_free(s->plugins);
	buf_free(&s->batch);
	buf_free(&s->scratch);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->state_dir);
	conf_free(s->conf);
	free(s);
}

int sim_reload(struct sim *s, const json_t *conf, char *msg, size_t msglen)
{
	struct sim_conf *next;
	int rc = conf_reload(&sim_conf_kind, s->conf, conf, s->log, (void **)&next, msg, msglen);

	if (rc < 0)
		return rc;
	conf_free(s->conf);
	s->conf = next;
	sim_apply_log(s);
	log_info(s->log, "sim", "configuration reloaded");
	return 0;
}
