/* Cleanup policies: the JSON an operator writes (plugins.cleanup in the agent config, or the
 * `policies` argument of cleanup.plan / cleanup.apply) checked into structs, every error
 * located by its key path ("policies[0].paths[1].max_age: ..."). docs/plugins/cleanup.md is
 * the operator's side. */
#ifndef OUTPOST_CLEANUP_POLICY_H
#define OUTPOST_CLEANUP_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CL_POLICIES_MAX 64
#define CL_ITEMS_MAX 256 /* entries of one section of one policy */

/* One entry of a policy's "paths": files beneath dir that match, and what to do with them. */
struct cl_rule {
	char *dir;   /* absolute, canonical; beneath the plugin's root prefix */
	char *match; /* fnmatch(3) pattern on a file's name; "*" when not given */
	int recurse;
	int64_t max_age_s;        /* 0: no age rule; delete files older than this */
	int64_t keep;             /* -1: none; keep the newest N matches of each directory */
	int64_t max_total_bytes;  /* -1: none; delete the oldest until the rest fits */
	int64_t compress_after_s; /* 0: none; gzip files older than this (not *.gz) */
};

struct cl_sysctl {
	char *key;   /* dotted, as sysctl(8) names it: "vm.swappiness" */
	char *value; /* as written to /proc/sys; compared with runs of blanks as one space */
	int enforce;
};

struct cl_required {
	char *path; /* absolute, canonical */
	int dir;    /* 1: a directory, 0: a regular file */
	int has_mode, has_owner, has_group;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int enforce; /* apply creates it and sets mode and owner; else only reported */
};

struct cl_policy {
	char *name;
	struct cl_rule *rules;
	size_t nrules;
	struct cl_sysctl *sysctls;
	size_t nsysctls;
	struct cl_required *required;
	size_t nrequired;
	char **packages;
	size_t npackages;
};

struct cl_set {
	struct cl_policy *v;
	size_t n;
};

/* Checks policies (an array of policy objects) into *out (cl_set_free frees it, also after a
 * failure). where names the array in messages ("policies", "plugins.cleanup.policies").
 * Returns 0, or OUTPOST_E_BAD_ARGS with msg "<where>[i].<key>...: what is wrong". */
int cl_policy_parse(const json_t *policies, const char *where, struct cl_set *out, char *msg,
                    size_t msglen);
void cl_set_free(struct cl_set *s);

/* "90", "90s", "15m", "12h", "14d" (or the integer 90) in seconds; -1 when not a duration. */
int64_t cl_duration(const json_t *v);
/* 1048576, "1048576", "512K", "100M", "2G", "1T" (powers of 1024) in bytes; -1 when not. */
int64_t cl_bytes(const json_t *v);
/* 1 when s is an absolute path without empty, '.' or '..' components nor a trailing '/'. */
int cl_path_ok(const char *s);

#endif
