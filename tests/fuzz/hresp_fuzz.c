/* The HTTP client's answer parser (src/core/hresp.c, what hclient.c reads from the hub). The
 * first byte sets how the rest arrives (in pieces of 1 to 64 bytes, as recv would hand them
 * over) and whether it answers a HEAD; the rest is what the server sent. A complete answer must
 * hold within the limits; anything else is refused with a reason. */
#include "fuzz.h"

#include "core/buf.h"
#include "core/hresp.h"

#include <outpost/plugin.h>
#include <string.h>

#define MAX_BODY 4096

static void check_answer(const struct hresp *a)
{
	const char *p = a->headers.data;

	FUZZ_CHECK(a->ps == HRESP_DONE);
	FUZZ_CHECK(a->status >= 100 && a->status <= 599);
	FUZZ_CHECK(a->body.len <= MAX_BODY);
	FUZZ_CHECK(a->nheaders <= HRESP_MAX_HEADERS);
	/* What hclient_header walks: nheaders name/value pairs inside the buffer. */
	for (size_t i = 0; i < a->nheaders; i++) {
		size_t off;
		FUZZ_CHECK(p != NULL);
		off = (size_t)(p - a->headers.data);
		FUZZ_CHECK(off < a->headers.len);
		p += strnlen(p, a->headers.len - off) + 1;
		off = (size_t)(p - a->headers.data);
		FUZZ_CHECK(off < a->headers.len);
		p += strnlen(p, a->headers.len - off) + 1;
	}
	if (a->head || a->status == 204 || a->status == 304)
		FUZZ_CHECK(a->body.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hresp a;
	struct buf in = BUF_INIT;
	size_t piece, off = 0, used, in_off = 0;
	char msg[200];
	int rc = 0;

	if (size < 1)
		return 0;
	memset(&a, 0, sizeof(a));
	a.head = data[0] & 0x80;
	a.max_body = MAX_BODY;
	hresp_reset(&a);
	piece = (data[0] & 0x3f) + 1;
	data++, size--;
	while (off < size && rc == 0) {
		size_t n = size - off < piece ? size - off : piece;
		/* As hc_recv keeps its buffer: the unread tail moved to the front, then appended.
		 */
		if (in_off) {
			memmove(in.data, in.data + in_off, in.len - in_off);
			in.len -= in_off;
			in_off = 0;
		}
		FUZZ_CHECK(buf_append(&in, data + off, n) == 0);
		off += n;
		msg[0] = '\0';
		rc = hresp_feed(&a, in.data, in.len, &used, msg, sizeof(msg));
		FUZZ_CHECK(used <= in.len);
		in_off = used;
		if (rc < 0)
			FUZZ_CHECK(msg[0] &&
			           (rc == OUTPOST_E_UNAVAILABLE || rc == OUTPOST_E_TOO_LARGE));
	}
	if (rc == 0 && hresp_eof(&a))
		rc = 1;
	if (rc == 1)
		check_answer(&a);
	hresp_free(&a);
	buf_free(&in);
	return 0;
}
