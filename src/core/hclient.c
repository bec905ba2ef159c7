/* HTTP/1.1 client on our loop with GnuTLS: see hclient.h.
 *
 * Every callback runs from its request's own timer (reset to 0 when the request ends), never
 * from inside connection code: so a callback may start, cancel or free anything, and the
 * connection code never finds the ground gone from under it. */
#include "hclient.h"
#include "clk.h"
#include "buf.h"
#include "hresp.h"
#include "loop.h"
#include "phase.h"
#include "sec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HC_READ_CHUNK 16384
#define HC_DEF_CONNS 2
#define HC_DEF_MAX_RESPONSE (8u << 20)
#define HC_DEF_CONNECT_MS 10000
#define HC_DEF_IDLE_MS 50000
#define HC_DEF_TIMEOUT_MS 30000

enum hc_cstate { HC_CONNECTING, HC_HANDSHAKE, HC_IDLE, HC_SEND, HC_RECV };
enum hc_rstate { HC_PENDING, HC_ACTIVE, HC_DONE };

struct hc_conn;

struct hclient_req {
	struct hclient *c;
	struct hclient_req *prev, *next; /* c->reqs, in the order they came */
	enum hc_rstate state;
	struct hc_conn *conn;     /* ACTIVE: the connection carrying it (maybe still opening) */
	struct loop_timer *timer; /* the deadline; reset to 0 to deliver the end */
	hclient_done_fn fn;
	void *arg;
	unsigned flags;
	int retried;
	struct buf out; /* the request on the wire */
	size_t sent;
	struct hresp ans; /* the answer */
	int err;
	char errmsg[300];
	char peer_sha256[65];
	char *peer_pem;
	struct phase_mark rx; /* the answer's first byte was read in a call begun then */
	int rx_set;
};

struct hc_conn {
	struct hclient *c;
	struct hc_conn *next;
	enum hc_cstate state;
	int64_t idle_since_ms; /* monotonic: when it last became idle */
	int fd;
	struct loop_fd *h;
	uint32_t events;
	gnutls_session_t tls;
	struct hclient_req *req;
	struct loop_timer *timer; /* connect deadline, then idle deadline */
	size_t addr;              /* which address of c->addrs is being tried */
	char last_err[160];       /* why the previous address failed */
	struct buf in;            /* bytes read, not parsed yet from in_off */
	size_t in_off;
	int reused;         /* carried an answer before */
	int got;            /* a byte of the current answer came */
	int no_reuse;       /* close once the current request is done */
	unsigned char *der; /* the server certificate */
	size_t der_len;
	char peer_sha256[65];
};

struct hclient {
	struct loop *loop;
	int https;
	char *host, *tls_name, *host_hdr, *user_agent;
	unsigned port;
	int verify, verify_name, have_pin;
	char pin[65];
	gnutls_certificate_credentials_t cred;
	struct addrinfo *addrs; /* resolved once, dropped when none answers */
	unsigned max_conns, nconns;
	size_t max_response;
	int64_t connect_ms, idle_ms;
	int have_source; /* bind connections to source (hclient_config.source_addr) */
	struct sockaddr_in source;
	struct hc_conn *conns;
	struct hclient_req *reqs, *reqs_tail;
	int dispatching, again;
};

static void hc_dispatch(struct hclient *c);
static void hc_on_io(void *arg, uint32_t events);

/* ---- requests ---- */

static void hc_req_unlink(struct hclient_req *r)
{
	struct hclient *c = r->c;

	if (r->prev)
		r->prev->next = r->next;
	else if (c->reqs == r)
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else if (c->reqs_tail == r)
		c->reqs_tail = r->prev;
	r->prev = r->next = NULL;
}

static void hc_req_free(struct hclient_req *r)
{
	buf_free(&r->out);
	hresp_free(&r->ans);
	free(r->peer_pem);
	free(r);
}

/* Forgets what an earlier attempt read of the answer. */
static void hc_req_rewind(struct hclient_req *r)
{
	r->sent = 0;
	r->rx_set = 0;
	hresp_reset(&r->ans);
}

/* Takes what the connection knows of the server's certificate. */
static void hc_req_peer(struct hclient_req *r, const struct hc_conn *k)
{
	gnutls_datum_t der, pem = {NULL, 0};

	memcpy(r->peer_sha256, k->peer_sha256, sizeof(r->peer_sha256));
	if (!(r->flags & HCLIENT_PEER_CERT) || !k->der || r->peer_pem)
		return;
	der.data = k->der;
	der.size = (unsigned)k->der_len;
	if (gnutls_pem_base64_encode2("CERTIFICATE", &der, &pem) >= 0) {
		r->peer_pem = strndup((const char *)pem.data, pem.size);
		gnutls_free(pem.data);
	}
}

/* Ends a request: its callback runs from its timer, at the top of the loop. */
static void hc_req_end(struct hclient_req *r, struct hc_conn *k, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void hc_req_end(struct hclient_req *r, struct hc_conn *k, int err, const char *fmt, ...)
{
	va_list ap;

	if (k)
		hc_req_peer(r, k);
	r->conn = NULL;
	r->state = HC_DONE;
	r->err = err;
	if (err && fmt) {
		va_start(ap, fmt);
		vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
		va_end(ap);
	}
	loop_timer_reset(r->c->loop, r->timer, 0);
}

/* ---- connections ---- */

static void hc_want(struct hc_conn *k, uint32_t events)
{
	if (k->events != events && loop_fd_mod(k->c->loop, k->h, events) == 0)
		k->events = events;
}

static void hc_conn_drop_fd(struct hc_conn *k)
{
	struct hclient *c = k->c;

	loop_fd_del(c->loop, k->h);
	k->h = NULL;
	k->events = 0;
	if (k->tls) {
		gnutls_deinit(k->tls);
		k->tls = NULL;
	}
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}

/* Closes k; its request, if any, was dealt with by the caller. */
static void hc_conn_close(struct hc_conn *k)
{
	struct hclient *c = k->c;

	for (struct hc_conn **pp = &c->conns; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	c->nconns--;
	loop_timer_del(c->loop, k->timer);
	hc_conn_drop_fd(k);
	buf_free(&k->in);
	free(k->der);
	free(k);
}

/* The connection failed: its request fails too, or goes once more on a new connection when a
 * reused connection died before answering (the server closed it while it was idle). */
static void hc_conn_fail(struct hc_conn *k, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hc_conn_fail(struct hc_conn *k, int err, const char *fmt, ...)
{
	struct hclient *c = k->c;
	struct hclient_req *r = k->req;
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	k->req = NULL;
	if (r && k->reused && !k->got && !r->retried && err == OUTPOST_E_UNAVAILABLE) {
		r->retried = 1;
		r->conn = NULL;
		r->state = HC_PENDING;
		hc_req_rewind(r);
	} else if (r) {
		hc_req_end(r, k, err, "%s", msg);
	}
	hc_conn_close(k);
	hc_dispatch(c);
}

static void hc_on_conn_timer(void *arg)
{
	struct hc_conn *k = arg;

	k->timer = NULL; /* one-shot: the loop frees it */
	if (k->state == HC_IDLE) {
		struct hclient *c = k->c;
		hc_conn_close(k);
		hc_dispatch(c);
		return;
	}
	hc_conn_fail(k, OUTPOST_E_TIMEOUT, "connecting to %s:%u timed out after %lld ms",
	             k->c->host, k->c->port, (long long)k->c->connect_ms);
}

/* The address-th address of the host, resolving it first when needed. */
static int hc_addr(struct hclient *c, size_t index, struct addrinfo **out, char *msg, size_t msglen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *a;
	char port[8];
	int rc;

	if (!c->addrs) {
		snprintf(port, sizeof(port), "%u", c->port);
		hints.ai_flags |= AI_NUMERICSERV;
		rc = getaddrinfo(c->host, port, &hints, &c->addrs);
		if (rc == EAI_NONAME) {
			hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
			rc = getaddrinfo(c->host, port, &hints,
			                 &c->addrs); /* blocks: see hclient.h */
		}
		if (rc != 0) {
			c->addrs = NULL;
			snprintf(msg, msglen, "cannot resolve %s: %s", c->host, gai_strerror(rc));
			return -1;
		}
	}
	for (a = c->addrs; a && index; a = a->ai_next)
		index--;
	*out = a;
	return 0;
}

static int hc_tls_setup(struct hc_conn *k)
{
	struct hclient *c = k->c;
	struct in6_addr a6;

	if (gnutls_init(&k->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
		k->tls = NULL;
		return -1;
	}
	if (gnutls_set_default_priority_append(k->tls, "-VERS-TLS1.0:-VERS-TLS1.1", NULL, 0) < 0 &&
	    gnutls_set_default_priority(k->tls) < 0)
		return -1;
	if (gnutls_credentials_set(k->tls, GNUTLS_CRD_CERTIFICATE, c->cred) < 0)
		return -1;
	/* SNI is for names only (RFC 6066). */
	if (inet_pton(AF_INET6, c->tls_name, &a6) != 1 && inet_pton(AF_INET, c->tls_name, &a6) != 1)
		gnutls_server_name_set(k->tls, GNUTLS_NAME_DNS, c->tls_name, strlen(c->tls_name));
	if (c->verify)
		gnutls_session_set_verify_cert(k->tls, c->verify_name ? c->tls_name : NULL, 0);
	gnutls_handshake_set_timeout(k->tls, 0); /* our connect timer */
	gnutls_transport_set_int(k->tls, k->fd);
	return 0;
}

/* Connects to the next address that takes a connect(). 0 (in progress), or -1 with msg. */
static int hc_conn_try(struct hc_conn *k, char *msg, size_t msglen)
{
	struct hclient *c = k->c;
	struct addrinfo *a;
	int one = 1, idle = 30, intvl = 15;

	for (;;) {
		if (hc_addr(c, k->addr, &a, msg, msglen) < 0)
			return -1;
		if (!a) {
			snprintf(msg, msglen, "cannot connect to %s:%u: %s", c->host, c->port,
			         k->last_err[0] ? k->last_err : "no address");
			freeaddrinfo(c->addrs); /* resolve again next time */
			c->addrs = NULL;
			return -1;
		}
		k->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (k->fd < 0) {
			snprintf(msg, msglen, "socket: %s", strerror(errno));
			return -1;
		}
		setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* A long-poll may sit silent behind a NAT for a while. */
		setsockopt(k->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(k->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(k->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		if (c->have_source && a->ai_family == AF_INET) {
			/* The port is left to connect(): unique per destination, not per host. */
			setsockopt(k->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
			if (bind(k->fd, (const struct sockaddr *)&c->source, sizeof(c->source)) <
			    0) {
				snprintf(msg, msglen, "cannot bind to source address %s: %s",
				         inet_ntoa(c->source.sin_addr), strerror(errno));
				close(k->fd);
				k->fd = -1;
				return -1;
			}
		}
		if (connect(k->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			if (loop_fd_add(c->loop, k->fd, EPOLLOUT, hc_on_io, k, &k->h) < 0) {
				snprintf(msg, msglen, "cannot watch a socket: %s", strerror(errno));
				return -1;
			}
			k->events = EPOLLOUT;
			k->state = HC_CONNECTING;
			return 0;
		}
		snprintf(k->last_err, sizeof(k->last_err), "%s", strerror(errno));
		close(k->fd);
		k->fd = -1;
		k->addr++;
	}
}

/* A new connection, opened for r (may be NULL). 0, or -1 with msg (nothing left behind). */
static int hc_conn_new(struct hclient *c, struct hclient_req *r, char *msg, size_t msglen)
{
	struct hc_conn *k = calloc(1, sizeof(*k));

	if (!k) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	k->c = c;
	k->fd = -1;
	k->next = c->conns;
	c->conns = k;
	c->nconns++;
	if (loop_timer_add(c->loop, c->connect_ms, 0, hc_on_conn_timer, k, &k->timer) < 0) {
		snprintf(msg, msglen, "out of memory");
		hc_conn_close(k);
		return -1;
	}
	if (hc_conn_try(k, msg, msglen) < 0) {
		hc_conn_close(k);
		return -1;
	}
	if (r) {
		k->req = r;
		r->conn = k;
		r->state = HC_ACTIVE;
		k->no_reuse = (r->flags & HCLIENT_FRESH) != 0;
	}
	return 0;
}

static void hc_conn_idle(struct hc_conn *k)
{
	struct hclient *c = k->c;

	k->state = HC_IDLE;
	k->idle_since_ms = clk_mono_ms();
	buf_free(&k->in);
	k->in_off = 0;
	hc_want(k, EPOLLIN);
	loop_timer_del(c->loop, k->timer);
	k->timer = NULL;
	if (loop_timer_add(c->loop, c->idle_ms, 0, hc_on_conn_timer, k, &k->timer) < 0) {
		hc_conn_close(k);
		return;
	}
}

static void hc_send(struct hc_conn *k);

/* Puts r on the wire of k (an idle or a just opened connection). */
static void hc_start(struct hc_conn *k, struct hclient_req *r)
{
	loop_timer_del(k->c->loop, k->timer);
	k->timer = NULL;
	k->req = r;
	k->got = 0;
	r->conn = k;
	r->state = HC_ACTIVE;
	k->state = HC_SEND;
	/* Straight onto the wire: a request fits the socket's buffer nearly always, and
	 * waiting for EPOLLOUT first cost two epoll_ctl calls and a turn of the loop. hc_send
	 * asks for EPOLLOUT only when the socket is full; a failure here ends the request
	 * through its timer, never by calling back from inside the caller. */
	hc_send(k);
}

/* The connection is up (TCP, and TLS when https). */
static void hc_conn_ready(struct hc_conn *k)
{
	struct hclient *c = k->c;
	struct hclient_req *r = k->req;

	if (r) {
		k->req = NULL;
		hc_start(k, r);
		return;
	}
	hc_conn_idle(k); /* may close k */
	hc_dispatch(c);
}

static void hc_handshake(struct hc_conn *k)
{
	struct hclient *c = k->c;
	const gnutls_datum_t *peers;
	unsigned n = 0, status;
	gnutls_datum_t out = {NULL, 0};
	int rc = gnutls_handshake(k->tls);

	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED ||
	    (rc < 0 && !gnutls_error_is_fatal(rc))) {
		hc_want(k, gnutls_record_get_direction(k->tls) ? EPOLLOUT : EPOLLIN);
		return;
	}
	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(k->tls);
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
		hc_conn_fail(k, OUTPOST_E_FORBIDDEN,
		             "the TLS certificate of %s:%u is not trusted: %s", c->host, c->port,
		             out.data ? (const char *)out.data : "?");
		gnutls_free(out.data);
		return;
	}
	if (rc < 0) {
		hc_conn_fail(k, OUTPOST_E_UNAVAILABLE, "TLS handshake with %s:%u failed: %s",
		             c->host, c->port, gnutls_strerror(rc));
		return;
	}
	peers = gnutls_certificate_get_peers(k->tls, &n);
	if (peers && n > 0 && peers[0].size > 0) {
		k->der = malloc(peers[0].size);
		if (!k->der) {
			hc_conn_fail(k, OUTPOST_E_INTERNAL, "out of memory");
			return;
		}
		memcpy(k->der, peers[0].data, peers[0].size);
		k->der_len = peers[0].size;
		sec_sha256_hex(k->der, k->der_len, k->peer_sha256);
	}
	if (c->have_pin && strcmp(k->peer_sha256, c->pin) != 0) {
		hc_conn_fail(k, OUTPOST_E_FORBIDDEN,
		             "the TLS certificate of %s:%u is sha256:%s, not the pinned sha256:%s",
		             c->host, c->port, k->peer_sha256[0] ? k->peer_sha256 : "(none)",
		             c->pin);
		return;
	}
	hc_conn_ready(k);
}

static void hc_on_connected(struct hc_conn *k)
{
	struct hclient *c = k->c;
	int err = 0;
	socklen_t len = sizeof(err);
	char msg[300];

	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err) {
		/* Try the host's next address. */
		snprintf(k->last_err, sizeof(k->last_err), "%s", strerror(err));
		hc_conn_drop_fd(k);
		k->addr++;
		if (hc_conn_try(k, msg, sizeof(msg)) < 0)
			hc_conn_fail(k, OUTPOST_E_UNAVAILABLE, "%s", msg);
		return;
	}
	if (!c->https) {
		hc_conn_ready(k);
		return;
	}
	if (hc_tls_setup(k) < 0) {
		hc_conn_fail(k, OUTPOST_E_INTERNAL, "cannot set up a TLS session");
		return;
	}
	k->state = HC_HANDSHAKE;
	hc_handshake(k);
}

/* Data or end of stream on an idle connection: the server closed it (or misbehaves). */
static void hc_on_idle_io(struct hc_conn *k)
{
	struct hclient *c = k->c;
	char b[1];

	if (k->tls) {
		ssize_t n = gnutls_record_recv(k->tls, b, sizeof(b));
		/* Only TLS housekeeping (a TLS 1.3 session ticket): keep it. */
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			return;
	}
	hc_conn_close(k);
	hc_dispatch(c);
}

static void hc_send(struct hc_conn *k)
{
	struct hclient_req *r = k->req;

	while (r->sent < r->out.len) {
		const char *p = r->out.data + r->sent;
		size_t n = r->out.len - r->sent;
		ssize_t w;

		if (k->tls) {
			w = gnutls_record_send(k->tls, p, n);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
				hc_want(k, EPOLLOUT);
				return;
			}
			if (w < 0) {
				hc_conn_fail(k, OUTPOST_E_UNAVAILABLE, "sending to %s:%u: %s",
				             k->c->host, k->c->port, gnutls_strerror((int)w));
				return;
			}
		} else {
			w = send(k->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				hc_want(k, EPOLLOUT);
				return;
			}
			if (w < 0) {
				hc_conn_fail(k, OUTPOST_E_UNAVAILABLE, "sending to %s:%u: %s",
				             k->c->host, k->c->port, strerror(errno));
				return;
			}
		}
		r->sent += (size_t)w;
	}
	k->state = HC_RECV;
	hc_want(k, EPOLLIN);
}

/* ---- the answer ---- */

/* The answer is complete. */
static void hc_answer_done(struct hc_conn *k)
{
	struct hclient *c = k->c;
	struct hclient_req *r = k->req;
	int keep = !r->ans.close && !k->no_reuse;

	k->req = NULL;
	k->reused = 1;
	hc_req_end(r, k, 0, NULL);
	if (keep)
		hc_conn_idle(k);
	else
		hc_conn_close(k);
	hc_dispatch(c);
}

/* Parses what was read. 0: more is needed; 1: k is done with (answered, failed, closed). */
static int hc_parse(struct hc_conn *k)
{
	struct hclient *c = k->c;
	struct hclient_req *r = k->req;
	char msg[200];
	size_t used;
	int rc = hresp_feed(&r->ans, k->in.data + k->in_off, k->in.len - k->in_off, &used, msg,
	                    sizeof(msg));

	k->in_off += used;
	if (rc == 0)
		return 0;
	if (rc > 0 && k->in_off < k->in.len) {
		snprintf(msg, sizeof(msg), "%zu bytes more than the answer declared",
		         k->in.len - k->in_off);
		rc = OUTPOST_E_UNAVAILABLE;
	}
	if (rc < 0) {
		hc_conn_fail(k, rc, "bad answer from %s:%u: %s", c->host, c->port, msg);
		return 1;
	}
	hc_answer_done(k);
	return 1;
}

static void hc_recv(struct hc_conn *k)
{
	struct hclient *c = k->c;
	char chunk[HC_READ_CHUNK];

	/* Whoever times the answer's handling (core/phase.h) times it from here. */
	if (!k->got && k->req)
		phase_start(&k->req->rx);
	for (;;) {
		ssize_t n;
		const char *why = NULL;

		if (k->tls) {
			n = gnutls_record_recv(k->tls, chunk, sizeof(chunk));
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return;
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				n = 0; /* closed without close_notify: many servers do */
			else if (n < 0)
				why = gnutls_strerror((int)n);
		} else {
			n = recv(k->fd, chunk, sizeof(chunk), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n < 0)
				why = strerror(errno);
		}
		if (why) {
			hc_conn_fail(k, OUTPOST_E_UNAVAILABLE, "receiving from %s:%u: %s", c->host,
			             c->port, why);
			return;
		}
		if (n == 0) {
			if (hresp_eof(&k->req->ans)) {
				hc_answer_done(k);
			} else {
				hc_conn_fail(k, OUTPOST_E_UNAVAILABLE,
				             "%s:%u closed the connection %s", c->host, c->port,
				             k->got ? "in the middle of the answer"
				                    : "without answering");
			}
			return;
		}
		if (!k->got && k->req)
			k->req->rx_set = 1;
		k->got = 1;
		if (k->in_off == k->in.len) {
			buf_reset(&k->in);
			k->in_off = 0;
		} else if (k->in_off > 0) {
			memmove(k->in.data, k->in.data + k->in_off, k->in.len - k->in_off);
			k->in.len -= k->in_off;
			k->in_off = 0;
		}
		if (buf_append(&k->in, chunk, (size_t)n) < 0) {
			hc_conn_fail(k, OUTPOST_E_INTERNAL, "out of memory");
			return;
		}
		if (hc_parse(k))
			return;
	}
}

static void hc_on_io(void *arg, uint32_t events)
{
	struct hc_conn *k = arg;

	(void)events; /* errors show up in the calls below */
	switch (k->state) {
	case HC_CONNECTING:
		hc_on_connected(k);
		break;
	case HC_HANDSHAKE:
		hc_handshake(k);
		break;
	case HC_IDLE:
		hc_on_idle_io(k);
		break;
	case HC_SEND:
		hc_send(k);
		break;
	case HC_RECV:
		hc_recv(k);
		break;
	}
}

/* ---- scheduling ---- */

/* The idle connection used last: the others stay idle and close after idle_ms, so a client
 * whose requests need one connection at a time keeps one (an agent's poll renewed every 30 s
 * used to alternate between two connections, neither ever idle for 50 s: the hub held two
 * per idle agent). */
static struct hc_conn *hc_idle_conn(struct hclient *c)
{
	struct hc_conn *best = NULL;

	for (struct hc_conn *k = c->conns; k; k = k->next)
		if (k->state == HC_IDLE && (!best || k->idle_since_ms > best->idle_since_ms))
			best = k;
	return best;
}

/* Hands pending requests to idle connections, or opens new ones while there is room. Never
 * calls back. */
static void hc_dispatch(struct hclient *c)
{
	char msg[300];

	if (c->dispatching) {
		c->again = 1;
		return;
	}
	c->dispatching = 1;
	do {
		c->again = 0;
		for (struct hclient_req *r = c->reqs; r; r = r->next) {
			struct hc_conn *k;

			if (r->state != HC_PENDING)
				continue;
			k = hc_idle_conn(c);
			if (k && !(r->flags & HCLIENT_FRESH)) {
				hc_start(k, r);
				continue;
			}
			if (c->nconns >= c->max_conns) {
				if (!k)
					continue;
				hc_conn_close(k); /* room for a connection of its own */
			}
			if (hc_conn_new(c, r, msg, sizeof(msg)) < 0)
				hc_req_end(r, NULL, OUTPOST_E_UNAVAILABLE, "%s", msg);
		}
	} while (c->again);
	c->dispatching = 0;
}

static void hc_on_req_timer(void *arg)
{
	struct hclient_req *r = arg;
	struct hclient *c = r->c;
	struct hclient_response resp;

	r->timer = NULL; /* one-shot: the loop frees it */
	if (r->state != HC_DONE) {
		struct hc_conn *k = r->conn;
		if (k) {
			k->req = NULL;
			hc_req_peer(r, k);
			if (k->state == HC_SEND || k->state == HC_RECV)
				hc_conn_close(k); /* half a conversation: not reusable */
		}
		r->conn = NULL;
		r->state = HC_DONE;
		r->err = OUTPOST_E_TIMEOUT;
		snprintf(r->errmsg, sizeof(r->errmsg), "no answer from %s:%u in time", c->host,
		         c->port);
	}
	hc_req_unlink(r);
	hc_dispatch(c);
	memset(&resp, 0, sizeof(resp));
	resp.err = r->err;
	resp.errmsg = r->err ? r->errmsg : "";
	resp.status = r->err ? 0 : r->ans.status;
	resp.body = !r->err && r->ans.body.data ? r->ans.body.data : "";
	resp.body_len = r->err ? 0 : r->ans.body.len;
	resp.peer_sha256 = r->peer_sha256;
	resp.peer_cert_pem = r->peer_pem;
	resp.headers = r->err ? NULL : r->ans.headers.data;
	resp.nheaders = r->err ? 0 : r->ans.nheaders;
	resp.rx_start = r->rx_set ? &r->rx : NULL;
	r->fn(r->arg, &resp); /* may free c: only r is touched after */
	hc_req_free(r);
}

/* ---- the interface ---- */

static int hc_token_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!hresp_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* A header line fit for the wire: "Name: value", no CR, LF or NUL. */
static int hc_header_ok(const char *h)
{
	const char *colon = strchr(h, ':');

	if (!colon || colon == h)
		return 0;
	for (const char *p = h; p < colon; p++)
		if (!hresp_tchar((unsigned char)*p))
			return 0;
	return strpbrk(h, "\r\n") == NULL;
}

int hclient_request(struct hclient *c, const struct hclient_request *rq, hclient_done_fn fn,
                    void *arg, struct hclient_req **out)
{
	struct hclient_req *r;
	int bodied;

	if (out)
		*out = NULL;
	if (!rq->method || !hc_token_ok(rq->method) || !rq->target || rq->target[0] != '/' || !fn ||
	    (rq->body_len && !rq->body))
		return OUTPOST_E_BAD_ARGS;
	for (const char *p = rq->target; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return OUTPOST_E_BAD_ARGS;
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		if (!hc_header_ok(rq->headers[i]))
			return OUTPOST_E_BAD_ARGS;
	r = calloc(1, sizeof(*r));
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->c = c;
	r->fn = fn;
	r->arg = arg;
	r->flags = rq->flags;
	r->ans.head = strcmp(rq->method, "HEAD") == 0;
	r->ans.max_body = c->max_response;
	hc_req_rewind(r);
	bodied = rq->body_len || strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PUT") == 0;
	if (buf_printf(&r->out, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n", rq->method,
	               rq->target, c->host_hdr, c->user_agent) < 0)
		goto oom;
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		if (buf_printf(&r->out, "%s\r\n", rq->headers[i]) < 0)
			goto oom;
	if ((bodied && buf_printf(&r->out, "Content-Length: %zu\r\n", rq->body_len) < 0) ||
	    ((rq->flags & HCLIENT_FRESH) && buf_puts(&r->out, "Connection: close\r\n") < 0) ||
	    buf_puts(&r->out, "\r\n") < 0 ||
	    (rq->body_len && buf_append(&r->out, rq->body, rq->body_len) < 0))
		goto oom;
	if (loop_timer_add(c->loop, rq->timeout_ms > 0 ? rq->timeout_ms : HC_DEF_TIMEOUT_MS, 0,
	                   hc_on_req_timer, r, &r->timer) < 0)
		goto oom;
	r->state = HC_PENDING;
	r->prev = c->reqs_tail;
	if (c->reqs_tail)
		c->reqs_tail->next = r;
	else
		c->reqs = r;
	c->reqs_tail = r;
	if (out)
		*out = r;
	hc_dispatch(c);
	return 0;
oom:
	hc_req_free(r);
	return OUTPOST_E_INTERNAL;
}

void hclient_cancel(struct hclient_req *r)
{
	struct hclient *c;
	struct hc_conn *k;

	if (!r)
		return;
	c = r->c;
	k = r->conn;
	if (r->state == HC_ACTIVE && k) {
		k->req = NULL;
		/* A connection still opening goes on, for the next request; one that carried
		 * half of this conversation cannot. */
		if (k->state == HC_SEND || k->state == HC_RECV) {
			hc_conn_close(k);
			hc_dispatch(c);
		}
	}
	loop_timer_del(c->loop, r->timer);
	hc_req_unlink(r);
	hc_req_free(r);
}

const char *hclient_header(const struct hclient_response *resp, const char *name)
{
	const char *p = resp->headers;

	for (size_t i = 0; p && i < resp->nheaders; i++) {
		const char *v = p + strlen(p) + 1;
		if (strcasecmp(p, name) == 0)
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

unsigned hclient_conns(const struct hclient *c)
{
	return c->nconns;
}

int hclient_url_parse(const char *url, struct hclient_url *u)
{
	const char *p, *end, *at, *h, *hend;
	size_t n;
	unsigned long port;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "https://", 8) == 0) {
		u->https = 1;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		return -1;
	}
	end = p + strcspn(p, "/?#");
	u->rest = end;
	at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		u->userinfo = 1;
		p = at + 1;
	}
	if (*p == '[') {
		h = p + 1;
		hend = memchr(h, ']', (size_t)(end - h));
		if (!hend)
			return -1;
		p = hend + 1;
		for (const char *q = h; q < hend; q++)
			if (!strchr("0123456789abcdefABCDEF:.", *q))
				return -1;
	} else {
		h = p;
		hend = memchr(h, ':', (size_t)(end - h));
		if (!hend)
			hend = end;
		p = hend;
		for (const char *q = h; q < hend; q++)
			if (!(hresp_tchar((unsigned char)*q) && *q != '%'))
				return -1;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= sizeof(u->host))
		return -1;
	memcpy(u->host, h, n);
	u->host[n] = '\0';
	u->port = u->https ? 443 : 80;
	if (p < end) {
		char *e;
		if (*p != ':' || p + 1 == end || p[1] < '0' || p[1] > '9')
			return -1;
		errno = 0;
		port = strtoul(p + 1, &e, 10);
		if (e != end || port == 0 || port > 65535 || errno)
			return -1;
		u->port = (unsigned)port;
	}
	return 0;
}

int hclient_pin_parse(const char *in, char out[65])
{
	size_t n = 0;

	if (strncasecmp(in, "sha256:", 7) == 0)
		in += 7;
	for (; *in; in++) {
		char ch = *in;
		if (ch == ':')
			continue;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || n == 64)
			return -1;
		out[n++] = ch;
	}
	out[n] = '\0';
	return n == 64 ? 0 : -1;
}

int hclient_set_pin(struct hclient *c, const char *pin_sha256)
{
	char pin[65];

	if (!pin_sha256) {
		c->have_pin = 0;
		return 0;
	}
	if (hclient_pin_parse(pin_sha256, pin) < 0)
		return OUTPOST_E_BAD_ARGS;
	memcpy(c->pin, pin, sizeof(pin));
	c->have_pin = 1;
	for (struct hc_conn *k = c->conns, *next; k; k = next) {
		next = k->next;
		if (k->state == HC_CONNECTING || k->state == HC_HANDSHAKE ||
		    strcmp(k->peer_sha256, c->pin) == 0)
			continue; /* checked at the end of its handshake, or fine */
		if (k->state == HC_IDLE)
			hc_conn_close(k);
		else
			k->no_reuse = 1;
	}
	return 0;
}

int hclient_new(const struct hclient_config *cfg, struct hclient **out, char *msg, size_t msglen)
{
	struct hclient *c;
	struct hclient_url u;
	struct buf hh = BUF_INIT;
	int def_port, rc;

	*out = NULL;
	if (!cfg->loop || !cfg->url || hclient_url_parse(cfg->url, &u) < 0 || u.userinfo ||
	    (u.rest[0] && strcmp(u.rest, "/") != 0)) {
		snprintf(msg, msglen, "not a base URL http(s)://HOST[:PORT]: %.200s",
		         cfg->url ? cfg->url : "(none)");
		return OUTPOST_E_BAD_ARGS;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto oom;
	c->loop = cfg->loop;
	c->https = u.https;
	c->port = u.port;
	c->max_conns = cfg->max_conns ? cfg->max_conns : HC_DEF_CONNS;
	c->max_response = cfg->max_response ? cfg->max_response : HC_DEF_MAX_RESPONSE;
	c->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : HC_DEF_CONNECT_MS;
	c->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : HC_DEF_IDLE_MS;
	c->host = strdup(u.host);
	c->tls_name = strdup(cfg->tls_name ? cfg->tls_name : u.host);
	c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "outpost/" OUTPOST_VERSION);
	def_port = u.port == (u.https ? 443u : 80u);
	if (!c->host || !c->tls_name || !c->user_agent ||
	    buf_printf(&hh, strchr(u.host, ':') ? "[%s]" : "%s", u.host) < 0 ||
	    (!def_port && buf_printf(&hh, ":%u", u.port) < 0))
		goto oom;
	c->host_hdr = buf_steal(&hh);
	if (cfg->source_addr) {
		c->source.sin_family = AF_INET;
		if (inet_pton(AF_INET, cfg->source_addr, &c->source.sin_addr) != 1) {
			snprintf(msg, msglen, "not an IPv4 source address: %.100s",
			         cfg->source_addr);
			hclient_free(c);
			return OUTPOST_E_BAD_ARGS;
		}
		c->have_source = 1;
	}
	if (cfg->pin_sha256 && hclient_set_pin(c, cfg->pin_sha256) < 0) {
		snprintf(msg, msglen, "not a sha256 fingerprint: %.100s", cfg->pin_sha256);
		hclient_free(c);
		return OUTPOST_E_BAD_ARGS;
	}
	if (c->https) {
		if (gnutls_certificate_allocate_credentials(&c->cred) < 0) {
			c->cred = NULL;
			goto oom;
		}
		if (cfg->ca_file) {
			rc = gnutls_certificate_set_x509_trust_file(c->cred, cfg->ca_file,
			                                            GNUTLS_X509_FMT_PEM);
			if (rc <= 0) {
				snprintf(msg, msglen, "no CA certificate read from %s%s%s",
				         cfg->ca_file, rc < 0 ? ": " : "",
				         rc < 0 ? gnutls_strerror(rc) : "");
				hclient_free(c);
				return OUTPOST_E_BAD_ARGS;
			}
			c->verify = 1;
			c->verify_name = !cfg->no_verify_name;
		}
	}
	*out = c;
	return 0;
oom:
	buf_free(&hh);
	hclient_free(c);
	snprintf(msg, msglen, "out of memory");
	return OUTPOST_E_INTERNAL;
}

void hclient_free(struct hclient *c)
{
	if (!c)
		return;
	while (c->reqs) {
		struct hclient_req *r = c->reqs;
		c->reqs = r->next;
		loop_timer_del(c->loop, r->timer);
		hc_req_free(r);
	}
	while (c->conns)
		hc_conn_close(c->conns);
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	if (c->addrs)
		freeaddrinfo(c->addrs);
	free(c->host);
	free(c->tls_name);
	free(c->host_hdr);
	free(c->user_agent);
	free(c);
}
