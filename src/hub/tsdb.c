/* The hub's time-series store (tsdb.h): series dictionary and heads in memory, chunks, rollups,
 * the ingest log and retention through the store's metrics side (store.h, struct mstore).
 *
 * Durability: every flush writes the samples appended since the last one to the ingest log, in
 * the same transaction as new series, dedupe marks and sealed chunks; ingest answers an agent
 * only after that. The open heads are written now and then (a checkpoint, in slices), after
 * which the log up to the checkpoint's start is dropped. At open, the newest chunk of each
 * series becomes its head again and the log is replayed on top: a sample at or before a
 * series' last time is skipped, so replaying what a checkpoint already holds does nothing.
 *
 * Windows: raw chunks cover 2 aligned hours, 1-minute rollups a day, 1-hour rollups 30 days.
 * A raw window holds whole minutes and hours, so its rollups are complete when it is sealed;
 * compaction writes them afterwards from the sealed rows (chunks_raw.rolled is the queue). */
#include "tsdb.h"
#include "tsdb_int.h"
#include "chunk.h"
#include "store.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/log.h"

#include <math.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t window_ms[TSDB_NRES] = {RAW_WINDOW_MS, M1_WINDOW_MS, H1_WINDOW_MS};
static const int64_t interval_ms[TSDB_NRES] = {0, 60000, 3600000};

/* ---- Small helpers ---- */

static uint64_t hash_bytes(const char *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t ser_hash(uint32_t host_idx, const char *key, size_t n)
{
	return hash_bytes(key, n, 1469598103934665603ULL ^ (host_idx * 0x9e3779b97f4a7c15ULL));
}

static int64_t floor_to(int64_t t, int64_t step)
{
	int64_t q = t / step;

	if (t % step < 0)
		q--;
	return q * step;
}

int64_t tsdb_floor(int64_t t, int64_t step)
{
	return floor_to(t, step);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	void *p;
	size_t c;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	while (c < need)
		c *= 2;
	if (!(p = realloc(*arr, c * size)))
		return OUTPOST_E_INTERNAL;
	*arr = p;
	*cap = c;
	return 0;
}

/* ---- Hosts ---- */

static struct tsdb_host *host_find(struct tsdb *db, const char *name, int create)
{
	uint64_t hv = hash_bytes(name, strlen(name), 1469598103934665603ULL);
	struct tsdb_host *h;

	if (db->hosts_cap)
		for (h = db->hosts[hv & (db->hosts_cap - 1)]; h; h = h->next)
			if (strcmp(h->name, name) == 0)
				return h;
	if (!create)
		return NULL;
	if (db->nhosts + 1 > db->hosts_cap / 2) {
		size_t cap = db->hosts_cap ? db->hosts_cap * 2 : 256;
		struct tsdb_host **t = calloc(cap, sizeof(*t));
		if (!t)
			return NULL;
		for (size_t i = 0; i < db->hosts_cap; i++)
			for (struct tsdb_host *x = db->hosts[i], *nx; x; x = nx) {
				uint64_t xh =
				    hash_bytes(x->name, strlen(x->name), 1469598103934665603ULL);
				nx = x->next;
				x->next = t[xh & (cap - 1)];
				t[xh & (cap - 1)] = x;
			}
		free(db->hosts);
		db->hosts = t;
		db->hosts_cap = cap;
	}
	if (!(h = calloc(1, sizeof(*h))) || !(h->name = strdup(name))) {
		free(h);
		return NULL;
	}
	h->idx = (uint32_t)++db->nhosts;
	h->next = db->hosts[hv & (db->hosts_cap - 1)];
	db->hosts[hv & (db->hosts_cap - 1)] = h;
	return h;
}

struct tsdb_host *tsdb_host_get(struct tsdb *db, const char *host)
{
	return host_find(db, host, 1);
}

void tsdb_host_seq(const struct tsdb_host *h, const char **epoch, int64_t *seq)
{
	*epoch = h->epoch;
	*seq = h->seq;
}

void tsdb_host_mark(struct tsdb *db, struct tsdb_host *h, const char *epoch, int64_t seq)
{
	snprintf(h->epoch, sizeof(h->epoch), "%s", epoch);
	h->seq = seq;
	if (!h->seq_dirty &&
	    grow((void **)&db->marks, &db->cap_marks, db->nmarks + 1, sizeof(*db->marks)) == 0) {
		db->marks[db->nmarks++] = h;
		h->seq_dirty = 1;
	}
}

/* ---- Series ---- */

/* Unescapes a label value in place (the canonical key escapes \\ \" \n). */
static size_t unescape(char *p, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n) {
			i++;
			p[o++] = p[i] == 'n' ? '\n' : p[i];
		} else {
			p[o++] = p[i];
		}
	}
	return o;
}

/* A new series for a canonical key; not yet in any table. */
static struct ser *ser_new(struct tsdb_host *h, uint32_t id, const char *key, size_t keylen)
{
	/* mem: key NUL, name NUL, then for each label name NUL value NUL; labels array after. */
	size_t nlab = 0;
	struct ser *s;
	char *p, *end;
	const char **lab;

	for (size_t i = 0; i < keylen; i++)
		if (key[i] == '=' && i + 1 < keylen && key[i + 1] == '"')
			nlab++; /* an upper bound: '="' may appear inside a value */
	s = calloc(1, sizeof(*s) + 2 * (keylen + 1) + 2 * nlab * sizeof(char *) + sizeof(char *));
	if (!s)
		return NULL;
	memcpy(s->mem, key, keylen);
	p = s->mem + keylen + 1;
	memcpy(p, key, keylen);
	end = p + keylen;
	lab = (const char **)(((uintptr_t)(s->mem + 2 * (keylen + 1)) + sizeof(char *) - 1) &
	                      ~(uintptr_t)(sizeof(char *) - 1));
	s->pub.id = id;
	s->pub.host = h->name;
	s->pub.key = s->mem;
	s->pub.name = p;
	s->pub.labels = lab;
	s->host = h;
	/* The key is canonical: name, then {l="v",...} with every value escaped. */
	while (p < end && *p != '{')
		p++;
	if (p < end) {
		*p++ = '\0';
		while (p < end && *p != '}') {
			char *ln = p, *v;
			size_t vn;
			while (*p != '=')
				p++;
			*p = '\0';
			p += 2;
			v = p;
			while (*p != '"')
				p += *p == '\\' ? 2 : 1;
			vn = unescape(v, (size_t)(p - v));
			v[vn] = '\0';
			p++;
			if (*p == ',')
				p++;
			lab[2 * s->pub.nlabels] = ln;
			lab[2 * s->pub.nlabels + 1] = v;
			s->pub.nlabels++;
		}
		*p = '\0';
	}
	return s;
}

static void ser_free(struct ser *s)
{
	if (s) {
		chunk_enc_free(s->head);
		free(s);
	}
}

static int tab_insert(struct tsdb *db, struct ser *s)
{
	uint64_t hv;

	if (db->nseries + 1 > db->tab_cap / 2) {
		size_t cap = db->tab_cap ? db->tab_cap * 2 : 1024;
		struct ser **t = calloc(cap, sizeof(*t));
		if (!t)
			return OUTPOST_E_INTERNAL;
		for (size_t i = 0; i < db->tab_cap; i++)
			for (struct ser *x = db->tab[i], *nx; x; x = nx) {
				uint64_t xh =
				    ser_hash(x->host->idx, x->pub.key, strlen(x->pub.key));
				nx = x->next;
				x->next = t[xh & (cap - 1)];
				t[xh & (cap - 1)] = x;
			}
		free(db->tab);
		db->tab = t;
		db->tab_cap = cap;
	}
	if (grow((void **)&db->by_id, &db->cap_id, s->pub.id, sizeof(*db->by_id)) < 0)
		return OUTPOST_E_INTERNAL;
	for (size_t i = db->nseries; i < s->pub.id; i++)
		db->by_id[i] = NULL;
	db->by_id[s->pub.id - 1] = s;
	db->count++;
	if (s->pub.id > db->nseries)
		db->nseries = s->pub.id;
	hv = ser_hash(s->host->idx, s->pub.key, strlen(s->pub.key));
	s->next = db->tab[hv & (db->tab_cap - 1)];
	db->tab[hv & (db->tab_cap - 1)] = s;
	s->host->nseries++;
	return 0;
}

static struct ser *tab_find(struct tsdb *db, const struct tsdb_host *h, const char *key, size_t n)
{
	struct ser *s;

	if (!db->tab_cap)
		return NULL;
	for (s = db->tab[ser_hash(h->idx, key, n) & (db->tab_cap - 1)]; s; s = s->next)
		if (s->host == h && strncmp(s->pub.key, key, n) == 0 && s->pub.key[n] == '\0')
			return s;
	return NULL;
}

static struct ser *by_id(struct tsdb *db, uint32_t id)
{
	return id >= 1 && id <= db->nseries ? db->by_id[id - 1] : NULL;
}

struct ser *tsdb_by_id(struct tsdb *db, uint32_t id)
{
	return by_id(db, id);
}

/* ---- Heads ---- */

/* Moves the head to the pending sealed list (written by the next flush). */
static int head_seal(struct tsdb *db, struct ser *s)
{
	const uint8_t *b;
	size_t len;
	struct sealed *x;

	if (!s->head)
		return 0;
	if (grow((void **)&db->sealed, &db->cap_sealed, db->nsealed + 1, sizeof(*db->sealed)) < 0)
		return OUTPOST_E_INTERNAL;
	b = chunk_enc_bytes(s->head, &len);
	x = &db->sealed[db->nsealed];
	/* Sealed chunks are written once and kept for days: worth their smallest form. */
	if (chunk_compact(b, len, &x->data, &x->len) != 1) {
		if (!(x->data = malloc(len)))
			return OUTPOST_E_INTERNAL;
		memcpy(x->data, b, len);
		x->len = len;
	}
	x->series = s->pub.id;
	x->w = s->head_w;
	x->count = (uint32_t)chunk_enc_count(s->head);
	db->nsealed++;
	chunk_enc_free(s->head);
	s->head = NULL;
	s->dirty = 0;
	db->st.sealed++;
	return 0;
}

static int copy_enc(void *arg, const struct mstore_chunk *c)
{
	return chunk_enc_from_bytes(c->data, c->len, arg) < 0 ? OUTPOST_E_INTERNAL : 1;
}

/* Takes a sealed window back as the head: from the pending list when it is there (not
 * written yet), else from the store. */
static int head_reopen(struct tsdb *db, struct ser *s, int64_t w)
{
	struct chunk_enc *e = NULL;
	int rc;

	for (size_t i = db->nsealed; i-- > 0;) {
		struct sealed *x = &db->sealed[i];
		if (x->series != s->pub.id || x->w != w)
			continue;
		if (chunk_enc_from_bytes(x->data, x->len, &e) < 0)
			return OUTPOST_E_INTERNAL;
		free(x->data);
		db->sealed[i] = db->sealed[--db->nsealed];
		s->head = e;
		return 0;
	}
	rc = db->m->ops->chunk_get(db->m, TSDB_RAW, s->pub.id, w, copy_enc, &e);
	if (rc < 0 && rc != OUTPOST_E_NOT_FOUND)
		return rc;
	s->head = e; /* NULL when not found: a new one */
	return 0;
}

/* Appends without logging; the caller logs. 0 stored, 1 skipped (not after the last). */
static int ser_append(struct tsdb *db, struct ser *s, int64_t t, double v)
{
	int64_t w = floor_to(t, RAW_WINDOW_MS);
	int rc;

	if (s->pub.last_ms && t <= s->pub.last_ms)
		return 1;
	if (s->head && s->head_w != w && (rc = head_seal(db, s)) < 0)
		return rc;
	if (!s->head) {
		/* A window sealed by time that gets a late sample: take it back (resealing it later
		 * redoes its rollups), from the pending list or else from the store. Shared: the
		 * head starts empty, its rows are written merged (tsdb_shared.c). */
		if (!db->shared && s->pub.last_ms && floor_to(s->pub.last_ms, RAW_WINDOW_MS) == w &&
		    (rc = head_reopen(db, s, w)) < 0)
			return rc;
		if (!s->head && chunk_enc_new(&s->head) < 0)
			return OUTPOST_E_INTERNAL;
		s->head_w = w;
	}
	if ((rc = chunk_enc_add(s->head, t, v)) < 0)
		return rc == OUTPOST_E_BAD_ARGS ? 1 : rc;
	if (!s->pub.first_ms)
		s->pub.first_ms = t;
	s->pub.last_ms = t;
	s->pub.last_value = v;
	s->dirty = 1;
	return 0;
}

static int log_rec(struct tsdb *db, uint32_t id, int64_t t, double v)
{
	uint8_t r[LOG_REC];
	uint64_t bits;

	memcpy(&bits, &v, 8);
	put_u32(r, id);
	put_u64(r + 4, (uint64_t)t);
	put_u64(r + 12, bits);
	return buf_append(&db->log, r, sizeof(r)) < 0 ? OUTPOST_E_INTERNAL : 0;
}

int tsdb_append(struct tsdb *db, struct tsdb_host *h, const char *key, size_t keylen, int64_t t,
                double v, char *msg, size_t msglen)
{
	struct ser *s = tab_find(db, h, key, keylen);
	int rc;

	if (!s) {
		char canon[TSDB_KEY_MAX + 1];
		size_t cn;
		if ((rc = tsdb_key_canon(key, keylen, canon, sizeof(canon), &cn, msg, msglen)) < 0)
			return rc;
		if (!(s = tab_find(db, h, canon, cn))) {
			uint32_t id;
			if (h->nseries >= SERIES_PER_HOST_MAX || db->count >= SERIES_MAX) {
				snprintf(msg, msglen, "series limit reached (%d per host)",
				         SERIES_PER_HOST_MAX);
				return OUTPOST_E_TOO_LARGE;
			}
			/* Shared: ids from this hub's block, never one another hub gives out. */
			id = db->shared ? tsdb_shared_id(db) : (uint32_t)db->nseries + 1;
			if (!id) {
				snprintf(msg, msglen, "no series id from the store");
				return OUTPOST_E_UNAVAILABLE;
			}
			if (grow((void **)&db->fresh, &db->cap_fresh, db->nfresh + 1,
			         sizeof(*db->fresh)) < 0 ||
			    !(s = ser_new(h, id, canon, cn)))
				return OUTPOST_E_INTERNAL;
			if (tab_insert(db, s) < 0) {
				ser_free(s);
				return OUTPOST_E_INTERNAL;
			}
			s->fresh = 1;
			db->fresh[db->nfresh++] = s;
		}
	}
	if ((rc = ser_append(db, s, t, v)) != 0)
		return rc;
	if ((rc = log_rec(db, s->pub.id, t, v)) < 0)
		return rc;
	db->st.appended++;
	return 0;
}

/* ---- Flush, open, reload ---- */

static void pending_clear(struct tsdb *db)
{
	for (size_t i = 0; i < db->nsealed; i++)
		free(db->sealed[i].data);
	db->nsealed = 0;
	for (size_t i = 0; i < db->nfresh; i++)
		db->fresh[i]->fresh = 0;
	db->nfresh = 0;
	for (size_t i = 0; i < db->nmarks; i++)
		db->marks[i]->seq_dirty = 0;
	db->nmarks = 0;
	buf_reset(&db->log);
}

static int flush_write(struct tsdb *db)
{
	struct mstore *m = db->m;
	int rc;

	if ((rc = m->ops->begin(m)) < 0)
		return rc;
	for (size_t i = 0; i < db->nfresh; i++) {
		struct ser *s = db->fresh[i];
		if ((rc = m->ops->series_add(m, s->pub.id, s->host->name, s->pub.key,
		                             s->pub.first_ms)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < db->nmarks; i++) {
		struct tsdb_host *h = db->marks[i];
		rc = db->shared ? m->ops->seq_swap(m, h->name, h->base_epoch, h->base_seq, h->epoch,
		                                   h->seq)
		                : m->ops->seq_put(m, h->name, h->epoch, h->seq);
		if (rc < 0)
			goto fail;
	}
	if (db->log.len) {
		if ((rc = m->ops->log_add(m, (const uint8_t *)db->log.data, db->log.len,
		                          &db->log_id)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < db->nsealed; i++) {
		struct sealed *x = &db->sealed[i];
		struct mstore_chunk c = {x->series, x->w,  x->w + RAW_WINDOW_MS, x->count, 1,
		                         x->data,   x->len};
		rc = db->shared ? tsdb_shared_put(db, x->series, x->w, x->data, x->len, 1)
		                : m->ops->chunk_put(m, TSDB_RAW, &c);
		if (rc < 0)
			goto fail;
	}
	if ((rc = m->ops->commit(m)) < 0)
		return rc;
	db->log_bytes += db->log.len;
	return 0;
fail:
	m->ops->rollback(m);
	return rc;
}

static void tsdb_clear(struct tsdb *db);
static int tsdb_load(struct tsdb *db, char *msg, size_t msglen);

int tsdb_flush(struct tsdb *db)
{
	char msg[256];
	int rc;

	if (!db->nfresh && !db->nmarks && !db->log.len && !db->nsealed)
		return 0;
	db->st.flushes++;
	if ((rc = flush_write(db)) == 0) {
		for (size_t i = 0; i < db->nmarks; i++) {
			struct tsdb_host *h = db->marks[i];
			memcpy(h->base_epoch, h->epoch, sizeof(h->epoch));
			h->base_seq = h->seq;
		}
		pending_clear(db);
		return 0;
	}
	/* Memory is ahead of the disk now: start again from the disk. The senders of what is
	 * lost are answered with an error and send it again. */
	db->st.flush_failures++;
	log_error(db->cfg.log, "metrics", "writing metrics failed (%d); reloading from disk", rc);
	tsdb_clear(db);
	db->gen++;
	if (tsdb_load(db, msg, sizeof(msg)) < 0)
		log_error(db->cfg.log, "metrics", "reloading metrics failed: %s", msg);
	return rc;
}

uint64_t tsdb_generation(const struct tsdb *db)
{
	return db->gen;
}

size_t tsdb_pending(const struct tsdb *db)
{
	return db->log.len / LOG_REC;
}

int tsdb_load_series(void *arg, uint32_t id, const char *host, const char *key, int64_t first_ms,
                     int64_t rolled_ms)
{
	struct tsdb *db = arg;
	struct tsdb_host *h = host_find(db, host, 1);
	struct ser *s;

	/* Shared: the dictionary is read again from a position; this hub's own are there too. */
	if (h && (by_id(db, id) || tab_find(db, h, key, strlen(key))))
		return 0;
	if (!h || id == 0 || !(s = ser_new(h, id, key, strlen(key))))
		return OUTPOST_E_INTERNAL;
	s->pub.first_ms = first_ms;
	s->rolled_ms = rolled_ms;
	if (tab_insert(db, s) < 0) {
		ser_free(s);
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

static int load_seq(void *arg, const char *host, const char *epoch, int64_t seq)
{
	struct tsdb *db = arg;
	struct tsdb_host *h = host_find(db, host, 1);

	if (!h)
		return OUTPOST_E_INTERNAL;
	snprintf(h->epoch, sizeof(h->epoch), "%s", epoch);
	h->seq = seq;
	memcpy(h->base_epoch, h->epoch, sizeof(h->epoch));
	h->base_seq = seq;
	return 0;
}

static int load_head(void *arg, const struct mstore_chunk *c)
{
	struct tsdb *db = arg;
	struct ser *s = by_id(db, c->series);
	struct chunk_enc *e = NULL;
	int64_t first, last;

	if (!s)
		return 0; /* a chunk without a series: left for retention */
	if (chunk_enc_from_bytes(c->data, c->len, &e) < 0) {
		log_error(db->cfg.log, "metrics",
		          "series %u: the chunk at %lld is corrupt; new samples start a new one",
		          c->series, (long long)c->start_ms);
		return 0;
	}
	if (chunk_enc_range(e, &first, &last) == 0) {
		s->pub.last_ms = last;
		{
			struct chunk_dec d;
			int64_t t;
			double v;
			size_t len;
			const uint8_t *b = chunk_enc_bytes(e, &len);
			chunk_dec_init(&d, b, len);
			while (chunk_dec_next(&d, &t, &v) == 1)
				s->pub.last_value = v;
		}
	}
	if (c->sealed || db->shared) { /* shared: a head is taken when a sample comes */
		chunk_enc_free(e);
	} else {
		s->head = e;
		s->head_w = c->start_ms;
	}
	return 0;
}

static int replay_rec(void *arg, int64_t id, const uint8_t *p, size_t len)
{
	struct tsdb *db = arg;

	db->log_id = id;
	db->log_bytes += len;
	for (size_t i = 0; i + LOG_REC <= len; i += LOG_REC) {
		struct ser *s = by_id(db, get_u32(p + i));
		uint64_t bits = get_u64(p + i + 12);
		double v;
		int rc;
		memcpy(&v, &bits, 8);
		if (!s)
			continue;
		rc = ser_append(db, s, (int64_t)get_u64(p + i + 4), v);
		if (rc < 0)
			return rc;
		if (rc == 0)
			db->st.replayed++;
	}
	return 0;
}

static int tsdb_load(struct tsdb *db, char *msg, size_t msglen)
{
	struct mstore *m = db->m;
	int rc;

	db->shared = m->ops->series_block != NULL;
	rc = db->shared ? m->ops->series_since(m, 0, tsdb_load_series, db, &db->series_pos)
	                : m->ops->series_each(m, tsdb_load_series, db);
	if (rc != 0) {
		snprintf(msg, msglen, "reading the series dictionary failed (%d)", rc);
		return rc < 0 ? rc : OUTPOST_E_INTERNAL;
	}
	if ((rc = m->ops->seq_each(m, load_seq, db)) != 0 ||
	    (rc = m->ops->chunk_latest(m, load_head, db)) != 0) {
		snprintf(msg, msglen, "reading the heads failed (%d)", rc);
		return rc < 0 ? rc : OUTPOST_E_INTERNAL;
	}
	if (db->shared) {
		if ((rc = tsdb_shared_load(db, clk_real_ms())) < 0) {
			snprintf(msg, msglen, "reading the shared ingest log failed (%d)", rc);
			return rc;
		}
	} else if ((rc = m->ops->log_each(m, 0, replay_rec, db)) != 0) {
		snprintf(msg, msglen, "replaying the ingest log failed (%d)", rc);
		return rc < 0 ? rc : OUTPOST_E_INTERNAL;
	}
	/* Windows the replay sealed go to disk now; the heads it grew stay dirty, and a
	 * checkpoint soon writes them so the log can go. */
	if ((rc = flush_write(db)) < 0) {
		snprintf(msg, msglen, "writing the replayed chunks failed (%d)", rc);
		return rc;
	}
	pending_clear(db);
	if (db->st.replayed)
		log_info(db->cfg.log, "metrics", "replayed %llu samples from the ingest log",
		         db->st.replayed);
	return 0;
}

static void tsdb_clear(struct tsdb *db)
{
	pending_clear(db);
	for (size_t i = 0; i < db->nseries; i++)
		ser_free(db->by_id[i]);
	free(db->by_id);
	free(db->tab);
	db->by_id = NULL;
	db->tab = NULL;
	db->nseries = db->cap_id = db->tab_cap = 0;
	for (size_t i = 0; i < db->hosts_cap; i++)
		for (struct tsdb_host *h = db->hosts[i], *nx; h; h = nx) {
			nx = h->next;
			free(h->name);
			free(h);
		}
	free(db->hosts);
	db->hosts = NULL;
	db->hosts_cap = db->nhosts = 0;
	db->ckpt_active = 0;
	db->log_bytes = 0;
	db->count = 0;
	db->series_pos = db->log_pos = 0;
}

int tsdb_open(const struct tsdb_config *cfg, struct tsdb **out, char *msg, size_t msglen)
{
	struct tsdb *db = calloc(1, sizeof(*db));
	int rc;

	*out = NULL;
	if (!db) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	db->cfg = *cfg;
	if (!(db->m = cfg->store->ops->metrics(cfg->store))) {
		snprintf(msg, msglen, "the store has no metrics side");
		free(db);
		return OUTPOST_E_INTERNAL;
	}
	if ((rc = tsdb_load(db, msg, msglen)) < 0) {
		tsdb_close(db);
		return rc;
	}
	db->ckpt_last_ms = clk_mono_ms();
	*out = db;
	return 0;
}

void tsdb_close(struct tsdb *db)
{
	if (!db)
		return;
	tsdb_clear(db);
	free(db->fresh);
	free(db->marks);
	free(db->sealed);
	buf_free(&db->log);
	free(db);
}

/* ---- Reads ---- */

int tsdb_pts_add(struct pts *x, int64_t t, double mn, double mx, double sum, double cnt)
{
	if (t < x->from || t >= x->to)
		return 0;
	if (grow((void **)&x->p, &x->cap, x->n + 1, sizeof(*x->p)) < 0)
		return OUTPOST_E_INTERNAL;
	x->p[x->n++] = (struct tsdb_point){t, mn, mx, sum, cnt};
	return 0;
}

static int raw_bytes_into(struct pts *x, const uint8_t *b, size_t len)
{
	struct chunk_dec d;
	int64_t t;
	double v;
	int rc;

	if (chunk_dec_init(&d, b, len) < 0)
		return 0; /* corrupt: nothing from it (logged by whoever wrote it) */
	while ((rc = chunk_dec_next(&d, &t, &v)) == 1) {
		if (t >= x->to)
			break;
		if (tsdb_pts_add(x, t, v, v, v, 1) < 0)
			return OUTPOST_E_INTERNAL;
	}
	return 0;
}

static int read_raw_cb(void *arg, const struct mstore_chunk *c)
{
	struct pts *x = arg;

	if (c->start_ms == x->skip_w)
		return 0;
	return raw_bytes_into(x, c->data, c->len);
}

/* Rollup chunk layout: four chunks (min, max, sum, count over the same times), each preceded
 * by its length as u32 LE. */
static int rollup_decode(const uint8_t *b, size_t len, struct chunk_dec d[4])
{
	size_t off = 0;

	for (int k = 0; k < 4; k++) {
		uint32_t n;
		if (len - off < 4)
			return OUTPOST_E_INTERNAL;
		n = get_u32(b + off);
		off += 4;
		if (n > len - off || chunk_dec_init(&d[k], b + off, n) < 0)
			return OUTPOST_E_INTERNAL;
		off += n;
	}
	return off == len ? 0 : OUTPOST_E_INTERNAL;
}

static int read_rollup_cb(void *arg, const struct mstore_chunk *c)
{
	struct pts *x = arg;
	struct chunk_dec d[4];
	int64_t t[4];
	double v[4];

	if (rollup_decode(c->data, c->len, d) < 0)
		return 0;
	for (;;) {
		for (int k = 0; k < 4; k++)
			if (chunk_dec_next(&d[k], &t[k], &v[k]) != 1)
				return 0;
		if (tsdb_pts_add(x, t[0], v[0], v[1], v[2], v[3]) < 0)
			return OUTPOST_E_INTERNAL;
	}
}

/* Buckets raw points [i0, n) of x into res-sized points, in place after i0. */
static void bucket_into(struct pts *x, size_t i0, int res)
{
	size_t o = i0;
	int64_t step = interval_ms[res];

	for (size_t i = i0; i < x->n;) {
		int64_t b = floor_to(x->p[i].t, step);
		struct tsdb_point acc = {b, NAN, NAN, 0, 0};
		for (; i < x->n && floor_to(x->p[i].t, step) == b; i++) {
			double v = x->p[i].sum;
			if (isnan(v))
				continue;
			acc.min = isnan(acc.min) || v < acc.min ? v : acc.min;
			acc.max = isnan(acc.max) || v > acc.max ? v : acc.max;
			acc.sum += v;
			acc.count += 1;
		}
		if (acc.count > 0)
			x->p[o++] = acc;
	}
	x->n = o;
}

static int read_raw(struct tsdb *db, struct ser *s, struct pts *x)
{
	size_t i0 = x->n;
	int rc;

	/* Shared: another hub may have written the head's window since; every source counts. */
	x->skip_w = s->head && !db->shared ? s->head_w : -1;
	if ((rc = db->m->ops->chunk_range(db->m, TSDB_RAW, s->pub.id, x->from, x->to, read_raw_cb,
	                                  x)) != 0)
		return rc < 0 ? rc : OUTPOST_E_INTERNAL;
	if (s->head && s->head_w < x->to && s->head_w + RAW_WINDOW_MS > x->from) {
		size_t len;
		const uint8_t *b = chunk_enc_bytes(s->head, &len);
		if ((rc = raw_bytes_into(x, b, len)) < 0)
			return rc;
	}
	return db->shared ? tsdb_shared_read(db, s, x, i0) : 0;
}

int tsdb_read(struct tsdb *db, uint32_t id, int res, int64_t from, int64_t to,
              struct tsdb_point **out, size_t *n)
{
	struct ser *s;
	struct pts x = {NULL, 0, 0, from, to, -1};
	int rc = 0;

	*out = NULL;
	*n = 0;
	/* Windows sealed since the last flush are only in memory. (A failed flush reloads: look
	 * the series up after it.) */
	if (db->nsealed && (rc = tsdb_flush(db)) < 0)
		return rc;
	if (!(s = by_id(db, id)))
		return OUTPOST_E_NOT_FOUND;
	if (res < 0 || res >= TSDB_NRES || from >= to)
		return res < 0 || res >= TSDB_NRES ? OUTPOST_E_BAD_ARGS : 0;
	if (res == TSDB_RAW) {
		rc = read_raw(db, s, &x);
	} else {
		int64_t split = s->rolled_ms < from ? from : s->rolled_ms;
		if (split > to)
			split = to;
		x.to = split;
		if (from < split)
			rc = db->m->ops->chunk_range(db->m, res, id, from, split, read_rollup_cb,
			                             &x);
		if (rc == 0 && split < to) {
			/* Not rolled up yet (the open window, sealed ones in the queue): from raw.
			 */
			size_t i0 = x.n;
			x.from = floor_to(split, interval_ms[res]);
			x.to = to;
			rc = read_raw(db, s, &x);
			if (rc == 0)
				bucket_into(&x, i0, res);
		}
		if (rc > 0)
			rc = OUTPOST_E_INTERNAL;
	}
	if (rc < 0) {
		free(x.p);
		return rc;
	}
	*out = x.p;
	*n = x.n;
	return 0;
}

int tsdb_series_each_at(struct tsdb *db, const char *name, size_t *pos, tsdb_each_fn fn, void *arg)
{
	size_t i;

	for (i = *pos; i < db->nseries; i++) {
		struct ser *s = db->by_id[i];
		if (!s || (name && strcmp(s->pub.name, name) != 0))
			continue;
		if (fn(arg, &s->pub))
			break;
	}
	*pos = i;
	return 0;
}

int tsdb_series_each(struct tsdb *db, const char *name, tsdb_each_fn fn, void *arg)
{
	size_t pos = 0;

	return tsdb_series_each_at(db, name, &pos, fn, arg);
}

int64_t tsdb_keep_ms(const struct tsdb *db, int res)
{
	return res >= 0 && res < TSDB_NRES ? db->cfg.keep_ms[res] : 0;
}

int64_t tsdb_interval_ms(int res)
{
	return res >= 0 && res < TSDB_NRES ? interval_ms[res] : 0;
}

const char *tsdb_res_name(int res)
{
	static const char *const names[TSDB_NRES] = {"raw", "1m", "1h"};
	return res >= 0 && res < TSDB_NRES ? names[res] : "?";
}

/* ---- Compaction ---- */

/* Rollups of one sealed raw chunk into the window rows of res, replacing the points the window
 * had for the chunk's span (a reopened window is rolled up again). */
struct rollup_job {
	struct tsdb *db;
	int res;
	const struct mstore_chunk *raw;
	struct pts fresh; /* the new points, bucketed */
	struct pts old;   /* the window row's points */
};

static int rollup_load_old(void *arg, const struct mstore_chunk *c)
{
	struct rollup_job *j = arg;

	j->old.from = INT64_MIN;
	j->old.to = INT64_MAX;
	return read_rollup_cb(&j->old, c) < 0 ? OUTPOST_E_INTERNAL : 1;
}

static int rollup_encode(const struct tsdb_point *p, size_t n, struct buf *out)
{
	for (int k = 0; k < 4; k++) {
		struct chunk_enc *e = NULL;
		const uint8_t *b;
		size_t len;
		uint8_t l4[4];
		if (chunk_enc_new(&e) < 0)
			return OUTPOST_E_INTERNAL;
		for (size_t i = 0; i < n; i++) {
			double v = k == 0   ? p[i].min
			           : k == 1 ? p[i].max
			           : k == 2 ? p[i].sum
			                    : p[i].count;
			if (chunk_enc_add(e, p[i].t, v) < 0) {
				chunk_enc_free(e);
				return OUTPOST_E_INTERNAL;
			}
		}
		uint8_t *small = NULL;
		b = chunk_enc_bytes(e, &len);
		if (chunk_compact(b, len, &small, &len) == 1)
			b = small;
		put_u32(l4, (uint32_t)len);
		if (buf_append(out, l4, 4) < 0 || buf_append(out, b, len) < 0) {
			free(small);
			chunk_enc_free(e);
			return OUTPOST_E_INTERNAL;
		}
		free(small);
		chunk_enc_free(e);
	}
	return 0;
}

static int rollup_one(struct tsdb *db, const struct mstore_chunk *raw, int res)
{
	struct rollup_job j = {db, res, raw, {0}, {0}};
	int64_t w = floor_to(raw->start_ms, window_ms[res]);
	struct tsdb_point *all = NULL;
	size_t n = 0;
	struct buf out = BUF_INIT;
	int rc;

	j.fresh.from = INT64_MIN;
	j.fresh.to = INT64_MAX;
	j.fresh.skip_w = -1;
	if ((rc = raw_bytes_into(&j.fresh, raw->data, raw->len)) < 0)
		goto out;
	bucket_into(&j.fresh, 0, res);
	rc = db->m->ops->chunk_get(db->m, res, raw->series, w, rollup_load_old, &j);
	if (rc < 0 && rc != OUTPOST_E_NOT_FOUND)
		goto out;
	if (!(all = malloc((j.old.n + j.fresh.n + 1) * sizeof(*all)))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	/* Old points before the span, the new ones, old points after it. */
	for (size_t i = 0; i < j.old.n; i++)
		if (j.old.p[i].t < raw->start_ms)
			all[n++] = j.old.p[i];
	for (size_t i = 0; i < j.fresh.n; i++)
		all[n++] = j.fresh.p[i];
	for (size_t i = 0; i < j.old.n; i++)
		if (j.old.p[i].t >= raw->end_ms)
			all[n++] = j.old.p[i];
	rc = 0;
	if (n == 0)
		goto out;
	if ((rc = rollup_encode(all, n, &out)) < 0)
		goto out;
	{
		struct mstore_chunk c = {raw->series, w, w + window_ms[res],
		                         (uint32_t)n, 0, (const uint8_t *)out.data,
		                         out.len};
		rc = db->m->ops->chunk_put(db->m, res, &c);
	}
out:
	free(j.fresh.p);
	free(j.old.p);
	free(all);
	buf_free(&out);
	return rc;
}

struct unrolled {
	struct mstore_chunk c;
	uint8_t *copy;
};

struct unrolled_list {
	struct unrolled *v;
	size_t n, cap;
};

static int collect_unrolled(void *arg, const struct mstore_chunk *c)
{
	struct unrolled_list *l = arg;
	struct unrolled *u;

	if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)) < 0)
		return OUTPOST_E_INTERNAL;
	u = &l->v[l->n];
	if (!(u->copy = malloc(c->len ? c->len : 1)))
		return OUTPOST_E_INTERNAL;
	memcpy(u->copy, c->data, c->len);
	u->c = *c;
	u->c.data = u->copy;
	l->n++;
	return 0;
}

/* One transaction of rollups: at most limit sealed chunks. Returns how many, or an error. */
static int compact_rollups(struct tsdb *db, int limit)
{
	struct unrolled_list l = {0};
	struct mstore *m = db->m;
	int rc;

	if ((rc = m->ops->chunk_unrolled(m, limit, collect_unrolled, &l)) != 0)
		goto out;
	if (l.n == 0)
		goto out;
	if ((rc = m->ops->begin(m)) < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		const struct mstore_chunk *c = &l.v[i].c;
		struct ser *s = by_id(db, c->series);
		if ((rc = rollup_one(db, c, TSDB_1M)) < 0 ||
		    (rc = rollup_one(db, c, TSDB_1H)) < 0 ||
		    (rc = m->ops->chunk_mark_rolled(m, c->series, c->start_ms)) < 0 ||
		    (rc = m->ops->series_rolled(m, c->series, c->end_ms)) < 0) {
			m->ops->rollback(m);
			goto out;
		}
		if (s && s->rolled_ms < c->end_ms)
			s->rolled_ms = c->end_ms;
	}
	if ((rc = m->ops->commit(m)) == 0) {
		db->st.rolled += l.n;
		rc = (int)l.n;
	}
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].copy);
	free(l.v);
	if (rc < 0)
		log_error(db->cfg.log, "metrics", "writing rollups failed (%d)", rc);
	return rc;
}

/* Writes up to limit dirty heads; at the end of the sweep, trims the log it covers. */
static int checkpoint_step(struct tsdb *db, size_t limit)
{
	struct mstore *m = db->m;
	size_t done = 0;
	int rc;

	if ((rc = m->ops->begin(m)) < 0)
		return rc;
	for (; db->ckpt_pos < db->nseries && done < limit; db->ckpt_pos++) {
		struct ser *s = db->by_id[db->ckpt_pos];
		const uint8_t *b;
		size_t len;
		if (!s || !s->head || !s->dirty || s->fresh)
			continue;
		b = chunk_enc_bytes(s->head, &len);
		struct mstore_chunk c = {s->pub.id,
		                         s->head_w,
		                         s->head_w + RAW_WINDOW_MS,
		                         (uint32_t)chunk_enc_count(s->head),
		                         0,
		                         b,
		                         len};
		rc = db->shared ? tsdb_shared_put(db, s->pub.id, s->head_w, b, len, 0)
		                : m->ops->chunk_put(m, TSDB_RAW, &c);
		if (rc < 0)
			goto fail;
		s->dirty = 0;
		done++;
	}
	if (db->ckpt_pos >= db->nseries && (rc = m->ops->log_trim(m, db->ckpt_log_id)) < 0)
		goto fail;
	if ((rc = m->ops->commit(m)) < 0)
		return rc;
	if (db->ckpt_pos >= db->nseries) {
		db->ckpt_active = 0;
		db->st.checkpoints++;
	}
	return 0;
fail:
	/* The heads it marked clean are still in memory and in the log: mark them dirty again. */
	m->ops->rollback(m);
	for (size_t i = 0; i < db->nseries; i++)
		if (db->by_id[i] && db->by_id[i]->head)
			db->by_id[i]->dirty = 1;
	db->ckpt_active = 0;
	return rc;
}

void tsdb_compact(struct tsdb *db, int64_t now_ms, int64_t budget_ms, int lead)
{
	int64_t t0 = clk_mono_ms();
	int rc;

	/* Everything below assumes the store has what memory has. A failed flush reloads. */
	if (tsdb_flush(db) < 0)
		return;
	if (db->shared && tsdb_shared_sync(db) < 0)
		log_warn(db->cfg.log, "metrics", "reading the other hubs' metrics failed");

	/* Heads of windows long over: seal (a slice of the series per call). */
	for (size_t k = 0; k < 20000 && db->nseries; k++, db->seal_pos++) {
		struct ser *s;
		if (db->seal_pos >= db->nseries)
			db->seal_pos = 0;
		s = db->by_id[db->seal_pos];
		if (s && s->head && !s->fresh &&
		    s->head_w + RAW_WINDOW_MS + SEAL_GRACE_MS < now_ms && head_seal(db, s) < 0)
			break;
	}
	if (tsdb_flush(db) < 0)
		return;

	while (lead && clk_mono_ms() - t0 < budget_ms && (rc = compact_rollups(db, 64)) > 0)
		;
	if (!lead && db->shared && now_ms - db->rolled_sync_ms >= 60000) {
		db->rolled_sync_ms = now_ms;
		if (tsdb_shared_rolled(db) < 0)
			log_warn(db->cfg.log, "metrics",
			         "reading the leader's rollup marks failed");
	}

	if (!db->ckpt_active && db->nseries &&
	    (db->log_bytes >= CKPT_LOG_BYTES ||
	     (db->log_bytes && clk_mono_ms() - db->ckpt_last_ms >= db->cfg.checkpoint_ms))) {
		db->ckpt_active = 1;
		db->ckpt_pos = 0;
		db->ckpt_log_id = db->log_id;
		db->ckpt_last_ms = clk_mono_ms();
		db->log_bytes = 0;
	}
	while (db->ckpt_active && clk_mono_ms() - t0 < budget_ms)
		if (checkpoint_step(db, 2000) < 0) {
			log_error(db->cfg.log, "metrics", "checkpoint failed; will try again");
			break;
		}

	/* Retention, at most once a minute, in bounded deletes. */
	if (now_ms - db->expire_last_ms >= 60000) {
		db->expire_last_ms = now_ms;
		for (int r = 0; r < TSDB_NRES; r++) {
			int64_t n = 0;
			if (db->cfg.keep_ms[r] <= 0)
				continue;
			if (r == TSDB_RAW)
				db->raw_horizon_ms = now_ms - db->cfg.keep_ms[r];
			if (!lead)
				continue;
			do {
				rc = db->m->ops->chunk_expire(db->m, r, now_ms - db->cfg.keep_ms[r],
				                              5000, &n);
				if (rc == 0)
					db->st.expired += (unsigned long long)n;
			} while (rc == 0 && n == 5000 && clk_mono_ms() - t0 < budget_ms);
		}
	}
}

json_t *tsdb_status(struct tsdb *db)
{
	size_t head_bytes = 0, heads = 0;

	for (size_t i = 0; i < db->nseries; i++) {
		struct ser *s = db->by_id[i];
		if (s && s->head) {
			size_t len;
			chunk_enc_bytes(s->head, &len);
			head_bytes += len;
			heads++;
		}
	}
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "series",
	    (json_int_t)db->count, "hosts", (json_int_t)db->nhosts, "heads", (json_int_t)heads,
	    "head_bytes", (json_int_t)head_bytes, "samples_appended", (json_int_t)db->st.appended,
	    "samples_replayed", (json_int_t)db->st.replayed, "chunks_sealed",
	    (json_int_t)db->st.sealed, "chunks_rolled", (json_int_t)db->st.rolled, "chunks_expired",
	    (json_int_t)db->st.expired, "checkpoints", (json_int_t)db->st.checkpoints, "flushes",
	    (json_int_t)db->st.flushes, "flush_failures", (json_int_t)db->st.flush_failures);
}
