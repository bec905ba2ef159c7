/* The host-wide sources: CPU time, boot time, forks and task states from /proc/stat, load
 * from /proc/loadavg, memory from /proc/meminfo, and the count of processes in /proc. */
#include "collect_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COLLECT_CPU_MAX 65536 /* CONFIG_NR_CPUS tops out at 8192 */

static const char *const collect_cpu_mode[COLLECT_CPU_MODES] = {
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
};

/* Parses "12.34" (what /proc/loadavg prints) without strtod, which follows the locale. */
static int collect_decimal(const char **pp, double *out)
{
	const char *p = *pp;
	uint64_t ip, fp = 0;
	double scale = 1;

	if (collect_num(&p, &ip) < 0)
		return -1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (scale < 1e15) {
				fp = fp * 10 + (uint64_t)(*p - '0');
				scale *= 10;
			}
		}
	}
	if (*p && !collect_is_blank(*p))
		return -1;
	*pp = p;
	*out = (double)ip + (double)fp / scale;
	return 0;
}

/* ---- /proc/stat: CPU, boot time, forks, context switches, runnable and blocked tasks ---- */

struct collect_statfile {
	unsigned ncpus; /* cpuN lines */
	uint64_t btime, ctxt, forks, running, blocked;
	int btime_ok, ctxt_ok, forks_ok, running_ok, blocked_ok;
};

static struct collect_cpu *collect_cpu_slot(struct collect *c, uint64_t n)
{
	struct collect_cpu *p;
	size_t want;

	if (n >= COLLECT_CPU_MAX)
		return NULL;
	if (n >= c->ncpus) {
		want = (size_t)n + 1 > c->ncpus * 2 ? (size_t)n + 1 : c->ncpus * 2;
		p = realloc(c->cpus, want * sizeof(*p));
		if (!p) {
			c->nomem = 1;
			return NULL;
		}
		memset(p + c->ncpus, 0, (want - c->ncpus) * sizeof(*p));
		c->cpus = p;
		c->ncpus = want;
	}
	return &c->cpus[n];
}

static int collect_stat_cpu(struct collect *c, const char *p, struct collect_statfile *st)
{
	uint64_t v[COLLECT_CPU_MODES], n;
	struct collect_cpu *cpu = &c->total;
	int i;

	if (!collect_is_blank(*p)) { /* "cpuN" */
		if (collect_num(&p, &n) < 0 || !collect_is_blank(*p))
			return -1;
		st->ncpus++;
		if (!c->per_cpu)
			return 0;
		cpu = collect_cpu_slot(c, n);
		if (!cpu)
			return c->nomem ? 0 : -1;
	}
	for (i = 0; i < COLLECT_CPU_MODES; i++)
		if (collect_u64(&p, &v[i]) < 0)
			return -1;
	memcpy(cpu->cur, v, sizeof(v));
	cpu->cur_ok = 1;
	return 0;
}

static int collect_stat_value(const char *p, uint64_t *v, int *ok)
{
	if (collect_u64(&p, v) < 0)
		return -1;
	*ok = 1;
	return 0;
}

static void collect_stat_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	struct collect_statfile *st = arg;
	int rc = 0;

	if (strncmp(line, "cpu", 3) == 0)
		rc = collect_stat_cpu(c, line + 3, st);
	else if (strncmp(line, "btime ", 6) == 0)
		rc = collect_stat_value(line + 6, &st->btime, &st->btime_ok);
	else if (strncmp(line, "ctxt ", 5) == 0)
		rc = collect_stat_value(line + 5, &st->ctxt, &st->ctxt_ok);
	else if (strncmp(line, "processes ", 10) == 0)
		rc = collect_stat_value(line + 10, &st->forks, &st->forks_ok);
	else if (strncmp(line, "procs_running ", 14) == 0)
		rc = collect_stat_value(line + 14, &st->running, &st->running_ok);
	else if (strncmp(line, "procs_blocked ", 14) == 0)
		rc = collect_stat_value(line + 14, &st->blocked, &st->blocked_ok);
	if (rc < 0)
		collect_parse_error(c);
}

/* Percent of the interval's jiffies spent in each mode. A mode that went down (iowait and idle
 * can, on tickless kernels) counts as 0, so the modes still sum to 100. */
static void collect_cpu_emit(struct collect *c, struct collect_cpu *cpu, const char *name,
                             const char *cpuname)
{
	double d[COLLECT_CPU_MODES], total = 0;
	int i;

	if (cpu->prev_ok && cpu->cur_ok) {
		for (i = 0; i < COLLECT_CPU_MODES; i++) {
			d[i] =
			    cpu->cur[i] > cpu->prev[i] ? (double)(cpu->cur[i] - cpu->prev[i]) : 0;
			total += d[i];
		}
		for (i = 0; total > 0 && i < COLLECT_CPU_MODES; i++) {
			const char *l1[] = {"mode", collect_cpu_mode[i], NULL};
			const char *l2[] = {"cpu", cpuname, "mode", collect_cpu_mode[i], NULL};

			collect_emit(c, name, cpuname ? l2 : l1, 100 * d[i] / total);
		}
	}
	memcpy(cpu->prev, cpu->cur, sizeof(cpu->prev));
	cpu->prev_ok = cpu->cur_ok;
	cpu->cur_ok = 0;
}

void collect_stat(struct collect *c)
{
	struct collect_statfile st = {0};
	char cpuname[24];
	size_t i;

	if (collect_read_lines(c, c->dirfd, "stat", collect_stat_line, &st) < 0) {
		c->failed = 1;
		return;
	}
	/* btime moves by a second now and then as the clock is disciplined; a reboot (or a step
	 * of the clock, which costs one sample of rates) moves it further. */
	if (st.btime_ok && c->have_btime && (st.btime > c->btime + 1 || st.btime + 1 < c->btime))
		collect_forget(c);
	if (st.btime_ok) {
		c->btime = st.btime;
		c->have_btime = 1;
	}

	collect_cpu_emit(c, &c->total, "host_cpu_percent", NULL);
	for (i = 0; c->per_cpu && i < c->ncpus; i++) {
		snprintf(cpuname, sizeof(cpuname), "%zu", i);
		collect_cpu_emit(c, &c->cpus[i], "host_cpu_core_percent", cpuname);
	}
	if (st.ncpus)
		collect_emit(c, "host_cpu_count", NULL, st.ncpus);
	if (st.running_ok) {
		const char *l[] = {"state", "running", NULL};

		collect_emit(c, "host_processes", l, (double)st.running);
	}
	if (st.blocked_ok) {
		const char *l[] = {"state", "blocked", NULL};

		collect_emit(c, "host_processes", l, (double)st.blocked);
	}
	if (st.forks_ok && c->forks_ok)
		collect_emit_rate(c, "host_forks_per_second", NULL, c->forks, st.forks, 1);
	if (st.ctxt_ok && c->ctxt_ok)
		collect_emit_rate(c, "host_context_switches_per_second", NULL, c->ctxt, st.ctxt, 1);
	c->forks = st.forks;
	c->forks_ok = st.forks_ok;
	c->ctxt = st.ctxt;
	c->ctxt_ok = st.ctxt_ok;
}

/* ---- /proc/loadavg: "0.05 0.08 0.05 1/86 4079" ---- */

static void collect_loadavg_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	static const char *const names[] = {"host_load1", "host_load5", "host_load15"};
	const char *p = line;
	double load[3];
	uint64_t running, threads;
	int i;

	if (lineno > 0)
		return;
	for (i = 0; i < 3; i++)
		if (collect_decimal(&p, &load[i]) < 0)
			goto bad;
	if (collect_num(&p, &running) < 0 || *p++ != '/' || collect_u64(&p, &threads) < 0)
		goto bad;
	for (i = 0; i < 3; i++)
		collect_emit(c, names[i], NULL, load[i]);
	collect_emit(c, "host_thread_count", NULL, (double)threads);
	return;
bad:
	collect_parse_error(c);
}

void collect_loadavg(struct collect *c)
{
	if (collect_read_lines(c, c->dirfd, "loadavg", collect_loadavg_line, NULL) < 0)
		c->failed = 1;
}

/* ---- /proc/meminfo ---- */

enum {
	MEM_TOTAL,
	MEM_FREE,
	MEM_AVAILABLE,
	MEM_BUFFERS,
	MEM_CACHED,
	MEM_SWAP_TOTAL,
	MEM_SWAP_FREE,
	MEM_N
};

static const char *const collect_mem_key[MEM_N] = {
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree",
};

struct collect_mem {
	uint64_t v[MEM_N];
	unsigned ok; /* bit per key */
};

static void collect_meminfo_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	struct collect_mem *m = arg;
	const char *p;
	char *colon = strchr(line, ':');
	uint64_t v;
	int i;

	if (!colon) {
		collect_parse_error(c);
		return;
	}
	*colon = '\0';
	for (i = 0; i < MEM_N; i++)
		if (strcmp(line, collect_mem_key[i]) == 0)
			break;
	if (i == MEM_N)
		return;
	p = colon + 1;
	if (collect_u64(&p, &v) < 0) {
		collect_parse_error(c);
		return;
	}
	while (collect_is_blank(*p))
		p++;
	if (strcmp(p, "kB") == 0) {
		if (v > UINT64_MAX / 1024) {
			collect_parse_error(c);
			return;
		}
		v *= 1024;
	} else if (*p) {
		collect_parse_error(c);
		return;
	}
	m->v[i] = v;
	m->ok |= 1u << i;
}

void collect_meminfo(struct collect *c)
{
	static const char *const kinds[] = {"total", "free",    "available",
	                                    "used",  "buffers", "cached"};
	struct collect_mem m = {0};
	uint64_t *v = m.v;
	double val[6];
	unsigned need = 1u << MEM_TOTAL | 1u << MEM_FREE | 1u << MEM_BUFFERS | 1u << MEM_CACHED;
	int i;

	if (collect_read_lines(c, c->dirfd, "meminfo", collect_meminfo_line, &m) < 0) {
		c->failed = 1;
		return;
	}
	if ((m.ok & need) != need) {
		collect_parse_error(c);
		return;
	}
	/* Kernels before 3.14 have no MemAvailable: free plus what can be dropped is close. */
	if (!(m.ok & 1u << MEM_AVAILABLE))
		v[MEM_AVAILABLE] = v[MEM_FREE] + v[MEM_BUFFERS] + v[MEM_CACHED];
	val[0] = (double)v[MEM_TOTAL];
	val[1] = (double)v[MEM_FREE];
	val[2] = (double)v[MEM_AVAILABLE];
	val[3] = v[MEM_TOTAL] > v[MEM_AVAILABLE] ? (double)(v[MEM_TOTAL] - v[MEM_AVAILABLE]) : 0;
	val[4] = (double)v[MEM_BUFFERS];
	val[5] = (double)v[MEM_CACHED];
	for (i = 0; i < 6; i++) {
		const char *l[] = {"kind", kinds[i], NULL};

		collect_emit(c, "host_memory_bytes", l, val[i]);
	}
	if ((m.ok & (1u << MEM_SWAP_TOTAL | 1u << MEM_SWAP_FREE)) ==
	    (1u << MEM_SWAP_TOTAL | 1u << MEM_SWAP_FREE)) {
		const char *lt[] = {"kind", "total", NULL};
		const char *lf[] = {"kind", "free", NULL};
		const char *lu[] = {"kind", "used", NULL};
		uint64_t t = v[MEM_SWAP_TOTAL], f = v[MEM_SWAP_FREE];

		collect_emit(c, "host_swap_bytes", lt, (double)t);
		collect_emit(c, "host_swap_bytes", lf, (double)f);
		collect_emit(c, "host_swap_bytes", lu, t > f ? (double)(t - f) : 0);
	}
}

/* ---- Processes: the numeric entries of /proc (one per thread group) ---- */

void collect_pids(struct collect *c)
{
	uint64_t count = 0;
	ssize_t n;
	int fd;

	fd = openat(c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		c->failed = 1;
		return;
	}
	while ((n = getdents64(fd, c->rbuf, c->rcap)) > 0) {
		size_t off = 0;

		while (off + offsetof(struct dirent64, d_name) < (size_t)n) {
			struct dirent64 *de = (struct dirent64 *)(void *)(c->rbuf + off);
			const char *s = de->d_name;

			if (de->d_reclen == 0 || de->d_reclen > (size_t)n - off)
				break;
			if (*s >= '1' && *s <= '9') {
				while (*s >= '0' && *s <= '9')
					s++;
				count += *s == '\0';
			}
			off += de->d_reclen;
		}
	}
	close(fd);
	if (n < 0) {
		c->failed = 1;
		return;
	}
	collect_emit(c, "host_process_count", NULL, (double)count);
}
