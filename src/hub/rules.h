/* Automation (docs/rules.md): rules kept in the store and in a rules file, evaluated in slices
 * on the hub's loop (the leading hub only in scale mode), alerts with their states, silences,
 * cooldown and caps, and the actions they start (a task, a webhook, a log line). Loop thread
 * only. */
#ifndef OUTPOST_HUB_RULES_H
#define OUTPOST_HUB_RULES_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct rules;
struct buf;
struct httpd_req;

/* Loads the rules, alerts and silences from the store and the rules file (rules.file). A
 * rules file that does not pass: BAD_ARGS, msg "FILE:LINE:COLUMN: what". */
int rules_new(struct hub *h, struct rules **out, char *msg, size_t msglen);
void rules_free(struct rules *r); /* NULL ok */
/* Reads and checks a rules file as the hub does at start (path NULL or "": none; an absent
 * file is no rules): 0, or BAD_ARGS with "FILE:LINE:COLUMN: what" in msg. */
int rules_file_check(const char *path, char *msg, size_t msglen);
/* Every second: starts an evaluation cycle when one is due. */
void rules_tick(struct hub *h);
/* SIGHUP: reads the rules file again; on failure the rules in force stay (msg says where). */
int rules_reload_file(struct hub *h, char *msg, size_t msglen);
/* Something happened to host that event(kind) terms see (the task engine's failures: kind
 * "task_failed", the task and the state its copy ended in): stored as the hub's event. */
void rules_note(struct hub *h, const char *host, const char *kind, const char *task_id,
                const char *state);
void rules_stats(struct hub *h, struct buf *b);

/* Routes (ctx is the struct hub): rules_api.c. */
void rules_api_list(void *ctx, struct httpd_req *req);
void rules_api_get(void *ctx, struct httpd_req *req);
void rules_api_add(void *ctx, struct httpd_req *req);
void rules_api_edit(void *ctx, struct httpd_req *req);
void rules_api_remove(void *ctx, struct httpd_req *req);
void rules_api_test(void *ctx, struct httpd_req *req);
void alerts_api_list(void *ctx, struct httpd_req *req);
void alerts_api_ack(void *ctx, struct httpd_req *req);
void alerts_api_history(void *ctx, struct httpd_req *req);
void alerts_api_silence(void *ctx, struct httpd_req *req);
void alerts_api_silences(void *ctx, struct httpd_req *req);
void alerts_api_unsilence(void *ctx, struct httpd_req *req);

#endif
