/* What the automation's files share (rules.c: the rule set and the evaluation cycle;
 * rules_act.c: alerts' transitions and actions; rules_api.c: the routes; rules_hook.c: the
 * webhook worker). Private to them. */
#ifndef OUTPOST_HUB_RULES_INT_H
#define OUTPOST_HUB_RULES_INT_H

#include "rules.h"
#include "rule_expr.h"

#include <jansson.h>
#include <stdint.h>

struct hub;
struct selector;
struct logger;

#define RULES_NAME_MAX 64
#define RULES_MAX 5000      /* rules in force, store and file together */
#define RULES_ACTIONS_MAX 8 /* actions of one rule */
#define RULES_CAP_MAX 1000  /* max_actions_per_hour at most */
#define RULES_SLICE_MS 20   /* one slice of a cycle holds the loop at most about this */

/* One rule in force. doc is what the API shows (name, scope, condition, actions, options,
 * source). */
struct rule {
	char *name;
	json_t *doc;
	struct rule_expr *expr;
	struct selector *scope; /* NULL: every host */
	int from_file;
	int dry_run;
	int64_t cooldown_ms, repeat_ms;
	int cap; /* actions per hour (each notification of an alert counts one) */
	json_t *actions;
	/* host -> alert document (pending or firing): the alerts of this rule now */
	json_t *alerts;
	json_t *last_act;            /* host -> when its alerts last ran actions (cooldown) */
	int64_t acts[RULES_CAP_MAX]; /* times of the actions of the last hour, a ring */
	size_t nacts, actpos;
};

/* A webhook delivery handed to the worker (rules_hook.c). */
struct rules_hook;
int rules_hook_start(struct hub *h, struct rules_hook **out, char *msg, size_t msglen);
/* Queues a POST of body (stolen) to url for rule; its outcome lands in the alert history. */
void rules_hook_send(struct rules_hook *w, const char *url, const char *rule, const char *host,
                     char *body);
void rules_hook_stop(struct rules_hook *w); /* NULL ok */
void rules_hook_stats(struct rules_hook *w, unsigned long long *sent, unsigned long long *failed);
/* Loop thread: records the outcomes of the deliveries that ended since the last call. */
void rules_hook_drain(struct rules_hook *w, struct rules *rs);

struct rules {
	struct hub *h;
	struct rule **v;
	size_t n;
	char *file;       /* rules.file; NULL: none */
	json_t *silences; /* [{id, rule, host, selector, ends_ms, comment, created_by}] */
	struct rules_hook *hook;
	/* the cycle under way */
	struct rules_cycle *cyc;
	struct wcache *wc; /* its window figures' memory, kept from cycle to cycle */
	int led;           /* led at the last tick (0: the store is read again when it leads) */
	int64_t next_ms;   /* when the next cycle is due (wall clock) */
	int64_t last_events_ms; /* events up to here were seen by the last cycle */
	struct loop_timer *slice_timer;
	/* counters */
	unsigned long long cycles, actions, suppressed, evals;
	int64_t last_cycle_ms, last_cycle_cpu_us, max_slice_us, max_slice_cpu_us;
};

/* rules.c */
/* Builds a rule from its document (checked: name, scope, condition, actions, options). 0, or
 * BAD_ARGS with *field the key that is wrong, *col the column within it (0: none) and msg. */
int rule_build(const json_t *doc, struct rule **out, const char **field, int *col, char *msg,
               size_t msglen);
void rule_free(struct rule *r);
struct rule *rules_find(struct rules *rs, const char *name);
/* Puts r in force in place of the rule of the same name (its alerts move over) or as a new
 * one; takes r. */
void rules_install(struct rules *rs, struct rule *r);
/* Removes the rule named name; its alerts are dropped from the store. */
void rules_uninstall(struct rules *rs, const char *name);
/* The cycle under way is dropped (the rule set changed under it). */
void rules_cycle_abort(struct rules *rs);
/* Evaluates r's condition at once over every host, for `rules test`: {host: values}. */
int rules_eval_now(struct rules *rs, struct rule *r, json_t **matched, char *msg, size_t msglen);

/* rules_act.c */
/* A rule's evaluation ended: its matched hosts {host: {term: value}} against its alerts,
 * resumable across slices (every transition may write to the store). */
struct rules_settle {
	json_t *matched; /* owned */
	void *it;        /* phase 1: the next matched host */
	json_t *gone;    /* phase 2: the alerts to resolve (owned); NULL: phase 1 */
	size_t pos;
};
/* 0 done, 1 the slice ended first (until: monotonic ms; 0 none): call again. */
int rules_settle(struct rules *rs, struct rule *r, struct rules_settle *st, const json_t *hosts,
                 int64_t now, int64_t until);
/* The check of one action of a rule's actions (its kind's table row). */
int rules_action_check(const json_t *a, char *msg, size_t msglen);
/* Whether a silence covers the alert of rule on host now. */
const json_t *rules_silenced(struct rules *rs, const struct rule *r, const char *host,
                             const json_t *attrs, int64_t now);
/* One history entry (rule, host may be NULL, kind, detail stolen). */
void rules_log(struct rules *rs, const char *rule, const char *host, const char *kind,
               json_t *detail);
/* The alerts' store key: "RULE/HOST". */
void rules_alert_key(const char *rule, const char *host, char *out, size_t cap);
/* Automation's documents are store records of kind "rule", "alert", "silence" (never due). */
int rules_doc_put(struct hub *h, const char *kind, const char *id, const json_t *doc);
int rules_doc_del(struct hub *h, const char *kind, const char *id);

#endif
