/* One call of one op: the object behind struct outpost_call, shared by the dispatcher and the
 * unit-test harness so both run handlers the same way. */
#ifndef OUTPOST_AGENT_CALL_H
#define OUTPOST_AGENT_CALL_H

#include "plugins.h"
#include "core/phase.h"

struct outpost_call {
	struct outpost_plugin_ctx *pc;
	const struct outpost_op *op;
	size_t op_index;
	json_t *config;              /* snapshot of the plugin's section; owned */
	int64_t deadline_ms;         /* CLOCK_MONOTONIC */
	const atomic_int *abandoned; /* the dispatcher's; NULL: never */
	int errcode;
	char errmsg[512];
	/* What the handler said of its child (outpost_call_child_*): when it ran, its CPU. */
	struct phase_mark child;
	int child_set;
	int64_t child_cpu_ns;
};

void call_init(struct outpost_call *c, struct outpost_plugin_ctx *pc, const struct outpost_op *op,
               size_t op_index, int64_t deadline_ms);
/* Checks args against the op's table and runs the handler. Returns 0 with *result (new ref,
 * may be NULL) or a negative code with c->errmsg set. */
int call_invoke(struct outpost_call *c, json_t *args, json_t **result);
void call_release(struct outpost_call *c);
/* For executable plugins: the op being called. */
const char *call_op_name(const struct outpost_call *c);

#endif
