/* Flows (flows.c): named, ordered steps, each a task with its own target, timeout and
 * on_failure (stop, continue, goto STEP), run by the hub as a state machine kept in the store
 * (records "flow" and "flow_run"), so a restarted hub resumes a run where it was. In scale
 * mode only the leading hub drives runs; any hub accepts definitions and starts. Loop thread
 * only. docs/flows.md is the operator's page. */
#ifndef OUTPOST_HUB_FLOWS_H
#define OUTPOST_HUB_FLOWS_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct httpd_req;

/* Starts a run of the flow named flow_name. vars (borrowed, may be NULL): an object of
 * {NAME: string, number or boolean}, NAME as an environment variable name; they become
 * environment variables of every command and script step (with OUTPOST_FLOW,
 * OUTPOST_FLOW_RUN, OUTPOST_FLOW_STEP and OUTPOST_FLOW_ORIGIN). origin (e.g. "rule:<id>",
 * "token:<id>") is recorded in the run and in the audit log. id_out gets the run's id
 * (id_len >= 24). 0, or OUTPOST_E_NOT_FOUND (no such flow), OUTPOST_E_BAD_ARGS (vars), another
 * OUTPOST_E_* from the store; msg says why. The run starts at the next tick (within 1 s). */
int flow_start(struct hub *h, const char *flow_name, const json_t *vars, const char *origin,
               char *id_out, size_t id_len, char *msg, size_t msglen);

/* Checks a definition; 0, or OUTPOST_E_BAD_ARGS with msg locating the fault
 * ("steps[2] (check): on_failure: ..."). */
int flows_check(const json_t *def, char *msg, size_t msglen);

/* Every second: advances the runs that are due (leading hub only). */
void flows_tick(struct hub *h);

/* Routes (ctx is the struct hub). */
void flows_api_list(void *ctx, struct httpd_req *req);
void flows_api_put(void *ctx, struct httpd_req *req);
void flows_api_get(void *ctx, struct httpd_req *req);
void flows_api_remove(void *ctx, struct httpd_req *req);
void flows_api_run(void *ctx, struct httpd_req *req);
void flows_api_runs(void *ctx, struct httpd_req *req);
void flows_api_run_get(void *ctx, struct httpd_req *req);
void flows_api_run_cancel(void *ctx, struct httpd_req *req);

#endif
