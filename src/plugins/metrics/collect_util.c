/* What every host metric source shares (see collect_int.h): the line reader, the number
 * parsers, the counter-to-rate rule, the device table and forgetting counters after a reboot.
 * It calls nothing of the driver (collect.c) or of the sources (collect_sys.c, collect_fs.c,
 * collect_dev.c), which all call it. */
#include "collect_int.h"

#include <outpost/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Reading and parsing ---- */

void collect_parse_error(struct collect *c)
{
	c->parse_errors++;
}

/* Makes room for a line longer than the buffer; 0, or -1 when it may not grow further. */
static int collect_rbuf_grow(struct collect *c)
{
	char *p;

	if (c->rcap >= COLLECT_LINE_MAX)
		return -1;
	p = realloc(c->rbuf, c->rcap * 2);
	if (!p)
		return -1;
	c->rbuf = p;
	c->rcap *= 2;
	return 0;
}

int collect_read_lines(struct collect *c, int dirfd, const char *path, collect_line_fn fn,
                       void *arg)
{
	size_t have = 0; /* bytes of an unfinished line at the start of rbuf */
	unsigned lineno = 0;
	int skipping = 0; /* inside a line too long to keep */
	int fd, rc = 0;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? OUTPOST_E_NOT_FOUND : OUTPOST_E_UNAVAILABLE;
	for (;;) {
		char *p, *end, *nl;
		ssize_t n;

		if (have == c->rcap && collect_rbuf_grow(c) < 0) {
			have = 0;
			skipping = 1;
		}
		n = read(fd, c->rbuf + have, c->rcap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = OUTPOST_E_UNAVAILABLE;
			break;
		}
		if (n == 0)
			break;
		p = c->rbuf;
		end = c->rbuf + have + (size_t)n;
		/* The kept part holds no newline, so the search starts at the new data. */
		while ((nl = memchr(c->rbuf + have, '\n', (size_t)(end - (c->rbuf + have))))) {
			*nl = '\0';
			if (skipping) {
				collect_parse_error(c);
				skipping = 0;
			} else if (nl > p) {
				fn(c, p, lineno, arg);
			}
			lineno++;
			p = nl + 1;
			have = (size_t)(p - c->rbuf);
		}
		have = (size_t)(end - p);
		if (have && p != c->rbuf)
			memmove(c->rbuf, p, have);
	}
	if (rc == 0 && (have || skipping))
		collect_parse_error(c); /* truncated: the kernel ends every line */
	close(fd);
	return rc;
}

int collect_is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int collect_num(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	while (collect_is_blank(*p))
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return 0;
}

int collect_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v;

	if (collect_num(&p, &v) < 0 || (*p && !collect_is_blank(*p)))
		return -1;
	*pp = p;
	*out = v;
	return 0;
}

int collect_token(char **pp, char **tok)
{
	char *p = *pp;

	while (collect_is_blank(*p))
		p++;
	if (!*p)
		return -1;
	*tok = p;
	while (*p && !collect_is_blank(*p))
		p++;
	if (*p)
		*p++ = '\0';
	*pp = p;
	return 0;
}

/* ---- Counters and rates ---- */

/* A counter that went down either wrapped or was reset. It wrapped only if it was a 32-bit
 * counter (the previous value fits 32 bits) and it fell by more than half that range, which a
 * counter near its top coming round to near zero does; a reset (device re-created, driver
 * reloaded) usually restarts well below the previous value and would otherwise pass for a wrap
 * worth gigabytes. A 64-bit counter never wraps in practice: going down means reset. */
int collect_delta(uint64_t prev, uint64_t cur, uint64_t *delta)
{
	if (cur >= prev) {
		*delta = cur - prev;
		return 0;
	}
	if (prev <= UINT32_MAX && prev - cur > UINT32_MAX / 2) {
		*delta = (UINT64_C(1) << 32) - prev + cur;
		return 0;
	}
	return -1;
}

void collect_emit(struct collect *c, const char *name, const char *const *labels, double v)
{
	static const char *const none[] = {NULL};

	c->emit(c->arg, name, labels ? labels : none, v);
}

void collect_emit_rate(struct collect *c, const char *name, const char *const *labels,
                       uint64_t prev, uint64_t cur, double scale)
{
	uint64_t d;

	if (c->dt <= 0 || collect_delta(prev, cur, &d) < 0)
		return;
	collect_emit(c, name, labels, (double)d * scale / c->dt);
}

struct collect_dev *collect_dev_get(struct collect *c, struct collect_devtab *t, const char *name,
                                    int *fresh)
{
	struct collect_dev *d;
	size_t i, len = strlen(name);

	if (len >= COLLECT_NAME_MAX)
		return NULL;
	for (i = 0; i < t->n; i++) {
		d = &t->d[(t->next + i) % t->n];
		if (strcmp(d->name, name) == 0) {
			t->next = (size_t)(d - t->d) + 1;
			*fresh = 0;
			d->gen = c->gen;
			return d;
		}
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;

		d = realloc(t->d, cap * sizeof(*d));
		if (!d) {
			c->nomem = 1;
			return NULL;
		}
		t->d = d;
		t->cap = cap;
	}
	d = &t->d[t->n++];
	memset(d, 0, sizeof(*d));
	memcpy(d->name, name, len + 1);
	d->gen = c->gen;
	t->next = t->n;
	*fresh = 1;
	return d;
}

void collect_dev_prune(struct collect *c, struct collect_devtab *t)
{
	size_t i, j = 0;

	for (i = 0; i < t->n; i++)
		if (t->d[i].gen == c->gen)
			t->d[j++] = t->d[i];
	t->n = j;
	t->next = 0;
}

void collect_dev_clear(struct collect_devtab *t)
{
	free(t->d);
	memset(t, 0, sizeof(*t));
}

/* Forgets every previous counter: nothing measured before a reboot compares with after. */
void collect_forget(struct collect *c)
{
	size_t i;

	c->have_prev = 0;
	c->dt = 0;
	c->forks_ok = c->ctxt_ok = 0;
	c->total.prev_ok = 0;
	for (i = 0; i < c->ncpus; i++)
		c->cpus[i].prev_ok = 0;
	c->disks.n = c->nets.n = 0;
}
