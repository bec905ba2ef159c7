/* Tests for src/core/sec.c: the parts a request's headers reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "core/sec.h"

static void test_parse_time_ms_takes_plain_digits(void **state)
{
	int64_t t = -1;

	(void)state;
	assert_int_equal(sec_parse_time_ms("1700000000123", &t), 0);
	assert_int_equal(t, 1700000000123LL);
	assert_int_equal(sec_parse_time_ms("0", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(sec_parse_time_ms("999999999999999", &t), 0); /* 15 digits */
	assert_int_equal(t, 999999999999999LL);
}

/* X-Outpost-Time once went to strtoll and llabs: INT64_MIN overflowed (UB). Everything that
 * is not 1..15 plain digits is refused, the out value untouched. */
static void test_parse_time_ms_refuses_what_could_overflow_or_is_not_a_time(void **state)
{
	static const char *const bad[] = {
	    "-9223372036854775808",
	    "9223372036854775807",
	    "9223372036854775808",
	    "1000000000000000",
	    "-1",
	    "+1",
	    "",
	    " 1",
	    "1 ",
	    "1e12",
	    "0x10",
	    "12a",
	    "１２",
	};
	int64_t t = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sec_parse_time_ms(bad[i], &t), -1);
		assert_int_equal(t, 42);
	}
	assert_int_equal(sec_parse_time_ms(NULL, &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_time_ms_takes_plain_digits),
	    cmocka_unit_test(test_parse_time_ms_refuses_what_could_overflow_or_is_not_a_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
