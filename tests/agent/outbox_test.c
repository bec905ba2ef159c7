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

/* A disk that refuses writes (here: a read-only connection, as SQLite answers a full disk):
 * results wait in memory in order, the rows on disk go first, and once the hub has taken the
 * held ones the disk is tried again. */
static void test_results_the_disk_refuses_wait_in_memory_in_order(void **state)
{
	struct fx *f = *state;
	struct outbox_mem_stats ms;
	json_t *batch;
	int64_t last;
	char msg[128];

	put(f, "a", "ok");
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 1", msg, sizeof(msg)), 0);
	put(f, "b", "running");
	put(f, "b", "ok"); /* replaces the running one held */
	put(f, "c", "ok");
	outbox_mem_stats(f->o, &ms);
	assert_true(ms.disk_full);
	assert_int_equal(ms.results, 2);
	assert_true(ms.write_errors >= 1);
	assert_int_equal(outbox_depth(f->o), 3);
	/* The disk's row first. */
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 1);
	assert_string_equal(field(batch, 0, "task_id"), "a");
	json_decref(batch);
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 0", msg, sizeof(msg)), 0);
	assert_int_equal(outbox_ack(f->o, last), 1);
	assert_int_equal(outbox_peek(f->o, 1, 1 << 20, &batch, &last), 0);
	assert_true(last < 0);
	assert_int_equal(json_array_size(batch), 1);
	assert_string_equal(field(batch, 0, "task_id"), "b");
	assert_string_equal(field(batch, 0, "state"), "ok");
	json_decref(batch);
	/* The disk works again, but results still held go first: d waits behind c. */
	put(f, "d", "ok");
	assert_int_equal(outbox_ack(f->o, last), 1);
	assert_int_equal(outbox_peek(f->o, 10, 1 << 20, &batch, &last), 0);
	assert_int_equal(json_array_size(batch), 2);
	assert_string_equal(field(batch, 0, "task_id"), "c");
	assert_string_equal(field(batch, 1, "task_id"), "d");
	json_decref(batch);
	assert_int_equal(outbox_ack(f->o, last), 2);
	assert_int_equal(outbox_depth(f->o), 0);
	/* Nothing held: the next goes to disk and survives a reopen. */
	put(f, "e", "ok");
	outbox_mem_stats(f->o, &ms);
	assert_false(ms.disk_full);
	assert_int_equal(ms.results, 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(outbox_depth(f->o), 1);
}

/* Held results are bounded: past OUTBOX_MEM_MAX_BYTES the oldest go, counted. */
static void test_results_held_in_memory_are_bounded(void **state)
{
	struct fx *f = *state;
	struct outbox_mem_stats ms;
	char msg[128], id[32];
	char *pad = malloc(64 << 10);
	json_t *r;

	assert_non_null(pad);
	memset(pad, 'x', (64 << 10) - 1);
	pad[(64 << 10) - 1] = '\0';
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 1", msg, sizeof(msg)), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "t%d", i);
		r = json_pack("{s:s, s:s, s:s}", "task_id", id, "state", "ok", "response", pad);
		assert_int_equal(outbox_put(f->o, r), 0);
		json_decref(r);
	}
	outbox_mem_stats(f->o, &ms);
	assert_true(ms.bytes <= OUTBOX_MEM_MAX_BYTES);
	assert_true(ms.dropped > 0);
	assert_int_equal(ms.results + ms.dropped, 100);
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 0", msg, sizeof(msg)), 0);
	free(pad);
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
	    T(test_results_the_disk_refuses_wait_in_memory_in_order),
	    T(test_results_held_in_memory_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
