/* The dispatcher ("switcher"): routes each call to its plugin's handler on a worker thread,
 * with a bounded number in flight (over it: busy) and a per-op deadline. A handler that passes
 * its deadline answers timeout to its caller and never takes the agent down; its worker stays
 * busy until the handler returns. Mutating calls with an id go through the ledger. */
#ifndef OUTPOST_AGENT_DISPATCH_H
#define OUTPOST_AGENT_DISPATCH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/log.h"

struct loop;
struct plugins;
struct ledger;
struct dispatch;
struct taskphases;

struct dispatch_config {
	int workers;                /* threads (default 4) */
	int max_inflight;           /* queued + running (default 64) */
	int64_t default_timeout_ms; /* per-op deadline when none configured (default 30 s) */
	json_t *timeouts;           /* {"exec.run": ms, ...} borrowed for the dispatcher's life */
	/* Where the calls of hub tasks (DISPATCH_JOURNAL) spend their time: ledger, spawn,
	 * command. Borrowed for the dispatcher's life; NULL: not timed. */
	struct taskphases *phases;
};

struct dispatch_stats {
	atomic_ullong calls, busy, timeouts, replays, errors;
	atomic_int inflight;
};

/* Runs on the loop thread exactly once per accepted call. envelope: the response, stolen.
 * replay: it is the stored answer of an earlier call with the same id. */
typedef void (*dispatch_done_fn)(void *arg, json_t *envelope, int replay);

int dispatch_new(struct loop *loop, struct plugins *ps, struct ledger *ledger,
                 const struct logger *log, const struct dispatch_config *cfg,
                 struct dispatch **out);
/* Stops the workers after the calls in flight end. NULL ok. */
void dispatch_free(struct dispatch *d);
/* The agent is stopping and will not wait for the calls in flight any longer: handlers that
 * look (outpost_call_abandoned) end them now. Thread-safe. */
void dispatch_abandon(struct dispatch *d);

/* On the loop thread. Takes a reference to args. id may be NULL; mutating ops (or any op with
 * DISPATCH_JOURNAL) that carry one go through the ledger. timeout_ms <= 0: the op's
 * configured deadline; otherwise the smaller of the two. done runs on the loop thread, later
 * (also for immediate refusals: unknown plugin, busy...), except for OUTPOST_OP_INLINE ops,
 * whose done runs before this returns. Returns 0, or -1 when out of memory (done will not
 * run). */
enum dispatch_flags {
	/* Journal by id whatever the op (tasks from the hub run once, mutating or not). */
	DISPATCH_JOURNAL = 1 << 0,
};

int dispatch_submit(struct dispatch *d, const char *plugin, const char *op, json_t *args,
                    const char *id, int64_t timeout_ms, unsigned flags, dispatch_done_fn done,
                    void *arg);
/* dispatch_submit with the ledger of one caller instead of the dispatcher's own: one
 * dispatcher (one pool of workers) can serve several agents, each journaling its tasks in its
 * own ledger (outpost-sim's virtual agents). ledger is borrowed and must outlive the call. */
int dispatch_submit_ledger(struct dispatch *d, struct ledger *ledger, const char *plugin,
                           const char *op, json_t *args, const char *id, int64_t timeout_ms,
                           unsigned flags, dispatch_done_fn done, void *arg);
/* Calls accepted and not yet finished by their workers. */
int dispatch_inflight(const struct dispatch *d);
const struct dispatch_stats *dispatch_stats(const struct dispatch *d);
/* Swaps the per-op timeouts (borrowed) on reload. */
void dispatch_set_timeouts(struct dispatch *d, json_t *timeouts, int64_t default_ms);

#endif
