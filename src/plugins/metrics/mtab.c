/* The table of application series: see mtab.h. Linear probing with backward-shift deletion, so
 * there are no tombstones and a table that shrinks through expiry stays fast. */
#include "mtab.h"

#include <outpost/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const mtab_stat_names[MTAB_NSTATS] = {"count", "sum", "min", "max",
                                                  "p50",   "p90", "p99"};

struct mtab_timer {
	uint64_t count; /* samples this interval */
	double sum, min, max;
	uint32_t n, cap; /* the reservoir */
	float *samples;
	double stats[MTAB_NSTATS]; /* published at the last roll */
};

struct mtab_set {
	uint32_t n, cap; /* cap: a power of two, or 0 */
	uint64_t *slot;  /* 0 is empty */
};

struct mtab {
	struct mtab_series **slot;
	size_t cap; /* a power of two */
	size_t n;
	size_t nout;  /* series shown: the sum of widths */
	size_t bytes; /* entries and accumulators, without the slot array */
	uint64_t rng;
};

static uint32_t mtab_hash(const char *key, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return h;
}

int mtab_new(struct mtab **out)
{
	struct mtab *t = calloc(1, sizeof(*t));

	if (!t)
		return OUTPOST_E_INTERNAL;
	t->cap = 64;
	t->slot = calloc(t->cap, sizeof(*t->slot));
	if (!t->slot) {
		free(t);
		return OUTPOST_E_INTERNAL;
	}
	t->rng = 0x9e3779b97f4a7c15ull;
	*out = t;
	return 0;
}

static void acc_free(struct mtab_series *s)
{
	if (!s->acc)
		return;
	if (s->type == MTAB_TIMER)
		free(((struct mtab_timer *)s->acc)->samples);
	else if (s->type == MTAB_SET)
		free(((struct mtab_set *)s->acc)->slot);
	free(s->acc);
	s->acc = NULL;
}

void mtab_free(struct mtab *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i]) {
			acc_free(t->slot[i]);
			free(t->slot[i]);
		}
	free(t->slot);
	free(t);
}

static int name_char(char c, int first, int colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return 1;
	if (colon && c == ':')
		return 1;
	return !first && c >= '0' && c <= '9';
}

static int name_ok(const char *s, size_t len, int colon)
{
	if (len == 0 || len > MTAB_NAME_MAX || (len >= 2 && s[0] == '_' && s[1] == '_'))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i], i == 0, colon))
			return 0;
	return 1;
}

int mtab_name_ok(const char *s, size_t len)
{
	return name_ok(s, len, 1);
}

int mtab_label_name_ok(const char *s, size_t len)
{
	return name_ok(s, len, 0);
}

int mtab_name_reserved(const char *name)
{
	return strncmp(name, "host_", 5) == 0 || strcmp(name, MTAB_SELF_BAD_LINES) == 0 ||
	       strcmp(name, MTAB_SELF_PACKETS) == 0 || strcmp(name, MTAB_SELF_REFUSED) == 0;
}

size_t mtab_key(char *buf, size_t cap, const char *name, const char *const *labels, size_t nlabels)
{
	size_t len = 0, done = 0;
	const char *prev = NULL;

	if (nlabels > MTAB_LABELS_MAX || strlen(name) + 1 > cap)
		return 0;
	memcpy(buf, name, strlen(name) + 1);
	len = strlen(name) + 1;
	/* A selection sort: at most 16 labels, and no allocation. */
	while (done < nlabels) {
		size_t best = nlabels;
		for (size_t i = 0; i < nlabels; i++) {
			const char *k = labels[2 * i];
			if (prev && strcmp(k, prev) <= 0)
				continue;
			if (best == nlabels || strcmp(k, labels[2 * best]) < 0)
				best = i;
		}
		if (best == nlabels)
			break; /* duplicate names: the caller's objects cannot have them */
		for (int j = 0; j < 2; j++) {
			size_t n = strlen(labels[2 * best + j]) + 1;
			if (len + n > cap)
				return 0;
			memcpy(buf + len, labels[2 * best + j], n);
			len += n;
		}
		prev = labels[2 * best];
		done++;
	}
	return len > UINT16_MAX ? 0 : len;
}

struct mtab_series *mtab_find(struct mtab *t, const char *key, size_t keylen)
{
	uint32_t h = mtab_hash(key, keylen);

	for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		struct mtab_series *s = t->slot[i];
		if (!s)
			return NULL;
		if (s->hash == h && s->keylen == keylen && memcmp(s->key, key, keylen) == 0)
			return s;
	}
}

static void slot_put(struct mtab_series **slot, size_t cap, struct mtab_series *s)
{
	size_t i = s->hash & (cap - 1);

	while (slot[i])
		i = (i + 1) & (cap - 1);
	slot[i] = s;
}

static int mtab_grow(struct mtab *t)
{
	size_t cap = t->cap * 2;
	struct mtab_series **slot = calloc(cap, sizeof(*slot));

	if (!slot)
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i])
			slot_put(slot, cap, t->slot[i]);
	free(t->slot);
	t->slot = slot;
	t->cap = cap;
	return 0;
}

size_t mtab_type_width(int type)
{
	return type == MTAB_TIMER ? MTAB_NSTATS : 1;
}

size_t mtab_output_count(const struct mtab *t)
{
	return t->nout;
}

struct mtab_series *mtab_get(struct mtab *t, const char *key, size_t keylen, int type, int *created)
{
	struct mtab_series *s = mtab_find(t, key, keylen);
	uint8_t nlabels = 0;

	*created = 0;
	if (s)
		return s;
	/* Keep the load under 3/4. */
	if ((t->n + 1) * 4 > t->cap * 3 && mtab_grow(t) < 0)
		return NULL;
	s = malloc(sizeof(*s) + keylen);
	if (!s)
		return NULL;
	if (type == MTAB_TIMER || type == MTAB_SET) {
		s->acc = calloc(1, type == MTAB_TIMER ? sizeof(struct mtab_timer)
		                                      : sizeof(struct mtab_set));
		if (!s->acc) {
			free(s);
			return NULL;
		}
		if (type == MTAB_TIMER)
			for (int i = 0; i < MTAB_NSTATS; i++)
				((struct mtab_timer *)s->acc)->stats[i] = NAN;
	} else {
		s->acc = NULL;
	}
	memcpy(s->key, key, keylen);
	for (size_t i = strlen(key) + 1; i < keylen; i++)
		nlabels += key[i] == '\0';
	s->hash = mtab_hash(key, keylen);
	s->keylen = (uint16_t)keylen;
	s->type = (uint8_t)type;
	s->nlabels = nlabels / 2;
	s->updated_ms = 0;
	s->value = NAN;
	slot_put(t->slot, t->cap, s);
	t->n++;
	t->nout += mtab_type_width(type);
	t->bytes += sizeof(*s) + keylen +
	            (type == MTAB_TIMER ? sizeof(struct mtab_timer)
	             : type == MTAB_SET ? sizeof(struct mtab_set)
	                                : 0);
	*created = 1;
	return s;
}

static uint64_t mtab_rand(struct mtab *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng;
}

int mtab_timer_add(struct mtab *t, struct mtab_series *s, double v)
{
	struct mtab_timer *a = s->acc;

	if (a->count == 0 || v < a->min)
		a->min = v;
	if (a->count == 0 || v > a->max)
		a->max = v;
	a->sum += v;
	a->count++;
	if (a->n < MTAB_TIMER_SAMPLES) {
		if (a->n == a->cap) {
			uint32_t cap = a->cap ? a->cap * 2 : 8;
			float *p = realloc(a->samples, cap * sizeof(*p));
			if (!p)
				return -1;
			t->bytes += (cap - a->cap) * sizeof(*p);
			a->samples = p;
			a->cap = cap;
		}
		a->samples[a->n++] = (float)v;
	} else {
		/* Algorithm R: every sample of the interval is kept with equal probability. */
		uint64_t j = mtab_rand(t) % a->count;
		if (j < MTAB_TIMER_SAMPLES)
			a->samples[j] = (float)v;
	}
	return 0;
}

int mtab_set_add(struct mtab_series *s, uint64_t hash)
{
	struct mtab_set *a = s->acc;
	size_t i;

	if (hash == 0)
		hash = 1;
	if (a->cap == 0 || (a->n + 1) * 2 > a->cap) {
		uint32_t cap = a->cap ? a->cap * 2 : 16;
		uint64_t *slot;
		if (a->n >= MTAB_SET_MAX)
			return 0; /* saturated: the count stays at the cap this interval */
		slot = calloc(cap, sizeof(*slot));
		if (!slot)
			return -1;
		for (uint32_t j = 0; j < a->cap; j++)
			if (a->slot[j]) {
				for (i = a->slot[j] & (cap - 1); slot[i]; i = (i + 1) & (cap - 1))
					;
				slot[i] = a->slot[j];
			}
		free(a->slot);
		a->slot = slot;
		a->cap = cap;
	}
	for (i = hash & (a->cap - 1); a->slot[i]; i = (i + 1) & (a->cap - 1))
		if (a->slot[i] == hash)
			return 0;
	if (a->n >= MTAB_SET_MAX)
		return 0;
	a->slot[i] = hash;
	a->n++;
	return 0;
}

static int float_cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static void timer_roll(struct mtab *t, struct mtab_timer *a)
{
	static const double pct[3] = {50, 90, 99};

	a->stats[0] = (double)a->count;
	a->stats[1] = a->sum;
	for (int i = 2; i < MTAB_NSTATS; i++)
		a->stats[i] = NAN;
	if (a->count > 0) {
		a->stats[2] = a->min;
		a->stats[3] = a->max;
		qsort(a->samples, a->n, sizeof(*a->samples), float_cmp);
		for (int i = 0; i < 3; i++) {
			/* Nearest rank: the smallest sample with at least pct% at or below it. */
			size_t r = (size_t)ceil(pct[i] / 100.0 * a->n);
			a->stats[4 + i] = a->samples[r ? r - 1 : 0];
		}
	} else if (a->samples) {
		/* Idle for a whole interval: give the memory back until it is used again. */
		t->bytes -= a->cap * sizeof(*a->samples);
		free(a->samples);
		a->samples = NULL;
		a->cap = 0;
	}
	a->count = 0;
	a->n = 0;
	a->sum = 0;
}

static void set_roll(struct mtab_series *s)
{
	struct mtab_set *a = s->acc;

	s->value = a->n;
	free(a->slot);
	a->slot = NULL;
	a->cap = 0;
	a->n = 0;
}

static void mtab_remove_at(struct mtab *t, size_t i)
{
	struct mtab_series *s = t->slot[i];
	size_t j = i;

	t->n--;
	t->nout -= mtab_type_width(s->type);
	t->bytes -= sizeof(*s) + s->keylen +
	            (s->type == MTAB_TIMER ? sizeof(struct mtab_timer)
	             : s->type == MTAB_SET ? sizeof(struct mtab_set)
	                                   : 0);
	if (s->type == MTAB_TIMER)
		t->bytes -= ((struct mtab_timer *)s->acc)->cap * sizeof(float);
	acc_free(s);
	free(s);
	t->slot[i] = NULL;
	/* Backward shift: move up every entry of the run that may no longer be found. */
	for (;;) {
		size_t home;
		j = (j + 1) & (t->cap - 1);
		if (!t->slot[j])
			return;
		home = t->slot[j]->hash & (t->cap - 1);
		/* Is home cyclically in (i, j]? Then the entry stays. */
		if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slot[i] = t->slot[j];
		t->slot[j] = NULL;
		i = j;
	}
}

void mtab_roll(struct mtab *t, int64_t expire_before)
{
	/* Two passes: a removal may wrap an entry from the front of the array to the back, and a
	 * timer must not be rolled twice. */
	for (size_t i = 0; expire_before > 0 && i < t->cap;) {
		if (t->slot[i] && t->slot[i]->updated_ms < expire_before)
			mtab_remove_at(t, i); /* an entry may have moved into i: look again */
		else
			i++;
	}
	for (size_t i = 0; i < t->cap; i++) {
		struct mtab_series *s = t->slot[i];
		if (s && s->type == MTAB_TIMER)
			timer_roll(t, s->acc);
		else if (s && s->type == MTAB_SET)
			set_roll(s);
	}
}

const double *mtab_timer_stats(const struct mtab_series *s)
{
	return ((const struct mtab_timer *)s->acc)->stats;
}

struct mtab_series *mtab_next(struct mtab *t, size_t *pos)
{
	while (*pos < t->cap) {
		struct mtab_series *s = t->slot[(*pos)++];
		if (s)
			return s;
	}
	return NULL;
}

size_t mtab_bytes(const struct mtab *t)
{
	size_t sets = 0;

	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i] && t->slot[i]->type == MTAB_SET)
			sets += ((struct mtab_set *)t->slot[i]->acc)->cap * sizeof(uint64_t);
	return sizeof(*t) + t->cap * sizeof(*t->slot) + t->bytes + sets;
}
