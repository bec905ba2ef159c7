/* Tests for src/cli/output.c: a task's JSON as the lines an operator reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);
	assert_non_null(v);
	return v;
}

/* out_host on one host row given as JSON text. */
static void check_host(const char *plugin, const char *op, const char *row, const char *want)
{
	json_t *h = load(row);
	struct buf b = BUF_INIT;

	assert_int_equal(out_host(&b, plugin, op, h), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
	json_decref(h);
}

static void test_exec_ok_shows_exit_and_indented_stdout(void **state)
{
	check_host(
	    "exec", "run",
	    "{\"host_id\":\"web-01\",\"state\":\"ok\",\"started_ms\":1000,\"finished_ms\":1300,"
	    "\"response\":{\"ok\":true,\"result\":{\"exit_code\":0,\"signal\":null,"
	    "\"timed_out\":false,\"stdout\":\"6.1.0-28-amd64\\nsecond\\n\",\"stderr\":\"\","
	    "\"duration_ms\":12}}}",
	    "web-01: ok, exit 0 (12ms)\n"
	    "    6.1.0-28-amd64\n"
	    "    second\n");
}

static void test_exec_failure_shows_stderr_marked(void **state)
{
	check_host(
	    "exec", "run",
	    "{\"host_id\":\"web-02\",\"state\":\"failed\",\"response\":{\"ok\":true,\"result\":"
	    "{\"exit_code\":2,\"stdout\":\"partial\",\"stderr\":\"grep: x: No such file\\n\","
	    "\"duration_ms\":1500}}}",
	    "web-02: failed, exit 2 (1.5s)\n"
	    "    partial\n"
	    "  ! grep: x: No such file\n");
}

static void test_exec_signal_timeout_and_truncation(void **state)
{
	check_host("exec", "run",
	           "{\"host_id\":\"a\",\"state\":\"failed\",\"response\":{\"ok\":true,\"result\":"
	           "{\"exit_code\":null,\"signal\":\"SIGSEGV\",\"timed_out\":false,\"stdout\":\"\","
	           "\"stderr\":\"\",\"duration_ms\":61000}}}",
	           "a: failed, killed by SIGSEGV (1m01s)\n");
	check_host("exec", "run",
	           "{\"host_id\":\"b\",\"state\":\"timeout\",\"response\":{\"ok\":true,\"result\":"
	           "{\"exit_code\":null,\"signal\":\"SIGKILL\",\"timed_out\":true,"
	           "\"stdout\":\"starting\\n\",\"stdout_truncated\":true,\"stderr\":\"\\ufffd\\n\","
	           "\"stderr_base64\":\"/wo=\"}}}",
	           "b: timeout, killed at its timeout\n"
	           "    starting\n"
	           "    [stdout truncated]\n"
	           "  ! \xef\xbf\xbd\n"
	           "  ! [stderr is not UTF-8 text: exact bytes in stderr_base64 with --json]\n");
}

static void test_error_envelope_on_the_header_line(void **state)
{
	check_host(
	    "exec", "run",
	    "{\"host_id\":\"web-03\",\"state\":\"failed\",\"response\":{\"ok\":false,"
	    "\"error\":{\"code\":\"not_found\",\"message\":\"command not found: 'nginxx'\"}}}",
	    "web-03: failed: not_found: command not found: 'nginxx'\n");
}

static void test_states_without_an_answer_say_why(void **state)
{
	check_host("exec", "run", "{\"host_id\":\"h\",\"state\":\"timeout\",\"response\":null}",
	           "h: timeout: no answer within the task's timeout\n");
	check_host("exec", "run", "{\"host_id\":\"h\",\"state\":\"lost\"}",
	           "h: lost: the agent stopped while running it; the outcome is unknown\n");
	check_host("sys", "facts", "{\"host_id\":\"h\",\"state\":\"expired\"}",
	           "h: expired: the host did not take the task before it expired\n");
	check_host("sys", "facts", "{\"host_id\":\"h\",\"state\":\"cancelled\"}",
	           "h: cancelled: cancelled before it started\n");
	check_host("sys", "facts", "{\"host_id\":\"h\",\"state\":\"running\"}", "h: running\n");
}

static void test_file_put_says_whether_it_changed(void **state)
{
	check_host("file", "put",
	           "{\"host_id\":\"h\",\"state\":\"ok\",\"response\":{\"ok\":true,\"result\":"
	           "{\"path\":\"/etc/a\",\"size\":19,\"sha256\":\"x\",\"mode\":\"0640\","
	           "\"changed\":true}}}",
	           "h: ok, changed (19 bytes, mode 0640)\n");
	check_host("file", "put",
	           "{\"host_id\":\"h\",\"state\":\"ok\",\"started_ms\":5,\"finished_ms\":25,"
	           "\"response\":{\"ok\":true,\"result\":{\"size\":0,\"changed\":false}}}",
	           "h: ok, unchanged (0 bytes, 20ms)\n");
}

static void test_other_results_as_json_short_on_one_line(void **state)
{
	check_host("sys", "ping",
	           "{\"host_id\":\"h\",\"state\":\"ok\",\"response\":{\"ok\":true,\"result\":"
	           "{\"pong\":true}}}",
	           "h: ok\n    {\"pong\":true}\n");
	check_host(
	    "sys", "ping",
	    "{\"host_id\":\"h\",\"state\":\"ok\",\"response\":{\"ok\":true,\"result\":null}}",
	    "h: ok\n");
	check_host("sys", "facts",
	           "{\"host_id\":\"h\",\"state\":\"ok\",\"response\":{\"ok\":true,\"result\":"
	           "{\"hostname\":\"web-01.example.com\",\"os\":\"Debian GNU/Linux 12 (bookworm)\","
	           "\"kernel\":\"6.1.0-28-amd64\"}}}",
	           "h: ok\n"
	           "    {\n"
	           "      \"hostname\": \"web-01.example.com\",\n"
	           "      \"os\": \"Debian GNU/Linux 12 (bookworm)\",\n"
	           "      \"kernel\": \"6.1.0-28-amd64\"\n"
	           "    }\n");
}

static void test_control_characters_cannot_reach_the_terminal(void **state)
{
	check_host(
	    "exec", "run",
	    "{\"host_id\":\"evil\\u001b]0;x\\u0007\",\"state\":\"ok\",\"response\":{\"ok\":true,"
	    "\"result\":{\"exit_code\":0,\"stdout\":\"\\u001b[31mred\\u001b[0m\\tok\\r\\n"
	    "100%\\rdone\\n\\u009b2J\",\"stderr\":\"\"}}}",
	    "evil^[]0;x^G: ok, exit 0\n"
	    "    ^[[31mred^[[0m\tok\n"
	    "    100%^Mdone\n"
	    "    \xef\xbf\xbd"
	    "2J\n");
}

static void test_lines_edge_cases(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(out_lines(&b, "", "> "), 0);
	assert_null(b.data);
	assert_int_equal(out_lines(&b, NULL, "> "), 0);
	assert_int_equal(out_lines(&b, "\n\nx", "> "), 0);
	assert_string_equal(b.data, "> \n> \n> x\n");
	buf_free(&b);
}

static const char task_text[] =
    "{\"id\":\"t-1\",\"target\":\"role=web\",\"plugin\":\"exec\",\"op\":\"run\","
    "\"args\":{\"argv\":[\"uptime\"]},\"state\":\"running\",\"total\":1000,"
    "\"counts\":{\"queued\":10,\"sent\":5,\"running\":20,\"ok\":940,\"failed\":20,"
    "\"timeout\":3,\"expired\":1,\"cancelled\":0,\"lost\":1,\"refused\":0}}";

static void test_counts_and_progress(void **state)
{
	json_t *t = load(task_text);
	struct out_counts c;
	struct buf b = BUF_INIT;

	out_counts(t, &c);
	assert_int_equal(c.total, 1000);
	assert_int_equal(c.ok, 940);
	assert_int_equal(c.bad, 25);
	assert_int_equal(c.done, 965);
	assert_int_equal(c.pending, 35);
	assert_int_equal(out_progress(&b, &c), 0);
	assert_string_equal(b.data, "965/1000 done, 25 failed");
	buf_free(&b);
	json_decref(t);
}

static void test_summary_names_the_hosts_not_ok(void **state)
{
	json_t *t = load(task_text), *bad = json_array();
	struct buf b = BUF_INIT;

	for (int i = 0; i < 25; i++)
		json_array_append_new(bad, json_sprintf("web-%02d", i));
	assert_int_equal(out_summary(&b, t, bad, 12345), 0);
	assert_string_equal(
	    b.data, "task t-1: 1000 hosts, 940 ok, 20 failed, 3 timeout, 1 lost, 1 expired, "
	            "35 unfinished in 12.3s\n"
	            "not ok: web-00 web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 "
	            "web-09 web-10 web-11 web-12 web-13 web-14 web-15 web-16 web-17 web-18 "
	            "web-19 and 5 more (outpost tasks show t-1)\n");
	buf_free(&b);
	json_decref(bad);
	json_decref(t);
}

static void test_summary_all_ok_and_no_hosts(void **state)
{
	json_t *ok = load("{\"id\":\"t-2\",\"total\":1,\"counts\":{\"ok\":1,\"failed\":0}}");
	json_t *none = load("{\"id\":\"t-3\",\"total\":0,\"counts\":{}}");
	struct buf b = BUF_INIT;

	assert_int_equal(out_summary(&b, ok, NULL, -1), 0);
	assert_string_equal(b.data, "task t-2: 1 host, 1 ok\n");
	buf_reset(&b);
	assert_int_equal(out_summary(&b, none, NULL, 5), 0);
	assert_string_equal(b.data, "task t-3: no host matched the target\n");
	buf_free(&b);
	json_decref(ok);
	json_decref(none);
}

static void test_final_and_bad_states(void **state)
{
	static const char *const bad[] = {"failed",  "timeout",   "lost", "refused",
	                                  "expired", "cancelled", NULL};

	assert_true(out_state_final("ok"));
	assert_false(out_state_bad("ok"));
	for (size_t i = 0; bad[i]; i++) {
		assert_true(out_state_final(bad[i]));
		assert_true(out_state_bad(bad[i]));
	}
	assert_false(out_state_final("queued"));
	assert_false(out_state_final("sent"));
	assert_false(out_state_final("running"));
	assert_false(out_state_final(NULL));
}

static void test_durations_and_ages(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} d[] = {{0, "0ms"},        {850, "850ms"},     {12345, "12.3s"},
	         {245000, "4m05s"}, {7800000, "2h10m"}, {273600000, "3d4h"}};
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		buf_reset(&b);
		assert_int_equal(out_duration(&b, d[i].ms), 0);
		assert_string_equal(b.data, d[i].text);
	}
	buf_reset(&b);
	out_age(&b, 100000, 88000);
	assert_string_equal(b.data, "12s ago");
	buf_reset(&b);
	out_age(&b, 20000000, 20000000 - 3 * 3600 * 1000);
	assert_string_equal(b.data, "3h ago");
	buf_reset(&b);
	out_age(&b, 100000, 0);
	assert_string_equal(b.data, "never");
	buf_reset(&b);
	out_time(&b, 0);
	assert_string_equal(b.data, "-");
	buf_free(&b);
}

static void test_labels_and_flat_facts(void **state)
{
	json_t *l = load("{\"role\":\"web\",\"dc\":\"sh\"}");
	json_t *f = load("{\"os\":{\"family\":\"debian\",\"version\":12},\"disks\":[\"sda\"],"
	                 "\"virtual\":false}");
	json_t *empty = json_object();
	struct buf b = BUF_INIT;

	assert_int_equal(out_labels(&b, l), 0);
	assert_string_equal(b.data, "role=web,dc=sh");
	buf_reset(&b);
	assert_int_equal(out_labels(&b, empty), 0);
	assert_string_equal(b.data, "-");
	buf_reset(&b);
	assert_int_equal(out_flat(&b, "  ", "", f), 0);
	assert_string_equal(b.data, "  os.family: debian\n  os.version: 12\n  disks: [\"sda\"]\n"
	                            "  virtual: false\n");
	buf_free(&b);
	json_decref(l);
	json_decref(f);
	json_decref(empty);
}

static void test_table_pads_columns_to_the_widest_cell(void **state)
{
	static const char *const head[] = {"ID", "STATE", "LABELS"};
	static const char *const r1[] = {"web-01", "up", "role=web"};
	static const char *const r2[] = {"d\xc3\xa9", NULL, "x\033y"};
	struct out_table *t = out_table_new(3, head);
	struct buf b = BUF_INIT;

	assert_non_null(t);
	assert_int_equal(out_table_add(t, r1), 0);
	assert_int_equal(out_table_add(t, r2), 0);
	assert_int_equal(out_table_render(t, &b), 0);
	assert_string_equal(b.data, "ID      STATE  LABELS\n"
	                            "web-01  up     role=web\n"
	                            "d\xc3\xa9      -      x^[y\n");
	buf_free(&b);
	out_table_free(t);
	out_table_free(NULL);
}

/* A row of the test list: the id as it is, "n=N" built in scratch[0], and the note in
 * scratch[1] only when the item has one; arg is the suffix added to every id cell's row. */
static int test_row(const json_t *item, const void *arg, struct buf *scratch, const char **cells)
{
	const char *note = json_string_value(json_object_get(item, "note"));

	if (json_is_true(json_object_get(item, "fail")))
		return -1;
	if (buf_printf(&scratch[0], "n=%d%s", (int)json_integer_value(json_object_get(item, "n")),
	               (const char *)arg) < 0 ||
	    (note && buf_puts(&scratch[1], note) < 0))
		return -1;
	cells[0] = json_string_value(json_object_get(item, "id"));
	cells[1] = scratch[0].data;
	cells[2] = scratch[1].data;
	return 0;
}

static void test_table_rows_a_row_per_item_fresh_scratch_each(void **state)
{
	static const char *const head[] = {"ID", "COUNT", "NOTE"};
	json_t *list = load("[{\"id\":\"web-01\",\"n\":3,\"note\":\"new\\u001b\"},"
	                    "{\"id\":\"web-02\",\"n\":12},{\"n\":0}]");
	struct buf b = BUF_INIT;

	/* web-02 writes no note: its cell is "-", not the first row's note nor "". */
	assert_int_equal(out_table_rows(&b, 3, head, list, test_row, "!"), 0);
	assert_string_equal(b.data, "ID      COUNT  NOTE\n"
	                            "web-01  n=3!   new^[\n"
	                            "web-02  n=12!  -\n"
	                            "-       n=0!   -\n");
	buf_free(&b);
	json_decref(list);

	list = json_array();
	assert_int_equal(out_table_rows(&b, 3, head, list, test_row, ""), 0);
	assert_string_equal(b.data, "ID  COUNT  NOTE\n");
	buf_free(&b);
	json_decref(list);
}

static void test_table_rows_stops_at_a_failing_row(void **state)
{
	static const char *const head[] = {"ID", "COUNT", "NOTE"};
	json_t *list = load("[{\"id\":\"a\",\"n\":1},{\"fail\":true},{\"id\":\"c\"}]");
	struct buf b = BUF_INIT;

	assert_int_equal(out_table_rows(&b, 3, head, list, test_row, ""), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	json_decref(list);
}

/* out_nodeset of ids given as a JSON array. */
static void check_nodeset(const char *ids, const char *want)
{
	json_t *v = load(ids);
	struct buf b = BUF_INIT;

	assert_int_equal(out_nodeset(&b, v), 0);
	assert_string_equal(b.data ? b.data : "", want);
	buf_free(&b);
	json_decref(v);
}

static void test_nodeset_folds_ranges_as_clustershell_writes_them(void **state)
{
	check_nodeset("[\"web03\",\"web01\",\"web02\"]", "web[01-03]");
	check_nodeset("[\"web01\",\"web02\",\"web03\",\"web07\",\"db1\"]", "db1,web[01-03,07]");
	check_nodeset("[\"web9\",\"web10\",\"web11\"]", "web[9-11]");
	/* web10 is written like a padded number of width 2: it joins web[01-09]. */
	check_nodeset("[\"web09\",\"web10\",\"web08\"]", "web[08-10]");
	/* The last number folds: node1.dc2 and node1.dc3 differ only there. */
	check_nodeset("[\"node1.dc2\",\"node2.dc2\",\"node1.dc3\"]", "node1.dc[2-3],node2.dc2");
	check_nodeset("[\"rack1-n01\",\"rack1-n02\",\"rack2-n01\"]", "rack1-n[01-02],rack2-n01");
	check_nodeset("[\"db\",\"cache\"]", "cache,db");
	check_nodeset("[\"solo7\"]", "solo7");
	check_nodeset("[]", "");
}

static void test_groups_show_identical_outcomes_once_largest_first(void **state)
{
	json_t *rows = load(
	    "[{\"host_id\":\"web02\",\"state\":\"ok\",\"started_ms\":1,\"finished_ms\":9,"
	    "\"response\":{\"ok\":true,\"result\":{\"exit_code\":0,\"stdout\":\"v1.2\\n\","
	    "\"stderr\":\"\",\"duration_ms\":7}}},"
	    "{\"host_id\":\"web03\",\"state\":\"failed\",\"response\":{\"ok\":true,\"result\":"
	    "{\"exit_code\":1,\"stdout\":\"\",\"stderr\":\"no such file\\n\",\"duration_ms\":3}}},"
	    "{\"host_id\":\"web01\",\"state\":\"ok\",\"response\":{\"ok\":true,\"result\":"
	    "{\"exit_code\":0,\"stdout\":\"v1.2\\n\",\"stderr\":\"\",\"duration_ms\":12}}},"
	    "{\"host_id\":\"db1\",\"state\":\"lost\"}]");
	struct buf b = BUF_INIT;

	assert_int_equal(out_groups(&b, "exec", "run", rows), 0);
	assert_string_equal(b.data,
	                    "web[01-02] (2 hosts): ok, exit 0\n"
	                    "    v1.2\n"
	                    "web03 (1 host): failed, exit 1\n"
	                    "  ! no such file\n"
	                    "db1 (1 host): lost: the agent stopped while running it; the outcome "
	                    "is unknown\n");
	buf_free(&b);
	json_decref(rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exec_ok_shows_exit_and_indented_stdout),
	    cmocka_unit_test(test_exec_failure_shows_stderr_marked),
	    cmocka_unit_test(test_exec_signal_timeout_and_truncation),
	    cmocka_unit_test(test_error_envelope_on_the_header_line),
	    cmocka_unit_test(test_states_without_an_answer_say_why),
	    cmocka_unit_test(test_file_put_says_whether_it_changed),
	    cmocka_unit_test(test_other_results_as_json_short_on_one_line),
	    cmocka_unit_test(test_control_characters_cannot_reach_the_terminal),
	    cmocka_unit_test(test_lines_edge_cases),
	    cmocka_unit_test(test_counts_and_progress),
	    cmocka_unit_test(test_summary_names_the_hosts_not_ok),
	    cmocka_unit_test(test_summary_all_ok_and_no_hosts),
	    cmocka_unit_test(test_final_and_bad_states),
	    cmocka_unit_test(test_durations_and_ages),
	    cmocka_unit_test(test_labels_and_flat_facts),
	    cmocka_unit_test(test_table_pads_columns_to_the_widest_cell),
	    cmocka_unit_test(test_table_rows_a_row_per_item_fresh_scratch_each),
	    cmocka_unit_test(test_table_rows_stops_at_a_failing_row),
	    cmocka_unit_test(test_nodeset_folds_ranges_as_clustershell_writes_them),
	    cmocka_unit_test(test_groups_show_identical_outcomes_once_largest_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
