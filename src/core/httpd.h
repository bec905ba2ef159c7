/* HTTP server for the agent's local API and the hub: libmicrohttpd driven by our event loop
 * (its epoll fd on our loop, no thread of its own), routes as data, bodies counted against the
 * route's limit as they arrive, every answer in the one JSON envelope. A handler answers at
 * once or later (the connection is suspended meanwhile), always on the loop thread. */
#ifndef OUTPOST_HTTPD_H
#define OUTPOST_HTTPD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct loop;
struct httpd;
struct httpd_req;

typedef void (*httpd_handler_fn)(void *ctx, struct httpd_req *req);

struct httpd_route {
	const char *method; /* "GET", "POST", "DELETE" */
	/* Exact, except that a segment that is a lone star matches any one segment of the
	 * request's path (one or more bytes, no '/'): /api/v1/hosts/<id>/accept is written with
	 * a star for <id>. */
	const char *path;
	httpd_handler_fn fn;
	int role;          /* what the caller needs; checked by the daemon's auth callback */
	size_t body_limit; /* bytes; 0: no body accepted */
};

struct httpd_config {
	const char *listen;    /* "HOST:PORT" (port 0: any free port), or NULL */
	const char *unix_path; /* a unix socket path, or NULL */
	/* The socket file's mode (0: 0600) and group (0: the process's); it is bound under
	 * umask 0177 and then given both, so it is never wider than asked, whatever the umask. */
	unsigned unix_mode;
	long unix_gid;
	const struct httpd_route *routes;
	size_t nroutes;
	void *ctx; /* handed to handlers and auth */
	/* 0 to let the request in, or a negative OUTPOST_E_* (UNAUTHORIZED, FORBIDDEN) after
	 * httpd_respond_error. NULL: everyone may call every route. */
	int (*auth)(void *ctx, struct httpd_req *req, int role);
	/* Optional: called when the headers have arrived, before any body is read, so callers
	 * without credentials cannot make the server buffer a body. 0 to go on (the check may
	 * be left to auth, e.g. when it needs the body), or negative after answering. */
	int (*auth_headers)(void *ctx, struct httpd_req *req, int role);
	unsigned conn_limit;     /* total connections (0: 1024) */
	unsigned per_ip_limit;   /* per client address on TCP (0: none) */
	unsigned conn_timeout_s; /* idle timeout (0: 30) */
	/* Connections on TCP that no request has authenticated yet (the auth callback let in a
	 * request for a route whose role is not 0): at most this many per client address (0:
	 * no bound), and closed after unauth_timeout_s idle (0: conn_timeout_s), so that one
	 * client cannot hold every connection while authenticated ones (an agent fleet behind
	 * one NAT address) are not bounded by it. */
	unsigned unauth_per_ip_limit;
	unsigned unauth_timeout_s;
	/* Admission: at most this many connections accepted whose first request has not begun
	 * (TLS handshakes under way, headers unread; 0: no bound). Past it a new connection is
	 * closed as it is accepted, so a storm of connects (a fleet after a restart) does not
	 * stretch every handshake past its client's timeout. */
	unsigned admit_unread;
	size_t conn_memory;       /* bytes of buffer per connection (0: 32 KiB) */
	const char *tls_cert_pem; /* both set: HTTPS */
	const char *tls_key_pem;
	const struct logger *log;
	int max_depth; /* JSON nesting limit for httpd_req_json (0: 32) */
	/* Called when a request is answered, with the time since it arrived (may be NULL). */
	void (*on_answer)(void *ctx, struct httpd_req *req, unsigned status, int64_t ms);
};

int httpd_start(struct loop *loop, const struct httpd_config *cfg, struct httpd **out, char *msg,
                size_t msglen);
/* Stops accepting new connections; the ones open finish. */
void httpd_quiesce(struct httpd *h);
/* Requests still waiting for an answer (suspended). */
size_t httpd_pending(const struct httpd *h);
void httpd_stop(struct httpd *h); /* NULL ok; answers what is pending with "unavailable" */
unsigned httpd_port(const struct httpd *h); /* the TCP port bound, 0 if none */
/* Connections open now, and the TCP ones refused by unauth_per_ip_limit since the start. */
void httpd_conn_stats(const struct httpd *h, size_t *open, unsigned long long *refused);

/* What the server has not read yet: connections accepted with no request begun (and the
 * oldest one's age), connections waiting in the kernel's accept queue, and the connections
 * admit_unread closed (how many since the start, the last one's monotonic ms, or 0). */
struct httpd_backlog {
	size_t unread;
	int64_t oldest_unread_ms;
	size_t accept_queue;
	unsigned long long admit_refused;
	int64_t admit_refused_ms;
};
void httpd_backlog(const struct httpd *h, struct httpd_backlog *out); /* h NULL: zeros */

const char *httpd_req_method(const struct httpd_req *r);
/* Admission of connections (the daemon's rule, e.g. a rate of new ones): whether a request
 * of r's connection was admitted already, and admitting it, so that a connection refused
 * busy stays refused until one of its requests is let in, and one let in is not asked again. */
int httpd_req_admitted(const struct httpd_req *r);
void httpd_req_admit(struct httpd_req *r);
/* The connection of r idles out as an authenticated one would (conn_timeout_s), not at
 * unauth_timeout_s: for a client told to come back on it (busy with a Retry-After). It stays
 * bounded by unauth_per_ip_limit. */
void httpd_req_keep(struct httpd_req *r);
const char *httpd_req_path(const struct httpd_req *r);
/* The request target exactly as the client sent it, query string included. */
const char *httpd_req_uri(const struct httpd_req *r);
/* The path from the segment the route's first '*' matched on ("web-01/accept"); "" for a
 * route without one. */
const char *httpd_req_tail(const struct httpd_req *r);
/* The segment the route's i-th '*' matched (from 0), or "" past the last: valid for the
 * request. */
#define HTTPD_MAX_ARGS 4
const char *httpd_req_arg(const struct httpd_req *r, unsigned i);
const char *httpd_req_body(const struct httpd_req *r, size_t *len);
const char *httpd_req_header(const struct httpd_req *r, const char *name);
const char *httpd_req_query(const struct httpd_req *r, const char *key);
/* Every value of a repeated query parameter (match=a&match=b), in order: up to max in vals
 * (borrowed, valid for the request); returns how many there are, which may exceed max. */
size_t httpd_req_query_all(const struct httpd_req *r, const char *key, const char **vals,
                           size_t max);
/* The first query parameter whose name is not in known (NULL-terminated), or NULL: lets a
 * route refuse a misspelt parameter instead of ignoring it. */
const char *httpd_req_query_unknown(const struct httpd_req *r, const char *const *known);
/* The socket of the request's connection (TCP or unix), or -1: borrowed, valid until the
 * request is answered; for socket options such as keepalive on a long-poll, never for I/O. */
int httpd_req_fd(const struct httpd_req *r);
/* The client's address as text ("127.0.0.1", "unix"). */
const char *httpd_req_peer(const struct httpd_req *r);
/* The route the request matched, or NULL (none matched). */
const struct httpd_route *httpd_req_route(const struct httpd_req *r);
/* Per-request slot for the handler's own data (e.g. the authenticated caller). */
/* free_fn (may be NULL) runs when the request is done. */
void httpd_req_set_data(struct httpd_req *r, void *data, void (*free_fn)(void *));
void *httpd_req_data(const struct httpd_req *r);
/* One more header on this request's answer (name and value copied; at most 2 per request):
 * call before answering. 0, or a negative code. */
int httpd_req_add_header(struct httpd_req *r, const char *name, const char *value);
/* Parses the body as JSON with the configured depth limit. On failure it has already answered
 * bad_json and returns a negative code. */
int httpd_req_json(struct httpd_req *r, json_t **out);
/* httpd_req_json, then the body checked against its route's table of fields (the form plugin
 * ops use: struct outpost_arg, NULL-terminated; wire_check_named): an object, every field
 * known, of its type, the required ones present. A route whose table is empty takes an empty
 * body as {}. On failure it has answered (bad_json, or bad_args naming the field) and returns
 * a negative code; else *out is the body (caller's reference). */
struct outpost_arg;
int httpd_req_fields(struct httpd_req *r, const struct outpost_arg *fields, json_t **out);

/* Exactly one answer per request, on the loop thread. */
void httpd_respond_json(struct httpd_req *r, unsigned status, json_t *body); /* steals body */
void httpd_respond_ok(struct httpd_req *r, json_t *result);                  /* steals */
void httpd_respond_error(struct httpd_req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* text is copied. */
void httpd_respond_text(struct httpd_req *r, unsigned status, const char *content_type,
                        const char *text, size_t len);

/* Whether host ("name", "name:port", "[v6]", "[v6]:port", or a bare IPv6 address) names the
 * loopback: localhost, 127.0.0.0/8 or ::1. */
int httpd_host_is_loopback(const char *host);

#endif
