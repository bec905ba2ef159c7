/* What a cleanup policy says the host should be and how it drifted: sysctl values (read and,
 * when enforced, written under <root>/proc/sys), required files and directories with their
 * modes and owners, and required packages (<root>/var/lib/dpkg/status). Every file is reached
 * beneath the root prefix through walk.h, never through a symlink. See run.h. */
#include "run.h"

#include <outpost/plugin.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CL_SYSCTL_MAX 4096
#define CL_DPKG_STATUS "var/lib/dpkg/status"

/* Runs of blanks as one space, none at the ends: how sysctl(8) compares "4096 16384 4194304". */
static void squeeze(char *s)
{
	char *w = s;
	int blank = 0;

	for (char *p = s; *p; p++) {
		if (isspace((unsigned char)*p)) {
			blank = w != s;
			continue;
		}
		if (blank)
			*w++ = ' ';
		blank = 0;
		*w++ = *p;
	}
	*w = '\0';
}

static void drift_add(struct cl_run *r, json_t *d, int fixed)
{
	if (r->apply)
		json_object_set_new(d, "fixed", json_boolean(fixed));
	json_array_append_new(r->drift, d);
}

static int sysctl_read(int pfd, const char *name, char *buf, size_t len)
{
	int fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -1;
	got = read(fd, buf, len - 1);
	close(fd);
	if (got < 0)
		return -1;
	buf[got] = '\0';
	squeeze(buf);
	return 0;
}

void cl_drift_sysctl(struct cl_run *r, const struct cl_policy *p, const struct cl_sysctl *s)
{
	char rel[512], have[CL_SYSCTL_MAX], want[1100], msg[512];
	const char *name;
	int pfd, fd, fixed = 0;

	snprintf(rel, sizeof(rel), "proc/sys/%s", s->key);
	for (char *c = rel + strlen("proc/sys/"); *c; c++)
		if (*c == '.')
			*c = '/';
	snprintf(want, sizeof(want), "%s", s->value);
	squeeze(want);
	pfd = cw_open_parent(r->rootfd, rel, &name);
	if (pfd < 0 || sysctl_read(pfd, name, have, sizeof(have)) < 0) {
		snprintf(msg, sizeof(msg), "sysctl %s cannot be read: %s", s->key,
		         errno == ENOENT ? "no such parameter on this kernel" : strerror(errno));
		cl_run_error(r, p->name, s->key, msg);
		goto out;
	}
	if (strcmp(have, want) == 0)
		goto out;
	if (r->apply && s->enforce) {
		fd = openat(pfd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || write(fd, want, strlen(want)) != (ssize_t)strlen(want)) {
			snprintf(msg, sizeof(msg), "cannot set sysctl %s to '%.200s': %s", s->key,
			         want, strerror(errno));
			cl_run_error(r, p->name, s->key, msg);
		} else {
			char now[CL_SYSCTL_MAX];
			fixed =
			    sysctl_read(pfd, name, now, sizeof(now)) == 0 && strcmp(now, want) == 0;
			if (!fixed) {
				snprintf(msg, sizeof(msg),
				         "sysctl %s: the kernel kept '%.100s' after '%.100s'",
				         s->key, now, want);
				cl_run_error(r, p->name, s->key, msg);
			}
		}
		if (fd >= 0)
			close(fd);
	}
	if (s->enforce)
		cl_run_change(r, p->name, "sysctl", "key", s->key, -1, NULL);
	if (fixed) {
		r->fixed++;
		cl_run_event(r, "cleanup.sysctl_set", "notice",
		             json_pack("{s:s, s:s, s:s, s:s}", "policy", p->name, "key", s->key,
		                       "before", have, "after", want),
		             "sysctl %s set to '%s' (was '%.200s')", s->key, want, have);
	} else if (r->apply && !s->enforce) {
		cl_run_event(r, "cleanup.drift", "warning",
		             json_pack("{s:s, s:s, s:s, s:s}", "policy", p->name, "key", s->key,
		                       "want", want, "have", have),
		             "sysctl %s is '%.200s', policy %s wants '%s'", s->key, have, p->name,
		             want);
	}
	drift_add(r,
	          json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "policy", p->name, "kind", "sysctl",
	                    "key", s->key, "want", want, "have", have, "enforce", s->enforce),
	          fixed);
out:
	if (pfd >= 0)
		close(pfd);
}

/* What is wrong with the object at (pfd, name), or "" when nothing; *missing when absent. */
static void required_problem(const struct cl_required *q, const struct stat *st, int found,
                             char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	if (!found) {
		snprintf(out, len, "missing");
		return;
	}
	if (S_ISLNK(st->st_mode)) {
		snprintf(out, len, "is a symlink (never followed nor replaced)");
		return;
	}
	if (q->dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
		snprintf(out, len, "is not a %s", q->dir ? "directory" : "regular file");
		return;
	}
	if (q->has_mode && (st->st_mode & 07777) != q->mode)
		n += (size_t)snprintf(out + n, len - n, "mode %04o, want %04o; ",
		                      (unsigned)(st->st_mode & 07777), (unsigned)q->mode);
	if (n < len && q->has_owner && st->st_uid != q->uid)
		n += (size_t)snprintf(out + n, len - n, "owner %u, want %u; ", (unsigned)st->st_uid,
		                      (unsigned)q->uid);
	if (n < len && q->has_group && st->st_gid != q->gid)
		n += (size_t)snprintf(out + n, len - n, "group %u, want %u; ", (unsigned)st->st_gid,
		                      (unsigned)q->gid);
	if (n >= 2 && n < len)
		out[n - 2] = '\0';
}

/* Creates what is missing and sets mode and owner, all through fds beneath pfd. */
static int required_fix(int pfd, const char *name, const struct cl_required *q, int found,
                        char *msg, size_t msglen)
{
	mode_t mode = q->has_mode ? q->mode : (q->dir ? 0755 : 0644);
	struct stat st;
	int fd;

	/* Made private (0700, 0600) and opened to set the mode asked: never briefly open to
	 * all. */
	if (!found) {
		int made;
		if (q->dir)
			made = mkdirat(pfd, name, 0700);
		else {
			fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			            0600);
			made = fd < 0 ? -1 : close(fd);
		}
		if (made < 0) {
			snprintf(msg, msglen, "cannot create it: %s", strerror(errno));
			return -1;
		}
	}
	fd = openat(pfd, name,
	            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (q->dir ? O_DIRECTORY : 0));
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    (q->dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		snprintf(msg, msglen, "cannot open it: %s",
		         fd < 0 ? strerror(errno) : "wrong type");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((q->has_owner || q->has_group) &&
	    fchown(fd, q->has_owner ? q->uid : (uid_t)-1, q->has_group ? q->gid : (gid_t)-1) < 0) {
		snprintf(msg, msglen, "cannot chown: %s", strerror(errno));
		close(fd);
		return -1;
	}
	/* After chown, which clears set-id bits. */
	if ((q->has_mode || !found) && fchmod(fd, mode) < 0) {
		snprintf(msg, msglen, "cannot chmod: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void cl_drift_required(struct cl_run *r, const struct cl_policy *p, const struct cl_required *q)
{
	char problem[256], msg[512];
	const char *name;
	struct stat st;
	int pfd, found, fixed = 0;

	pfd = cw_open_parent(r->rootfd, q->path, &name);
	if (pfd < 0) {
		snprintf(msg, sizeof(msg), "its directory %s",
		         errno == ENOENT  ? "does not exist (only the last component is created)"
		         : errno == ELOOP ? "is reached through a symlink: not followed"
		                          : strerror(errno));
		drift_add(r,
		          json_pack("{s:s, s:s, s:s, s:s, s:b}", "policy", p->name, "kind", "path",
		                    "path", q->path, "problem", msg, "enforce", q->enforce),
		          0);
		if (r->apply)
			cl_run_error(r, p->name, q->path, msg);
		return;
	}
	found = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	required_problem(q, &st, found, problem, sizeof(problem));
	if (!problem[0])
		goto out;
	/* A symlink or an object of the wrong type is reported, never replaced: deleting what
	 * someone put there is not a fix a policy should make silently. */
	int fixable = !found || (!S_ISLNK(st.st_mode) &&
	                         (q->dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)));
	if (q->enforce && fixable)
		cl_run_change(r, p->name, found ? "fix" : "create", "path", q->path, -1, problem);
	if (r->apply && q->enforce && fixable) {
		if (required_fix(pfd, name, q, found, msg, sizeof(msg)) < 0)
			cl_run_error(r, p->name, q->path, msg);
		else {
			fixed = 1;
			r->fixed++;
			cl_run_event(r, "cleanup.path_fixed", "notice",
			             json_pack("{s:s, s:s, s:s}", "policy", p->name, "path",
			                       q->path, "was", problem),
			             "%s %s (was: %s)", found ? "fixed" : "created", q->path,
			             problem);
		}
	} else if (r->apply) {
		cl_run_event(r, "cleanup.drift", "warning",
		             json_pack("{s:s, s:s, s:s}", "policy", p->name, "path", q->path,
		                       "problem", problem),
		             "%s: %s (policy %s)", q->path, problem, p->name);
	}
	drift_add(r,
	          json_pack("{s:s, s:s, s:s, s:s, s:b}", "policy", p->name, "kind", "path", "path",
	                    q->path, "problem", problem, "enforce", q->enforce),
	          fixed);
out:
	close(pfd);
}

/* Marks in found[] the packages of p dpkg's status lists as installed. */
static void dpkg_scan(FILE *f, const struct cl_policy *p, int *found)
{
	char line[1024], pkg[256] = "";
	int installed = 0;

	for (;;) {
		char *got = fgets(line, sizeof(line), f);
		if (!got || line[0] == '\n') {
			for (size_t i = 0; installed && pkg[0] && i < p->npackages; i++)
				if (strcmp(p->packages[i], pkg) == 0)
					found[i] = 1;
			pkg[0] = '\0';
			installed = 0;
			if (!got)
				return;
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "Package: ", 9) == 0)
			snprintf(pkg, sizeof(pkg), "%.255s", line + 9);
		else if (strncmp(line, "Status: ", 8) == 0) {
			size_t n = strlen(line);
			installed = n > 10 && strcmp(line + n - 10, " installed") == 0;
		}
	}
}

void cl_drift_packages(struct cl_run *r, const struct cl_policy *p)
{
	const char *name;
	int pfd = cw_open_parent(r->rootfd, CL_DPKG_STATUS, &name), fd = -1;
	int *found = calloc(p->npackages, sizeof(*found));
	FILE *f = NULL;

	if (pfd >= 0)
		fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || !found || !(f = fdopen(fd, "r"))) {
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot read /%s: %s (not a Debian host?)",
		         CL_DPKG_STATUS, found ? strerror(errno) : "out of memory");
		cl_run_error(r, p->name, "/" CL_DPKG_STATUS, msg);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	dpkg_scan(f, p, found);
	fclose(f);
	for (size_t i = 0; i < p->npackages; i++) {
		if (found[i])
			continue;
		json_array_append_new(r->packages, json_pack("{s:s, s:s}", "policy", p->name,
		                                             "package", p->packages[i]));
		if (r->apply)
			cl_run_event(
			    r, "cleanup.drift", "warning",
			    json_pack("{s:s, s:s}", "policy", p->name, "package", p->packages[i]),
			    "package %s is not installed (policy %s)", p->packages[i], p->name);
	}
out:
	free(found);
	if (pfd >= 0)
		close(pfd);
}
