/* Tests for src/agent/agent_conf.c: the schema and struct agent_conf agree, defaults, checks
 * past the schema, and what a reload applies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/agent_conf.h"
#include "core/log.h"
#include <outpost/plugin.h>

static void test_schema_and_struct_agree(void **state)
{
	char msg[256] = "";

	if (conf_schema_verify(agent_conf_kind.schema, agent_conf_kind.size, msg, sizeof(msg)) < 0)
		fail_msg("agent_schema and struct agent_conf disagree: %s", msg);
}

static json_t *agent_conf_with(const char *key, json_t *v)
{
	json_t *c = agent_conf_defaults();

	conf_set(c, "state_dir", json_string("/tmp/agent-conf-test"));
	conf_set(c, "listen", json_string("127.0.0.1:0"));
	if (key)
		conf_set(c, key, v);
	return c;
}

static void test_read_fills_the_struct_from_defaults_and_file(void **state)
{
	struct agent_conf *c;
	char msg[256];
	json_t *j = agent_conf_with("hub.url", json_string("https://hub.example:7443"));

	conf_set(j, "dispatch.workers", json_integer(7));
	assert_int_equal(conf_new(&agent_conf_kind, j, (void **)&c, msg, sizeof(msg)), 0);
	assert_string_equal(c->hub.link.url, "https://hub.example:7443");
	assert_null(c->hub.link.token);
	assert_string_equal(c->hub.mode, "http");
	assert_int_equal(c->hub.spool_max_bytes, 64 << 20);
	assert_int_equal(c->dispatch.workers, 7);
	assert_int_equal(c->api.body_limit, 16 << 20);
	assert_int_equal(c->api.group_ops.n, 3);
	assert_string_equal(c->api.group_ops.v[0], "metrics.push");
	assert_int_equal(json_integer_value(json_object_get(c->dispatch.timeouts, "exec.run")),
	                 3600000);
	assert_int_equal(c->zk.session_timeout_ms, 0); /* none: the hub's */
	conf_free(c);
	json_decref(j);
}

static void test_read_refuses_with_the_key_named(void **state)
{
	struct agent_conf *c = (void *)1;
	char msg[256];
	json_t *j = agent_conf_with("hub.mode", json_string("carrier-pigeon"));

	assert_int_equal(conf_new(&agent_conf_kind, j, (void **)&c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_null(c);
	assert_non_null(strstr(msg, "'hub.mode' must be"));
	json_decref(j);
	j = agent_conf_with("ledger.keep_dyas", json_integer(3));
	assert_int_equal(conf_new(&agent_conf_kind, j, (void **)&c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'ledger.keep_dyas'");
	json_decref(j);
}

/* listen and hub.url need a restart: a reload keeps them; ledger.keep_days is applied. */
static void test_reload_applies_reloadable_keys_only(void **state)
{
	struct agent_conf *cur, *next = NULL;
	struct logger lg;
	char msg[256];
	json_t *j = agent_conf_with(NULL, NULL), *k = agent_conf_with(NULL, NULL);

	log_init(&lg, "agent_conf_test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(conf_new(&agent_conf_kind, j, (void **)&cur, msg, sizeof(msg)), 0);
	conf_set(k, "listen", json_string("127.0.0.1:7071"));
	conf_set(k, "hub.url", json_string("https://elsewhere:7443"));
	conf_set(k, "ledger.keep_days", json_integer(3));
	assert_int_equal(
	    conf_reload(&agent_conf_kind, cur, k, &lg, (void **)&next, msg, sizeof(msg)), 0);
	assert_string_equal(next->listen, "127.0.0.1:0");
	assert_null(next->hub.link.url);
	assert_int_equal(next->ledger.keep_days, 3);
	conf_free(cur);
	conf_free(next);
	json_decref(j);
	json_decref(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schema_and_struct_agree),
	    cmocka_unit_test(test_read_fills_the_struct_from_defaults_and_file),
	    cmocka_unit_test(test_read_refuses_with_the_key_named),
	    cmocka_unit_test(test_reload_applies_reloadable_keys_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
