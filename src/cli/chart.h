/* Small terminal charts for `outpost metrics query --chart`: one series as a line of braille
 * dots (2 x 4 dots per character cell), with its highest and lowest value on the left and the
 * first and last time below. Pure: appends text to a buf, so the drawing is unit-tested. */
#ifndef OUTPOST_CLI_CHART_H
#define OUTPOST_CLI_CHART_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

#define CHART_ROWS 8       /* character rows of the plot */
#define CHART_MIN_WIDTH 30 /* narrower terminals still get this many columns */

struct chart_series {
	const char *title; /* printed above the plot (control characters escaped) */
	const int64_t *t;  /* n times, ascending (ms) */
	const double *v;   /* n values; NaN and infinities are not drawn */
	size_t n;
};

/* Draws s over [from, to) in width columns (everything included) and rows character rows.
 * Points further apart than gap_ms are not joined. 0 or -1 (out of memory). */
int chart_render(struct buf *b, const struct chart_series *s, int64_t from, int64_t to,
                 int64_t gap_ms, int width, int rows);

/* Columns of the terminal on fd, else $COLUMNS, else 80. */
int chart_width(int fd);

#endif
