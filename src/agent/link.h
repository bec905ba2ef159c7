/* The agent's link to the hub: one small interface, chosen once at start, with one
 * implementation per mode (embedded: HTTPS long-poll, link_http.c; scale: ZooKeeper for
 * liveness and tasks around a link_http for the rest, link_zk.c).
 * The link enrolls, keeps the hub's keys pinned, brings signed tasks in and takes results and
 * published batches out (durably, in order, with retries). It does not judge tasks: hubtask.c
 * verifies them, whatever carried them. Everything runs on the agent's loop thread; no link call
 * blocks. */
#ifndef OUTPOST_AGENT_LINK_H
#define OUTPOST_AGENT_LINK_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "core/sec.h"

struct loop;
struct link;

/* A signed task as the hub sent it ({"task": {...}, "sig": "..."}), unverified; borrowed for
 * the call. Runs on the loop thread, in the order the hub handed the tasks out. */
typedef void (*link_task_fn)(void *arg, const json_t *signed_task);

#define LINK_REFUSED_RETRY_MS (10 * 60 * 1000)

struct link_config {
	struct loop *loop;
	const struct logger *log; /* outlives the link */
	sqlite3 *db;              /* the agent's database: the outbox and the spool live there */
	int64_t spool_max_bytes;  /* hub.spool_max_bytes; 0: the default (spool.h) */
	const char *state_dir;    /* agent.key, hub.json, hub.crt */
	const char *url;          /* the hub's base URL */
	const char *token;        /* enrollment token; NULL: enroll pending an operator */
	const char *ca;           /* CA file; NULL: trust the hub's certificate on first use */
	const char *fingerprint;  /* "sha256:HEX" the first-use certificate must have; or NULL */
	const char *host_id;      /* this host's id (see hubtask_host_id_ok) */
	/* How often to ask again while the hub refuses this host until an operator acts
	 * (rejected, revoked, its id taken by another key); 0: LINK_REFUSED_RETRY_MS. */
	int64_t refused_retry_ms;
	/* The local address the link's connections leave from (numeric); NULL: the kernel's
	 * choice. outpost-sim spreads its virtual agents over 127.0.x.y with it. */
	const char *source_addr;
	link_task_fn on_task;
	void *arg;
	/* Scale mode: link_zk.c wraps a link_http for what stays HTTPS (enrollment, results,
	 * batches, facts, its ZooKeeper credentials); tasks and liveness come through ZooKeeper.
	 * With tasks_elsewhere the link_http neither long-polls nor beats for liveness: a beat
	 * goes at start (the version) and when the facts change. With creds_route, each time the
	 * link starts running (enrolled, or enrolled again) and on link_http_ask_creds it asks
	 * GET /api/v1/agents/<id>/<creds_route>, signed, and hands the answer's result (borrowed)
	 * to on_creds, which says 0, or negative to be asked again later with backoff. */
	int tasks_elsewhere;
	const char *creds_route;
	int (*on_creds)(void *arg, const json_t *result);
	void *creds_arg;
	/* Where tasks spend their time in the link: the poll's answer, the results' POST
	 * (taskphase.h). Borrowed; NULL: not timed. */
	struct taskphases *phases;
};

struct link_ops {
	const char *name; /* "http", "zookeeper" */
	/* Starts enrolling/connecting in the background. Fails only on local trouble (key file,
	 * state directory), with a message for the operator. May be called again after stop:
	 * the link picks up from its state on disk (outpost-sim's paused agents resume so). */
	int (*start)(struct link *l, char *msg, size_t msglen);
	/* Drops every request in flight; nothing more is sent or received. Results already
	 * reported stay in the outbox for the next start; report and publish still store while
	 * stopped. */
	void (*stop)(struct link *l);
	/* Queues one result {"task_id", "state", "response", "started_ms", "finished_ms"}
	 * (borrowed) durably and delivers it in order, retrying until the hub acknowledges it.
	 * 0, or a negative code when it could not even be stored. */
	int (*report)(struct link *l, const json_t *result);
	/* Queues one batch of stream ("metrics" or "events") durably in the one spool and
	 * delivers it in order with the others, at least once, until the hub acknowledges it
	 * (past the spool's bound the oldest are dropped). batch: the compact JSON text of an
	 * object without "seq" (borrowed, len bytes). 0; OUTPOST_E_BAD_ARGS for another stream;
	 * OUTPOST_E_TOO_LARGE for a batch the spool cannot hold; another negative code when it
	 * could not be stored. */
	int (*publish)(struct link *l, const char *stream, const char *batch, size_t len);
	/* The host's facts (borrowed), sent to the hub when they change. */
	void (*facts)(struct link *l, const json_t *facts);
	/* The pinned hub public key: 0, or -1 while the agent is not enrolled. */
	int (*hub_key)(struct link *l, uint8_t pk[SEC_PK_BYTES]);
	/* For /v1/health and /metrics: {"mode", "url", "host_id", "state" (unenrolled, pending,
	 * up, rejected, revoked, refused), "phase", "connected",
	 * "reconnects", "tasks_received", "results_sent", "outbox_depth", "spool_depth",
	 * "spool_bytes", "spool_dropped", "batches_sent", "batches_rejected", "last_contact_ms",
	 * "last_error"}. New reference. */
	json_t *(*status)(struct link *l);
	void (*free)(struct link *l);
};

struct link {
	const struct link_ops *ops;
};

static inline void link_free(struct link *l)
{
	if (l)
		l->ops->free(l);
}

/* The embedded mode. Checks the config; the network is touched only by start. */
int link_http_new(const struct link_config *cfg, struct link **out, char *msg, size_t msglen);
/* Scale mode (docs/scale.md): ZooKeeper for liveness and tasks, with the credentials the hub
 * hands out (GET /api/v1/agents/<id>/zk, kept in <state>/zk.json), and a link_http made from
 * cfg for the rest. connect (HOST:PORT[,...][/CHROOT]) and timeout_ms override the hub's
 * (NULL, 0: the hub's; LINK_ZK_TIMEOUT_MS when it says none). Checks the config; the network
 * is touched only by start. */
#define LINK_ZK_TIMEOUT_MS 15000
int link_zk_new(const struct link_config *cfg, const char *connect, int timeout_ms,
                struct link **out, char *msg, size_t msglen);
/* Checks zk.connect. 0, or OUTPOST_E_BAD_ARGS with msg. */
int link_zk_check_connect(const char *connect, char *msg, size_t msglen);
/* Sends what goes by HTTPS to another hub from now on (scale mode: the hubs share the signing
 * key and the TLS certificate or CA). Requests in flight are dropped and sent again there; the
 * hub URL kept in hub.json stays the configured one. 0, or OUTPOST_E_BAD_ARGS with msg. */
int link_http_set_url(struct link *l, const char *url, char *msg, size_t msglen);
/* Asks for the credentials of creds_route again (soon, when the link runs). */
void link_http_ask_creds(struct link *l);
/* The hub URL requests go to now (borrowed, valid until the next link_http_set_url). */
const char *link_http_url(const struct link *l);
/* Checks a hub URL: https://HOST[:PORT] (a path of "/" at most), or http:// to a loopback
 * address only. 0, or OUTPOST_E_BAD_ARGS with msg. */
int link_http_check_url(const char *url, char *msg, size_t msglen);

#endif
