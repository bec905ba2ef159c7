/* Sample compression for the time-series store (see chunk.h): the Gorilla scheme of Pelkonen et
 * al., "Gorilla: A Fast, Scalable, In-Memory Time Series Database" (VLDB 2015), with the
 * timestamp buckets re-cut for milliseconds.
 *
 * Layout, version 1:
 *   byte 0       CHUNK_VERSION
 *   bytes 1-4    sample count, u32 little-endian
 *   bytes 5-12   time of the first sample, i64 little-endian (0 in an empty chunk)
 *   then a bit stream, most significant bit first, zero-padded to a whole byte:
 *   sample 0     its value as 64 raw bits
 *   sample i>0   timestamp, then value, as below.
 *
 * Timestamp. D = delta[i] - delta[i-1] with delta[i] = t[i] - t[i-1] and delta[0] = 0, all mod
 * 2^64 (so any two int64 times, even INT64_MIN then INT64_MAX, have a delta):
 *   '0'                 D == 0
 *   '10'    + 7 bits    D in [-64, 63]          (two's complement)
 *   '110'   + 9 bits    D in [-256, 255]
 *   '1110'  + 12 bits   D in [-2048, 2047]
 *   '11110' + 17 bits   D in [-65536, 65535]
 *   '11111' + 64 bits   anything else
 * Why these widths: in seconds (the paper) D is mostly 0; in milliseconds it is almost never 0,
 * because the collector's wake-up jitter shows. A sample stamped at a 10 s grid point + j, |j| <= J
 * gives |D| <= 4J: 7 bits hold a quiet host (J up to 16 ms), 9 bits a busy one (J = 50 ms costs
 * ~10 bits a timestamp), 12 bits an overloaded or paused one (J up to 0.5 s). A missed sample
 * gives D = +interval then -interval; the paper's next step (32 bits) would make that cost 36
 * bits twice, so 17 bits (+-65 s) take up to six missed 10 s samples, one missed 60 s sample,
 * and the first delta of a chunk (D = interval) for intervals up to a minute. Anything larger
 * (restarts, gaps of days or years) is rare enough to pay 69 bits. Simulated over 100k
 * samples at 10 s, this costs 10.2 bits/timestamp at +-50 ms grid jitter, 8.6 at +-5 ms, 9.6 at
 * +-50 ms with 1% missed samples, 14.8 at +-500 ms; Prometheus's millisecond buckets (14/17/20
 * bits) cost 15.3-16 on the same series.
 *
 * Value. X = bits(v[i]) ^ bits(v[i-1]):
 *   '0'                                         X == 0
 *   '10' + sig bits                             X inside the current window (lead, sig)
 *   '11' + 5 bits lead + 6 bits sig-1 + sig bits   a new window, which becomes current
 * lead counts X's leading zero bits, capped at 31 to fit 5 bits; sig the bits from there to the
 * last one bit. The encoder reuses the window only when that costs no more bits than a new one
 * would; the paper reuses whenever X fits, which keeps paying for a wide window after one outlier.
 * The decoder accepts either.
 *
 * Version 0x10 + k (k = 0..9), "scaled": the same layout, but every value v was stored as the
 * integer m = v * 10^k (a double), and decodes as m / 10^k. chunk_compact makes it when every
 * value of a chunk comes back bit for bit that way and the result is smaller. Why: metrics are
 * mostly decimals of a few places (loads, percentages, rates over an interval) and the XOR of
 * two such doubles keeps ~50 meaningful bits, while the XOR of two nearby integers keeps the
 * handful that changed. IEEE division is correctly rounded, so m / 10^k is the double nearest
 * the decimal, which is what the value was when it round-trips.
 */
#include "chunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The most bits one sample takes: an escaped timestamp and a value with a new 64-bit window. */
#define SAMPLE_MAX_BITS ((5 + 64) + (2 + 5 + 6 + 64))
#define ESCAPE_PREFIX_LEN 5
#define CORRUPT OUTPOST_E_INTERNAL

/* Payload widths of the timestamp buckets; bucket k has the prefix of k+1 one bits and a zero. */
static const unsigned dod_widths[] = {7, 9, 12, 17};
#define NBUCKETS (sizeof(dod_widths) / sizeof(dod_widths[0]))

struct chunk_enc {
	uint8_t *data; /* header + bit stream; owned; every byte past the stream is zero */
	size_t cap;
	size_t nbits; /* bits of stream after the header */
	uint32_t count;
	int64_t first_t, last_t;
	uint64_t delta; /* last_t minus the time before it, mod 2^64; 0 after the first sample */
	uint64_t v;     /* bits of the last value */
	unsigned lead, sig;
};

static double pow10_of(unsigned k)
{
	static const double p[CHUNK_SCALE_MAX + 1] = {1e0, 1e1, 1e2, 1e3, 1e4,
	                                              1e5, 1e6, 1e7, 1e8, 1e9};
	return p[k];
}

static uint64_t dbl_bits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return u;
}

static double bits_dbl(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

/* Two's complement reading of a uint64, without relying on implementation-defined casts. */
static int64_t u2i(uint64_t u)
{
	return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static void put_le(uint8_t *p, uint64_t x, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < n; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

/* ---- Encoder ---- */

/* Makes room for bits more bits of stream; the new bytes are zero. */
static int enc_reserve(struct chunk_enc *e, size_t bits)
{
	size_t need, cap;
	uint8_t *p;

	if (e->nbits > SIZE_MAX - 7 - bits ||
	    (e->nbits + bits + 7) / 8 > SIZE_MAX - CHUNK_HEADER_LEN)
		return OUTPOST_E_TOO_LARGE;
	need = CHUNK_HEADER_LEN + (e->nbits + bits + 7) / 8;
	if (need <= e->cap)
		return 0;
	cap = e->cap;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return OUTPOST_E_TOO_LARGE;
		cap *= 2;
	}
	p = realloc(e->data, cap);
	if (!p)
		return OUTPOST_E_INTERNAL;
	memset(p + e->cap, 0, cap - e->cap);
	e->data = p;
	e->cap = cap;
	return 0;
}

/* Appends the low n bits of x (n <= 64, higher bits zero); room was reserved. */
static void put_bits(struct chunk_enc *e, uint64_t x, unsigned n)
{
	while (n > 0) {
		unsigned room = 8 - (unsigned)(e->nbits % 8);
		unsigned take = n < room ? n : room;
		unsigned part = (unsigned)(x >> (n - take)) & ((1u << take) - 1);

		e->data[CHUNK_HEADER_LEN + e->nbits / 8] |= (uint8_t)(part << (room - take));
		e->nbits += take;
		n -= take;
	}
}

static void put_dod(struct chunk_enc *e, uint64_t dod)
{
	int64_t d = u2i(dod);

	if (dod == 0) {
		put_bits(e, 0, 1);
		return;
	}
	for (unsigned k = 0; k < NBUCKETS; k++) {
		unsigned w = dod_widths[k];
		int64_t lim = (int64_t)1 << (w - 1);

		if (d >= -lim && d < lim) {
			put_bits(e, ((1u << (k + 1)) - 1) << 1, k + 2);
			put_bits(e, dod & ((UINT64_C(1) << w) - 1), w);
			return;
		}
	}
	put_bits(e, (1u << ESCAPE_PREFIX_LEN) - 1, ESCAPE_PREFIX_LEN);
	put_bits(e, dod, 64);
}

static void put_xor(struct chunk_enc *e, uint64_t x)
{
	unsigned lead, trail, sig;

	if (x == 0) {
		put_bits(e, 0, 1);
		return;
	}
	lead = (unsigned)__builtin_clzll(x);
	trail = (unsigned)__builtin_ctzll(x);
	if (lead > 31)
		lead = 31;
	sig = 64 - lead - trail;
	if (e->sig && lead >= e->lead && trail >= 64 - e->lead - e->sig && e->sig <= sig + 11) {
		put_bits(e, 2, 2);
		put_bits(e, x >> (64 - e->lead - e->sig), e->sig);
		return;
	}
	put_bits(e, 3, 2);
	put_bits(e, lead, 5);
	put_bits(e, sig - 1, 6);
	put_bits(e, x >> trail, sig);
	e->lead = lead;
	e->sig = sig;
}

static struct chunk_enc *enc_alloc(size_t cap)
{
	struct chunk_enc *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->data = calloc(1, cap);
	if (!e->data) {
		free(e);
		return NULL;
	}
	e->cap = cap;
	return e;
}

int chunk_enc_new(struct chunk_enc **out)
{
	if (!out)
		return OUTPOST_E_BAD_ARGS;
	*out = enc_alloc(256);
	if (!*out)
		return OUTPOST_E_INTERNAL;
	(*out)->data[0] = CHUNK_VERSION;
	return 0;
}

int chunk_enc_add(struct chunk_enc *e, int64_t t_ms, double v)
{
	uint64_t x = dbl_bits(v), delta;
	int rc;

	if (!e || (e->count > 0 && t_ms <= e->last_t))
		return OUTPOST_E_BAD_ARGS;
	if (e->count == UINT32_MAX)
		return OUTPOST_E_TOO_LARGE;
	rc = enc_reserve(e, SAMPLE_MAX_BITS);
	if (rc < 0)
		return rc;
	if (e->count == 0) {
		put_bits(e, x, 64);
		e->first_t = t_ms;
		e->delta = 0;
	} else {
		delta = (uint64_t)t_ms - (uint64_t)e->last_t;
		put_dod(e, delta - e->delta);
		put_xor(e, x ^ e->v);
		e->delta = delta;
	}
	e->v = x;
	e->last_t = t_ms;
	e->count++;
	put_le(e->data + 1, e->count, 4);
	put_le(e->data + 5, (uint64_t)e->first_t, 8);
	return 0;
}

size_t chunk_enc_count(const struct chunk_enc *e)
{
	return e ? e->count : 0;
}

int chunk_enc_range(const struct chunk_enc *e, int64_t *first_ms, int64_t *last_ms)
{
	if (!e || !first_ms || !last_ms)
		return OUTPOST_E_BAD_ARGS;
	if (e->count == 0)
		return OUTPOST_E_NOT_FOUND;
	*first_ms = e->first_t;
	*last_ms = e->last_t;
	return 0;
}

const uint8_t *chunk_enc_bytes(const struct chunk_enc *e, size_t *len)
{
	if (!e) {
		*len = 0;
		return NULL;
	}
	*len = CHUNK_HEADER_LEN + (e->nbits + 7) / 8;
	return e->data;
}

void chunk_enc_free(struct chunk_enc *e)
{
	if (!e)
		return;
	free(e->data);
	free(e);
}

/* ---- Decoder ---- */

static int get_bits(struct chunk_dec *d, unsigned n, uint64_t *out)
{
	uint64_t x = 0;

	if (n > d->nbits - d->pos)
		return -1;
	while (n > 0) {
		unsigned room = 8 - (unsigned)(d->pos % 8);
		unsigned take = n < room ? n : room;
		unsigned byte = d->bits[d->pos / 8];

		x = (x << take) | ((byte >> (room - take)) & ((1u << take) - 1));
		d->pos += take;
		n -= take;
	}
	*out = x;
	return 0;
}

static int get_dod(struct chunk_dec *d, uint64_t *dod)
{
	unsigned ones = 0, w;
	uint64_t b, u;

	while (ones < ESCAPE_PREFIX_LEN) {
		if (get_bits(d, 1, &b) < 0)
			return -1;
		if (!b)
			break;
		ones++;
	}
	if (ones == 0) {
		*dod = 0;
		return 0;
	}
	if (ones == ESCAPE_PREFIX_LEN)
		return get_bits(d, 64, dod);
	w = dod_widths[ones - 1];
	if (get_bits(d, w, &u) < 0)
		return -1;
	if (u >> (w - 1))
		u |= ~UINT64_C(0) << w; /* sign-extend */
	*dod = u;
	return 0;
}

static int get_xor(struct chunk_dec *d, uint64_t *x)
{
	uint64_t b, lead, sig, m;

	if (get_bits(d, 1, &b) < 0)
		return -1;
	if (!b) {
		*x = 0;
		return 0;
	}
	if (get_bits(d, 1, &b) < 0)
		return -1;
	if (b) {
		if (get_bits(d, 5, &lead) < 0 || get_bits(d, 6, &sig) < 0)
			return -1;
		sig++;
		if (lead + sig > 64)
			return -1;
		d->lead = (unsigned)lead;
		d->sig = (unsigned)sig;
	} else if (d->sig == 0) {
		return -1; /* reuse of a window never opened */
	}
	if (get_bits(d, d->sig, &m) < 0)
		return -1;
	*x = m << (64 - d->lead - d->sig);
	return 0;
}

int chunk_dec_init(struct chunk_dec *d, const uint8_t *p, size_t len)
{
	uint32_t count;
	int64_t t0;
	size_t nbits;

	if (!d)
		return OUTPOST_E_BAD_ARGS;
	memset(d, 0, sizeof(*d));
	d->err = CORRUPT;
	if (!p || len < CHUNK_HEADER_LEN ||
	    (p[0] != CHUNK_VERSION && (p[0] & 0xf0) != CHUNK_SCALED) ||
	    (p[0] & 0x0f) > CHUNK_SCALE_MAX || len - CHUNK_HEADER_LEN > SIZE_MAX / 8)
		return CORRUPT;
	d->scale = p[0] == CHUNK_VERSION ? 0 : pow10_of(p[0] & 0x0f);
	count = (uint32_t)get_le(p + 1, 4);
	t0 = u2i(get_le(p + 5, 8));
	nbits = (len - CHUNK_HEADER_LEN) * 8;
	if (count == 0) {
		if (nbits != 0 || t0 != 0)
			return CORRUPT;
	} else if (nbits < 64 || (nbits - 64) / 2 < count - 1) {
		return CORRUPT; /* every sample after the first takes at least 2 bits */
	}
	d->count = count;
	d->t = t0;
	d->bits = p + CHUNK_HEADER_LEN;
	d->nbits = nbits;
	d->err = 0;
	return 0;
}

/* After the last sample only the zero padding of the last byte may remain. */
static int dec_at_end(const struct chunk_dec *d)
{
	size_t rem = d->nbits - d->pos;

	if (rem >= 8)
		return 0;
	return rem == 0 || (d->bits[d->pos / 8] & ((1u << rem) - 1)) == 0;
}

int chunk_dec_next(struct chunk_dec *d, int64_t *t_ms, double *v)
{
	uint64_t dod, delta, x;
	int64_t t;

	if (!d || !t_ms || !v)
		return OUTPOST_E_BAD_ARGS;
	if (d->err)
		return d->err;
	if (d->done == d->count) {
		if (!dec_at_end(d))
			goto corrupt;
		return 0;
	}
	if (d->done == 0) {
		if (get_bits(d, 64, &d->v) < 0)
			goto corrupt;
	} else {
		if (get_dod(d, &dod) < 0)
			goto corrupt;
		delta = d->delta + dod;
		t = u2i((uint64_t)d->t + delta);
		if (t <= d->t || get_xor(d, &x) < 0)
			goto corrupt;
		d->t = t;
		d->delta = delta;
		d->v ^= x;
	}
	d->done++;
	*t_ms = d->t;
	*v = d->scale ? bits_dbl(d->v) / d->scale : bits_dbl(d->v);
	return 1;
corrupt:
	d->err = CORRUPT;
	return d->err;
}

/* A scaled chunk reopened: decoded and encoded again as plain (appends need the plain form). */
static int enc_from_scaled(const uint8_t *p, size_t len, struct chunk_enc **out)
{
	struct chunk_dec d;
	struct chunk_enc *e = NULL;
	int64_t t;
	double v;
	int rc;

	if ((rc = chunk_dec_init(&d, p, len)) < 0 || (rc = chunk_enc_new(&e)) < 0)
		return rc;
	while ((rc = chunk_dec_next(&d, &t, &v)) > 0)
		if ((rc = chunk_enc_add(e, t, v)) < 0)
			break;
	if (rc < 0) {
		chunk_enc_free(e);
		return rc == OUTPOST_E_BAD_ARGS ? CORRUPT : rc;
	}
	*out = e;
	return 0;
}

int chunk_enc_from_bytes(const uint8_t *p, size_t len, struct chunk_enc **out)
{
	struct chunk_dec d;
	struct chunk_enc *e;
	int64_t t;
	double v;
	int rc;

	if (!out)
		return OUTPOST_E_BAD_ARGS;
	*out = NULL;
	if (p && len && p[0] != CHUNK_VERSION)
		return enc_from_scaled(p, len, out);
	rc = chunk_dec_init(&d, p, len);
	while (rc == 0 && (rc = chunk_dec_next(&d, &t, &v)) > 0)
		rc = 0;
	if (rc < 0)
		return rc;
	e = enc_alloc(len + 256);
	if (!e)
		return OUTPOST_E_INTERNAL;
	memcpy(e->data, p, len);
	e->nbits = d.pos; /* the padding bits after it are zero, as an encoder leaves them */
	e->count = d.count;
	e->first_t = u2i(get_le(p + 5, 8));
	e->last_t = d.t;
	e->delta = d.delta;
	e->v = d.v;
	e->lead = d.lead;
	e->sig = d.sig;
	*out = e;
	return 0;
}

/* Whether v is m / 10^k for an integer m below 2^53, bit for bit. */
static int scale_fits(double v, unsigned k)
{
	double sc = pow10_of(k), m = nearbyint(v * sc);

	if (!isfinite(v))
		return dbl_bits(v * sc / sc) == dbl_bits(v);
	return fabs(m) < 9007199254740992.0 && dbl_bits(m / sc) == dbl_bits(v);
}

/* The smallest k that fits every value, or -1. One pass: a value that fits k fits every
 * larger k too (10m / 10^(k+1) is the same decimal). */
static int scale_of(const uint8_t *p, size_t len)
{
	struct chunk_dec d;
	unsigned k = 0;
	int64_t t;
	double v;
	int rc;

	if (chunk_dec_init(&d, p, len) < 0)
		return -1;
	while ((rc = chunk_dec_next(&d, &t, &v)) > 0)
		while (!scale_fits(v, k))
			if (++k > CHUNK_SCALE_MAX)
				return -1;
	return rc == 0 ? (int)k : -1;
}

int chunk_compact(const uint8_t *p, size_t len, uint8_t **out, size_t *outlen)
{
	struct chunk_dec d;
	struct chunk_enc *e = NULL;
	const uint8_t *b;
	size_t n;
	int64_t t;
	double v, sc;
	int k, rc;

	*out = NULL;
	if (!p || len <= CHUNK_HEADER_LEN || p[0] != CHUNK_VERSION || (k = scale_of(p, len)) < 0)
		return 0;
	sc = pow10_of((unsigned)k);
	if ((rc = chunk_enc_new(&e)) < 0 || (rc = chunk_dec_init(&d, p, len)) < 0)
		goto out;
	while ((rc = chunk_dec_next(&d, &t, &v)) > 0)
		if ((rc = chunk_enc_add(e, t, isfinite(v) ? nearbyint(v * sc) : v * sc)) < 0)
			goto out;
	if (rc < 0)
		goto out;
	b = chunk_enc_bytes(e, &n);
	rc = 0;
	if (n >= len)
		goto out;
	if (!(*out = malloc(n))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	memcpy(*out, b, n);
	(*out)[0] = (uint8_t)(CHUNK_SCALED | k);
	*outlen = n;
	rc = 1;
out:
	chunk_enc_free(e);
	return rc;
}
