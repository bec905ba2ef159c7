/* Tests for src/core/httpd.c over real sockets on loopback: how a request finds its route, that
 * a body is held to its route's limit as it arrives (the handler never sees one over it), and
 * that credentials are checked when the headers arrive, before any body is read. The server
 * runs on the test's loop; a client thread speaks raw HTTP/1.1 to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/httpd.h"
#include "core/log.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROLE_KEY 1 /* the route needs "X-Key: yes" */

struct fx {
	struct loop *loop;
	struct httpd *h;
	struct logger log;
	unsigned port;
	int handled;      /* handler calls */
	size_t body_seen; /* bytes of body the last handler call saw */
	int auth_headers; /* calls of the headers-time check */
	int auth_body;    /* calls of the after-body check */
	const char *reqs[4];
	char *replies[4];
};

static void on_echo(void *ctx, struct httpd_req *req)
{
	struct fx *f = ctx;
	size_t len;

	f->handled++;
	httpd_req_body(req, &len);
	f->body_seen = len;
	httpd_respond_ok(req, json_pack("{s:s, s:s, s:I}", "path", httpd_req_path(req), "tail",
	                                httpd_req_tail(req), "body", (json_int_t)len));
}

static int check_key(struct httpd_req *req)
{
	const char *k = httpd_req_header(req, "X-Key");

	if (k && strcmp(k, "yes") == 0)
		return 0;
	httpd_respond_error(req, OUTPOST_E_UNAUTHORIZED, "no key");
	return OUTPOST_E_UNAUTHORIZED;
}

static int on_auth_headers(void *ctx, struct httpd_req *req, int role)
{
	struct fx *f = ctx;

	f->auth_headers++;
	return role == ROLE_KEY ? check_key(req) : 0;
}

static int on_auth(void *ctx, struct httpd_req *req, int role)
{
	struct fx *f = ctx;

	f->auth_body++;
	return role == ROLE_KEY ? check_key(req) : 0;
}

static const struct httpd_route routes[] = {
    {"GET", "/exact", on_echo, 0, 0},
    {"POST", "/small", on_echo, 0, 16},
    {"GET", "/pre/*", on_echo, 0, 0},
    {"POST", "/keyed", on_echo, ROLE_KEY, 1 << 20},
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct httpd_config cfg = {
	    .listen = "127.0.0.1:0",
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .ctx = f,
	    .auth = on_auth,
	    .auth_headers = on_auth_headers,
	    .log = &f->log,
	};
	char msg[256];

	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&f->loop), 0);
	assert_int_equal(httpd_start(f->loop, &cfg, &f->h, msg, sizeof(msg)), 0);
	f->port = httpd_port(f->h);
	assert_true(f->port > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	httpd_stop(f->h);
	loop_free(f->loop);
	for (size_t i = 0; i < 4; i++)
		free(f->replies[i]);
	free(f);
	return 0;
}

/* One request on its own connection; the whole answer (the server closes: Connection: close). */
static char *exchange(unsigned port, const char *req)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	size_t cap = 65536, n = 0;
	char *out = calloc(1, cap + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	ssize_t k;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return out;
	}
	for (size_t off = 0, len = strlen(req); off < len; off += (size_t)k)
		if ((k = send(fd, req + off, len - off, MSG_NOSIGNAL)) <= 0)
			break;
	while (n < cap && (k = recv(fd, out + n, cap - n, 0)) > 0)
		n += (size_t)k;
	close(fd);
	return out;
}

static void *client(void *arg)
{
	struct fx *f = arg;

	for (size_t i = 0; i < 4 && f->reqs[i]; i++)
		f->replies[i] = exchange(f->port, f->reqs[i]);
	loop_stop(f->loop);
	return NULL;
}

/* Sends f->reqs in turn while the loop serves them; f->replies gets the answers. */
static void run(struct fx *f)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, client, f), 0);
	loop_run(f->loop);
	pthread_join(t, NULL);
}

static int status_of(const char *reply)
{
	int s = 0;

	return sscanf(reply, "HTTP/1.1 %d", &s) == 1 ? s : 0;
}

static void test_route_exact_path_and_method(void **state)
{
	struct fx *f = *state;

	f->reqs[0] = "GET /exact HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	f->reqs[1] = "POST /exact HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Content-Length: 0\r\n\r\n";
	f->reqs[2] = "GET /exactly HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	f->reqs[3] = "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	run(f);
	assert_int_equal(status_of(f->replies[0]), 200);
	assert_non_null(strstr(f->replies[0], "\"path\":\"/exact\""));
	/* A known path with another method, an exact route's path with more after it, and an
	 * unknown path: each not_found, in the envelope, and no handler ran. */
	assert_int_equal(status_of(f->replies[1]), 404);
	assert_non_null(strstr(f->replies[1], "method POST not allowed on /exact"));
	assert_non_null(strstr(f->replies[1], "{\"ok\":false,\"error\":{\"code\":\"not_found\""));
	assert_int_equal(status_of(f->replies[2]), 404);
	assert_non_null(strstr(f->replies[2], "no such endpoint: /exactly"));
	assert_int_equal(status_of(f->replies[3]), 404);
	assert_int_equal(f->handled, 1);
}

static void test_route_prefix_hands_the_tail(void **state)
{
	struct fx *f = *state;

	f->reqs[0] = "GET /pre/web-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	f->reqs[1] = "GET /pre HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	run(f);
	assert_int_equal(status_of(f->replies[0]), 200);
	assert_non_null(strstr(f->replies[0], "\"tail\":\"web-1\""));
	assert_int_equal(status_of(f->replies[1]), 404);
	assert_int_equal(f->handled, 1);
}

/* A body within the limit reaches the handler whole; one declared over it is refused when the
 * headers arrive, and one that grows past it without saying (chunked) is dropped as it
 * arrives: the handler never runs for either. */
static void test_body_limit_holds_as_it_arrives(void **state)
{
	struct fx *f = *state;

	f->reqs[0] = "POST /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Content-Length: 16\r\n\r\n{\"a\":\"01234567\"}";
	f->reqs[1] = "POST /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Content-Length: 17\r\n\r\n{\"a\":\"012345678\"}";
	f->reqs[2] = "POST /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Transfer-Encoding: chunked\r\n\r\n"
	             "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
	f->reqs[3] = "GET /exact HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Content-Length: 2\r\n\r\n{}";
	run(f);
	assert_int_equal(status_of(f->replies[0]), 200);
	assert_non_null(strstr(f->replies[0], "\"body\":16"));
	assert_int_equal(status_of(f->replies[1]), 413);
	assert_non_null(strstr(f->replies[1], "\"code\":\"too_large\""));
	assert_non_null(strstr(f->replies[1], "limit of 16"));
	assert_int_equal(status_of(f->replies[2]), 413);
	/* A route that takes no body refuses any. */
	assert_int_equal(status_of(f->replies[3]), 413);
	assert_int_equal(f->handled, 1);
	assert_int_equal(f->body_seen, 16);
}

/* Credentials are checked once the headers are in: a caller without them is refused before
 * the server reads the body (so it cannot make it buffer one), and neither the after-body check
 * nor the handler runs. With them, the body is read and both run. */
static void test_auth_before_body(void **state)
{
	struct fx *f = *state;

	f->reqs[0] = "POST /keyed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	             "Content-Length: 10\r\n\r\n0123456789";
	f->reqs[1] = "POST /keyed HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Key: yes\r\n"
	             "Content-Length: 10\r\n\r\n0123456789";
	run(f);
	assert_int_equal(status_of(f->replies[0]), 401);
	assert_non_null(strstr(f->replies[0], "\"code\":\"unauthorized\""));
	assert_int_equal(status_of(f->replies[1]), 200);
	assert_non_null(strstr(f->replies[1], "\"body\":10"));
	assert_int_equal(f->auth_headers, 2);
	assert_int_equal(f->auth_body, 1); /* only the request that got in */
	assert_int_equal(f->handled, 1);
}

/* A body declared larger than the route takes is refused when the headers arrive, without
 * waiting for a byte of it: neither the after-body check nor the handler runs. */
static void test_declared_oversize_is_refused_at_the_headers(void **state)
{
	struct fx *f = *state;

	f->reqs[0] = "POST /keyed HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Key: yes\r\n"
	             "Content-Length: 999999999999\r\n\r\n";
	run(f);
	assert_int_equal(status_of(f->replies[0]), 413);
	assert_int_equal(f->auth_body, 0);
	assert_int_equal(f->handled, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_route_exact_path_and_method, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_route_prefix_hands_the_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_limit_holds_as_it_arrives, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_before_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_declared_oversize_is_refused_at_the_headers, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
