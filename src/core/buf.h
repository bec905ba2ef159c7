/* A growable byte buffer for building text and collecting bodies; always NUL-terminated. */
#ifndef OUTPOST_BUF_H
#define OUTPOST_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* NULL until the first append; owned */
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* Each returns 0, or -1 when memory runs out (the buffer is then unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b); /* length 0, keeps memory */
void buf_free(struct buf *b);
/* Appends v escaped as a Prometheus text label value (backslash, double quote, newline), the
 * quotes around it left to the caller. */
int buf_put_label_value(struct buf *b, const char *v);
/* Hands the data to the caller (caller frees) and empties the buffer; never NULL on success. */
char *buf_steal(struct buf *b);

#endif
