/* Tests for src/hub/auth_limit.c: failure windows and the replay memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hub/auth_limit.h"

static void test_failures_count_per_key_within_a_window(void **state)
{
	struct auth_limit *l = auth_limit_new();

	(void)state;
	assert_non_null(l);
	assert_int_equal(auth_limit_fail(l, "addr:127.0.0.1", 1000), 1);
	assert_int_equal(auth_limit_fail(l, "addr:127.0.0.1", 2000), 2);
	assert_int_equal(auth_limit_fail(l, "host:web-1", 2000), 1);
	assert_int_equal(auth_limit_count(l, "addr:127.0.0.1", 3000), 2);
	assert_int_equal(auth_limit_count(l, "addr:127.0.0.2", 3000), 0);
	assert_int_equal(auth_limit_wait_ms(l, "addr:127.0.0.1", 3000), 58000);
	/* The window ends a minute after the first failure: counting starts over. */
	assert_int_equal(auth_limit_count(l, "addr:127.0.0.1", 61000), 0);
	assert_int_equal(auth_limit_fail(l, "addr:127.0.0.1", 61000), 1);
	auth_limit_free(l);
	auth_limit_free(NULL);
}

/* Unknown credentials share one budget whatever their address: rotating addresses (which
 * may push older per-address windows out of the fixed table) still spends it. */
static void test_unknown_budget_is_shared_and_table_stays_bounded(void **state)
{
	struct auth_limit *l = auth_limit_new();
	char key[80];

	(void)state;
	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "addr:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(auth_limit_fail(l, key, 5000), 1);
		assert_int_equal(auth_limit_fail_unknown(l, 5000), i + 1);
	}
	assert_int_equal(auth_limit_count_unknown(l, 64999), 50000);
	assert_int_equal(auth_limit_count_unknown(l, 65000), 0);
	/* The newest address is still counted. */
	assert_int_equal(auth_limit_count(l, key, 6000), 1);
	auth_limit_free(l);
}

static void test_replay_refuses_the_same_request_and_allows_reordering(void **state)
{
	struct auth_limit *l = auth_limit_new();

	(void)state;
	assert_int_equal(auth_replay_check(l, "web-1", 1000, 7), AUTH_REPLAY_OK);
	assert_int_equal(auth_replay_check(l, "web-1", 1000, 7), AUTH_REPLAY_SEEN);
	/* Another request signed in the same ms, and an older one that arrived late. */
	assert_int_equal(auth_replay_check(l, "web-1", 1000, 8), AUTH_REPLAY_OK);
	assert_int_equal(auth_replay_check(l, "web-1", 990, 9), AUTH_REPLAY_OK);
	/* Another host's memory is its own. */
	assert_int_equal(auth_replay_check(l, "web-2", 1000, 7), AUTH_REPLAY_OK);
	auth_limit_free(l);
}

/* Past its slots the memory forgets the oldest and refuses anything not newer than it:
 * what it could no longer recognise. */
static void test_replay_floor_rises_when_the_memory_is_full(void **state)
{
	struct auth_limit *l = auth_limit_new();

	(void)state;
	for (int i = 0; i < AUTH_REPLAY_SLOTS; i++)
		assert_int_equal(auth_replay_check(l, "web-1", 1000 + i, (uint64_t)i),
		                 AUTH_REPLAY_OK);
	assert_int_equal(auth_replay_check(l, "web-1", 5000, 99), AUTH_REPLAY_OK);
	/* 1000 was forgotten: it and anything older is stale, even never seen. */
	assert_int_equal(auth_replay_check(l, "web-1", 1000, 0), AUTH_REPLAY_STALE);
	assert_int_equal(auth_replay_check(l, "web-1", 999, 12345), AUTH_REPLAY_STALE);
	/* Still remembered ones are recognised; an unseen one older than all 32 remembered
	 * would push out a newer one: refused too. Newer than those is fine. */
	assert_int_equal(auth_replay_check(l, "web-1", 1001, 1), AUTH_REPLAY_SEEN);
	assert_int_equal(auth_replay_check(l, "web-1", 1001, 2), AUTH_REPLAY_STALE);
	assert_int_equal(auth_replay_check(l, "web-1", 1010, 2), AUTH_REPLAY_OK);
	auth_limit_free(l);
}

/* The clock skew bound of agents' signed requests (auth.c refuses outside it): five minutes
 * either way, the bound itself included. */
static void test_skew_bound_is_five_minutes_either_way(void **state)
{
	const int64_t now = 1700000000000LL;

	(void)state;
	assert_int_equal(AUTH_CLOCK_SKEW_MS, 300000);
	assert_true(auth_time_ok(now, now));
	assert_true(auth_time_ok(now + 300000, now));
	assert_true(auth_time_ok(now - 300000, now));
	assert_false(auth_time_ok(now + 300001, now));
	assert_false(auth_time_ok(now - 300001, now));
	assert_false(auth_time_ok(0, now));
	assert_false(auth_time_ok(999999999999999LL, now)); /* the largest time parsed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failures_count_per_key_within_a_window),
	    cmocka_unit_test(test_unknown_budget_is_shared_and_table_stays_bounded),
	    cmocka_unit_test(test_replay_refuses_the_same_request_and_allows_reordering),
	    cmocka_unit_test(test_replay_floor_rises_when_the_memory_is_full),
	    cmocka_unit_test(test_skew_bound_is_five_minutes_either_way),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
