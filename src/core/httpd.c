/* HTTP server: see httpd.h. One MHD daemon per listener (TCP and/or unix socket), each in
 * external-epoll mode: its epoll fd sits on our loop and a loop timer follows MHD's timeout. */
#include "httpd.h"
#include "buf.h"
#include "clk.h"
#include "err.h"
#include "loop.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HTTPD_MAX_LISTENERS 2
/* Bodies up to this size are read (and dropped) before an early refusal is sent. */
#define HTTPD_DRAIN_MAX (64ull << 20)
#define HTTPD_EXTRA_HEADERS 2
#define HTTPD_UNAUTH_BUCKETS 1024
/* After a flood: memory goes back to the system once this many connections have closed since
 * the last time (glibc keeps freed heap otherwise: the hub stayed at 65 MB after ~4,000
 * garbage connections had closed). */
#define HTTPD_TRIM_AFTER 256

/* A TCP connection's own state (MHD's socket context). */
struct httpd_conn {
	char peer[INET6_ADDRSTRLEN]; /* "" on the unix socket */
	int authed;
	unsigned requests;              /* begun on it so far */
	int admitted;                   /* httpd_req_admit */
	int64_t accepted_ms;            /* monotonic */
	struct httpd_conn *prev, *next; /* in h->unread while no request has begun on it */
};

/* Unauthenticated TCP connections of one client address. */
struct httpd_unauth {
	char peer[INET6_ADDRSTRLEN];
	unsigned n;
	struct httpd_unauth *next;
};

struct httpd_listener {
	struct httpd *h;
	struct MHD_Daemon *d;
	struct loop_fd *fdh;
	struct loop_timer *timer;
	int is_unix;
	int fd;
	int resumed; /* connections resumed since the last run: the next one comes at once */
};

struct httpd {
	struct httpd_config cfg;
	struct loop *loop;
	struct httpd_listener ls[HTTPD_MAX_LISTENERS];
	int nls;
	unsigned port;
	char *unix_path;
	struct httpd_req *pending; /* suspended requests, for stop */
	size_t npending;
	int in_mhd; /* depth of MHD callbacks on the stack */
	struct httpd_unauth *unauth[HTTPD_UNAUTH_BUCKETS];
	size_t nconn;               /* connections open */
	size_t closed;              /* closed since the last malloc_trim */
	unsigned long long closes;  /* closed ever */
	unsigned long long refused; /* by unauth_per_ip_limit */
	/* Connections accepted whose first request has not begun (TLS handshake, headers on
	 * their way, or unread in the socket), oldest first: what the hub has not read yet. */
	struct httpd_conn *unread, *unread_tail;
	size_t nunread;
	unsigned long long admit_refused; /* by admit_unread */
	int64_t admit_refused_ms;         /* the last of them (monotonic), or 0 */
};

struct httpd_req {
	struct httpd_listener *l;
	struct MHD_Connection *conn;
	const struct httpd_route *route;
	const char *method, *path, *tail;
	char *args[HTTPD_MAX_ARGS]; /* the path's segments the route's '*'s matched */
	char *uri;                  /* the request target as sent, query included */
	int routed;                 /* the first access call happened */
	int headers_phase;          /* inside the first access call: answers are parked */
	struct buf body;
	size_t limit;
	int too_large;
	int oom;     /* the body did not fit in memory */
	int started; /* the handler ran */
	int suspended;
	int answered;
	int gone;                  /* MHD completed the connection */
	struct MHD_Response *resp; /* a late answer waiting to be queued */
	unsigned status;
	void *data;
	void (*data_free)(void *);
	int64_t start_ms;
	int first;                           /* the first request of its connection */
	char *xhdr[2 * HTTPD_EXTRA_HEADERS]; /* name, value: added to the answer */
	char peer[INET6_ADDRSTRLEN];
	struct httpd_req *prev, *next; /* in h->pending while suspended */
};

static void listener_run(struct httpd_listener *l);
static void listener_arm(struct httpd_listener *l, int again);

static void addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	out[0] = '\0';
	if (!sa)
		return;
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
		          (socklen_t)outlen);
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
		          (socklen_t)outlen);
}

static struct httpd_unauth **unauth_slot(struct httpd *h, const char *peer)
{
	uint32_t x = 2166136261u;
	struct httpd_unauth **p;

	for (const char *c = peer; *c; c++)
		x = (x ^ (unsigned char)*c) * 16777619u;
	p = &h->unauth[x % HTTPD_UNAUTH_BUCKETS];
	while (*p && strcmp((*p)->peer, peer) != 0)
		p = &(*p)->next;
	return p;
}

static void unauth_add(struct httpd *h, const char *peer, int delta)
{
	struct httpd_unauth **p = unauth_slot(h, peer), *u = *p;

	if (!u) {
		if (delta < 0 || !(u = calloc(1, sizeof(*u))))
			return;
		snprintf(u->peer, sizeof(u->peer), "%s", peer);
		*p = u;
	}
	u->n = delta < 0 && u->n == 0 ? 0 : u->n + (unsigned)delta;
	if (u->n == 0) {
		*p = u->next;
		free(u);
	}
}

/* The idle timeout of an authenticated connection: the daemon's own. */
static unsigned httpd_idle_s(const struct httpd *h)
{
	return h->cfg.conn_timeout_s ? h->cfg.conn_timeout_s : 30;
}

/* Before MHD makes a connection: refused when its address already holds its share of
 * connections nobody has authenticated. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct httpd_listener *l = cls;
	struct httpd *h = l->h;
	char peer[INET6_ADDRSTRLEN];
	struct httpd_unauth *u;

	(void)addrlen;
	if (h->cfg.admit_unread && h->nunread >= h->cfg.admit_unread) {
		/* A storm of connections (a fleet after a hub restart): the ones already accepted
		 * finish their handshakes first; this one is closed at once, cheaply, and its
		 * agent comes back after its backoff with jitter. */
		h->admit_refused++;
		h->admit_refused_ms = clk_mono_ms();
		return MHD_NO;
	}
	if (l->is_unix || !h->cfg.unauth_per_ip_limit)
		return MHD_YES;
	addr_text(addr, peer, sizeof(peer));
	u = *unauth_slot(h, peer);
	if (u && u->n >= h->cfg.unauth_per_ip_limit) {
		h->refused++;
		return MHD_NO;
	}
	return MHD_YES;
}

static void unread_unlink(struct httpd *h, struct httpd_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		h->unread = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		h->unread_tail = c->prev;
	c->prev = c->next = NULL;
	h->nunread--;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct httpd_listener *l = cls;
	struct httpd *h = l->h;
	struct httpd_conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		h->nconn++;
		c = calloc(1, sizeof(*c));
		if (c && !l->is_unix && ci)
			addr_text(ci->client_addr, c->peer, sizeof(c->peer));
		if (c && c->peer[0])
			unauth_add(h, c->peer, 1);
		/* Only a connection nobody has authenticated gets the short idle timeout, as
		 * its own: libmicrohttpd walks every connection of a timeout other than the
		 * daemon's at each run (its "manual" list, thought short), and with every
		 * agent's connection on it a hub of 10,000 spent its loop walking them. */
		if (c && !l->is_unix && h->cfg.unauth_timeout_s &&
		    h->cfg.unauth_timeout_s < httpd_idle_s(h))
			MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
			                          h->cfg.unauth_timeout_s);
		if (c) {
			c->accepted_ms = clk_mono_ms();
			c->prev = h->unread_tail;
			if (h->unread_tail)
				h->unread_tail->next = c;
			else
				h->unread = c;
			h->unread_tail = c;
			h->nunread++;
		}
		*socket_context = c;
		return;
	}
	h->nconn--;
	h->closed++;
	h->closes++;
	if (c && c->peer[0] && !c->authed)
		unauth_add(h, c->peer, -1);
	if (c && !c->requests)
		unread_unlink(h, c);
	free(c);
	*socket_context = NULL;
}

/* A request on conn got through auth for a route that needs a role: the connection is no
 * longer bounded as unauthenticated, and gets the normal idle timeout. */
static void conn_authed(struct httpd *h, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct httpd_conn *c = ci ? ci->socket_context : NULL;

	if (!c || c->authed)
		return;
	c->authed = 1;
	if (c->peer[0])
		unauth_add(h, c->peer, -1);
	if (h->cfg.unauth_timeout_s && h->cfg.unauth_timeout_s < httpd_idle_s(h))
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, httpd_idle_s(h));
}

static void req_free(struct httpd_req *r)
{
	if (r->data_free)
		r->data_free(r->data);
	free(r->uri);
	for (size_t i = 0; i < HTTPD_MAX_ARGS; i++)
		free(r->args[i]);
	for (size_t i = 0; i < 2 * HTTPD_EXTRA_HEADERS; i++)
		free(r->xhdr[i]);
	buf_free(&r->body);
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r);
}

static void pending_unlink(struct httpd *h, struct httpd_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (h->pending == r)
		h->pending = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	h->npending--;
}

/* Whether path matches pattern: literally, except that a '*' segment of the pattern matches
 * exactly one segment of the path (one or more bytes, no '/'). Each matched segment's place
 * goes to args (up to HTTPD_MAX_ARGS). */
static int route_match(const char *pat, const char *path, const char *args[HTTPD_MAX_ARGS],
                       size_t lens[HTTPD_MAX_ARGS], int *nargs)
{
	const char *p0 = pat;

	*nargs = 0;
	while (*pat) {
		if (*pat == '*' && (pat == p0 || pat[-1] == '/') && (pat[1] == '/' || !pat[1])) {
			size_t n = strcspn(path, "/");
			if (n == 0 || *nargs == HTTPD_MAX_ARGS)
				return 0;
			args[*nargs] = path;
			lens[(*nargs)++] = n;
			path += n;
			pat++;
			continue;
		}
		if (*pat++ != *path++)
			return 0;
	}
	return *path == '\0';
}

static const struct httpd_route *route_find(struct httpd_req *r, const struct httpd *h,
                                            const char *method, const char *path, int *path_known)
{
	const char *args[HTTPD_MAX_ARGS];
	size_t lens[HTTPD_MAX_ARGS];
	int nargs;

	*path_known = 0;
	for (size_t i = 0; i < h->cfg.nroutes; i++) {
		const struct httpd_route *rt = &h->cfg.routes[i];
		if (!route_match(rt->path, path, args, lens, &nargs))
			continue;
		*path_known = 1;
		if (strcmp(method, rt->method) != 0)
			continue;
		r->tail = nargs ? args[0] : "";
		for (int k = 0; k < nargs; k++)
			if (!(r->args[k] = strndup(args[k], lens[k])))
				return NULL; /* out of memory: answered as an unknown route */
		return rt;
	}
	return NULL;
}

static void req_queue(struct httpd_req *r, unsigned status, struct MHD_Response *resp)
{
	r->answered = 1;
	for (size_t i = 0; i + 1 < 2 * HTTPD_EXTRA_HEADERS && r->xhdr[i]; i += 2)
		MHD_add_response_header(resp, r->xhdr[i], r->xhdr[i + 1]);
	if (r->l && r->l->h->cfg.on_answer)
		r->l->h->cfg.on_answer(r->l->h->cfg.ctx, r, status, clk_mono_ms() - r->start_ms);
	if (r->gone) {
		/* MHD already let go of the connection: we are the last owner. */
		if (r->suspended)
			pending_unlink(r->l->h, r);
		MHD_destroy_response(resp);
		req_free(r);
		return;
	}
	if (r->headers_phase) {
		/* Answered before the body arrived: MHD would close the connection while the
		 * client is still sending (which it may see as a reset, not our answer), so the
		 * answer waits, the body is read and dropped, and it goes out at the end. */
		r->resp = resp;
		r->status = status;
		return;
	}
	if (!r->suspended) {
		/* Still inside the access handler's call chain: queue now. */
		MHD_queue_response(r->conn, status, resp);
		MHD_destroy_response(resp);
		return;
	}
	r->resp = resp;
	r->status = status;
	/* The answer goes when the listener's timer fires, at once, with every other answered
	 * before it: not a run per answer, as each run that resumes walks every suspended
	 * connection (every held poll), so a fan-out's 10,000 answers cost 10,000 walks of
	 * 10,000. */
	MHD_resume_connection(r->conn);
	r->suspended = 0;
	pending_unlink(r->l->h, r);
	r->l->resumed = 1;
	if (!r->l->h->in_mhd)
		listener_arm(r->l, 1);
}

void httpd_respond_text(struct httpd_req *r, unsigned status, const char *content_type,
                        const char *text, size_t len)
{
	struct MHD_Response *resp;

	if (r->answered)
		return;
	resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return;
	MHD_add_response_header(resp, "Content-Type", content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	req_queue(r, status, resp);
}

void httpd_respond_json(struct httpd_req *r, unsigned status, json_t *body)
{
	struct MHD_Response *resp;
	char *text = body ? wire_dump(body) : NULL;

	json_decref(body);
	if (r->answered) {
		free(text);
		return;
	}
	if (!text) {
		status = 500;
		text = strdup("{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of "
		              "memory\"}}");
		if (!text)
			return;
	}
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	req_queue(r, status, resp);
}

void httpd_respond_ok(struct httpd_req *r, json_t *result)
{
	httpd_respond_json(r, 200, wire_ok(result));
}

void httpd_respond_error(struct httpd_req *r, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	httpd_respond_json(r, err_http_status(code), wire_error(code, msg));
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
	struct httpd_listener *l = cls;
	struct httpd *h = l->h;
	struct httpd_req *r = *con_cls;
	int known;

	(void)version;
	if (!r)
		return MHD_NO; /* on_uri makes it; only out of memory leaves it NULL */
	if (!r->routed) {
		const union MHD_ConnectionInfo *ci;
		const char *cl;
		r->routed = 1;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		/* A body declared huge is not drained: its answer goes at once and MHD closes. */
		r->headers_phase = !(cl && strtoull(cl, NULL, 10) > HTTPD_DRAIN_MAX);
		r->l = l;
		r->conn = conn;
		r->method = method;
		r->path = url;
		r->route = route_find(r, h, method, url, &known);
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (l->is_unix || !ci || !ci->client_addr)
			snprintf(r->peer, sizeof(r->peer), "unix");
		else
			addr_text(ci->client_addr, r->peer, sizeof(r->peer));
		if (!r->route) {
			if (known)
				httpd_respond_error(r, OUTPOST_E_NOT_FOUND,
				                    "method %s not allowed on %s", method, url);
			else
				httpd_respond_error(r, OUTPOST_E_NOT_FOUND, "no such endpoint: %s",
				                    url);
			r->headers_phase = 0;
			return MHD_YES;
		}
		r->limit = r->route->body_limit;
		if (h->cfg.auth_headers && h->cfg.auth_headers(h->cfg.ctx, r, r->route->role) < 0) {
			if (!r->answered)
				httpd_respond_error(r, OUTPOST_E_FORBIDDEN, "not allowed");
			r->headers_phase = 0;
			return MHD_YES;
		}
		if (cl && strtoull(cl, NULL, 10) > r->limit) {
			r->too_large = 1;
			httpd_respond_error(
			    r, OUTPOST_E_TOO_LARGE,
			    "request body of %s bytes is over this endpoint's limit "
			    "of %zu",
			    cl, r->limit);
		}
		r->headers_phase = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		/* Counted as it arrives: MHD has no body limit of its own. MHD refuses a response
		 * queued while the body is arriving, so an oversized body (chunked, without a
		 * Content-Length) is dropped as it comes and answered once it has all arrived. */
		if (!r->answered && !r->too_large && !r->oom) {
			if (r->body.len + *upload_size > r->limit) {
				r->too_large = 1;
				buf_free(&r->body);
			} else if (buf_append(&r->body, upload, *upload_size) < 0) {
				r->oom = 1;
				buf_free(&r->body);
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->resp) {
		/* Resumed with a late answer. */
		enum MHD_Result ok = MHD_queue_response(conn, r->status, r->resp);
		MHD_destroy_response(r->resp);
		r->resp = NULL;
		return ok;
	}
	if (!r->answered && r->too_large) {
		httpd_respond_error(r, OUTPOST_E_TOO_LARGE,
		                    "request body is over this endpoint's limit of %zu bytes",
		                    r->limit);
		return MHD_YES;
	}
	if (!r->answered && r->oom) {
		httpd_respond_error(r, OUTPOST_E_INTERNAL, "out of memory");
		return MHD_YES;
	}
	if (r->answered || r->started)
		return MHD_YES;
	r->started = 1;
	if (h->cfg.auth && h->cfg.auth(h->cfg.ctx, r, r->route->role) < 0) {
		if (!r->answered)
			httpd_respond_error(r, OUTPOST_E_FORBIDDEN, "not allowed");
		return MHD_YES;
	}
	if (r->route->role)
		conn_authed(h, conn);
	h->in_mhd++;
	r->route->fn(h->cfg.ctx, r);
	h->in_mhd--;
	if (!r->answered) {
		MHD_suspend_connection(conn);
		r->suspended = 1;
		r->next = h->pending;
		if (h->pending)
			h->pending->prev = r;
		h->pending = r;
		h->npending++;
	}
	return MHD_YES;
}

/* MHD calls this first with the raw request target; what it returns becomes the request's
 * context, so the target (query included) is kept for signatures. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct httpd_listener *l = cls;
	struct httpd_req *r = calloc(1, sizeof(*r));
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct httpd_conn *c = ci ? ci->socket_context : NULL;

	if (c && c->requests++ == 0)
		unread_unlink(l->h, c);
	if (r && !(r->uri = strdup(uri ? uri : ""))) {
		free(r);
		r = NULL;
	}
	if (r) {
		r->start_ms = clk_mono_ms();
		r->first = !c || c->requests == 1;
	}
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct httpd_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->suspended) {
		/* Only at daemon stop; the owner of the answer still holds r. */
		r->gone = 1;
		return;
	}
	if (!r->answered && r->started) {
		/* The handler still owes an answer (it holds r): it frees on answering. */
		r->gone = 1;
		return;
	}
	req_free(r);
}

/* MHD's next deadline (a connection's idle timeout), at most a second away while it has one.
 * With no connection it has none: new and resumed connections (MHD's inter-thread channel) wake
 * its epoll fd, so an idle server sleeps HTTPD_IDLE_MS instead of waking every second, which
 * cost an idle agent half the CPU of sampling the host's metrics (docs/BENCHMARKS.md). */
#define HTTPD_IDLE_MS 60000

static void listener_arm(struct httpd_listener *l, int again)
{
	MHD_UNSIGNED_LONG_LONG t;
	int64_t ms = HTTPD_IDLE_MS;

	if (again)
		ms = 0;
	else if (MHD_get_timeout(l->d, &t) == MHD_YES)
		ms = t > 1000 ? 1000 : (int64_t)t;
	loop_timer_reset(l->h->loop, l->timer, ms);
}

static void listener_run(struct httpd_listener *l)
{
	struct httpd *h = l->h;
	unsigned long long closes = h->closes;

	l->resumed = 0;
	h->in_mhd++;
	MHD_run(l->d);
	h->in_mhd--;
	if (h->closed >= HTTPD_TRIM_AFTER && h->nconn < h->closed) {
		/* Many connections went away (a flood ended): give their memory back. */
		h->closed = 0;
		malloc_trim(0);
	}
	/* At its connection limit MHD takes the listening socket out of its epoll set, and puts
	 * it back only at the start of its next run: after connections closed, that run must
	 * come at once, not when the idle timer fires (the agent's API stalled up to a minute
	 * after a flood that had filled its 256 slots). */
	listener_arm(l, h->closes != closes || l->resumed);
}

static void on_epoll(void *arg, uint32_t events)
{
	(void)events;
	listener_run(arg);
}

static void on_timer(void *arg)
{
	listener_run(arg);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct httpd *h = cls;
	log_vmsg(h->cfg.log, OUTPOST_LOG_DEBUG, "http", fmt, ap);
}

static int bind_tcp(const char *listen_addr, unsigned *port, char *msg, size_t msglen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon = strrchr(listen_addr, ':');
	int fd = -1, one = 1;
	size_t hl;

	if (!colon || colon == listen_addr || !colon[1]) {
		snprintf(msg, msglen, "listen address '%s' must be HOST:PORT", listen_addr);
		return -1;
	}
	hl = (size_t)(colon - listen_addr);
	if (hl >= sizeof(host)) {
		snprintf(msg, msglen, "listen address too long");
		return -1;
	}
	memcpy(host, listen_addr, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
		snprintf(msg, msglen, "listen address '%s': not a numeric HOST:PORT", listen_addr);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0)
		goto fail;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                       : ((struct sockaddr_in *)&ss)->sin_port);
	}
	freeaddrinfo(ai);
	return fd;
fail:
	snprintf(msg, msglen, "cannot listen on %s: %s", listen_addr, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

static int bind_unix(const char *path, unsigned mode, long gid, char *msg, size_t msglen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(msg, msglen, "unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* Only a stale socket is replaced, never another kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(msg, msglen, "%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot listen on %s: %s", path, strerror(errno));
		return -1;
	}
	/* Born 0600 whatever the umask, then widened to what was asked: no window in which
	 * someone else could connect. (Daemons bind before their threads start.) */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || (gid > 0 && chown(path, (uid_t)-1, (gid_t)gid) < 0) ||
	    chmod(path, mode ? mode : 0600) < 0 || listen(fd, 1024) < 0) {
		snprintf(msg, msglen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int listener_start(struct httpd *h, int fd, int is_unix, char *msg, size_t msglen)
{
	struct httpd_listener *l = &h->ls[h->nls];
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem opts[18];
	unsigned idle = httpd_idle_s(h);
	int n = 0;

	l->h = h;
	l->fd = fd;
	l->is_unix = is_unix;
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
	                                    h->cfg.conn_limit ? h->cfg.conn_limit : 1024, NULL};
	/* The daemon's timeout is the authenticated connections' (most of them: the agents');
	 * each new TCP connection gets the unauthenticated one's deadline as its own
	 * (on_connection), which conn_authed lifts. */
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, idle, NULL};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, l};
	opts[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (intptr_t)(h->cfg.conn_memory ? h->cfg.conn_memory : 32 * 1024), NULL};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, l};
	if (!is_unix && h->cfg.per_ip_limit)
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		                                    h->cfg.per_ip_limit, NULL};
	if (!is_unix && h->cfg.tls_cert_pem && h->cfg.tls_key_pem) {
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
		                                    (void *)h->cfg.tls_cert_pem};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
		                                    (void *)h->cfg.tls_key_pem};
	}
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	l->d = MHD_start_daemon(flags, 0, on_accept, l, on_access, l, MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
	if (!l->d) {
		snprintf(msg, msglen, "cannot start the HTTP server");
		close(fd);
		return -1;
	}
	di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || loop_fd_add(h->loop, di->epoll_fd, EPOLLIN, on_epoll, l, &l->fdh) < 0 ||
	    loop_timer_add(h->loop, 1000, 1000, on_timer, l, &l->timer) < 0) {
		snprintf(msg, msglen, "cannot watch the HTTP server");
		MHD_stop_daemon(l->d);
		close(fd);
		return -1;
	}
	listener_arm(l, 0);
	h->nls++;
	return 0;
}

int httpd_start(struct loop *loop, const struct httpd_config *cfg, struct httpd **out, char *msg,
                size_t msglen)
{
	struct httpd *h = calloc(1, sizeof(*h));
	int fd;

	*out = NULL;
	if (!h)
		return OUTPOST_E_INTERNAL;
	h->cfg = *cfg;
	h->loop = loop;
	if (!h->cfg.max_depth)
		h->cfg.max_depth = WIRE_MAX_DEPTH_DEFAULT;
	if (cfg->listen) {
		fd = bind_tcp(cfg->listen, &h->port, msg, msglen);
		if (fd < 0 || listener_start(h, fd, 0, msg, msglen) < 0)
			goto fail;
	}
	if (cfg->unix_path) {
		fd = bind_unix(cfg->unix_path, cfg->unix_mode, cfg->unix_gid, msg, msglen);
		if (fd < 0 || listener_start(h, fd, 1, msg, msglen) < 0)
			goto fail;
		h->unix_path = strdup(cfg->unix_path);
	}
	if (!h->nls) {
		snprintf(msg, msglen, "nothing to listen on: set listen or socket");
		goto fail;
	}
	*out = h;
	return 0;
fail:
	httpd_stop(h);
	return OUTPOST_E_UNAVAILABLE;
}

unsigned httpd_port(const struct httpd *h)
{
	return h->port;
}

void httpd_conn_stats(const struct httpd *h, size_t *open, unsigned long long *refused)
{
	*open = h->nconn;
	*refused = h->refused;
}

void httpd_backlog(const struct httpd *h, struct httpd_backlog *out)
{
	memset(out, 0, sizeof(*out));
	if (!h)
		return;
	out->unread = h->nunread;
	if (h->unread)
		out->oldest_unread_ms = clk_mono_ms() - h->unread->accepted_ms;
	out->admit_refused = h->admit_refused;
	out->admit_refused_ms = h->admit_refused_ms;
	for (int i = 0; i < h->nls; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		/* On a listening socket Linux reports its accept queue as tcpi_unacked. */
		if (!h->ls[i].is_unix &&
		    getsockopt(h->ls[i].fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
			out->accept_queue += ti.tcpi_unacked;
	}
}

static struct httpd_conn *req_conn(const struct httpd_req *r)
{
	const union MHD_ConnectionInfo *ci =
	    r->conn ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;

	return ci ? ci->socket_context : NULL;
}

int httpd_req_admitted(const struct httpd_req *r)
{
	struct httpd_conn *c = req_conn(r);

	return c ? c->admitted : !r->first;
}

void httpd_req_admit(struct httpd_req *r)
{
	struct httpd_conn *c = req_conn(r);

	if (c)
		c->admitted = 1;
}

void httpd_req_keep(struct httpd_req *r)
{
	struct httpd_conn *c = req_conn(r);
	struct httpd *h = r->l ? r->l->h : NULL;

	/* The daemon's own timeout: the connection moves to libmicrohttpd's sorted list. */
	if (c && h && !c->authed && h->cfg.unauth_timeout_s &&
	    h->cfg.unauth_timeout_s < httpd_idle_s(h))
		MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, httpd_idle_s(h));
}

size_t httpd_pending(const struct httpd *h)
{
	return h->npending;
}

void httpd_quiesce(struct httpd *h)
{
	for (int i = 0; i < h->nls; i++) {
		int fd = (int)MHD_quiesce_daemon(h->ls[i].d);
		(void)fd; /* MHD returns our listen socket; closed at stop */
	}
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	/* MHD refuses to stop with suspended connections: answer them first. */
	while (h->pending)
		httpd_respond_error(h->pending, OUTPOST_E_UNAVAILABLE, "server is shutting down");
	/* Those answers go out now (a resumed connection is sent at the next run); a request
	 * that run reads may be suspended by its handler: answered too, not sent. */
	for (int i = 0; i < h->nls; i++)
		listener_run(&h->ls[i]);
	while (h->pending)
		httpd_respond_error(h->pending, OUTPOST_E_UNAVAILABLE, "server is shutting down");
	for (int i = 0; i < h->nls; i++) {
		struct httpd_listener *l = &h->ls[i];
		loop_fd_del(h->loop, l->fdh);
		loop_timer_del(h->loop, l->timer);
		MHD_stop_daemon(l->d);
		close(l->fd);
	}
	if (h->unix_path) {
		unlink(h->unix_path);
		free(h->unix_path);
	}
	for (size_t i = 0; i < HTTPD_UNAUTH_BUCKETS; i++) {
		while (h->unauth[i]) {
			struct httpd_unauth *u = h->unauth[i];
			h->unauth[i] = u->next;
			free(u);
		}
	}
	free(h);
}

const char *httpd_req_method(const struct httpd_req *r)
{
	return r->method;
}

const char *httpd_req_path(const struct httpd_req *r)
{
	return r->path;
}

const char *httpd_req_uri(const struct httpd_req *r)
{
	return r->uri ? r->uri : r->path;
}

const char *httpd_req_tail(const struct httpd_req *r)
{
	return r->tail ? r->tail : "";
}

const char *httpd_req_arg(const struct httpd_req *r, unsigned i)
{
	return i < HTTPD_MAX_ARGS && r->args[i] ? r->args[i] : "";
}

const char *httpd_req_body(const struct httpd_req *r, size_t *len)
{
	*len = r->body.len;
	return r->body.data ? r->body.data : "";
}

const char *httpd_req_header(const struct httpd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_req_query(const struct httpd_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

struct query_all {
	const char *key;
	const char **vals;
	size_t max, n;
};

static enum MHD_Result on_query_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct query_all *qa = cls;

	(void)kind;
	if (key && strcmp(key, qa->key) == 0) {
		if (qa->n < qa->max)
			qa->vals[qa->n] = value ? value : "";
		qa->n++;
	}
	return MHD_YES;
}

size_t httpd_req_query_all(const struct httpd_req *r, const char *key, const char **vals,
                           size_t max)
{
	struct query_all qa = {key, vals, max, 0};

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, on_query_value, &qa);
	return qa.n;
}

struct query_unknown {
	const char *const *known;
	const char *found;
};

static enum MHD_Result on_query_key(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
	struct query_unknown *qu = cls;

	(void)kind;
	(void)value;
	for (size_t i = 0; key && qu->known[i]; i++)
		if (strcmp(key, qu->known[i]) == 0)
			return MHD_YES;
	qu->found = key ? key : "";
	return MHD_NO;
}

const char *httpd_req_query_unknown(const struct httpd_req *r, const char *const *known)
{
	struct query_unknown qu = {known, NULL};

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, on_query_key, &qu);
	return qu.found;
}

int httpd_req_fd(const struct httpd_req *r)
{
	const union MHD_ConnectionInfo *ci =
	    r->conn && !r->gone
	        ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD)
	        : NULL;

	return ci ? ci->connect_fd : -1;
}

const char *httpd_req_peer(const struct httpd_req *r)
{
	return r->peer;
}

const struct httpd_route *httpd_req_route(const struct httpd_req *r)
{
	return r->route;
}

void httpd_req_set_data(struct httpd_req *r, void *data, void (*free_fn)(void *))
{
	r->data = data;
	r->data_free = free_fn;
}

int httpd_req_add_header(struct httpd_req *r, const char *name, const char *value)
{
	for (size_t i = 0; i + 1 < 2 * HTTPD_EXTRA_HEADERS; i += 2) {
		if (r->xhdr[i])
			continue;
		r->xhdr[i] = strdup(name);
		r->xhdr[i + 1] = strdup(value);
		if (!r->xhdr[i] || !r->xhdr[i + 1]) {
			free(r->xhdr[i]);
			free(r->xhdr[i + 1]);
			r->xhdr[i] = r->xhdr[i + 1] = NULL;
			return OUTPOST_E_INTERNAL;
		}
		return 0;
	}
	return OUTPOST_E_TOO_LARGE;
}

void *httpd_req_data(const struct httpd_req *r)
{
	return r->data;
}

int httpd_req_json(struct httpd_req *r, json_t **out)
{
	char msg[256];
	int rc = wire_parse(r->body.data ? r->body.data : "", r->body.len, r->l->h->cfg.max_depth,
	                    out, msg, sizeof(msg));
	if (rc < 0)
		httpd_respond_error(r, rc, "%s", msg);
	return rc;
}

int httpd_req_fields(struct httpd_req *r, const struct outpost_arg *fields, json_t **out)
{
	char msg[256];
	int rc;

	*out = NULL;
	if (r->body.len == 0 && (!fields || !fields->name)) {
		*out = json_object();
		return *out ? 0 : OUTPOST_E_INTERNAL;
	}
	if ((rc = httpd_req_json(r, out)) < 0)
		return rc;
	if ((rc = wire_check_named(fields, *out, "field", msg, sizeof(msg))) < 0) {
		httpd_respond_error(r, rc, "%s", msg);
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

int httpd_host_is_loopback(const char *host)
{
	char name[256];
	const char *end, *colon;
	struct in_addr a4;
	struct in6_addr a6;
	size_t n;

	if (!host)
		return 0;
	if (host[0] == '[') {
		/* [v6] or [v6]:port */
		end = strchr(host, ']');
		if (!end || (end[1] && end[1] != ':'))
			return 0;
		host++;
		n = (size_t)(end - host);
	} else {
		colon = strchr(host, ':');
		/* One colon: HOST:PORT; more: a bare IPv6 address. */
		n = colon && !strchr(colon + 1, ':') ? (size_t)(colon - host) : strlen(host);
	}
	if (n == 0 || n >= sizeof(name))
		return 0;
	memcpy(name, host, n);
	name[n] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
