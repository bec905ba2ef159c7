/* Tests for src/core/hclient.c: against our own httpd over TLS on the same loop (round trips,
 * keep-alive counted by a relay in front of it, CA and pin trust, first-use certificates,
 * timeouts, size caps, cancel), and against a raw socket server that answers scripted bytes
 * (chunked bodies, Connection: close, and hostile answers of every kind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/clk.h"
#include "core/hclient.h"
#include "core/httpd.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- certificates ---- */

struct cert {
	char *pem, *key;
	char sha256[65];
	char path[64]; /* the PEM in a file, for ca_file */
};

/* A self-signed CA certificate for dns (may be NULL) and, with ip, 127.0.0.1. */
static void cert_make(struct cert *ct, const char *dns, int ip)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t out;
	unsigned char serial[8], ip4[4] = {127, 0, 0, 1}, der[4096];
	size_t derlen = sizeof(der);
	time_t now = time(NULL);
	FILE *f;
	int fd;

	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(
	    gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
	    0);
	gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f;
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "hclient-test", 12);
	if (dns)
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, dns,
		                                     (unsigned)strlen(dns), GNUTLS_FSAN_APPEND);
	if (ip)
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4, 4,
		                                     GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
	gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
	gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
	ct->pem = strndup((char *)out.data, out.size);
	gnutls_free(out.data);
	assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out), 0);
	ct->key = strndup((char *)out.data, out.size);
	gnutls_free(out.data);
	assert_int_equal(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_DER, der, &derlen), 0);
	sec_sha256_hex(der, derlen, ct->sha256);
	snprintf(ct->path, sizeof(ct->path), "/tmp/hclient-test-XXXXXX");
	fd = mkstemp(ct->path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(ct->pem, f);
	fclose(f);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static void cert_free(struct cert *ct)
{
	unlink(ct->path);
	free(ct->pem);
	free(ct->key);
}

/* ---- the TLS server: our httpd ---- */

struct srv {
	struct loop *loop;
	struct httpd *httpd;
	struct logger log;
	int hits;
};

static void route_hello(void *ctx, struct httpd_req *req)
{
	struct srv *s = ctx;
	s->hits++;
	httpd_respond_text(req, 200, "text/plain", "hello", 5);
}

static void route_echo(void *ctx, struct httpd_req *req)
{
	struct srv *s = ctx;
	size_t len;
	const char *body = httpd_req_body(req, &len);
	struct buf b = BUF_INIT;

	s->hits++;
	buf_printf(&b, "%s %s ", httpd_req_method(req), httpd_req_uri(req));
	const char *x = httpd_req_header(req, "X-Test");
	buf_printf(&b, "%s ", x ? x : "-");
	buf_append(&b, body ? body : "", len);
	httpd_respond_text(req, 201, "text/plain", b.data, b.len);
	buf_free(&b);
}

static void route_big(void *ctx, struct httpd_req *req)
{
	char *big = malloc(5000);
	memset(big, 'x', 5000);
	httpd_respond_text(req, 200, "text/plain", big, 5000);
	free(big);
}

static void route_never(void *ctx, struct httpd_req *req)
{
	/* No answer: the connection waits until httpd_stop answers it. */
}

static void route_peer(void *ctx, struct httpd_req *req)
{
	const char *peer = httpd_req_peer(req);
	httpd_respond_text(req, 200, "text/plain", peer, strlen(peer));
}

static const struct httpd_route routes[] = {
    {"GET", "/hello", route_hello, 0, 0},    {"GET", "/peer", route_peer, 0, 0},
    {"POST", "/echo", route_echo, 0, 65536}, {"GET", "/big", route_big, 0, 0},
    {"GET", "/never", route_never, 0, 0},
};

static void srv_start(struct srv *s, struct loop *loop, const struct cert *ct)
{
	struct httpd_config cfg = {0};
	char msg[256];

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	log_init(&s->log, "hclient-test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	cfg.listen = "127.0.0.1:0";
	cfg.routes = routes;
	cfg.nroutes = sizeof(routes) / sizeof(routes[0]);
	cfg.ctx = s;
	cfg.log = &s->log;
	cfg.tls_cert_pem = ct->pem;
	cfg.tls_key_pem = ct->key;
	assert_int_equal(httpd_start(loop, &cfg, &s->httpd, msg, sizeof(msg)), 0);
}

/* ---- a relay in front of a server, counting the connections it accepts ---- */

struct relay_pipe {
	struct relay *r;
	int fd[2]; /* client side, server side */
	struct loop_fd *h[2];
	struct relay_pipe *next;
};

struct relay {
	struct loop *loop;
	int lfd;
	struct loop_fd *lh;
	unsigned port, upstream;
	int accepted;
	struct relay_pipe *pipes;
};

static int listen_any(unsigned *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

static void relay_pipe_close(struct relay_pipe *p)
{
	for (struct relay_pipe **pp = &p->r->pipes; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	for (int i = 0; i < 2; i++) {
		loop_fd_del(p->r->loop, p->h[i]);
		close(p->fd[i]);
	}
	free(p);
}

static void relay_on_side(struct relay_pipe *p, int side)
{
	char b[65536];
	ssize_t n = recv(p->fd[side], b, sizeof(b), MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0 || write(p->fd[!side], b, (size_t)n) != n)
		relay_pipe_close(p);
}

static void relay_on_client(void *arg, uint32_t ev)
{
	relay_on_side(arg, 0);
}

static void relay_on_server(void *arg, uint32_t ev)
{
	relay_on_side(arg, 1);
}

static void relay_on_accept(void *arg, uint32_t ev)
{
	struct relay *r = arg;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	struct relay_pipe *p;

	if (fd < 0)
		return;
	r->accepted++;
	p = calloc(1, sizeof(*p));
	p->r = r;
	p->fd[0] = fd;
	p->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_port = htons((uint16_t)r->upstream);
	assert_int_equal(connect(p->fd[1], (struct sockaddr *)&a, sizeof(a)), 0);
	loop_fd_add(r->loop, p->fd[0], EPOLLIN, relay_on_client, p, &p->h[0]);
	loop_fd_add(r->loop, p->fd[1], EPOLLIN, relay_on_server, p, &p->h[1]);
	p->next = r->pipes;
	r->pipes = p;
}

static void relay_start(struct relay *r, struct loop *loop, unsigned upstream)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->upstream = upstream;
	r->lfd = listen_any(&r->port);
	loop_fd_add(loop, r->lfd, EPOLLIN, relay_on_accept, r, &r->lh);
}

static void relay_stop(struct relay *r)
{
	while (r->pipes)
		relay_pipe_close(r->pipes);
	loop_fd_del(r->loop, r->lh);
	close(r->lfd);
}

/* ---- a raw server answering scripted bytes ---- */

struct answer {
	const char *text; /* NULL: close without answering */
	size_t len;       /* 0: strlen(text) */
	int close;        /* close the connection once it is written */
};

struct raw_conn {
	struct raw *s;
	int fd;
	struct loop_fd *h;
	struct buf in, out;
	size_t out_off;
	int closing;
	struct raw_conn *next;
};

struct raw {
	struct loop *loop;
	int lfd;
	struct loop_fd *lh;
	unsigned port;
	const struct answer *answers;
	size_t nanswers, next; /* the next answer, across connections */
	int silent;            /* accept and read, never answer */
	int accepted, requests;
	struct raw_conn *conns;
};

static void raw_conn_close(struct raw_conn *k)
{
	for (struct raw_conn **pp = &k->s->conns; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	loop_fd_del(k->s->loop, k->h);
	close(k->fd);
	buf_free(&k->in);
	buf_free(&k->out);
	free(k);
}

static void raw_flush(struct raw_conn *k)
{
	while (k->out_off < k->out.len) {
		ssize_t n = send(k->fd, k->out.data + k->out_off, k->out.len - k->out_off,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			loop_fd_mod(k->s->loop, k->h, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n <= 0) {
			raw_conn_close(k);
			return;
		}
		k->out_off += (size_t)n;
	}
	buf_reset(&k->out);
	k->out_off = 0;
	loop_fd_mod(k->s->loop, k->h, EPOLLIN);
	if (k->closing)
		raw_conn_close(k);
}

static void raw_on_conn(void *arg, uint32_t ev)
{
	struct raw_conn *k = arg;
	struct raw *s = k->s;
	char b[4096], *end;

	if (ev & EPOLLOUT) {
		raw_flush(k);
		return;
	}
	ssize_t n = recv(k->fd, b, sizeof(b), MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		raw_conn_close(k);
		return;
	}
	buf_append(&k->in, b, (size_t)n);
	while (!k->closing && k->in.data && (end = strstr(k->in.data, "\r\n\r\n"))) {
		size_t used = (size_t)(end + 4 - k->in.data);
		const struct answer *a;

		memmove(k->in.data, k->in.data + used, k->in.len - used + 1);
		k->in.len -= used;
		s->requests++;
		if (s->silent)
			continue;
		if (s->next >= s->nanswers) {
			raw_conn_close(k);
			return;
		}
		a = &s->answers[s->next++];
		if (!a->text) {
			raw_conn_close(k);
			return;
		}
		buf_append(&k->out, a->text, a->len ? a->len : strlen(a->text));
		k->closing = a->close;
		raw_flush(k);
		return;
	}
}

static void raw_on_accept(void *arg, uint32_t ev)
{
	struct raw *s = arg;
	struct raw_conn *k;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	s->accepted++;
	k = calloc(1, sizeof(*k));
	k->s = s;
	k->fd = fd;
	loop_fd_add(s->loop, fd, EPOLLIN, raw_on_conn, k, &k->h);
	k->next = s->conns;
	s->conns = k;
}

static void raw_start(struct raw *s, struct loop *loop, const struct answer *answers, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->answers = answers;
	s->nanswers = n;
	s->lfd = listen_any(&s->port);
	loop_fd_add(loop, s->lfd, EPOLLIN, raw_on_accept, s, &s->lh);
}

static void raw_stop(struct raw *s)
{
	while (s->conns)
		raw_conn_close(s->conns);
	loop_fd_del(s->loop, s->lh);
	close(s->lfd);
}

/* ---- the client side ---- */

struct result {
	int done, calls;
	int err;
	char errmsg[300];
	unsigned status;
	struct buf body;
	char sha256[65];
	char *pem;
	char ctype[64];
};

static void on_done(void *arg, const struct hclient_response *resp)
{
	struct result *r = arg;
	const char *ct = hclient_header(resp, "content-type");

	r->done = 1;
	r->calls++;
	r->err = resp->err;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", resp->errmsg);
	r->status = resp->status;
	buf_reset(&r->body);
	buf_append(&r->body, resp->body, resp->body_len);
	snprintf(r->sha256, sizeof(r->sha256), "%s", resp->peer_sha256);
	free(r->pem);
	r->pem = resp->peer_cert_pem ? strdup(resp->peer_cert_pem) : NULL;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
}

static void result_free(struct result *r)
{
	buf_free(&r->body);
	free(r->pem);
	memset(r, 0, sizeof(*r));
}

static void run_until(struct loop *l, const int *flag, int64_t ms)
{
	for (int64_t end = clk_mono_ms() + ms; !*flag && clk_mono_ms() < end;)
		loop_run_once(l, 20);
}

static void run_for(struct loop *l, int64_t ms)
{
	for (int64_t end = clk_mono_ms() + ms; clk_mono_ms() < end;)
		loop_run_once(l, 10);
}

static struct hclient *client(struct loop *l, const char *scheme, unsigned port,
                              struct hclient_config *extra)
{
	struct hclient_config cfg = extra ? *extra : (struct hclient_config){0};
	struct hclient *c;
	char url[64], msg[256];

	snprintf(url, sizeof(url), "%s://127.0.0.1:%u", scheme, port);
	cfg.loop = l;
	cfg.url = url;
	assert_int_equal(hclient_new(&cfg, &c, msg, sizeof(msg)), 0);
	return c;
}

/* One request, run to its end. */
static void fetch(struct loop *l, struct hclient *c, const char *method, const char *target,
                  const char *body, unsigned flags, int64_t timeout_ms, struct result *res)
{
	const char *headers[] = {"X-Test: yes", NULL};
	struct hclient_request rq = {method,     target, headers, body, body ? strlen(body) : 0,
	                             timeout_ms, flags};

	res->done = 0;
	assert_int_equal(hclient_request(c, &rq, on_done, res, NULL), 0);
	assert_int_equal(res->done, 0); /* never from inside hclient_request */
	run_until(l, &res->done, 5000);
	assert_true(res->done);
}

struct fixture {
	struct loop *loop;
	struct cert ct, other, named;
	struct srv srv;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(sec_init(), 0);
	assert_int_equal(loop_new(&f->loop), 0);
	cert_make(&f->ct, "localhost", 1);
	cert_make(&f->other, "localhost", 1);
	cert_make(&f->named, "hub.example", 0);
	srv_start(&f->srv, f->loop, &f->ct);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	httpd_stop(f->srv.httpd);
	run_for(f->loop, 20);
	cert_free(&f->ct);
	cert_free(&f->other);
	cert_free(&f->named);
	loop_free(f->loop);
	free(f);
	return 0;
}

static unsigned srv_port(struct fixture *f)
{
	return httpd_port(f->srv.httpd);
}

/* ---- round trips and trust ---- */

static void test_get_and_post_over_tls_with_ca(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.ca_file = f->ct.path};
	struct hclient *c = client(f->loop, "https", srv_port(f), &cfg);
	struct result r = {0};

	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.data, "hello");
	assert_string_equal(r.ctype, "text/plain");
	assert_string_equal(r.sha256, f->ct.sha256);
	assert_null(r.pem);
	fetch(f->loop, c, "POST", "/echo?a=1&b=%20", "{\"x\":1}", 0, 0, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body.data, "POST /echo?a=1&b=%20 yes {\"x\":1}");
	fetch(f->loop, c, "POST", "/echo", NULL, 0, 0, &r); /* empty body, Content-Length: 0 */
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body.data, "POST /echo yes ");
	fetch(f->loop, c, "GET", "/nothing-here", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 404);
	hclient_free(c);
	result_free(&r);
}

/* An idle server keeps no timer of its own running (it used to wake the loop every second): a
 * turn of the loop with nothing to do waits as long as it is told, and a client still wakes it
 * at once; once the client has gone, the server is idle again. */
static void test_idle_server_sleeps_until_a_client_comes(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.ca_file = f->ct.path};
	struct hclient *c;
	struct result r = {0};
	int64_t t0 = clk_mono_ms();

	loop_run_once(f->loop, 1500);
	assert_true(clk_mono_ms() - t0 >= 1400);
	c = client(f->loop, "https", srv_port(f), &cfg);
	t0 = clk_mono_ms();
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_true(clk_mono_ms() - t0 < 1000);
	hclient_free(c);
	run_for(f->loop, 200); /* the server sees the connection close */
	t0 = clk_mono_ms();
	loop_run_once(f->loop, 1500);
	assert_true(clk_mono_ms() - t0 >= 1400);
	result_free(&r);
}

static void test_keepalive_reuses_connections(void **state)
{
	struct fixture *f = *state;
	struct relay rl;
	struct hclient_config cfg = {.ca_file = f->ct.path};
	struct hclient *c;
	struct result r = {0}, many[5] = {{0}};
	struct hclient_request rq = {"GET", "/hello", NULL, NULL, 0, 0, 0};

	relay_start(&rl, f->loop, srv_port(f));
	c = client(f->loop, "https", rl.port, &cfg);
	for (int i = 0; i < 5; i++) {
		fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
		assert_int_equal(r.status, 200);
	}
	assert_int_equal(rl.accepted, 1);
	assert_int_equal(hclient_conns(c), 1);
	/* Five at once: at most two connections, every request answered. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(hclient_request(c, &rq, on_done, &many[i], NULL), 0);
	for (int i = 0; i < 5; i++) {
		run_until(f->loop, &many[i].done, 5000);
		assert_int_equal(many[i].status, 200);
		result_free(&many[i]);
	}
	assert_true(rl.accepted <= 2);
	assert_true(hclient_conns(c) <= 2);
	/* A fresh request gets a connection of its own, closed after. */
	int before = rl.accepted;
	fetch(f->loop, c, "GET", "/hello", NULL, HCLIENT_FRESH, 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(rl.accepted, before + 1);
	assert_true(hclient_conns(c) <= 2);
	hclient_free(c);
	relay_stop(&rl);
	result_free(&r);
}

/* After a burst that opened two connections, requests one at a time use the connection used
 * last, and the other closes at the idle timeout: an agent whose poll is renewed alone holds
 * one connection to the hub, not two. */
static void test_one_at_a_time_keeps_one_connection(void **state)
{
	struct fixture *f = *state;
	struct relay rl;
	struct hclient_config cfg = {.ca_file = f->ct.path, .idle_timeout_ms = 400};
	struct hclient *c;
	struct result r = {0}, two[2] = {{0}};
	struct hclient_request rq = {"GET", "/hello", NULL, NULL, 0, 0, 0};

	relay_start(&rl, f->loop, srv_port(f));
	c = client(f->loop, "https", rl.port, &cfg);
	for (int i = 0; i < 2; i++)
		assert_int_equal(hclient_request(c, &rq, on_done, &two[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		run_until(f->loop, &two[i].done, 5000);
		assert_int_equal(two[i].status, 200);
		result_free(&two[i]);
	}
	assert_int_equal(hclient_conns(c), 2);
	for (int i = 0; i < 8; i++) {
		fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
		assert_int_equal(r.status, 200);
		result_free(&r);
		run_for(f->loop, 150);
	}
	assert_int_equal(hclient_conns(c), 1);
	assert_int_equal(rl.accepted, 2);
	hclient_free(c);
	relay_stop(&rl);
}

static void test_wrong_ca_is_refused(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.ca_file = f->other.path};
	struct hclient *c = client(f->loop, "https", srv_port(f), &cfg);
	struct result r = {0};

	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_FORBIDDEN);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.errmsg, "not trusted"));
	assert_int_equal(f->srv.hits, 0);
	hclient_free(c);
	result_free(&r);
}

static void test_wrong_name_is_refused_unless_names_are_not_checked(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.ca_file = f->ct.path, .tls_name = "other.example"};
	struct hclient *c = client(f->loop, "https", srv_port(f), &cfg);
	struct result r = {0};

	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_FORBIDDEN);
	assert_non_null(strstr(r.errmsg, "not trusted"));
	hclient_free(c);

	/* The right name as a DNS name, then the chain alone. */
	cfg.tls_name = "localhost";
	c = client(f->loop, "https", srv_port(f), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	hclient_free(c);
	cfg.tls_name = "other.example";
	cfg.no_verify_name = 1;
	c = client(f->loop, "https", srv_port(f), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	hclient_free(c);
	result_free(&r);
}

static void test_certificate_without_the_address_fails_name_check(void **state)
{
	struct fixture *f = *state;
	struct srv s2;
	struct hclient_config cfg = {.ca_file = f->named.path};
	struct hclient *c;
	struct result r = {0};

	srv_start(&s2, f->loop, &f->named); /* names hub.example only, not 127.0.0.1 */
	c = client(f->loop, "https", httpd_port(s2.httpd), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_FORBIDDEN);
	hclient_free(c);
	cfg.tls_name = "hub.example";
	c = client(f->loop, "https", httpd_port(s2.httpd), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	hclient_free(c);
	httpd_stop(s2.httpd);
	result_free(&r);
}

static void test_pin_match_and_mismatch(void **state)
{
	struct fixture *f = *state;
	char pin[80];
	struct hclient_config cfg = {0};
	struct hclient *c;
	struct result r = {0};

	/* As the hub prints it: upper case with the prefix. */
	snprintf(pin, sizeof(pin), "SHA256:%s", f->ct.sha256);
	for (char *p = pin + 7; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	cfg.pin_sha256 = pin;
	c = client(f->loop, "https", srv_port(f), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 200);
	hclient_free(c);

	cfg.pin_sha256 = f->other.sha256;
	c = client(f->loop, "https", srv_port(f), &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_FORBIDDEN);
	assert_non_null(strstr(r.errmsg, "not the pinned"));
	assert_non_null(strstr(r.errmsg, f->ct.sha256));
	assert_string_equal(r.sha256, f->ct.sha256);
	hclient_free(c);

	cfg.pin_sha256 = "sha256:1234";
	char msg[200];
	cfg.loop = f->loop;
	cfg.url = "https://127.0.0.1:1";
	assert_int_equal(hclient_new(&cfg, &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	result_free(&r);
}

static void test_first_use_reads_the_certificate_then_pins_it(void **state)
{
	struct fixture *f = *state;
	struct hclient *c = client(f->loop, "https", srv_port(f), NULL);
	struct result r = {0};

	fetch(f->loop, c, "GET", "/hello", NULL, HCLIENT_PEER_CERT | HCLIENT_FRESH, 0, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.pem);
	assert_string_equal(r.pem, f->ct.pem);
	assert_string_equal(r.sha256, f->ct.sha256);
	assert_int_equal(hclient_conns(c), 0); /* fresh: closed after */
	assert_int_equal(hclient_set_pin(c, r.sha256), 0);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_null(r.pem);
	/* Pinned to something else: the idle connection goes, the next one is refused. */
	assert_int_equal(hclient_conns(c), 1);
	assert_int_equal(hclient_set_pin(c, f->other.sha256), 0);
	assert_int_equal(hclient_conns(c), 0);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_FORBIDDEN);
	assert_int_equal(hclient_set_pin(c, "nope"), OUTPOST_E_BAD_ARGS);
	hclient_free(c);
	result_free(&r);
}

/* ---- time and size ---- */

static void test_request_timeout(void **state)
{
	struct fixture *f = *state;
	struct hclient *c = client(f->loop, "https", srv_port(f), NULL);
	struct result r = {0};
	int64_t t0 = clk_mono_ms();

	fetch(f->loop, c, "GET", "/never", NULL, 0, 300, &r);
	assert_int_equal(r.err, OUTPOST_E_TIMEOUT);
	assert_true(clk_mono_ms() - t0 >= 290);
	assert_true(clk_mono_ms() - t0 < 2000);
	assert_int_equal(hclient_conns(c), 0); /* half a conversation is not reused */
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	hclient_free(c);
	result_free(&r);
}

static void test_connect_timeout_covers_the_handshake(void **state)
{
	struct fixture *f = *state;
	struct raw s;
	struct hclient_config cfg = {.connect_timeout_ms = 200};
	struct hclient *c;
	struct result r = {0};

	raw_start(&s, f->loop, NULL, 0);
	s.silent = 1; /* takes the connection, never speaks TLS */
	c = client(f->loop, "https", s.port, &cfg);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 5000, &r);
	assert_int_equal(r.err, OUTPOST_E_TIMEOUT);
	assert_non_null(strstr(r.errmsg, "connecting"));
	hclient_free(c);
	raw_stop(&s);
	result_free(&r);
}

static void test_connection_refused(void **state)
{
	struct fixture *f = *state;
	unsigned port;
	int fd = listen_any(&port);
	struct hclient *c;
	struct result r = {0};

	close(fd); /* nobody listens there now */
	c = client(f->loop, "http", port, NULL);
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_UNAVAILABLE);
	assert_non_null(strstr(r.errmsg, "refused"));
	assert_int_equal(hclient_conns(c), 0);
	hclient_free(c);
	result_free(&r);
}

/* outpost-sim spreads its agents over 127.0.x.y: the server sees the source asked for. */
static void test_connections_leave_from_the_source_address(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.ca_file = f->ct.path, .source_addr = "127.0.3.77"};
	struct hclient *c = client(f->loop, "https", srv_port(f), &cfg);
	struct hclient *bad;
	struct result r = {0};
	char msg[256];

	fetch(f->loop, c, "GET", "/peer", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.data, "127.0.3.77");
	hclient_free(c);
	result_free(&r);
	cfg.url = "https://127.0.0.1:1";
	cfg.loop = f->loop;
	cfg.source_addr = "127.0.3";
	assert_int_equal(hclient_new(&cfg, &bad, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "source address"));
}

static void test_oversized_answer_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct hclient_config cfg = {.max_response = 1000};
	struct hclient *c = client(f->loop, "https", srv_port(f), &cfg);
	struct result r = {0};

	fetch(f->loop, c, "GET", "/big", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_TOO_LARGE);
	fetch(f->loop, c, "GET", "/hello", NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	hclient_free(c);
	result_free(&r);
}

/* ---- cancel ---- */

static void free_in_callback(void *arg, const struct hclient_response *resp)
{
	struct hclient **c = arg;
	hclient_free(*c);
	*c = NULL;
}

static void test_cancel_and_free_never_call_back(void **state)
{
	struct fixture *f = *state;
	struct hclient *c = client(f->loop, "https", srv_port(f), NULL);
	struct result r1 = {0}, r2 = {0}, r3 = {0};
	struct hclient_req *h1, *h2;
	struct hclient_request never = {"GET", "/never", NULL, NULL, 0, 0, 0};
	struct hclient_request hello = {"GET", "/hello", NULL, NULL, 0, 0, 0};

	/* Cancelled while waiting for its answer, and while queued. */
	assert_int_equal(hclient_request(c, &never, on_done, &r1, &h1), 0);
	run_for(f->loop, 100);
	hclient_cancel(h1);
	assert_int_equal(hclient_request(c, &hello, on_done, &r2, &h2), 0);
	hclient_cancel(h2);
	hclient_cancel(NULL);
	assert_int_equal(hclient_request(c, &hello, on_done, &r3, NULL), 0);
	run_until(f->loop, &r3.done, 5000);
	assert_int_equal(r3.status, 200);
	run_for(f->loop, 100);
	assert_int_equal(r1.calls + r2.calls, 0);

	/* Freed with requests in flight. */
	assert_int_equal(hclient_request(c, &never, on_done, &r1, NULL), 0);
	assert_int_equal(hclient_request(c, &hello, on_done, &r2, NULL), 0);
	hclient_free(c);
	run_for(f->loop, 200);
	assert_int_equal(r1.calls + r2.calls, 0);

	/* Freed from a callback, with another request in flight. */
	c = client(f->loop, "https", srv_port(f), NULL);
	assert_int_equal(hclient_request(c, &never, on_done, &r1, NULL), 0);
	assert_int_equal(hclient_request(c, &hello, free_in_callback, &c, NULL), 0);
	for (int64_t end = clk_mono_ms() + 5000; c && clk_mono_ms() < end;)
		loop_run_once(f->loop, 20);
	assert_null(c);
	run_for(f->loop, 100);
	assert_int_equal(r1.calls, 0);
	result_free(&r1);
	result_free(&r2);
	result_free(&r3);
}

static void test_bad_requests_are_refused(void **state)
{
	struct fixture *f = *state;
	struct hclient *c = client(f->loop, "http", 1, NULL);
	struct result r = {0};
	const char *crlf[] = {"X-A: b\r\nX-Evil: 1", NULL};
	const char *noname[] = {": b", NULL};
	struct hclient_request bad[] = {
	    {"GET", "hello", NULL, NULL, 0, 0, 0},      {"GET", "/a b", NULL, NULL, 0, 0, 0},
	    {"GET", "/a\r\nX: y", NULL, NULL, 0, 0, 0}, {"G T", "/", NULL, NULL, 0, 0, 0},
	    {"GET", "/", crlf, NULL, 0, 0, 0},          {"GET", "/", noname, NULL, 0, 0, 0},
	    {"POST", "/", NULL, NULL, 3, 0, 0},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hclient_request(c, &bad[i], on_done, &r, NULL),
		                 OUTPOST_E_BAD_ARGS);
	run_for(f->loop, 50);
	assert_int_equal(r.calls, 0);
	hclient_free(c);
}

/* ---- framing, against the raw server ---- */

static void test_chunked_and_close_delimited_answers(void **state)
{
	struct fixture *f = *state;
	static const struct answer answers[] = {
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: a/b\r\n\r\n"
	     "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
	     0, 0},
	    /* same connection: kept alive */
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: "
	     "Chunked\r\n\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
	     0, 0},
	    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0,
	     0},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 0, 1},
	    {"HTTP/1.0 200 OK\r\n\r\nuntil the end", 0, 1},
	    {"HTTP/1.1 200 OK\n\nbare newlines", 0, 1},
	};
	struct raw s;
	struct hclient *c;
	struct result r = {0};

	raw_start(&s, f->loop, answers, sizeof(answers) / sizeof(answers[0]));
	c = client(f->loop, "http", s.port, NULL);
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body.data, "hello, world");
	assert_string_equal(r.ctype, "a/b");
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_string_equal(r.body.data, "abcdefghijklmnopqrstuvwxyz");
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.body.len, 0);
	assert_int_equal(s.accepted, 1);
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_string_equal(r.body.data, "ok");
	assert_int_equal(hclient_conns(c), 0); /* Connection: close respected */
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body.data, "until the end");
	assert_int_equal(s.accepted, 2);
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body.data, "bare newlines");
	assert_int_equal(s.accepted, 3);
	hclient_free(c);
	raw_stop(&s);
	result_free(&r);
}

static void test_reused_connection_closed_by_server_is_retried_once(void **state)
{
	struct fixture *f = *state;
	static const struct answer answers[] = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 0, 0},
	    {NULL, 0, 0}, /* the server closed it meanwhile */
	    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0, 0},
	    {NULL, 0, 0}, /* a new connection that dies is not retried */
	};
	struct raw s;
	struct hclient *c;
	struct result r = {0};

	raw_start(&s, f->loop, answers, 4);
	c = client(f->loop, "http", s.port, NULL);
	fetch(f->loop, c, "POST", "/results", "{}", 0, 0, &r);
	assert_string_equal(r.body.data, "one");
	fetch(f->loop, c, "POST", "/results", "{}", 0, 0, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body.data, "two");
	assert_int_equal(s.accepted, 2);
	assert_int_equal(s.requests, 3);
	hclient_free(c);
	/* A first request on a new connection that dies is not sent again. */
	c = client(f->loop, "http", s.port, NULL);
	fetch(f->loop, c, "GET", "/", NULL, 0, 0, &r);
	assert_int_equal(r.err, OUTPOST_E_UNAVAILABLE);
	assert_non_null(strstr(r.errmsg, "without answering"));
	assert_int_equal(s.requests, 4);
	hclient_free(c);
	raw_stop(&s);
	result_free(&r);
}

struct hostile {
	const char *name;
	struct answer a;
	int err;
};

static char *repeat(const char *head, char ch, size_t n, const char *tail)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, head);
	for (size_t i = 0; i < n; i++)
		buf_append(&b, &ch, 1);
	buf_puts(&b, tail);
	return buf_steal(&b);
}

static void test_hostile_answers_are_refused(void **state)
{
	struct fixture *f = *state;
	char *long_status = repeat("HTTP/1.1 200 ", 'A', 9000, "\r\n\r\n");
	char *endless_status = repeat("HTTP/1.1 200 ", 'A', 100000, "");
	char *long_header = repeat("HTTP/1.1 200 OK\r\nX-Long: ", 'B', 9000, "\r\n\r\n");
	char *long_chunk_line = repeat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;",
	                               'e', 2000, "\r\nx\r\n0\r\n\r\n");
	struct buf many = BUF_INIT, huge = BUF_INIT, trailers = BUF_INIT;
	struct hclient_config cfg = {.max_response = 4096};
	static const char nul_header[] =
	    "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n";

	buf_puts(&many, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 101; i++)
		buf_printf(&many, "X-H%d: v\r\n", i);
	buf_puts(&many, "Content-Length: 0\r\n\r\n");
	buf_puts(&huge, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 90; i++)
		buf_printf(&huge, "X-H%d: %0800d\r\n", i, 0);
	buf_puts(&huge, "Content-Length: 0\r\n\r\n");
	buf_puts(&trailers, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
	for (int i = 0; i < 101; i++)
		buf_printf(&trailers, "X-T%d: v\r\n", i);
	buf_puts(&trailers, "\r\n");

	const struct hostile cases[] = {
	    {"status line too long", {long_status, 0, 1}, OUTPOST_E_TOO_LARGE},
	    {"status line without end", {endless_status, 0, 0}, OUTPOST_E_TOO_LARGE},
	    {"header line too long", {long_header, 0, 1}, OUTPOST_E_TOO_LARGE},
	    {"too many headers", {many.data, 0, 1}, OUTPOST_E_TOO_LARGE},
	    {"headers too large", {huge.data, 0, 1}, OUTPOST_E_TOO_LARGE},
	    {"too many trailers", {trailers.data, 0, 1}, OUTPOST_E_TOO_LARGE},
	    {"not http", {"SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"bad version", {"HTTP/2.0 200 OK\r\n\r\n", 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"bad status", {"HTTP/1.1 2x0 OK\r\n\r\n", 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"status 999", {"HTTP/1.1 999 OK\r\n\r\n", 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"switching protocols", {"HTTP/1.1 101 Go\r\n\r\n", 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"header without colon",
	     {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"header name with space",
	     {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"folded header",
	     {"HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 0\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"NUL in a header", {nul_header, sizeof(nul_header) - 1, 1}, OUTPOST_E_UNAVAILABLE},
	    {"CR inside a line",
	     {"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"negative length",
	     {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"length overflow",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"two lengths",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"length list",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"length over the cap",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", 0, 1},
	     OUTPOST_E_TOO_LARGE},
	    {"more than declared",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"less than declared",
	     {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"gzip encoding",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"bad chunk size",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"negative chunk size",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nab\r\n0\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"empty chunk size",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"chunk size overflow",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nab\r\n", 0,
	      1},
	     OUTPOST_E_UNAVAILABLE},
	    {"chunk over the cap",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\nab\r\n", 0, 1},
	     OUTPOST_E_TOO_LARGE},
	    {"chunk longer than its size",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 0,
	      1},
	     OUTPOST_E_UNAVAILABLE},
	    {"chunk line too long", {long_chunk_line, 0, 1}, OUTPOST_E_UNAVAILABLE},
	    {"chunks then close",
	     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0, 1},
	     OUTPOST_E_UNAVAILABLE},
	    {"silence then close", {NULL, 0, 0}, OUTPOST_E_UNAVAILABLE},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct answer *answers = calloc(n, sizeof(*answers));
	struct raw s;
	struct hclient *c;
	struct result r = {0};

	for (size_t i = 0; i < n; i++)
		answers[i] = cases[i].a;
	raw_start(&s, f->loop, answers, n);
	c = client(f->loop, "http", s.port, &cfg);
	for (size_t i = 0; i < n; i++) {
		fetch(f->loop, c, "GET", "/", NULL, 0, 3000, &r);
		if (r.err != cases[i].err)
			fail_msg("%s: err %d (%s), want %d", cases[i].name, r.err, r.errmsg,
			         cases[i].err);
		assert_int_equal(r.status, 0);
		/* The connection is never kept after a bad answer. */
		assert_int_equal(hclient_conns(c), 0);
	}
	assert_int_equal(s.accepted, (int)n);
	hclient_free(c);
	raw_stop(&s);
	free(answers);
	free(long_status);
	free(endless_status);
	free(long_header);
	free(long_chunk_line);
	buf_free(&many);
	buf_free(&huge);
	buf_free(&trailers);
	result_free(&r);
}

/* ---- parsing helpers ---- */

static void test_url_and_pin_parsing(void **state)
{
	struct hclient_url u;
	char pin[65];
	struct hclient *c;
	struct hclient_config cfg = {0};
	char msg[200];

	assert_int_equal(hclient_url_parse("https://10.0.0.1:8443", &u), 0);
	assert_true(u.https);
	assert_string_equal(u.host, "10.0.0.1");
	assert_int_equal(u.port, 8443);
	assert_string_equal(u.rest, "");
	assert_int_equal(hclient_url_parse("HTTP://[::1]/", &u), 0);
	assert_false(u.https);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 80);
	assert_string_equal(u.rest, "/");
	assert_int_equal(hclient_url_parse("https://hub.example.com?x#y", &u), 0);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.rest, "?x#y");
	assert_int_equal(hclient_url_parse("https://me@hub:1/a", &u), 0);
	assert_true(u.userinfo);
	assert_string_equal(u.host, "hub");
	assert_string_equal(u.rest, "/a");
	const char *bad[] = {"ftp://x",        "https://",        "https://:443",  "https://h:",
	                     "https://h:0",    "https://h:65536", "https://h:12x", "https://[::1",
	                     "https://[zz]:1", "https://h h",     "https://h%2f",  "hub:443"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hclient_url_parse(bad[i], &u) == 0)
			fail_msg("%s parsed", bad[i]);

	assert_int_equal(hclient_pin_parse("sha256:AB:cd:"
	                                   "0000000000000000000000000000000000000000"
	                                   "00000000000000000000",
	                                   pin),
	                 0);
	assert_int_equal(strncmp(pin, "abcd00", 6), 0);
	assert_int_equal(hclient_pin_parse("abc", pin), -1);
	assert_int_equal(hclient_pin_parse("sha256:zz", pin), -1);

	cfg.loop = (struct loop *)&cfg; /* not used by hclient_new beyond storing it */
	cfg.url = "https://hub:1/api";
	assert_int_equal(hclient_new(&cfg, &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	cfg.url = "https://hub:1";
	cfg.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(hclient_new(&cfg, &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "/nonexistent/ca.pem"));
	cfg.ca_file = NULL;
	assert_int_equal(hclient_new(&cfg, &c, msg, sizeof(msg)), 0);
	hclient_free(c);
	hclient_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_and_pin_parsing),
	    cmocka_unit_test_setup_teardown(test_get_and_post_over_tls_with_ca, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connections_leave_from_the_source_address, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_keepalive_reuses_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_at_a_time_keeps_one_connection, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_idle_server_sleeps_until_a_client_comes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_ca_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_name_is_refused_unless_names_are_not_checked,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_certificate_without_the_address_fails_name_check,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pin_match_and_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_use_reads_the_certificate_then_pins_it,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_timeout_covers_the_handshake, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_answer_is_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_and_free_never_call_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunked_and_close_delimited_answers, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_reused_connection_closed_by_server_is_retried_once,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_answers_are_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
