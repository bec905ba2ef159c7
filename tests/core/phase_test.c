/* Tests for src/core/phase.c: a phase counts when told to, adds the wall and CPU time between
 * its marks, ignores a NULL stat, and is served as typed Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/phase.h"
#include "core/prom.h"

#include <string.h>
#include <time.h>

/* Burns about ms of this thread's CPU. */
static void spin(int ms)
{
	struct timespec a, b;
	volatile unsigned x = 0;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do {
		for (int i = 0; i < 10000; i++)
			x += (unsigned)i;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	} while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

static void test_end_counts_once_and_adds_the_time_between(void **state)
{
	struct phase_stat s = {0};
	struct phase_mark m;

	(void)state;
	phase_start(&m);
	spin(5);
	phase_end(&s, &m, 1);
	assert_int_equal(s.count, 1);
	assert_true(s.cpu_ns >= 5000000 && s.cpu_ns < 2000000000ULL);
	assert_true(s.wall_ns >= s.cpu_ns - 1000000);
	/* A second piece of the same pass: time, no count. */
	phase_start(&m);
	spin(2);
	phase_end(&s, &m, 0);
	assert_int_equal(s.count, 1);
	assert_true(s.cpu_ns >= 7000000);
}

static void test_span_between_two_marks_and_cpu_from_elsewhere(void **state)
{
	struct phase_stat s = {0};
	struct phase_mark a, b;

	(void)state;
	phase_start(&a);
	spin(2);
	phase_start(&b);
	phase_add_span(&s, &a, &b, 1);
	assert_int_equal(s.count, 1);
	assert_int_equal(s.wall_ns, (unsigned long long)(b.wall_ns - a.wall_ns));
	assert_int_equal(s.cpu_ns, (unsigned long long)(b.cpu_ns - a.cpu_ns));
	phase_add_cpu(&s, 3000);
	assert_int_equal(s.cpu_ns, (unsigned long long)(b.cpu_ns - a.cpu_ns) + 3000);
	/* Marks out of order add nothing (never a wrapped huge number). */
	phase_add_span(&s, &b, &a, 0);
	assert_int_equal(s.wall_ns, (unsigned long long)(b.wall_ns - a.wall_ns));
	phase_add_cpu(&s, -5);
	assert_int_equal(s.cpu_ns, (unsigned long long)(b.cpu_ns - a.cpu_ns) + 3000);
}

static void test_null_stat_is_a_no_op(void **state)
{
	struct phase_mark m;

	(void)state;
	phase_start(&m);
	phase_end(NULL, &m, 1);
	phase_add_span(NULL, &m, &m, 1);
	phase_add_cpu(NULL, 1);
}

static void test_prom_text_is_a_typed_summary_and_counter(void **state)
{
	static const char *const names[] = {"verify", "spawn"};
	struct phase_stat st[2] = {0};
	struct buf b = BUF_INIT, done = BUF_INIT;

	(void)state;
	st[0].count = 3;
	st[0].wall_ns = 1500000000ULL;
	st[0].cpu_ns = 250000;
	assert_int_equal(phase_prom(&b, "x_phase", "the tests", names, st, 2), 0);
	assert_string_equal(b.data,
	                    "# HELP x_phase_seconds Wall time of the tests, by phase (count: times "
	                    "through it).\n"
	                    "# TYPE x_phase_seconds summary\n"
	                    "x_phase_seconds_sum{phase=\"verify\"} 1.500000000\n"
	                    "x_phase_seconds_count{phase=\"verify\"} 3\n"
	                    "x_phase_seconds_sum{phase=\"spawn\"} 0.000000000\n"
	                    "x_phase_seconds_count{phase=\"spawn\"} 0\n"
	                    "# HELP x_phase_cpu_seconds_total CPU time of the tests, by phase.\n"
	                    "# TYPE x_phase_cpu_seconds_total counter\n"
	                    "x_phase_cpu_seconds_total{phase=\"verify\"} 0.000250000\n"
	                    "x_phase_cpu_seconds_total{phase=\"spawn\"} 0.000000000\n");
	/* Complete as it is: prom_respond adds nothing to it. */
	assert_int_equal(prom_complete(b.data, b.len, &done), 0);
	assert_string_equal(done.data, b.data);
	buf_free(&done);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_end_counts_once_and_adds_the_time_between),
	    cmocka_unit_test(test_span_between_two_marks_and_cpu_from_elsewhere),
	    cmocka_unit_test(test_null_stat_is_a_no_op),
	    cmocka_unit_test(test_prom_text_is_a_typed_summary_and_counter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
