/* Tests for src/sim/sim_conf.c: the schema and struct sim_conf agree; the hub section is the
 * agent's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"
#include <outpost/plugin.h>

static void test_schema_and_struct_agree(void **state)
{
	char msg[256] = "";

	if (conf_schema_verify(sim_conf_kind.schema, sim_conf_kind.size, msg, sizeof(msg)) < 0)
		fail_msg("sim_schema and struct sim_conf disagree: %s", msg);
}

static void test_read_takes_the_agents_hub_section(void **state)
{
	struct sim_conf *c;
	char msg[256];
	json_t *j = sim_conf_defaults();

	conf_set(j, "hub.url", json_string("https://hub.example:7443"));
	conf_set(j, "hub.fingerprint", json_string("sha256:00"));
	assert_int_equal(conf_new(&sim_conf_kind, j, (void **)&c, msg, sizeof(msg)), 0);
	assert_string_equal(c->hub.link.url, "https://hub.example:7443");
	assert_string_equal(c->hub.link.fingerprint, "sha256:00");
	assert_string_equal(c->log.level, "warn");
	assert_int_equal(c->agents, 100);
	assert_string_equal(c->exec.mode, "fake");
	conf_free(c);
	conf_set(j, "hub.host_id", json_string("x")); /* an agent's key, not the sim's */
	assert_int_equal(conf_new(&sim_conf_kind, j, (void **)&c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'hub.host_id'");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schema_and_struct_agree),
	    cmocka_unit_test(test_read_takes_the_agents_hub_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
