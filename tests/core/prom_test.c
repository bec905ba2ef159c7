/* Tests for src/core/prom.c: what a handler leaves undescribed gets one # HELP and one # TYPE
 * before its first sample; what it declared stays as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/prom.h"

#include <string.h>

static void check(const char *in, const char *want)
{
	struct buf out = BUF_INIT;

	assert_int_equal(prom_complete(in, strlen(in), &out), 0);
	assert_string_equal(out.data ? out.data : "", want);
	buf_free(&out);
}

static void test_undeclared_families_get_help_and_type_by_name(void **state)
{
	(void)state;
	check("host_load1{host=\"a\"} 1 5\nhost_load1{host=\"b\"} 2 5\napp_jobs_total 3\n",
	      "# HELP host_load1 Host metric as the agents measure it (outpost docs/metrics.md).\n"
	      "# TYPE host_load1 gauge\n"
	      "host_load1{host=\"a\"} 1 5\nhost_load1{host=\"b\"} 2 5\n"
	      "# HELP app_jobs_total Application metric pushed on the hosts (outpost "
	      "docs/metrics.md).\n"
	      "# TYPE app_jobs_total counter\n"
	      "app_jobs_total 3\n");
}

static void test_declared_lines_are_kept_and_only_the_missing_one_added(void **state)
{
	(void)state;
	check("# TYPE outpost_hub_requests_total counter\noutpost_hub_requests_total 9\n"
	      "# HELP x_seconds Mine.\nx_seconds 1\n",
	      "# TYPE outpost_hub_requests_total counter\n"
	      "# HELP outpost_hub_requests_total Requests answered.\n"
	      "outpost_hub_requests_total 9\n"
	      "# HELP x_seconds Mine.\n# TYPE x_seconds gauge\nx_seconds 1\n");
}

static void test_histogram_parts_belong_to_their_family(void **state)
{
	(void)state;
	check("# HELP r_seconds Latency.\n# TYPE r_seconds histogram\n"
	      "r_seconds_bucket{le=\"+Inf\"} 2\nr_seconds_sum 0.5\nr_seconds_count 2\n"
	      "other_count 4\n",
	      "# HELP r_seconds Latency.\n# TYPE r_seconds histogram\n"
	      "r_seconds_bucket{le=\"+Inf\"} 2\nr_seconds_sum 0.5\nr_seconds_count 2\n"
	      "# HELP other_count Application metric pushed on the hosts (outpost "
	      "docs/metrics.md).\n"
	      "# TYPE other_count gauge\nother_count 4\n");
}

static void test_empty_text_and_types(void **state)
{
	(void)state;
	check("", "");
	assert_string_equal(prom_type("outpost_agent_calls_inflight"), "gauge");
	assert_string_equal(prom_type("a_total"), "counter");
	assert_string_equal(prom_type("a_total_bytes"), "gauge");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_undeclared_families_get_help_and_type_by_name),
	    cmocka_unit_test(test_declared_lines_are_kept_and_only_the_missing_one_added),
	    cmocka_unit_test(test_histogram_parts_belong_to_their_family),
	    cmocka_unit_test(test_empty_text_and_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
