/* The time-series store when several hubs share one store (PostgreSQL; docs/metrics.md,
 * "Several hubs"). What changes from one hub alone:
 * - Series ids come from blocks the store hands out, so two hubs never give the same id.
 * - Every sample is in the shared ingest log (one row per sample) as soon as its flush commits;
 *   a read unions the chunk rows, this hub's open heads and the other hubs' log, by time, a
 *   sample counted once (this hub's own log entries are always in its heads or the rows).
 *   Another hub's open head hides nothing: what it holds is in the log.
 * - A chunk row is only ever written as the union of what the store holds and what this hub
 *   adds (read, merge, write, under the store's write lock): rows only grow, so hubs writing
 *   the same series' window (an agent that moved, hubs behind a load balancer) lose nothing.
 *   A log entry is trimmed only after its hub's checkpoint wrote, merged, every head it fed.
 * - Heads start empty: a hub holds a head only for the samples it appends itself; when it sees
 *   another hub's samples of a series (tsdb_shared_sync, each compaction: every second) it
 *   writes its head, merged, and lets it go.
 * - The dictionary and the latest values follow the others' writes from two positions in the
 *   store (series_since, log_since). Dedupe marks are read from the store for each post and
 *   moved only from the value read (seq_swap): a batch stored at one hub is a duplicate at any
 *   other, and two hubs racing on one batch cannot both store it (the second flush fails, its
 *   senders retry and are told it is a duplicate). */
#include "tsdb_int.h"
#include "core/clk.h"
#include "core/log.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tv {
	int64_t t;
	double v;
	uint32_t ord; /* arrival: equal times keep the first */
};

struct tvs {
	struct tv *p;
	size_t n, cap;
};

static int tvs_add(struct tvs *x, int64_t t, double v)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 256;
		struct tv *p = realloc(x->p, cap * sizeof(*p));
		if (!p)
			return OUTPOST_E_INTERNAL;
		x->p = p;
		x->cap = cap;
	}
	x->p[x->n] = (struct tv){t, v, (uint32_t)x->n};
	x->n++;
	return 0;
}

static int tvs_chunk(struct tvs *x, const uint8_t *b, size_t len)
{
	struct chunk_dec d;
	int64_t t;
	double v;
	int rc;

	if (chunk_dec_init(&d, b, len) < 0)
		return 0; /* corrupt: nothing from it */
	while ((rc = chunk_dec_next(&d, &t, &v)) == 1)
		if (tvs_add(x, t, v) < 0)
			return OUTPOST_E_INTERNAL;
	return 0;
}

static int tvs_row(void *arg, const struct mstore_chunk *c)
{
	return tvs_chunk(arg, c->data, c->len);
}

static int tv_cmp(const void *a, const void *b)
{
	const struct tv *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* Sorted by time, each time once. */
static void tvs_settle(struct tvs *x)
{
	size_t o = 0;

	if (x->n == 0)
		return; /* x->p may be NULL */
	qsort(x->p, x->n, sizeof(*x->p), tv_cmp);
	for (size_t i = 0; i < x->n; i++)
		if (o == 0 || x->p[i].t != x->p[o - 1].t)
			x->p[o++] = x->p[i];
	x->n = o;
}

uint32_t tsdb_shared_id(struct tsdb *db)
{
	if (db->id_next >= db->id_end) {
		uint32_t first, n;
		if (db->m->ops->series_block(db->m, &first, &n) < 0)
			return 0;
		db->id_next = first;
		db->id_end = first + n;
	}
	return db->id_next++;
}

/* Writes raw chunk b (window w of series) merged with the row the store holds; inside the
 * caller's transaction. */
static int shared_put(struct tsdb *db, uint32_t series, int64_t w, const uint8_t *b, size_t len,
                      int sealed)
{
	struct mstore *m = db->m;
	struct tvs x = {0};
	struct chunk_enc *e = NULL;
	uint8_t *small = NULL;
	const uint8_t *out;
	size_t outlen;
	int rc;

	rc = m->ops->chunk_get(m, TSDB_RAW, series, w, tvs_row, &x);
	if (rc < 0 && rc != OUTPOST_E_NOT_FOUND)
		goto done;
	if ((rc = tvs_chunk(&x, b, len)) < 0 || (rc = chunk_enc_new(&e)) < 0)
		goto done;
	tvs_settle(&x);
	for (size_t i = 0; i < x.n; i++)
		if ((rc = chunk_enc_add(e, x.p[i].t, x.p[i].v)) < 0)
			goto done;
	out = chunk_enc_bytes(e, &outlen);
	if (sealed && chunk_compact(out, outlen, &small, &outlen) == 1)
		out = small;
	{
		struct mstore_chunk c = {series, w,     w + RAW_WINDOW_MS, (uint32_t)x.n, sealed,
		                         out,    outlen};
		rc = m->ops->chunk_put(m, TSDB_RAW, &c);
	}
done:
	free(small);
	chunk_enc_free(e);
	free(x.p);
	return rc;
}

int tsdb_shared_put(struct tsdb *db, uint32_t series, int64_t w, const uint8_t *b, size_t len,
                    int sealed)
{
	return shared_put(db, series, w, b, len, sealed);
}

static int read_log(void *arg, uint32_t series, int64_t t, double v, int mine)
{
	(void)series, (void)mine;
	return tsdb_pts_add(arg, t, v, v, v, 1);
}

static int pt_cmp(const void *a, const void *b)
{
	const struct tsdb_point *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

int tsdb_shared_read(struct tsdb *db, struct ser *s, struct pts *x, size_t i0)
{
	size_t o = i0;
	int rc;

	int64_t from = x->from > db->raw_horizon_ms ? x->from : db->raw_horizon_ms;

	/* The log of a hub that has not checkpointed yet may hold samples retention has cut. A
	 * series no other hub has logged a sample of in the span (as of the last sync, a second
	 * ago at most) needs no query: a hub alone reads no log at all. */
	if (from < x->to && s->foreign_ms >= from &&
	    (rc = db->m->ops->log_range(db->m, s->pub.id, from, x->to, read_log, x)) != 0)
		return rc < 0 ? rc : OUTPOST_E_INTERNAL;
	if (x->n <= i0)
		return 0; /* nothing read (x->p may still be NULL) */
	/* Raw points have min = max = sum = value: which copy of a time is kept does not matter. */
	qsort(x->p + i0, x->n - i0, sizeof(*x->p), pt_cmp);
	for (size_t i = i0; i < x->n; i++)
		if (o == i0 || x->p[i].t != x->p[o - 1].t)
			x->p[o++] = x->p[i];
	x->n = o;
	return 0;
}

/* ---- Following the other hubs ---- */

struct sync {
	struct tsdb *db;
	struct ser **drop; /* heads another hub writes too */
	size_t ndrop, cap;
};

static int sync_sample(void *arg, uint32_t series, int64_t t, double v, int mine)
{
	struct sync *y = arg;
	struct ser *s = tsdb_by_id(y->db, series);

	if (!s)
		return 0;
	if (t > s->pub.last_ms) {
		s->pub.last_ms = t;
		s->pub.last_value = v;
	}
	if (!s->pub.first_ms)
		s->pub.first_ms = t;
	if (!mine && t > s->foreign_ms)
		s->foreign_ms = t;
	if (!mine && s->head && !s->fresh) {
		for (size_t i = 0; i < y->ndrop; i++)
			if (y->drop[i] == s)
				return 0;
		if (y->ndrop == y->cap) {
			size_t cap = y->cap ? y->cap * 2 : 64;
			struct ser **p = realloc(y->drop, cap * sizeof(*p));
			if (!p)
				return OUTPOST_E_INTERNAL;
			y->drop = p;
			y->cap = cap;
		}
		y->drop[y->ndrop++] = s;
	}
	return 0;
}

/* Every hub's log after db->log_pos: latest values, and the heads to let go in y. */
static int sync_log(struct tsdb *db, struct sync *y)
{
	for (int round = 0; round < 100; round++) {
		int64_t before = db->log_pos;
		int rc = db->m->ops->log_since(db->m, db->log_pos, sync_sample, y, &db->log_pos);
		if (rc != 0)
			return rc < 0 ? rc : OUTPOST_E_INTERNAL;
		if (db->log_pos == before)
			break;
	}
	return 0;
}

int tsdb_shared_sync(struct tsdb *db)
{
	struct mstore *m = db->m;
	struct sync y = {db, NULL, 0, 0};
	int rc;

	if ((rc = m->ops->series_since(m, db->series_pos, tsdb_load_series, db, &db->series_pos)) !=
	        0 ||
	    (rc = sync_log(db, &y)) != 0)
		goto out;
	if (!y.ndrop)
		goto out;
	/* Heads another hub feeds too: what they hold goes to the rows (merged), then they go. */
	if ((rc = m->ops->begin(m)) < 0)
		goto out;
	for (size_t i = 0; i < y.ndrop; i++) {
		struct ser *s = y.drop[i];
		size_t len;
		const uint8_t *b = chunk_enc_bytes(s->head, &len);
		if (s->dirty && (rc = shared_put(db, s->pub.id, s->head_w, b, len, 0)) < 0) {
			m->ops->rollback(m);
			goto out;
		}
	}
	if ((rc = m->ops->commit(m)) < 0)
		goto out;
	for (size_t i = 0; i < y.ndrop; i++) {
		chunk_enc_free(y.drop[i]->head);
		y.drop[i]->head = NULL;
		y.drop[i]->dirty = 0;
	}
out:
	free(y.drop);
	return rc < 0 ? rc : 0;
}

static int rolled_mark(void *arg, uint32_t id, const char *host, const char *key, int64_t first_ms,
                       int64_t rolled_ms)
{
	struct ser *s = tsdb_by_id(arg, id);

	(void)host;
	(void)key;
	(void)first_ms;
	if (s && s->rolled_ms < rolled_ms)
		s->rolled_ms = rolled_ms;
	return 0;
}

int tsdb_shared_rolled(struct tsdb *db)
{
	return db->m->ops->series_each(db->m, rolled_mark, db);
}

/* ---- Open ---- */

/* This hub's log entries from before the restart, per series and window, as heads that are
 * written (merged) and let go at the end of the load. */
static int load_rec(void *arg, int64_t id, const uint8_t *p, size_t len)
{
	struct tsdb *db = arg;
	int rc;

	db->log_id = id;
	db->log_bytes += len;
	for (size_t i = 0; i + LOG_REC <= len; i += LOG_REC) {
		uint32_t sid = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
		               (uint32_t)p[i + 3] << 24;
		uint64_t tb = 0, vb = 0;
		struct ser *s = tsdb_by_id(db, sid);
		int64_t t, w;
		double v;
		for (int k = 7; k >= 0; k--) {
			tb = tb << 8 | p[i + 4 + k];
			vb = vb << 8 | p[i + 12 + k];
		}
		t = (int64_t)tb;
		memcpy(&v, &vb, 8);
		if (!s)
			continue;
		w = tsdb_floor(t, RAW_WINDOW_MS);
		if (s->head && s->head_w != w) {
			size_t hl;
			const uint8_t *hb = chunk_enc_bytes(s->head, &hl);
			if ((rc = shared_put(db, s->pub.id, s->head_w, hb, hl, 0)) < 0)
				return rc;
			chunk_enc_free(s->head);
			s->head = NULL;
		}
		if (!s->head) {
			if (chunk_enc_new(&s->head) < 0)
				return OUTPOST_E_INTERNAL;
			s->head_w = w;
		}
		/* Out of order only if the log is: such a sample is in a row already. */
		if (chunk_enc_add(s->head, t, v) == 0)
			db->st.replayed++;
	}
	return 0;
}

int tsdb_shared_load(struct tsdb *db, int64_t now_ms)
{
	struct mstore *m = db->m;
	struct sync y = {db, NULL, 0, 0};
	int rc;

	if ((rc = m->ops->begin(m)) < 0)
		return rc;
	if ((rc = m->ops->log_each(m, 0, load_rec, db)) != 0)
		goto fail;
	for (size_t i = 0; i < db->nseries; i++) {
		struct ser *s = db->by_id[i];
		size_t len;
		const uint8_t *b;
		if (!s || !s->head)
			continue;
		b = chunk_enc_bytes(s->head, &len);
		rc = shared_put(db, s->pub.id, s->head_w, b, len,
		                s->head_w + RAW_WINDOW_MS + SEAL_GRACE_MS < now_ms);
		chunk_enc_free(s->head);
		s->head = NULL;
		if (rc < 0)
			goto fail;
	}
	if ((rc = m->ops->commit(m)) < 0)
		return rc;
	/* Every hub's log: the latest values the rows do not have yet. */
	rc = sync_log(db, &y);
	free(y.drop);
	return rc;
fail:
	m->ops->rollback(m);
	for (size_t i = 0; i < db->nseries; i++)
		if (db->by_id[i] && db->by_id[i]->head) {
			chunk_enc_free(db->by_id[i]->head);
			db->by_id[i]->head = NULL;
		}
	return rc < 0 ? rc : OUTPOST_E_INTERNAL;
}

int tsdb_host_sync(struct tsdb *db, struct tsdb_host *h)
{
	char epoch[sizeof(h->epoch)];
	int64_t seq;
	int rc;

	/* A mark not flushed yet is ahead of the store's; the flush checks it. */
	if (!db->shared || h->seq_dirty)
		return 0;
	rc = db->m->ops->seq_get(db->m, h->name, epoch, sizeof(epoch), &seq);
	if (rc == OUTPOST_E_NOT_FOUND) {
		epoch[0] = '\0';
		seq = 0;
	} else if (rc < 0) {
		return rc;
	}
	memcpy(h->epoch, epoch, sizeof(epoch));
	memcpy(h->base_epoch, epoch, sizeof(epoch));
	h->seq = h->base_seq = seq;
	return 0;
}
