/* Tests for src/cli/req.c: what the hub receives for run, cp and call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cli/req.h"
#include <sodium.h>

static void test_task_body_passes_the_selector_through_unchanged(void **state)
{
	static const char *const sels[] = {"role=web and dc!=sh", "web-*", "*",
	                                   "os=\"Debian 12\" or db-[!0]*", NULL};

	for (size_t i = 0; sels[i]; i++) {
		struct req_task t = {.target = sels[i], .max_failures = -1};
		json_t *b = req_task_body(&t, "exec", "run", json_object());
		assert_non_null(b);
		assert_string_equal(json_string_value(json_object_get(b, "target")), sels[i]);
		json_decref(b);
	}
}

static void test_task_body_sends_only_what_was_given(void **state)
{
	struct req_task t = {.target = "*", .max_failures = -1};
	json_t *b = req_task_body(&t, "sys", "facts", NULL);

	assert_int_equal(json_object_size(b), 4);
	assert_string_equal(json_string_value(json_object_get(b, "plugin")), "sys");
	assert_string_equal(json_string_value(json_object_get(b, "op")), "facts");
	assert_true(json_is_object(json_object_get(b, "args")));
	assert_null(json_object_get(b, "id"));
	assert_null(json_object_get(b, "max_failures"));
	json_decref(b);
}

static void test_task_body_with_every_option(void **state)
{
	json_t *batch = json_string("10%");
	struct req_task t = {.id = "deploy-1",
	                     .target = "role=web",
	                     .timeout_ms = 60000,
	                     .expires_in_ms = 3600000,
	                     .batch = batch,
	                     .max_failures = 0};
	json_t *b = req_task_body(&t, "exec", "run", json_pack("{s:[s]}", "argv", "uptime"));

	assert_string_equal(json_string_value(json_object_get(b, "id")), "deploy-1");
	assert_int_equal(json_integer_value(json_object_get(b, "timeout_ms")), 60000);
	assert_int_equal(json_integer_value(json_object_get(b, "expires_in_ms")), 3600000);
	assert_string_equal(json_string_value(json_object_get(b, "batch")), "10%");
	assert_true(json_is_integer(json_object_get(b, "max_failures")));
	assert_int_equal(json_integer_value(json_object_get(b, "max_failures")), 0);
	json_decref(b);
	json_decref(batch);
}

static void test_run_args_argv_keeps_every_word(void **state)
{
	char *argv[] = {"sh", "-c", "echo \"$1\"", "x y", NULL};
	json_t *a = req_run_args(argv, NULL, NULL, NULL, NULL, 0);
	json_t *arr = json_object_get(a, "argv");

	assert_int_equal(json_object_size(a), 1);
	assert_int_equal(json_array_size(arr), 4);
	assert_string_equal(json_string_value(json_array_get(arr, 2)), "echo \"$1\"");
	assert_string_equal(json_string_value(json_array_get(arr, 3)), "x y");
	json_decref(a);
}

static void test_run_args_script_and_options(void **state)
{
	json_t *env = json_pack("{s:s}", "APP", "prod");
	json_t *a = req_run_args(NULL, "set -e\necho hi\n", "nobody", "/tmp", env, 5000);

	assert_null(json_object_get(a, "argv"));
	assert_string_equal(json_string_value(json_object_get(a, "script")), "set -e\necho hi\n");
	assert_string_equal(json_string_value(json_object_get(a, "user")), "nobody");
	assert_string_equal(json_string_value(json_object_get(a, "cwd")), "/tmp");
	assert_string_equal(json_string_value(json_object_get(json_object_get(a, "env"), "APP")),
	                    "prod");
	assert_int_equal(json_integer_value(json_object_get(a, "timeout_ms")), 5000);
	json_decref(a);
	json_decref(env);
}

static void test_run_args_refuse_text_that_is_not_utf8(void **state)
{
	char *argv[] = {"echo", "\xff", NULL};

	assert_null(req_run_args(argv, NULL, NULL, NULL, NULL, 0));
}

static void test_put_args_base64_and_sha256(void **state)
{
	json_t *a = req_put_args("hello\n", 6, "/etc/app.ini", "0640", "app", NULL, 1);

	assert_string_equal(json_string_value(json_object_get(a, "path")), "/etc/app.ini");
	assert_string_equal(json_string_value(json_object_get(a, "encoding")), "base64");
	assert_string_equal(json_string_value(json_object_get(a, "content")), "aGVsbG8K");
	assert_string_equal(json_string_value(json_object_get(a, "sha256")),
	                    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
	assert_string_equal(json_string_value(json_object_get(a, "mode")), "0640");
	assert_string_equal(json_string_value(json_object_get(a, "owner")), "app");
	assert_null(json_object_get(a, "group"));
	assert_true(json_is_true(json_object_get(a, "make_dirs")));
	json_decref(a);
}

static void test_put_args_empty_file(void **state)
{
	json_t *a = req_put_args("", 0, "/etc/empty", NULL, NULL, NULL, 0);

	assert_string_equal(json_string_value(json_object_get(a, "content")), "");
	assert_string_equal(json_string_value(json_object_get(a, "sha256")),
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_null(json_object_get(a, "make_dirs"));
	json_decref(a);
}

static void test_cp_path_directory_takes_the_local_name(void **state)
{
	char *p;

	p = req_cp_path("conf/app.ini", "/etc/app/");
	assert_string_equal(p, "/etc/app/app.ini");
	free(p);
	p = req_cp_path("app.ini", "/etc/app/other.ini");
	assert_string_equal(p, "/etc/app/other.ini");
	free(p);
	assert_null(req_cp_path("app.ini", "etc/app.ini"));
	assert_null(req_cp_path("-", "/etc/app/"));
	assert_null(req_cp_path("dir/", "/etc/app/"));
	assert_null(req_cp_path("app.ini", ""));
}

static void test_escape_keeps_unreserved_only(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(req_escape(&b, "role=web and dc!=sh"), 0);
	assert_string_equal(b.data, "role%3Dweb%20and%20dc%21%3Dsh");
	buf_reset(&b);
	assert_int_equal(req_escape(&b, "web-*.a_b~&#+/"), 0);
	assert_string_equal(b.data, "web-%2A.a_b~%26%23%2B%2F");
	buf_reset(&b);
	assert_int_equal(req_escape(&b, "\xc3\xa9"), 0);
	assert_string_equal(b.data, "%C3%A9");
	buf_free(&b);
}

static void test_new_ids_are_unique_and_valid(void **state)
{
	char a[64], b[64];

	req_new_id(a);
	req_new_id(b);
	assert_int_equal(strlen(a), strlen(REQ_ID_PREFIX) + 32);
	assert_int_equal(strncmp(a, REQ_ID_PREFIX, strlen(REQ_ID_PREFIX)), 0);
	assert_string_not_equal(a, b);
	for (const char *p = a; *p; p++)
		assert_non_null(strchr("cli-0123456789abcdef", *p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_task_body_passes_the_selector_through_unchanged),
	    cmocka_unit_test(test_task_body_sends_only_what_was_given),
	    cmocka_unit_test(test_task_body_with_every_option),
	    cmocka_unit_test(test_run_args_argv_keeps_every_word),
	    cmocka_unit_test(test_run_args_script_and_options),
	    cmocka_unit_test(test_run_args_refuse_text_that_is_not_utf8),
	    cmocka_unit_test(test_put_args_base64_and_sha256),
	    cmocka_unit_test(test_put_args_empty_file),
	    cmocka_unit_test(test_cp_path_directory_takes_the_local_name),
	    cmocka_unit_test(test_escape_keeps_unreserved_only),
	    cmocka_unit_test(test_new_ids_are_unique_and_valid),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
