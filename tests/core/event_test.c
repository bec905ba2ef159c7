/* Tests for src/core/event.c: the one check of the event format, shared by agent and hub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"

static json_t *ev(void)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:{s:s}}", "kind", "security.passwd_changed",
	                 "severity", "warning", "ts", (json_int_t)1700000000000, "message",
	                 "/etc/passwd changed", "data", "after", "sha256:00");
}

/* The check of ev() with field set to v (stolen; NULL: removed); msg gets the message. */
static int check_with(const char *field, json_t *v, char *msg, size_t msglen)
{
	json_t *e = ev();
	int rc;

	if (v)
		json_object_set_new(e, field, v);
	else
		json_object_del(e, field);
	msg[0] = '\0';
	rc = event_check(e, msg, msglen);
	json_decref(e);
	return rc;
}

static void test_kinds_are_dotted_lowercase_words(void **state)
{
	static const char *const good[] = {"a", "security.passwd_changed", "x.y-z.w2", "cleanup"};
	static const char *const bad[] = {"",   "A.b", "1a",  "a..b",      "a.",
	                                  ".a", "a b", "a/b", "a.\xc3\xa9"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(event_kind_ok(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(event_kind_ok(bad[i]));
	char long_kind[EVENT_KIND_MAX + 2];
	memset(long_kind, 'a', sizeof(long_kind) - 1);
	long_kind[sizeof(long_kind) - 1] = '\0';
	assert_false(event_kind_ok(long_kind));
	long_kind[EVENT_KIND_MAX] = '\0';
	assert_true(event_kind_ok(long_kind));
	assert_false(event_kind_ok(NULL));
}

static void test_check_names_the_field_that_is_wrong(void **state)
{
	char msg[256];
	json_t *e = ev();

	assert_int_equal(event_check(e, msg, sizeof(msg)), 0);
	json_decref(e);
	assert_int_equal(check_with("severity", json_string("loud"), msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "severity"));
	assert_int_equal(check_with("ts", json_integer(0), msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "ts"));
	assert_int_equal(check_with("message", json_string("a\nb"), msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "message"));
	assert_int_equal(check_with("message", NULL, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "missing required field 'message'"));
	assert_int_equal(check_with("colour", json_string("red"), msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "unknown field 'colour'"));
	assert_int_equal(check_with("data", json_string("x"), msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	/* data: bounded by its JSON text. */
	{
		char *big = malloc(EVENT_DATA_MAX + 1);
		memset(big, 'x', EVENT_DATA_MAX);
		big[EVENT_DATA_MAX] = '\0';
		assert_int_equal(check_with("data", json_pack("{s:s}", "b", big), msg, sizeof(msg)),
		                 OUTPOST_E_BAD_ARGS);
		assert_non_null(strstr(msg, "data"));
		big[EVENT_DATA_MAX - 100] = '\0';
		assert_int_equal(check_with("data", json_pack("{s:s}", "b", big), msg, sizeof(msg)),
		                 0);
		free(big);
	}
}

static void test_batch_is_events_and_nothing_else(void **state)
{
	char msg[256];
	json_t *b = json_pack("{s:[o, o]}", "events", ev(), ev());

	assert_int_equal(event_batch_check(b, msg, sizeof(msg)), 0);
	json_object_set_new(json_array_get(json_object_get(b, "events"), 1), "kind",
	                    json_string("Bad"));
	assert_int_equal(event_batch_check(b, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "events[1]: kind"));
	json_decref(b);
	b = json_pack("{s:[]}", "events");
	assert_int_equal(event_batch_check(b, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	json_decref(b);
	b = json_pack("{s:[o], s:i}", "events", ev(), "t", 1);
	assert_int_equal(event_batch_check(b, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	json_decref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kinds_are_dotted_lowercase_words),
	    cmocka_unit_test(test_check_names_the_field_that_is_wrong),
	    cmocka_unit_test(test_batch_is_events_and_nothing_else),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
