/* The scale-mode link (docs/scale.md): a ZooKeeper session for liveness (the ephemeral
 * /outpost/agents/<shard>/<id>/alive) and tasks (the queue /outpost/tasks/<id>), around a
 * link_http for what stays HTTPS (enrollment, which hands out the ZooKeeper secret; results;
 * metrics batches; facts), sent to a hub picked from /outpost/hubs.
 *
 * Threads: libzookeeper-mt calls back on its own threads. Every callback copies what it got
 * into a message and posts it to the loop (lz_post); all state lives on the loop thread. Only
 * asynchronous calls are made there; zookeeper_init (name lookup) and zookeeper_close (it
 * waits for the server) run on short threads of their own. A message carries the generation
 * of the handle it came from: one from a handle since closed is dropped. */
#include "link.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/loop.h"
#include "core/sec.h"
#include "core/wire.h"

#include <errno.h>
#include <outpost/plugin.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#define LZ_BACKOFF_BASE_MS 1000
#define LZ_BACKOFF_MAX_MS 60000
#define LZ_FIRST_CONNECT_MS 2000 /* the first connect at a random point of this */
#define LZ_SECRET_MAX 256
#define LZ_ENTRY_MAX (1u << 20) /* ZooKeeper's own bound on a node's data */
#define LZ_HUBS_MAX 64

enum lz_kind {
	LZ_M_INIT,     /* zookeeper_init returned (zh or NULL) */
	LZ_M_STATE,    /* a session event */
	LZ_M_WATCH,    /* a node or child watch fired (path) */
	LZ_M_CREATE,   /* alive created */
	LZ_M_OWNER,    /* alive existed: whose is it */
	LZ_M_DELETE,   /* the old session's alive deleted */
	LZ_M_EXISTS,   /* the watch on alive armed */
	LZ_M_SET,      /* alive's data updated */
	LZ_M_CHILDREN, /* the queue's or the hubs' children */
	LZ_M_GET,      /* one entry's or one hub's data */
	LZ_M_QEXISTS,  /* the watch on a queue folder not there yet armed */
};

enum lz_which { LZ_QUEUE, LZ_HUBS };

struct lz_core;

/* A message to the loop; also the data of the asynchronous call it answers. */
struct lz_msg {
	struct lz_core *core;
	unsigned gen;
	enum lz_kind kind;
	enum lz_which which;
	int rc, type, state;
	int64_t session, owner;
	int32_t version;
	zhandle_t *zh;
	char *name; /* an entry's or a hub's name, a watch's path */
	char **names;
	int nnames;
	char *data;
	int len;
};

/* The part ZooKeeper's threads see: outlives the link while messages or threads hold it. */
struct lz_core {
	atomic_int refs;
	pthread_mutex_t mu; /* guards lz (NULL once the link is freed: nothing more is posted) */
	struct link_zk *lz;
	struct loop *loop;
};

/* The context of one handle (its watcher's and its threads'). */
struct lz_hctx {
	struct lz_core *core;
	unsigned gen;
	char *connect, *auth;
	int timeout_ms;
	zhandle_t *zh; /* for the closing thread */
};

struct lz_thread {
	pthread_t tid;
	atomic_int done;
	struct lz_thread *next;
};

struct lz_entry {
	char *name;
	int handed; /* given to on_task (else its data is being read) */
	int seen;   /* in the last children list */
	struct lz_entry *next;
};

struct lz_hub {
	char *name, *url;
};

struct link_zk {
	struct link base;
	struct link *http;
	struct loop *loop;
	const struct logger *log;
	link_task_fn on_task;
	void *arg;
	char *host_id, *conf_url, *json_path;
	char *host_path, *alive_path, *queue_path;
	char *conf_connect;  /* zk.connect, or NULL: the hub's */
	int conf_timeout_ms; /* zk.session_timeout_ms, or 0: the hub's */
	/* The credentials in use (zk.json, or the hub's answer); NULL until there are some. */
	char *connect, *secret, *hub_acl;
	int timeout_ms;
	struct lz_core *core;
	struct lz_thread *threads;
	zhandle_t *zh;
	unsigned gen;
	int stopped, connected, failures;
	int64_t session; /* the session of the last connected event */
	int early;       /* connected before the handle arrived: early_session */
	int64_t early_session;
	int64_t down_since_ms; /* when the connection was lost */
	int alive, alive_busy; /* alive exists for this session; its chain is under way */
	int queue_busy, queue_again, hubs_busy, hubs_again;
	struct lz_entry *entries; /* the queue as last read */
	struct lz_hub *hubs;      /* /outpost/hubs as being read */
	int nhubs, hubs_pending;
	char *hub_name; /* the hub requests go to; NULL: hub.url */
	char digest[65];
	struct loop_timer *connect_timer, *alive_timer, *queue_timer;
	uint64_t sessions, reconnects, expiries, tasks_received, entries_bad;
	char last_error[300];
};

static void lz_connect(struct link_zk *lz);
static void lz_read_queue(struct link_zk *lz);

/* ---- from ZooKeeper's threads ---- */

static void lz_core_unref(struct lz_core *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
}

static void lz_msg_free(struct lz_msg *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nnames; i++)
		free(m->names[i]);
	free(m->names);
	free(m->name);
	free(m->data);
	free(m);
}

static struct lz_msg *lz_msg_new(struct lz_core *core, unsigned gen, enum lz_kind kind,
                                 const char *name)
{
	struct lz_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->core = core;
	m->gen = gen;
	m->kind = kind;
	if (name && !(m->name = strdup(name))) {
		free(m);
		return NULL;
	}
	return m;
}

static void lz_on_msg(void *arg);

/* Any thread: hands m to the loop, or drops it once the link is gone. */
static void lz_post(struct lz_msg *m)
{
	struct lz_core *c = m->core;

	pthread_mutex_lock(&c->mu);
	if (c->lz) {
		atomic_fetch_add(&c->refs, 1);
		if (loop_post(c->loop, lz_on_msg, m) == 0)
			m = NULL;
		else
			atomic_fetch_sub(&c->refs, 1); /* never the last: the link holds one */
	}
	pthread_mutex_unlock(&c->mu);
	lz_msg_free(m);
}

static void lz_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct lz_hctx *h = ctx;
	struct lz_msg *m;

	if (type == ZOO_SESSION_EVENT) {
		m = lz_msg_new(h->core, h->gen, LZ_M_STATE, NULL);
		if (m && state == ZOO_CONNECTED_STATE && zoo_client_id(zh))
			m->session = zoo_client_id(zh)->client_id;
	} else {
		m = lz_msg_new(h->core, h->gen, LZ_M_WATCH, path);
	}
	if (!m)
		return;
	m->type = type;
	m->state = state;
	lz_post(m);
}

/* Child and node watches: session events come through the handle's own watcher. */
static void lz_node_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	if (type != ZOO_SESSION_EVENT)
		lz_watcher(zh, type, state, path, ctx);
}

static void lz_on_void(int rc, const void *data)
{
	struct lz_msg *m = (struct lz_msg *)data;

	m->rc = rc;
	lz_post(m);
}

static void lz_on_string(int rc, const char *value, const void *data)
{
	(void)value;
	lz_on_void(rc, data);
}

static void lz_on_stat(int rc, const struct Stat *stat, const void *data)
{
	struct lz_msg *m = (struct lz_msg *)data;

	if (stat) {
		m->owner = stat->ephemeralOwner;
		m->version = stat->version;
	}
	lz_on_void(rc, data);
}

static void lz_on_data(int rc, const char *value, int len, const struct Stat *stat,
                       const void *data)
{
	struct lz_msg *m = (struct lz_msg *)data;

	if (rc == ZOK && value && len > 0) {
		m->data = malloc((size_t)len + 1);
		if (!m->data) {
			rc = ZSYSTEMERROR;
		} else {
			memcpy(m->data, value, (size_t)len);
			m->data[len] = '\0';
			m->len = len;
		}
	}
	lz_on_stat(rc, stat, data);
}

static void lz_on_strings(int rc, const struct String_vector *sv, const void *data)
{
	struct lz_msg *m = (struct lz_msg *)data;

	if (rc == ZOK && sv && sv->count > 0) {
		m->names = calloc((size_t)sv->count, sizeof(*m->names));
		for (int i = 0; m->names && i < sv->count; i++) {
			if (!(m->names[i] = strdup(sv->data[i]))) {
				rc = ZSYSTEMERROR;
				break;
			}
			m->nnames++;
		}
		if (!m->names)
			rc = ZSYSTEMERROR;
	}
	lz_on_void(rc, data);
}

/* The library's own log lines are dropped: the link logs what they mean (connected, lost,
 * expired, refused) once, in the agent's log. */
static void lz_zlog(const char *message)
{
	(void)message;
}

static void lz_hctx_free(struct lz_hctx *h)
{
	if (!h)
		return;
	lz_core_unref(h->core);
	free(h->connect);
	free(h->auth);
	free(h);
}

/* Starts a session. The loop acts on its events only once this thread's message (the handle)
 * arrived, so the credentials, queued here first, precede every request of the loop's. */
static void *lz_init_thread(void *arg)
{
	struct lz_hctx *h = arg;
	struct lz_core *core = h->core;
	struct lz_msg *m = lz_msg_new(core, h->gen, LZ_M_INIT, NULL);
	zhandle_t *zh;
	int live;

	errno = 0;
	zh = zookeeper_init2(h->connect, lz_watcher, h->timeout_ms, NULL, h, 0, lz_zlog);
	if (m)
		m->rc = zh ? ZOK : (errno ? -errno : ZSYSTEMERROR);
	/* Credentials go with the session's first packets and again on every reconnect. */
	if (zh)
		zoo_add_auth(zh, "digest", h->auth, (int)strlen(h->auth), NULL, NULL);
	sodium_memzero(h->auth, strlen(h->auth));
	pthread_mutex_lock(&core->mu);
	live = core->lz != NULL;
	pthread_mutex_unlock(&core->mu);
	if (!m || !live) {
		/* The link is gone (or no memory to say so): nobody will use this handle. */
		if (zh) {
			zookeeper_close(zh);
		}
		lz_msg_free(m);
		lz_hctx_free(h);
		return NULL;
	}
	m->zh = zh;
	atomic_fetch_add(&core->refs, 1); /* m's core outlives h when h goes below */
	lz_post(m);
	if (!zh)
		lz_hctx_free(h);
	lz_core_unref(core);
	return NULL;
}

static void *lz_close_thread(void *arg)
{
	struct lz_hctx *h = arg;

	zookeeper_close(h->zh);
	lz_hctx_free(h);
	return NULL;
}

/* ---- on the loop ---- */

static void lz_problem(struct link_zk *lz, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lz_problem(struct link_zk *lz, int level, const char *fmt, ...)
{
	va_list ap;
	char line[sizeof(lz->last_error)];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strcmp(line, lz->last_error) == 0) {
		log_debug(lz->log, "link", "%s", line);
		return;
	}
	snprintf(lz->last_error, sizeof(lz->last_error), "%s", line);
	log_msg(lz->log, level, "link", "%s", line);
}

static int64_t lz_backoff_ms(int failures)
{
	int64_t cap = LZ_BACKOFF_BASE_MS;

	for (int i = 0; i < failures && cap < LZ_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > LZ_BACKOFF_MAX_MS)
		cap = LZ_BACKOFF_MAX_MS;
	return cap / 2 + (int64_t)randombytes_uniform((uint32_t)(cap / 2) + 1);
}

/* Joins the threads that finished; all of them with all set (the link is going). */
static void lz_reap(struct link_zk *lz, int all)
{
	for (struct lz_thread **pp = &lz->threads; *pp;) {
		struct lz_thread *t = *pp;
		if (all || atomic_load(&t->done)) {
			pthread_join(t->tid, NULL);
			*pp = t->next;
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

struct lz_start {
	void *(*fn)(void *);
	void *arg;
	struct lz_thread *t;
};

static void *lz_thread_main(void *arg)
{
	struct lz_start s = *(struct lz_start *)arg;

	free(arg);
	s.fn(s.arg);
	atomic_store(&s.t->done, 1);
	return NULL;
}

static int lz_spawn(struct link_zk *lz, void *(*fn)(void *), void *arg)
{
	struct lz_thread *t = calloc(1, sizeof(*t));
	struct lz_start *s = malloc(sizeof(*s));

	lz_reap(lz, 0);
	if (!t || !s)
		goto fail;
	*s = (struct lz_start){fn, arg, t};
	if (pthread_create(&t->tid, NULL, lz_thread_main, s) != 0)
		goto fail;
	t->next = lz->threads;
	lz->threads = t;
	return 0;
fail:
	free(t);
	free(s);
	return -1;
}

static struct lz_hctx *lz_hctx_new(struct link_zk *lz)
{
	struct lz_hctx *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->core = lz->core;
	atomic_fetch_add(&lz->core->refs, 1);
	h->gen = lz->gen;
	return h;
}

/* Closes the current handle off the loop thread; its late messages are dropped (gen). */
static void lz_drop_handle(struct link_zk *lz)
{
	struct lz_hctx *h;

	lz->gen++;
	lz->connected = 0;
	lz->alive = lz->alive_busy = 0;
	lz->queue_busy = lz->queue_again = lz->hubs_busy = lz->hubs_again = 0;
	lz->early = 0;
	/* Entries being read are read again by the next session. */
	for (struct lz_entry **pp = &lz->entries; *pp;) {
		struct lz_entry *e = *pp;
		if (!e->handed) {
			*pp = e->next;
			free(e->name);
			free(e);
		} else {
			pp = &e->next;
		}
	}
	if (!lz->zh)
		return;
	h = (struct lz_hctx *)zoo_get_context(lz->zh);
	h->zh = lz->zh;
	lz->zh = NULL;
	if (lz_spawn(lz, lz_close_thread, h) < 0)
		lz_close_thread(h); /* no thread: close here, late but correct */
}

static void lz_on_connect_timer(void *arg)
{
	struct link_zk *lz = arg;

	lz->connect_timer = NULL;
	lz_connect(lz);
}

static void lz_schedule_connect(struct link_zk *lz, int64_t ms)
{
	loop_timer_del(lz->loop, lz->connect_timer);
	lz->connect_timer = NULL;
	if (!lz->stopped)
		loop_timer_add(lz->loop, ms, 0, lz_on_connect_timer, lz, &lz->connect_timer);
}

static void lz_connect(struct link_zk *lz)
{
	struct lz_hctx *h;
	struct buf auth = BUF_INIT;

	if (lz->stopped || lz->zh || !lz->secret || !lz->connect)
		return;
	lz->gen++;
	h = lz_hctx_new(lz);
	if (!h || !(h->connect = strdup(lz->connect)) ||
	    buf_printf(&auth, "%s:%s", lz->host_id, lz->secret) < 0)
		goto fail;
	h->auth = buf_steal(&auth);
	h->timeout_ms = lz->timeout_ms;
	if (lz_spawn(lz, lz_init_thread, h) < 0)
		goto fail;
	log_debug(lz->log, "link", "connecting to ZooKeeper at %s", lz->connect);
	return;
fail:
	buf_free(&auth);
	lz_hctx_free(h);
	lz_problem(lz, OUTPOST_LOG_ERROR, "cannot start a ZooKeeper session: out of memory");
	lz_schedule_connect(lz, lz_backoff_ms(lz->failures++));
}

/* Starts an asynchronous call: m is its data, answered by the callback (or freed here when
 * the call could not even start; that is a connection problem the next event mends). */
static int lz_call_rc(struct link_zk *lz, struct lz_msg *m, int rc)
{
	if (rc == ZOK)
		return 0;
	log_debug(lz->log, "link", "ZooKeeper call refused at once: %s", zerror(rc));
	lz_msg_free(m);
	return -1;
}

static struct lz_msg *lz_msg(struct link_zk *lz, enum lz_kind kind, const char *name)
{
	struct lz_msg *m = lz_msg_new(lz->core, lz->gen, kind, name);

	if (!m)
		log_error(lz->log, "link", "out of memory");
	return m;
}

/* ---- alive: the heartbeat ---- */

static char *lz_alive_data(struct link_zk *lz)
{
	json_t *j = json_pack("{s:s, s:s}", "version", OUTPOST_VERSION, "facts", lz->digest);
	char *text = j ? wire_dump(j) : NULL;

	json_decref(j);
	return text;
}

static void lz_on_alive_timer(void *arg);

static void lz_alive_later(struct link_zk *lz, int64_t ms)
{
	lz->alive_busy = 0;
	loop_timer_del(lz->loop, lz->alive_timer);
	lz->alive_timer = NULL;
	loop_timer_add(lz->loop, ms, 0, lz_on_alive_timer, lz, &lz->alive_timer);
}

/* Makes the heartbeat of this session: ephemeral, all permissions for the hubs (hub_acl, their
 * digest id, from the credentials) and for this session's own credentials ("auth"). Without a
 * hub_acl (an older answer) it is readable by anyone instead: hubs read it, and delete it
 * through their rights on the per-host node above it. */
static void lz_alive_ensure(struct link_zk *lz)
{
	char world[] = "world", anyone[] = "anyone", auth[] = "auth", empty[] = "";
	char digest[] = "digest";
	struct ACL acl[2] = {{ZOO_PERM_READ, {world, anyone}}, {ZOO_PERM_ALL, {auth, empty}}};
	struct ACL_vector v = {2, acl};
	struct lz_msg *m;
	char *data;
	int rc;

	if (!lz->zh || !lz->connected || lz->alive || lz->alive_busy)
		return;
	m = lz_msg(lz, LZ_M_CREATE, NULL);
	data = lz_alive_data(lz);
	if (!m || !data) {
		lz_msg_free(m);
		free(data);
		return;
	}
	if (lz->hub_acl)
		acl[0] = (struct ACL){ZOO_PERM_ALL, {digest, lz->hub_acl}};
	lz->alive_busy = 1;
	rc = zoo_acreate(lz->zh, lz->alive_path, data, (int)strlen(data), &v, ZOO_EPHEMERAL,
	                 lz_on_string, m);
	free(data);
	if (lz_call_rc(lz, m, rc) < 0)
		lz->alive_busy = 0;
}

static void lz_on_alive_timer(void *arg)
{
	struct link_zk *lz = arg;

	lz->alive_timer = NULL;
	lz_alive_ensure(lz);
}

static void lz_alive_watch(struct link_zk *lz)
{
	struct lz_msg *m = lz_msg(lz, LZ_M_EXISTS, NULL);
	void *h = lz->zh ? (void *)zoo_get_context(lz->zh) : NULL;

	if (m && h)
		lz_call_rc(lz, m,
		           zoo_awexists(lz->zh, lz->alive_path, lz_node_watcher, h, lz_on_stat, m));
	else
		lz_msg_free(m);
}

static void lz_on_alive_msg(struct link_zk *lz, struct lz_msg *m)
{
	struct lz_msg *next;

	switch (m->kind) {
	case LZ_M_CREATE:
		if (m->rc == ZOK) {
			lz->alive = 1;
			lz->alive_busy = 0;
			lz->failures = 0;
			log_info(lz->log, "link", "alive in ZooKeeper as %s (session 0x%llx)",
			         lz->alive_path, (unsigned long long)lz->session);
			lz->last_error[0] = '\0';
			lz_alive_watch(lz);
			return;
		}
		if (m->rc == ZNODEEXISTS) {
			/* Ours from a write the connection lost, or an older session's (an agent
			 * restarted within the session timeout, or a session that expired). */
			next = lz_msg(lz, LZ_M_OWNER, NULL);
			if (next && lz_call_rc(lz, next,
			                       zoo_aexists(lz->zh, lz->alive_path, 0, lz_on_stat,
			                                   next)) == 0)
				return;
		}
		break;
	case LZ_M_OWNER:
		if (m->rc == ZOK && m->owner == lz->session) {
			lz->alive = 1;
			lz->alive_busy = 0;
			lz_alive_watch(lz);
			return;
		}
		if (m->rc == ZOK || m->rc == ZNONODE) {
			if (m->rc == ZOK)
				log_info(lz->log, "link",
				         "%s is an older session's (0x%llx): deleting it",
				         lz->alive_path, (unsigned long long)m->owner);
			next = lz_msg(lz, LZ_M_DELETE, NULL);
			if (next && lz_call_rc(lz, next,
			                       zoo_adelete(lz->zh, lz->alive_path,
			                                   m->rc == ZOK ? m->version : -1,
			                                   lz_on_void, next)) == 0)
				return;
		}
		break;
	case LZ_M_DELETE:
		if (m->rc == ZOK || m->rc == ZNONODE || m->rc == ZBADVERSION) {
			lz->alive_busy = 0;
			lz_alive_ensure(lz); /* now ours to make */
			return;
		}
		break;
	default:
		return;
	}
	if (m->rc == ZCONNECTIONLOSS || m->rc == ZOPERATIONTIMEOUT || m->rc == ZCLOSING ||
	    m->rc == ZSESSIONEXPIRED) {
		lz->alive_busy = 0; /* unknown: the next connected event checks again */
		return;
	}
	if (m->rc == ZNONODE || m->rc == ZNOAUTH)
		link_http_ask_creds(lz->http); /* asking (re)makes the per-host nodes */
	if (m->rc == ZNONODE || m->rc == ZNOAUTH)
		lz_problem(
		    lz, OUTPOST_LOG_ERROR,
		    "cannot create %s: %s (the hub makes %s when it accepts the host or it "
		    "asks for its credentials, and deletes it when it revokes it): asking the "
		    "hub for the credentials again, trying again",
		    lz->alive_path, zerror(m->rc), lz->host_path);
	else
		lz_problem(lz, OUTPOST_LOG_WARN, "cannot create %s: %s: trying again",
		           lz->alive_path, zerror(m->rc));
	lz_alive_later(lz, lz_backoff_ms(lz->failures++));
}

/* ---- the queue ---- */

/* A watch on the queue folder while it is not there: the hub makes it when it accepts the
 * host or hands it its credentials (an agent that reached ZooKeeper first, a hub that started
 * with it), and its creation reads the queue at once instead of at the retry's timer (the
 * first task after a fleet starts waited up to its backoff: 4-16 s). exists needs no right on
 * the node. */
static void lz_queue_exists_watch(struct link_zk *lz)
{
	struct lz_msg *m = lz_msg(lz, LZ_M_QEXISTS, NULL);
	void *h = lz->zh ? (void *)zoo_get_context(lz->zh) : NULL;

	if (m && h)
		lz_call_rc(lz, m,
		           zoo_awexists(lz->zh, lz->queue_path, lz_node_watcher, h, lz_on_stat, m));
	else
		lz_msg_free(m);
}

static void lz_on_queue_timer(void *arg)
{
	struct link_zk *lz = arg;

	lz->queue_timer = NULL;
	lz_read_queue(lz);
}

static void lz_read_queue(struct link_zk *lz)
{
	struct lz_msg *m;

	if (!lz->zh || !lz->connected)
		return;
	if (lz->queue_busy) {
		lz->queue_again = 1;
		return;
	}
	m = lz_msg(lz, LZ_M_CHILDREN, NULL);
	if (!m)
		return;
	m->which = LZ_QUEUE;
	lz->queue_busy = 1;
	lz->queue_again = 0;
	if (lz_call_rc(lz, m,
	               zoo_awget_children(lz->zh, lz->queue_path, lz_node_watcher,
	                                  (void *)zoo_get_context(lz->zh), lz_on_strings, m)) < 0)
		lz->queue_busy = 0;
}

static int lz_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct lz_entry *lz_entry_find(struct link_zk *lz, const char *name)
{
	for (struct lz_entry *e = lz->entries; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* The full list, every time: a watch fires once and may stand for several changes. Entries
 * not seen before are read in their order (sequential names sort as they were queued;
 * ZooKeeper answers one session's calls in order); entries gone are forgotten. */
static void lz_reconcile(struct link_zk *lz, struct lz_msg *m)
{
	struct lz_entry *e;

	if (m->nnames > 1)
		qsort(m->names, (size_t)m->nnames, sizeof(*m->names), lz_cmp);
	for (e = lz->entries; e; e = e->next)
		e->seen = 0;
	for (int i = 0; i < m->nnames; i++) {
		struct buf path = BUF_INIT;
		struct lz_msg *g;

		e = lz_entry_find(lz, m->names[i]);
		if (e) {
			e->seen = 1;
			continue;
		}
		e = calloc(1, sizeof(*e));
		g = lz_msg(lz, LZ_M_GET, m->names[i]);
		if (!e || !g || buf_printf(&path, "%s/%s", lz->queue_path, m->names[i]) < 0) {
			free(e);
			lz_msg_free(g);
			buf_free(&path);
			lz->queue_again = 1; /* try this one again with the next read */
			continue;
		}
		e->name = m->names[i];
		m->names[i] = NULL;
		e->seen = 1;
		e->next = lz->entries;
		lz->entries = e;
		g->which = LZ_QUEUE;
		if (lz_call_rc(lz, g, zoo_aget(lz->zh, path.data, 0, lz_on_data, g)) < 0)
			e->seen = 0; /* forgotten below: read again with the next list */
		buf_free(&path);
	}
	for (struct lz_entry **pp = &lz->entries; *pp;) {
		e = *pp;
		if (!e->seen) {
			*pp = e->next;
			free(e->name);
			free(e);
		} else {
			pp = &e->next;
		}
	}
}

static void lz_on_entry(struct link_zk *lz, struct lz_msg *m)
{
	struct lz_entry *e = lz_entry_find(lz, m->name);
	json_t *task = NULL;
	char why[200];

	if (!e || e->handed)
		return;
	if (m->rc != ZOK) {
		/* Gone (the hub had its result, or it expired), or unknown: the next list says. */
		if (m->rc != ZNONODE)
			lz->queue_again = 1;
		for (struct lz_entry **pp = &lz->entries; *pp; pp = &(*pp)->next)
			if (*pp == e) {
				*pp = e->next;
				free(e->name);
				free(e);
				break;
			}
		if (m->rc != ZNONODE && !lz->queue_timer)
			loop_timer_add(lz->loop, lz_backoff_ms(0), 0, lz_on_queue_timer, lz,
			               &lz->queue_timer);
		return;
	}
	e->handed = 1;
	if (!m->data || wire_parse(m->data, (size_t)m->len, 64, &task, why, sizeof(why)) < 0 ||
	    !json_is_object(task)) {
		lz->entries_bad++;
		log_warn(lz->log, "link", "queue entry %s/%s is not a signed task (%s): ignored",
		         lz->queue_path, m->name, m->data ? why : "empty");
		json_decref(task);
		return;
	}
	lz->tasks_received++;
	lz->on_task(lz->arg, task);
	json_decref(task);
}

/* ---- hubs ---- */

static void lz_hubs_clear(struct link_zk *lz)
{
	for (int i = 0; i < lz->nhubs; i++) {
		free(lz->hubs[i].name);
		free(lz->hubs[i].url);
	}
	free(lz->hubs);
	lz->hubs = NULL;
	lz->nhubs = lz->hubs_pending = 0;
}

static void lz_read_hubs(struct link_zk *lz)
{
	struct lz_msg *m;

	if (!lz->zh || !lz->connected)
		return;
	if (lz->hubs_busy) {
		lz->hubs_again = 1;
		return;
	}
	m = lz_msg(lz, LZ_M_CHILDREN, NULL);
	if (!m)
		return;
	m->which = LZ_HUBS;
	lz->hubs_busy = 1;
	lz->hubs_again = 0;
	if (lz_call_rc(lz, m,
	               zoo_awget_children(lz->zh, "/outpost/hubs", lz_node_watcher,
	                                  (void *)zoo_get_context(lz->zh), lz_on_strings, m)) < 0)
		lz->hubs_busy = 0;
}

/* Keeps the hub requests go to while its node is there; else a random live one; none: the
 * configured hub.url. */
static void lz_pick_hub(struct link_zk *lz)
{
	const char *url = lz->conf_url, *name = NULL;
	int live = 0, keep = 0, pick;
	char msg[300];

	lz->hubs_busy = 0;
	for (int i = 0; i < lz->nhubs; i++)
		if (lz->hubs[i].url) {
			live++;
			keep |= lz->hub_name && strcmp(lz->hubs[i].name, lz->hub_name) == 0;
		}
	if (keep)
		goto out;
	if (live > 0) {
		pick = (int)randombytes_uniform((uint32_t)live);
		for (int i = 0; i < lz->nhubs; i++)
			if (lz->hubs[i].url && pick-- == 0) {
				url = lz->hubs[i].url;
				name = lz->hubs[i].name;
				break;
			}
	}
	if (link_http_set_url(lz->http, url, msg, sizeof(msg)) < 0) {
		lz_problem(lz, OUTPOST_LOG_WARN, "hub %s in /outpost/hubs: %s", name ? name : "?",
		           msg);
	} else {
		free(lz->hub_name);
		lz->hub_name = name ? strdup(name) : NULL;
	}
out:
	lz_hubs_clear(lz);
	if (lz->hubs_again)
		lz_read_hubs(lz);
}

static void lz_on_hubs(struct link_zk *lz, struct lz_msg *m)
{
	if (m->kind == LZ_M_CHILDREN) {
		lz_hubs_clear(lz);
		if (m->rc != ZOK) {
			lz->hubs_busy = 0; /* no hubs folder yet, or a lost connection: hub.url */
			return;
		}
		if (m->nnames > LZ_HUBS_MAX)
			m->nnames = LZ_HUBS_MAX; /* the rest are freed with m */
		lz->hubs = calloc((size_t)m->nnames + 1, sizeof(*lz->hubs));
		if (!lz->hubs) {
			lz->hubs_busy = 0;
			return;
		}
		for (int i = 0; i < m->nnames; i++) {
			struct buf path = BUF_INIT;
			struct lz_msg *g = lz_msg(lz, LZ_M_GET, m->names[i]);

			lz->hubs[lz->nhubs++].name = m->names[i];
			m->names[i] = NULL;
			if (!g || buf_printf(&path, "/outpost/hubs/%s", g->name) < 0) {
				lz_msg_free(g);
			} else {
				g->which = LZ_HUBS;
				if (lz_call_rc(lz, g,
				               zoo_aget(lz->zh, path.data, 0, lz_on_data, g)) == 0)
					lz->hubs_pending++;
			}
			buf_free(&path);
		}
		if (lz->hubs_pending == 0)
			lz_pick_hub(lz);
		return;
	}
	/* One hub's data: {"id", "url"}. */
	for (int i = 0; i < lz->nhubs; i++) {
		json_t *j;
		const char *url;

		if (strcmp(lz->hubs[i].name, m->name) != 0)
			continue;
		j = m->rc == ZOK && m->data ? json_loadb(m->data, (size_t)m->len, 0, NULL) : NULL;
		url = json_string_value(json_object_get(j, "url"));
		if (url && link_http_check_url(url, (char[200]){0}, 200) == 0)
			lz->hubs[i].url = strdup(url);
		else
			log_debug(lz->log, "link", "hub %s: no usable url in its node (%s)",
			          m->name,
			          m->rc == ZOK ? "not {\"url\": \"https://...\"}" : zerror(m->rc));
		json_decref(j);
		break;
	}
	if (lz->hubs_pending > 0 && --lz->hubs_pending == 0)
		lz_pick_hub(lz);
}

/* ---- events ---- */

static void lz_on_state(struct link_zk *lz, struct lz_msg *m)
{
	if (m->state == ZOO_CONNECTED_STATE && !lz->zh) {
		lz->early = 1; /* acted on when the handle arrives (lz_init_thread) */
		lz->early_session = m->session;
		return;
	}
	if (m->state == ZOO_CONNECTED_STATE) {
		int64_t away = clk_mono_ms() - lz->down_since_ms;

		if (m->session != lz->session) {
			lz->sessions++;
			lz->alive = 0;
			log_info(lz->log, "link", "ZooKeeper session 0x%llx at %s (timeout %d ms)",
			         (unsigned long long)m->session, lz->connect,
			         zoo_recv_timeout(lz->zh));
		} else if (!lz->connected) {
			lz->reconnects++;
			log_info(lz->log, "link",
			         "connected to ZooKeeper again after %lld ms, session 0x%llx kept",
			         (long long)away, (unsigned long long)m->session);
		}
		lz->session = m->session;
		lz->connected = 1;
		lz->last_error[0] = '\0';
		/* Whatever was in flight is unknown: check the heartbeat, read everything again. */
		lz_alive_ensure(lz);
		lz_read_queue(lz);
		lz_read_hubs(lz);
		return;
	}
	if (m->state == ZOO_CONNECTING_STATE || m->state == ZOO_ASSOCIATING_STATE) {
		if (lz->connected) {
			lz->down_since_ms = clk_mono_ms();
			log_warn(
			    lz->log, "link",
			    "lost the connection to ZooKeeper: reconnecting (the session lives "
			    "%d ms without it)",
			    lz->zh ? zoo_recv_timeout(lz->zh) : lz->timeout_ms);
		}
		lz->connected = 0;
		return;
	}
	if (m->state == ZOO_EXPIRED_SESSION_STATE) {
		lz->expiries++;
		log_warn(lz->log, "link",
		         "ZooKeeper session 0x%llx expired: a new session, the heartbeat made "
		         "again, the queue read again",
		         (unsigned long long)lz->session);
		lz_drop_handle(lz);
		lz_schedule_connect(lz, lz_backoff_ms(0));
		return;
	}
	if (m->state == ZOO_AUTH_FAILED_STATE) {
		lz_problem(
		    lz, OUTPOST_LOG_ERROR,
		    "ZooKeeper refused this host's credentials (zk.json): trying again later");
		lz_drop_handle(lz);
		lz_schedule_connect(lz, lz_backoff_ms(lz->failures++ + 4));
	}
}

static void lz_on_watch(struct link_zk *lz, struct lz_msg *m)
{
	if (!m->name)
		return;
	if (strcmp(m->name, lz->queue_path) == 0) {
		if (m->type == ZOO_CREATED_EVENT) {
			/* The hub made the per-host nodes (both folders: the host's first, then
			 * the queue): what waited for them goes now, not at its retry timer. */
			log_info(lz->log, "link", "task queue %s made by the hub: reading it",
			         lz->queue_path);
			lz->failures = 0;
			if (!lz->alive) {
				loop_timer_del(lz->loop, lz->alive_timer);
				lz->alive_timer = NULL;
				lz_alive_ensure(lz);
			}
		}
		lz_read_queue(lz);
	} else if (strcmp(m->name, "/outpost/hubs") == 0)
		lz_read_hubs(lz);
	else if (strcmp(m->name, lz->alive_path) == 0 && m->type == ZOO_DELETED_EVENT) {
		/* A hub deleted it (a revocation on its way), or a stale delete: make it again
		 * while the per-host node lets us. */
		lz->alive = 0;
		lz_alive_ensure(lz);
	} else if (strcmp(m->name, lz->alive_path) == 0 && lz->alive) {
		lz_alive_watch(lz); /* a watch fires once: our own data update used it */
	}
}

static void lz_on_msg(void *arg)
{
	struct lz_msg *m = arg;
	struct lz_core *core = m->core;
	struct link_zk *lz = core->lz; /* written on this thread only */

	if (m->kind == LZ_M_INIT && m->zh && (!lz || lz->stopped || m->gen != lz->gen)) {
		/* A handle nobody wants any more. */
		struct lz_hctx *h = (struct lz_hctx *)zoo_get_context(m->zh);
		h->zh = m->zh;
		if (!lz || lz_spawn(lz, lz_close_thread, h) < 0)
			lz_close_thread(h);
		m->zh = NULL;
	}
	if (!lz || lz->stopped || m->gen != lz->gen)
		goto out;
	switch (m->kind) {
	case LZ_M_INIT:
		if (!m->zh) {
			lz_problem(lz, OUTPOST_LOG_ERROR,
			           "cannot start a ZooKeeper session with zk.connect %s: %s",
			           lz->connect, m->rc < 0 ? strerror(-m->rc) : zerror(m->rc));
			lz_schedule_connect(lz, lz_backoff_ms(lz->failures++));
		} else {
			lz->zh = m->zh;
			m->zh = NULL;
			lz->down_since_ms = clk_mono_ms();
			if (lz->early) {
				lz->early = 0;
				m->state = ZOO_CONNECTED_STATE;
				m->session = lz->early_session;
				lz_on_state(lz, m);
			}
		}
		break;
	case LZ_M_STATE:
		lz_on_state(lz, m);
		break;
	case LZ_M_WATCH:
		lz_on_watch(lz, m);
		break;
	case LZ_M_CREATE:
	case LZ_M_OWNER:
	case LZ_M_DELETE:
		lz_on_alive_msg(lz, m);
		break;
	case LZ_M_QEXISTS:
		if (m->rc == ZOK) /* made meanwhile: no event will come for it */
			lz_read_queue(lz);
		break;
	case LZ_M_EXISTS:
		if (m->rc == ZNONODE) {
			lz->alive = 0;
			lz_alive_ensure(lz);
		}
		break;
	case LZ_M_SET:
		if (m->rc == ZNONODE) {
			lz->alive = 0;
			lz_alive_ensure(lz);
		}
		break;
	case LZ_M_CHILDREN:
		if (m->which == LZ_HUBS) {
			lz_on_hubs(lz, m);
			break;
		}
		lz->queue_busy = 0;
		if (m->rc == ZOK) {
			lz_reconcile(lz, m);
		} else if (m->rc == ZNONODE || m->rc == ZNOAUTH) {
			lz_problem(
			    lz, OUTPOST_LOG_ERROR,
			    "cannot read the task queue %s: %s (made by the hub when it accepts "
			    "the host): trying again",
			    lz->queue_path, zerror(m->rc));
			if (m->rc == ZNONODE)
				lz_queue_exists_watch(lz); /* its making wakes us */
			if (!lz->queue_timer)
				loop_timer_add(lz->loop, lz_backoff_ms(3 + lz->failures++), 0,
				               lz_on_queue_timer, lz, &lz->queue_timer);
			break;
		}
		if (lz->queue_again)
			lz_read_queue(lz);
		break;
	case LZ_M_GET:
		if (m->which == LZ_HUBS)
			lz_on_hubs(lz, m);
		else
			lz_on_entry(lz, m);
		break;
	}
out:
	lz_msg_free(m);
	lz_core_unref(core);
}

/* ---- zk.json: the credentials (docs/scale.md, Credentials) ---- */

static int lz_text_ok(const char *s, size_t min, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

/* Takes credentials ({"connect", "user", "secret", "session_timeout_ms", "hub_acl"}, from the
 * hub or zk.json). 1 when they changed what the session uses, 0 when not, -1 with why when
 * they are unusable. */
static int lz_take(struct link_zk *lz, const json_t *c, char *why, size_t whylen)
{
	const char *user = json_string_value(json_object_get(c, "user"));
	const char *secret = json_string_value(json_object_get(c, "secret"));
	const char *connect = json_string_value(json_object_get(c, "connect"));
	const char *hub_acl = json_string_value(json_object_get(c, "hub_acl"));
	json_t *jt = json_object_get(c, "session_timeout_ms");
	int timeout = lz->conf_timeout_ms, changed = 0;
	char *s_secret, *s_connect, *s_acl;

	if (!user || strcmp(user, lz->host_id) != 0) {
		snprintf(why, whylen, "user is not this host's id %s", lz->host_id);
		return -1;
	}
	if (!lz_text_ok(secret, 16, LZ_SECRET_MAX) || strchr(secret, ':')) {
		snprintf(why, whylen, "no valid secret (16 to %d printable characters, no ':')",
		         LZ_SECRET_MAX);
		return -1;
	}
	if (lz->conf_connect)
		connect = lz->conf_connect; /* zk.connect wins over the hub's */
	else if (!connect || link_zk_check_connect(connect, why, whylen) < 0) {
		snprintf(why, whylen, "no valid connect (and no zk.connect in the config)");
		return -1;
	}
	if (hub_acl && (!lz_text_ok(hub_acl, 3, 256) || !strchr(hub_acl, ':')))
		hub_acl = NULL; /* the alive node is then readable by anyone instead */
	if (!timeout)
		timeout = json_is_integer(jt) && json_integer_value(jt) >= 2000 &&
		                  json_integer_value(jt) <= 120000
		              ? (int)json_integer_value(jt)
		              : LINK_ZK_TIMEOUT_MS;
	changed = !lz->secret || strcmp(lz->secret, secret) != 0 || !lz->connect ||
	          strcmp(lz->connect, connect) != 0 || timeout != lz->timeout_ms ||
	          !lz->hub_acl != !hub_acl || (hub_acl && strcmp(lz->hub_acl, hub_acl) != 0);
	if (!changed)
		return 0;
	s_secret = strdup(secret);
	s_connect = strdup(connect);
	s_acl = hub_acl ? strdup(hub_acl) : NULL;
	if (!s_secret || !s_connect || (hub_acl && !s_acl)) {
		free(s_secret);
		free(s_connect);
		free(s_acl);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (lz->secret)
		sodium_memzero(lz->secret, strlen(lz->secret));
	free(lz->secret);
	free(lz->connect);
	free(lz->hub_acl);
	lz->secret = s_secret;
	lz->connect = s_connect;
	lz->hub_acl = s_acl;
	lz->timeout_ms = timeout;
	return 1;
}

static int lz_load(struct link_zk *lz, char *msg, size_t msglen)
{
	json_t *j;
	char why[200];
	int rc;

	if (access(lz->json_path, F_OK) < 0)
		return 0;
	rc = sec_check_secret_file(lz->json_path, msg, msglen);
	if (rc < 0)
		return rc;
	j = json_load_file(lz->json_path, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(msg, msglen, "%s is damaged: remove it, the agent asks the hub again",
		         lz->json_path);
		return OUTPOST_E_BAD_ARGS;
	}
	/* Another host's (hub.host_id changed) or unusable: asked for again at start. */
	if (lz_take(lz, j, why, sizeof(why)) < 0)
		log_warn(lz->log, "link", "%s: %s: asking the hub again", lz->json_path, why);
	json_decref(j);
	return 0;
}

/* link_http's on_creds: the answer of GET /api/v1/agents/<id>/zk. */
static int lz_on_creds(void *arg, const json_t *result)
{
	struct link_zk *lz = arg;
	char *text, msg[300];
	int rc = lz_take(lz, result, msg, sizeof(msg));

	if (rc < 0) {
		lz_problem(lz, OUTPOST_LOG_ERROR, "the hub's ZooKeeper credentials: %s", msg);
		return -1;
	}
	if (rc == 0)
		return 0;
	text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text || sec_write_secret(lz->json_path, text, strlen(text), msg, sizeof(msg)) < 0)
		lz_problem(lz, OUTPOST_LOG_ERROR,
		           "cannot keep the ZooKeeper credentials in %s (%s): asking the hub again "
		           "at the next start",
		           lz->json_path, text ? msg : "out of memory");
	else
		log_info(lz->log, "link", "got this host's ZooKeeper credentials: kept in %s",
		         lz->json_path);
	if (text)
		sodium_memzero(text, strlen(text));
	free(text);
	/* New credentials: a new session with them. */
	lz_drop_handle(lz);
	lz_schedule_connect(lz, (int64_t)randombytes_uniform(LZ_FIRST_CONNECT_MS));
	return 0;
}

/* ---- the interface ---- */

static int lz_start(struct link *l, char *msg, size_t msglen)
{
	struct link_zk *lz = (struct link_zk *)l;
	int rc = lz->http->ops->start(lz->http, msg, msglen);

	if (rc < 0)
		return rc;
	/* Again after stop (link.h; outpost-sim's paused agents resume so): a new session. */
	lz->stopped = 0;
	if (lz->secret) {
		log_info(lz->log, "link", "joining ZooKeeper at %s as %s", lz->connect,
		         lz->host_id);
		/* A fleet that starts together does not connect in the same instant. */
		lz_schedule_connect(lz, (int64_t)randombytes_uniform(LZ_FIRST_CONNECT_MS));
	} else {
		log_info(lz->log, "link",
		         "no ZooKeeper credentials yet (%s): asking the hub once enrolled",
		         lz->json_path);
	}
	return 0;
}

static void lz_stop(struct link *l)
{
	struct link_zk *lz = (struct link_zk *)l;

	lz->http->ops->stop(lz->http);
	if (lz->stopped)
		return;
	lz->stopped = 1;
	loop_timer_del(lz->loop, lz->connect_timer);
	loop_timer_del(lz->loop, lz->alive_timer);
	loop_timer_del(lz->loop, lz->queue_timer);
	lz->connect_timer = lz->alive_timer = lz->queue_timer = NULL;
	/* Closing the session deletes the heartbeat at once: the hubs see the host go. */
	lz_drop_handle(lz);
}

static int lz_report(struct link *l, const json_t *result)
{
	struct link_zk *lz = (struct link_zk *)l;

	return lz->http->ops->report(lz->http, result);
}

static int lz_publish(struct link *l, const char *stream, const char *batch, size_t len)
{
	struct link_zk *lz = (struct link_zk *)l;

	return lz->http->ops->publish(lz->http, stream, batch, len);
}

static void lz_facts(struct link *l, const json_t *facts)
{
	struct link_zk *lz = (struct link_zk *)l;
	char *canon = sec_canonical(facts), hex[65], *data;
	struct lz_msg *m;

	lz->http->ops->facts(lz->http, facts);
	if (!canon)
		return;
	sec_sha256_hex(canon, strlen(canon), hex);
	free(canon);
	if (strcmp(hex, lz->digest) == 0)
		return;
	memcpy(lz->digest, hex, sizeof(hex));
	if (!lz->alive || !lz->zh)
		return; /* the create carries it */
	data = lz_alive_data(lz);
	m = data ? lz_msg(lz, LZ_M_SET, NULL) : NULL;
	if (m)
		lz_call_rc(
		    lz, m,
		    zoo_aset(lz->zh, lz->alive_path, data, (int)strlen(data), -1, lz_on_stat, m));
	free(data);
}

static int lz_hub_key(struct link *l, uint8_t pk[SEC_PK_BYTES])
{
	struct link_zk *lz = (struct link_zk *)l;

	return lz->http->ops->hub_key(lz->http, pk);
}

static json_t *lz_status(struct link *l)
{
	struct link_zk *lz = (struct link_zk *)l;
	json_t *st = lz->http->ops->status(lz->http);
	char session[24];
	int queue = 0;

	for (struct lz_entry *e = lz->entries; e; e = e->next)
		queue++;
	if (!st)
		return NULL;
	json_object_set_new(st, "mode", json_string("zookeeper"));
	json_object_set_new(st, "tasks_received", json_integer((json_int_t)lz->tasks_received));
	snprintf(session, sizeof(session), "0x%llx", (unsigned long long)lz->session);
	json_object_set_new(
	    st, "zookeeper",
	    json_pack("{s:s?, s:b, s:b, s:s, s:b, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:s?}",
	              "connect", lz->connect, "credentials", lz->secret != NULL, "connected",
	              lz->connected, "session", session, "alive", lz->alive, "alive_path",
	              lz->alive_path, "queue_path", lz->queue_path, "queue_entries", queue,
	              "sessions", (json_int_t)lz->sessions, "reconnects",
	              (json_int_t)lz->reconnects, "expiries", (json_int_t)lz->expiries,
	              "entries_bad", (json_int_t)lz->entries_bad, "last_error",
	              lz->last_error[0] ? lz->last_error : NULL));
	return st;
}

static void lz_free(struct link *l)
{
	struct link_zk *lz = (struct link_zk *)l;

	if (!lz)
		return;
	if (lz->http)
		lz_stop(l);
	if (lz->core) {
		pthread_mutex_lock(&lz->core->mu);
		lz->core->lz = NULL; /* nothing more is posted; what was is dropped */
		pthread_mutex_unlock(&lz->core->mu);
	}
	lz_reap(lz, 1);
	link_free(lz->http);
	while (lz->entries) {
		struct lz_entry *e = lz->entries;
		lz->entries = e->next;
		free(e->name);
		free(e);
	}
	lz_hubs_clear(lz);
	if (lz->secret)
		sodium_memzero(lz->secret, strlen(lz->secret));
	free(lz->secret);
	free(lz->hub_name);
	free(lz->connect);
	free(lz->conf_connect);
	free(lz->hub_acl);
	free(lz->host_id);
	free(lz->conf_url);
	free(lz->json_path);
	free(lz->host_path);
	free(lz->alive_path);
	free(lz->queue_path);
	lz_core_unref(lz->core);
	free(lz);
}

static const struct link_ops link_zk_ops = {
    .name = "zookeeper",
    .start = lz_start,
    .stop = lz_stop,
    .report = lz_report,
    .publish = lz_publish,
    .facts = lz_facts,
    .hub_key = lz_hub_key,
    .status = lz_status,
    .free = lz_free,
};

int link_zk_check_connect(const char *connect, char *msg, size_t msglen)
{
	const char *p = connect, *chroot;
	size_t hosts;

	if (!connect || !*connect) {
		snprintf(msg, msglen, "'zk.connect' is empty: HOST:PORT[,HOST:PORT...][/CHROOT]");
		return OUTPOST_E_BAD_ARGS;
	}
	chroot = strchr(connect, '/');
	hosts = chroot ? (size_t)(chroot - connect) : strlen(connect);
	for (size_t i = 0; i < hosts; i++)
		if (!(p[i] == ',' || p[i] == ':' || p[i] == '.' || p[i] == '-' || p[i] == '[' ||
		      p[i] == ']' || (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
		      (p[i] >= 'A' && p[i] <= 'Z')))
			hosts = 0;
	if (hosts == 0 || strlen(connect) > 1024 || !strchr(connect, ':') ||
	    (chroot &&
	     (strlen(chroot) < 2 || chroot[strlen(chroot) - 1] == '/' || strstr(chroot, "//")))) {
		snprintf(msg, msglen,
		         "'zk.connect' must be HOST:PORT[,HOST:PORT...][/CHROOT] (it is %.200s)",
		         connect);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

static char *lz_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *lz_printf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return rc < 0 ? NULL : buf_steal(&b);
}

int link_zk_new(const struct link_config *cfg, const char *connect, int timeout_ms,
                struct link **out, char *msg, size_t msglen)
{
	struct link_zk *lz;
	struct link_config hc = *cfg;
	char hex[65];
	int rc;

	*out = NULL;
	if (connect && *connect && (rc = link_zk_check_connect(connect, msg, msglen)) < 0)
		return rc;
	lz = calloc(1, sizeof(*lz));
	if (!lz)
		return OUTPOST_E_INTERNAL;
	lz->base.ops = &link_zk_ops;
	lz->loop = cfg->loop;
	lz->log = cfg->log;
	lz->on_task = cfg->on_task;
	lz->arg = cfg->arg;
	lz->conf_timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	lz->core = calloc(1, sizeof(*lz->core));
	if (!lz->core)
		goto oom;
	atomic_init(&lz->core->refs, 1);
	pthread_mutex_init(&lz->core->mu, NULL);
	lz->core->lz = lz;
	lz->core->loop = cfg->loop;
	/* The shard: the first two hex digits of the id's sha256 (docs/scale.md). */
	sec_sha256_hex(cfg->host_id, strlen(cfg->host_id), hex);
	lz->conf_connect = connect && *connect ? strdup(connect) : NULL;
	lz->host_id = strdup(cfg->host_id);
	lz->conf_url = strdup(cfg->url);
	lz->json_path = lz_printf("%s/zk.json", cfg->state_dir);
	lz->host_path = lz_printf("/outpost/agents/%.2s/%s", hex, cfg->host_id);
	lz->alive_path = lz_printf("/outpost/agents/%.2s/%s/alive", hex, cfg->host_id);
	lz->queue_path = lz_printf("/outpost/tasks/%s", cfg->host_id);
	if ((connect && *connect && !lz->conf_connect) || !lz->host_id || !lz->conf_url ||
	    !lz->json_path || !lz->host_path || !lz->alive_path || !lz->queue_path)
		goto oom;
	rc = lz_load(lz, msg, msglen);
	if (rc < 0) {
		lz_free(&lz->base);
		return rc;
	}
	hc.tasks_elsewhere = 1;
	hc.creds_route = "zk";
	hc.on_creds = lz_on_creds;
	hc.creds_arg = lz;
	rc = link_http_new(&hc, &lz->http, msg, msglen);
	if (rc < 0) {
		lz_free(&lz->base);
		return rc;
	}
	*out = &lz->base;
	return 0;
oom:
	snprintf(msg, msglen, "out of memory");
	lz_free(&lz->base);
	return OUTPOST_E_INTERNAL;
}
