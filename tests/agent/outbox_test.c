/* Tests for src/agent/outbox.c: results leave in order, survive a reopen of the database, go
 * away only when acknowledged, and a final state replaces a "running" that has not left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/outbox.h"
#include "core/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
	char dir[64];
	char path[128];
	struct logger log;
	sqlite3 *db;
	struct outbox *o;
};

static void fx_open(struct fx *f)
{
	char msg[256];

	assert_int_equal(db_open(f->path, &f->db, msg, sizeof(msg)), 0);
	assert_int_equal(outbox_open(f->db, &f->log, &f->o), 0);
}

static void fx_close(struct fx *f)
{
	outbox_close(f->o);
	db_close(f->db);
	f->o = NULL;
	f->db = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/outpost-outbox-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/agent.db", f->dir);
	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	fx_close(f);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void put(struct fx *f, const char *id, const char *state)
{
	json_t *r = json_pack("{s:s, s:s, s:n}", "task_id", id, "state", state, "response");
	assert_int_equal(outbox_put(f->o, r), 0);
	json_decref(r);
}

static const char *field(json_t *batch, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(batch, i), key));
}

static void test_results_leave_in_order_and_go_when_acknowledged(void **state)
{
	struct fx *f = *state;
	json_t *batch;
	int64_t last;

	put(f, "a", "ok");
	put(f, "b", "failed");
	put(f, "c", "running");
	assert_int_equal(outbox_depth(f->o), 3);
	assert_int_equal(outbox_peek(f->o, 2, 1 << 20, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 2);
	assert_string_equal(field(batch, 0, "task_id"), "a");
	assert_string_equal(field(batch, 1, "task_id"), "b");
	json_decref(batch);
	/* Put while the batch is out: the acknowledgement must not take it. */
	put(f, "d", "ok");
	assert_int_equal(outbox_ack(f->o, last), 2);
	assert_int_equal(outbox_depth(f->o), 2);
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 2);
	assert_string_equal(field(batch, 0, "task_id"), "c");
	assert_string_equal(field(batch, 1, "task_id"), "d");
	json_decref(batch);
	assert_int_equal(outbox_ack(f->o, last), 2);
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 0);
	json_decref(batch);
}

static void test_outbox_survives_a_reopen(void **state)
{
	struct fx *f = *state;
	json_t *batch;
	int64_t last;

	put(f, "x", "ok");
	put(f, "y", "timeout");
	fx_close(f);
	fx_open(f);
	assert_int_equal(outbox_depth(f->o), 2);
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_string_equal(field(batch, 0, "task_id"), "x");
	assert_string_equal(field(batch, 1, "state"), "timeout");
	json_decref(batch);
	/* Acknowledged rows stay gone after another reopen, and seq is never reused. */
	assert_int_equal(outbox_ack(f->o, last), 2);
	fx_close(f);
	fx_open(f);
	assert_int_equal(outbox_depth(f->o), 0);
	put(f, "z", "ok");
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_true(last > 2);
	json_decref(batch);
}

static void test_final_state_replaces_running_not_yet_sent(void **state)
{
	struct fx *f = *state;
	json_t *batch;
	int64_t last;

	put(f, "t", "running");
	put(f, "u", "running");
	put(f, "t", "ok");
	assert_int_equal(outbox_depth(f->o), 2);
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_string_equal(field(batch, 0, "task_id"), "u");
	assert_string_equal(field(batch, 1, "task_id"), "t");
	assert_string_equal(field(batch, 1, "state"), "ok");
	json_decref(batch);
}

static void test_batch_is_bounded_by_bytes_but_never_empty(void **state)
{
	struct fx *f = *state;
	json_t *batch;
	int64_t last;

	put(f, "a", "ok");
	put(f, "b", "ok");
	assert_int_equal(outbox_peek(f->o, 10, 1, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 1);
	json_decref(batch);
}

static void test_put_refuses_a_result_without_id_or_state(void **state)
{
	struct fx *f = *state;
	json_t *r = json_pack("{s:s}", "state", "ok");

	assert_int_equal(outbox_put(f->o, r), OUTPOST_E_BAD_ARGS);
	assert_int_equal(outbox_depth(f->o), 0);
	json_decref(r);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_results_leave_in_order_and_go_when_acknowledged),
	    T(test_outbox_survives_a_reopen),
	    T(test_final_state_replaces_running_not_yet_sent),
	    T(test_batch_is_bounded_by_bytes_but_never_empty),
	    T(test_put_refuses_a_result_without_id_or_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
