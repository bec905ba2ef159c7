/* cgroup v2 helpers shared by the plugins that set limits (guard: the agent's own cgroup;
 * supervise: the cgroups of the agents it runs): the limits' syntax, small control files, and
 * setting one limit with the reason when it cannot be set. */
#include "plugins/cgroup.h"
#include "core/wire.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* memory.max: bytes, K/M/G/T (powers of 1024), or "max". */
int cg_parse_memory(const json_t *v, char *out, size_t len)
{
	int64_t n;

	if (json_is_string(v) && strcmp(json_string_value(v), "max") == 0) {
		snprintf(out, len, "max");
		return 0;
	}
	if ((n = wire_scaled(v, wire_units_bytes, INT64_MAX)) <= 0)
		return -1;
	snprintf(out, len, "%lld", (long long)n);
	return 0;
}

/* cpu.max: "50%" (of one CPU; 200% is two), "QUOTA PERIOD" in microseconds, or "max". */
int cg_parse_cpu(const json_t *v, char *out, size_t len)
{
	const char *s = json_string_value(v);
	unsigned long q, p;
	char *end;

	if (!s)
		return -1;
	if (strcmp(s, "max") == 0) {
		snprintf(out, len, "max 100000");
		return 0;
	}
	q = strtoul(s, &end, 10);
	if (isdigit((unsigned char)s[0]) && strcmp(end, "%") == 0 && q >= 1 && q <= 100000) {
		snprintf(out, len, "%lu 100000", q * 1000);
		return 0;
	}
	if (isdigit((unsigned char)s[0]) && *end == ' ' && isdigit((unsigned char)end[1])) {
		p = strtoul(end + 1, &end, 10);
		if (!*end && q >= 1000 && p >= 1000 && p <= 1000000) {
			snprintf(out, len, "%lu %lu", q, p);
			return 0;
		}
	}
	return -1;
}

/* Reads at most len-1 bytes of dir/name (no symlink at the last step), trailing blanks cut. */
int cg_read_small(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 64];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	got = read(fd, buf, len - 1);
	close(fd);
	if (got < 0)
		return -1;
	while (got > 0 && isspace((unsigned char)buf[got - 1]))
		got--;
	buf[got] = '\0';
	return 0;
}

int cg_write_small(const char *dir, const char *name, const char *value)
{
	char path[PATH_MAX + 64];
	ssize_t n;
	int fd, saved;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, value, strlen(value));
	saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

const char *cg_v2_missing(const char *root)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	if (stat(path, &st) == 0)
		return NULL;
	return "no cgroup v2 hierarchy at the cgroup root (a cgroup v1 or hybrid host)";
}

int cg_set(const char *dir, const char *file, const char *want, char *was, size_t waslen, char *msg,
           size_t msglen)
{
	char ctls[512], padded[520], ctl[40];

	if (cg_read_small(dir, "cgroup.controllers", ctls, sizeof(ctls)) < 0)
		ctls[0] = '\0';
	snprintf(padded, sizeof(padded), " %s ", ctls);
	snprintf(ctl, sizeof(ctl), " %.*s ", (int)strcspn(file, "."), file);
	if (!strstr(padded, ctl)) {
		snprintf(msg, msglen,
		         "skipped: the %.*s controller is not enabled for this cgroup (the "
		         "parent's cgroup.subtree_control lacks it)",
		         (int)strcspn(file, "."), file);
		return -1;
	}
	if (cg_read_small(dir, file, was, waslen) == 0 && strcmp(was, want) == 0)
		return 0;
	if (cg_write_small(dir, file, want) < 0) {
		snprintf(msg, msglen, "skipped: cannot write %s: %s", file, strerror(errno));
		return -1;
	}
	return 1;
}
