/* The call object and the part of the plugin contract a handler uses: see call.h. */
#include "call.h"
#include "core/err.h"
#include "core/wire.h"

#include <stdio.h>
#include <string.h>

void call_init(struct outpost_call *c, struct outpost_plugin_ctx *pc, const struct outpost_op *op,
               size_t op_index, int64_t deadline_ms)
{
	memset(c, 0, sizeof(*c));
	c->pc = pc;
	c->op = op;
	c->op_index = op_index;
	c->deadline_ms = deadline_ms;
	pthread_mutex_lock(&pc->conf_lock);
	c->config = json_incref(pc->config);
	pthread_mutex_unlock(&pc->conf_lock);
}

void call_release(struct outpost_call *c)
{
	json_decref(c->config);
	c->config = NULL;
}

const char *call_op_name(const struct outpost_call *c)
{
	return c->op->name;
}

int call_invoke(struct outpost_call *c, json_t *args, json_t **result)
{
	int rc;

	*result = NULL;
	rc = wire_check_args(c->op->args, args, c->errmsg, sizeof(c->errmsg));
	if (rc < 0) {
		c->errcode = rc;
		goto out;
	}
	rc = c->op->fn(c, args, result);
	if (rc < 0) {
		json_decref(*result);
		*result = NULL;
		if (!c->errmsg[0])
			snprintf(c->errmsg, sizeof(c->errmsg), "%s.%s failed (%s)",
			         c->pc->plugin->name, c->op->name, err_name(rc));
		c->errcode = rc;
	}
out:
	if (c->op_index < c->pc->nops) {
		atomic_fetch_add(&c->pc->stats[c->op_index].calls, 1);
		if (rc < 0)
			atomic_fetch_add(&c->pc->stats[c->op_index].errors, 1);
	}
	return rc;
}

void *outpost_call_state(struct outpost_call *call)
{
	return call->pc->state;
}

int64_t outpost_call_deadline(struct outpost_call *call)
{
	return call->deadline_ms;
}

int outpost_call_abandoned(struct outpost_call *call)
{
	return call->abandoned && atomic_load(call->abandoned);
}

json_t *outpost_call_config(struct outpost_call *call)
{
	return call->config;
}

int outpost_call_error(struct outpost_call *call, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->errmsg, sizeof(call->errmsg), fmt, ap);
	va_end(ap);
	call->errcode = code;
	return code;
}

void outpost_call_log(struct outpost_call *call, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(call->pc->host->log, level, call->pc->plugin->name, fmt, ap);
	va_end(ap);
}

void outpost_call_child_started(struct outpost_call *call)
{
	phase_start(&call->child);
	call->child_set = 1;
}

void outpost_call_child_cpu(struct outpost_call *call, int64_t cpu_ns)
{
	call->child_cpu_ns += cpu_ns;
}
