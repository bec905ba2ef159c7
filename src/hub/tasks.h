/* The task engine (tasks.c): the task routes, results from agents, operators' waits on a
 * task's progress, expiry and rolling batches. Loop thread only. */
#ifndef OUTPOST_HUB_TASKS_H
#define OUTPOST_HUB_TASKS_H

struct hub;
struct httpd_req;

/* Routes (ctx is the struct hub). */
void tasks_api_create(void *ctx, struct httpd_req *req);
void tasks_api_list(void *ctx, struct httpd_req *req);
void tasks_api_get(void *ctx, struct httpd_req *req);
void tasks_api_cancel(void *ctx, struct httpd_req *req);
void tasks_agent_results(void *ctx, struct httpd_req *req);
/* Answers the operators waiting on the task's progress. */
void tasks_wake_task(struct hub *h, const char *task_id);
/* Every second: expiry, batches. */
void tasks_tick(struct hub *h);
/* Answers every operator's wait (shutdown). */
void tasks_release_all(struct hub *h);

#endif
