/* The HTTP/1.x answer parser: see hresp.h. */
#include "hresp.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int hresp_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

void hresp_reset(struct hresp *a)
{
	a->ps = HRESP_STATUS;
	a->status = a->minor = 0;
	a->chunked = a->close = 0;
	a->clen = -1;
	a->left = 0;
	a->head_bytes = a->nheaders = a->ntrailers = 0;
	buf_reset(&a->headers);
	buf_reset(&a->body);
}

void hresp_free(struct hresp *a)
{
	buf_free(&a->headers);
	buf_free(&a->body);
}

int hresp_eof(struct hresp *a)
{
	if (a->ps != HRESP_BODY_CLOSE)
		return 0;
	a->ps = HRESP_DONE;
	return 1;
}

/* Content-Length: digits only; 0 or -1. */
static int hresp_parse_len(const char *v, int64_t *out)
{
	int64_t n = 0;

	if (!*v)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	*out = n;
	return 0;
}

/* A token list (Connection) contains tok. */
static int hresp_has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, tok, n) == 0 &&
		    (v[n] == '\0' || v[n] == ',' || v[n] == ' ' || v[n] == '\t'))
			return 1;
		while (*v && *v != ',')
			v++;
	}
	return 0;
}

/* One status line. 0, or -1 with msg. */
static int hresp_status_line(struct hresp *r, const char *s, char *msg, size_t msglen)
{
	if (strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
	    s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (s[12] != ' ' && s[12] != '\0')) {
		snprintf(msg, msglen, "not an HTTP/1.x status line: \"%.40s\"", s);
		return -1;
	}
	r->minor = (unsigned)(s[7] - '0');
	r->status = (unsigned)((s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0'));
	return 0;
}

/* One header line (or trailer when trailer). 0, or a negative code with msg. */
static int hresp_header_line(struct hresp *r, char *s, size_t len, int trailer, char *msg,
                             size_t msglen)
{
	char *colon = memchr(s, ':', len), *v, *end;
	size_t nlen, *count = trailer ? &r->ntrailers : &r->nheaders;

	if (++*count > HRESP_MAX_HEADERS) {
		snprintf(msg, msglen, "more than %d header lines", HRESP_MAX_HEADERS);
		return OUTPOST_E_TOO_LARGE;
	}
	if (!colon || colon == s) {
		snprintf(msg, msglen, "malformed header line: \"%.40s\"", s);
		return OUTPOST_E_UNAVAILABLE;
	}
	nlen = (size_t)(colon - s);
	for (size_t i = 0; i < nlen; i++)
		if (!hresp_tchar((unsigned char)s[i])) {
			snprintf(msg, msglen, "malformed header name: \"%.40s\"", s);
			return OUTPOST_E_UNAVAILABLE;
		}
	*colon = '\0';
	v = colon + 1;
	end = s + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (trailer)
		return 0; /* read and bounded, not used */
	if (strcasecmp(s, "Content-Length") == 0) {
		int64_t n;
		if (hresp_parse_len(v, &n) < 0 || (r->clen >= 0 && r->clen != n)) {
			snprintf(msg, msglen, "bad Content-Length: \"%.40s\"", v);
			return OUTPOST_E_UNAVAILABLE;
		}
		r->clen = n;
	} else if (strcasecmp(s, "Transfer-Encoding") == 0) {
		if (r->chunked || strcasecmp(v, "chunked") != 0) {
			snprintf(msg, msglen, "unsupported Transfer-Encoding: \"%.40s\"", v);
			return OUTPOST_E_UNAVAILABLE;
		}
		r->chunked = 1;
	} else if (strcasecmp(s, "Connection") == 0 && hresp_has_token(v, "close")) {
		r->close = 1;
	}
	if (buf_append(&r->headers, s, nlen + 1) < 0 ||
	    buf_append(&r->headers, v, strlen(v) + 1) < 0) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

/* The headers are in: how is the body framed? 0, or a negative code with msg. */
static int hresp_headers_done(struct hresp *r, char *msg, size_t msglen)
{
	if (r->status < 200) {
		if (r->status == 101) {
			snprintf(msg, msglen, "unexpected 101 Switching Protocols");
			return OUTPOST_E_UNAVAILABLE;
		}
		/* An interim answer (100 Continue): the real one follows. */
		r->ps = HRESP_STATUS;
		r->nheaders = 0;
		r->clen = -1;
		r->chunked = r->close = 0;
		buf_reset(&r->headers);
		return 0;
	}
	if (r->minor == 0)
		r->close = 1; /* HTTP/1.0: no keep-alive for us */
	if (r->head || r->status == 204 || r->status == 304) {
		r->ps = HRESP_DONE;
	} else if (r->chunked) {
		if (r->clen >= 0)
			r->close = 1; /* both: chunked wins, the connection is not trusted */
		r->ps = HRESP_CHUNK_SIZE;
	} else if (r->clen >= 0) {
		if ((uint64_t)r->clen > r->max_body) {
			snprintf(msg, msglen,
			         "the answer's body of %lld bytes is over the %zu allowed",
			         (long long)r->clen, r->max_body);
			return OUTPOST_E_TOO_LARGE;
		}
		r->left = (uint64_t)r->clen;
		r->ps = r->left ? HRESP_BODY_LEN : HRESP_DONE;
	} else {
		r->close = 1;
		r->ps = HRESP_BODY_CLOSE;
	}
	return 0;
}

/* "1a;ext" to 26. 0, or a negative code with msg. */
static int hresp_chunk_size(struct hresp *r, const char *s, char *msg, size_t msglen)
{
	uint64_t n = 0;
	const char *p = s;

	for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
	     p++) {
		if (p - s >= 15) {
			snprintf(msg, msglen, "bad chunk size: \"%.40s\"", s);
			return OUTPOST_E_UNAVAILABLE;
		}
		n = n * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (p == s || (*p && *p != ';')) {
		snprintf(msg, msglen, "bad chunk size: \"%.40s\"", s);
		return OUTPOST_E_UNAVAILABLE;
	}
	if (n > r->max_body - r->body.len) {
		snprintf(msg, msglen, "the answer's body is over the %zu bytes allowed",
		         r->max_body);
		return OUTPOST_E_TOO_LARGE;
	}
	r->left = n;
	r->ps = n ? HRESP_CHUNK_DATA : HRESP_TRAILERS;
	return 0;
}

/* Takes body bytes. 0, or a negative code with msg. */
static int hresp_body(struct hresp *r, const char *p, size_t n, char *msg, size_t msglen)
{
	if (n > r->max_body - r->body.len) {
		snprintf(msg, msglen, "the answer's body is over the %zu bytes allowed",
		         r->max_body);
		return OUTPOST_E_TOO_LARGE;
	}
	if (buf_append(&r->body, p, n) < 0) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

int hresp_feed(struct hresp *r, char *data, size_t n, size_t *used, char *msg, size_t msglen)
{
	int rc = 0;

	*used = 0;
	while (r->ps != HRESP_DONE) {
		char *p = data + *used;
		size_t avail = n - *used, take;

		if (r->ps == HRESP_BODY_LEN || r->ps == HRESP_CHUNK_DATA ||
		    r->ps == HRESP_BODY_CLOSE) {
			if (!avail)
				return 0;
			take =
			    r->ps == HRESP_BODY_CLOSE || avail < r->left ? avail : (size_t)r->left;
			rc = hresp_body(r, p, take, msg, msglen);
			if (rc < 0)
				return rc;
			*used += take;
			if (r->ps == HRESP_BODY_CLOSE)
				continue;
			r->left -= take;
			if (!r->left)
				r->ps = r->ps == HRESP_BODY_LEN ? HRESP_DONE : HRESP_CHUNK_CRLF;
			continue;
		}
		/* A line. */
		size_t limit = r->ps == HRESP_CHUNK_SIZE || r->ps == HRESP_CHUNK_CRLF
		                   ? HRESP_MAX_CHUNK_LINE
		                   : HRESP_MAX_LINE;
		char *nl = memchr(p, '\n', avail);
		size_t len = nl ? (size_t)(nl - p) : avail;

		if (len > limit) {
			snprintf(msg, msglen, "a line of the answer is over %zu bytes", limit);
			rc = r->ps == HRESP_CHUNK_SIZE || r->ps == HRESP_CHUNK_CRLF
			         ? OUTPOST_E_UNAVAILABLE
			         : OUTPOST_E_TOO_LARGE;
			return rc;
		}
		if (!nl)
			return 0;
		*used += len + 1;
		if (r->ps != HRESP_CHUNK_SIZE && r->ps != HRESP_CHUNK_CRLF) {
			r->head_bytes += len + 1;
			if (r->head_bytes > HRESP_MAX_HEAD) {
				snprintf(msg, msglen, "the answer's headers are over %u bytes",
				         HRESP_MAX_HEAD);
				rc = OUTPOST_E_TOO_LARGE;
				return rc;
			}
		}
		if (len && p[len - 1] == '\r')
			len--;
		p[len] = '\0';
		if (memchr(p, '\0', len) || memchr(p, '\r', len)) {
			snprintf(msg, msglen, "a line of the answer holds a NUL or a CR");
			rc = OUTPOST_E_UNAVAILABLE;
			return rc;
		}
		switch (r->ps) {
		case HRESP_STATUS:
			rc = hresp_status_line(r, p, msg, msglen) < 0 ? OUTPOST_E_UNAVAILABLE : 0;
			r->ps = HRESP_HEADERS;
			break;
		case HRESP_HEADERS:
			if (len == 0)
				rc = hresp_headers_done(r, msg, msglen);
			else if (*p == ' ' || *p == '\t') {
				snprintf(msg, msglen, "folded header lines are not accepted");
				rc = OUTPOST_E_UNAVAILABLE;
			} else
				rc = hresp_header_line(r, p, len, 0, msg, msglen);
			break;
		case HRESP_CHUNK_SIZE:
			rc = hresp_chunk_size(r, p, msg, msglen);
			break;
		case HRESP_CHUNK_CRLF:
			if (len) {
				snprintf(msg, msglen, "a chunk is longer than its size");
				rc = OUTPOST_E_UNAVAILABLE;
			}
			r->ps = HRESP_CHUNK_SIZE;
			break;
		case HRESP_TRAILERS:
			if (len == 0)
				r->ps = HRESP_DONE;
			else
				rc = hresp_header_line(r, p, len, 1, msg, msglen);
			break;
		default:
			break;
		}
		if (rc < 0)
			return rc;
	}
	return 1;
}
