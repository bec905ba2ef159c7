/* Tests for src/agent/agent.c: several agents in one process on one loop (what outpost-sim
 * needs), each with its own state, port and ledger; and the state directory lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/agent.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/loop.h"
#include "plugins/builtin.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct client {
	unsigned port;
	const char *body;
	char reply[8192];
	int done;
};

/* A plain HTTP/1.0 POST over a blocking socket, on its own thread while the loop serves. */
static void *client_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
	char req[1024];
	size_t off = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		snprintf(req, sizeof(req),
		         "POST /v1/exec/run HTTP/1.0\r\nContent-Type: application/json\r\n"
		         "Content-Length: %zu\r\n\r\n%s",
		         strlen(c->body), c->body);
		if (write(fd, req, strlen(req)) == (ssize_t)strlen(req))
			while ((n = read(fd, c->reply + off, sizeof(c->reply) - 1 - off)) > 0)
				off += (size_t)n;
	}
	c->reply[off] = '\0';
	if (fd >= 0)
		close(fd);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static json_t *conf_for(const char *dir)
{
	json_t *c = agent_conf_defaults();
	conf_set(c, "listen", json_string("127.0.0.1:0"));
	conf_set(c, "socket", json_string(""));
	conf_set(c, "state_dir", json_string(dir));
	conf_set(c, "plugin_dir", json_string(""));
	conf_set(c, "log.level", json_string("error"));
	return c;
}

static void call(struct loop *l, unsigned port, const char *body, char *out, size_t outlen)
{
	struct client c = {.port = port, .body = body};
	pthread_t th;

	pthread_create(&th, NULL, client_main, &c);
	for (int64_t end = clk_mono_ms() + 10000;
	     !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && clk_mono_ms() < end;)
		loop_run_once(l, 20);
	pthread_join(th, NULL);
	snprintf(out, outlen, "%s", c.reply);
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static void test_two_agents_share_one_loop_with_separate_state(void **state)
{
	char d1[] = "/tmp/outpost-a1-XXXXXX", d2[] = "/tmp/outpost-a2-XXXXXX", msg[512], r[8192];
	struct logger lg;
	struct loop *l;
	struct agent *a1 = NULL, *a2 = NULL;
	json_t *c1, *c2;
	const char *body = "{\"args\":{\"argv\":[\"echo\",\"hi\"]},\"id\":\"same-id\"}";
	const char *other = "{\"args\":{\"argv\":[\"echo\",\"other\"]},\"id\":\"same-id\"}";

	assert_non_null(mkdtemp(d1));
	assert_non_null(mkdtemp(d2));
	log_init(&lg, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&l), 0);
	c1 = conf_for(d1);
	c2 = conf_for(d2);
	assert_int_equal(agent_new(l, builtin_plugins, c1, &lg, &a1, msg, sizeof(msg)), 0);
	assert_int_equal(agent_new(l, builtin_plugins, c2, &lg, &a2, msg, sizeof(msg)), 0);
	assert_int_not_equal(agent_port(a1), agent_port(a2));

	call(l, agent_port(a1), body, r, sizeof(r));
	assert_non_null(strstr(r, "200 OK"));
	assert_non_null(strstr(r, "\"stdout\":\"hi\\n\""));
	assert_null(strstr(r, "\"replay\""));
	/* The same id on the other agent is its own ledger's business: it runs there too. */
	call(l, agent_port(a2), body, r, sizeof(r));
	assert_non_null(strstr(r, "\"stdout\":\"hi\\n\""));
	assert_null(strstr(r, "\"replay\""));
	/* And each ledger remembers its own: another call with that id is a conflict on a1. */
	call(l, agent_port(a1), other, r, sizeof(r));
	assert_non_null(strstr(r, "409"));
	assert_non_null(strstr(r, "\"conflict\""));

	agent_free(a1);
	agent_free(a2);
	loop_free(l);
	json_decref(c1);
	json_decref(c2);
	nftw(d1, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	nftw(d2, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_second_agent_on_one_state_dir_is_refused(void **state)
{
	char d[] = "/tmp/outpost-a3-XXXXXX", msg[512] = "";
	struct logger lg;
	struct loop *l;
	struct agent *a1 = NULL, *a2 = NULL;
	json_t *c;

	assert_non_null(mkdtemp(d));
	log_init(&lg, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&l), 0);
	c = conf_for(d);
	assert_int_equal(agent_new(l, builtin_plugins, c, &lg, &a1, msg, sizeof(msg)), 0);
	assert_true(agent_new(l, builtin_plugins, c, &lg, &a2, msg, sizeof(msg)) < 0);
	assert_null(a2);
	assert_non_null(strstr(msg, "another agent is running"));
	agent_free(a1);
	loop_free(l);
	json_decref(c);
	nftw(d, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_agents_share_one_loop_with_separate_state),
	    cmocka_unit_test(test_second_agent_on_one_state_dir_is_refused),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
