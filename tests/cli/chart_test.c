/* Terminal charts (src/cli/chart.c): the line goes where the values say, the width is kept,
 * non-finite values are not drawn, a flat series is drawn mid-height. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/chart.h"

/* Display columns of a UTF-8 line (every character one column here). */
static size_t columns(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

/* The lines of b: up to max, each NUL-terminated in place. */
static size_t lines(char *text, char **out, size_t max)
{
	size_t n = 0;
	for (char *save, *l = strtok_r(text, "\n", &save); l && n < max;
	     l = strtok_r(NULL, "\n", &save))
		out[n++] = l;
	return n;
}

/* Whether the braille cell at column col of line has any dot. */
static int dotted(const char *line, size_t col)
{
	size_t c = 0;
	for (const char *p = line; *p; p++) {
		if (((unsigned char)*p & 0xC0) == 0x80)
			continue;
		if (c++ == col)
			return (unsigned char)p[0] == 0xE2 && ((unsigned char)p[1] & 0xFC) == 0xA0;
	}
	return 0;
}

static void test_rising_line_goes_from_bottom_left_to_top_right(void **state)
{
	int64_t t[10];
	double v[10];
	struct buf b = BUF_INIT;
	char *l[20];
	size_t n;

	(void)state;
	for (int i = 0; i < 10; i++) {
		t[i] = 1000 * i;
		v[i] = i;
	}
	struct chart_series s = {"web-01", t, v, 10};
	assert_int_equal(chart_render(&b, &s, 0, 10000, 2000, 40, 4), 0);
	n = lines(b.data, l, 20);
	assert_int_equal(n, 7); /* title, 4 rows, axis, times */
	assert_string_equal(l[0], "web-01");
	assert_true(strncmp(l[1], "9 ┤", strlen("9 ┤")) == 0);
	assert_true(strncmp(l[4], "0 ┤", strlen("0 ┤")) == 0);
	for (int r = 1; r <= 5; r++)
		assert_int_equal(columns(l[r], strlen(l[r])) <= 40, 1);
	assert_int_equal(columns(l[5], strlen(l[5])), 40); /* the axis spans the width */
	/* label "9" + space + axis = 3 columns before the plot */
	assert_true(dotted(l[4], 3)); /* first point: bottom left */
	assert_false(dotted(l[1], 3));
	assert_true(dotted(l[1], 3 + 37 * 9 / 10)); /* last point: top, 9/10 of the way */
	assert_false(dotted(l[4], 3 + 37 * 9 / 10));
	buf_free(&b);
}

static void test_nan_not_drawn_and_gaps_not_joined(void **state)
{
	int64_t t[3] = {0, 5000, 9000};
	double v[3] = {1, NAN, 1};
	struct buf b = BUF_INIT;
	char *l[20];

	(void)state;
	struct chart_series s = {NULL, t, v, 3};
	assert_int_equal(chart_render(&b, &s, 0, 10000, 1000, 30, 2), 0);
	assert_int_equal(lines(b.data, l, 20), 4); /* no title */
	/* a flat series is drawn mid-height (the range padded around it), as two dots */
	{
		int dots = 0;
		for (size_t col = 0; col < 30; col++)
			dots += dotted(l[0], col) + dotted(l[1], col);
		assert_int_equal(dots, 2);
	}
	buf_free(&b);
}

static void test_nothing_finite_says_so(void **state)
{
	int64_t t[1] = {0};
	double v[1] = {INFINITY};
	struct buf b = BUF_INIT;

	(void)state;
	struct chart_series s = {"x\x1b", t, v, 1};
	assert_int_equal(chart_render(&b, &s, 0, 10000, 1000, 30, 2), 0);
	assert_string_equal(b.data, "x^[\n  (no finite values to draw)\n");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rising_line_goes_from_bottom_left_to_top_right),
	    cmocka_unit_test(test_nan_not_drawn_and_gaps_not_joined),
	    cmocka_unit_test(test_nothing_finite_says_so),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
