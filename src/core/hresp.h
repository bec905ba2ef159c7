/* The HTTP/1.x answer parser of the HTTP client (hclient.c): status line, headers, a body framed
 * by Content-Length, chunks or the end of the connection; hostile answers refused with a
 * reason. Knows nothing of sockets: bytes go in as they come (tests/fuzz/hresp_fuzz.c feeds it
 * directly). */
#ifndef OUTPOST_HRESP_H
#define OUTPOST_HRESP_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define HRESP_MAX_LINE 8192        /* one status, header or trailer line */
#define HRESP_MAX_HEAD (64u << 10) /* status line, headers and trailers together */
#define HRESP_MAX_HEADERS 100      /* header (and trailer) lines */
#define HRESP_MAX_CHUNK_LINE 1024  /* a chunk-size line with its extensions */

enum hresp_state {
	HRESP_STATUS,
	HRESP_HEADERS,
	HRESP_BODY_LEN,
	HRESP_BODY_CLOSE,
	HRESP_CHUNK_SIZE,
	HRESP_CHUNK_DATA,
	HRESP_CHUNK_CRLF,
	HRESP_TRAILERS,
	HRESP_DONE,
};

/* One answer being read. Zero it, then hresp_reset. */
struct hresp {
	enum hresp_state ps;
	int head;        /* the answer to a HEAD request: no body */
	size_t max_body; /* beyond: OUTPOST_E_TOO_LARGE */
	unsigned status, minor;
	int chunked, close; /* close: the server closes (or must close) the connection after */
	int64_t clen;       /* -1: not given */
	uint64_t left;      /* of the body or the chunk */
	size_t head_bytes, nheaders, ntrailers;
	struct buf headers; /* "name\0value\0"... */
	struct buf body;
};

/* Forgets what was read (keeps head and max_body, and the buffers' memory). */
void hresp_reset(struct hresp *a);
void hresp_free(struct hresp *a); /* the buffers; the struct is the caller's */

/* Reads what it can of p[0..n) (modified: lines get NUL-terminated in place); *used: the bytes
 * taken. 0: more is needed (every byte was taken, or a line is incomplete); 1: the answer is
 * complete (bytes past *used are not part of it); a negative OUTPOST_E_* with msg otherwise:
 * UNAVAILABLE for a malformed answer, TOO_LARGE for one over its limits, INTERNAL on OOM. */
int hresp_feed(struct hresp *a, char *p, size_t n, size_t *used, char *msg, size_t msglen);
/* The server closed the connection: 1 when that ends the answer (a body framed by the close),
 * else 0 (the answer is cut short). */
int hresp_eof(struct hresp *a);

/* 1 for a token character of RFC 9110 (header names, methods). */
int hresp_tchar(unsigned char ch);

#endif
