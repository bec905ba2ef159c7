/* Plugin registry and the init-time half of the plugin contract: see plugins.h. */
#include "plugins.h"
#include "spool.h"
#include "watch.h"
#include "core/buf.h"
#include "core/db.h"
#include "core/loop.h"
#include "core/event.h"
#include "core/wire.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct plugin_resident {
	int id;
	int watch_id;             /* > 0 for a watch */
	struct loop_timer *timer; /* for a timer */
	struct loop_fd *fdh;      /* for an fd */
	int fd;
	outpost_timer_fn tfn;
	outpost_watch_fn wfn;
	outpost_fd_fn ffn;
	void *arg;
	struct outpost_plugin_ctx *pc;
	struct plugin_resident *next;
};

struct plugins {
	const struct plugin_host *host;
	struct outpost_plugin_ctx **v;
	size_t n, cap;
};

static const char *const state_schema[] = {
    "CREATE TABLE plugin_state (plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (plugin, key)) WITHOUT ROWID",
};

int plugins_new(const struct plugin_host *host, struct plugins **out)
{
	struct plugins *ps;
	char msg[256];

	if (host->db &&
	    db_migrate(host->db, "plugin_state", state_schema, 1, msg, sizeof(msg)) < 0) {
		log_error(host->log, "plugins", "%s", msg);
		return OUTPOST_E_INTERNAL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return OUTPOST_E_INTERNAL;
	ps->host = host;
	*out = ps;
	return 0;
}

static void ctx_free(struct outpost_plugin_ctx *pc)
{
	if (!pc)
		return;
	json_decref(pc->config);
	pthread_mutex_destroy(&pc->conf_lock);
	free(pc->stats);
	if (pc->owned)
		execplug_free(pc->owned);
	free(pc);
}

int plugins_add(struct plugins *ps, const struct outpost_plugin *p, const char *kind,
                json_t *config, struct outpost_plugin_ctx **out)
{
	struct outpost_plugin_ctx *pc;
	size_t nops = 0;

	if (!wire_name_ok(p->name)) {
		log_error(ps->host->log, "plugins",
		          "%s plugin '%.64s' refused: its name must be 1 to %d of a-z 0-9 _, "
		          "starting with a letter",
		          kind, p->name ? p->name : "", WIRE_NAME_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	for (size_t i = 0; p->ops && p->ops[i].name; i++)
		if (!wire_name_ok(p->ops[i].name)) {
			log_error(ps->host->log, "plugins",
			          "plugin '%s' (%s) refused: op '%.64s' is not a name (1 to %d of "
			          "a-z 0-9 _, starting with a letter)",
			          p->name, kind, p->ops[i].name, WIRE_NAME_MAX);
			return OUTPOST_E_BAD_ARGS;
		}
	if (plugins_find(ps, p->name)) {
		log_error(ps->host->log, "plugins",
		          "plugin '%s' (%s) refused: a plugin of that name "
		          "is already loaded",
		          p->name, kind);
		return OUTPOST_E_CONFLICT;
	}
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 16;
		struct outpost_plugin_ctx **v = realloc(ps->v, cap * sizeof(*v));
		if (!v)
			return OUTPOST_E_INTERNAL;
		ps->v = v;
		ps->cap = cap;
	}
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return OUTPOST_E_INTERNAL;
	while (p->ops && p->ops[nops].name)
		nops++;
	pc->stats = calloc(nops ? nops : 1, sizeof(*pc->stats));
	if (!pc->stats) {
		free(pc);
		return OUTPOST_E_INTERNAL;
	}
	pthread_mutex_init(&pc->conf_lock, NULL);
	pc->plugin = p;
	pc->host = ps->host;
	pc->kind = kind;
	pc->nops = nops;
	pc->config = json_is_object(config) ? json_incref(config) : json_object();
	ps->v[ps->n++] = pc;
	if (out)
		*out = pc;
	return 0;
}

/* Refuses a plugin directory or file that someone else could write: whoever can write there
 * can run code as the agent (root). */
static int plugins_trusted(const struct logger *log, const char *path, const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		log_error(log, "plugins", "%s refused: owned by uid %u, not root or the agent",
		          path, (unsigned)st->st_uid);
		return 0;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		log_error(log, "plugins", "%s refused: writable by group or others (mode %04o)",
		          path, (unsigned)(st->st_mode & 07777));
		return 0;
	}
	return 1;
}

static void plugins_load_so(struct plugins *ps, const char *path, json_t *conf)
{
	const struct outpost_plugin *p;
	outpost_plugin_entry_fn entry;
	struct outpost_plugin_ctx *pc;
	void *dl;

	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		log_error(ps->host->log, "plugins", "%s refused: %s", path, dlerror());
		return;
	}
	*(void **)&entry = dlsym(dl, OUTPOST_PLUGIN_ENTRY);
	p = entry ? entry() : NULL;
	if (!p) {
		log_error(ps->host->log, "plugins", "%s refused: no %s() or it returned NULL", path,
		          OUTPOST_PLUGIN_ENTRY);
		goto fail;
	}
	if (p->abi != OUTPOST_PLUGIN_ABI) {
		log_error(ps->host->log, "plugins",
		          "%s refused: built for plugin ABI %d, this agent speaks ABI %d", path,
		          p->abi, OUTPOST_PLUGIN_ABI);
		goto fail;
	}
	if (!p->name || !p->ops) {
		log_error(ps->host->log, "plugins", "%s refused: no name or no ops table", path);
		goto fail;
	}
	if (plugins_add(ps, p, "shared", json_object_get(conf, p->name), &pc) < 0)
		goto fail;
	pc->dl = dl;
	log_info(ps->host->log, "plugins", "loaded shared-object plugin %s %s from %s", p->name,
	         p->version ? p->version : "?", path);
	return;
fail:
	dlclose(dl);
}

static void plugins_load_exec(struct plugins *ps, const char *path, json_t *conf)
{
	struct outpost_plugin *p;
	struct outpost_plugin_ctx *pc;

	if (execplug_load(ps->host->log, path, &p) < 0)
		return;
	if (plugins_add(ps, p, "exec", json_object_get(conf, p->name), &pc) < 0) {
		execplug_free(p);
		return;
	}
	pc->owned = p;
	log_info(ps->host->log, "plugins", "loaded executable plugin %s %s from %s", p->name,
	         p->version, path);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int plugins_load_dir(struct plugins *ps, const char *dir, json_t *conf)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0; /* no plugin directory: only built-ins */
		log_error(ps->host->log, "plugins", "plugin directory %s: %m", dir);
		return OUTPOST_E_INTERNAL;
	}
	if (!S_ISDIR(st.st_mode) || !plugins_trusted(ps->host->log, dir, &st))
		return OUTPOST_E_FORBIDDEN;
	d = opendir(dir);
	if (!d)
		return OUTPOST_E_INTERNAL;
	/* Sorted, so the load order (and so init order) does not depend on the filesystem. */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **v = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!v)
				break;
			names = v;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct buf path = BUF_INIT;
		size_t len = strlen(names[i]);
		if (buf_printf(&path, "%s/%s", dir, names[i]) < 0)
			goto next;
		if (lstat(path.data, &st) < 0 || !S_ISREG(st.st_mode)) {
			log_warn(ps->host->log, "plugins", "%s skipped: not a regular file",
			         path.data);
			goto next;
		}
		if (!plugins_trusted(ps->host->log, path.data, &st))
			goto next;
		if (len > 3 && strcmp(names[i] + len - 3, ".so") == 0)
			plugins_load_so(ps, path.data, conf);
		else if (st.st_mode & S_IXUSR)
			plugins_load_exec(ps, path.data, conf);
		else
			log_warn(ps->host->log, "plugins", "%s skipped: neither .so nor executable",
			         path.data);
	next:
		buf_free(&path);
		free(names[i]);
	}
	free(names);
	return 0;
}

void plugins_init_all(struct plugins *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct outpost_plugin_ctx *pc = ps->v[i];
		int rc = pc->plugin->init ? pc->plugin->init(pc, &pc->state) : 0;
		pc->enabled = rc == 0;
		if (rc < 0)
			log_error(ps->host->log, "plugins", "plugin %s disabled: init failed (%d)",
			          pc->plugin->name, rc);
	}
}

struct outpost_plugin_ctx *plugins_find(struct plugins *ps, const char *name)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i]->plugin->name, name) == 0)
			return ps->v[i];
	return NULL;
}

const struct outpost_op *plugins_find_op(struct outpost_plugin_ctx *pc, const char *op,
                                         size_t *index)
{
	for (size_t i = 0; i < pc->nops; i++)
		if (strcmp(pc->plugin->ops[i].name, op) == 0) {
			if (index)
				*index = i;
			return &pc->plugin->ops[i];
		}
	return NULL;
}

size_t plugins_count(const struct plugins *ps)
{
	return ps->n;
}

struct outpost_plugin_ctx *plugins_at(struct plugins *ps, size_t i)
{
	return i < ps->n ? ps->v[i] : NULL;
}

void plugins_reconfigure(struct plugins *ps, json_t *conf)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct outpost_plugin_ctx *pc = ps->v[i];
		json_t *sec = json_object_get(conf, pc->plugin->name);
		json_t *old;
		pthread_mutex_lock(&pc->conf_lock);
		old = pc->config;
		pc->config = json_is_object(sec) ? json_incref(sec) : json_object();
		pthread_mutex_unlock(&pc->conf_lock);
		json_decref(old);
	}
}

json_t *plugins_describe(struct plugins *ps)
{
	json_t *out = json_array();

	for (size_t i = 0; out && i < ps->n; i++) {
		struct outpost_plugin_ctx *pc = ps->v[i];
		json_t *ops = json_array();
		for (size_t j = 0; j < pc->nops; j++) {
			const struct outpost_op *op = &pc->plugin->ops[j];
			json_t *args = json_array();
			for (const struct outpost_arg *a = op->args; a && a->name; a++)
				json_array_append_new(
				    args, json_pack("{s:s, s:s, s:b, s:s}", "name", a->name, "type",
				                    wire_arg_type_name(a->type), "required",
				                    a->required, "help", a->help ? a->help : ""));
			json_array_append_new(
			    ops,
			    json_pack("{s:s, s:s, s:b, s:o, s:I, s:I}", "name", op->name, "help",
			              op->help ? op->help : "", "mutating",
			              (op->flags & OUTPOST_OP_MUTATING) != 0, "args", args, "calls",
			              (json_int_t)atomic_load(&pc->stats[j].calls), "errors",
			              (json_int_t)atomic_load(&pc->stats[j].errors)));
		}
		json_array_append_new(
		    out, json_pack("{s:s, s:s, s:s, s:b, s:o}", "name", pc->plugin->name, "version",
		                   pc->plugin->version ? pc->plugin->version : "", "kind", pc->kind,
		                   "enabled", pc->enabled, "ops", ops));
	}
	return out;
}

static void resident_free_all(struct plugins *ps, struct outpost_plugin_ctx *pc)
{
	while (pc->resident) {
		struct plugin_resident *r = pc->resident;
		pc->resident = r->next;
		if (r->timer)
			loop_timer_del(ps->host->loop, r->timer);
		if (r->watch_id > 0)
			watch_del(ps->host->watch, r->watch_id);
		if (r->fdh)
			loop_fd_del(ps->host->loop, r->fdh);
		free(r);
	}
}

void plugins_free(struct plugins *ps)
{
	if (!ps)
		return;
	for (size_t i = ps->n; i-- > 0;) {
		struct outpost_plugin_ctx *pc = ps->v[i];
		resident_free_all(ps, pc);
		if (pc->enabled && pc->plugin->fini)
			pc->plugin->fini(pc->state);
		if (pc->dl)
			dlclose(pc->dl);
		ctx_free(pc);
	}
	free(ps->v);
	free(ps);
}

/* ---- The contract: what init and resident work may ask of the agent ---- */

void outpost_log(struct outpost_plugin_ctx *pc, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(pc->host->log, level, pc->plugin->name, fmt, ap);
	va_end(ap);
}

json_t *outpost_plugin_config(struct outpost_plugin_ctx *pc)
{
	return pc->config;
}

const char *outpost_plugin_state_dir(struct outpost_plugin_ctx *pc)
{
	return pc->host->state_dir;
}

int outpost_state_get(struct outpost_plugin_ctx *pc, const char *key, json_t **value)
{
	sqlite3_stmt *st = NULL;
	int rc = OUTPOST_E_NOT_FOUND;

	*value = NULL;
	if (!pc->host->db)
		return OUTPOST_E_UNAVAILABLE;
	if (sqlite3_prepare_v2(pc->host->db,
	                       "SELECT value FROM plugin_state WHERE plugin = ? AND key = ?", -1,
	                       &st, NULL) != SQLITE_OK)
		return OUTPOST_E_INTERNAL;
	sqlite3_bind_text(st, 1, pc->plugin->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 0);
		*value = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
		rc = *value ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_finalize(st);
	return rc;
}

int outpost_state_put(struct outpost_plugin_ctx *pc, const char *key, json_t *value)
{
	sqlite3_stmt *st = NULL;
	char *text;
	int rc = OUTPOST_E_INTERNAL;

	if (!pc->host->db)
		return OUTPOST_E_UNAVAILABLE;
	text = wire_dump(value);
	if (!text)
		return OUTPOST_E_INTERNAL;
	if (sqlite3_prepare_v2(pc->host->db,
	                       "INSERT INTO plugin_state(plugin, key, value) VALUES(?, ?, ?) "
	                       "ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, pc->plugin->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
	}
	sqlite3_finalize(st);
	free(text);
	return rc;
}

int outpost_state_del(struct outpost_plugin_ctx *pc, const char *key)
{
	sqlite3_stmt *st = NULL;
	int rc = OUTPOST_E_INTERNAL;

	if (!pc->host->db)
		return OUTPOST_E_UNAVAILABLE;
	if (sqlite3_prepare_v2(pc->host->db,
	                       "DELETE FROM plugin_state WHERE plugin = ? AND key = ?", -1, &st,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, pc->plugin->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static void resident_on_timer(void *arg)
{
	struct plugin_resident *r = arg;
	r->tfn(r->pc, r->arg);
}

static void resident_on_watch(void *arg, const char *path, uint32_t mask, const char *name)
{
	struct plugin_resident *r = arg;
	r->wfn(r->pc, r->arg, path, mask, name);
}

static struct plugin_resident *resident_new(struct outpost_plugin_ctx *pc)
{
	struct plugin_resident *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->pc = pc;
	r->id = ++pc->next_resident_id; /* resident work is added on the loop thread only */
	r->next = pc->resident;
	pc->resident = r;
	return r;
}

static void resident_unlink(struct outpost_plugin_ctx *pc, struct plugin_resident *r)
{
	for (struct plugin_resident **pp = &pc->resident; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r);
}

int outpost_timer_add(struct outpost_plugin_ctx *pc, int64_t interval_ms, outpost_timer_fn fn,
                      void *arg)
{
	struct plugin_resident *r;

	if (!pc->host->loop)
		return OUTPOST_E_UNAVAILABLE;
	if (interval_ms <= 0 || !fn)
		return OUTPOST_E_BAD_ARGS;
	r = resident_new(pc);
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->tfn = fn;
	r->arg = arg;
	if (loop_timer_add(pc->host->loop, interval_ms, interval_ms, resident_on_timer, r,
	                   &r->timer) < 0) {
		resident_unlink(pc, r);
		return OUTPOST_E_INTERNAL;
	}
	return r->id;
}

void outpost_timer_del(struct outpost_plugin_ctx *pc, int id)
{
	for (struct plugin_resident *r = pc->resident; r; r = r->next)
		if (r->id == id && r->timer) {
			loop_timer_del(pc->host->loop, r->timer);
			resident_unlink(pc, r);
			return;
		}
}

int outpost_watch_add(struct outpost_plugin_ctx *pc, const char *path, uint32_t mask,
                      outpost_watch_fn fn, void *arg)
{
	struct plugin_resident *r;
	int wid;

	if (!pc->host->watch)
		return OUTPOST_E_UNAVAILABLE;
	r = resident_new(pc);
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->wfn = fn;
	r->arg = arg;
	wid = watch_add(pc->host->watch, path, mask, resident_on_watch, r);
	if (wid < 0) {
		resident_unlink(pc, r);
		return wid;
	}
	r->watch_id = wid;
	return r->id;
}

void outpost_watch_del(struct outpost_plugin_ctx *pc, int id)
{
	for (struct plugin_resident *r = pc->resident; r; r = r->next)
		if (r->id == id && r->watch_id > 0) {
			watch_del(pc->host->watch, r->watch_id);
			resident_unlink(pc, r);
			return;
		}
}

static void resident_on_fd(void *arg, uint32_t events)
{
	struct plugin_resident *r = arg;
	r->ffn(r->pc, r->arg, r->fd, events); /* may delete r */
}

int outpost_fd_add(struct outpost_plugin_ctx *pc, int fd, uint32_t events, outpost_fd_fn fn,
                   void *arg)
{
	struct plugin_resident *r;

	if (!pc->host->loop)
		return OUTPOST_E_UNAVAILABLE;
	if (fd < 0 || !fn)
		return OUTPOST_E_BAD_ARGS;
	r = resident_new(pc);
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->ffn = fn;
	r->arg = arg;
	r->fd = fd;
	if (loop_fd_add(pc->host->loop, fd, events, resident_on_fd, r, &r->fdh) < 0) {
		resident_unlink(pc, r);
		return OUTPOST_E_INTERNAL;
	}
	return r->id;
}

void outpost_fd_del(struct outpost_plugin_ctx *pc, int id)
{
	for (struct plugin_resident *r = pc->resident; r; r = r->next)
		if (r->id == id && r->fdh) {
			loop_fd_del(pc->host->loop, r->fdh);
			resident_unlink(pc, r);
			return;
		}
}

enum { PUBLISH_METRICS, PUBLISH_EVENTS };

/* The streams a plugin may publish on: "metrics" (plugins/metrics) and "events" (event.h's
 * format). Both go through the one spool; the hub tells an events batch by its "events". */
static int publish_stream(const char *stream)
{
	if (stream && strcmp(stream, "metrics") == 0)
		return PUBLISH_METRICS;
	if (stream && strcmp(stream, "events") == 0)
		return PUBLISH_EVENTS;
	return -1;
}

/* An events batch is checked here, where the plugin that made it can be told; the hub checks
 * it again. A metrics batch must not look like one. */
static int publish_check(struct outpost_plugin_ctx *pc, int stream, const json_t *batch)
{
	char msg[256];

	if (stream == PUBLISH_METRICS)
		return json_object_get(batch, "events") ? OUTPOST_E_BAD_ARGS : 0;
	if (event_batch_check(batch, msg, sizeof(msg)) < 0) {
		outpost_log(pc, OUTPOST_LOG_WARN, "an events batch was refused: %s", msg);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

int outpost_publish(struct outpost_plugin_ctx *pc, const char *stream, const json_t *batch)
{
	int kind = publish_stream(stream), rc;
	char *text;

	if (!pc || kind < 0 || !json_is_object(batch) || json_object_get(batch, "seq"))
		return OUTPOST_E_BAD_ARGS;
	if ((rc = publish_check(pc, kind, batch)) < 0)
		return rc;
	if (!pc->host->publish)
		return OUTPOST_E_UNAVAILABLE;
	/* Serialized here, on the caller's thread: the loop only stores the text. */
	text = wire_dump(batch);
	if (!text)
		return OUTPOST_E_INTERNAL;
	rc = pc->host->publish(pc->host->publish_arg, stream, text, strlen(text));
	free(text);
	return rc;
}

int outpost_publish_text(struct outpost_plugin_ctx *pc, const char *stream, const char *text,
                         size_t len)
{
	int kind = publish_stream(stream), rc;
	json_t *batch;

	if (!pc || kind < 0 || !text)
		return OUTPOST_E_BAD_ARGS;
	/* The spool's limit first: a scan of 3 MiB is wasted on a batch it refuses anyway. */
	if (len > SPOOL_BATCH_MAX)
		return OUTPOST_E_TOO_LARGE;
	if (kind == PUBLISH_EVENTS) {
		/* Events are few and small: checked as a tree, the one check there is. */
		if (wire_parse(text, len, WIRE_MAX_DEPTH_DEFAULT, &batch, NULL, 0) < 0)
			return OUTPOST_E_BAD_ARGS;
		rc = json_object_get(batch, "seq") ? OUTPOST_E_BAD_ARGS
		                                   : publish_check(pc, kind, batch);
		json_decref(batch);
		if (rc < 0)
			return rc;
	} else if (wire_scan_object(text, len, WIRE_MAX_DEPTH_DEFAULT, "seq") != 0) {
		return OUTPOST_E_BAD_ARGS;
	}
	if (!pc->host->publish)
		return OUTPOST_E_UNAVAILABLE;
	return pc->host->publish(pc->host->publish_arg, stream, text, len);
}
