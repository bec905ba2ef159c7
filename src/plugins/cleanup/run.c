/* A run of cleanup policies and the paths rules: see run.h. */
#include "run.h"

#include "core/wire.h"

#include <outpost/plugin.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cl_run_init(struct cl_run *r, int rootfd, int apply, int64_t now_ms)
{
	memset(r, 0, sizeof(*r));
	r->rootfd = rootfd;
	r->apply = apply;
	r->now_ms = now_ms;
	r->changes = json_array();
	r->drift = json_array();
	r->packages = json_array();
	r->errors = json_array();
	r->events = json_array();
	if (!r->changes || !r->drift || !r->packages || !r->errors || !r->events) {
		cl_run_free(r);
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

void cl_run_free(struct cl_run *r)
{
	json_decref(r->changes);
	json_decref(r->drift);
	json_decref(r->packages);
	json_decref(r->errors);
	json_decref(r->events);
	r->changes = r->drift = r->packages = r->errors = r->events = NULL;
}

/* File names are bytes: a newline in one would split an event's one-line message (and the hub
 * refuses the whole batch), bytes that are not UTF-8 cannot be in a JSON string, and a
 * message cut at its buffer's end may end in half a character. Such bytes are shown as '?';
 * the changes themselves go by the real names. */
static void clean_text(char *s)
{
	int utf8 = wire_utf8_ok(s, strlen(s));

	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || (!utf8 && (unsigned char)*s > 0x7f))
			*s = '?';
}

static const char *clean_copy(char *buf, size_t len, const char *s)
{
	snprintf(buf, len, "%s", s);
	clean_text(buf);
	return buf;
}

void cl_run_event(struct cl_run *r, const char *kind, const char *severity, json_t *data,
                  const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clean_text(msg);
	json_array_append_new(r->events,
	                      json_pack("{s:s, s:s, s:I, s:s, s:o}", "kind", kind, "severity",
	                                severity, "ts", (json_int_t)r->now_ms, "message", msg,
	                                "data", data ? data : json_object()));
}

void cl_run_change(struct cl_run *r, const char *policy, const char *action, const char *what,
                   const char *target, int64_t bytes, const char *reason)
{
	char tb[PATH_MAX + 64];
	json_t *c;

	r->nchanges++;
	if (json_array_size(r->changes) >= CL_CHANGES_MAX)
		return;
	c = json_pack("{s:s, s:s, s:s}", "policy", policy, "action", action, what,
	              clean_copy(tb, sizeof(tb), target));
	if (bytes >= 0)
		json_object_set_new(c, "bytes", json_integer(bytes));
	if (reason)
		json_object_set_new(c, "reason", json_string(reason));
	json_array_append_new(r->changes, c);
}

void cl_run_error(struct cl_run *r, const char *policy, const char *target_raw, const char *msg_raw)
{
	char tb[PATH_MAX + 64], mb[1024];
	const char *target = clean_copy(tb, sizeof(tb), target_raw);
	const char *msg = clean_copy(mb, sizeof(mb), msg_raw);

	json_array_append_new(r->errors, json_pack("{s:s, s:s, s:s}", "policy", policy, "path",
	                                           target, "message", msg));
	if (r->apply)
		cl_run_event(r, "cleanup.error", "warning",
		             json_pack("{s:s, s:s}", "policy", policy, "path", target),
		             "cleanup policy %s: %s", policy, msg);
}

/* ---- Deciding ---- */

static int by_dir_newest(const void *a, const void *b)
{
	const struct cw_file *x = *(struct cw_file *const *)a, *y = *(struct cw_file *const *)b;

	if (x->dir != y->dir)
		return x->dir < y->dir ? -1 : 1;
	if (x->mtime_s != y->mtime_s)
		return x->mtime_s > y->mtime_s ? -1 : 1;
	return strcmp(x->rel, y->rel);
}

static int by_oldest(const void *a, const void *b)
{
	const struct cw_file *x = *(struct cw_file *const *)a, *y = *(struct cw_file *const *)b;

	if (x->mtime_s != y->mtime_s)
		return x->mtime_s < y->mtime_s ? -1 : 1;
	return strcmp(x->rel, y->rel);
}

static int gz_named(const char *rel)
{
	size_t n = strlen(rel);

	return n > 3 && strcmp(rel + n - 3, ".gz") == 0;
}

void cl_rule_decide(struct cw_scan *s, const struct cl_rule *r, int64_t now_s)
{
	struct cw_file **v;
	int64_t total = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		struct cw_file *f = &s->v[i];
		f->action = CW_KEEP;
		f->reason = NULL;
		if (r->max_age_s && now_s - f->mtime_s > r->max_age_s) {
			f->action = CW_DELETE;
			f->reason = "max_age";
		}
	}
	if (!s->n || !(v = malloc(s->n * sizeof(*v))))
		return;
	for (i = 0; i < s->n; i++)
		v[i] = &s->v[i];
	if (r->keep >= 0) {
		size_t kept = 0, dir = (size_t)-1;
		qsort(v, s->n, sizeof(*v), by_dir_newest);
		for (i = 0; i < s->n; i++) {
			if (v[i]->dir != dir) {
				dir = v[i]->dir;
				kept = 0;
			}
			if (v[i]->action != CW_KEEP)
				continue;
			if (kept < (size_t)r->keep)
				kept++;
			else {
				v[i]->action = CW_DELETE;
				v[i]->reason = "keep";
			}
		}
	}
	qsort(v, s->n, sizeof(*v), by_oldest);
	for (i = 0; i < s->n; i++)
		if (v[i]->action == CW_KEEP)
			total += v[i]->size;
	for (i = 0; r->max_total_bytes >= 0 && total > r->max_total_bytes && i < s->n; i++)
		if (v[i]->action == CW_KEEP) {
			v[i]->action = CW_DELETE;
			v[i]->reason = "max_total_size";
			total -= v[i]->size;
		}
	for (i = 0; r->compress_after_s && i < s->n; i++)
		if (v[i]->action == CW_KEEP && v[i]->size > 0 && !gz_named(v[i]->rel) &&
		    now_s - v[i]->mtime_s > r->compress_after_s) {
			v[i]->action = CW_COMPRESS;
			v[i]->reason = "compress_after";
		}
	free(v);
}

/* ---- Running ---- */

static void file_event(struct cl_run *r, const char *policy, const char *kind, const char *path,
                       int64_t bytes, const char *reason)
{
	if (++r->file_events > CL_EVENTS_MAX)
		return;
	cl_run_event(r, kind, "info",
	             json_pack("{s:s, s:s, s:I, s:s}", "policy", policy, "path", path, "bytes",
	                       (json_int_t)bytes, "reason", reason),
	             "%s %s (%lld bytes, %s)",
	             strcmp(kind, "cleanup.deleted") == 0 ? "deleted" : "compressed", path,
	             (long long)bytes, reason);
}

static int run_rule(struct cl_run *r, const struct cl_policy *p, const struct cl_rule *rule)
{
	struct cw_scan s;
	char msg[512], path[8192];
	int dfd, rc;

	dfd = cw_open_dir(r->rootfd, rule->dir);
	if (dfd < 0) {
		snprintf(msg, sizeof(msg), "%s",
		         errno == ENOENT ? "does not exist: nothing to clean"
		         : errno == ELOOP
		             ? "a component is a symlink: not followed, nothing cleaned"
		         : errno == ENOTDIR ? "is not a directory"
		                            : strerror(errno));
		if (errno != ENOENT)
			cl_run_error(r, p->name, rule->dir, msg);
		return 0;
	}
	rc = cw_scan(dfd, rule->match, rule->recurse, r->stop, r->stop_arg, &s, msg, sizeof(msg));
	r->symlinks += s.symlinks;
	if (rc < 0) {
		cl_run_error(r, p->name, rule->dir, msg);
		goto out;
	}
	if (s.truncated) {
		snprintf(
		    msg, sizeof(msg),
		    "over %d files match: nothing decided; narrow the rule (match, no recurse)",
		    CW_SCAN_MAX);
		cl_run_error(r, p->name, rule->dir, msg);
		goto out;
	}
	cl_rule_decide(&s, rule, r->now_ms / 1000);
	for (size_t i = 0; i < s.n; i++) {
		const struct cw_file *f = &s.v[i];
		int64_t saved = 0;
		if (f->action == CW_KEEP)
			continue;
		if (r->stop && r->stop(r->stop_arg)) {
			rc = OUTPOST_E_TIMEOUT;
			cl_run_error(r, p->name, rule->dir,
			             "passed the deadline: the rest was not done");
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", rule->dir, f->rel);
		clean_text(path); /* for the answer and the events; f->rel is the real name */
		if (r->apply) {
			int frc = f->action == CW_DELETE
			              ? cw_delete(dfd, f, msg, sizeof(msg))
			              : cw_compress(dfd, f, &saved, msg, sizeof(msg));
			if (frc < 0) {
				cl_run_error(r, p->name, path, msg);
				continue;
			}
			file_event(r, p->name,
			           f->action == CW_DELETE ? "cleanup.deleted"
			                                  : "cleanup.compressed",
			           path, f->action == CW_DELETE ? f->size : saved, f->reason);
		}
		if (f->action == CW_DELETE) {
			r->deleted++;
			r->bytes_freed += f->size;
		} else {
			r->compressed++;
			r->bytes_compress += f->size;
			r->bytes_saved += saved;
		}
		cl_run_change(r, p->name, f->action == CW_DELETE ? "delete" : "compress", "path",
		              path, f->size, f->reason);
	}
out:
	cw_scan_free(&s);
	close(dfd);
	return rc;
}

int cl_run_policies(struct cl_run *r, const struct cl_set *s, const char *only)
{
	int found = 0, rc = 0;

	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct cl_policy *p = &s->v[i];
		if (only && strcmp(only, p->name) != 0)
			continue;
		found = 1;
		for (size_t j = 0; j < p->nrules && rc == 0; j++)
			rc = run_rule(r, p, &p->rules[j]);
		for (size_t j = 0; j < p->nsysctls && rc == 0; j++)
			cl_drift_sysctl(r, p, &p->sysctls[j]);
		for (size_t j = 0; j < p->nrequired && rc == 0; j++)
			cl_drift_required(r, p, &p->required[j]);
		if (p->npackages && rc == 0)
			cl_drift_packages(r, p);
	}
	if (only && !found)
		return OUTPOST_E_NOT_FOUND;
	if (r->apply)
		cl_run_event(r, "cleanup.applied", "info",
		             json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "files_deleted",
		                       (json_int_t)r->deleted, "bytes_freed",
		                       (json_int_t)r->bytes_freed, "files_compressed",
		                       (json_int_t)r->compressed, "bytes_saved",
		                       (json_int_t)r->bytes_saved, "fixed", (json_int_t)r->fixed,
		                       "errors", (json_int_t)json_array_size(r->errors)),
		             "cleanup applied: %zu files deleted (%lld bytes), %zu compressed, %zu "
		             "fixed, %zu errors",
		             r->deleted, (long long)r->bytes_freed, r->compressed, r->fixed,
		             json_array_size(r->errors));
	return rc;
}

json_t *cl_run_result(const struct cl_run *r)
{
	json_t *o = json_pack(
	    "{s:b, s:I, s:I, s:I, s:I, s:I, s:O, s:b, s:O, s:O, s:O}", "dry_run", !r->apply,
	    "files_deleted", (json_int_t)r->deleted, "bytes_freed", (json_int_t)r->bytes_freed,
	    "files_compressed", (json_int_t)r->compressed, "bytes_to_compress",
	    (json_int_t)r->bytes_compress, "symlinks_skipped", (json_int_t)r->symlinks, "changes",
	    r->changes, "changes_truncated", r->nchanges > json_array_size(r->changes), "drift",
	    r->drift, "missing_packages", r->packages, "errors", r->errors);

	if (o && r->apply) {
		json_object_set_new(o, "bytes_saved_by_compression", json_integer(r->bytes_saved));
		json_object_set_new(o, "fixed", json_integer((json_int_t)r->fixed));
	}
	return o;
}
