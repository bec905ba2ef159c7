/* The task engine (tasks.c): the task routes, results from agents, operators' waits on a
 * task's progress, expiry and rolling batches. Loop thread only. */
#ifndef OUTPOST_HUB_TASKS_H
#define OUTPOST_HUB_TASKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct hub;
struct httpd_req;

/* A task the hub starts by itself (a flow's step, a rule's action): what POST /api/v1/tasks
 * takes, without batches. */
struct task_spec {
	const char *id; /* the caller's: a repeat returns the first task (tasks_new_id makes one) */
	const char *target; /* a selector */
	const char *plugin, *op;
	const json_t *args;     /* borrowed; NULL: {} */
	int64_t timeout_ms;     /* 0: tasks.default_timeout_ms */
	int64_t expires_in_ms;  /* 0: tasks.default_expiry_ms */
	const char *created_by; /* the audit log's actor: "flow:<run>", "rule:<id>" */
};

/* Stores, audits and hands out the task; *task: it as stored (new reference), the first
 * one for an id already taken. OUTPOST_E_NOT_FOUND when the target matches no accepted host,
 * OUTPOST_E_BAD_ARGS for a bad selector; msg says why. */
int tasks_submit(struct hub *h, const struct task_spec *sp, json_t **task, char *msg,
                 size_t msglen);
/* A fresh task id: prefix and 16 random characters. */
int tasks_new_id(const char *prefix, char *out, size_t cap);

/* Routes (ctx is the struct hub). */
void tasks_api_create(void *ctx, struct httpd_req *req);
void tasks_api_list(void *ctx, struct httpd_req *req);
void tasks_api_get(void *ctx, struct httpd_req *req);
void tasks_api_cancel(void *ctx, struct httpd_req *req);
void tasks_agent_results(void *ctx, struct httpd_req *req);
/* A task the hub decides on itself (a rule's action): plugin.op with args (borrowed) on the
 * accepted hosts ids (borrowed), target the text recorded for them, timeout_ms 0: the default.
 * A repeated id is not started again (0). 0 or a store error. */
int tasks_start(struct hub *h, const char *id, const char *target, json_t *ids, const char *plugin,
                const char *op, json_t *args, int64_t timeout_ms, const char *by);
/* Answers the operators waiting on the task's progress. */
void tasks_wake_task(struct hub *h, const char *task_id);
/* Every second: expiry, batches. */
void tasks_tick(struct hub *h);
/* Answers every operator's wait (shutdown). */
void tasks_release_all(struct hub *h);

#endif
