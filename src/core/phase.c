/* Per-phase counters: see phase.h. */
#include "phase.h"

#include <time.h>

static int64_t phase_clock(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void phase_start(struct phase_mark *m)
{
	m->wall_ns = phase_clock(CLOCK_MONOTONIC);
	m->cpu_ns = phase_clock(CLOCK_THREAD_CPUTIME_ID);
}

void phase_add_span(struct phase_stat *s, const struct phase_mark *a, const struct phase_mark *b,
                    int count)
{
	if (!s)
		return;
	if (b->wall_ns > a->wall_ns)
		atomic_fetch_add_explicit(&s->wall_ns,
		                          (unsigned long long)(b->wall_ns - a->wall_ns),
		                          memory_order_relaxed);
	if (b->cpu_ns > a->cpu_ns)
		atomic_fetch_add_explicit(&s->cpu_ns, (unsigned long long)(b->cpu_ns - a->cpu_ns),
		                          memory_order_relaxed);
	if (count)
		atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void phase_end(struct phase_stat *s, const struct phase_mark *m, int count)
{
	struct phase_mark now;

	if (!s)
		return;
	phase_start(&now);
	phase_add_span(s, m, &now, count);
}

void phase_add_cpu(struct phase_stat *s, int64_t cpu_ns)
{
	if (s && cpu_ns > 0)
		atomic_fetch_add_explicit(&s->cpu_ns, (unsigned long long)cpu_ns,
		                          memory_order_relaxed);
}

int phase_prom(struct buf *b, const char *family, const char *help, const char *const *names,
               const struct phase_stat *st, size_t n)
{
	if (buf_printf(b,
	               "# HELP %s_seconds Wall time of %s, by phase (count: times through it).\n"
	               "# TYPE %s_seconds summary\n",
	               family, help, family) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (buf_printf(b,
		               "%s_seconds_sum{phase=\"%s\"} %.9f\n"
		               "%s_seconds_count{phase=\"%s\"} %llu\n",
		               family, names[i], (double)atomic_load(&st[i].wall_ns) / 1e9, family,
		               names[i], (unsigned long long)atomic_load(&st[i].count)) < 0)
			return -1;
	if (buf_printf(b,
	               "# HELP %s_cpu_seconds_total CPU time of %s, by phase.\n"
	               "# TYPE %s_cpu_seconds_total counter\n",
	               family, help, family) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (buf_printf(b, "%s_cpu_seconds_total{phase=\"%s\"} %.9f\n", family, names[i],
		               (double)atomic_load(&st[i].cpu_ns) / 1e9) < 0)
			return -1;
	return 0;
}
