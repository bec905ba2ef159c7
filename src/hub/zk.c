/* Scale mode's ZooKeeper side of the hub (docs/scale.md). One worker thread owns the
 * ZooKeeper handle and makes synchronous calls, except for batches (queue writes and
 * deletions, the tree), sent as rounds of asynchronous calls it then waits for; the client's
 * own threads call the watcher and the completions, which only store what they got, set flags
 * under a lock and wake the worker (a synchronous call from the completion thread would
 * deadlock). The loop thread hands the worker jobs (z->jobs) and gets
 * results back by loop_post; each post holds a reference on z, so a post drained after
 * zk_stop finds z alive and does nothing. */
#include "zk.h"
#include "hub_impl.h"
#include "agents.h"
#include "registry.h"
#include "core/clk.h"
#include "core/loop.h"

#include <gnutls/crypto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* The synchronous API of the multi-threaded client (libzookeeper_mt) is declared only then. */
#define THREADED 1
#include <zookeeper/zookeeper.h>

#define ZK_ENTRY_MAX (900 * 1024) /* below ZooKeeper's 1 MB packet (jute.maxbuffer) */
#define ZK_SWEEP_MS 10000         /* the leader's sweep of expired entries */

enum { JOB_NODES, JOB_GONE, JOB_CHECK, JOB_WRITE, JOB_DONE };

struct zk_job {
	int kind;
	char host[65];
	char task[130];
	char pubkey[64];
	int mark;
	json_t *items; /* JOB_WRITE: signed items, owned */
	struct zk_job *next;
};

enum { MSG_LEADER, MSG_ALIVE, MSG_SYNCED, MSG_TAKE, MSG_RESCUE, MSG_CONNECTED, MSG_REGISTERED };

struct zk_msg {
	struct hub_zk *z;
	int kind, a, b;
	char host[65];
	json_t *hosts; /* MSG_TAKE: host ids, owned */
};

struct hub_zk {
	struct hub *h; /* loop thread only */
	struct loop *loop;
	struct logger *log;
	atomic_int refs;
	char *connect, *hub_id, *hub_url;
	char secret[256];
	char hub_acl[128]; /* outpost-hub:<base64 sha1> */
	int timeout_ms;
	pthread_t thread;
	int started;
	FILE *devnull; /* the client library's log, when not debugging */

	/* Asynchronous calls of a batch in flight: the completions (on the client's thread)
	 * count down under alock; the worker waits for zero. */
	pthread_mutex_t alock;
	pthread_cond_t acond;
	int apending;

	pthread_mutex_t lock; /* guards everything down to the worker's own state */
	pthread_cond_t cond;
	struct zk_job *jobs, *jobs_tail;
	int stop, connected, expired, auth_failed, ev_leader, ev_full;
	int ev_hubs;          /* /outpost/hubs changed (the leader watches it) */
	json_t *dirty_hosts;  /* host ids whose folder's watch fired */
	json_t *dirty_shards; /* shard names whose watch fired */

	/* the worker's own */
	zhandle_t *zh;
	int ready, leader, was_connected;
	char my_node[200];
	json_t *host_shard; /* host id -> shard, as the leader last listed them */
	int64_t swept_ms;
	json_t *hubs_seen; /* hub nodes the leader last listed */
	int rescue_due;    /* re-queue the copies a hub that went may have left unwritten */
	json_t *zkhosts;   /* hosts whose queue folder was seen marked (a mark stays) */
	json_t *acls;      /* host -> its queue folder's ACL, with the folder's czxid, aversion */

	/* the loop thread's own */
	int l_leader, l_synced, l_connected, l_registered;
	json_t *alive;      /* host ids whose alive node the leader saw */
	json_t *touch_pass; /* their ids as the last_seen pass under way took them */
	size_t touch_pos;
	unsigned long long touched; /* last_seen written for that many hosts in all */
	int64_t touch_start_ms;
};

/* ---- references, posts to the loop ---- */

static void zk_unref(struct hub_zk *z)
{
	if (atomic_fetch_sub(&z->refs, 1) != 1)
		return;
	json_decref(z->dirty_hosts);
	json_decref(z->dirty_shards);
	json_decref(z->host_shard);
	json_decref(z->hubs_seen);
	json_decref(z->alive);
	json_decref(z->touch_pass);
	json_decref(z->zkhosts);
	json_decref(z->acls);
	while (z->jobs) {
		struct zk_job *j = z->jobs;
		z->jobs = j->next;
		json_decref(j->items);
		free(j);
	}
	if (z->devnull) {
		zoo_set_log_stream(NULL); /* back to stderr, before the stream goes */
		fclose(z->devnull);
	}
	pthread_mutex_destroy(&z->lock);
	pthread_cond_destroy(&z->cond);
	pthread_mutex_destroy(&z->alock);
	pthread_cond_destroy(&z->acond);
	sodium_memzero(z->secret, sizeof(z->secret));
	free(z->connect);
	free(z->hub_id);
	free(z->hub_url);
	free(z);
}

static void zk_on_msg(void *arg);

static void zk_post(struct hub_zk *z, int kind, const char *host, int a, int b)
{
	struct zk_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return;
	m->z = z;
	m->kind = kind;
	m->a = a;
	m->b = b;
	if (host)
		snprintf(m->host, sizeof(m->host), "%s", host);
	atomic_fetch_add(&z->refs, 1);
	if (loop_post(z->loop, zk_on_msg, m) < 0) {
		atomic_fetch_sub(&z->refs, 1);
		free(m);
	}
}

/* A message with a list of hosts (stolen). */
static void zk_post_hosts(struct hub_zk *z, int kind, json_t *hosts)
{
	struct zk_msg *m = calloc(1, sizeof(*m));

	if (!m) {
		json_decref(hosts);
		return;
	}
	m->z = z;
	m->kind = kind;
	m->hosts = hosts;
	atomic_fetch_add(&z->refs, 1);
	if (loop_post(z->loop, zk_on_msg, m) < 0) {
		atomic_fetch_sub(&z->refs, 1);
		json_decref(hosts);
		free(m);
	}
}

/* ---- jobs: loop thread -> worker ---- */

static void zk_job_add(struct hub_zk *z, struct zk_job *j, int front)
{
	pthread_mutex_lock(&z->lock);
	if (front) {
		j->next = z->jobs;
		z->jobs = j;
		if (!z->jobs_tail)
			z->jobs_tail = j;
	} else {
		j->next = NULL;
		if (z->jobs_tail)
			z->jobs_tail->next = j;
		else
			z->jobs = j;
		z->jobs_tail = j;
	}
	pthread_cond_signal(&z->cond);
	pthread_mutex_unlock(&z->lock);
}

/* Appends a chain of jobs under one lock, so that the worker sees them as one batch. */
static void zk_job_add_chain(struct hub_zk *z, struct zk_job *first, struct zk_job *last)
{
	if (!first)
		return;
	pthread_mutex_lock(&z->lock);
	if (z->jobs_tail)
		z->jobs_tail->next = first;
	else
		z->jobs = first;
	z->jobs_tail = last;
	pthread_cond_signal(&z->cond);
	pthread_mutex_unlock(&z->lock);
}

static struct zk_job *zk_job_new(int kind, const char *host, const char *task)
{
	struct zk_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	if (host)
		snprintf(j->host, sizeof(j->host), "%s", host);
	if (task)
		snprintf(j->task, sizeof(j->task), "%s", task);
	return j;
}

static void zk_queue(struct hub_zk *z, int kind, const char *host, const char *task)
{
	struct zk_job *j;

	if (z && host && (j = zk_job_new(kind, host, task)))
		zk_job_add(z, j, 0);
}

/* ---- credentials ---- */

/* ZooKeeper's digest id of user:secret: user:base64(sha1(user:secret)). */
static int zk_digest_id(const char *user, const char *secret, char *out, size_t outlen)
{
	char text[512];
	uint8_t sha[20];
	char *b;
	int n = snprintf(text, sizeof(text), "%s:%s", user, secret);

	if (n < 0 || (size_t)n >= sizeof(text) ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA1, text, (size_t)n, sha) < 0)
		return -1;
	sodium_memzero(text, sizeof(text));
	if (!(b = sec_b64(sha, sizeof(sha))))
		return -1;
	n = snprintf(out, outlen, "%s:%s", user, b);
	free(b);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* A host's secret is derived, not stored: HMAC-SHA256 under the hubs' shared secret of the
 * host id and the key it enrolled with. Every hub computes the same one, asking again gives
 * the same answer, and a host re-enrolled with a new key gets a new secret. */
static void zk_host_secret(const struct hub_zk *z, const char *host, const char *pubkey,
                           char out[65])
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	uint8_t key[32];

	crypto_generichash(key, sizeof(key), (const uint8_t *)z->secret, strlen(z->secret), NULL,
	                   0);
	crypto_auth_hmacsha256_init(&st, key, sizeof(key));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"outpost-zk-host\n", 16);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)host, strlen(host));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"\n", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)pubkey, strlen(pubkey));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
	sodium_memzero(key, sizeof(key));
}

json_t *zk_credentials(struct hub_zk *z, const char *host, const char *pubkey)
{
	char secret[65];
	json_t *j;

	zk_host_secret(z, host, pubkey, secret);
	j = json_pack("{s:s, s:s, s:s, s:i, s:s}", "connect", z->connect, "user", host, "secret",
	              secret, "session_timeout_ms", z->timeout_ms, "hub_acl", z->hub_acl);
	sodium_memzero(secret, sizeof(secret));
	return j;
}

void zk_agent_credentials(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	struct store_host_key key;
	json_t *cred;

	if (!h->zk) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "this hub is not in scale mode (no zk.connect): use the HTTPS "
		                    "link");
		return;
	}
	registry_alive(h, c);
	if (h->store->ops->host_key(h->store, c->host_id, &key) < 0 ||
	    !(cred = zk_credentials(h->zk, c->host_id, key.pubkey))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot read the host");
		return;
	}
	zk_host_nodes(h->zk, c->host_id, key.pubkey, 1);
	httpd_respond_ok(req, cred);
}

json_t *zk_hint(struct hub_zk *z)
{
	return json_pack("{s:s, s:i}", "connect", z->connect, "session_timeout_ms", z->timeout_ms);
}

/* ---- paths and ACLs (worker) ---- */

static void zk_shard(const char *host, char out[3])
{
	uint8_t d[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(d, (const uint8_t *)host, strlen(host));
	snprintf(out, 3, "%02x", d[0]);
}

/* acl: hubs ALL, then (host_perms) the host's digest, then (world_read) anyone READ. */
struct zk_acl {
	struct ACL a[3];
	struct ACL_vector v;
	char host_id[200];
};

static void zk_acl(struct hub_zk *z, struct zk_acl *acl, const char *host_digest, int host_perms,
                   int world_read)
{
	int n = 0;

	acl->a[n++] = (struct ACL){ZOO_PERM_ALL, {"digest", z->hub_acl}};
	if (host_digest) {
		snprintf(acl->host_id, sizeof(acl->host_id), "%s", host_digest);
		acl->a[n++] = (struct ACL){host_perms, {"digest", acl->host_id}};
	}
	if (world_read)
		acl->a[n++] = (struct ACL){ZOO_PERM_READ, {"world", "anyone"}};
	acl->v.count = n;
	acl->v.data = acl->a;
}

/* Failures worth retrying after a reconnect (the job goes back to the queue). */
static int zk_transient(int rc)
{
	return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
	       rc == ZINVALIDSTATE || rc == ZCLOSING;
}

/* Creates path (persistent) or, when it exists, sets its ACL to acl. */
static int zk_ensure(struct hub_zk *z, const char *path, const struct ACL_vector *acl, int set_acl)
{
	int rc = zoo_create(z->zh, path, NULL, -1, acl, ZOO_PERSISTENT, NULL, 0);

	if (rc == ZNODEEXISTS)
		rc = set_acl ? zoo_set_acl(z->zh, path, -1, acl) : ZOK;
	return rc;
}

/* An ephemeral node of this session: one left by an expired session of ours is deleted
 * first (the server removes it only when that session's timeout has run out). */
static int zk_ephemeral(struct hub_zk *z, const char *path, const char *data,
                        const struct ACL_vector *acl)
{
	struct Stat st;
	const clientid_t *me = zoo_client_id(z->zh);
	int rc = zoo_exists(z->zh, path, 0, &st);

	if (rc == ZOK && me && st.ephemeralOwner == me->client_id)
		return ZOK;
	if (rc == ZOK && (rc = zoo_delete(z->zh, path, -1)) != ZOK && rc != ZNONODE)
		return rc;
	rc = zoo_create(z->zh, path, data, (int)strlen(data), acl, ZOO_EPHEMERAL, NULL, 0);
	return rc == ZNODEEXISTS ? ZOK : rc;
}

static int zk_register(struct hub_zk *z)
{
	struct zk_acl acl;
	char path[200];
	char *data;
	json_t *j = json_pack("{s:s, s:s}", "id", z->hub_id, "url", z->hub_url);
	int rc;

	if (!j || !(data = json_dumps(j, JSON_COMPACT))) {
		json_decref(j);
		return ZSYSTEMERROR;
	}
	json_decref(j);
	zk_acl(z, &acl, NULL, 0, 1);
	snprintf(path, sizeof(path), "/outpost/hubs/%s", z->hub_id);
	rc = zk_ephemeral(z, path, data, &acl.v);
	free(data);
	return rc;
}

/* ---- leader election: ephemeral sequential nodes, each watching its predecessor ---- */

static int zk_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void zk_set_leader(struct hub_zk *z, int leader)
{
	if (z->leader == leader)
		return;
	z->leader = leader;
	log_info(z->log, "zk", "hub %s %s the leader", z->hub_id,
	         leader ? "is now" : "is no longer");
	zk_post(z, MSG_LEADER, NULL, leader, 0);
	if (leader) {
		/* The hub led before may have died between storing copies and queueing them. */
		z->rescue_due = 1;
		pthread_mutex_lock(&z->lock);
		z->ev_full = 1;
		z->ev_hubs = 1;
		pthread_mutex_unlock(&z->lock);
	}
}

static int zk_elect(struct hub_zk *z)
{
	struct String_vector kids = {0};
	char path[200];
	int rc, idx = -1;

	if (!z->my_node[0]) {
		struct zk_acl acl;
		char made[200], data[200];
		snprintf(data, sizeof(data), "{\"id\":\"%s\"}", z->hub_id);
		zk_acl(z, &acl, NULL, 0, 0);
		rc = zoo_create(z->zh, "/outpost/leader/n_", data, (int)strlen(data), &acl.v,
		                ZOO_EPHEMERAL_SEQUENTIAL, made, sizeof(made));
		if (rc != ZOK)
			return rc;
		snprintf(z->my_node, sizeof(z->my_node), "%s", made + strlen("/outpost/leader/"));
	}
	for (;;) {
		if ((rc = zoo_get_children(z->zh, "/outpost/leader", 0, &kids)) != ZOK)
			return rc;
		qsort(kids.data, (size_t)kids.count, sizeof(char *), zk_cmp);
		for (int i = 0; i < kids.count; i++)
			if (strcmp(kids.data[i], z->my_node) == 0)
				idx = i;
		if (idx < 0) { /* ours went (deleted by hand): stand again */
			deallocate_String_vector(&kids);
			z->my_node[0] = '\0';
			zk_set_leader(z, 0);
			return zk_elect(z);
		}
		if (idx == 0) {
			deallocate_String_vector(&kids);
			zk_set_leader(z, 1);
			return ZOK;
		}
		snprintf(path, sizeof(path), "/outpost/leader/%s", kids.data[idx - 1]);
		deallocate_String_vector(&kids);
		rc = zoo_exists(z->zh, path, 1, NULL); /* the watch: its deletion wakes us */
		if (rc == ZOK) {
			zk_set_leader(z, 0);
			return ZOK;
		}
		if (rc != ZNONODE)
			return rc;
		idx = -1; /* the predecessor went meanwhile: look again */
	}
}

/* ---- liveness (leader): the alive node under each host's folder ---- */

/* Reads one host's folder (re-arming its watch) and tells the loop what it found. */
static int zk_reconcile_host(struct hub_zk *z, const char *shard, const char *host)
{
	struct String_vector kids = {0};
	char path[200], buf[256];
	int len = sizeof(buf) - 1, alive = 0, zkmode, rc;

	snprintf(path, sizeof(path), "/outpost/agents/%s/%s", shard, host);
	rc = zoo_get_children(z->zh, path, 1, &kids);
	if (rc == ZNONODE) {
		json_object_del(z->host_shard, host);
		zk_post(z, MSG_ALIVE, host, 0, 0);
		return ZOK;
	}
	if (rc != ZOK)
		return rc;
	for (int i = 0; i < kids.count; i++)
		if (strcmp(kids.data[i], "alive") == 0)
			alive = 1;
	deallocate_String_vector(&kids);
	snprintf(path, sizeof(path), "/outpost/tasks/%s", host);
	rc = zoo_get(z->zh, path, 0, buf, &len, NULL);
	if (rc != ZOK && rc != ZNONODE)
		return rc;
	if (rc != ZOK || len < 0)
		len = 0;
	buf[len] = '\0';
	zkmode = alive || strstr(buf, "zookeeper") != NULL;
	json_object_set_new(z->host_shard, host, json_string(shard));
	zk_post(z, MSG_ALIVE, host, alive, zkmode);
	return ZOK;
}

static int zk_reconcile_shard(struct hub_zk *z, const char *shard)
{
	struct String_vector kids = {0};
	char path[64];
	int rc;

	snprintf(path, sizeof(path), "/outpost/agents/%s", shard);
	if ((rc = zoo_get_children(z->zh, path, 1, &kids)) != ZOK)
		return rc;
	for (int i = 0; i < kids.count && rc == ZOK; i++)
		if (!json_object_get(z->host_shard, kids.data[i]))
			rc = zk_reconcile_host(z, shard, kids.data[i]);
	deallocate_String_vector(&kids);
	return rc;
}

static int zk_reconcile_full(struct hub_zk *z)
{
	char shard[3];
	int rc = ZOK;

	json_object_clear(z->host_shard);
	for (int i = 0; i < 256 && rc == ZOK; i++) {
		snprintf(shard, sizeof(shard), "%02x", i);
		rc = zk_reconcile_shard(z, shard);
	}
	if (rc == ZOK)
		zk_post(z, MSG_SYNCED, NULL, 0, 0);
	return rc;
}

/* ---- queue entries ---- */

static const char *entry_task_id(json_t *e)
{
	return json_string_value(json_object_get(json_object_get(e, "task"), "task_id"));
}

/* ---- the fan-out's writes: asynchronous calls in pipelined rounds ----
 * A batch of hosts costs a few round trips in all, not a few per host: every call of a round
 * is sent before the first answer is awaited. A round's calls count up z->apending; their
 * completions (the client's thread) store what they got in their op and count down. */

#define ZK_BATCH_MAX 1000 /* jobs of one kind handled as one batch */

struct zk_op {
	struct hub_zk *z;
	int rc;
	struct zk_job *j;
	struct Stat st;
	json_t *names;       /* get_children2: the children's names */
	json_t *have;        /* task ids queued already */
	json_t *acl_entry;   /* get_acl: the cache entry {"czxid", "aversion", "acl"} */
	int marked;          /* get: the folder is marked zookeeper */
	int64_t now_ms;      /* deletes without a task id: entries expired before it */
	struct zk_sub *subs; /* round 2's entry reads, round 3's creates */
};

/* One call of many for one host (its entries): its own outcome. */
struct zk_sub {
	struct zk_op *op;
	int rc;
	int del;          /* the entry is to go */
	const char *name; /* the entry's name, borrowed from op->names */
};

static void zk_round_add(struct hub_zk *z)
{
	pthread_mutex_lock(&z->alock);
	z->apending++;
	pthread_mutex_unlock(&z->alock);
}

static void zk_round_done(struct hub_zk *z)
{
	pthread_mutex_lock(&z->alock);
	if (--z->apending == 0)
		pthread_cond_broadcast(&z->acond);
	pthread_mutex_unlock(&z->alock);
}

/* Waits for every completion of the round (the client calls each one: on an answer, a
 * connection loss or the session's end). */
static void zk_round_wait(struct hub_zk *z)
{
	pthread_mutex_lock(&z->alock);
	while (z->apending > 0)
		pthread_cond_wait(&z->acond, &z->alock);
	pthread_mutex_unlock(&z->alock);
}

/* An asynchronous call refused at once: its completion will not come. */
static void zk_round_sent(struct hub_zk *z, int *rcp, int rc)
{
	if (rc != ZOK) {
		*rcp = rc;
		zk_round_done(z);
	}
}

static void zk_made_dir(int rc, const char *value, const void *data)
{
	struct zk_sub *sub = (struct zk_sub *)data;

	(void)value;
	sub->rc = rc == ZNODEEXISTS ? ZOK : rc;
	zk_round_done(sub->op->z);
}

/* The tree of docs/scale.md: the folders, then the 256 shards, each level one pipelined
 * round (a first start made the 261 nodes one round trip after another: 2.5 s, during which
 * the hub made no host's nodes and its agents' first reads failed). */
static int zk_make_tree(struct hub_zk *z)
{
	static const char *const dirs[] = {"/outpost", "/outpost/agents", "/outpost/tasks",
	                                   "/outpost/hubs", "/outpost/leader"};
	struct zk_sub subs[256];
	struct zk_op op = {.z = z};
	struct zk_acl acl;
	char path[64];
	int rc = ZOK;

	zk_acl(z, &acl, NULL, 0, 1);
	for (int level = 0; level < 3 && rc == ZOK; level++) {
		int n = level == 0 ? 1 : level == 1 ? 4 : 256;
		for (int i = 0; i < n; i++) {
			const char *p = level < 2 ? dirs[level + i] : path;
			if (level == 2)
				snprintf(path, sizeof(path), "/outpost/agents/%02x", i);
			subs[i] = (struct zk_sub){.op = &op, .rc = ZOK};
			zk_round_add(z);
			zk_round_sent(z, &subs[i].rc,
			              zoo_acreate(z->zh, p, NULL, -1, &acl.v, ZOO_PERSISTENT,
			                          zk_made_dir, &subs[i]));
		}
		zk_round_wait(z);
		for (int i = 0; i < n && rc == ZOK; i++)
			rc = subs[i].rc;
	}
	return rc;
}

static void zk_got_mark(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;

	(void)st;
	op->rc = rc;
	op->marked = rc == ZOK && value && len > 0 && memmem(value, (size_t)len, "zookeeper", 9);
	zk_round_done(op->z);
}

static void zk_got_kids(int rc, const struct String_vector *kids, const struct Stat *st,
                        const void *data)
{
	struct zk_op *op = (struct zk_op *)data;

	op->rc = rc;
	if (rc == ZOK) {
		op->st = *st;
		for (int i = 0; kids && i < kids->count; i++)
			json_array_append_new(op->names, json_string(kids->data[i]));
	}
	zk_round_done(op->z);
}

static void zk_got_acl(int rc, struct ACL_vector *acl, struct Stat *st, const void *data)
{
	struct zk_op *op = (struct zk_op *)data;
	json_t *list = json_array();

	if (rc == ZOK && list) {
		for (int i = 0; i < acl->count; i++)
			json_array_append_new(list, json_pack("[i, s, s]", acl->data[i].perms,
			                                      acl->data[i].id.scheme,
			                                      acl->data[i].id.id));
		op->acl_entry = json_pack("{s:I, s:i, s:O}", "czxid", (json_int_t)st->czxid,
		                          "aversion", st->aversion, "acl", list);
	} else {
		op->rc = rc;
	}
	json_decref(list);
	zk_round_done(op->z);
}

static void zk_got_entry(int rc, const char *value, int len, const struct Stat *st,
                         const void *data)
{
	struct zk_sub *sub = (struct zk_sub *)data;
	json_t *e = rc == ZOK && value && len > 0 ? json_loadb(value, (size_t)len, 0, NULL) : NULL;
	const char *id = entry_task_id(e);

	(void)st;
	sub->rc = rc == ZNONODE ? ZOK : rc; /* deleted meanwhile: not there */
	if (id)
		json_object_set_new(sub->op->have, id, json_true());
	json_decref(e);
	zk_round_done(sub->op->z);
}

static void zk_deleted(int rc, const void *data)
{
	struct zk_sub *sub = (struct zk_sub *)data;

	sub->rc = rc == ZNONODE ? ZOK : rc;
	zk_round_done(sub->op->z);
}

static void zk_made(int rc, const char *value, const void *data)
{
	struct zk_sub *sub = (struct zk_sub *)data;

	(void)value;
	sub->rc = rc;
	zk_round_done(sub->op->z);
}

/* The ACL of the cache entry c ({"acl": [[perms, scheme, id], ...]}); its strings are
 * borrowed from c. out->data: caller frees. */
static int zk_acl_of(json_t *c, struct ACL_vector *out)
{
	json_t *list = json_object_get(c, "acl"), *a;
	size_t i;

	out->count = (int32_t)json_array_size(list);
	if (!out->count || !(out->data = calloc((size_t)out->count, sizeof(*out->data))))
		return -1;
	json_array_foreach(list, i, a)
	{
		out->data[i].perms = (int32_t)json_integer_value(json_array_get(a, 0));
		out->data[i].id.scheme = (char *)json_string_value(json_array_get(a, 1));
		out->data[i].id.id = (char *)json_string_value(json_array_get(a, 2));
	}
	return 0;
}

/* The first failure worth a retry among a host's calls, else its first failure. */
static void zk_op_fold(struct zk_op *op, size_t nsubs)
{
	for (size_t k = 0; op->subs && k < nsubs && op->rc == ZOK; k++)
		if (op->subs[k].rc != ZOK && op->subs[k].rc != ZNONODE)
			op->rc = op->subs[k].rc;
}

static void zk_post_hosts(struct hub_zk *z, int kind, json_t *hosts);

/* JOB_CHECK for a batch: which hosts are of the zookeeper link (a mark once seen stays in
 * z->zkhosts, so a fan-out to them reads nothing); the loop then takes their copies, the
 * whole batch in one message. */
static void zk_check_batch(struct hub_zk *z, struct zk_job **jobs, size_t n, json_t *retry)
{
	struct zk_op *ops = calloc(n, sizeof(*ops));
	json_t *take = json_array();
	char path[200];

	if (!ops || !take) {
		free(ops);
		json_decref(take);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		ops[i].z = z;
		ops[i].j = jobs[i];
		if (json_object_get(z->zkhosts, jobs[i]->host)) {
			ops[i].marked = 1;
			continue;
		}
		snprintf(path, sizeof(path), "/outpost/tasks/%s", jobs[i]->host);
		zk_round_add(z);
		zk_round_sent(z, &ops[i].rc, zoo_aget(z->zh, path, 0, zk_got_mark, &ops[i]));
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++) {
		if (zk_transient(ops[i].rc))
			json_array_append_new(retry, json_integer((json_int_t)i));
		if (ops[i].rc != ZOK || !ops[i].marked)
			continue;
		json_object_set_new(z->zkhosts, jobs[i]->host, json_true());
		json_array_append_new(take, json_string(jobs[i]->host));
	}
	if (json_array_size(take))
		zk_post_hosts(z, MSG_TAKE, take);
	else
		json_decref(take);
	free(ops);
}

/* Round 3 of zk_write_batch: the entries not there yet, with the folder's ACL. */
static void zk_write_creates(struct hub_zk *z, struct zk_op *ops, size_t n, size_t *nsubs)
{
	char path[300];

	for (size_t i = 0; i < n; i++) {
		struct zk_op *op = &ops[i];
		struct ACL_vector acl = {0};
		json_t *c, *it;
		size_t k;
		free(op->subs);
		op->subs = NULL;
		nsubs[i] = 0;
		zk_op_fold(op, 0);
		if (op->rc != ZOK)
			continue;
		if (op->acl_entry)
			json_object_set(z->acls, op->j->host, op->acl_entry);
		c = json_object_get(z->acls, op->j->host);
		if (zk_acl_of(c, &acl) < 0 ||
		    !(op->subs = calloc(json_array_size(op->j->items) + 1, sizeof(*op->subs)))) {
			free(acl.data);
			op->rc = ZSYSTEMERROR;
			continue;
		}
		snprintf(path, sizeof(path), "/outpost/tasks/%s/t-", op->j->host);
		json_array_foreach(op->j->items, k, it)
		{
			const char *id = entry_task_id(it);
			char *text;
			if (!id || json_object_get(op->have, id) ||
			    !(text = json_dumps(it, JSON_COMPACT)))
				continue;
			if (strlen(text) > ZK_ENTRY_MAX) {
				log_warn(z->log, "zk",
				         "task %s for host %s is %zu bytes, too large for a queue "
				         "entry: not queued in ZooKeeper",
				         id, op->j->host, strlen(text));
			} else {
				struct zk_sub *sub = &op->subs[nsubs[i]++];
				sub->op = op;
				zk_round_add(z);
				/* the library copies path, data and ACL into its request */
				zk_round_sent(z, &sub->rc,
				              zoo_acreate(z->zh, path, text, (int)strlen(text),
				                          &acl, ZOO_PERSISTENT_SEQUENTIAL, zk_made,
				                          sub));
			}
			free(text);
		}
		free(acl.data);
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++)
		zk_op_fold(&ops[i], nsubs[i]);
}

static void zk_got_entry_del(int rc, const char *value, int len, const struct Stat *st,
                             const void *data)
{
	struct zk_sub *sub = (struct zk_sub *)data;
	struct zk_op *op = sub->op;
	json_t *e = rc == ZOK && value && len > 0 ? json_loadb(value, (size_t)len, 0, NULL) : NULL;
	const char *id = entry_task_id(e);

	(void)st;
	sub->rc = rc == ZNONODE ? ZOK : rc;
	if (op->j->task[0])
		sub->del = id && strcmp(id, op->j->task) == 0;
	else {
		json_int_t exp =
		    json_integer_value(json_object_get(json_object_get(e, "task"), "expires_ms"));
		sub->del = exp > 0 && exp < op->now_ms;
	}
	json_decref(e);
	zk_round_done(op->z);
}

/* JOB_DONE for a batch, in three pipelined rounds: each host's queue listed, its entries read,
 * the ones of the job's task deleted (a job without a task id, the leader's sweep: the
 * entries whose task expired before now_ms). */
static void zk_delete_batch(struct hub_zk *z, struct zk_job **jobs, size_t n, json_t *retry,
                            int64_t now_ms)
{
	struct zk_op *ops = calloc(n, sizeof(*ops));
	char path[400];

	if (!ops)
		return;
	for (size_t i = 0; i < n; i++) {
		ops[i] =
		    (struct zk_op){.z = z, .j = jobs[i], .names = json_array(), .now_ms = now_ms};
		snprintf(path, sizeof(path), "/outpost/tasks/%s", jobs[i]->host);
		zk_round_add(z);
		zk_round_sent(z, &ops[i].rc,
		              zoo_aget_children2(z->zh, path, 0, zk_got_kids, &ops[i]));
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++) {
		struct zk_op *op = &ops[i];
		size_t k, nk = json_array_size(op->names);
		json_t *v;
		if (op->rc != ZOK || !nk || !(op->subs = calloc(nk, sizeof(*op->subs))))
			continue;
		json_array_foreach(op->names, k, v)
		{
			op->subs[k].op = op;
			op->subs[k].name = json_string_value(v);
			snprintf(path, sizeof(path), "/outpost/tasks/%s/%s", op->j->host,
			         op->subs[k].name);
			zk_round_add(z);
			zk_round_sent(z, &op->subs[k].rc,
			              zoo_aget(z->zh, path, 0, zk_got_entry_del, &op->subs[k]));
		}
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++) {
		struct zk_op *op = &ops[i];
		size_t nk = op->subs ? json_array_size(op->names) : 0;
		zk_op_fold(op, nk);
		for (size_t k = 0; op->rc == ZOK && k < nk; k++) {
			if (!op->subs[k].del)
				continue;
			snprintf(path, sizeof(path), "/outpost/tasks/%s/%s", op->j->host,
			         op->subs[k].name);
			zk_round_add(z);
			zk_round_sent(z, &op->subs[k].rc,
			              zoo_adelete(z->zh, path, -1, zk_deleted, &op->subs[k]));
		}
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++) {
		zk_op_fold(&ops[i], ops[i].subs ? json_array_size(ops[i].names) : 0);
		if (zk_transient(ops[i].rc))
			json_array_append_new(retry, json_integer((json_int_t)i));
		else if (ops[i].rc != ZOK && ops[i].rc != ZNONODE)
			log_warn(z->log, "zk", "removing entries of host %s: %s", jobs[i]->host,
			         zerror(ops[i].rc));
		json_decref(ops[i].names);
		free(ops[i].subs);
	}
	free(ops);
}

/* JOB_WRITE for a batch of hosts, in three pipelined rounds: 1. each host's queue listed
 * (with its folder's czxid and aversion, which say whether the cached ACL is still the
 * folder's); 2. the ACLs not cached and the entries already there read (a write whose answer
 * was lost, the rescue: their task ids are not queued again); 3. the other entries created.
 * Hosts whose calls failed for a reason worth a retry go to retry (indexes into jobs); a
 * retry reads again, so nothing is queued twice. */
static void zk_write_batch(struct hub_zk *z, struct zk_job **jobs, size_t n, json_t *retry)
{
	struct zk_op *ops = calloc(n, sizeof(*ops));
	size_t *nsubs = calloc(n, sizeof(*nsubs));
	char path[300];

	if (!ops || !nsubs)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ops[i] = (struct zk_op){
		    .z = z, .j = jobs[i], .names = json_array(), .have = json_object()};
		snprintf(path, sizeof(path), "/outpost/tasks/%s", jobs[i]->host);
		zk_round_add(z);
		zk_round_sent(z, &ops[i].rc,
		              zoo_aget_children2(z->zh, path, 0, zk_got_kids, &ops[i]));
	}
	zk_round_wait(z);

	for (size_t i = 0; i < n; i++) {
		struct zk_op *op = &ops[i];
		json_t *c = json_object_get(z->acls, op->j->host), *v;
		size_t k;
		if (op->rc != ZOK)
			continue;
		snprintf(path, sizeof(path), "/outpost/tasks/%s", op->j->host);
		if (!c || json_integer_value(json_object_get(c, "czxid")) != op->st.czxid ||
		    json_integer_value(json_object_get(c, "aversion")) != op->st.aversion) {
			zk_round_add(z);
			zk_round_sent(z, &op->rc, zoo_aget_acl(z->zh, path, zk_got_acl, op));
		}
		nsubs[i] = json_array_size(op->names);
		if (!nsubs[i] || !(op->subs = calloc(nsubs[i], sizeof(*op->subs)))) {
			nsubs[i] = 0;
			continue;
		}
		json_array_foreach(op->names, k, v)
		{
			char entry[400];
			op->subs[k].op = op;
			snprintf(entry, sizeof(entry), "%s/%s", path, json_string_value(v));
			zk_round_add(z);
			zk_round_sent(z, &op->subs[k].rc,
			              zoo_aget(z->zh, entry, 0, zk_got_entry, &op->subs[k]));
		}
	}
	zk_round_wait(z);
	for (size_t i = 0; i < n; i++)
		zk_op_fold(&ops[i], nsubs[i]);
	zk_write_creates(z, ops, n, nsubs);
	for (size_t i = 0; i < n; i++)
		if (zk_transient(ops[i].rc))
			json_array_append_new(retry, json_integer((json_int_t)i));
		else if (ops[i].rc != ZOK && ops[i].rc != ZNONODE)
			log_warn(z->log, "zk", "queueing for host %s: %s", jobs[i]->host,
			         zerror(ops[i].rc));
out:
	for (size_t i = 0; ops && i < n; i++) {
		json_decref(ops[i].names);
		json_decref(ops[i].have);
		json_decref(ops[i].acl_entry);
		free(ops[i].subs);
	}
	free(ops);
	free(nsubs);
}

/* The leader: re-reads the hubs (re-arming the watch); a hub that went may have stored task
 * copies and died before writing their entries, so a rescue is due. */
static int zk_hubs(struct hub_zk *z)
{
	struct String_vector kids = {0};
	json_t *now = json_object();
	const char *k;
	json_t *v;
	int rc;

	if ((rc = zoo_get_children(z->zh, "/outpost/hubs", 1, &kids)) != ZOK) {
		json_decref(now);
		return rc;
	}
	for (int i = 0; i < kids.count; i++)
		json_object_set_new(now, kids.data[i], json_true());
	deallocate_String_vector(&kids);
	json_object_foreach(z->hubs_seen, k, v) if (!json_object_get(now, k))
	{
		log_info(z->log, "zk",
		         "hub %s went: its hosts' unqueued task copies are queued again", k);
		z->rescue_due = 1;
	}
	json_decref(z->hubs_seen);
	z->hubs_seen = now;
	return ZOK;
}

/* The rescue: every zookeeper-link host's unfinished copies go to the loop, which writes the
 * ones whose entry is missing (zk_write skips the task ids already queued). */
static int zk_rescue(struct hub_zk *z)
{
	struct String_vector hosts = {0};
	char path[200], buf[256];
	json_t *rescue = NULL;
	int rc;

	if ((rc = zoo_get_children(z->zh, "/outpost/tasks", 0, &hosts)) != ZOK)
		return rc;
	for (int i = 0; i < hosts.count && rc == ZOK; i++) {
		int len = sizeof(buf) - 1;
		/* to the loop in slices: each host's take is a store call on its thread */
		if (json_array_size(rescue) >= 256) {
			zk_post_hosts(z, MSG_RESCUE, rescue);
			rescue = NULL;
		}
		if (!rescue && !(rescue = json_array())) {
			rc = ZSYSTEMERROR;
			break;
		}
		snprintf(path, sizeof(path), "/outpost/tasks/%s", hosts.data[i]);
		rc = zoo_get(z->zh, path, 0, buf, &len, NULL);
		if (rc == ZNONODE) {
			rc = ZOK;
			continue;
		}
		if (rc == ZOK && len > 0) {
			buf[len] = '\0';
			if (strstr(buf, "zookeeper"))
				json_array_append_new(rescue, json_string(hosts.data[i]));
		}
	}
	deallocate_String_vector(&hosts);
	if (rc == ZOK && json_array_size(rescue))
		zk_post_hosts(z, MSG_RESCUE, rescue);
	else
		json_decref(rescue);
	return rc;
}

/* The leader's sweep: entries of expired tasks go. */
static int zk_sweep(struct hub_zk *z)
{
	struct String_vector hosts = {0};
	struct zk_job **jobs = calloc(ZK_BATCH_MAX, sizeof(*jobs));
	json_t *retry = json_array();
	int64_t now = clk_real_ms();
	int rc = ZSYSTEMERROR;

	if (!jobs || !retry || (rc = zoo_get_children(z->zh, "/outpost/tasks", 0, &hosts)) != ZOK) {
		free(jobs);
		json_decref(retry);
		return rc;
	}
	/* in batches of pipelined calls, as the fan-out's writes */
	for (int i = 0; i < hosts.count && !json_array_size(retry);) {
		size_t n = 0;
		while (n < ZK_BATCH_MAX && i < hosts.count)
			if ((jobs[n] = zk_job_new(JOB_DONE, hosts.data[i++], NULL)))
				n++;
		zk_delete_batch(z, jobs, n, retry, now);
		for (size_t k = 0; k < n; k++)
			free(jobs[k]);
	}
	rc = json_array_size(retry) ? ZCONNECTIONLOSS : ZOK;
	deallocate_String_vector(&hosts);
	free(jobs);
	json_decref(retry);
	return rc;
}

/* Per-host nodes: the host folder (the host may create and delete its alive node in it) and
 * its queue folder (the host reads), with ACLs for the host's digest. */
static int zk_nodes(struct hub_zk *z, struct zk_job *j)
{
	char secret[65], digest[200], path[200], shard[3];
	struct zk_acl acl;
	int rc;

	zk_host_secret(z, j->host, j->pubkey, secret);
	rc = zk_digest_id(j->host, secret, digest, sizeof(digest));
	sodium_memzero(secret, sizeof(secret));
	if (rc < 0)
		return ZSYSTEMERROR;
	zk_shard(j->host, shard);
	snprintf(path, sizeof(path), "/outpost/agents/%s/%s", shard, j->host);
	zk_acl(z, &acl, digest, ZOO_PERM_READ | ZOO_PERM_CREATE | ZOO_PERM_DELETE, 0);
	if ((rc = zk_ensure(z, path, &acl.v, 1)) != ZOK)
		return rc;
	snprintf(path, sizeof(path), "/outpost/tasks/%s", j->host);
	zk_acl(z, &acl, digest, ZOO_PERM_READ, 0);
	if ((rc = zk_ensure(z, path, &acl.v, 1)) != ZOK)
		return rc;
	if (j->mark) {
		static const char mark[] = "{\"link\":\"zookeeper\"}";
		if ((rc = zoo_set(z->zh, path, mark, (int)strlen(mark), -1)) != ZOK)
			return rc;
		json_object_set_new(z->zkhosts, j->host, json_true());
		zk_post_hosts(z, MSG_TAKE, json_pack("[s]", j->host)); /* what waits already */
	}
	return ZOK;
}

/* Deletes path and everything below it. */
static int zk_delete_tree(struct hub_zk *z, const char *path)
{
	struct String_vector kids = {0};
	char sub[400];
	int rc = zoo_get_children(z->zh, path, 0, &kids);

	if (rc == ZNONODE)
		return ZOK;
	for (int i = 0; rc == ZOK && i < kids.count; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, kids.data[i]);
		rc = zk_delete_tree(z, sub);
	}
	deallocate_String_vector(&kids);
	if (rc == ZOK)
		rc = zoo_delete(z->zh, path, -1);
	return rc == ZNONODE ? ZOK : rc;
}

static int zk_run_job(struct hub_zk *z, struct zk_job *j)
{
	char path[200], shard[3];
	int rc;

	switch (j->kind) {
	case JOB_NODES:
		return zk_nodes(z, j);
	case JOB_GONE:
		json_object_del(z->zkhosts, j->host);
		json_object_del(z->acls, j->host);
		zk_shard(j->host, shard);
		snprintf(path, sizeof(path), "/outpost/agents/%s/%s", shard, j->host);
		if ((rc = zk_delete_tree(z, path)) != ZOK)
			return rc;
		snprintf(path, sizeof(path), "/outpost/tasks/%s", j->host);
		return zk_delete_tree(z, path);
	}
	return ZOK;
}

/* ---- the worker ---- */

static void zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct hub_zk *z = ctx;
	char shard[3], host[65];

	(void)zh;
	pthread_mutex_lock(&z->lock);
	if (type == ZOO_SESSION_EVENT) {
		z->connected = state == ZOO_CONNECTED_STATE;
		if (state == ZOO_EXPIRED_SESSION_STATE)
			z->expired = 1;
		if (state == ZOO_AUTH_FAILED_STATE)
			z->auth_failed = 1;
	} else if (path && strncmp(path, "/outpost/leader/", 16) == 0) {
		z->ev_leader = 1;
	} else if (path && strcmp(path, "/outpost/hubs") == 0) {
		z->ev_hubs = 1;
	} else if (path && strncmp(path, "/outpost/agents/", 16) == 0) {
		if (sscanf(path + 16, "%2[0-9a-f]/%64[A-Za-z0-9._-]", shard, host) == 2)
			json_object_set_new(z->dirty_hosts, host, json_string(shard));
		else if (sscanf(path + 16, "%2[0-9a-f]", shard) == 1)
			json_object_set_new(z->dirty_shards, shard, json_true());
	}
	pthread_cond_signal(&z->cond);
	pthread_mutex_unlock(&z->lock);
}

static void zk_auth_done(int rc, const void *data)
{
	struct hub_zk *z = (struct hub_zk *)data;

	if (rc != ZOK)
		log_error(z->log, "zk", "ZooKeeper refused the hubs' digest credentials (%s)",
		          zerror(rc));
}

static void zk_connect(struct hub_zk *z)
{
	char cred[400];

	z->ready = 0;
	z->my_node[0] = '\0';
	z->zh = zookeeper_init(z->connect, zk_watcher, z->timeout_ms, NULL, z, 0);
	if (!z->zh) {
		log_error(z->log, "zk", "cannot start a ZooKeeper client for '%s'", z->connect);
		return;
	}
	snprintf(cred, sizeof(cred), "%s:%s", ZK_HUB_USER, z->secret);
	zoo_add_auth(z->zh, "digest", cred, (int)strlen(cred), zk_auth_done, z);
	sodium_memzero(cred, sizeof(cred));
}

/* The run of jobs of one batched kind (JOB_CHECK or JOB_WRITE) at the head of the queue, up
 * to ZK_BATCH_MAX, done as one batch of pipelined calls. The ones to retry go back to the
 * head of the queue, in their order, and a transient error is returned. */
static int zk_run_batch(struct hub_zk *z)
{
	struct zk_job **jobs = malloc(ZK_BATCH_MAX * sizeof(*jobs)), *first = NULL, *last = NULL;
	json_t *retry = json_array(), *v;
	size_t n = 0, i;
	int kind;

	if (!jobs || !retry) {
		free(jobs);
		json_decref(retry);
		return ZSYSTEMERROR;
	}
	pthread_mutex_lock(&z->lock);
	kind = z->jobs->kind;
	while (n < ZK_BATCH_MAX && z->jobs && z->jobs->kind == kind) {
		jobs[n++] = z->jobs;
		if (!(z->jobs = z->jobs->next))
			z->jobs_tail = NULL;
	}
	pthread_mutex_unlock(&z->lock);
	if (kind == JOB_CHECK)
		zk_check_batch(z, jobs, n, retry);
	else if (kind == JOB_WRITE)
		zk_write_batch(z, jobs, n, retry);
	else
		zk_delete_batch(z, jobs, n, retry, clk_real_ms());
	json_array_foreach(retry, i, v)
	{
		struct zk_job *j = jobs[json_integer_value(v)];
		jobs[json_integer_value(v)] = NULL;
		j->next = NULL;
		if (last)
			last->next = j;
		else
			first = j;
		last = j;
	}
	if (first) { /* back to the head, before what came meanwhile */
		pthread_mutex_lock(&z->lock);
		last->next = z->jobs;
		z->jobs = first;
		if (!z->jobs_tail)
			z->jobs_tail = last;
		pthread_mutex_unlock(&z->lock);
	}
	for (i = 0; i < n; i++)
		if (jobs[i]) {
			json_decref(jobs[i]->items);
			free(jobs[i]);
		}
	free(jobs);
	n = json_array_size(retry);
	json_decref(retry);
	return n ? ZCONNECTIONLOSS : ZOK;
}

/* One round of work after a wake-up; ZooKeeper's failures end it (retried next round). */
static int zk_round(struct hub_zk *z, json_t *dirty_hosts, json_t *dirty_shards, int ev_leader,
                    int ev_full)
{
	const char *k;
	json_t *v;
	int rc, ev_hubs;

	if (!z->ready) {
		if ((rc = zk_make_tree(z)) != ZOK || (rc = zk_register(z)) != ZOK)
			return rc;
		z->ready = 1;
		ev_leader = 1;
		zk_post(z, MSG_REGISTERED, NULL, 1, 0);
		log_info(z->log, "zk", "hub %s registered at %s", z->hub_id, z->connect);
	}
	if (ev_leader && (rc = zk_elect(z)) != ZOK)
		return rc;
	if (z->leader) {
		pthread_mutex_lock(&z->lock);
		ev_full |= z->ev_full;
		z->ev_full = 0;
		ev_hubs = z->ev_hubs;
		z->ev_hubs = 0;
		pthread_mutex_unlock(&z->lock);
		if (ev_hubs && (rc = zk_hubs(z)) != ZOK) {
			pthread_mutex_lock(&z->lock);
			z->ev_hubs = 1;
			pthread_mutex_unlock(&z->lock);
			return rc;
		}
		if (z->rescue_due) {
			if ((rc = zk_rescue(z)) != ZOK)
				return rc;
			z->rescue_due = 0;
		}
		if (ev_full && (rc = zk_reconcile_full(z)) != ZOK) {
			pthread_mutex_lock(&z->lock);
			z->ev_full = 1;
			pthread_mutex_unlock(&z->lock);
			return rc;
		}
		json_object_foreach(dirty_shards, k,
		                    v) if ((rc = zk_reconcile_shard(z, k)) != ZOK) return rc;
		json_object_foreach(dirty_hosts, k,
		                    v) if ((rc = zk_reconcile_host(z, json_string_value(v), k)) !=
		                           ZOK) return rc;
		if (clk_mono_ms() - z->swept_ms >= ZK_SWEEP_MS) {
			z->swept_ms = clk_mono_ms();
			if ((rc = zk_sweep(z)) != ZOK)
				return rc;
		}
	}
	for (;;) {
		struct zk_job *j;
		pthread_mutex_lock(&z->lock);
		j = z->jobs;
		if (j && (j->kind == JOB_CHECK || j->kind == JOB_WRITE || j->kind == JOB_DONE)) {
			pthread_mutex_unlock(&z->lock);
			if ((rc = zk_run_batch(z)) != ZOK)
				return rc;
			continue;
		}
		if (j && !(z->jobs = j->next))
			z->jobs_tail = NULL;
		pthread_mutex_unlock(&z->lock);
		if (!j)
			return ZOK;
		rc = zk_run_job(z, j);
		if (zk_transient(rc)) {
			zk_job_add(z, j, 1);
			return rc;
		}
		if (rc != ZOK)
			log_warn(z->log, "zk", "host %s: %s", j->host, zerror(rc));
		json_decref(j->items);
		free(j);
	}
}

static void *zk_main(void *arg)
{
	struct hub_zk *z = arg;
	json_t *dh = NULL, *ds = NULL;
	int retry = 0;

	zk_connect(z);
	for (;;) {
		int ev_leader, ev_full, expired, connected, auth_failed, rc;
		struct timespec ts;

		pthread_mutex_lock(&z->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		/* After a failure, a second's pause before the retry, whatever is pending. */
		if (!z->stop && z->connected == z->was_connected && !z->expired &&
		    (retry ||
		     (!z->ev_leader && !z->ev_hubs && !z->jobs &&
		      !json_object_size(z->dirty_hosts) && !json_object_size(z->dirty_shards))))
			pthread_cond_timedwait(&z->cond, &z->lock, &ts);
		if (z->stop) {
			pthread_mutex_unlock(&z->lock);
			break;
		}
		expired = z->expired;
		z->expired = 0;
		connected = z->connected;
		auth_failed = z->auth_failed;
		z->auth_failed = 0;
		ev_leader = z->ev_leader;
		z->ev_leader = 0;
		ev_full = 0;
		dh = z->dirty_hosts;
		ds = z->dirty_shards;
		z->dirty_hosts = json_object();
		z->dirty_shards = json_object();
		pthread_mutex_unlock(&z->lock);

		if (auth_failed)
			log_error(z->log, "zk",
			          "ZooKeeper authentication failed: check zk.secret_file");
		if (connected != z->was_connected) {
			z->was_connected = connected;
			zk_post(z, MSG_CONNECTED, NULL, connected, 0);
			if (connected) {
				log_info(z->log, "zk", "connected to ZooKeeper (session 0x%llx)",
				         (unsigned long long)zoo_client_id(z->zh)->client_id);
				ev_leader = 1;
				ev_full = 1; /* watches may have skipped changes while away */
			} else {
				log_warn(z->log, "zk",
				         "lost the ZooKeeper connection: leader work "
				         "suspended until it is back");
				zk_set_leader(z, 0);
			}
		}
		if (expired || !z->zh) {
			log_warn(z->log, "zk", "ZooKeeper session expired: a new one");
			zk_set_leader(z, 0);
			if (z->zh)
				zookeeper_close(z->zh);
			z->zh = NULL;
			z->was_connected = 0;
			zk_connect(z);
		} else if (connected) {
			rc = zk_round(z, dh, ds, ev_leader, ev_full);
			retry = rc != ZOK;
			if (retry) {
				log_warn(z->log, "zk", "ZooKeeper: %s (retrying)", zerror(rc));
				/* what was not done is done again in full */
				pthread_mutex_lock(&z->lock);
				z->ev_leader = 1;
				json_object_update(z->dirty_hosts, dh);
				json_object_update(z->dirty_shards, ds);
				pthread_mutex_unlock(&z->lock);
			}
		}
		json_decref(dh);
		json_decref(ds);
		dh = ds = NULL;
	}
	if (z->zh)
		zookeeper_close(z->zh);
	z->zh = NULL;
	return NULL;
}

/* ---- the loop thread's side ---- */

static int zk_keep_all_but(void *arg, const char *id)
{
	return strcmp(arg, id) != 0;
}

static void zk_apply_alive(struct hub_zk *z, const char *host, int alive, int zkmode)
{
	struct hub *h = z->h;
	int64_t now = clk_real_ms();
	json_t *ids = NULL;
	int was_down = 0;

	if (alive) {
		json_object_set_new(z->alive, host, json_true());
		if (h->store->ops->host_seen(h->store, host, now, NULL, NULL, &was_down) == 0 &&
		    was_down)
			log_info(h->log, "registry",
			         "host %s is up again (its ZooKeeper node is back)", host);
		return;
	}
	if (!json_object_get(z->alive, host) && !zkmode)
		return; /* a host of the HTTPS link: the beats decide */
	json_object_del(z->alive, host);
	if (h->store->ops->hosts_mark_down(h->store, now + 1, now, zk_keep_all_but, (void *)host,
	                                   &ids) == 0 &&
	    json_array_size(ids))
		log_warn(h->log, "registry", "host %s is down: its ZooKeeper session ended", host);
	json_decref(ids);
}

/* A job writing a host's released copies; with resume, also the ones already handed out and
 * not finished (sent, running), whose entry a hub that died may never have written: the
 * writes skip those queued already, and the agent's ledger answers any it has seen. NULL:
 * nothing to write. */
static struct zk_job *zk_take(struct hub_zk *z, const char *host, int resume)
{
	struct hub *h = z->h;
	json_t *items = NULL, *again = NULL;
	struct zk_job *j;

	if (h->store->ops->task_take(h->store, host, clk_real_ms(), AGENTS_TAKE_MAX, &items) < 0)
		return NULL;
	if (resume &&
	    h->store->ops->task_resume(h->store, host, clk_real_ms(), AGENTS_TAKE_MAX, &again) == 0)
		json_array_extend(items, again);
	json_decref(again);
	if (!json_array_size(items) || agents_sign(h, items) < 0 ||
	    !(j = zk_job_new(JOB_WRITE, host, NULL))) {
		json_decref(items);
		return NULL;
	}
	j->items = items;
	return j;
}

/* The copies of a batch of hosts, queued for the worker as one batch of writes. */
static void zk_take_hosts(struct hub_zk *z, json_t *hosts, int resume)
{
	struct zk_job *first = NULL, *last = NULL, *j;
	json_t *v;
	size_t i;

	json_array_foreach(hosts, i, v)
	{
		if (!(j = zk_take(z, json_string_value(v), resume)))
			continue;
		if (last)
			last->next = j;
		else
			first = j;
		last = j;
	}
	zk_job_add_chain(z, first, last);
}

static void zk_on_msg(void *arg)
{
	struct zk_msg *m = arg;
	struct hub_zk *z = m->z;

	if (z->h) { /* NULL once zk_stop ran */
		switch (m->kind) {
		case MSG_LEADER:
			z->l_leader = m->a;
			z->l_synced = 0;
			json_object_clear(z->alive);
			json_decref(z->touch_pass);
			z->touch_pass = NULL;
			break;
		case MSG_SYNCED:
			z->l_synced = z->l_leader;
			break;
		case MSG_ALIVE:
			if (z->l_leader)
				zk_apply_alive(z, m->host, m->a, m->b);
			break;
		case MSG_TAKE:
			zk_take_hosts(z, m->hosts, 0);
			break;
		case MSG_RESCUE:
			zk_take_hosts(z, m->hosts, 1);
			break;
		case MSG_CONNECTED:
			z->l_connected = m->a;
			z->l_registered &= m->a;
			break;
		case MSG_REGISTERED:
			z->l_registered = m->a;
			break;
		}
	}
	json_decref(m->hosts);
	free(m);
	zk_unref(z);
}

void zk_host_nodes(struct hub_zk *z, const char *host, const char *pubkey, int mark)
{
	struct zk_job *j;

	if (!z || !host || !pubkey || !(j = zk_job_new(JOB_NODES, host, NULL)))
		return;
	snprintf(j->pubkey, sizeof(j->pubkey), "%s", pubkey);
	j->mark = mark;
	zk_job_add(z, j, 0);
}

void zk_host_gone(struct hub_zk *z, const char *host)
{
	zk_queue(z, JOB_GONE, host, NULL);
}

void zk_push(struct hub_zk *z, json_t *ids)
{
	json_t *v;
	size_t i;

	if (z)
		json_array_foreach(ids, i, v) zk_queue(z, JOB_CHECK, json_string_value(v), NULL);
}

void zk_result(struct hub_zk *z, const char *task_id, const char *host)
{
	zk_queue(z, JOB_DONE, host, task_id);
}

void zk_cancel(struct hub_zk *z, const char *task_id, json_t *hosts)
{
	json_t *v;
	size_t i;

	if (z)
		json_array_foreach(hosts, i, v)
		    zk_queue(z, JOB_DONE, json_string_value(v), task_id);
}

#define ZK_TOUCH_SLICE 5000 /* hosts of one last_seen statement */

void zk_tick(struct hub_zk *z, int64_t every_ms)
{
	struct hub *h;
	int64_t now = clk_mono_ms(), t0 = now;

	if (!z || !zk_leads(z))
		return;
	h = z->h;
	if (!z->touch_pass || z->touch_pos >= json_array_size(z->touch_pass)) {
		const char *k;
		json_t *v;
		if (now - z->touch_start_ms < every_ms)
			return;
		json_decref(z->touch_pass);
		if (!(z->touch_pass = json_array()))
			return;
		json_object_foreach(z->alive, k, v)
		    json_array_append_new(z->touch_pass, json_string(k));
		z->touch_pos = 0;
		z->touch_start_ms = now;
	}
	/* in slices, for about 50 ms a tick: a pass over 100,000 hosts never stalls the loop */
	while (z->touch_pos < json_array_size(z->touch_pass) && clk_mono_ms() - t0 < 50) {
		json_t *slice = json_array();
		size_t end = z->touch_pos + ZK_TOUCH_SLICE;
		if (!slice)
			return;
		for (; z->touch_pos < end && z->touch_pos < json_array_size(z->touch_pass);
		     z->touch_pos++)
			json_array_append(slice, json_array_get(z->touch_pass, z->touch_pos));
		if (h->store->ops->hosts_touch(h->store, slice, clk_real_ms(), NULL) < 0)
			log_warn(h->log, "registry", "writing the last contact of %zu hosts failed",
			         json_array_size(slice));
		else
			z->touched += json_array_size(slice);
		json_decref(slice);
	}
}

int zk_keeps_up(struct hub_zk *z, const char *host)
{
	return z && json_object_get(z->alive, host) != NULL;
}

int zk_leads(struct hub_zk *z)
{
	return !z || (z->l_leader && z->l_synced);
}

json_t *zk_status(struct hub_zk *z)
{
	return json_pack("{s:b, s:b, s:b, s:b, s:s, s:I, s:I}", "connected", z->l_connected,
	                 "registered", z->l_registered, "leader", z->l_leader, "maintains",
	                 zk_leads(z), "hub_id", z->hub_id, "alive",
	                 (json_int_t)json_object_size(z->alive), "last_seen_written",
	                 (json_int_t)z->touched);
}

/* ---- start, stop ---- */

static int zk_read_secret(struct hub_zk *z, const char *path, char *msg, size_t msglen)
{
	FILE *f;
	size_t n;

	if (sec_check_secret_file(path, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	if (!(f = fopen(path, "re"))) {
		snprintf(msg, msglen, "zk.secret_file %s: cannot read it", path);
		return OUTPOST_E_BAD_ARGS;
	}
	n = fread(z->secret, 1, sizeof(z->secret) - 1, f);
	fclose(f);
	z->secret[n] = '\0';
	z->secret[strcspn(z->secret, "\r\n")] = '\0';
	if (strlen(z->secret) < 16) {
		snprintf(
		    msg, msglen,
		    "zk.secret_file %s: the secret must be at least 16 characters on its first "
		    "line (e.g. head -c 32 /dev/urandom | base64 > FILE)",
		    path);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

int zk_start(struct hub *h, char *msg, size_t msglen)
{
	const char *connect = h->conf->zk.connect;
	const char *id = h->conf->zk.hub_id;
	const char *url = h->conf->zk.hub_url;
	char defid[300], defurl[300], host[256] = "hub";
	struct hub_zk *z;

	h->zk = NULL;
	if (!connect || !*connect)
		return 0;
	if (!(z = calloc(1, sizeof(*z))))
		return OUTPOST_E_INTERNAL;
	atomic_init(&z->refs, 1);
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->cond, NULL);
	pthread_mutex_init(&z->alock, NULL);
	pthread_cond_init(&z->acond, NULL);
	z->h = h;
	z->loop = h->loop;
	z->log = h->log;
	z->timeout_ms = (int)h->conf->zk.session_timeout_ms;
	gethostname(host, sizeof(host) - 1);
	snprintf(defid, sizeof(defid), "%s-%u", host, hub_port(h));
	snprintf(defurl, sizeof(defurl), "%s://%s", h->cert_pem ? "https" : "http",
	         h->conf->listen);
	z->connect = strdup(connect);
	z->hub_id = strdup(id ? id : defid);
	z->hub_url = strdup(url ? url : defurl);
	z->dirty_hosts = json_object();
	z->dirty_shards = json_object();
	z->host_shard = json_object();
	z->alive = json_object();
	z->zkhosts = json_object();
	z->acls = json_object();
	if (!z->zkhosts || !z->acls || !z->connect || !z->hub_id || !z->hub_url || !z->alive ||
	    !z->host_shard) {
		zk_unref(z);
		return OUTPOST_E_INTERNAL;
	}
	if (zk_read_secret(z, h->conf->zk.secret_file, msg, msglen) < 0 ||
	    zk_digest_id(ZK_HUB_USER, z->secret, z->hub_acl, sizeof(z->hub_acl)) < 0) {
		zk_unref(z);
		return OUTPOST_E_BAD_ARGS;
	}
	/* The client library logs each failed connection attempt (several a second while the
	 * ensemble is away): this module says what matters once; the library speaks only at
	 * log.level debug. The setting is the process's. */
	if (h->log->level < OUTPOST_LOG_DEBUG && (z->devnull = fopen("/dev/null", "we")))
		zoo_set_log_stream(z->devnull);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	if (pthread_create(&z->thread, NULL, zk_main, z) != 0) {
		snprintf(msg, msglen, "cannot start the ZooKeeper thread");
		zk_unref(z);
		return OUTPOST_E_INTERNAL;
	}
	z->started = 1;
	h->zk = z;
	log_info(h->log, "zk", "scale mode: hub %s (%s) joining ZooKeeper at %s", z->hub_id,
	         z->hub_url, z->connect);
	return 0;
}

void zk_stop(struct hub_zk *z)
{
	if (!z)
		return;
	pthread_mutex_lock(&z->lock);
	z->stop = 1;
	pthread_cond_signal(&z->cond);
	pthread_mutex_unlock(&z->lock);
	if (z->started)
		pthread_join(z->thread, NULL);
	z->h = NULL; /* posts still queued on the loop see it and do nothing */
	zk_unref(z);
}

/* ---- config ---- */

/* HOST:PORT[,HOST:PORT...] before the chroot: names, IPv4 or [IPv6], ports 1-65535. */
static int zk_servers_ok(const char *s)
{
	size_t end = strcspn(s, "/");

	if (end == 0)
		return 0;
	for (size_t i = 0; i < end;) {
		size_t item = strcspn(s + i, ",/"), colon = 0, host;
		const char *it = s + i;
		long port;
		char *p;
		for (size_t k = 0; k < item; k++)
			if (it[k] == ':')
				colon = k;
		if (!colon)
			return 0;
		host = it[0] == '['
		           ? strspn(it + 1, "0123456789abcdefABCDEF:") + 2
		           : strspn(it, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                        "0123456789.-_");
		if (host != colon || (it[0] == '[' && it[colon - 1] != ']'))
			return 0;
		port = strtol(it + colon + 1, &p, 10);
		if (p != it + item || colon + 1 == item || port < 1 || port > 65535)
			return 0;
		i += item + (s[i + item] == ',');
	}
	return s[end - 1] != ',';
}

int zk_conf_check(const struct hub_conf *c, char *msg, size_t msglen)
{
	const char *connect = c->zk.connect;
	const char *secret = c->zk.secret_file;
	const char *id = c->zk.hub_id;
	const char *backend = c->store.backend;
	const char *slash;

	if (!connect) {
		if (secret || id || c->zk.hub_url || c->zk.single_hub >= 0) {
			snprintf(msg, msglen, "the zk.* keys need 'zk.connect' (scale mode)");
			return OUTPOST_E_BAD_ARGS;
		}
		return 0;
	}
	if (!zk_servers_ok(connect)) {
		snprintf(msg, msglen,
		         "'zk.connect' must be HOST:PORT[,HOST:PORT...][/chroot], e.g. "
		         "\"zk1:2181,zk2:2181,zk3:2181/outpost-prod\"");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((slash = strchr(connect, '/')) &&
	    (strlen(slash) < 2 || slash[strlen(slash) - 1] == '/' || strstr(slash, "//"))) {
		snprintf(msg, msglen,
		         "'zk.connect': the chroot '%s' must be an absolute path "
		         "without a trailing /",
		         slash);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!secret || !*secret) {
		snprintf(msg, msglen,
		         "'zk.connect' needs 'zk.secret_file' (a file of mode 0600 with the hubs' "
		         "shared ZooKeeper secret)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (id && (!*id || strlen(id) > 64 || !hub_host_id_ok(id))) {
		snprintf(msg, msglen, "'zk.hub_id' must be 1 to 64 of A-Z a-z 0-9 . _ -");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((!backend || strcmp(backend, "sqlite") == 0) && c->zk.single_hub != 1) {
		snprintf(msg, msglen,
		         "'zk.connect' with 'store.backend' sqlite: hubs in scale mode share one "
		         "PostgreSQL store (store.backend postgresql); for a single hub on SQLite "
		         "say so with 'zk.single_hub': true");
		return OUTPOST_E_BAD_ARGS;
	}
	if (backend && strcmp(backend, "postgresql") == 0 && c->zk.single_hub >= 0) {
		snprintf(msg, msglen, "'zk.single_hub' is only for 'store.backend' sqlite");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}
