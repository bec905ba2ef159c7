/* The built-in `security` plugin (docs/plugins/security.md): records what an intruder or a
 * careless operator changes on a host: the files that grant access (sec_files.c), the
 * firewall, listening sockets and setuid files (sec_net.c). A baseline is taken on the first
 * start and kept in the agent's database, so a restart reports only what changed meanwhile;
 * inotify brings a changed file's check at once, a periodic full check catches the rest.
 * Every difference becomes an event on the "events" stream to the hub.
 *
 * One checker thread of its own does the work (hashing, running the firewall's listing,
 * walking /proc): the loop's timer and watches only hand it work. The baseline is guarded by
 * one lock, base_lock, held for a whole check and by the ops. */
#include "security.h"
#include "plugins/builtin.h"
#include "core/wire.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <time.h>

#define SEC_INTERVAL_DEFAULT 300000
#define SEC_INTERVAL_MIN 1000
#define SEC_PENDING_MAX 256    /* paths a watch handed over and not yet checked */
#define SEC_AUDIT_WAIT_MS 1000 /* a check's events wait this long for who made them */
#define SEC_WATCH_MASK                                                                             \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)

struct sec {
	struct outpost_plugin_ctx *pc;
	struct sec_conf conf;
	char root[PATH_MAX];
	json_t *fw_default; /* the firewall listings when the config names none */
	json_t *conf_json;  /* the section as read at start (conf borrows from it) */
	pthread_t th;
	int started;

	/* Work for the checker thread, and its answer to the loop (dirs to watch). */
	pthread_mutex_t work_lock;
	pthread_cond_t work_cond;
	int stop, full_due, fw_due;
	json_t *pending; /* host paths a watch named */
	json_t *dirs;    /* directories to watch (host paths), set by the thread */

	/* The loop's side: watch ids by directory, nftables' notifications. Loop thread only. */
	json_t *watches;
	int timer;
	int nft_fd, nft_id;
	char nft_error[200];
	unsigned long long nft_changes; /* notifications that brought a firewall check */

	/* Who made a change: the kernel's audit records (sec_audit.c). */
	struct sec_audit audit;
	int audit_init, audit_id;
	int kernel_audit; /* auditing on, as the last full check found: checker thread only */
	char audit_error[200];

	/* The baseline {"files", "firewall", "listen", "setuid", "taken_ms"}, and counters. */
	pthread_mutex_t base_lock;
	json_t *base;
	int64_t last_check_ms;
	unsigned long long checks, events, publish_errors;
	char sockets_error[200];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- helpers shared by the checks (security.h) ---- */

void sec_event(struct sec_run *r, const char *kind, const char *severity, json_t *data,
               const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	if (!wire_utf8_ok(msg, strlen(msg)))
		snprintf(msg, sizeof(msg), "%s", kind);
	json_array_append_new(
	    r->events, json_pack("{s:s, s:s, s:I, s:s, s:o*}", "kind", kind, "severity", severity,
	                         "ts", (json_int_t)r->now_ms, "message", msg, "data", data));
}

void sec_digest(const void *p, size_t n, char out[72])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, p, n);
	memcpy(out, "sha256:", 7);
	sodium_bin2hex(out + 7, 65, h, sizeof(h));
}

json_t *sec_lines(const char *text, size_t len, int comments)
{
	json_t *lines = json_array();
	const char *p = text, *end = text + len;

	while (lines && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		if (n && !(comments && p[0] == '#')) {
			if (wire_utf8_ok(p, n)) {
				json_array_append_new(lines, json_stringn(p, n));
			} else {
				char d[72], line[96];
				sec_digest(p, n, d);
				snprintf(line, sizeof(line), "(not UTF-8: %s)", d);
				json_array_append_new(lines, json_string(line));
			}
		}
		p += n + 1;
	}
	return lines;
}

/* The lines of a not in b, counted as a multiset (a second "}" is a line added), in a's
 * order, at most SEC_DIFF_LINES (and "more" beyond) into out[key]. */
static void diff_side(json_t *out, const char *key, const json_t *a, const json_t *b)
{
	json_t *counts = json_object(), *list = json_array(), *v, *n;
	size_t i, more = 0;

	json_array_foreach(b, i, v)
	{
		n = json_object_get(counts, json_string_value(v));
		json_object_set_new(counts, json_string_value(v),
		                    json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	json_array_foreach(a, i, v)
	{
		n = json_object_get(counts, json_string_value(v));
		if (n && json_integer_value(n) > 0) {
			json_integer_set(n, json_integer_value(n) - 1);
			continue;
		}
		if (json_array_size(list) < SEC_DIFF_LINES)
			json_array_append(list, v);
		else
			more++;
	}
	json_object_set_new(out, key, list);
	if (more)
		json_object_set_new(out, strcmp(key, "added") ? "removed_more" : "added_more",
		                    json_integer((json_int_t)more));
	json_decref(counts);
}

json_t *sec_diff(const json_t *before, const json_t *after)
{
	json_t *d = json_object();

	diff_side(d, "added", after, before);
	diff_side(d, "removed", before, after);
	return d;
}

/* ---- config ---- */

static const struct outpost_arg conf_fields[] = {
    {"enabled", OUTPOST_ARG_BOOL, 0, "watch this host (default false)"},
    {"root", OUTPOST_ARG_STRING, 0, "the prefix of every path (tests: a fake /etc)"},
    {"interval_ms", OUTPOST_ARG_INT, 0, "the full check, at least 1000 (default 300000)"},
    {"firewall", WIRE_ARG_ANY, 0, "listing commands: [[argv...], ...]; [] for none"},
    {"firewall_netns", OUTPOST_ARG_STRING, 0,
     "the network namespace whose nftables notifications bring a check (default: the agent's)"},
    {"sockets", OUTPOST_ARG_BOOL, 0, "new listening sockets (default true)"},
    {"audit", OUTPOST_ARG_BOOL, 0,
     "who made a change, from the kernel's audit records (default true)"},
    {"setuid_roots", OUTPOST_ARG_ARRAY, 0, "directories walked for setuid/setgid files"},
    {NULL, 0, 0, NULL},
};

/* Reads the section into c (strings and arrays borrowed from conf). 0, or BAD_ARGS with msg
 * saying where ("plugins.security.interval_ms: ..."). */
static int conf_load(json_t *conf, json_t *firewall_default, struct sec_conf *c, char *root,
                     char *msg, size_t msglen)
{
	char sub[200];
	json_t *v, *a;
	size_t i, j;

	memset(c, 0, sizeof(*c));
	c->interval_ms = SEC_INTERVAL_DEFAULT;
	c->sockets = 1;
	c->audit = 1;
	c->root = root;
	root[0] = '\0';
	if (wire_check_named(conf_fields, conf, "field", sub, sizeof(sub)) < 0) {
		snprintf(msg, msglen, "plugins.security: %s", sub);
		return OUTPOST_E_BAD_ARGS;
	}
	c->enabled = json_is_true(json_object_get(conf, "enabled"));
	if (json_is_boolean(v = json_object_get(conf, "sockets")))
		c->sockets = json_is_true(v);
	if (json_is_boolean(v = json_object_get(conf, "audit")))
		c->audit = json_is_true(v);
	if ((v = json_object_get(conf, "root")) && json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strlen(s);
		if (s[0] != '/' || n >= PATH_MAX - 256 || strstr(s, "/../") ||
		    (n >= 3 && strcmp(s + n - 3, "/..") == 0)) {
			snprintf(
			    msg, msglen,
			    "plugins.security.root: an absolute path without '..' (\"/\" for the "
			    "host itself)");
			return OUTPOST_E_BAD_ARGS;
		}
		/* "/" and "/x/" both end without the slash: paths add their own. */
		snprintf(root, PATH_MAX, "%s", s);
		while (n && root[n - 1] == '/')
			root[--n] = '\0';
	}
	if ((v = json_object_get(conf, "interval_ms")) && json_is_integer(v)) {
		if (json_integer_value(v) < SEC_INTERVAL_MIN || json_integer_value(v) > 86400000) {
			snprintf(msg, msglen,
			         "plugins.security.interval_ms: milliseconds from %d to 86400000 "
			         "(a day)",
			         SEC_INTERVAL_MIN);
			return OUTPOST_E_BAD_ARGS;
		}
		c->interval_ms = json_integer_value(v);
	}
	c->firewall = firewall_default;
	if ((v = json_object_get(conf, "firewall")) && !json_is_null(v)) {
		if (!json_is_array(v) || json_array_size(v) > 8)
			goto bad_fw;
		json_array_foreach(v, i, a)
		{
			json_t *arg;
			if (!json_is_array(a) || json_array_size(a) == 0 ||
			    json_array_size(a) > 31) {
				snprintf(msg, msglen,
				         "plugins.security.firewall[%zu]: a command as an array of "
				         "1 to 31 "
				         "strings, e.g. [\"nft\", \"list\", \"ruleset\"]",
				         i);
				return OUTPOST_E_BAD_ARGS;
			}
			json_array_foreach(a, j, arg) if (!json_is_string(arg) ||
			                                  json_string_length(arg) == 0)
			{
				snprintf(msg, msglen,
				         "plugins.security.firewall[%zu][%zu]: a non-empty string",
				         i, j);
				return OUTPOST_E_BAD_ARGS;
			}
		}
		c->firewall = v;
	}
	if ((v = json_object_get(conf, "firewall_netns")) && json_is_string(v)) {
		const char *ns = json_string_value(v);
		if (ns[0] != '/' || strlen(ns) >= PATH_MAX || strstr(ns, "/../")) {
			snprintf(msg, msglen,
			         "plugins.security.firewall_netns: an absolute path of a network "
			         "namespace (\"/run/netns/NAME\", \"/proc/PID/ns/net\")");
			return OUTPOST_E_BAD_ARGS;
		}
		c->fw_netns = ns;
	}
	c->setuid_roots = json_object_get(conf, "setuid_roots");
	json_array_foreach(c->setuid_roots, i,
	                   a) if (!json_is_string(a) || json_string_value(a)[0] != '/')
	{
		snprintf(msg, msglen, "plugins.security.setuid_roots[%zu]: an absolute path", i);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
bad_fw:
	snprintf(msg, msglen,
	         "plugins.security.firewall: an array of at most 8 commands, each an array of "
	         "strings ([] for none)");
	return OUTPOST_E_BAD_ARGS;
}

/* ---- the checks ---- */

static json_t *base_part(json_t *base, const char *key)
{
	json_t *v = json_object_get(base, key);

	if (!json_is_object(v)) {
		v = json_object();
		json_object_set_new(base, key, v);
	}
	return v;
}

/* Names who made each change (data.who) where the kernel's audit records tell: a file's
 * last writer, nftables' last changer. The records may come a moment after the change:
 * the check's events wait for them, SEC_AUDIT_WAIT_MS at most in all. */
static void sec_who(struct sec *s, struct sec_run *r)
{
	json_t *ev, *taken, *who;
	size_t i;
	int64_t deadline;

	if (s->audit.fd < 0 || !json_array_size(r->events))
		return;
	/* Asked again now (one netlink round trip, only when there is news): auditing may have
	 * been turned on since the last full check. */
	if ((s->kernel_audit = sec_audit_kernel_on()) != 1)
		return;
	deadline = mono_ms() + SEC_AUDIT_WAIT_MS;
	taken = json_object(); /* a path's writer, for each of its events (passwd and uid 0) */
	json_array_foreach(r->events, i, ev)
	{
		json_t *data = json_object_get(ev, "data");
		const char *path = json_string_value(json_object_get(data, "path"));
		char full[PATH_MAX] = "";
		if (path)
			snprintf(full, sizeof(full), "%s%s", s->root, path);
		else if (strcmp(json_string_value(json_object_get(ev, "kind")),
		                "security.firewall_changed") != 0)
			continue;
		if (!(who = json_object_get(taken, full))) {
			if (!(who = sec_audit_who(&s->audit, full[0] ? full : NULL, deadline)))
				continue;
			json_object_set_new(taken, full, who);
		}
		json_object_set(data, "who", who);
	}
	json_decref(taken);
}

/* Publishes what a check found and keeps the baseline. Called with base_lock held. */
static void sec_finish(struct sec *s, struct sec_run *r)
{
	size_t i;
	json_t *ev;

	sec_who(s, r);
	if (r->changed && outpost_state_put(s->pc, "baseline", s->base) < 0)
		outpost_log(s->pc, OUTPOST_LOG_WARN, "security: cannot keep the baseline");
	if (!json_array_size(r->events))
		return;
	json_array_foreach(r->events, i, ev)
	    outpost_log(s->pc, OUTPOST_LOG_INFO, "security: %s: %s",
	                json_string_value(json_object_get(ev, "kind")),
	                json_string_value(json_object_get(ev, "message")));
	{
		json_t *batch = json_pack("{s:O}", "events", r->events);
		int rc = outpost_publish(s->pc, "events", batch);
		/* Without a hub the log line above is all there is. */
		if (rc < 0 && rc != OUTPOST_E_UNAVAILABLE) {
			s->publish_errors++;
			outpost_log(s->pc, OUTPOST_LOG_WARN,
			            "security: %zu events were not handed to the hub (%d)",
			            json_array_size(r->events), rc);
		}
		json_decref(batch);
	}
	s->events += json_array_size(r->events); /* after: status then tells they are handed over */
}

/* A full check (first: a new baseline, no events). base_lock held. */
static void sec_full(struct sec *s, int first)
{
	struct sec_run r = {json_array(), 0, real_ms()};
	json_t *dirs = NULL;
	char msg[200] = "";

	if (s->audit.fd >= 0)
		s->kernel_audit = sec_audit_kernel_on();
	sec_files_check(&s->conf, base_part(s->base, "files"), first, &r, &dirs);
	sec_firewall_check(&s->conf, base_part(s->base, "firewall"), first, &r);
	if (s->conf.sockets &&
	    sec_sockets_check(base_part(s->base, "listen"), first, &r, msg, sizeof(msg)) < 0 &&
	    strcmp(msg, s->sockets_error) != 0) {
		outpost_log(s->pc, OUTPOST_LOG_WARN, "security: listening sockets: %s", msg);
	}
	snprintf(s->sockets_error, sizeof(s->sockets_error), "%s", msg);
	sec_setuid_check(&s->conf, base_part(s->base, "setuid"), first, &r);
	sec_logins_check(&s->conf, base_part(s->base, "wtmp"), first, &r);
	if (first) {
		json_object_set_new(s->base, "taken_ms", json_integer((json_int_t)r.now_ms));
		r.changed = 1;
	}
	s->checks++;
	s->last_check_ms = r.now_ms;
	sec_finish(s, &r);
	json_decref(r.events);
	pthread_mutex_lock(&s->work_lock);
	json_decref(s->dirs);
	s->dirs = dirs;
	pthread_mutex_unlock(&s->work_lock);
	/* The check's garbage (listings, /proc walks, JSON) lies between the baseline's live
	 * trees in the agent's one heap: its pages go back to the kernel, not kept for later. */
	malloc_trim(0);
}

static void *sec_thread(void *arg)
{
	struct sec *s = arg;
	json_t *paths, *v;
	size_t i;
	int full, fw;

	pthread_mutex_lock(&s->work_lock);
	while (!s->stop) {
		if (!s->full_due && !s->fw_due && json_array_size(s->pending) == 0) {
			pthread_cond_wait(&s->work_cond, &s->work_lock);
			continue;
		}
		full = s->full_due;
		fw = s->fw_due && !full;
		s->full_due = s->fw_due = 0;
		paths = s->pending;
		s->pending = json_array();
		pthread_mutex_unlock(&s->work_lock);

		pthread_mutex_lock(&s->base_lock);
		if (full) {
			/* No baseline yet (a first start, or one lost): take it quietly. */
			sec_full(s, !json_object_get(s->base, "taken_ms"));
		} else {
			struct sec_run r = {json_array(), 0, real_ms()};
			if (fw)
				sec_firewall_check(&s->conf, base_part(s->base, "firewall"), 0, &r);
			json_array_foreach(paths, i, v) sec_files_check_path(
			    &s->conf, base_part(s->base, "files"), json_string_value(v), &r);
			sec_finish(s, &r);
			json_decref(r.events);
		}
		pthread_mutex_unlock(&s->base_lock);
		json_decref(paths);
		pthread_mutex_lock(&s->work_lock);
	}
	pthread_mutex_unlock(&s->work_lock);
	return NULL;
}

/* ---- the loop's side: timer and watches ---- */

static void sec_wake_full(struct sec *s)
{
	pthread_mutex_lock(&s->work_lock);
	s->full_due = 1;
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->work_lock);
}

static void sec_on_watch(struct outpost_plugin_ctx *pc, void *arg, const char *path, uint32_t mask,
                         const char *name)
{
	struct sec *s = arg;
	size_t rl = strlen(s->root);
	char host[PATH_MAX];

	if (!name || !*name || strncmp(path, s->root, rl) != 0 ||
	    (size_t)snprintf(host, sizeof(host), "%s/%s", path + rl, name) >= sizeof(host))
		return;
	pthread_mutex_lock(&s->work_lock);
	if (json_array_size(s->pending) < SEC_PENDING_MAX)
		json_array_append_new(s->pending, json_string(host));
	else
		s->full_due = 1; /* a burst: one full check sees it all */
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->work_lock);
}

/* Watches the directories the last full check named that are not watched yet. */
static void sec_watch_sync(struct sec *s)
{
	json_t *dirs, *v;
	size_t i;

	pthread_mutex_lock(&s->work_lock);
	dirs = json_incref(s->dirs);
	pthread_mutex_unlock(&s->work_lock);
	json_array_foreach(dirs, i, v)
	{
		char full[PATH_MAX];
		int id;
		if (json_object_get(s->watches, json_string_value(v)))
			continue;
		snprintf(full, sizeof(full), "%s%s", s->root, json_string_value(v));
		id = outpost_watch_add(s->pc, full, SEC_WATCH_MASK, sec_on_watch, s);
		/* A directory that is not there yet is tried again at the next sync. */
		if (id > 0)
			json_object_set_new(s->watches, json_string_value(v), json_integer(id));
	}
	json_decref(dirs);
}

/* nftables said its rule set changed: the listings are run again now, not at the next full
 * check. A burst (nft -f of a hundred rules) is one check or two. */
static void sec_on_nft(struct outpost_plugin_ctx *pc, void *arg, int fd, uint32_t events)
{
	struct sec *s = arg;

	if (!sec_nft_drain(fd))
		return;
	s->nft_changes++;
	pthread_mutex_lock(&s->work_lock);
	s->fw_due = 1;
	pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->work_lock);
}

static void sec_on_audit(struct outpost_plugin_ctx *pc, void *arg, int fd, uint32_t events)
{
	struct sec *s = arg;

	sec_audit_read(&s->audit);
}

static void sec_on_timer(struct outpost_plugin_ctx *pc, void *arg)
{
	struct sec *s = arg;

	sec_watch_sync(s);
	sec_wake_full(s);
}

/* ---- ops ---- */

static json_t *sec_status_locked(struct sec *s)
{
	json_t *fw = json_object(), *v;
	const char *k;

	json_object_foreach(json_object_get(s->base, "firewall"), k, v)
	    json_object_set(fw, k,
	                    json_object_get(v, "sha256") ? json_object_get(v, "sha256")
	                                                 : json_object_get(v, "error"));
	json_t *st = json_pack(
	    "{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:s*}", "enabled",
	    s->conf.enabled, "root", s->root[0] ? s->root : "/", "interval_ms",
	    (json_int_t)s->conf.interval_ms, "baseline_ms",
	    json_integer_value(json_object_get(s->base, "taken_ms")), "last_check_ms",
	    (json_int_t)s->last_check_ms, "checks", (json_int_t)s->checks, "files",
	    (json_int_t)json_object_size(json_object_get(s->base, "files")), "firewall", fw,
	    "listening", (json_int_t)json_object_size(json_object_get(s->base, "listen")), "setuid",
	    (json_int_t)json_object_size(json_object_get(s->base, "setuid")), "events",
	    (json_int_t)s->events, "sockets_error", s->sockets_error[0] ? s->sockets_error : NULL);

	/* How a firewall change is noticed: at once, or only at the next full check (why). */
	if (st && s->conf.enabled)
		json_object_set_new(
		    st, "firewall_notify",
		    s->nft_fd >= 0
		        ? json_pack("{s:s, s:I}", "via", "netlink", "changes",
		                    (json_int_t)s->nft_changes)
		        : json_pack("{s:s, s:s}", "via", "periodic", "why", s->nft_error));
	if (st && s->conf.enabled)
		json_object_set_new(
		    st, "audit",
		    s->audit.fd >= 0
		        ? json_pack("{s:s, s:o, s:I, s:I}", "via", "netlink", "kernel",
		                    s->kernel_audit < 0 ? json_null()
		                                        : json_boolean(s->kernel_audit),
		                    "records", (json_int_t)s->audit.records, "lost",
		                    (json_int_t)s->audit.lost)
		        : json_pack("{s:s, s:s}", "via", "none", "why", s->audit_error));
	return st;
}

static int op_status(struct outpost_call *call, json_t *args, json_t **result)
{
	struct sec *s = outpost_call_state(call);

	pthread_mutex_lock(&s->base_lock);
	*result = sec_status_locked(s);
	pthread_mutex_unlock(&s->base_lock);
	return *result ? 0 : outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
}

static int op_baseline(struct outpost_call *call, json_t *args, json_t **result)
{
	struct sec *s = outpost_call_state(call);
	const char *reason = json_string_value(json_object_get(args, "reason"));
	struct sec_run r;

	if (!s->conf.enabled)
		return outpost_call_error(call, OUTPOST_E_UNAVAILABLE,
		                          "the security plugin is not enabled: set "
		                          "plugins.security.enabled in the agent config");
	if (reason && (strlen(reason) > 200 || strpbrk(reason, "\r\n")))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "reason: one line of at most 200 bytes");
	pthread_mutex_lock(&s->base_lock);
	json_object_clear(s->base);
	sec_full(s, 1);
	/* The re-acceptance itself is news: the hub's record of who may have hidden what. */
	r = (struct sec_run){json_array(), 0, real_ms()};
	sec_event(&r, "security.baseline_accepted", "notice",
	          json_pack("{s:s?, s:I}", "reason", reason, "files",
	                    (json_int_t)json_object_size(json_object_get(s->base, "files"))),
	          "the security baseline was accepted anew%s%s", reason ? ": " : "",
	          reason ? reason : "");
	sec_finish(s, &r);
	json_decref(r.events);
	*result = sec_status_locked(s);
	pthread_mutex_unlock(&s->base_lock);
	outpost_call_log(call, OUTPOST_LOG_INFO, "security: baseline accepted anew%s%s",
	                 reason ? ": " : "", reason ? reason : "");
	return 0;
}

static const struct outpost_arg no_args[] = {{NULL, 0, 0, NULL}};
static const struct outpost_arg baseline_args[] = {
    {"reason", OUTPOST_ARG_STRING, 0, "why the current state is accepted (one line)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op sec_ops[] = {
    {"status", op_status, no_args, 0, "the baseline's size and age, the last check, counters"},
    {"baseline", op_baseline, baseline_args, OUTPOST_OP_MUTATING,
     "accept the host as it is now as the baseline (an event says so)"},
    {NULL, NULL, NULL, 0, NULL},
};

/* ---- init and fini ---- */

static void sec_free(void *state)
{
	struct sec *s = state;

	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->work_lock);
		s->stop = 1;
		pthread_cond_signal(&s->work_cond);
		pthread_mutex_unlock(&s->work_lock);
		pthread_join(s->th, NULL);
	}
	pthread_mutex_destroy(&s->work_lock);
	pthread_cond_destroy(&s->work_cond);
	pthread_mutex_destroy(&s->base_lock);
	if (s->nft_fd >= 0)
		close(s->nft_fd); /* the agent has taken it off the loop before fini */
	if (s->audit_init)
		sec_audit_close(&s->audit);
	json_decref(s->pending);
	json_decref(s->dirs);
	json_decref(s->watches);
	json_decref(s->base);
	json_decref(s->fw_default);
	json_decref(s->conf_json);
	free(s);
}

static int sec_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct sec *s = calloc(1, sizeof(*s));
	char msg[300];
	int rc;

	if (!s || sodium_init() < 0) {
		free(s);
		return OUTPOST_E_INTERNAL;
	}
	pthread_mutex_init(&s->work_lock, NULL);
	pthread_cond_init(&s->work_cond, NULL);
	pthread_mutex_init(&s->base_lock, NULL);
	s->pc = pc;
	s->nft_fd = -1;
	s->audit.fd = -1;
	s->pending = json_array();
	s->watches = json_object();
	s->fw_default = json_pack("[[s, s, s], [s]]", "nft", "list", "ruleset", "iptables-save");
	/* A copy: the section is the agent's until its next reload, and the checker thread
	 * reads it for the plugin's life (a reload does not change it: restart the agent). */
	s->conf_json = json_deep_copy(outpost_plugin_config(pc));
	if ((rc = conf_load(s->conf_json, s->fw_default, &s->conf, s->root, msg, sizeof(msg))) <
	    0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s; fix the agent config", msg);
		goto fail;
	}
	*state = s;
	if (!s->conf.enabled)
		return 0; /* ops answer; nothing is watched */
	if (outpost_state_get(pc, "baseline", &s->base) < 0 || !json_is_object(s->base)) {
		json_decref(s->base);
		s->base = json_object();
	}
	/* The first watches before the first check has named the homes' .ssh: those come at
	 * the first timer. Set before the thread starts: its first full check replaces them. */
	s->dirs = json_pack("[s, s, s, s, s, s, s, s]", "/etc", "/etc/ssh", "/etc/sudoers.d",
	                    "/etc/ssh/sshd_config.d", "/etc/cron.d", "/var/spool/cron",
	                    "/var/spool/cron/crontabs", "/etc/systemd/system");
	s->full_due = 1;
	if ((rc = pthread_create(&s->th, NULL, sec_thread, s)) != 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "security: cannot start its thread: %s",
		            strerror(rc));
		rc = OUTPOST_E_INTERNAL;
		goto fail;
	}
	s->started = 1;
	s->timer = outpost_timer_add(pc, s->conf.interval_ms, sec_on_timer, s);
	sec_watch_sync(s);
	if (json_array_size(s->conf.firewall)) {
		s->nft_fd = sec_nft_listen(s->conf.fw_netns, s->nft_error, sizeof(s->nft_error));
		if (s->nft_fd >= 0 &&
		    (s->nft_id = outpost_fd_add(pc, s->nft_fd, EPOLLIN, sec_on_nft, s)) < 0) {
			snprintf(s->nft_error, sizeof(s->nft_error),
			         "the agent's loop refused the notifications' socket (%d)",
			         s->nft_id);
			close(s->nft_fd);
			s->nft_fd = -1;
		}
		if (s->nft_fd < 0)
			outpost_log(pc, OUTPOST_LOG_INFO,
			            "security: %s; firewall changes are seen at the full check",
			            s->nft_error);
	} else {
		snprintf(s->nft_error, sizeof(s->nft_error), "no firewall listing configured");
	}
	if (!s->conf.audit) {
		snprintf(s->audit_error, sizeof(s->audit_error), "plugins.security.audit is false");
	} else {
		s->audit_init = 1;
		if (sec_audit_open(&s->audit, s->audit_error, sizeof(s->audit_error)) >= 0 &&
		    (s->audit_id = outpost_fd_add(pc, s->audit.fd, EPOLLIN, sec_on_audit, s)) < 0) {
			snprintf(s->audit_error, sizeof(s->audit_error),
			         "the agent's loop refused the audit socket (%d)", s->audit_id);
			close(s->audit.fd);
			s->audit.fd = -1;
		}
		if (s->audit.fd < 0)
			outpost_log(pc, OUTPOST_LOG_INFO, "security: %s; events cannot say who",
			            s->audit_error);
	}
	return 0;
fail:
	*state = NULL;
	sec_free(s);
	return rc;
}

const struct outpost_plugin outpost_plugin_security = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "security",
    .version = "1",
    .init = sec_init,
    .fini = sec_free,
    .ops = sec_ops,
};
