/* Where the time goes, by phase: for each phase a count and the cumulative wall time and CPU
 * time spent in it, kept on all the time (two clock reads at each end of a phase: a vDSO call
 * and a clock_gettime syscall, well under a microsecond each) and served as Prometheus text.
 *
 * A phase is timed from a mark (phase_start) to phase_end on the same thread: the CPU time is
 * that thread's (CLOCK_THREAD_CPUTIME_ID), the wall time CLOCK_MONOTONIC. Under load the two
 * differ by the time the thread waited for a CPU. The counters are atomic, so any thread may
 * end a phase; a NULL stat is a no-op, for code run without a table (tests, the simulator). */
#ifndef OUTPOST_PHASE_H
#define OUTPOST_PHASE_H

#include "buf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct phase_stat {
	atomic_ullong count;   /* times the phase ended with count set */
	atomic_ullong wall_ns; /* wall time in it, all of them */
	atomic_ullong cpu_ns;  /* CPU time in it (the timing thread's, plus any added) */
};

struct phase_mark {
	int64_t wall_ns; /* CLOCK_MONOTONIC */
	int64_t cpu_ns;  /* CLOCK_THREAD_CPUTIME_ID of the thread that took the mark */
};

void phase_start(struct phase_mark *m);
/* Adds the time from m to now (same thread as m) to s; counts one more when count is set
 * (a phase done in several pieces counts once and adds the time of every piece). */
void phase_end(struct phase_stat *s, const struct phase_mark *m, int count);
/* Adds the time from a to b (both taken on one thread). */
void phase_add_span(struct phase_stat *s, const struct phase_mark *a, const struct phase_mark *b,
                    int count);
/* Adds CPU time spent elsewhere (a child process's) to s. */
void phase_add_cpu(struct phase_stat *s, int64_t cpu_ns);

/* Prometheus text for n phases: a summary <family>_seconds (_sum, _count: the wall time)
 * and a counter <family>_cpu_seconds_total, each labelled phase="<names[i]>". help says
 * what the phases are of. 0, or -1 (out of memory). */
int phase_prom(struct buf *b, const char *family, const char *help, const char *const *names,
               const struct phase_stat *st, size_t n);

#endif
