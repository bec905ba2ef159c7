/* Tests for src/hub/hub_conf.c: the schema and struct hub_conf agree, defaults (also inside
 * remote_write's elements), and the checks that need presence (zk.single_hub). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"
#include "hub/hub_conf.h"
#include <outpost/plugin.h>

static void test_schema_and_struct_agree(void **state)
{
	char msg[256] = "";

	if (conf_schema_verify(hub_conf_kind.schema, hub_conf_kind.size, msg, sizeof(msg)) < 0)
		fail_msg("hub_schema and struct hub_conf disagree: %s", msg);
}

static void test_read_fills_lists_with_their_defaults(void **state)
{
	struct hub_conf *c;
	char msg[256];
	json_t *j = hub_conf_defaults();
	const struct hub_conf_rwrite *rw;

	conf_set(j, "remote_write",
	         json_pack("[{s:s}, {s:s, s:i, s:i}]", "url", "http://a/w", "url", "https://b/w",
	                   "max_samples", 10, "queue_samples", 20));
	assert_int_equal(conf_new(&hub_conf_kind, j, (void **)&c, msg, sizeof(msg)), 0);
	assert_int_equal(c->remote_write.n, 2);
	rw = c->remote_write.v;
	assert_string_equal(rw[0].url, "http://a/w");
	assert_null(rw[0].bearer_token_file);
	assert_int_equal(rw[0].timeout_ms, 10000);
	assert_int_equal(rw[0].max_samples, 2000);
	assert_int_equal(rw[0].queue_samples, 100000);
	assert_int_equal(rw[1].max_samples, 10);
	assert_int_equal(c->tls, 1);
	assert_int_equal(c->tls_names.n, 0);
	assert_int_equal(c->zk.single_hub, -1);
	assert_null(c->store.backend);
	assert_int_equal(c->agents.beat_ms, 5000);
	conf_free(c);
	json_decref(j);
}

static void test_single_hub_false_is_still_a_zk_key(void **state)
{
	struct hub_conf *c;
	char msg[256];
	json_t *j = hub_conf_defaults();

	conf_set(j, "zk.single_hub", json_false());
	assert_int_equal(conf_new(&hub_conf_kind, j, (void **)&c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "the zk.* keys need 'zk.connect' (scale mode)");
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schema_and_struct_agree),
	    cmocka_unit_test(test_read_fills_lists_with_their_defaults),
	    cmocka_unit_test(test_single_hub_false_is_still_a_zk_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
