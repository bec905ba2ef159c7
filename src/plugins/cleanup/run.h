/* One run of cleanup policies, as a plan (dry run: nothing changes) or an apply: what would
 * change or changed, the drift found, the errors, and (apply) the events for the hub.
 * run.c holds the run and the paths rules; drift.c the sysctl, required paths and packages
 * checks. Everything is opened beneath rootfd (the plugin's root prefix). */
#ifndef OUTPOST_CLEANUP_RUN_H
#define OUTPOST_CLEANUP_RUN_H

#include "policy.h"
#include "walk.h"

#include <jansson.h>
#include <stdint.h>

#define CL_CHANGES_MAX 1000 /* entries of "changes" in a result; the counts go on */
#define CL_EVENTS_MAX 100   /* per-file events of one apply; the summary counts the rest */

struct cl_run {
	int rootfd; /* borrowed */
	int apply;
	int64_t now_ms; /* unix ms: ages are measured from it */
	int (*stop)(void *);
	void *stop_arg;
	/* Results, owned (cl_run_free): */
	json_t *changes, *drift, *packages, *errors, *events;
	size_t nchanges, deleted, compressed, fixed, file_events;
	int64_t bytes_freed, bytes_compress, bytes_saved;
	size_t symlinks;
};

int cl_run_init(struct cl_run *r, int rootfd, int apply, int64_t now_ms);
/* Runs every policy of s (or only the one named only, when not NULL: NOT_FOUND otherwise). An
 * error in one rule is recorded in "errors" and the run goes on; a passed deadline ends it
 * (TIMEOUT, with what was done recorded). */
int cl_run_policies(struct cl_run *r, const struct cl_set *s, const char *only);
/* The op's answer (new reference); the run keeps its events. */
json_t *cl_run_result(const struct cl_run *r);
void cl_run_free(struct cl_run *r);

/* Marks each file of s with its action under rule r at now_s (unix seconds): age first, then
 * keep-N per directory among what age left, then the total size (oldest first), then
 * compression of what is left. */
void cl_rule_decide(struct cw_scan *s, const struct cl_rule *r, int64_t now_s);

/* Shared by run.c and drift.c. */
void cl_run_change(struct cl_run *r, const char *policy, const char *action, const char *what,
                   const char *target, int64_t bytes, const char *reason);
void cl_run_error(struct cl_run *r, const char *policy, const char *target, const char *msg);
void cl_run_event(struct cl_run *r, const char *kind, const char *severity, json_t *data,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

void cl_drift_sysctl(struct cl_run *r, const struct cl_policy *p, const struct cl_sysctl *s);
void cl_drift_required(struct cl_run *r, const struct cl_policy *p, const struct cl_required *q);
void cl_drift_packages(struct cl_run *r, const struct cl_policy *p);

#endif
