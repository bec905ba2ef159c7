/* Tasks from the hub, whatever link carried them (long-poll, ZooKeeper): verified in the order
 * docs/protocol.md gives (signature by the pinned hub key, our host id, expiry, well-formed
 * fields), refused (and logged) when anything fails, else run once through the dispatcher's
 * ledger. Every state change goes back through the link's durable report. Also keeps the
 * link's copy of the host's facts fresh. Loop thread only. */
#ifndef OUTPOST_AGENT_HUBTASK_H
#define OUTPOST_AGENT_HUBTASK_H

#include <jansson.h>
#include <stdint.h>

#include "core/log.h"

struct loop;
struct dispatch;
struct ledger;
struct link;
struct hubtask;
struct taskphases;

#define HUBTASK_HOST_ID_MAX 64

struct hubtask_config {
	struct loop *loop;
	const struct logger *log;
	struct dispatch *dispatch;
	struct ledger *ledger;
	const char *host_id;
	/* A task that expires further ahead than this is refused: the ledger forgets ids after
	 * ledger.keep_days, and a task replayed after that must not run again. 0: 7 days. */
	int64_t max_ttl_ms;
	/* How often the host's facts are gathered (sys.facts) for the link; 0: 15 min; <0: never.
	 */
	int64_t facts_interval_ms;
	/* Where tasks spend their time: verify, ledger, report (taskphase.h). Borrowed; NULL:
	 * not timed. */
	struct taskphases *phases;
	/* NULL-terminated names of the plugins with a `facts` op: each one's answer joins
	 * sys.facts under the plugin's name (docs/plugins.md, "Facts"). Copied. */
	const char *const *fact_plugins;
};

struct hubtask_stats {
	uint64_t received; /* signed tasks handed in by the link */
	uint64_t refused;  /* refused or expired: nothing ran */
	uint64_t replayed; /* answered from the ledger: nothing ran */
	uint64_t started;  /* handed to the dispatcher */
	int running;
};

/* 1 if id is a valid host id: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. */
int hubtask_host_id_ok(const char *id);
/* The host id to use: conf_id when set, else the hostname. 0, or OUTPOST_E_BAD_ARGS with a
 * message for the operator when it is not a valid host id. */
int hubtask_host_id(const char *conf_id, char out[HUBTASK_HOST_ID_MAX + 1], char *msg,
                    size_t msglen);

int hubtask_new(const struct hubtask_config *cfg, struct hubtask **out);
/* The link results and facts go to (borrowed; set once, before it starts). Starts the facts
 * timer. */
void hubtask_set_link(struct hubtask *h, struct link *link);
/* What hubtask_verify made of a task. */
struct hubtask_verdict {
	const char *id;    /* the task's id when valid (borrowed from the task), else NULL */
	const char *state; /* refused: "refused" or "expired" */
	int code;          /* refused: the outpost_err of the refusal */
	char why[256];     /* refused: the reason, for the log and the hub */
};

/* Judges a signed task ({"task": {...}, "sig": "..."}) in the order docs/protocol.md gives:
 * signature by pk (NULL: not enrolled yet, everything is refused), bound to host_id, expiry
 * against now (wall clock, ms) and max_ttl_ms, well-formed fields, issued_ms not ahead of now
 * by more than the skew bound. 0 when it may run, -1 with
 * *v saying why not. Pure: touches nothing (tests/fuzz/task_fuzz.c drives it). */
int hubtask_verify(const json_t *signed_task, const uint8_t *pk, const char *host_id, int64_t now,
                   int64_t max_ttl_ms, struct hubtask_verdict *v);
/* A link_task_fn: arg is the hubtask. */
void hubtask_receive(void *arg, const json_t *signed_task);
const struct hubtask_stats *hubtask_stats(const struct hubtask *h);
/* Calls still running are detached: their answers are dropped (their ledger rows stay, so
 * the hub learns the outcome on the next resume). NULL ok. */
void hubtask_free(struct hubtask *h);

#endif
