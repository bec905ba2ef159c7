/* struct hub and what its files share; private to src/hub. */
#ifndef OUTPOST_HUB_IMPL_H
#define OUTPOST_HUB_IMPL_H

#include "admit.h"
#include "hub.h"
#include "hub_conf.h"
#include "store.h"
#include "core/httpd.h"
#include "core/phase.h"
#include "core/err.h"
#include "core/sec.h"

#include <stdatomic.h>
#include <stdint.h>

struct loop_timer;
struct tsdb;
struct ingest;
struct buf;
struct agents;
struct registry;
struct hub_zk;
struct qjob;
struct rwrite;
struct mail;
struct rules;

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
	 * was up, and when it was last seen (registry_alive skips a write when recent). */
	int up;
	int64_t last_seen_ms;
};

/* An operator's wait for a task's progress (GET /api/v1/tasks/<id>?wait=S). */
struct hub_wait {
	struct hub *h;
	struct httpd_req *req;
	struct loop_timer *timer;
	char key[130]; /* task id */
	int64_t since; /* answer when seq > since */
	struct hub_wait *next;
};

/* Enrollments refused, by reason (hub_stats.enroll_refused). */
enum { ENROLL_REFUSED_PENDING, ENROLL_REFUSED_ADDR, ENROLL_REFUSED_FACTS, ENROLL_REFUSED_USES };

/* Where a fan-out spends the hub's time (core/phase.h), served as outpost_hub_task_phase_*
 * (docs/metrics.md): agents' requests authenticated, tasks stored, copies taken from the store
 * for hosts, signed, handed to waiting polls, results stored. Their label values: api.c. */
enum hub_phase { HP_AUTH, HP_CREATE, HP_TAKE, HP_SIGN, HP_ANSWER, HP_RESULTS, HP_N };

struct hub_stats {
	unsigned long long requests, enrollments, tasks_created, results, refused_auth;
	/* refusals answered busy (a budget gone), for clock skew, as replays */
	unsigned long long refused_busy, refused_skew, refused_replay;
	/* enrollments refused: ENROLL_REFUSED_* (pending caps, facts bounds, token used up) */
	unsigned long long enroll_refused[4];
	unsigned long long enroll_replaced; /* pending squatters replaced by a token-holder */
	unsigned long long signed_tasks;
	/* seconds this hub did the fleet's maintenance (hub_maintains); tasks it ended by expiry */
	unsigned long long maintenance_ticks, tasks_expired;
	unsigned long long beats, seen_writes; /* agents' beats; host_seen writes of any request */
	/* metric queries that took more than one slice; refused busy; stopped at their deadline */
	unsigned long long queries_sliced, queries_busy, queries_timeout;
	/* events stored from agents and the API; repeats stored nothing; refused (events.c) */
	unsigned long long events_agent, events_api, events_duplicate, events_rejected;
	double latency_sum;
	unsigned long long latency_buckets[8]; /* <=1,5,10,50,100,500,1000 ms, +Inf */
	struct phase_stat phases[HP_N];
};

struct hub {
	struct loop *loop;
	struct logger *log;
	struct hub_conf *conf; /* what runs; owned, swapped whole on reload */
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
	struct tsdb *tsdb;   /* metrics (tsdb.h) */
	struct query *query; /* a spare query engine, its buffers warm (query.h) */
	struct qjob *qjobs;  /* metric queries under way in slices (query_api.c) */
	size_t nqjobs;
	struct loop_timer *qtimer;   /* runs their slices while there are some */
	struct ingest *ingest;       /* agents' metric batches (ingest.c) */
	struct rwrite *rwrite;       /* remote_write export (rwrite.h); NULL: none */
	struct loop_timer *compact;  /* the tsdb's background work */
	struct retention *retention; /* old events, audit, tasks (retention.h) */
	struct loop_timer *retain;   /* its background work */
	struct registry *registry;   /* hosts, liveness, selection (registry.h) */
	struct agents *agents;       /* agents' task long-polls (agents.h) */
	struct hub_zk *zk;           /* scale mode (zk.h); NULL: embedded */
	struct hub_wait *watches;    /* operators' task waits (tasks.c) */
	struct auth_limit *limit;    /* failed credentials, replay memory (auth_limit.h) */
	struct admit admit;          /* agents' new connections (admit.h) */
	struct mail *mail;           /* the mail queue's delivery (mail.h) */
	int64_t recs_pruned_ms;      /* when ended flow runs and sent mail were last pruned */
	struct rules *rules;         /* automation: rules, alerts (rules.h) */
	int batch;                   /* a store batch is open (hub_batch_begin) */
	int64_t started_ms;
	int stopping;
	struct hub_stats st;
};

/* hub.c: 1 when this hub does the fleet's periodic maintenance now (embedded: always; scale
 * mode: the leader only). */
int hub_maintains(struct hub *h);

/* hub.c: the store's batch (store.h's batch_begin) around one slice of background work (the
 * rules' slices, the flows' tick). begin does nothing when one is open already; end returns
 * whether one was open (a store that cannot commit is logged, as who's). A task is stored
 * outside any batch: tasks.c ends the open one before and begins it again after. */
void hub_batch_begin(struct hub *h);
int hub_batch_end(struct hub *h, const char *who);

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

/* Answers a store call's outcome: v on success (stolen), else the error about what. */
static inline void hub_respond_store(struct httpd_req *req, int rc, json_t *v, const char *what)
{
	if (rc == 0)
		httpd_respond_ok(req, v);
	else if (rc == OUTPOST_E_NOT_FOUND)
		httpd_respond_error(req, rc, "no such %s", what);
	else
		httpd_respond_error(req, rc, "%s: store error (%s)", what, err_name(rc));
}

/* query_api.c: the metric query routes */
void query_api_series(void *ctx, struct httpd_req *req);
void query_api_latest(void *ctx, struct httpd_req *req);
void query_api_query(void *ctx, struct httpd_req *req);
void query_api_federate(void *ctx, struct httpd_req *req);
/* Answers every query under way with unavailable (shutdown). */
void query_api_release_all(struct hub *h);
void query_api_stats(struct hub *h, struct buf *b);

#endif
