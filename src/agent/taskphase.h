/* The phases of a task from the hub on its way through the agent, each counted and timed
 * (core/phase.h) and served at /metrics as outpost_agent_task_phase_* (docs/metrics.md):
 * where an agent's time goes when the hub fans a command out. One table per agent, shared by
 * the modules that time a phase; NULL where there is none. */
#ifndef OUTPOST_AGENT_TASKPHASE_H
#define OUTPOST_AGENT_TASKPHASE_H

#include "core/phase.h"

enum taskphase {
	TP_POLL,    /* the long-poll's answer: read (from its first byte), parsed, handed in */
	TP_VERIFY,  /* signature, host, expiry and fields (hubtask_verify) */
	TP_LEDGER,  /* the run-once record: the id looked up, begun and finished */
	TP_SPAWN,   /* the handler until its child process runs (exec done) */
	TP_COMMAND, /* the child until it ended and was reaped (CPU: the child's, too) */
	TP_REPORT,  /* the result into the outbox, the results POST and its answer */
	TP_N
};
/* Their names, in this order, are the label values at /metrics (api.c). */

struct taskphases {
	struct phase_stat p[TP_N];
};

/* The stat of phase k in t, or NULL when t is. */
static inline struct phase_stat *taskphase(struct taskphases *t, enum taskphase k)
{
	return t ? &t->p[k] : 0;
}

#endif
