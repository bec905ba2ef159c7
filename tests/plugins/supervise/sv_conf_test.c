/* Tests for the supervise plugin's config (src/plugins/supervise/sv_conf.c): the rows and the
 * struct agree, defaults fill each agent, and every error names its key with the agent's
 * index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugins/supervise/sv_conf.h"

#include <outpost/plugin.h>

#include <stdio.h>
#include <string.h>

static void test_schema_matches_struct(void **state)
{
	char msg[256] = "";

	(void)state;
	if (conf_schema_verify(sv_conf_kind.schema, sv_conf_kind.size, msg, sizeof(msg)) < 0)
		fail_msg("sv_schema and struct sv_conf disagree: %s", msg);
}

static struct sv_conf *read_ok(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	struct sv_conf *c = NULL;
	char msg[512] = "";

	assert_non_null(j);
	if (sv_conf_new(j, &c, msg, sizeof(msg)) < 0)
		fail_msg("%s: %s", text, msg);
	json_decref(j);
	return c;
}

static void test_defaults_fill_each_agent(void **state)
{
	struct sv_conf *c =
	    read_ok("{\"agents\": [{\"name\": \"sec\", \"command\": [\"/bin/true\"], "
	            "\"memory_max\": \"64M\", \"cpu_max\": \"50%\"}]}");
	const struct sv_agent_conf *a = c->agents.v;
	char mem[32], cpu[48];

	(void)state;
	assert_int_equal(c->interval_ms, 1000);
	assert_int_equal(c->agents.n, 1);
	assert_string_equal(a->restart, "always");
	assert_int_equal(a->backoff_ms, 1000);
	assert_int_equal(a->backoff_max_ms, 60000);
	assert_int_equal(a->health_retries, 3);
	assert_int_equal(a->log_match.n, 3);
	assert_string_equal(sv_conf_binary(a), "/bin/true");
	sv_conf_limits(a, mem, cpu);
	assert_string_equal(mem, "67108864");
	assert_string_equal(cpu, "50000 100000");
	conf_free(c);
}

static void test_errors_name_the_key(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"]}, {\"name\": \"b\", "
	     "\"command\": [\"x\"], \"memory_max\": \"lots\"}]}",
	     "plugins.supervise.agents[1].memory_max: must be bytes"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"], \"colour\": 1}]}",
	     "plugins.supervise: unknown key 'agents[0].colour'"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": \"x\"}]}",
	     "plugins.supervise: 'agents[0].command' must be an array of strings"},
	    {"{\"agents\": [{\"name\": \"A-1\", \"command\": [\"x\"]}]}",
	     "plugins.supervise.agents[0].name: required, 1 to 32"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"], \"backoff_ms\": 100, "
	     "\"backoff_max_ms\": 50}]}",
	     "plugins.supervise.agents[0].backoff_max_ms: at least backoff_ms (100)"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"], \"log\": \"rel/x.log\"}]}",
	     "plugins.supervise.agents[0].log: an absolute canonical path"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"], \"env\": [\"NOEQUALS\"]}]}",
	     "plugins.supervise.agents[0].env[0]: NAME=value"},
	    {"{\"agents\": [{\"name\": \"a\", \"command\": [\"x\"], \"health_timeout_ms\": 9000, "
	     "\"health_interval_ms\": 1000}]}",
	     "plugins.supervise.agents[0].health_timeout_ms: at most health_interval_ms"},
	    {"{\"interval_ms\": 5}", "plugins.supervise: 'interval_ms' must be between 100 and"},
	    {"{\"cgroup_parent\": \"x\"}", "plugins.supervise.cgroup_parent: an absolute"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].text, 0, NULL);
		struct sv_conf *c = NULL;
		char msg[512] = "";
		assert_non_null(j);
		assert_int_equal(sv_conf_new(j, &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
		assert_null(c);
		if (!strstr(msg, cases[i].want))
			fail_msg("%s: got '%s', want '%s'", cases[i].text, msg, cases[i].want);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schema_matches_struct),
	    cmocka_unit_test(test_defaults_fill_each_agent),
	    cmocka_unit_test(test_errors_name_the_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
