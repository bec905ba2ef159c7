/* Braille line charts for the terminal: see chart.h. */
#include "chart.h"
#include "output.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The braille dot of a pixel (column x % 2, row y % 4 of the cell). */
static const unsigned char chart_dot[4][2] = {
    {0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

struct canvas {
	unsigned char *cell;
	int cols, rows;
};

static void canvas_set(struct canvas *c, int x, int y)
{
	if (x < 0 || y < 0 || x >= c->cols * 2 || y >= c->rows * 4)
		return;
	c->cell[(y / 4) * c->cols + x / 2] |= chart_dot[y % 4][x % 2];
}

static void canvas_line(struct canvas *c, int x0, int y0, int x1, int y1)
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0);
	int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;

	for (;;) {
		canvas_set(c, x0, y0);
		if (x0 == x1 && y0 == y1)
			return;
		int e2 = 2 * err;
		if (e2 >= dy) {
			err += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			err += dx;
			y0 += sy;
		}
	}
}

static int chart_time(struct buf *b, int64_t ms, int64_t span)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char text[32];
	size_t n;

	if (!localtime_r(&t, &tm))
		return buf_puts(b, "?");
	if (span >= 86400000)
		n = strftime(text, sizeof(text), "%m-%d %H:%M", &tm);
	else if (span >= 600000)
		n = strftime(text, sizeof(text), "%H:%M", &tm);
	else
		n = strftime(text, sizeof(text), "%H:%M:%S", &tm);
	if (!n)
		return buf_puts(b, "?");
	return buf_puts(b, text);
}

int chart_render(struct buf *b, const struct chart_series *s, int64_t from, int64_t to,
                 int64_t gap_ms, int width, int rows)
{
	double lo = INFINITY, hi = -INFINITY;
	char top[32], bottom[32];
	struct canvas c = {0};
	struct buf tl = BUF_INIT, tr = BUF_INIT;
	int lab, px = -1, py = -1, rc = -1;
	int64_t pt = 0, span = to > from ? to - from : 1;

	if (s->title && (out_text(b, s->title) < 0 || buf_puts(b, "\n") < 0))
		return -1;
	for (size_t i = 0; i < s->n; i++)
		if (isfinite(s->v[i])) {
			lo = fmin(lo, s->v[i]);
			hi = fmax(hi, s->v[i]);
		}
	if (lo > hi)
		return buf_puts(b, "  (no finite values to draw)\n");
	if (lo == hi) {
		double pad = lo != 0 ? fabs(lo) * 0.1 : 1;
		lo -= pad;
		hi += pad;
	}
	snprintf(top, sizeof(top), "%.4g", hi);
	snprintf(bottom, sizeof(bottom), "%.4g", lo);
	lab = (int)(strlen(top) > strlen(bottom) ? strlen(top) : strlen(bottom));
	c.rows = rows > 0 ? rows : CHART_ROWS;
	c.cols = width - lab - 2;
	if (c.cols < 10)
		c.cols = 10;
	if (!(c.cell = calloc((size_t)c.rows * (size_t)c.cols, 1)))
		return -1;
	for (size_t i = 0; i < s->n; i++) {
		int x, y;
		if (!isfinite(s->v[i]))
			continue;
		x = (int)((double)(s->t[i] - from) / (double)span * c.cols * 2);
		if (x >= c.cols * 2)
			x = c.cols * 2 - 1;
		y = c.rows * 4 - 1 - (int)lround((s->v[i] - lo) / (hi - lo) * (c.rows * 4 - 1));
		if (px >= 0 && s->t[i] - pt <= gap_ms)
			canvas_line(&c, px, py, x, y);
		else
			canvas_set(&c, x, y);
		px = x, py = y, pt = s->t[i];
	}
	for (int r = 0; r < c.rows; r++) {
		const char *label = r == 0 ? top : r == c.rows - 1 ? bottom : "";
		if (buf_printf(b, "%*s %s", lab, label, r == 0 || r == c.rows - 1 ? "┤" : "│") < 0)
			goto out;
		for (int k = 0; k < c.cols; k++) {
			unsigned char d = c.cell[r * c.cols + k];
			char u[3] = {(char)0xE2, (char)(0xA0 | (d >> 6)),
			             (char)(0x80 | (d & 0x3F))};
			if (d ? buf_append(b, u, 3) < 0 : buf_append(b, " ", 1) < 0)
				goto out;
		}
		if (buf_puts(b, "\n") < 0)
			goto out;
	}
	if (buf_printf(b, "%*s └", lab, "") < 0)
		goto out;
	for (int k = 0; k < c.cols; k++)
		if (buf_puts(b, "─") < 0)
			goto out;
	if (chart_time(&tl, from, span) < 0 || chart_time(&tr, to, span) < 0 || !tl.data ||
	    !tr.data)
		goto out;
	{
		int pad = c.cols - (int)tl.len - (int)tr.len;
		if (pad < 1)
			pad = 1;
		if (buf_printf(b, "\n%*s  %s%*s%s\n", lab, "", tl.data, pad, "", tr.data) < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&tl);
	buf_free(&tr);
	free(c.cell);
	return rc;
}

int chart_width(int fd)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col < CHART_MIN_WIDTH ? CHART_MIN_WIDTH : ws.ws_col;
	if (cols && atoi(cols) > 0)
		return atoi(cols) < CHART_MIN_WIDTH ? CHART_MIN_WIDTH : atoi(cols);
	return 80;
}
