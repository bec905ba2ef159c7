/* What the supervise plugin reads of its agents' processes: RSS and CPU from /proc/<pid>/stat
 * (the pids of its cgroup, or of its process group), and the new lines of its log. */
#include "supervise.h"
#include "plugins/cgroup.h"
#include "core/clk.h"
#include "core/wire.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SV_LOG_READ_MAX 65536 /* bytes of a log read per tick: a flood is skipped over */
#define SV_LOG_EVENTS_MAX 5   /* events per agent per tick; the rest counted in the last */

void sv_event(struct sv *sv, const struct sv_agent *a, const char *kind, const char *severity,
              json_t *data, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	if (!wire_utf8_ok(msg, strlen(msg)))
		snprintf(msg, sizeof(msg), "%s: %s", a->name, kind);
	if (!data)
		data = json_object();
	json_object_set_new(data, "agent", json_string(a->name));
	json_array_append_new(
	    sv->events, json_pack("{s:s, s:s, s:I, s:s, s:o}", "kind", kind, "severity", severity,
	                          "ts", (json_int_t)clk_real_ms(), "message", msg, "data", data));
}

/* pgrp, utime + stime (ticks) and RSS (pages) of pid. 0 or -1 (gone). */
static int stat_of(long pid, long *pgrp, uint64_t *ticks, uint64_t *rss)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	long rs = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After the command's ")" (which may hold spaces and parentheses): state, ppid, pgrp,
	 * session, tty, tpgid, flags, 4 fault counts, utime, stime, 4 more, threads, itrealvalue,
	 * starttime, vsize, rss. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2,
	           "%*c %*d %ld %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
	           "%*d %*d %*u %*u %ld",
	           pgrp, &ut, &st, &rs) != 4)
		return -1;
	*ticks = ut + st;
	*rss = rs > 0 ? (uint64_t)rs : 0;
	return 0;
}

static void add_pid(struct sv_agent *a, long pid, uint64_t *ticks, uint64_t *pages)
{
	long pgrp;
	uint64_t t, r;

	if (stat_of(pid, &pgrp, &t, &r) == 0) {
		*ticks += t;
		*pages += r;
		a->nprocs++;
	}
}

void sv_proc_sample(struct sv *sv, int64_t now)
{
	long page = sysconf(_SC_PAGESIZE), tck = sysconf(_SC_CLK_TCK);
	uint64_t ticks[2 * SV_AGENTS_MAX] = {0}, pages[2 * SV_AGENTS_MAX] = {0};
	int scan = 0;
	DIR *d;
	struct dirent *de;

	for (size_t i = 0; i < sv->n; i++) {
		struct sv_agent *a = sv->ag[i];
		a->nprocs = 0;
		if (a->pid <= 0)
			continue;
		if (a->cg_dir[0]) {
			char buf[16384], *line, *save = NULL;
			if (cg_read_small(a->cg_dir, "cgroup.procs", buf, sizeof(buf)) == 0)
				for (line = strtok_r(buf, "\n", &save); line;
				     line = strtok_r(NULL, "\n", &save))
					add_pid(a, atol(line), &ticks[i], &pages[i]);
		} else {
			scan = 1;
		}
	}
	if (scan && (d = opendir("/proc"))) {
		while ((de = readdir(d))) {
			long pid = atol(de->d_name), pgrp;
			uint64_t t, r;
			if (pid <= 0 || stat_of(pid, &pgrp, &t, &r) < 0)
				continue;
			for (size_t i = 0; i < sv->n; i++) {
				struct sv_agent *a = sv->ag[i];
				if (a->pid > 0 && !a->cg_dir[0] && pgrp == a->pid) {
					ticks[i] += t;
					pages[i] += r;
					a->nprocs++;
				}
			}
		}
		closedir(d);
	}
	for (size_t i = 0; i < sv->n; i++) {
		struct sv_agent *a = sv->ag[i];
		if (a->pid <= 0) {
			a->rss = 0;
			a->cpu_pct = 0;
			a->cpu_at = 0;
			continue;
		}
		a->rss = pages[i] * (uint64_t)page;
		/* CPU of processes that ended since is gone from the sum: no share below 0. */
		if (a->cpu_at && now > a->cpu_at && ticks[i] >= a->cpu_ticks)
			a->cpu_pct = (double)(ticks[i] - a->cpu_ticks) * 1000.0 / (double)tck *
			             100.0 / (double)(now - a->cpu_at);
		a->cpu_ticks = ticks[i];
		a->cpu_at = now;
	}
}

static int line_matches(const struct sv_agent_conf *c, const char *line)
{
	for (size_t i = 0; i < c->log_match.n; i++)
		if (strcasestr(line, c->log_match.v[i]))
			return 1;
	return 0;
}

void sv_proc_tail(struct sv *sv, struct sv_agent *a)
{
	char *buf = NULL;
	struct stat st;
	ssize_t n;
	size_t used = 0, matched = 0, shown = 0;
	char first[300] = "";
	int fd;

	if (!a->c || !a->c->log || !a->c->log_match.n)
		return;
	if ((fd = open(a->c->log, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	if (!a->log_ino) /* the first look: what was there before is not news */
		a->log_off = st.st_size;
	else if (st.st_ino != a->log_ino || st.st_size < a->log_off)
		a->log_off = 0; /* rotated or truncated: the new file from its start */
	a->log_ino = st.st_ino;
	if (st.st_size - a->log_off > SV_LOG_READ_MAX)
		a->log_off = st.st_size - SV_LOG_READ_MAX;
	if (st.st_size <= a->log_off || !(buf = malloc(SV_LOG_READ_MAX + 1)))
		goto out;
	n = pread(fd, buf, SV_LOG_READ_MAX, a->log_off);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	for (char *line = buf, *nl; (nl = memchr(line, '\n', (size_t)(buf + n - line)));
	     line = nl + 1) {
		*nl = '\0';
		used = (size_t)(nl + 1 - buf);
		if (!line_matches(a->c, line))
			continue;
		matched++;
		a->log_lines_matched++;
		if (shown < SV_LOG_EVENTS_MAX - 1 || !first[0]) {
			snprintf(first, sizeof(first), "%s", line);
			for (char *p = first; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = ' ';
			if (shown < SV_LOG_EVENTS_MAX - 1) {
				sv_event(sv, a, "supervise.log_error", "warning",
				         json_pack("{s:s}", "log", a->c->log), "%s: %s", a->name,
				         first);
				shown++;
			}
		}
	}
	if (matched > shown)
		sv_event(sv, a, "supervise.log_error", "warning",
		         json_pack("{s:s, s:I}", "log", a->c->log, "lines",
		                   (json_int_t)(matched - shown)),
		         "%s: %zu more log lines like: %s", a->name, matched - shown, first);
	/* A line without its newline yet is read again whole next time, unless it alone fills
	 * a read. */
	if (!used && n == SV_LOG_READ_MAX)
		used = (size_t)n;
	a->log_off += (int64_t)used;
out:
	free(buf);
	close(fd);
}
