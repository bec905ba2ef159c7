/* Tests for src/core/conf.c: comments, exact error positions, schema checks, merging, the typed
 * reader and reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/log.h"
#include <outpost/plugin.h>

/* one field a line, as in the daemons' schemas */
/* clang-format off */
static const struct conf_field schema[] = {
    CONF_CHECK_ONLY("listen", CONF_STRING, 0, 0, NULL),
    CONF_CHECK_ONLY("log", CONF_OBJECT, 0, 0, NULL),
    CONF_CHECK_ONLY("log.level", CONF_STRING, 0, 0, NULL),
    CONF_CHECK_ONLY("workers", CONF_INT, 1, 64, NULL),
    CONF_CHECK_ONLY("roots", CONF_STRING_ARRAY, 0, 0, NULL),
    CONF_CHECK_ONLY("plugins", CONF_OBJECT_FREE, 0, 0, NULL),
    CONF_CHECK_ONLY("sinks", CONF_OBJECT_ARRAY, 0, 0, NULL),
    CONF_CHECK_ONLY("sinks.url", CONF_STRING, 0, 0, NULL),
    CONF_CHECK_ONLY("sinks.timeout", CONF_INT, 1, 10, NULL),
    {NULL},
};
/* clang-format on */

static void test_comments_of_three_kinds_are_ignored(void **state)
{
	const char *text = "# a comment\n{\n  // another\n  \"listen\": \"127.0.0.1:1\", /* block\n"
	                   " still block */ \"workers\": 2 # tail\n}\n";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "t.conf", &c, msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(c, "listen")), "127.0.0.1:1");
	assert_int_equal(json_integer_value(json_object_get(c, "workers")), 2);
	json_decref(c);
}

static void test_comment_markers_inside_strings_are_kept(void **state)
{
	const char *text = "{\"listen\": \"a//b#c/*d*/\"}";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "t", &c, msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(c, "listen")), "a//b#c/*d*/");
	json_decref(c);
}

static void test_errors_name_file_line_and_column(void **state)
{
	const char *text = "{\n  // fine\n  \"listen\": \"x\",\n  \"workers\": 2,,\n}\n";
	const char *open_comment = "{ /* never closed\n";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "agent.conf", &c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "agent.conf:4:"));
	assert_int_equal(
	    conf_parse(open_comment, strlen(open_comment), "x.conf", &c, msg, sizeof(msg)),
	    OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "x.conf:1:3: comment is never closed"));
	assert_int_equal(conf_parse("[1]", 3, "a", &c, msg, sizeof(msg)), OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "top level"));
	assert_int_equal(conf_parse("{\"a\":1,\"a\":2}", 13, "a", &c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
}

static void test_schema_refuses_unknown_keys_types_and_ranges(void **state)
{
	char msg[256];
	json_t *c = json_pack("{s:{s:s}, s:i, s:{s:{s:i}}}", "log", "level", "info", "workers", 4,
	                      "plugins", "any", "thing", 1);

	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), 0);
	json_object_set_new(json_object_get(c, "log"), "levl", json_string("x"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'log.levl'");
	json_object_del(json_object_get(c, "log"), "levl");
	json_object_set_new(c, "workers", json_integer(65));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'workers' must be between 1 and 64");
	json_object_set_new(c, "workers", json_string("4"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'workers' must be an integer");
	json_object_set_new(c, "workers", json_integer(4));
	json_object_set_new(c, "roots", json_pack("[s,i]", "/a", 1));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'roots' must be an array of strings");
	json_decref(c);
}

static void test_object_arrays_check_every_element_and_name_its_index(void **state)
{
	char msg[256];
	json_t *c =
	    json_pack("{s:[{s:s}, {s:s, s:i}]}", "sinks", "url", "a", "url", "b", "timeout", 5);

	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), 0);
	json_object_set_new(json_array_get(json_object_get(c, "sinks"), 1), "timeout",
	                    json_integer(11));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'sinks[1].timeout' must be between 1 and 10");
	json_object_set_new(json_array_get(json_object_get(c, "sinks"), 1), "timeot",
	                    json_integer(1));
	json_object_del(json_array_get(json_object_get(c, "sinks"), 1), "timeout");
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'sinks[1].timeot'");
	json_object_set_new(c, "sinks", json_pack("[{s:s}, s]", "url", "a", "b"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'sinks' must be an array of objects [{ ... }]");
	json_decref(c);
}

static void test_merge_is_key_by_key(void **state)
{
	json_t *dst = json_pack("{s:{s:s, s:s}, s:i}", "log", "level", "info", "target", "stderr",
	                        "workers", 4);
	json_t *src = json_pack("{s:{s:s}, s:[s]}", "log", "level", "debug", "roots", "/srv");

	assert_int_equal(conf_merge(dst, src), 0);
	assert_string_equal(json_string_value(conf_get(dst, "log.level")), "debug");
	assert_string_equal(json_string_value(conf_get(dst, "log.target")), "stderr");
	assert_int_equal(json_integer_value(conf_get(dst, "workers")), 4);
	assert_int_equal(json_array_size(conf_get(dst, "roots")), 1);
	assert_int_equal(conf_set(dst, "a.b.c", json_integer(7)), 0);
	assert_int_equal(json_integer_value(conf_get(dst, "a.b.c")), 7);
	json_decref(dst);
	json_decref(src);
}

/* ---- the typed reader ---- */

struct sink {
	const char *url;
	int64_t timeout;
};

struct tconf {
	struct conf_head head;
	const char *listen;
	struct conf_log log;
	struct {
		int64_t workers;
		double ratio;
	} run;
	int64_t tls, strict; /* strict: no default, so -1 when absent */
	struct conf_strv roots;
	const json_t *plugins;
	struct conf_list sinks; /* of struct sink */
};

#define T(m, t, lo, hi, d, fl) CONF_KEY(struct tconf, m, t, lo, hi, d, fl, NULL)
/* clang-format off */
static const struct conf_field tschema[] = {
    T(listen, CONF_STRING, 0, 0, "\"127.0.0.1:1\"", 0),
    CONF_LOG_ROWS(struct tconf, "\"info\""),
    CONF_SECTION("run"),
    T(run.workers, CONF_INT, 1, 64, "4", CONF_RELOAD),
    T(run.ratio, CONF_NUMBER, 0, 1, "0.5", CONF_RELOAD),
    T(tls, CONF_BOOL, 0, 0, "true", 0),
    T(strict, CONF_BOOL, 0, 0, NULL, 0),
    T(roots, CONF_STRING_ARRAY, 0, 0, "[\"/srv\"]", CONF_RELOAD),
    T(plugins, CONF_OBJECT_FREE, 0, 0, "{}", CONF_RELOAD),
    CONF_LIST(struct tconf, sinks, struct sink, 0, NULL),
    CONF_KEY_AT(struct sink, "sinks.url", url, CONF_STRING, 0, 0, NULL, 0, NULL),
    CONF_KEY_AT(struct sink, "sinks.timeout", timeout, CONF_INT, 1, 10, "3", 0, NULL),
    {NULL},
};
/* clang-format on */

static struct tconf *tconf_from(const char *text, int *rc, char *msg, size_t msglen)
{
	struct tconf *c = calloc(1, sizeof(*c));
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	*rc = conf_read(j, tschema, c, msg, msglen);
	json_decref(j);
	if (*rc < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static void tconf_free(struct tconf *c)
{
	conf_release(c);
	free(c);
}

static void test_reader_fills_every_type(void **state)
{
	char msg[256];
	int rc;
	struct tconf *c = tconf_from(
	    "{\"listen\": \"127.0.0.1:9\", \"log\": {\"level\": \"debug\"}, \"run\": {\"workers\": "
	    "8,"
	    " \"ratio\": 0.25}, \"tls\": false, \"strict\": true, \"roots\": [\"/a\", \"/b\"],"
	    " \"plugins\": {\"x\": {\"k\": 1}}, \"sinks\": [{\"url\": \"u1\", \"timeout\": 9},"
	    " {\"url\": \"u2\"}]}",
	    &rc, msg, sizeof(msg));

	assert_non_null(c);
	assert_string_equal(c->listen, "127.0.0.1:9");
	assert_string_equal(c->log.level, "debug");
	assert_string_equal(c->log.target, "stderr"); /* the section merges with its defaults */
	assert_int_equal(c->run.workers, 8);
	assert_true(c->run.ratio == 0.25);
	assert_int_equal(c->tls, 0);
	assert_int_equal(c->strict, 1);
	assert_int_equal(c->roots.n, 2);
	assert_string_equal(c->roots.v[1], "/b");
	assert_null(c->roots.v[2]);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c->plugins, "x"), "k")),
	                 1);
	assert_int_equal(c->sinks.n, 2);
	assert_string_equal(((struct sink *)c->sinks.v)[0].url, "u1");
	assert_int_equal(((struct sink *)c->sinks.v)[0].timeout, 9);
	assert_string_equal(((struct sink *)c->sinks.v)[1].url, "u2");
	assert_int_equal(((struct sink *)c->sinks.v)[1].timeout, 3); /* an element's default */
	tconf_free(c);
}

static void test_reader_defaults_and_absent_keys(void **state)
{
	char msg[256];
	int rc;
	struct tconf *c = tconf_from("{}", &rc, msg, sizeof(msg));
	json_t *d = conf_defaults(tschema);

	assert_non_null(c);
	assert_string_equal(c->listen, "127.0.0.1:1");
	assert_int_equal(c->run.workers, 4);
	assert_true(c->run.ratio == 0.5);
	assert_int_equal(c->tls, 1);
	assert_int_equal(c->strict, -1); /* a bool without default, absent */
	assert_int_equal(c->roots.n, 1);
	assert_non_null(c->plugins);
	assert_int_equal(c->sinks.n, 0);
	tconf_free(c);
	/* What --check-config prints: every default at its path, nothing for keys without. */
	assert_non_null(d);
	assert_int_equal(json_integer_value(conf_get(d, "run.workers")), 4);
	assert_string_equal(json_string_value(conf_get(d, "log.level")), "info");
	assert_null(conf_get(d, "strict"));
	assert_null(conf_get(d, "sinks"));
	json_decref(d);
}

static void test_reader_refuses_types_ranges_and_unknown_keys(void **state)
{
	char msg[256];
	int rc;

	assert_null(tconf_from("{\"run\": {\"workers\": 65}}", &rc, msg, sizeof(msg)));
	assert_int_equal(rc, OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'run.workers' must be between 1 and 64");
	assert_null(tconf_from("{\"run\": {\"ratio\": \"x\"}}", &rc, msg, sizeof(msg)));
	assert_string_equal(msg, "'run.ratio' must be a number");
	assert_null(tconf_from("{\"tls\": 1}", &rc, msg, sizeof(msg)));
	assert_string_equal(msg, "'tls' must be true or false");
	assert_null(tconf_from("{\"run\": {\"wrokers\": 2}}", &rc, msg, sizeof(msg)));
	assert_string_equal(msg, "unknown key 'run.wrokers'");
	assert_null(
	    tconf_from("{\"sinks\": [{\"url\": \"a\", \"timeout\": 0}]}", &rc, msg, sizeof(msg)));
	assert_string_equal(msg, "'sinks[0].timeout' must be between 1 and 10");
}

/* A schema row whose member is missing, of the wrong size, or shared; a member no row fills. */
struct bad_gap {
	struct conf_head head;
	const char *a;
	int64_t never_read;
	int64_t b;
};
struct bad_size {
	struct conf_head head;
	const char *a;
};

static void test_schema_verify_finds_rows_and_members_that_disagree(void **state)
{
	char msg[256];
	const struct conf_field gap[] = {
	    CONF_KEY(struct bad_gap, a, CONF_STRING, 0, 0, NULL, 0, NULL),
	    CONF_KEY(struct bad_gap, b, CONF_INT, 0, 0, NULL, 0, NULL),
	    {NULL},
	};
	const struct conf_field size[] = {
	    CONF_KEY(struct bad_size, a, CONF_STRING_ARRAY, 0, 0, NULL, 0, NULL),
	    {NULL},
	};
	const struct conf_field nomember[] = {
	    CONF_KEY(struct bad_size, a, CONF_STRING, 0, 0, NULL, 0, NULL),
	    CONF_CHECK_ONLY("b", CONF_INT, 0, 0, NULL),
	    {NULL},
	};
	const struct conf_field twice[] = {
	    CONF_KEY(struct bad_size, a, CONF_STRING, 0, 0, NULL, 0, NULL),
	    CONF_KEY_AT(struct bad_size, "b", a, CONF_STRING, 0, 0, NULL, 0, NULL),
	    {NULL},
	};
	const struct conf_field baddefault[] = {
	    CONF_KEY(struct bad_size, a, CONF_STRING, 0, 0, "4", 0, NULL),
	    {NULL},
	};

	assert_int_equal(conf_schema_verify(tschema, sizeof(struct tconf), msg, sizeof(msg)), 0);
	assert_int_equal(conf_schema_verify(gap, sizeof(struct bad_gap), msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "byte 24 of the struct is no row's"));
	assert_int_equal(conf_schema_verify(size, sizeof(struct bad_size), msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "'a' has a member (8 bytes) for a member of 16 bytes"));
	assert_int_equal(conf_schema_verify(nomember, sizeof(struct bad_size), msg, sizeof(msg)),
	                 -1);
	assert_non_null(strstr(msg, "'b' has no member"));
	assert_int_equal(conf_schema_verify(twice, sizeof(struct bad_size), msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "'b' overlaps"));
	assert_int_equal(conf_schema_verify(baddefault, sizeof(struct bad_size), msg, sizeof(msg)),
	                 -1);
	assert_string_equal(msg, "'a' must be a string");
}

static int tconf_check(const void *conf, char *msg, size_t msglen)
{
	const struct tconf *c = conf;

	if (c->run.workers == 13) { /* a daemon's own check, past the schema */
		snprintf(msg, msglen, "'run.workers' may not be 13");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

static const struct conf_kind tkind = {tschema, sizeof(struct tconf), tconf_check};

static void test_reload_that_fails_leaves_the_old_struct(void **state)
{
	struct logger lg;
	char msg[256];
	int rc;
	struct tconf *cur = tconf_from("{\"run\": {\"workers\": 2}}", &rc, msg, sizeof(msg));
	void *next = (void *)1;
	json_t *bad = json_pack("{s:{s:i}}", "run", "workers", 100);
	json_t *own = json_pack("{s:{s:i}}", "run", "workers", 13);

	log_init(&lg, "conf_test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(conf_reload(&tkind, cur, bad, &lg, &next, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_null(next);
	assert_string_equal(msg, "'run.workers' must be between 1 and 64");
	assert_int_equal(conf_reload(&tkind, cur, own, &lg, &next, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'run.workers' may not be 13");
	assert_null(next);
	/* The running struct is as it was. */
	assert_int_equal(cur->run.workers, 2);
	assert_string_equal(cur->listen, "127.0.0.1:1");
	json_decref(bad);
	json_decref(own);
	tconf_free(cur);
}

/* Runs conf_reload with stderr (where lg logs) in a file; returns what was logged. */
static char *reload_logged(const void *cur, const json_t *conf, void **next)
{
	struct logger lg;
	char msg[256], *text = calloc(1, 4096);
	FILE *f = tmpfile();
	int saved = dup(2);

	assert_non_null(f);
	assert_non_null(text);
	log_init(&lg, "conf_test", OUTPOST_LOG_INFO, LOG_TO_STDERR);
	fflush(stderr);
	dup2(fileno(f), 2);
	assert_int_equal(conf_reload(&tkind, cur, conf, &lg, next, msg, sizeof(msg)), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	assert_true(fread(text, 1, 4095, f) < 4095);
	fclose(f);
	return text;
}

static void test_reload_names_only_the_restart_keys_that_changed(void **state)
{
	char msg[256], *said;
	int rc;
	struct tconf *cur = tconf_from("{\"run\": {\"workers\": 2}}", &rc, msg, sizeof(msg));
	struct tconf *next = NULL;
	json_t *file = json_pack("{s:s, s:{s:i}}", "listen", "127.0.0.1:2", "run", "workers", 9);

	said = reload_logged(cur, file, (void **)&next);
	assert_non_null(strstr(said, "reload: listen change only at a restart"));
	free(said);
	tconf_free(next);
	next = NULL;
	said = reload_logged(cur, cur->head.json, (void **)&next); /* the same file */
	assert_null(strstr(said, "change only at a restart"));
	free(said);
	tconf_free(next);
	json_decref(file);
	tconf_free(cur);
}

static void test_reload_keeps_restart_only_keys_and_applies_the_rest(void **state)
{
	struct logger lg;
	char msg[256];
	int rc;
	struct tconf *cur = tconf_from("{\"run\": {\"workers\": 2}}", &rc, msg, sizeof(msg));
	struct tconf *next = NULL;
	json_t *file = json_pack("{s:s, s:{s:i}, s:b, s:b, s:[{s:s}], s:{s:s}}", "listen",
	                         "127.0.0.1:2", "run", "workers", 9, "tls", 0, "strict", 1, "sinks",
	                         "url", "u", "log", "level", "debug");

	log_init(&lg, "conf_test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(conf_reload(&tkind, cur, file, &lg, (void **)&next, msg, sizeof(msg)), 0);
	assert_non_null(next);
	assert_int_equal(next->run.workers, 9);           /* CONF_RELOAD: applied */
	assert_string_equal(next->log.level, "debug");    /* CONF_RELOAD: applied */
	assert_string_equal(next->listen, "127.0.0.1:1"); /* restart only: as it runs */
	assert_int_equal(next->tls, 1);
	assert_int_equal(next->strict, -1); /* was absent: stays absent */
	assert_int_equal(next->sinks.n, 0);
	json_decref(file);
	tconf_free(cur);
	tconf_free(next);
}

static void test_load_refuses_directories_and_missing_files(void **state)
{
	json_t *c;
	char msg[256];
	assert_int_equal(conf_load("/nonexistent.conf", &c, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
	assert_int_equal(conf_load("/tmp", &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_comments_of_three_kinds_are_ignored),
	    cmocka_unit_test(test_comment_markers_inside_strings_are_kept),
	    cmocka_unit_test(test_errors_name_file_line_and_column),
	    cmocka_unit_test(test_schema_refuses_unknown_keys_types_and_ranges),
	    cmocka_unit_test(test_object_arrays_check_every_element_and_name_its_index),
	    cmocka_unit_test(test_merge_is_key_by_key),
	    cmocka_unit_test(test_load_refuses_directories_and_missing_files),
	    cmocka_unit_test(test_reader_fills_every_type),
	    cmocka_unit_test(test_reader_defaults_and_absent_keys),
	    cmocka_unit_test(test_reader_refuses_types_ranges_and_unknown_keys),
	    cmocka_unit_test(test_schema_verify_finds_rows_and_members_that_disagree),
	    cmocka_unit_test(test_reload_that_fails_leaves_the_old_struct),
	    cmocka_unit_test(test_reload_keeps_restart_only_keys_and_applies_the_rest),
	    cmocka_unit_test(test_reload_names_only_the_restart_keys_that_changed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
