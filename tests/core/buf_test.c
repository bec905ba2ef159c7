/* Tests for src/core/buf.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "core/buf.h"

static void test_append_grows_and_terminates(void **state)
{
	struct buf b = BUF_INIT;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, "ab", 2), 0);
	assert_int_equal(b.len, 2000);
	assert_int_equal(b.data[2000], '\0');
	assert_memory_equal(b.data + 1998, "ab", 2);
	buf_free(&b);
	buf_free(&b); /* free twice is harmless */
}

static void test_printf_formats(void **state)
{
	struct buf b = BUF_INIT;
	assert_int_equal(buf_printf(&b, "%s=%d", "x", 42), 0);
	assert_int_equal(buf_printf(&b, ";%05.1f", 3.14159), 0);
	assert_string_equal(b.data, "x=42;003.1");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void test_steal_empty_gives_empty_string(void **state)
{
	struct buf b = BUF_INIT;
	char *s = buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	assert_null(b.data);
}

/* Prometheus label values: backslash, quote and newline escaped, everything else (UTF-8, tabs)
 * as it is, appended after what the buffer holds. */
static void test_label_value_escapes(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_puts(&b, "x=\""), 0);
	assert_int_equal(buf_put_label_value(&b, "a\\b\"c\nd\té"), 0);
	assert_string_equal(b.data, "x=\"a\\\\b\\\"c\\nd\té");
	buf_reset(&b);
	assert_int_equal(buf_put_label_value(&b, ""), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_put_label_value(&b, "\n\n"), 0);
	assert_string_equal(b.data, "\\n\\n");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_grows_and_terminates),
	    cmocka_unit_test(test_printf_formats),
	    cmocka_unit_test(test_steal_empty_gives_empty_string),
	    cmocka_unit_test(test_label_value_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
