/* A small HTTP/1.1 client on our event loop, for the agent's link to the hub: plain http or TLS
 * with GnuTLS (already loaded by libmicrohttpd), non-blocking connect and handshake, persistent
 * connections to one origin, hostile answers refused. Everything runs on the loop's thread.
 *
 * One client talks to one origin (scheme, host, port). Requests queue until one of at most
 * max_conns connections is free; an idle connection is reused (HTTP/1.1 keep-alive) unless the
 * server said "Connection: close". A request that failed on a reused connection before any byte
 * of its answer came back (the server closed it while idle) is sent once more on a new one.
 *
 * Names: a numeric IPv4/IPv6 host never blocks. A host name is resolved with getaddrinfo, which
 * BLOCKS the loop; it is resolved when the first connection opens and kept until no address of
 * it answers. Hub URLs are usually addresses; a name in /etc/hosts costs microseconds.
 *
 * Trust (https only): with ca_file, the chain must verify against those anchors (never the
 * system store) and, unless no_verify_name, name the host (DNS name or IP address SAN). With a
 * pin, the server's certificate must have that sha256 (of its DER). With neither, nothing is
 * verified ("trust on first use"): the caller reads the certificate from the answer
 * (HCLIENT_PEER_CERT) to pin it, and sends nothing secret before. */
#ifndef OUTPOST_HCLIENT_H
#define OUTPOST_HCLIENT_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct phase_mark;
struct hclient;
struct hclient_req;

struct hclient_config {
	struct loop *loop;
	const char *url;        /* "https://HOST[:PORT]" or "http://..."; a path of "/" at most */
	const char *ca_file;    /* PEM trust anchors; NULL: the chain is not verified */
	int no_verify_name;     /* with ca_file: check the chain only, not the name */
	const char *tls_name;   /* name to verify and send as SNI; NULL: the URL's host */
	const char *pin_sha256; /* "sha256:HEX", HEX or HE:X:.. (any case); NULL: no pin */
	const char *user_agent; /* NULL: "outpost/VERSION" */
	unsigned max_conns;     /* connections at most (0: 2) */
	size_t max_response;    /* body bytes at most (0: 8 MiB); beyond: OUTPOST_E_TOO_LARGE */
	int64_t connect_timeout_ms; /* TCP connect + TLS handshake (0: 10 s) */
	int64_t idle_timeout_ms;    /* an idle connection is closed after this (0: 50 s) */
	/* The local IPv4 address connections leave from (numeric, e.g. "127.0.3.7"); NULL: the
	 * kernel's choice. Its port is still the kernel's, picked per destination
	 * (IP_BIND_ADDRESS_NO_PORT), so N source addresses hold N times the ephemeral ports:
	 * outpost-sim spreads its virtual agents over 127.0.x.y this way. */
	const char *source_addr;
};

/* 0, or a negative OUTPOST_E_* with msg (bad URL, pin or source address, unreadable CA file). */
int hclient_new(const struct hclient_config *cfg, struct hclient **out, char *msg, size_t msglen);
/* NULL ok. Drops every request without calling back; may be called from a callback. */
void hclient_free(struct hclient *c);
/* Pins (or with NULL unpins) the server certificate for the connections opened from now on;
 * an idle connection to another certificate is closed. 0, or OUTPOST_E_BAD_ARGS. */
int hclient_set_pin(struct hclient *c, const char *pin_sha256);

enum hclient_flags {
	/* The answer carries the server's certificate in PEM (peer_cert_pem). */
	HCLIENT_PEER_CERT = 1 << 0,
	/* A connection of its own, closed after the answer (e.g. a first-use probe). */
	HCLIENT_FRESH = 1 << 1,
};

struct hclient_request {
	const char *method;         /* "GET", "POST"... */
	const char *target;         /* "/path?query", sent exactly as given */
	const char *const *headers; /* "Name: value" lines, NULL-terminated, or NULL; copied.
	                             * Host, User-Agent and Content-Length are the client's. */
	const void *body;           /* copied; may be NULL when body_len is 0 */
	size_t body_len;            /* POST and PUT always send Content-Length */
	int64_t timeout_ms;         /* from now to the answer's last byte (0: 30 s) */
	unsigned flags;             /* HCLIENT_* */
};

/* What the callback gets; everything borrowed for the callback's duration. */
struct hclient_response {
	/* 0: an HTTP answer came. Else no answer, and a negative OUTPOST_E_*:
	 *   UNAVAILABLE  no connection, connection lost, TLS failure, malformed answer;
	 *   TIMEOUT      connect timeout or the request's timeout;
	 *   TOO_LARGE    body over max_response, or status line/headers over their limits;
	 *   FORBIDDEN    the server's certificate: not trusted by ca_file, wrong name, not the pin;
	 *   INTERNAL     out of memory. */
	int err;
	const char *errmsg; /* with err: one line for a log; "" otherwise */
	unsigned status;    /* 100..599; 0 with err */
	const char *body;   /* NUL-terminated (may hold NULs), "" when none */
	size_t body_len;
	const char *peer_sha256;   /* hex sha256 of the server certificate's DER, "" if none */
	const char *peer_cert_pem; /* with HCLIENT_PEER_CERT and TLS; else NULL */
	const char *headers;       /* internal: read them with hclient_header */
	size_t nheaders;
	/* Taken on the loop thread as the read that brought the answer's first byte began (or
	 * NULL: none came), so a caller can time the answer's handling from there. */
	const struct phase_mark *rx_start;
};

/* Runs on the loop thread, never from inside hclient_request, exactly once per request that was
 * not cancelled. The request's handle is gone when it runs. */
typedef void (*hclient_done_fn)(void *arg, const struct hclient_response *resp);

/* Queues a request. 0, or OUTPOST_E_BAD_ARGS (method, target or header unfit for the wire) or
 * OUTPOST_E_INTERNAL; no callback then. *out (may be NULL) is valid until the callback starts
 * or hclient_cancel. */
int hclient_request(struct hclient *c, const struct hclient_request *rq, hclient_done_fn fn,
                    void *arg, struct hclient_req **out);
/* NULL ok. Drops the request without calling back. */
void hclient_cancel(struct hclient_req *r);

/* A response header's value (the first of that name, any case), or NULL. */
const char *hclient_header(const struct hclient_response *resp, const char *name);

/* Connections open now (connecting, busy or idle); for tests and status. */
unsigned hclient_conns(const struct hclient *c);

struct hclient_url {
	int https;
	char host[256];   /* without the brackets of an IPv6 address */
	unsigned port;    /* the scheme's default when absent */
	int userinfo;     /* "user@" was given */
	const char *rest; /* what follows the authority (path, query, fragment), "" if none;
	                   * points into the parsed string */
};

/* Splits an http(s) URL. 0, or -1 when it is not one. */
int hclient_url_parse(const char *url, struct hclient_url *u);
/* "sha256:AB:CD..", "abcd.." to 64 lowercase hex digits. 0, or -1. */
int hclient_pin_parse(const char *in, char out[65]);

#endif
