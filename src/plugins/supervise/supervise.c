/* The built-in `supervise` plugin (docs/plugins/supervise.md): keeps the foreign agents the
 * config declares (a security agent, a VM agent other teams ship) running, limited, measured
 * and current. A timer on the agent's loop drives each agent's state: it reaps exits (no
 * thread waits on a child), restarts with a doubling backoff, runs the health check as a child
 * of its own with a deadline, kills an agent over its memory limit when no cgroup holds it,
 * tails its log, and hands crashes to the hub as events and state, restarts, memory and CPU as
 * metrics. Ops run on workers and meet the tick under one lock; they ask, the tick acts
 * (except supervise.upgrade's file swap, sv_upgrade.c). */
#include "supervise.h"
#include "plugins/builtin.h"
#include "plugins/cgroup.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/proc.h"
#include "core/wire.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[] = {"stopped", "running", "stopping", "waiting", "exited"};

struct sv_agent *sv_find(struct sv *sv, const char *name)
{
	for (size_t i = 0; i < sv->n; i++)
		if (sv->ag[i]->c && strcmp(sv->ag[i]->name, name) == 0)
			return sv->ag[i];
	return NULL;
}

static void sv_agent_free(struct sv_agent *a)
{
	if (a) {
		free(a->conf_text);
		free(a);
	}
}

/* ---- cgroup ---- */

/* Makes dir and enables the memory and cpu controllers for its children, down from the
 * root; failures are left to cg_set's reason. */
static void cg_prepare(const char *root, const char *rel)
{
	char path[PATH_MAX], *p;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	for (p = path + strlen(root); p && *p; p = strchr(p + 1, '/')) {
		char c = *p;
		*p = '\0';
		if (p > path + strlen(root))
			mkdir(path, 0755);
		cg_write_small(path, "cgroup.subtree_control", "+memory +cpu");
		*p = c;
	}
	mkdir(path, 0755);
	cg_write_small(path, "cgroup.subtree_control", "+memory +cpu");
}

/* Before a start: a's cgroup with its limits, or the reason there is none. Without a cgroup
 * that holds memory.max the tick's RSS check does (sv_step). */
static void sv_cgroup(struct sv *sv, struct sv_agent *a)
{
	char mem[32], cpu[48], dir[PATH_MAX], was[64], why[300], note[400] = "";
	const char *missing;
	int rc;

	a->cg_dir[0] = '\0';
	a->mem_by_cgroup = 0;
	sv_conf_limits(a->c, mem, cpu);
	a->mem_limit = mem[0] && strcmp(mem, "max") != 0 ? strtoull(mem, NULL, 10) : 0;
	if (!mem[0] && !cpu[0]) {
		a->limits_note[0] = '\0';
		return;
	}
	if ((missing = cg_v2_missing(sv->conf->cgroup_root))) {
		snprintf(a->limits_note, sizeof(a->limits_note), "%s at %s: no cgroup limits%s",
		         missing, sv->conf->cgroup_root,
		         a->mem_limit ? "; memory_max is held by the agent's RSS check" : "");
		return;
	}
	cg_prepare(sv->conf->cgroup_root, sv->conf->cgroup_parent);
	snprintf(dir, sizeof(dir), "%s%s/%s", sv->conf->cgroup_root, sv->conf->cgroup_parent,
	         a->name);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(a->limits_note, sizeof(a->limits_note),
		         "cannot make the cgroup %.200s: %s: no cgroup limits%s", dir,
		         strerror(errno),
		         a->mem_limit ? "; memory_max is held by the agent's RSS check" : "");
		return;
	}
	snprintf(a->cg_dir, sizeof(a->cg_dir), "%s", dir);
	for (int i = 0; i < 2; i++) {
		const char *want = i ? cpu : mem, *file = i ? "cpu.max" : "memory.max";
		if (!want[0])
			continue;
		rc = cg_set(dir, file, want, was, sizeof(was), why, sizeof(why));
		if (rc >= 0 && i == 0)
			a->mem_by_cgroup = 1;
		if (rc < 0)
			snprintf(note + strlen(note), sizeof(note) - strlen(note), "%s%s: %s",
			         note[0] ? "; " : "", file, why);
	}
	if (a->mem_limit && !a->mem_by_cgroup)
		snprintf(note + strlen(note), sizeof(note) - strlen(note),
		         "; memory_max is held by the agent's RSS check");
	snprintf(a->limits_note, sizeof(a->limits_note), "%s", note);
	if (cg_read_small(dir, "memory.events", why, sizeof(why)) == 0 && strstr(why, "oom_kill "))
		a->oom_kills_seen = strtoull(strstr(why, "oom_kill ") + 9, NULL, 10);
}

/* ---- start, stop, exit ---- */

static void sv_kill_group(struct sv_agent *a, int sig)
{
	if (a->pid > 0) {
		kill(-a->pid, sig);
		kill(a->pid, sig);
	}
	if (sig == SIGKILL && a->cg_dir[0])
		cg_write_small(a->cg_dir, "cgroup.kill", "1");
}

static void sv_wait_backoff(struct sv_agent *a, int64_t now)
{
	a->state = SV_WAITING;
	a->next_start = now + a->backoff;
	a->backoff = a->backoff * 2 > a->c->backoff_max_ms ? a->c->backoff_max_ms : a->backoff * 2;
}

static void sv_start(struct sv *sv, struct sv_agent *a, int64_t now)
{
	struct proc_spec spec = {0};
	char msg[300], path[PATH_MAX + 16];
	int rc;

	sv_cgroup(sv, a);
	if (a->cg_dir[0])
		snprintf(path, sizeof(path), "%s/cgroup.procs", a->cg_dir);
	spec.argv = (char *const *)a->c->command.v;
	spec.env_add = (char *const *)a->c->env.v;
	spec.user = a->c->user;
	spec.cwd = a->c->cwd;
	spec.cgroup_procs = a->cg_dir[0] ? path : NULL;
	rc = proc_spawn(&spec, a->c->log, &a->pid, msg, sizeof(msg));
	if (rc < 0) {
		a->pid = 0;
		snprintf(a->last_reason, sizeof(a->last_reason), "could not start: %.180s", msg);
		a->last_exit_real = clk_real_ms();
		sv_event(sv, a, "supervise.start_failed", "warning",
		         json_pack("{s:s, s:I}", "error", err_name(rc), "retry_ms",
		                   (json_int_t)a->backoff),
		         "%s could not start: %s; trying again in %lld ms", a->name, msg,
		         (long long)a->backoff);
		outpost_log(sv->pc, OUTPOST_LOG_WARN, "%s could not start: %s", a->name, msg);
		sv_wait_backoff(a, now);
		return;
	}
	if (a->starts++)
		a->restarts++;
	a->state = SV_RUNNING;
	a->restart_req = 0;
	a->started_mono = now;
	a->started_real = clk_real_ms();
	a->stop_timeout_ms = a->c->stop_timeout_ms;
	a->hc_next = now + a->c->health_interval_ms;
	a->hc_fails = 0;
	a->healthy = -1;
	a->cpu_at = 0;
	outpost_log(sv->pc, OUTPOST_LOG_INFO, "%s started (pid %d)", a->name, (int)a->pid);
}

/* Asks a running agent to stop: SIGTERM now, SIGKILL after its stop timeout (kill: at once). */
static void sv_stop(struct sv_agent *a, const char *why, int kill_now, int64_t now)
{
	snprintf(a->stop_why, sizeof(a->stop_why), "%s", why);
	sv_kill_group(a, kill_now ? SIGKILL : SIGTERM);
	a->state = SV_STOPPING;
	a->kill_at = kill_now ? now : now + a->stop_timeout_ms;
}

static void sv_health_end(struct sv *sv, struct sv_agent *a, int ok, const char *what, int64_t now)
{
	a->hc_pid = 0;
	snprintf(a->hc_last, sizeof(a->hc_last), "%s", what);
	if (ok) {
		a->hc_fails = 0;
		a->healthy = 1;
		return;
	}
	a->healthy = 0;
	if (!a->c || ++a->hc_fails < a->c->health_retries || a->state != SV_RUNNING || a->hold)
		return;
	a->unhealthy++;
	snprintf(a->last_reason, sizeof(a->last_reason), "unhealthy: %s", what);
	outpost_log(sv->pc, OUTPOST_LOG_WARN,
	            "%s failed its health check %d times in a row (%s): restarting it", a->name,
	            a->hc_fails, what);
	sv_event(sv, a, "supervise.unhealthy", "warning",
	         json_pack("{s:s, s:i}", "check", what, "failures", a->hc_fails),
	         "%s failed its health check %d times in a row (%s): restarting it", a->name,
	         a->hc_fails, what);
	sv_stop(a, "unhealthy", 0, now);
}

static void sv_health_step(struct sv *sv, struct sv_agent *a, int64_t now)
{
	char what[160], msg[200];
	int st;

	if (a->hc_pid > 0) {
		pid_t r = waitpid(a->hc_pid, &st, WNOHANG);
		if (r == a->hc_pid || (r < 0 && errno == ECHILD)) {
			kill(-a->hc_pid, SIGKILL); /* what it left in its group */
			if (r < 0)
				snprintf(what, sizeof(what), "health check reaped elsewhere");
			else if (WIFEXITED(st))
				snprintf(what, sizeof(what), "health check exited %d",
				         WEXITSTATUS(st));
			else
				snprintf(what, sizeof(what), "health check killed by signal %d",
				         WTERMSIG(st));
			sv_health_end(sv, a, r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, what,
			              now);
		} else if (a->c && now - a->hc_started >= a->c->health_timeout_ms) {
			kill(-a->hc_pid, SIGKILL);
			while (waitpid(a->hc_pid, &st, 0) < 0 && errno == EINTR)
				;
			snprintf(what, sizeof(what), "health check timed out after %lld ms",
			         (long long)a->c->health_timeout_ms);
			sv_health_end(sv, a, 0, what, now);
		}
		return;
	}
	if (!a->c || !a->c->health.n || a->state != SV_RUNNING || now < a->hc_next)
		return;
	{
		struct proc_spec spec = {0};
		spec.argv = (char *const *)a->c->health.v;
		spec.env_add = (char *const *)a->c->env.v;
		spec.user = a->c->user;
		spec.cwd = a->c->cwd;
		a->hc_next = now + a->c->health_interval_ms;
		a->hc_started = now;
		if (proc_spawn(&spec, NULL, &a->hc_pid, msg, sizeof(msg)) < 0) {
			a->hc_pid = 0;
			snprintf(what, sizeof(what), "health check could not start: %.120s", msg);
			sv_health_end(sv, a, 0, what, now);
		}
	}
}

/* The leader ended (status from waitpid). */
static void sv_exited(struct sv *sv, struct sv_agent *a, int status, int64_t now)
{
	int64_t ran = now - a->started_mono;
	int failed, planned = a->state == SV_STOPPING;
	char how[64], buf[256];

	sv_kill_group(a, SIGKILL); /* its children go with it: a restart must not double them */
	a->pid = 0;
	a->last_exit_real = clk_real_ms();
	a->last_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	a->last_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	failed = a->last_code != 0 || a->last_signal;
	if (a->last_signal)
		snprintf(how, sizeof(how), "was killed by signal %d", a->last_signal);
	else
		snprintf(how, sizeof(how), "exited with code %d", a->last_code);
	if (a->cg_dir[0] && cg_read_small(a->cg_dir, "memory.events", buf, sizeof(buf)) == 0 &&
	    strstr(buf, "oom_kill ")) {
		uint64_t k = strtoull(strstr(buf, "oom_kill ") + 9, NULL, 10);
		if (k > a->oom_kills_seen && !planned) {
			snprintf(how, sizeof(how), "was killed by the cgroup's memory.max (OOM)");
			a->mem_kills++;
		}
		a->oom_kills_seen = k;
	}
	if (!a->c) /* removed from the config: gone once stopped */
		return;
	if (ran >= a->c->stable_s * 1000)
		a->backoff = a->c->backoff_ms;
	if (planned) {
		const char *why = a->stop_why;
		if (strcmp(why, "memory") != 0 && strcmp(why, "unhealthy") != 0)
			snprintf(a->last_reason, sizeof(a->last_reason), "stopped (%s): %s", why,
			         how);
		if (strcmp(why, "memory") == 0 || strcmp(why, "unhealthy") == 0) {
			a->crashes++;
			sv_wait_backoff(a, now);
		} else {
			a->state = SV_STOPPED;
		}
		return;
	}
	snprintf(a->last_reason, sizeof(a->last_reason), "%s after %lld ms", how, (long long)ran);
	if (failed)
		a->crashes++;
	if (!a->hold && (strcmp(a->c->restart, "always") == 0 ||
	                 (failed && strcmp(a->c->restart, "on-failure") == 0))) {
		sv_wait_backoff(a, now);
		sv_event(sv, a, failed ? "supervise.crashed" : "supervise.exited",
		         failed ? "warning" : "notice",
		         json_pack("{s:i, s:i, s:I, s:I, s:I}", "exit_code", a->last_code, "signal",
		                   a->last_signal, "ran_ms", (json_int_t)ran, "restarts",
		                   (json_int_t)a->restarts, "restart_in_ms",
		                   (json_int_t)(a->next_start - now)),
		         "%s %s after %lld ms; restarting it in %lld ms", a->name, how,
		         (long long)ran, (long long)(a->next_start - now));
	} else {
		a->state = SV_EXITED;
		sv_event(sv, a, failed ? "supervise.crashed" : "supervise.exited",
		         failed ? "warning" : "notice",
		         json_pack("{s:i, s:i, s:I}", "exit_code", a->last_code, "signal",
		                   a->last_signal, "ran_ms", (json_int_t)ran),
		         "%s %s after %lld ms; not restarted (restart: %s)", a->name, how,
		         (long long)ran, a->hold ? "held by an upgrade" : a->c->restart);
	}
	outpost_log(sv->pc, failed ? OUTPOST_LOG_WARN : OUTPOST_LOG_INFO, "%s %s", a->name, how);
}

/* One agent, one tick. */
static void sv_step(struct sv *sv, struct sv_agent *a, int64_t now)
{
	int st;

	if (a->pid > 0) {
		pid_t r = waitpid(a->pid, &st, WNOHANG);
		if (r == a->pid)
			sv_exited(sv, a, st, now);
		else if (r < 0 && errno == ECHILD)
			sv_exited(sv, a, 0, now); /* reaped elsewhere: status unknown */
	}
	sv_health_step(sv, a, now);
	switch (a->state) {
	case SV_RUNNING:
		if (a->mem_limit && !a->mem_by_cgroup && a->rss > a->mem_limit) {
			a->mem_kills++;
			snprintf(a->last_reason, sizeof(a->last_reason),
			         "killed: %llu bytes resident, over memory_max %llu",
			         (unsigned long long)a->rss, (unsigned long long)a->mem_limit);
			outpost_log(sv->pc, OUTPOST_LOG_WARN,
			            "%s used %llu bytes, over its memory_max "
			            "of %llu: killed",
			            a->name, (unsigned long long)a->rss,
			            (unsigned long long)a->mem_limit);
			sv_event(sv, a, "supervise.memory_killed", "warning",
			         json_pack("{s:I, s:I, s:s}", "rss_bytes", (json_int_t)a->rss,
			                   "memory_max", (json_int_t)a->mem_limit, "by",
			                   "rss_check"),
			         "%s used %llu bytes, over its memory_max of %llu: killed (the "
			         "agent's RSS check; %s)",
			         a->name, (unsigned long long)a->rss,
			         (unsigned long long)a->mem_limit, a->limits_note);
			sv_stop(a, "memory", 1, now);
		} else if (!a->c || !a->want_run || a->restart_req) {
			sv_stop(a, !a->c ? "removed" : a->restart_req ? "restart" : "stop", 0, now);
		}
		break;
	case SV_STOPPING:
		if (now >= a->kill_at) {
			sv_kill_group(a, SIGKILL);
			a->kill_at = now + 1000;
		}
		break;
	case SV_WAITING:
	case SV_EXITED:
	case SV_STOPPED:
		if (!a->c || !a->want_run) /* an upgrade's hold stops restarts, not its start */
			break;
		if (a->state == SV_STOPPED || a->restart_req ||
		    (a->state == SV_WAITING && now >= a->next_start))
			sv_start(sv, a, now);
		break;
	}
	sv_proc_tail(sv, a);
}

/* ---- config and reload ---- */

/* Applies the section when it changed since the last tick: agents added start, removed ones
 * stop, changed ones restart; a section that does not pass leaves everything as it runs. */
static void sv_reconf(struct sv *sv, int64_t now)
{
	json_t *sect = outpost_plugin_config(sv->pc), *agents;
	char *text = json_dumps(sect, JSON_SORT_KEYS | JSON_COMPACT), msg[512];
	struct sv_conf *nc;
	size_t i;

	if (!text || (sv->conf_text && strcmp(text, sv->conf_text) == 0)) {
		free(text);
		return;
	}
	free(sv->conf_text);
	sv->conf_text = text;
	if (sv_conf_new(sect, &nc, msg, sizeof(msg)) < 0) {
		outpost_log(sv->pc, OUTPOST_LOG_ERROR,
		            "%s; fix the agent config (the agents keep "
		            "running as they were)",
		            msg);
		snprintf(sv->conf_error, sizeof(sv->conf_error), "%s", msg);
		return;
	}
	sv->conf_error[0] = '\0';
	for (i = 0; i < sv->n; i++)
		if (sv->ag[i]->c)
			sv->ag[i]->c = NULL; /* matched again below, or removed */
	agents = json_object_get(nc->head.json, "agents");
	for (i = 0; i < nc->agents.n; i++) {
		const struct sv_agent_conf *ac = (const struct sv_agent_conf *)nc->agents.v + i;
		char *t = json_dumps(json_array_get(agents, i), JSON_SORT_KEYS | JSON_COMPACT);
		struct sv_agent *a = NULL;
		for (size_t j = 0; j < sv->n; j++)
			if (strcmp(sv->ag[j]->name, ac->name) == 0)
				a = sv->ag[j];
		if (!a && sv->n < sizeof(sv->ag) / sizeof(sv->ag[0]) &&
		    (a = calloc(1, sizeof(*a)))) {
			snprintf(a->name, sizeof(a->name), "%s", ac->name);
			a->want_run = 1;
			a->healthy = -1;
			a->backoff = ac->backoff_ms;
			sv->ag[sv->n++] = a;
		}
		if (!a) {
			free(t);
			continue;
		}
		if (a->conf_text && t && strcmp(a->conf_text, t) != 0 && a->state == SV_RUNNING)
			a->restart_req = 1;
		if (a->conf_text && t && strcmp(a->conf_text, t) != 0)
			a->backoff = ac->backoff_ms;
		free(a->conf_text);
		a->conf_text = t;
		a->c = ac;
	}
	conf_free(sv->conf);
	sv->conf = nc;
	(void)now;
}

/* ---- metrics ---- */

static void sample(json_t *s, const char *name, const char *agent, double v)
{
	char key[128];

	snprintf(key, sizeof(key), "%s{agent=\"%s\"}", name, agent);
	json_array_append_new(s, json_pack("[s, f]", key, v));
}

static json_t *sv_metrics(struct sv *sv)
{
	json_t *s = json_array();

	for (size_t i = 0; i < sv->n; i++) {
		struct sv_agent *a = sv->ag[i];
		if (!a->c)
			continue;
		sample(s, "supervise_up", a->name, a->state == SV_RUNNING);
		sample(s, "supervise_restarts_total", a->name, (double)a->restarts);
		sample(s, "supervise_crashes_total", a->name, (double)a->crashes);
		sample(s, "supervise_memory_bytes", a->name, (double)a->rss);
		sample(s, "supervise_cpu_percent", a->name, a->cpu_pct);
		if (a->c->health.n)
			sample(s, "supervise_healthy", a->name, a->healthy == 1);
	}
	if (!json_array_size(s)) {
		json_decref(s);
		return NULL;
	}
	return json_pack("{s:I, s:o}", "t", (json_int_t)clk_real_ms(), "samples", s);
}

void sv_publish(struct sv *sv)
{
	json_t *evs, *batch;
	int rc;

	pthread_mutex_lock(&sv->lock);
	evs = sv->events;
	sv->events = json_array();
	pthread_mutex_unlock(&sv->lock);
	if (json_array_size(evs)) {
		batch = json_pack("{s:o}", "events", evs);
		rc = outpost_publish(sv->pc, "events", batch);
		json_decref(batch);
		if (rc < 0 && !atomic_fetch_add(&sv->publish_warned, 1))
			outpost_log(
			    sv->pc,
			    rc == OUTPOST_E_UNAVAILABLE ? OUTPOST_LOG_INFO : OUTPOST_LOG_WARN,
			    "events not handed to the hub (%s); the log and supervise.status "
			    "have them",
			    err_name(rc));
	} else {
		json_decref(evs);
	}
}

static void sv_tick(struct outpost_plugin_ctx *pc, void *arg)
{
	struct sv *sv = arg;
	int64_t now = clk_mono_ms();
	json_t *m = NULL;
	size_t i;
	int need;

	pthread_mutex_lock(&sv->lock);
	sv_reconf(sv, now);
	/* /proc is read each tick only for a limit the RSS check holds; else when metrics are
	 * due. */
	need = sv->conf && now >= sv->metrics_next;
	for (i = 0; i < sv->n; i++)
		need |= sv->ag[i]->pid > 0 && sv->ag[i]->mem_limit && !sv->ag[i]->mem_by_cgroup;
	if (need)
		sv_proc_sample(sv, now);
	for (i = 0; i < sv->n; i++)
		sv_step(sv, sv->ag[i], now);
	/* Removed agents, once ended, are forgotten (a health check of theirs ended first). */
	for (i = 0; i < sv->n;) {
		if (!sv->ag[i]->c && sv->ag[i]->hc_pid > 0)
			kill(-sv->ag[i]->hc_pid, SIGKILL);
		if (!sv->ag[i]->c && sv->ag[i]->pid <= 0 && sv->ag[i]->hc_pid <= 0) {
			sv_agent_free(sv->ag[i]);
			sv->ag[i] = sv->ag[--sv->n];
		} else {
			i++;
		}
	}
	if (sv->conf && now >= sv->metrics_next) {
		sv->metrics_next = now + sv->conf->metrics_s * 1000;
		m = sv_metrics(sv);
	}
	pthread_mutex_unlock(&sv->lock);
	sv_publish(sv);
	if (m && outpost_publish(sv->pc, "metrics", m) < 0 &&
	    !atomic_fetch_add(&sv->publish_warned, 1))
		outpost_log(pc, OUTPOST_LOG_INFO, "metrics not handed to the hub");
	json_decref(m);
	if (sv->conf && sv->conf->interval_ms != sv->timer_ms) {
		outpost_timer_del(pc, sv->timer);
		sv->timer_ms = sv->conf->interval_ms;
		sv->timer = outpost_timer_add(pc, sv->timer_ms, sv_tick, sv);
	}
}

/* ---- ops ---- */

static json_t *sv_describe(const struct sv_agent *a, int64_t now)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "name", a->name, "state",
	              state_names[a->state], "starts", (json_int_t)a->starts, "restarts",
	              (json_int_t)a->restarts, "crashes", (json_int_t)a->crashes, "unhealthy",
	              (json_int_t)a->unhealthy, "memory_kills", (json_int_t)a->mem_kills);

	if (a->pid > 0) {
		json_object_set_new(o, "pid", json_integer(a->pid));
		json_object_set_new(o, "since", json_integer(a->started_real));
		json_object_set_new(o, "memory_bytes", json_integer((json_int_t)a->rss));
		json_object_set_new(o, "cpu_percent", json_real(a->cpu_pct));
		json_object_set_new(o, "processes", json_integer(a->nprocs));
	}
	if (a->state == SV_WAITING)
		json_object_set_new(o, "restart_in_ms",
		                    json_integer(a->next_start > now ? a->next_start - now : 0));
	if (a->last_exit_real)
		json_object_set_new(o, "last_exit",
		                    json_pack("{s:I, s:i, s:i, s:s}", "at",
		                              (json_int_t)a->last_exit_real, "code", a->last_code,
		                              "signal", a->last_signal, "reason", a->last_reason));
	if (a->c && a->c->health.n)
		json_object_set_new(
		    o, "health",
		    json_pack("{s:o, s:i, s:s}", "healthy",
		              a->healthy < 0 ? json_null() : json_boolean(a->healthy), "failures",
		              a->hc_fails, "last", a->hc_last));
	if (a->c && (a->c->memory_max || a->c->cpu_max)) {
		json_t *l = json_object();
		if (a->c->memory_max)
			json_object_set_new(l, "memory_max", json_string(a->c->memory_max));
		if (a->c->cpu_max)
			json_object_set_new(l, "cpu_max", json_string(a->c->cpu_max));
		if (a->cg_dir[0])
			json_object_set_new(l, "cgroup", json_string(a->cg_dir));
		json_object_set_new(l, "memory_held_by",
		                    json_string(!a->mem_limit      ? "none"
		                                : a->mem_by_cgroup ? "cgroup"
		                                                   : "rss_check"));
		if (a->limits_note[0])
			json_object_set_new(l, "note", json_string(a->limits_note));
		json_object_set_new(o, "limits", l);
	}
	if (a->version[0] && a->version_start == a->starts)
		json_object_set_new(o, "version", json_string(a->version));
	if (a->hold)
		json_object_set_new(o, "upgrading", json_true());
	return o;
}

char **sv_argv_dup(const struct conf_strv *v)
{
	char **out = calloc(v->n + 1, sizeof(*out));

	for (size_t i = 0; out && i < v->n; i++)
		if (!(out[i] = strdup(v->v[i]))) {
			sv_argv_free(out);
			return NULL;
		}
	return out;
}

void sv_argv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int sv_run(char **argv, const char *user, int64_t ms, char *out, size_t outlen)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[200];
	int ok;

	spec.argv = argv;
	spec.user = user;
	spec.max_stdout = 4096;
	spec.deadline_ms = clk_mono_ms() + ms;
	if (proc_run(&spec, &res, msg, sizeof(msg)) < 0)
		return -1;
	ok = res.exit_code == 0 && !res.timed_out;
	if (out && outlen) {
		size_t n = res.out.len ? strcspn(res.out.data, "\r\n") : 0;
		snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1),
		         n ? res.out.data : "");
		if (!wire_utf8_ok(out, strlen(out)))
			snprintf(out, outlen, "(not UTF-8)");
	}
	proc_result_free(&res);
	return ok ? 0 : -1;
}

/* Runs a's version command (not under the lock) when its answer for this start is not known:
 * its first line of output. */
static void sv_version(struct sv *sv, const char *name)
{
	struct sv_agent *a;
	char **argv = NULL, *user = NULL, v[128];
	uint64_t start = 0;

	pthread_mutex_lock(&sv->lock);
	if ((a = sv_find(sv, name)) && a->c->version.n && a->state == SV_RUNNING &&
	    a->version_start != a->starts) {
		argv = sv_argv_dup(&a->c->version);
		user = a->c->user ? strdup(a->c->user) : NULL;
		start = a->starts;
	}
	pthread_mutex_unlock(&sv->lock);
	if (argv && sv_run(argv, user, 5000, v, sizeof(v)) == 0 && v[0]) {
		pthread_mutex_lock(&sv->lock);
		if ((a = sv_find(sv, name)) && a->starts == start) {
			snprintf(a->version, sizeof(a->version), "%s", v);
			a->version_start = start;
		}
		pthread_mutex_unlock(&sv->lock);
	}
	sv_argv_free(argv);
	free(user);
}

static int op_status(struct outpost_call *call, json_t *args, json_t **result)
{
	struct sv *sv = outpost_call_state(call);
	const char *only = json_string_value(json_object_get(args, "name"));
	json_t *list = json_array();
	char names[2 * SV_AGENTS_MAX][40];
	size_t n = 0;
	int64_t now = clk_mono_ms();

	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->n; i++)
		if (sv->ag[i]->c && (!only || strcmp(only, sv->ag[i]->name) == 0))
			snprintf(names[n++], sizeof(names[0]), "%s", sv->ag[i]->name);
	pthread_mutex_unlock(&sv->lock);
	if (only && !n) {
		json_decref(list);
		return outpost_call_error(call, OUTPOST_E_NOT_FOUND,
		                          "no agent '%.40s' in " SV_WHERE ".agents", only);
	}
	for (size_t i = 0; i < n; i++)
		sv_version(sv, names[i]);
	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < n; i++) {
		struct sv_agent *a = sv_find(sv, names[i]);
		if (a)
			json_array_append_new(list, sv_describe(a, now));
	}
	*result = json_pack("{s:o, s:s*}", "agents", list, "config_error",
	                    sv->conf_error[0] ? sv->conf_error : NULL);
	pthread_mutex_unlock(&sv->lock);
	return 0;
}

int sv_wait_state(struct sv *sv, const char *name, unsigned mask, int64_t until)
{
	for (;;) {
		struct sv_agent *a;
		int done;
		pthread_mutex_lock(&sv->lock);
		a = sv_find(sv, name);
		done = !a || (mask & (1u << a->state));
		pthread_mutex_unlock(&sv->lock);
		if (done)
			return a ? 0 : -1;
		if (clk_mono_ms() >= until)
			return -1;
		nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
	}
}

enum sv_ask { ASK_RESTART, ASK_STOP, ASK_START };

/* restart, stop, start: the tick does it; the call waits to answer what came of it. */
static int op_ask(struct outpost_call *call, json_t *args, json_t **result, enum sv_ask ask)
{
	static const char *const op[] = {"restart", "stop", "start"};
	struct sv *sv = outpost_call_state(call);
	const char *name = json_string_value(json_object_get(args, "name"));
	struct sv_agent *a;
	uint64_t starts = 0;
	int64_t until, wait_ms = 0;
	unsigned mask;

	pthread_mutex_lock(&sv->lock);
	if (!(a = sv_find(sv, name))) {
		pthread_mutex_unlock(&sv->lock);
		return outpost_call_error(call, OUTPOST_E_NOT_FOUND,
		                          "no agent '%.40s' in " SV_WHERE ".agents", name);
	}
	if (a->hold) {
		pthread_mutex_unlock(&sv->lock);
		return outpost_call_error(call, OUTPOST_E_CONFLICT,
		                          "supervise.%s %s: an upgrade of it is under way", op[ask],
		                          name);
	}
	starts = a->starts;
	wait_ms = a->c->stop_timeout_ms + 2 * sv->conf->interval_ms + PROC_SPAWN_EXEC_MS;
	a->want_run = ask != ASK_STOP;
	if (ask == ASK_RESTART && a->state == SV_RUNNING)
		a->restart_req = 1;
	else if (ask != ASK_STOP && a->state != SV_RUNNING && a->state != SV_STOPPING) {
		a->state = SV_WAITING; /* now, not after the backoff */
		a->next_start = 0;
		a->backoff = a->c->backoff_ms;
	}
	pthread_mutex_unlock(&sv->lock);
	until = clk_mono_ms() + wait_ms;
	if (until > outpost_call_deadline(call) - 200)
		until = outpost_call_deadline(call) - 200;
	mask = ask == ASK_STOP ? 1u << SV_STOPPED | 1u << SV_EXITED | 1u << SV_WAITING
	                       : 1u << SV_RUNNING | 1u << SV_WAITING | 1u << SV_EXITED;
	for (;;) {
		if (sv_wait_state(sv, name, mask, until) < 0)
			break;
		pthread_mutex_lock(&sv->lock);
		a = sv_find(sv, name);
		/* A start is done once it started (or could not, and waits its backoff). */
		if (!a || ask == ASK_STOP || a->starts > starts ||
		    (a->state == SV_WAITING && a->next_start > 0) || clk_mono_ms() >= until) {
			pthread_mutex_unlock(&sv->lock);
			break;
		}
		pthread_mutex_unlock(&sv->lock);
		nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
	}
	pthread_mutex_lock(&sv->lock);
	a = sv_find(sv, name);
	*result = a ? sv_describe(a, clk_mono_ms()) : json_null();
	pthread_mutex_unlock(&sv->lock);
	sv_publish(sv);
	return 0;
}

static int op_restart(struct outpost_call *call, json_t *args, json_t **result)
{
	return op_ask(call, args, result, ASK_RESTART);
}

static int op_stop(struct outpost_call *call, json_t *args, json_t **result)
{
	return op_ask(call, args, result, ASK_STOP);
}

static int op_start(struct outpost_call *call, json_t *args, json_t **result)
{
	return op_ask(call, args, result, ASK_START);
}

/* For the host's facts: each agent's state and version (docs/plugins.md, "Facts"). */
static int op_facts(struct outpost_call *call, json_t *args, json_t **result)
{
	json_t *st = NULL, *out = json_array(), *a;
	size_t i;
	int rc = op_status(call, args, &st);

	if (rc < 0) {
		json_decref(out);
		return rc;
	}
	json_array_foreach(json_object_get(st, "agents"), i, a) json_array_append_new(
	    out, json_pack("{s:O, s:O, s:O*}", "name", json_object_get(a, "name"), "state",
	                   json_object_get(a, "state"), "version", json_object_get(a, "version")));
	json_decref(st);
	*result = json_pack("{s:o}", "agents", out);
	return 0;
}

/* ---- life cycle ---- */

static void sv_fini(void *state)
{
	struct sv *sv = state;
	int st;

	if (!sv)
		return;
	/* The agents go on without us? No: a supervisor that stops leaves no unsupervised
	 * children behind; systemd's unit restarts the agent, which starts them again. */
	for (size_t i = 0; i < sv->n; i++) {
		struct sv_agent *a = sv->ag[i];
		if (a->hc_pid > 0) {
			kill(-a->hc_pid, SIGKILL);
			waitpid(a->hc_pid, &st, 0);
		}
		if (a->pid > 0) {
			int64_t until =
			    clk_mono_ms() + (a->stop_timeout_ms > 3000 ? 3000 : a->stop_timeout_ms);
			sv_kill_group(a, SIGTERM);
			while (waitpid(a->pid, &st, WNOHANG) == 0 && clk_mono_ms() < until)
				nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
			sv_kill_group(a, SIGKILL);
			waitpid(a->pid, &st, 0);
		}
		sv_agent_free(a);
	}
	conf_free(sv->conf);
	free(sv->conf_text);
	json_decref(sv->events);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
}

static int sv_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct sv *sv = calloc(1, sizeof(*sv));

	if (!sv)
		return OUTPOST_E_INTERNAL;
	sv->pc = pc;
	pthread_mutex_init(&sv->lock, NULL);
	sv->events = json_array();
	/* The config is read here (its error logged at start) and the agents start at the
	 * first tick, once the agent's link to the hub exists for their events. */
	sv_reconf(sv, clk_mono_ms());
	sv->timer_ms = sv->conf ? sv->conf->interval_ms : 1000;
	sv->timer = outpost_timer_add(pc, sv->timer_ms, sv_tick, sv);
	if (sv->timer < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "cannot add the supervise timer (%d)",
		            sv->timer);
		sv_fini(sv);
		return OUTPOST_E_INTERNAL;
	}
	*state = sv;
	return 0;
}

static const struct outpost_arg status_args[] = {
    {"name", OUTPOST_ARG_STRING, 0, "one agent (default: all)"},
    {NULL, 0, 0, NULL},
};
static const struct outpost_arg name_args[] = {
    {"name", OUTPOST_ARG_STRING, 1, "the agent, as named in plugins.supervise.agents"},
    {NULL, 0, 0, NULL},
};
static const struct outpost_arg upgrade_args[] = {
    {"name", OUTPOST_ARG_STRING, 1, "the agent, as named in plugins.supervise.agents"},
    {"source", OUTPOST_ARG_STRING, 1, "the new binary, a file on this host (outpost cp it)"},
    {"sha256", OUTPOST_ARG_STRING, 0, "its sha256 in hex: refused when the file differs"},
    {"health_timeout_ms", OUTPOST_ARG_INT, 0,
     "how long the new version has to pass its health check (default 30000)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op sv_ops[] = {
    {"status", op_status, status_args, 0,
     "each agent: state, pid, restarts, crashes, last exit, health, memory, CPU, limits, version"},
    {"facts", op_facts, status_args, 0, "each agent's state and version, for the host's facts"},
    {"restart", op_restart, name_args, OUTPOST_OP_MUTATING,
     "stops the agent (SIGTERM, then SIGKILL after stop_timeout_ms) and starts it again"},
    {"stop", op_stop, name_args, OUTPOST_OP_MUTATING,
     "stops the agent and keeps it stopped until supervise.start (not across an agent restart)"},
    {"start", op_start, name_args, OUTPOST_OP_MUTATING,
     "starts a stopped or exited agent now, without waiting for its backoff"},
    {"upgrade", sv_op_upgrade, upgrade_args, OUTPOST_OP_MUTATING,
     "stop, replace the binary, start, health-check; the old binary back if it is unhealthy"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_supervise = {
    OUTPOST_PLUGIN_ABI, "supervise", "1.0", sv_init, sv_fini, sv_ops,
};
