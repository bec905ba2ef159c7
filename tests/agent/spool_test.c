/* Tests for src/agent/spool.c: batches leave in order with their seq, seq is never reused
 * (after acks, drops and a reopen), the bound drops the oldest and counts them, the epoch is
 * stable across reopens, and hostile rows of a damaged database never reach the hub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/spool.h"
#include "core/clk.h"
#include "core/db.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fx {
	char dir[64];
	char path[128];
	struct logger log;
	sqlite3 *db;
	struct spool *s;
};

static void fx_open(struct fx *f, int64_t max_bytes)
{
	char msg[256];

	assert_int_equal(db_open(f->path, &f->db, msg, sizeof(msg)), 0);
	assert_int_equal(spool_open(f->db, &f->log, max_bytes, &f->s), 0);
}

static void fx_close(struct fx *f)
{
	spool_close(f->s);
	db_close(f->db);
	f->s = NULL;
	f->db = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/outpost-spool-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/agent.db", f->dir);
	/* The spool warns about drops and damage: tests cause both on purpose. */
	log_init(&f->log, "test", getenv("OUTPOST_TEST_DEBUG") ? OUTPOST_LOG_DEBUG : -1,
	         LOG_TO_STDERR);
	fx_open(f, 0);
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

static void put_text(struct fx *f, const char *text)
{
	assert_int_equal(spool_put(f->s, text, strlen(text)), 0);
}

/* A batch like the metrics plugin's, of about size bytes. */
static char *batch_of(int64_t t, size_t size)
{
	char *b = malloc(size + 64);
	int n;

	assert_non_null(b);
	n = snprintf(b, 64, "{\"t\":%lld,\"samples\":[[\"pad\",\"", (long long)t);
	while ((size_t)n < size)
		b[n++] = 'x';
	strcpy(b + n, "\"]]}");
	return b;
}

/* The next request's body, parsed; NULL when there is nothing to send. */
static json_t *peek(struct fx *f, size_t items, size_t bytes, size_t *n, int64_t *last)
{
	struct buf b = BUF_INIT;
	json_t *j;
	json_error_t err;

	assert_int_equal(spool_peek(f->s, items, bytes, &b, n, last), 0);
	if (*n == 0) {
		assert_int_equal(b.len, 0);
		buf_free(&b);
		return NULL;
	}
	j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		fail_msg("not JSON: %s: %s", err.text, b.data);
	buf_free(&b);
	assert_string_equal(json_string_value(json_object_get(j, "epoch")), spool_epoch(f->s));
	assert_int_equal(json_array_size(json_object_get(j, "batches")), *n);
	return j;
}

static int64_t seq_at(json_t *req, size_t i)
{
	return json_integer_value(
	    json_object_get(json_array_get(json_object_get(req, "batches"), i), "seq"));
}

static json_t *batch_at(json_t *req, size_t i)
{
	return json_array_get(json_object_get(req, "batches"), i);
}

static void test_batches_leave_in_order_with_their_seq(void **state)
{
	struct fx *f = *state;
	size_t n;
	int64_t last;
	json_t *req;

	assert_null(peek(f, 256, 1 << 20, &n, &last));
	put_text(f, "{\"t\":1000,\"samples\":[[\"a\",1]]}");
	put_text(f, "{\"t\":2000,\"samples\":[[\"b{x=\\\"1\\\"}\",\"NaN\"]]}");
	put_text(f, "{}");
	assert_int_equal(spool_depth(f->s), 3);
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(n, 3);
	assert_int_equal(last, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(seq_at(req, i), (int64_t)i + 1);
	assert_int_equal(json_integer_value(json_object_get(batch_at(req, 1), "t")), 2000);
	assert_string_equal(
	    json_string_value(
	        json_array_get(json_array_get(json_object_get(batch_at(req, 1), "samples"), 0), 0)),
	    "b{x=\"1\"}");
	assert_int_equal(json_object_size(batch_at(req, 2)), 1); /* {} became {"seq":3} */
	json_decref(req);
	/* Peeking does not remove: the same request again until it is acknowledged. */
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(n, 3);
	json_decref(req);
	assert_int_equal(spool_ack(f->s, 2), 2);
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(n, 1);
	assert_int_equal(seq_at(req, 0), 3);
	json_decref(req);
	assert_int_equal(spool_ack(f->s, 3), 1);
	assert_int_equal(spool_depth(f->s), 0);
	assert_int_equal(spool_bytes(f->s), 0);
	assert_null(peek(f, 256, 1 << 20, &n, &last));
}

static void test_peek_keeps_to_items_and_bytes_but_sends_at_least_one(void **state)
{
	struct fx *f = *state;
	size_t n;
	int64_t last;
	json_t *req;
	char *big = batch_of(1, 5000);

	for (int i = 0; i < 10; i++)
		put_text(f, big);
	req = peek(f, 4, 1 << 20, &n, &last);
	assert_int_equal(n, 4);
	assert_int_equal(last, 4);
	json_decref(req);
	/* 12000 bytes hold two batches of ~5000. */
	req = peek(f, 256, 12000, &n, &last);
	assert_int_equal(n, 2);
	json_decref(req);
	/* A batch larger than the byte budget still goes, alone. */
	req = peek(f, 256, 100, &n, &last);
	assert_int_equal(n, 1);
	assert_int_equal(last, 1);
	json_decref(req);
	free(big);
}

static void test_seq_is_never_reused_after_acks_drops_and_reopen(void **state)
{
	struct fx *f = *state;
	size_t n;
	int64_t last;
	json_t *req;

	put_text(f, "{\"t\":1}");
	put_text(f, "{\"t\":2}");
	assert_int_equal(spool_ack(f->s, 2), 2);
	/* The table is empty: a plain rowid would start again at 1. */
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(spool_depth(f->s), 0);
	put_text(f, "{\"t\":3}");
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(n, 1);
	assert_int_equal(seq_at(req, 0), 3);
	json_decref(req);
	/* An ack of an old request never drops a batch put after it. */
	assert_int_equal(spool_ack(f->s, 2), 0);
	assert_int_equal(spool_depth(f->s), 1);
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(spool_depth(f->s), 1);
	put_text(f, "{\"t\":4}");
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(n, 2);
	assert_int_equal(seq_at(req, 0), 3);
	assert_int_equal(seq_at(req, 1), 4);
	json_decref(req);
}

static void test_bound_drops_the_oldest_and_counts_them(void **state)
{
	struct fx *f = *state;
	size_t n;
	int64_t last;
	json_t *req;
	char *b = batch_of(1, 100000);
	size_t len = strlen(b);

	fx_close(f);
	fx_open(f, 1 << 20);
	for (int i = 0; i < 15; i++)
		put_text(f, b);
	/* 1 MiB holds 10 batches of 100 KB; the first 5 went. */
	assert_int_equal(spool_depth(f->s), 10);
	assert_int_equal(spool_bytes(f->s), 10 * (int64_t)len);
	assert_int_equal(spool_dropped(f->s), 5);
	req = peek(f, 256, 64 << 20, &n, &last);
	assert_int_equal(n, 10);
	assert_int_equal(seq_at(req, 0), 6);
	assert_int_equal(last, 15);
	json_decref(req);
	/* Dropped seqs are gone for good: the next batch is 16. */
	assert_int_equal(spool_ack(f->s, 15), 10);
	put_text(f, "{\"t\":2}");
	req = peek(f, 256, 1 << 20, &n, &last);
	assert_int_equal(seq_at(req, 0), 16);
	json_decref(req);
	free(b);
}

static void test_a_lowered_bound_trims_at_open(void **state)
{
	struct fx *f = *state;
	char *b = batch_of(1, 100000);

	fx_close(f);
	fx_open(f, 4 << 20);
	for (int i = 0; i < 30; i++)
		put_text(f, b);
	assert_int_equal(spool_depth(f->s), 30);
	assert_int_equal(spool_dropped(f->s), 0);
	fx_close(f);
	fx_open(f, 1 << 20);
	assert_int_equal(spool_depth(f->s), 10);
	assert_int_equal(spool_dropped(f->s), 20);
	assert_true(spool_bytes(f->s) <= 1 << 20);
	/* Below the minimum: 1 MiB all the same. */
	fx_close(f);
	fx_open(f, 1000);
	assert_int_equal(spool_depth(f->s), 10);
	free(b);
}

static void test_a_batch_over_the_limits_is_refused_and_nothing_stored(void **state)
{
	struct fx *f = *state;
	char *b = batch_of(1, SPOOL_BATCH_MAX + 1);
	char *mid = batch_of(1, (1 << 20) + 10);

	assert_int_equal(spool_put(f->s, b, strlen(b)), OUTPOST_E_TOO_LARGE);
	fx_close(f);
	fx_open(f, 1 << 20);
	/* More than the whole spool may hold. */
	assert_int_equal(spool_put(f->s, mid, strlen(mid)), OUTPOST_E_TOO_LARGE);
	assert_int_equal(spool_depth(f->s), 0);
	assert_int_equal(spool_dropped(f->s), 0);
	free(b);
	free(mid);
}

static void test_epoch_is_16_hex_and_stable_across_reopen(void **state)
{
	struct fx *f = *state;
	char first[SPOOL_EPOCH_LEN + 1];
	const char *e = spool_epoch(f->s);
	char other_path[160];
	struct spool *s2;
	sqlite3 *db2;
	char msg[256];

	assert_int_equal(strlen(e), SPOOL_EPOCH_LEN);
	assert_int_equal(strspn(e, "0123456789abcdef"), SPOOL_EPOCH_LEN);
	strcpy(first, e);
	fx_close(f);
	fx_open(f, 0);
	assert_string_equal(spool_epoch(f->s), first);
	/* Another database: another epoch. */
	snprintf(other_path, sizeof(other_path), "%s/other.db", f->dir);
	assert_int_equal(db_open(other_path, &db2, msg, sizeof(msg)), 0);
	assert_int_equal(spool_open(db2, &f->log, 0, &s2), 0);
	assert_string_not_equal(spool_epoch(s2), first);
	spool_close(s2);
	db_close(db2);
	unlink(other_path);
	snprintf(msg, sizeof(msg), "%s-wal", other_path);
	unlink(msg);
	snprintf(msg, sizeof(msg), "%s-shm", other_path);
	unlink(msg);
}

static void test_a_damaged_epoch_is_made_anew(void **state)
{
	struct fx *f = *state;
	char first[SPOOL_EPOCH_LEN + 1], msg[256];

	strcpy(first, spool_epoch(f->s));
	assert_int_equal(
	    db_exec(f->db, "UPDATE spool_epoch SET epoch = 'NOT-HEX-AT-ALL!!'", msg, sizeof(msg)),
	    0);
	fx_close(f);
	fx_open(f, 0);
	assert_string_not_equal(spool_epoch(f->s), first);
	assert_int_equal(strspn(spool_epoch(f->s), "0123456789abcdef"), SPOOL_EPOCH_LEN);
	strcpy(first, spool_epoch(f->s));
	assert_int_equal(db_exec(f->db, "DELETE FROM spool_epoch", msg, sizeof(msg)), 0);
	fx_close(f);
	fx_open(f, 0);
	assert_string_not_equal(spool_epoch(f->s), first);
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(strspn(spool_epoch(f->s), "0123456789abcdef"), SPOOL_EPOCH_LEN);
}

static void test_hostile_rows_are_dropped_never_sent(void **state)
{
	struct fx *f = *state;
	char msg[256];
	size_t n;
	int64_t last;
	json_t *req;
	struct buf deep = BUF_INIT;

	put_text(f, "{\"t\":1}"); /* seq 1 */
	for (int i = 0; i < 100; i++)
		buf_puts(&deep, "[");
	for (int i = 0; i < 100; i++)
		buf_puts(&deep, "]");
	/* What only a damaged or tampered database holds. */
	assert_int_equal(
	    db_exec(f->db,
	            "INSERT INTO spool(batch) VALUES ('not json');"             /* 2 */
	            "INSERT INTO spool(batch) VALUES ('[1,2]');"                /* 3 */
	            "INSERT INTO spool(batch) VALUES ('{\"seq\":99}');"         /* 4 */
	            "INSERT INTO spool(batch) VALUES (x'7b00ff7d');"            /* 5 */
	            "INSERT INTO spool(batch) VALUES ('{\"a\":1}{');"           /* 6 */
	            "INSERT INTO spool(batch) VALUES (' {\"t\":7} ');"          /* 7 */
	            "INSERT INTO spool(batch) VALUES ('');"                     /* 8 */
	            "INSERT INTO spool(batch) VALUES (42);"                     /* 9 */
	            "INSERT INTO spool(batch) VALUES ('{\"k\":\"\\u0000\"}');", /* 10 */
	            msg, sizeof(msg)),
	    0);
	{
		sqlite3_stmt *st;
		assert_int_equal(
		    sqlite3_prepare_v2(f->db, "INSERT INTO spool(batch) VALUES (?)", -1, &st, NULL),
		    SQLITE_OK);
		sqlite3_bind_text(st, 1, deep.data, (int)deep.len, SQLITE_STATIC); /* 11 */
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	buf_free(&deep);
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(spool_depth(f->s), 11);
	put_text(f, "{\"t\":12}"); /* seq 12 */
	req = peek(f, 256, 1 << 20, &n, &last);
	/* The good ones only, in order; a valid object with spaces around it is sent too. */
	assert_int_equal(n, 3);
	assert_int_equal(seq_at(req, 0), 1);
	assert_int_equal(seq_at(req, 1), 7);
	assert_int_equal(json_integer_value(json_object_get(batch_at(req, 1), "t")), 7);
	assert_int_equal(seq_at(req, 2), 12);
	assert_int_equal(last, 12);
	json_decref(req);
	assert_int_equal(spool_dropped(f->s), 9);
	assert_int_equal(spool_depth(f->s), 3);
	assert_int_equal(spool_ack(f->s, last), 3);
	assert_int_equal(spool_depth(f->s), 0);
}

static void test_a_window_of_damaged_rows_only_sends_nothing_and_clears_them(void **state)
{
	struct fx *f = *state;
	char msg[256];
	size_t n;
	int64_t last;
	json_t *req;

	assert_int_equal(db_exec(f->db,
	                         "INSERT INTO spool(batch) VALUES ('x');"
	                         "INSERT INTO spool(batch) VALUES ('y');",
	                         msg, sizeof(msg)),
	                 0);
	fx_close(f);
	fx_open(f, 0);
	put_text(f, "{\"t\":3}");
	assert_null(peek(f, 2, 1 << 20, &n, &last));
	assert_int_equal(spool_dropped(f->s), 2);
	req = peek(f, 2, 1 << 20, &n, &last);
	assert_int_equal(n, 1);
	assert_int_equal(seq_at(req, 0), 3);
	json_decref(req);
}

/* Not a benchmark, a guard and a figure for docs/metrics.md: what one put costs with the
 * spool near full (it then also drops the oldest). */
static void test_put_cost(void **state)
{
	struct fx *f = *state;
	char *b = batch_of(1, 3000);
	size_t len = strlen(b);
	int64_t t0;
	int rounds = 2000;
	double us;

	t0 = clk_mono_ms();
	for (int i = 0; i < 300; i++)
		assert_int_equal(spool_put(f->s, b, len), 0);
	us = (double)(clk_mono_ms() - t0) * 1000.0 / 300;
	print_message("spool_put of %zu bytes: %.0f us\n", len, us);
	assert_true(us < 20000);
	fx_close(f);
	fx_open(f, 1 << 20);
	t0 = clk_mono_ms();
	for (int i = 0; i < rounds; i++)
		assert_int_equal(spool_put(f->s, b, len), 0);
	us = (double)(clk_mono_ms() - t0) * 1000.0 / rounds;
	print_message("spool_put of %zu bytes, spool full (dropping the oldest): %.0f us\n", len,
	              us);
	assert_true(spool_dropped(f->s) > 0);
	assert_true(us < 20000);
	free(b);
}

/* With the hub keeping up the spool holds one batch, and the request is made from the copy
 * kept when it was put: the same bytes as when it is read back (after a restart), and gone
 * with its acknowledgement or a drop. */
static void test_the_one_batch_goes_as_it_was_put(void **state)
{
	struct fx *f = *state;
	const char *text = "{\"t\":5,\"samples\":[[\"a{b=\\\"x\\\"}\",1.5],[\"c\",\"NaN\"]]}";
	struct buf fast = BUF_INIT, slow = BUF_INIT;
	int64_t last;
	size_t n;

	put_text(f, "{\"t\":1}");
	assert_int_equal(spool_ack(f->s, 1), 1);
	put_text(f, text); /* seq 2, alone */
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &fast, &n, &last), 0);
	assert_int_equal(n, 1);
	assert_int_equal(last, 2);
	fx_close(f);
	fx_open(f, 0); /* no copy now: read back */
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &slow, &n, &last), 0);
	assert_int_equal(n, 1);
	assert_int_equal(last, 2);
	assert_string_equal(fast.data, slow.data);
	/* Acknowledged: nothing left, whatever was kept. */
	assert_int_equal(spool_ack(f->s, 2), 1);
	put_text(f, "{\"t\":3}");
	assert_int_equal(spool_ack(f->s, 3), 1);
	buf_reset(&fast);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &fast, &n, &last), 0);
	assert_int_equal(n, 0);
	assert_int_equal(fast.len, 0);
	/* Two batches: both, in order, from the table. */
	put_text(f, "{\"t\":4}");
	put_text(f, "{\"t\":5}");
	buf_reset(&fast);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &fast, &n, &last), 0);
	assert_int_equal(n, 2);
	assert_int_equal(last, 5);
	assert_non_null(strstr(fast.data, "[{\"seq\":4,\"t\":4},{\"seq\":5,\"t\":5}]}"));
	/* The older one acknowledged: the one left is the last put, sent from the copy. */
	assert_int_equal(spool_ack(f->s, 4), 1);
	buf_reset(&fast);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &fast, &n, &last), 0);
	assert_int_equal(n, 1);
	assert_int_equal(last, 5);
	assert_non_null(strstr(fast.data, "[{\"seq\":5,\"t\":5}]}"));
	buf_free(&fast);
	buf_free(&slow);
}

static long long table_rows(struct fx *f)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(f->db, "SELECT count(*) FROM spool", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* An acknowledged request's batches are counted out at once and deleted six at a time (and
 * at close): never sent again while the agent runs. A drop between a request and its
 * acknowledgement is not counted twice. */
static void test_acknowledged_batches_are_deleted_a_few_at_a_time(void **state)
{
	struct fx *f = *state;
	struct buf b = BUF_INIT;
	int64_t last;
	size_t n;

	for (int i = 1; i <= 5; i++) {
		put_text(f, "{\"t\":1}");
		buf_reset(&b);
		assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
		assert_int_equal(n, 1);
		assert_int_equal(last, i);
		assert_int_equal(spool_ack(f->s, last), 1);
		assert_int_equal(spool_depth(f->s), 0);
		assert_int_equal(spool_bytes(f->s), 0);
		assert_int_equal(table_rows(f), i);
	}
	/* Read back from the table too: only what was not acknowledged. */
	put_text(f, "{\"t\":6}");
	put_text(f, "{\"t\":7}");
	buf_reset(&b);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
	assert_int_equal(n, 2);
	assert_non_null(strstr(b.data, "[{\"seq\":6,\"t\":6},{\"seq\":7,\"t\":7}]}"));
	assert_int_equal(spool_ack(f->s, last), 2);
	assert_int_equal(table_rows(f), 0); /* 7 waited: deleted */
	/* Acknowledged again (an answer that came twice): nothing more. */
	assert_int_equal(spool_ack(f->s, last), 0);
	/* At close, whatever waits goes. */
	put_text(f, "{\"t\":8}");
	buf_reset(&b);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
	assert_int_equal(spool_ack(f->s, last), 1);
	assert_int_equal(table_rows(f), 1);
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(spool_depth(f->s), 0);
	assert_int_equal(table_rows(f), 0);
	/* A drop (the bound) between the request and its acknowledgement. */
	fx_close(f);
	fx_open(f, 1 << 20);
	{
		char *big = batch_of(9, 600 << 10);
		put_text(f, big); /* seq 9 */
		buf_reset(&b);
		assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
		assert_int_equal(last, 9);
		put_text(f, big); /* seq 10: over the bound, 9 is dropped */
		assert_int_equal(spool_depth(f->s), 1);
		assert_int_equal(spool_ack(f->s, 9), 0);
		assert_int_equal(spool_depth(f->s), 1);
		assert_int_equal(spool_bytes(f->s), (int64_t)strlen(big));
		free(big);
	}
	buf_free(&b);
}

/* A disk that refuses writes (a read-only connection, as SQLite answers a full disk): batches
 * wait in memory under an epoch of their own, leave after those on disk, and once the hub has
 * them the disk is tried again. */
static void test_batches_the_disk_refuses_wait_in_memory(void **state)
{
	struct fx *f = *state;
	struct spool_mem_stats ms;
	struct buf b = BUF_INIT;
	size_t n;
	int64_t last;
	char msg[128];
	json_t *req;

	put_text(f, "{\"t\":1000}");
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 1", msg, sizeof(msg)), 0);
	put_text(f, "{\"t\":2000}");
	put_text(f, "{\"t\":3000}");
	spool_mem_stats(f->s, &ms);
	assert_true(ms.disk_full);
	assert_int_equal(ms.batches, 2);
	assert_int_equal(spool_depth(f->s), 3);
	req = peek(f, 256, 1 << 20, &n, &last); /* the disk's one first, its own epoch */
	assert_int_equal(n, 1);
	assert_int_equal(last, 1);
	json_decref(req);
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 0", msg, sizeof(msg)), 0);
	assert_int_equal(spool_ack(f->s, last), 1);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
	assert_int_equal(n, 2);
	assert_int_equal(last, -2);
	req = json_loads(b.data, 0, NULL);
	assert_non_null(req);
	assert_string_not_equal(json_string_value(json_object_get(req, "epoch")),
	                        spool_epoch(f->s));
	assert_int_equal(seq_at(req, 0), 1);
	assert_int_equal(json_integer_value(json_object_get(batch_at(req, 1), "t")), 3000);
	json_decref(req);
	buf_free(&b);
	/* Put while they are on their way: it joins them (order), not the disk. */
	put_text(f, "{\"t\":4000}");
	assert_int_equal(spool_ack(f->s, last), 2);
	assert_int_equal(spool_peek(f->s, 256, 1 << 20, &b, &n, &last), 0);
	assert_int_equal(n, 1);
	assert_int_equal(last, -3);
	buf_free(&b);
	assert_int_equal(spool_ack(f->s, last), 1);
	assert_int_equal(spool_depth(f->s), 0);
	put_text(f, "{\"t\":5000}"); /* to disk again */
	spool_mem_stats(f->s, &ms);
	assert_false(ms.disk_full);
	assert_int_equal(ms.batches, 0);
	fx_close(f);
	fx_open(f, 0);
	assert_int_equal(spool_depth(f->s), 1);
}

/* Held batches are bounded: past SPOOL_MEM_MAX_BYTES the oldest go, counted as dropped. */
static void test_batches_held_in_memory_are_bounded(void **state)
{
	struct fx *f = *state;
	struct spool_mem_stats ms;
	char msg[128], *b = batch_of(1000, 256 << 10);

	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 1", msg, sizeof(msg)), 0);
	for (int i = 0; i < 40; i++)
		put_text(f, b);
	spool_mem_stats(f->s, &ms);
	assert_true(ms.bytes <= SPOOL_MEM_MAX_BYTES);
	assert_true(spool_dropped(f->s) > 0);
	assert_int_equal(ms.batches + spool_dropped(f->s), 40);
	assert_int_equal(db_exec(f->db, "PRAGMA query_only = 0", msg, sizeof(msg)), 0);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_acknowledged_batches_are_deleted_a_few_at_a_time,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_the_one_batch_goes_as_it_was_put, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batches_leave_in_order_with_their_seq, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_peek_keeps_to_items_and_bytes_but_sends_at_least_one, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seq_is_never_reused_after_acks_drops_and_reopen,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bound_drops_the_oldest_and_counts_them, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_a_lowered_bound_trims_at_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_batch_over_the_limits_is_refused_and_nothing_stored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoch_is_16_hex_and_stable_across_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_a_damaged_epoch_is_made_anew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_rows_are_dropped_never_sent, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_window_of_damaged_rows_only_sends_nothing_and_clears_them, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_cost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batches_the_disk_refuses_wait_in_memory, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_batches_held_in_memory_are_bounded, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
