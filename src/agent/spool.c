/* The spool: see spool.h. seq is AUTOINCREMENT, so an acknowledgement for a request that left
 * earlier never drops a batch put after it, and the hub's dedupe by (epoch, seq) never takes
 * a new batch for an old one, whatever was dropped or acknowledged before. */
#include "spool.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/wire.h"

#include <outpost/plugin.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SPOOL_LOG_REPEAT_MS (10 * 60 * 1000) /* drops are logged at most this often */

struct spool {
	sqlite3 *db;
	const struct logger *log;
	int64_t max_bytes;
	int64_t depth, bytes;
	uint64_t dropped;
	uint64_t dropped_unlogged; /* drops since the last log line about them */
	int64_t logged_ms;
	char epoch[SPOOL_EPOCH_LEN + 1];
	/* Prepared once: parsing the SQL again cost more than running it (one of each per
	 * interval). Reset after each use, so none holds a read transaction open. */
	sqlite3_stmt *put, *peek, *ack;
	/* The last batch put, while it is in the spool (tail_seq > 0): with the hub keeping up,
	 * the spool holds that one batch only, and the next request is made from here without
	 * reading it back. */
	struct buf tail;
	int64_t tail_seq;
	/* Acknowledged batches are counted out at once but deleted a few at a time: a DELETE
	 * per request was a third of the spool's writes. Rows up to acked are gone for every
	 * purpose but the table; pending of them are still there. The last request made
	 * (peek_*) tells what an acknowledgement of it counts out without reading. */
	int64_t acked;
	int pending;
	int64_t peek_last, peek_bytes;
	size_t peek_n;
	/* Batches the database would not take (a full disk): held here, in order, under an epoch
	 * of their own (mem_epoch, made when the first is held; seqs from 1), until the hub has
	 * them. While any are held, new batches join them, so the hub gets every batch in the
	 * order it was taken; once it has them all, the next batch tries the disk again. */
	struct spool_mem *mem;
	size_t mem_n, mem_cap, mem_sent;
	int64_t mem_bytes, mem_seq;
	char mem_epoch[SPOOL_EPOCH_LEN + 1];
	int disk_full;
	uint64_t write_errors;
};

struct spool_mem {
	int64_t seq;
	char *text;
	size_t len;
};

/* Acknowledged rows are deleted once this many wait (a minute at the default interval, at
 * once for a backlog's requests), and at close. An agent killed in between sends them again;
 * the hub counts them as duplicates. */
#define SPOOL_ACK_LAZY 6

/* Batches up to this size are kept in memory as the tail (one, a few KiB in practice). */
#define SPOOL_TAIL_MAX (64u << 10)

/* The epoch is made with the table, in the same transaction: a database either has both or
 * neither. SQLite's randomblob() draws from the OS's randomness. */
static const char *const spool_schema[] = {
    "CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, batch BLOB NOT NULL);"
    "CREATE TABLE spool_epoch (epoch TEXT NOT NULL);"
    "INSERT INTO spool_epoch(epoch) VALUES (lower(hex(randomblob(8))));",
};

static int spool_fail(struct spool *s, sqlite3_stmt *st)
{
	log_error(s->log, "spool", "sqlite: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return OUTPOST_E_INTERNAL;
}

/* Resets a statement kept prepared; its error, if any, is logged. */
static int spool_done(struct spool *s, sqlite3_stmt *st, int rc)
{
	if (rc != SQLITE_DONE && rc != SQLITE_ROW && rc != SQLITE_OK)
		log_error(s->log, "spool", "sqlite: %s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW || rc == SQLITE_OK ? 0 : OUTPOST_E_INTERNAL;
}

/* Runs a DELETE ... RETURNING seq, length(batch), counting out the rows not yet counted out
 * (after acked) and their bytes (sqlite3_changes() would race with the ledger's workers on the
 * shared connection). Finalizes st, or resets it when it is the kept one. Returns the number
 * of rows counted out or a negative code. */
static int spool_delete(struct spool *s, sqlite3_stmt *st)
{
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) <= s->acked)
			continue;
		n++;
		s->bytes -= sqlite3_column_int64(st, 1);
	}
	if (st == s->ack) {
		if (spool_done(s, st, rc) < 0)
			return OUTPOST_E_INTERNAL;
	} else {
		if (rc != SQLITE_DONE)
			return spool_fail(s, st);
		sqlite3_finalize(st);
	}
	s->depth -= n;
	/* Only rows of a damaged database (text counted in characters) could make the sums
	 * drift: never below 0. */
	if (s->depth <= 0)
		s->depth = s->bytes = 0;
	if (s->bytes < 0)
		s->bytes = 0;
	return n;
}

static int spool_delete_upto(struct spool *s, int64_t seq)
{
	int n;

	s->peek_n = 0; /* an acknowledgement of it would count these twice */
	if (seq >= s->tail_seq)
		s->tail_seq = 0;
	sqlite3_bind_int64(s->ack, 1, seq);
	n = spool_delete(s, s->ack);
	if (n >= 0 && seq >= s->acked) {
		s->acked = seq;
		s->pending = 0;
	}
	return n;
}

static int spool_delete_one(struct spool *s, int64_t seq)
{
	sqlite3_stmt *st = NULL;

	s->peek_n = 0;
	if (seq == s->tail_seq)
		s->tail_seq = 0;
	if (sqlite3_prepare_v2(s->db,
	                       "DELETE FROM spool WHERE seq = ? RETURNING seq, length(batch)", -1,
	                       &st, NULL) != SQLITE_OK)
		return spool_fail(s, st);
	sqlite3_bind_int64(st, 1, seq);
	return spool_delete(s, st);
}

static void spool_count_dropped(struct spool *s, int n, const char *why)
{
	int64_t now = clk_mono_ms();

	s->dropped += (uint64_t)n;
	s->dropped_unlogged += (uint64_t)n;
	if (s->logged_ms && now - s->logged_ms < SPOOL_LOG_REPEAT_MS)
		return;
	log_warn(s->log, "spool", "%llu batch(es) dropped unsent: %s",
	         (unsigned long long)s->dropped_unlogged, why);
	s->dropped_unlogged = 0;
	s->logged_ms = now;
}

/* Drops the oldest batches until the spool holds at most max_bytes. Reads only the rows it
 * drops (in seq order), then deletes them in one statement. */
static int spool_trim(struct spool *s)
{
	sqlite3_stmt *st = NULL;
	int64_t need = s->bytes - s->max_bytes, freed = 0, cut = 0;
	char why[160];
	int rc = SQLITE_DONE, n;

	if (need <= 0)
		return 0;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT seq, length(batch) FROM spool WHERE seq > ? ORDER BY seq",
	                       -1, &st, NULL) != SQLITE_OK)
		return spool_fail(s, st);
	sqlite3_bind_int64(st, 1, s->acked);
	while (freed < need && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		cut = sqlite3_column_int64(st, 0);
		freed += sqlite3_column_int64(st, 1);
	}
	if (freed < need && rc != SQLITE_DONE)
		return spool_fail(s, st);
	sqlite3_finalize(st);
	if (cut == 0)
		return 0;
	n = spool_delete_upto(s, cut);
	if (n < 0)
		return n;
	snprintf(why, sizeof(why),
	         "the spool holds at most %lld bytes (hub.spool_max_bytes) while the hub is "
	         "away; the oldest go first",
	         (long long)s->max_bytes);
	spool_count_dropped(s, n, why);
	return 0;
}

static int spool_epoch_ok(const char *e)
{
	if (!e || strlen(e) != SPOOL_EPOCH_LEN)
		return 0;
	for (; *e; e++)
		if (!((*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'f')))
			return 0;
	return 1;
}

/* Reads the epoch; one that is missing or damaged is made anew (the hub then starts this
 * host's dedupe afresh, which is right for a database that lost its own). */
static int spool_load_epoch(struct spool *s)
{
	sqlite3_stmt *st = NULL;
	const char *e = NULL;
	unsigned char raw[SPOOL_EPOCH_LEN / 2];
	char msg[256], sql[128];

	if (sqlite3_prepare_v2(s->db, "SELECT epoch FROM spool_epoch LIMIT 2", -1, &st, NULL) !=
	    SQLITE_OK)
		return spool_fail(s, st);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
		e = (const char *)sqlite3_column_text(st, 0);
	if (spool_epoch_ok(e)) {
		memcpy(s->epoch, e, SPOOL_EPOCH_LEN + 1);
		if (sqlite3_step(st) == SQLITE_DONE) { /* exactly one */
			sqlite3_finalize(st);
			return 0;
		}
	}
	sqlite3_finalize(st);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(s->epoch, sizeof(s->epoch), raw, sizeof(raw));
	snprintf(sql, sizeof(sql),
	         "DELETE FROM spool_epoch; INSERT INTO spool_epoch(epoch) VALUES ('%s');",
	         s->epoch);
	if (db_exec(s->db, sql, msg, sizeof(msg)) < 0) {
		log_error(s->log, "spool", "%s", msg);
		return OUTPOST_E_INTERNAL;
	}
	log_warn(s->log, "spool", "the spool's epoch was missing or damaged: made a new one (%s)",
	         s->epoch);
	return 0;
}

int spool_open(sqlite3 *db, const struct logger *log, int64_t max_bytes, struct spool **out)
{
	struct spool *s;
	sqlite3_stmt *st = NULL;
	char msg[256];
	int rc;

	*out = NULL;
	rc = db_migrate(db, "spool", spool_schema, 1, msg, sizeof(msg));
	if (rc < 0) {
		log_error(log, "spool", "%s", msg);
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return OUTPOST_E_INTERNAL;
	s->db = db;
	s->log = log;
	if (sqlite3_prepare_v2(db, "INSERT INTO spool(batch) VALUES (?) RETURNING seq", -1, &s->put,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "SELECT seq, batch FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
	                       -1, &s->peek, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM spool WHERE seq <= ? RETURNING seq, length(batch)",
	                       -1, &s->ack, NULL) != SQLITE_OK) {
		rc = spool_fail(s, NULL);
		goto fail;
	}
	s->max_bytes = max_bytes > 0 ? max_bytes : SPOOL_MAX_BYTES_DEFAULT;
	if (s->max_bytes < SPOOL_MAX_BYTES_MIN)
		s->max_bytes = SPOOL_MAX_BYTES_MIN;
	rc = spool_load_epoch(s);
	if (rc < 0)
		goto fail;
	if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(batch)), 0) FROM spool",
	                       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = spool_fail(s, st);
		goto fail;
	}
	s->depth = sqlite3_column_int64(st, 0);
	s->bytes = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	rc = spool_trim(s);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	spool_close(s);
	return rc;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->pending && s->ack)
		spool_delete_upto(s, s->acked);
	sqlite3_finalize(s->put);
	sqlite3_finalize(s->peek);
	sqlite3_finalize(s->ack);
	buf_free(&s->tail);
	if (s->mem_n)
		log_warn(s->log, "spool",
		         "%zu batch(es) held in memory (the disk was full) are lost with this stop",
		         s->mem_n);
	for (size_t i = 0; i < s->mem_n; i++)
		free(s->mem[i].text);
	free(s->mem);
	free(s);
}

/* Drops the held batch i (counted out of mem_bytes). */
static void spool_mem_remove(struct spool *s, size_t i)
{
	s->mem_bytes -= (int64_t)s->mem[i].len;
	free(s->mem[i].text);
	memmove(&s->mem[i], &s->mem[i + 1], (s->mem_n - i - 1) * sizeof(s->mem[0]));
	s->mem_n--;
}

/* Holds one batch in memory; past SPOOL_MEM_MAX_BYTES the oldest not on their way go first,
 * counted as dropped. */
static int spool_mem_put(struct spool *s, const char *batch, size_t len)
{
	unsigned char raw[SPOOL_EPOCH_LEN / 2];
	int n = 0;

	if ((int64_t)len > SPOOL_MEM_MAX_BYTES) {
		spool_count_dropped(s, 1,
		                    "the disk is full and the batch is over the memory bound");
		return OUTPOST_E_TOO_LARGE;
	}
	while (s->mem_bytes + (int64_t)len > SPOOL_MEM_MAX_BYTES && s->mem_n > s->mem_sent) {
		spool_mem_remove(s, s->mem_sent);
		n++;
	}
	if (n)
		spool_count_dropped(s, n,
		                    "the disk is full and the batches held in memory reached their "
		                    "bound; the oldest go first");
	if (s->mem_bytes + (int64_t)len > SPOOL_MEM_MAX_BYTES) {
		spool_count_dropped(s, 1, "the disk is full and the memory bound is reached");
		return OUTPOST_E_TOO_LARGE;
	}
	if (s->mem_n == s->mem_cap) {
		size_t cap = s->mem_cap ? s->mem_cap * 2 : 16;
		struct spool_mem *m = realloc(s->mem, cap * sizeof(*m));
		if (!m)
			return OUTPOST_E_INTERNAL;
		s->mem = m;
		s->mem_cap = cap;
	}
	if (!s->mem_epoch[0]) {
		/* An epoch of its own: the hub's dedupe of these never meets the disk's seqs,
		 * and an agent restarted with the disk still full makes a new one. */
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(s->mem_epoch, sizeof(s->mem_epoch), raw, sizeof(raw));
	}
	s->mem[s->mem_n].text = malloc(len ? len : 1);
	if (!s->mem[s->mem_n].text)
		return OUTPOST_E_INTERNAL;
	memcpy(s->mem[s->mem_n].text, batch, len);
	s->mem[s->mem_n].len = len;
	s->mem[s->mem_n].seq = ++s->mem_seq;
	s->mem_n++;
	s->mem_bytes += (int64_t)len;
	return 0;
}

static int spool_put_disk(struct spool *s, const char *batch, size_t len);

int spool_put(struct spool *s, const char *batch, size_t len)
{
	int rc;

	if (len > SPOOL_BATCH_MAX || (int64_t)len > s->max_bytes)
		return OUTPOST_E_TOO_LARGE;
	if (s->mem_n == 0) {
		rc = spool_put_disk(s, batch, len);
		if (rc <= 0) {
			if (rc == 0 && s->disk_full)
				log_info(s->log, "spool", "batches are written to disk again");
			if (rc == 0)
				s->disk_full = 0;
			return rc;
		}
		s->write_errors++;
		if (!s->disk_full)
			log_warn(s->log, "spool",
			         "cannot write a batch to the agent's database (a full disk?): "
			         "batches wait in memory (at most %lld KiB) until the hub has them",
			         (long long)(SPOOL_MEM_MAX_BYTES >> 10));
		s->disk_full = 1;
	}
	return spool_mem_put(s, batch, len);
}

/* 0, 1 when the database did not take it, or a negative code. */
static int spool_put_disk(struct spool *s, const char *batch, size_t len)
{
	int64_t seq = 0;
	int rc;

	sqlite3_bind_blob(s->put, 1, batch, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(s->put);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(s->put, 0);
		rc = sqlite3_step(s->put);
	}
	if (spool_done(s, s->put, rc) < 0)
		return 1;
	s->tail_seq = 0;
	if (seq > 0 && len <= SPOOL_TAIL_MAX) {
		buf_reset(&s->tail);
		if (buf_append(&s->tail, batch, len) == 0)
			s->tail_seq = seq;
	}
	s->depth++;
	s->bytes += (int64_t)len;
	return spool_trim(s);
}

/* A row as the hub must get it: a JSON object without "seq" (our own writing always is).
 * Scanned, not parsed: a tree per row cost more than the rest of the request. */
static int spool_row_ok(const char *data, size_t n)
{
	return data && n > 0 && n <= SPOOL_BATCH_MAX &&
	       wire_scan_object(data, n, WIRE_MAX_DEPTH_DEFAULT, "seq") == 0;
}

/* Appends {"seq":N,<the batch's members>}: a checked row's members are spliced in as they
 * are, whitespace around the object left out. */
static int spool_append(struct buf *out, int64_t seq, const char *text, size_t n)
{
	const char *end = text + n, *p = text;

	while (*p != '{') /* a checked row: whitespace, then the object */
		p++;
	while (end[-1] != '}')
		end--;
	p++;
	if (buf_printf(out, "{\"seq\":%lld", (long long)seq) < 0)
		return -1;
	for (const char *q = p; q < end - 1; q++)
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
			return buf_puts(out, ",") < 0 || buf_append(out, p, (size_t)(end - p)) < 0
			           ? -1
			           : 0;
	return buf_puts(out, "}"); /* {} */
}

int spool_peek(struct spool *s, size_t max_items, size_t max_bytes, struct buf *out, size_t *n,
               int64_t *last_seq)
{
	sqlite3_stmt *st = s->peek;
	size_t start = out->len, bytes = 0, nbad = 0;
	int64_t bad[64];
	int rc = SQLITE_DONE, err = 0;

	*n = 0;
	*last_seq = 0;
	s->peek_n = 0;
	s->mem_sent = 0;
	if (s->depth <= 0 && s->mem_n > 0 && max_items > 0) {
		/* Every batch on disk is older: the held ones go once those are gone. */
		size_t i;
		if (buf_printf(out, "{\"epoch\":\"%s\",\"batches\":[", s->mem_epoch) < 0)
			err = 1;
		for (i = 0; !err && i < s->mem_n && i < max_items; i++) {
			if (i > 0 && bytes + s->mem[i].len > max_bytes)
				break;
			err = (i > 0 && buf_puts(out, ",") < 0) ||
			      spool_append(out, s->mem[i].seq, s->mem[i].text, s->mem[i].len) < 0;
			bytes += s->mem[i].len;
		}
		if (err || buf_puts(out, "]}") < 0) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return OUTPOST_E_INTERNAL;
		}
		*n = s->mem_sent = i;
		*last_seq = -s->mem[i - 1].seq;
		return 0;
	}
	if (s->depth == 1 && s->tail_seq > s->acked && max_items > 0) {
		/* The one batch is the last one put: no need to read it back. */
		if (buf_printf(out, "{\"epoch\":\"%s\",\"batches\":[", s->epoch) < 0 ||
		    spool_append(out, s->tail_seq, s->tail.data, s->tail.len) < 0 ||
		    buf_puts(out, "]}") < 0) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return OUTPOST_E_INTERNAL;
		}
		*n = 1;
		*last_seq = s->tail_seq;
		s->peek_n = 1;
		s->peek_last = s->tail_seq;
		s->peek_bytes = (int64_t)s->tail.len;
		return 0;
	}
	sqlite3_bind_int64(st, 1, s->acked);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max_items);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *text = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);

		if (*n > 0 && bytes + len > max_bytes)
			break;
		if (!spool_row_ok(text, len)) {
			if (nbad < sizeof(bad) / sizeof(bad[0]))
				bad[nbad++] = seq;
			continue;
		}
		err =
		    (*n == 0 && buf_printf(out, "{\"epoch\":\"%s\",\"batches\":[", s->epoch) < 0) ||
		    (*n > 0 && buf_puts(out, ",") < 0) || spool_append(out, seq, text, len) < 0;
		if (err)
			break;
		bytes += len;
		*last_seq = seq;
		(*n)++;
	}
	/* Reset before the deletes below: the SELECT must not hold its read open. */
	if (spool_done(s, st, rc) < 0 && !err)
		return OUTPOST_E_INTERNAL;
	for (size_t i = 0; i < nbad; i++) {
		/* Only a damaged database gets here; sending it would get the request refused. */
		log_error(s->log, "spool", "batch %lld is not a JSON object without seq: dropped",
		          (long long)bad[i]);
		if (spool_delete_one(s, bad[i]) > 0)
			s->dropped++;
	}
	if (!err && *n > 0 && buf_puts(out, "]}") < 0)
		err = 1;
	if (err) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		*n = 0;
		*last_seq = 0;
		return OUTPOST_E_INTERNAL;
	}
	s->peek_n = *n;
	s->peek_last = *last_seq;
	s->peek_bytes = (int64_t)bytes;
	return 0;
}

int spool_ack(struct spool *s, int64_t last_seq)
{
	int n;

	if (last_seq < 0) {
		for (n = 0; s->mem_n > 0 && s->mem[0].seq <= -last_seq; n++)
			spool_mem_remove(s, 0);
		s->mem_sent = 0;
		return n;
	}

	if (last_seq <= s->acked)
		return 0;
	if (s->peek_n == 0 || last_seq != s->peek_last)
		return spool_delete_upto(s, last_seq); /* not what the last request carried */
	/* The whole last request: counted out now, deleted with the next few. */
	n = (int)s->peek_n;
	s->acked = last_seq;
	s->depth -= n;
	s->bytes -= s->peek_bytes;
	if (s->depth <= 0)
		s->depth = s->bytes = 0;
	if (s->bytes < 0)
		s->bytes = 0;
	if (last_seq >= s->tail_seq)
		s->tail_seq = 0;
	s->peek_n = 0;
	s->pending += n;
	if (s->pending >= SPOOL_ACK_LAZY && spool_delete_upto(s, s->acked) < 0)
		log_warn(s->log, "spool",
		         "acknowledged batches stay in the table until the next "
		         "acknowledgement");
	return n;
}

const char *spool_epoch(const struct spool *s)
{
	return s->epoch;
}

int64_t spool_depth(const struct spool *s)
{
	return s->depth + (int64_t)s->mem_n;
}

int64_t spool_bytes(const struct spool *s)
{
	return s->bytes + s->mem_bytes;
}

void spool_mem_stats(const struct spool *s, struct spool_mem_stats *st)
{
	st->disk_full = s->disk_full;
	st->batches = s->mem_n;
	st->bytes = s->mem_bytes;
	st->write_errors = s->write_errors;
}

uint64_t spool_dropped(const struct spool *s)
{
	return s->dropped;
}
