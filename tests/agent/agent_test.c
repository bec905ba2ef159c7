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
#include "support/tmpdir.h"

#include <arpa/inet.h>
#include <sqlite3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct client {
	unsigned port;
	const char *token; /* the agent's local API token */
	const char *path;  /* NULL: /v1/exec/run */
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
		         "POST %s HTTP/1.0\r\nContent-Type: application/json\r\n"
		         "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
		         c->path ? c->path : "/v1/exec/run", c->token, strlen(c->body), c->body);
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

static void call_path(struct loop *l, struct agent *a, const char *path, const char *body,
                      char *out, size_t outlen)
{
	struct client c = {
	    .port = agent_port(a), .token = agent_api_token(a), .path = path, .body = body};
	pthread_t th;

	pthread_create(&th, NULL, client_main, &c);
	for (int64_t end = clk_mono_ms() + 10000;
	     !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && clk_mono_ms() < end;)
		loop_run_once(l, 20);
	pthread_join(th, NULL);
	snprintf(out, outlen, "%s", c.reply);
}

static void call(struct loop *l, struct agent *a, const char *body, char *out, size_t outlen)
{
	call_path(l, a, NULL, body, out, outlen);
}

static void test_two_agents_share_one_loop_with_separate_state(void **state)
{
	char d1[TMPDIR_LEN], d2[TMPDIR_LEN], msg[512], r[8192];
	struct logger lg;
	struct loop *l;
	struct agent *a1 = NULL, *a2 = NULL;
	json_t *c1, *c2;
	const char *body = "{\"args\":{\"argv\":[\"echo\",\"hi\"]},\"id\":\"same-id\"}";
	const char *other = "{\"args\":{\"argv\":[\"echo\",\"other\"]},\"id\":\"same-id\"}";

	assert_int_equal(tmpdir_make(d1, "a1"), 0);
	assert_int_equal(tmpdir_make(d2, "a2"), 0);
	log_init(&lg, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&l), 0);
	c1 = conf_for(d1);
	c2 = conf_for(d2);
	assert_int_equal(agent_new(l, builtin_plugins, c1, &lg, &a1, msg, sizeof(msg)), 0);
	assert_int_equal(agent_new(l, builtin_plugins, c2, &lg, &a2, msg, sizeof(msg)), 0);
	assert_int_not_equal(agent_port(a1), agent_port(a2));

	call(l, a1, body, r, sizeof(r));
	assert_non_null(strstr(r, "200 OK"));
	assert_non_null(strstr(r, "\"stdout\":\"hi\\n\""));
	assert_null(strstr(r, "\"replay\""));
	/* The same id on the other agent is its own ledger's business: it runs there too. */
	call(l, a2, body, r, sizeof(r));
	assert_non_null(strstr(r, "\"stdout\":\"hi\\n\""));
	assert_null(strstr(r, "\"replay\""));
	/* And each ledger remembers its own: another call with that id is a conflict on a1. */
	call(l, a1, other, r, sizeof(r));
	assert_non_null(strstr(r, "409"));
	assert_non_null(strstr(r, "\"conflict\""));

	agent_free(a1);
	agent_free(a2);
	loop_free(l);
	json_decref(c1);
	json_decref(c2);
	tmpdir_remove(d1);
	tmpdir_remove(d2);
}

static void test_second_agent_on_one_state_dir_is_refused(void **state)
{
	char d[TMPDIR_LEN], msg[512] = "";
	struct logger lg;
	struct loop *l;
	struct agent *a1 = NULL, *a2 = NULL;
	json_t *c;

	assert_int_equal(tmpdir_make(d, "a3"), 0);
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
	tmpdir_remove(d);
}

/* ---- a local API, a hub, or both ---- */

static void test_agent_with_neither_local_api_nor_hub_is_refused(void **state)
{
	char d[TMPDIR_LEN], msg[512] = "";
	struct logger lg;
	struct loop *l;
	struct agent *a = NULL;
	json_t *c;

	assert_int_equal(tmpdir_make(d, "a5"), 0);
	log_init(&lg, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&l), 0);
	c = conf_for(d);
	conf_set(c, "listen", json_string(""));
	assert_int_equal(agent_conf_check(c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "set 'listen' or 'socket' for a local API, or 'hub.url'"));
	msg[0] = '\0';
	assert_true(agent_new(l, builtin_plugins, c, &lg, &a, msg, sizeof(msg)) < 0);
	assert_null(a);
	assert_non_null(strstr(msg, "no local API and no hub"));
	loop_free(l);
	json_decref(c);
	tmpdir_remove(d);
}

static void on_drained(void *arg)
{
	*(int *)arg = 1;
}

/* A link-only agent: nothing listens on the host, it runs and stops like any other. */
static void test_link_only_agent_listens_on_nothing_and_stops_cleanly(void **state)
{
	char d[TMPDIR_LEN], msg[512] = "";
	struct logger lg;
	struct loop *l;
	struct agent *a = NULL;
	int drained = 0;
	json_t *c;

	assert_int_equal(tmpdir_make(d, "a6"), 0);
	log_init(&lg, "test", -1, LOG_TO_STDERR); /* the link cannot reach its hub: quiet */
	assert_int_equal(loop_new(&l), 0);
	c = conf_for(d);
	conf_set(c, "listen", json_string(""));
	conf_set(c, "hub.url", json_string("http://127.0.0.1:1"));
	conf_set(c, "hub.host_id", json_string("link-only-1"));
	assert_int_equal(agent_conf_check(c, msg, sizeof(msg)), 0);
	assert_int_equal(agent_new(l, builtin_plugins, c, &lg, &a, msg, sizeof(msg)), 0);
	assert_int_equal(agent_port(a), 0);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 10);
	agent_shutdown(a, 5000, on_drained, &drained);
	for (int64_t end = clk_mono_ms() + 5000; !drained && clk_mono_ms() < end;)
		loop_run_once(l, 20);
	assert_int_equal(drained, 1);
	agent_free(a);
	loop_free(l);
	json_decref(c);
	tmpdir_remove(d);
}

/* ---- outpost_publish from a worker and from a thread of the plugin's own ---- */

static int pub_init(struct outpost_plugin_ctx *pc, void **state)
{
	*state = pc;
	return 0;
}

struct pub_thread {
	struct outpost_plugin_ctx *pc;
	int rc;
};

static void *pub_thread_main(void *arg)
{
	struct pub_thread *p = arg;
	json_t *b = json_pack("{s:i, s:[]}", "t", 2000, "samples");

	p->rc = outpost_publish(p->pc, "metrics", b);
	json_decref(b);
	return NULL;
}

/* pub: publishes args.batch to args.stream on the worker; thread: the same from a thread of
 * its own. Answers {"rc": what outpost_publish returned}. */
static int pub_op(struct outpost_call *call, json_t *args, json_t **result)
{
	struct outpost_plugin_ctx *pc = outpost_call_state(call);
	json_t *stream = json_object_get(args, "stream");
	int rc;

	if (json_is_true(json_object_get(args, "thread"))) {
		struct pub_thread p = {pc, 0};
		pthread_t th;
		pthread_create(&th, NULL, pub_thread_main, &p);
		pthread_join(th, NULL);
		rc = p.rc;
	} else if (json_is_string(json_object_get(args, "text"))) {
		/* A buffer the plugin reuses at once: the core must have copied what it keeps. */
		json_t *t = json_object_get(args, "text");
		char *text = strdup(json_string_value(t));
		rc = outpost_publish_text(pc, stream ? json_string_value(stream) : "metrics", text,
		                          json_string_length(t));
		memset(text, 'x', json_string_length(t));
		free(text);
	} else {
		rc = outpost_publish(pc, stream ? json_string_value(stream) : "metrics",
		                     json_object_get(args, "batch"));
	}
	*result = json_pack("{s:i}", "rc", rc);
	return 0;
}

static const struct outpost_arg pub_args[] = {
    {"batch", OUTPOST_ARG_OBJECT, 0, NULL},
    {"stream", OUTPOST_ARG_STRING, 0, NULL},
    {"thread", OUTPOST_ARG_BOOL, 0, NULL},
    {"text", OUTPOST_ARG_STRING, 0, NULL},
    {NULL, 0, 0, NULL},
};
static const struct outpost_op pub_ops[] = {
    {"pub", pub_op, pub_args, 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};
static const struct outpost_plugin pub_plugin = {OUTPOST_PLUGIN_ABI, "pubtest", "1",
                                                 pub_init,           NULL,      pub_ops};
static const struct outpost_plugin *const pub_builtins[] = {&pub_plugin, NULL};

static int pub_rc(struct loop *l, struct agent *a, const char *body)
{
	char r[8192];
	const char *p;

	call_path(l, a, "/v1/pubtest/pub", body, r, sizeof(r));
	p = strstr(r, "\"rc\":");
	assert_non_null(p);
	return atoi(p + 5);
}

static long long spool_rows(const char *dir)
{
	char path[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -1;

	snprintf(path, sizeof(path), "%s/agent.db", dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM spool", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void test_publish_from_any_thread_is_spooled_on_the_loop(void **state)
{
	char d[TMPDIR_LEN], msg[512] = "";
	struct logger lg;
	struct loop *l;
	struct agent *a = NULL;
	json_t *c;

	assert_int_equal(tmpdir_make(d, "a4"), 0);
	log_init(&lg, "test", -1, LOG_TO_STDERR); /* the link cannot reach its hub: quiet */
	assert_int_equal(loop_new(&l), 0);
	c = conf_for(d);
	/* A hub nobody answers at: the batches wait in the spool. */
	conf_set(c, "hub.url", json_string("http://127.0.0.1:1"));
	conf_set(c, "hub.host_id", json_string("pub-1"));
	assert_int_equal(agent_new(l, pub_builtins, c, &lg, &a, msg, sizeof(msg)), 0);
	/* From a worker: handed to the loop, stored at its next turn. */
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"batch\":{\"t\":1000,\"samples\":[]}}}"), 0);
	/* From a thread of the plugin's own. */
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"thread\":true}}"), 0);
	loop_run_once(l, 0);
	assert_int_equal(spool_rows(d), 2);
	/* What the core refuses at once, on the caller's thread. */
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"batch\":{\"seq\":3,\"t\":1}}}"),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"stream\":\"logs\",\"batch\":{}}}"),
	                 OUTPOST_E_BAD_ARGS);
	loop_run_once(l, 0);
	assert_int_equal(spool_rows(d), 2);
	/* As text: checked by a scan, stored as it is (a copy: the plugin reuses its buffer). */
	assert_int_equal(
	    pub_rc(l, a, "{\"args\":{\"text\":\"{\\\"t\\\":3000,\\\"samples\\\":[]}\"}}"), 0);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"text\":\"{\\\"t\\\":1,\\\"seq\\\":4}\"}}"),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"text\":\"{\\\"t\\\":1,\"}}"),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"text\":\"[1]\"}}"), OUTPOST_E_BAD_ARGS);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"stream\":\"logs\",\"text\":\"{}\"}}"),
	                 OUTPOST_E_BAD_ARGS);
	loop_run_once(l, 0);
	assert_int_equal(spool_rows(d), 3);
	{
		char path[256], *got = NULL;
		sqlite3 *db;
		sqlite3_stmt *st;
		snprintf(path, sizeof(path), "%s/agent.db", d);
		assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		if (sqlite3_prepare_v2(db, "SELECT batch FROM spool ORDER BY seq DESC LIMIT 1", -1,
		                       &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			got = strndup(sqlite3_column_blob(st, 0),
			              (size_t)sqlite3_column_bytes(st, 0));
		sqlite3_finalize(st);
		sqlite3_close(db);
		assert_non_null(got);
		assert_string_equal(got, "{\"t\":3000,\"samples\":[]}");
		free(got);
	}
	/* The events stream: the same spool, each event checked where the plugin can be told. */
#define EV                                                                                         \
	"{\"kind\":\"security.passwd_changed\",\"severity\":\"warning\",\"ts\":5,"                 \
	"\"message\":\"passwd changed\",\"data\":{\"after\":\"x\"}}"
	assert_int_equal(
	    pub_rc(l, a, "{\"args\":{\"stream\":\"events\",\"batch\":{\"events\":[" EV "]}}}"), 0);
	assert_int_equal(pub_rc(l, a,
	                        "{\"args\":{\"stream\":\"events\",\"text\":"
	                        "\"{\\\"events\\\":[{\\\"kind\\\":\\\"a.b\\\",\\\"severity\\\":"
	                        "\\\"info\\\",\\\"ts\\\":1,\\\"message\\\":\\\"m\\\"}]}\"}}"),
	                 0);
	assert_int_equal(
	    pub_rc(l, a,
	           "{\"args\":{\"stream\":\"events\",\"batch\":{\"events\":[{"
	           "\"kind\":\"a\",\"severity\":\"loud\",\"ts\":1,\"message\":\"m\"}]}}}"),
	    OUTPOST_E_BAD_ARGS);
	assert_int_equal(
	    pub_rc(l, a, "{\"args\":{\"stream\":\"events\",\"batch\":{\"events\":[]}}}"),
	    OUTPOST_E_BAD_ARGS);
	assert_int_equal(pub_rc(l, a,
	                        "{\"args\":{\"stream\":\"events\",\"batch\":{\"events\":[" EV
	                        "],\"t\":1}}}"),
	                 OUTPOST_E_BAD_ARGS);
	/* A metrics batch must not pass for an events one. */
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"batch\":{\"t\":1,\"events\":[]}}}"),
	                 OUTPOST_E_BAD_ARGS);
#undef EV
	loop_run_once(l, 0);
	assert_int_equal(spool_rows(d), 5);
	agent_free(a);
	json_decref(c);

	/* An agent without a hub: unavailable, nothing stored. */
	c = conf_for(d);
	assert_int_equal(agent_new(l, pub_builtins, c, &lg, &a, msg, sizeof(msg)), 0);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"batch\":{\"t\":1000}}}"),
	                 OUTPOST_E_UNAVAILABLE);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"thread\":true}}"), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(pub_rc(l, a, "{\"args\":{\"text\":\"{}\"}}"), OUTPOST_E_UNAVAILABLE);
	loop_run_once(l, 0);
	assert_int_equal(spool_rows(d), 5);
	agent_free(a);
	loop_free(l);
	json_decref(c);
	tmpdir_remove(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_agents_share_one_loop_with_separate_state),
	    cmocka_unit_test(test_second_agent_on_one_state_dir_is_refused),
	    cmocka_unit_test(test_agent_with_neither_local_api_nor_hub_is_refused),
	    cmocka_unit_test(test_link_only_agent_listens_on_nothing_and_stops_cleanly),
	    cmocka_unit_test(test_publish_from_any_thread_is_spooled_on_the_loop),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
