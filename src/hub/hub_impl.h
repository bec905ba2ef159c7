/* struct hub and what its files share; private to src/hub. */
#ifndef OUTPOST_HUB_IMPL_H
#define OUTPOST_HUB_IMPL_H

#include "hub.h"
#include "store.h"
#include "core/httpd.h"
#include "core/sec.h"

#include <stdatomic.h>
#include <stdint.h>

struct loop_timer;
struct tsdb;
struct ingest;
struct buf;

enum hub_role {
	ROLE_NONE = 0, /* anyone: health, enroll */
	ROLE_AGENT,    /* a signed, accepted agent */
	ROLE_VIEWER,
	ROLE_OPERATOR,
	ROLE_ADMIN,
};

/* Who is calling: set by auth on every request that needs a role. */
struct hub_caller {
	int role;
	char name[80];    /* "token:<id>" or "host:<id>" */
	char host_id[65]; /* for agents */
	/* For agents, as the registry had them when the request was checked: whether the host
	 * was up, and when it was last seen (tasks_host_alive skips a write when recent). */
	int up;
	int64_t last_seen_ms;
};

#define HUB_WAIT_BUCKETS 4096

/* A long-poll waiting for tasks (one per host) or for a task's progress. */
struct hub_wait {
	struct hub *h;
	struct httpd_req *req;
	struct loop_timer *timer;
	char key[130]; /* host id, or task id */
	int64_t since; /* task waits: answer when seq > since */
	int fd;        /* polls: the connection's socket with keepalive on, or -1 (borrowed) */
	struct hub_wait *next;
};

struct hub_stats {
	unsigned long long requests, enrollments, tasks_created, results, refused_auth;
	/* refusals answered busy (a budget gone), for clock skew, as replays */
	unsigned long long refused_busy, refused_skew, refused_replay;
	/* enrollments refused: ENROLL_REFUSED_* (pending caps, facts bounds, token used up) */
	unsigned long long enroll_refused[4];
	unsigned long long enroll_replaced; /* pending squatters replaced by a token-holder */
	unsigned long long signed_tasks;
	unsigned long long beats, seen_writes; /* agents' beats; host_seen writes of any request */
	double latency_sum;
	unsigned long long latency_buckets[8]; /* <=1,5,10,50,100,500,1000 ms, +Inf */
};

struct hub {
	struct loop *loop;
	struct logger *log;
	json_t *conf;
	char *state_dir;
	int lock_fd;
	struct store *store;
	uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES];
	char *pk_b64;
	char fingerprint[80];
	char *cert_pem, *key_pem;
	struct httpd *httpd;
	struct httpd_route *routes;
	struct loop_timer *tick;
	struct tsdb *tsdb;            /* metrics (tsdb.h) */
	struct query *query;          /* query engine's reused buffers (query.h) */
	struct ingest *ingest;        /* agents' metric batches (ingest.c) */
	struct loop_timer *compact;   /* the tsdb's background work */
	struct retention *retention;  /* old events, audit, tasks (retention.h) */
	struct loop_timer *retain;    /* its background work */
	json_t *sel_hosts, *sel_keys; /* the registry as queries' selectors saw it (tasks.c) */
	int64_t sel_at_ms;
	struct hub_wait *polls[HUB_WAIT_BUCKETS]; /* agents' task polls by host id */
	struct hub_wait *watches;                 /* operators' task waits */
	size_t npolls;
	struct auth_limit *limit; /* failed credentials, replay memory (auth_limit.h) */
	int64_t started_ms;
	int stopping;
	struct hub_stats st;
};

/* auth.c */
int auth_check(void *ctx, struct httpd_req *req, int role);
int auth_headers(void *ctx, struct httpd_req *req, int role);
/* Counts a failed attempt with an unknown credential from the request's address (its budget
 * and the one all unknown credentials share); 1 when one of them is now used up. */
int auth_fail(struct hub *h, struct httpd_req *req);
/* Whether the address's budget or the shared one for unknown credentials is used up: for a
 * request that carries no credential at all (enrollment without a token). Never use it to
 * refuse a request whose credential is valid. */
int auth_limited(struct hub *h, struct httpd_req *req);
/* The refusals' counters in Prometheus text. */
void auth_stats(struct hub *h, struct buf *b);
/* A valid host id: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. */
int hub_host_id_ok(const char *id);

/* api.c */
const struct httpd_route *api_routes(size_t *n);
void api_audit(struct hub *h, struct httpd_req *req, const char *action, const char *target,
               json_t *detail);
/* Facts a host hands in (enrollment, beats): bounded in depth and in bytes
 * (enroll.facts_max_bytes) before they are kept. 1 when they fit; else 0, and req has been
 * answered (counted as an enrollment refusal when enrolling). */
int api_facts_ok(struct hub *h, struct httpd_req *req, const json_t *facts, int enrolling);

/* query_api.c: the metric query routes */
void query_api_series(void *ctx, struct httpd_req *req);
void query_api_latest(void *ctx, struct httpd_req *req);
void query_api_query(void *ctx, struct httpd_req *req);
void query_api_federate(void *ctx, struct httpd_req *req);

/* tasks.c */
void tasks_api_create(void *ctx, struct httpd_req *req);
void tasks_api_list(void *ctx, struct httpd_req *req);
void tasks_api_get(void *ctx, struct httpd_req *req);
void tasks_api_cancel(void *ctx, struct httpd_req *req);
void tasks_agent_poll(void *ctx, struct httpd_req *req);
void tasks_agent_results(void *ctx, struct httpd_req *req);
/* Ends the held poll of a host that was just revoked or removed with `unauthorized` and why,
 * as its next request would be answered: an idle agent, which beats no more while its poll is
 * held, learns it at once, not at the end of the poll. */
void tasks_cut_off(struct hub *h, const char *host, const char *why);
/* Answers the poll of each host in ids (an array) that has something queued. */
void tasks_wake_hosts(struct hub *h, json_t *ids);
void tasks_wake_task(struct hub *h, const char *task_id);
/* The ids (a new array) of the hosts a selector matches: accepted ones (up, down), or with
 * any_state also pending and revoked ones (HUB_SELECT_ANY_CACHED: from a registry snapshot up
 * to 2 s old, for dashboards; HUB_SELECT_ANY: read afresh). 0 (the array may be empty), or
 * BAD_ARGS with msg for a selector that does not parse or names an unknown key. */
#define HUB_SELECT_ANY_CACHED 1
#define HUB_SELECT_ANY 2
int hub_select_hosts(struct hub *h, const char *target, int any_state, json_t **ids, char *msg,
                     size_t msglen);
/* Every second: liveness, expiry, batches. */
void tasks_tick(struct hub *h);
/* A signed agent request that got through is a sign of life, as a beat is (without facts). */
void tasks_host_alive(struct hub *h, struct hub_caller *c);
/* Answers every wait (shutdown). */
void tasks_release_all(struct hub *h);

/* ingest.c */
int ingest_new(struct hub *h, struct ingest **out);
void ingest_free(struct ingest *in); /* answers what waits; NULL ok */
void ingest_agent_metrics(struct hub *h, struct httpd_req *req, struct hub_caller *c);
/* Writes the pending samples and answers the agents waiting for them. */
void ingest_commit(struct ingest *in);
void ingest_stats(const struct ingest *in, struct buf *b);

#endif
