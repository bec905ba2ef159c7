/* Tests for src/hub/chunk.c: bit-exact round trips, the wire layout, re-opening, hostile bytes,
 * and the size and speed on realistic host metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub/chunk.h"

/* splitmix64: the same sequence on every libc, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t rng_range(uint64_t *s, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static uint64_t bits_of(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
	return u;
}

static double from_bits(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static struct chunk_enc *encode(const int64_t *ts, const double *vs, size_t n)
{
	struct chunk_enc *e;
	assert_int_equal(chunk_enc_new(&e), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(chunk_enc_add(e, ts[i], vs[i]), 0);
	assert_int_equal(chunk_enc_count(e), n);
	return e;
}

/* Decodes everything; returns the final code of chunk_dec_next (0 or an error) and the number of
 * samples read, which never exceeds max. */
static int decode_all(const uint8_t *p, size_t len, int64_t *ts, double *vs, size_t max, size_t *n)
{
	struct chunk_dec d;
	int64_t t;
	double v;
	int rc;

	*n = 0;
	rc = chunk_dec_init(&d, p, len);
	if (rc < 0)
		return rc;
	while ((rc = chunk_dec_next(&d, &t, &v)) > 0) {
		assert_true(*n < max);
		assert_true(*n == 0 || t > ts[*n - 1]);
		ts[*n] = t;
		vs[*n] = v;
		(*n)++;
	}
	return rc;
}

/* Encodes, decodes and compares bit for bit; also re-opens the bytes and checks that the copy
 * re-emits them unchanged. */
static void check_round_trip(const int64_t *ts, const double *vs, size_t n)
{
	struct chunk_enc *e = encode(ts, vs, n), *r;
	int64_t *ts2 = calloc(n + 1, sizeof(*ts2));
	double *vs2 = calloc(n + 1, sizeof(*vs2));
	const uint8_t *p, *q;
	size_t len, len2, got;

	assert_non_null(ts2);
	assert_non_null(vs2);
	p = chunk_enc_bytes(e, &len);
	assert_int_equal(decode_all(p, len, ts2, vs2, n, &got), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		assert_true(ts2[i] == ts[i]);
		assert_true(bits_of(vs2[i]) == bits_of(vs[i]));
	}
	assert_int_equal(chunk_enc_from_bytes(p, len, &r), 0);
	q = chunk_enc_bytes(r, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(q, p, len);
	chunk_enc_free(r);
	chunk_enc_free(e);
	free(ts2);
	free(vs2);
}

static void test_empty_chunk_is_a_header_and_decodes_to_nothing(void **state)
{
	struct chunk_enc *e, *r;
	struct chunk_dec d;
	const uint8_t *p;
	size_t len;
	int64_t t, first, last;
	double v;

	assert_int_equal(chunk_enc_new(&e), 0);
	p = chunk_enc_bytes(e, &len);
	assert_int_equal(len, CHUNK_HEADER_LEN);
	assert_int_equal(p[0], CHUNK_VERSION);
	assert_int_equal(chunk_enc_range(e, &first, &last), OUTPOST_E_NOT_FOUND);
	assert_int_equal(chunk_dec_init(&d, p, len), 0);
	assert_int_equal(d.count, 0);
	assert_int_equal(chunk_dec_next(&d, &t, &v), 0);
	assert_int_equal(chunk_dec_next(&d, &t, &v), 0);
	assert_int_equal(chunk_enc_from_bytes(p, len, &r), 0);
	assert_int_equal(chunk_enc_count(r), 0);
	assert_int_equal(chunk_enc_add(r, -5, 1.5), 0);
	chunk_enc_free(r);
	chunk_enc_free(e);
	chunk_enc_free(NULL);
}

static void test_single_sample_round_trips(void **state)
{
	int64_t ts[] = {1700000000123};
	double vs[] = {42.5};
	struct chunk_enc *e = encode(ts, vs, 1);
	int64_t first, last;
	size_t len;

	chunk_enc_bytes(e, &len);
	assert_int_equal(len, CHUNK_HEADER_LEN + 8);
	assert_int_equal(chunk_enc_range(e, &first, &last), 0);
	assert_true(first == ts[0] && last == ts[0]);
	chunk_enc_free(e);
	check_round_trip(ts, vs, 1);
}

/* The layout is a storage format: pin it with a chunk worked out by hand from chunk.c's table. */
static void test_layout_matches_the_documented_format(void **state)
{
	int64_t ts[] = {1000, 11000, 21000, 31005};
	double vs[] = {1.0, 1.0, 2.0, 2.0};
	static const uint8_t want[] = {0x01, 0x04, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00,
	                               0x00, 0x00, 0x00,
	                               /* 1.0 raw | 11110 + 17-bit 10000, XOR 0 | dod 0, '11' lead 1
	                                * sig 11 ones | '10' + 7-bit 5, XOR 0; zero padding */
	                               0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x9c,
	                               0x40, 0xc2, 0x57, 0xff, 0x82, 0x80};
	struct chunk_enc *e = encode(ts, vs, 4);
	size_t len;
	const uint8_t *p = chunk_enc_bytes(e, &len);

	assert_int_equal(len, sizeof(want));
	assert_memory_equal(p, want, sizeof(want));
	chunk_enc_free(e);
}

/* Regular times and a constant value: 1 bit of time and 1 of value per sample. */
static void test_regular_constant_series_costs_two_bits_a_sample(void **state)
{
	enum { N = 1000 };
	int64_t ts[N];
	double vs[N];
	struct chunk_enc *e;
	size_t len;

	for (int i = 0; i < N; i++) {
		ts[i] = 1700000000000 + 10000 * (int64_t)i;
		vs[i] = 16e9;
	}
	e = encode(ts, vs, N);
	chunk_enc_bytes(e, &len);
	/* header, first value, first delta (5 + 17 bits) + XOR 0, then 2 bits each */
	assert_int_equal(len, CHUNK_HEADER_LEN + (64 + 23 + 2 * (N - 2) + 7) / 8);
	chunk_enc_free(e);
}

static void test_edge_values_round_trip_bit_exact(void **state)
{
	double vs[] = {
	    0.0,
	    -0.0,
	    NAN,
	    -NAN,
	    from_bits(UINT64_C(0x7ff0000000000001)), /* signalling NaN */
	    from_bits(UINT64_C(0x7ff8dead0000beef)), /* NaN with a payload */
	    from_bits(UINT64_C(0xffffffffffffffff)),
	    INFINITY,
	    -INFINITY,
	    DBL_MAX,
	    -DBL_MAX,
	    DBL_MIN,
	    DBL_TRUE_MIN,
	    -DBL_TRUE_MIN,
	    from_bits(UINT64_C(0x000fffffffffffff)), /* largest denormal */
	    DBL_EPSILON,
	    1.0,
	    0.1,
	    -0.0,
	    0.0,
	    NAN,
	    NAN,
	    1e308,
	    -1e-308,
	    INFINITY,
	    INFINITY,
	    from_bits(UINT64_C(0x8000000000000001)),
	    from_bits(UINT64_C(0x0000000000000001)),
	};
	enum { N = sizeof(vs) / sizeof(vs[0]) };
	int64_t ts[N];

	for (int i = 0; i < N; i++)
		ts[i] = 1000 + 7 * (int64_t)i * i;
	check_round_trip(ts, vs, N);
	/* every value after every other one, to hit every window transition */
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			int64_t t2[3] = {0, 1, 2};
			double v2[3] = {vs[i], vs[j], vs[i]};
			check_round_trip(t2, v2, 3);
		}
	}
}

static void test_add_refuses_time_not_after_last_and_changes_nothing(void **state)
{
	int64_t ts[] = {5000, 15000, 25010};
	double vs[] = {1, 2, 3};
	struct chunk_enc *e = encode(ts, vs, 3);
	uint8_t before[64];
	size_t len, len2;
	const uint8_t *p = chunk_enc_bytes(e, &len);
	int64_t first, last;

	assert_true(len <= sizeof(before));
	memcpy(before, p, len);
	assert_int_equal(chunk_enc_add(e, 25010, 4), OUTPOST_E_BAD_ARGS);
	assert_int_equal(chunk_enc_add(e, 25009, 4), OUTPOST_E_BAD_ARGS);
	assert_int_equal(chunk_enc_add(e, INT64_MIN, 4), OUTPOST_E_BAD_ARGS);
	assert_int_equal(chunk_enc_count(e), 3);
	p = chunk_enc_bytes(e, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(p, before, len);
	assert_int_equal(chunk_enc_range(e, &first, &last), 0);
	assert_true(first == 5000 && last == 25010);
	/* and the chunk goes on as if nothing happened */
	assert_int_equal(chunk_enc_add(e, 25011, 4), 0);
	chunk_enc_free(e);

	assert_int_equal(chunk_enc_new(NULL), OUTPOST_E_BAD_ARGS);
	assert_int_equal(chunk_enc_add(NULL, 1, 1), OUTPOST_E_BAD_ARGS);
}

static void test_extreme_times_and_long_gaps_round_trip(void **state)
{
	const int64_t year = 366LL * 24 * 3600 * 1000;
	int64_t a[] = {INT64_MIN, INT64_MIN + 1, -year,         -1,       0, 1,
	               year,      2 * year,      INT64_MAX - 1, INT64_MAX};
	double va[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	int64_t b[] = {INT64_MIN, INT64_MAX}; /* the one delta that needs all 64 bits */
	int64_t c[] = {INT64_MIN, 0, INT64_MAX};
	/* regular samples, a gap of ten years, regular again */
	int64_t d[8] = {1000,
	                11000,
	                21000,
	                21000 + 10 * year,
	                31000 + 10 * year,
	                41000 + 10 * year,
	                41001 + 10 * year,
	                41002 + 10 * year};

	check_round_trip(a, va, 10);
	check_round_trip(b, va, 2);
	check_round_trip(c, va, 3);
	check_round_trip(d, va, 8);
}

/* Delta-of-delta values on both sides of every bucket edge. */
static void test_bucket_edges_round_trip(void **state)
{
	static const int64_t dods[] = {
	    0,    1,    -1,    63,    64,    -64,   -65,    255,    256,       -256,        -257,
	    2047, 2048, -2048, -2049, 65535, 65536, -65536, -65537, 1LL << 40, -(1LL << 40)};
	enum { N = sizeof(dods) / sizeof(dods[0]) };
	int64_t ts[2 * N + 2];
	double vs[2 * N + 2];
	int64_t t = 0, delta = 1LL << 41;
	int k = 0;

	/* alternate +dod and -dod around a large base delta so times stay increasing */
	ts[k] = t;
	vs[k++] = 0;
	for (int i = 0; i < N; i++) {
		for (int s = 0; s < 2; s++) {
			delta += s ? -dods[i] : dods[i];
			t += delta;
			ts[k] = t;
			vs[k] = (double)k;
			k++;
		}
	}
	check_round_trip(ts, vs, (size_t)k);
}

static void test_random_series_round_trip(void **state)
{
	enum { MAXN = 600 };
	int64_t ts[MAXN];
	double vs[MAXN];
	uint64_t seed = 20240501;

	for (int iter = 0; iter < 400; iter++) {
		size_t n = (size_t)rng_range(&seed, 1, MAXN);
		int kind = iter % 5;
		int64_t t = rng_range(&seed, -4000000000000, 4000000000000);
		double walk = 100;

		for (size_t i = 0; i < n; i++) {
			uint64_t r = rng_next(&seed);
			if (r % 100 == 0)
				t += rng_range(&seed, 1, INT64_MAX / 4 / MAXN); /* a gap */
			else if (r % 7 == 0)
				t += rng_range(&seed, 1, 3); /* a burst */
			else
				t += 10000 + rng_range(&seed, -2000, 2000);
			ts[i] = t;
			switch (kind) {
			case 0:
				vs[i] = from_bits(rng_next(&seed)); /* any bit pattern */
				break;
			case 1:
				walk += rng_unit(&seed) - 0.5;
				vs[i] = walk;
				break;
			case 2:
				vs[i] = (double)rng_range(&seed, 0, 10);
				break;
			case 3:
				vs[i] = rng_next(&seed) % 4 ? walk : from_bits(rng_next(&seed));
				break;
			default:
				vs[i] = round(rng_unit(&seed) * 1000) / 10;
				break;
			}
		}
		check_round_trip(ts, vs, n);
	}
}

/* A series with a bit of everything, for the re-open and corruption tests. */
static size_t mixed_series(int64_t *ts, double *vs, size_t n)
{
	uint64_t seed = 7;
	int64_t t = 1700000000000;

	for (size_t i = 0; i < n; i++) {
		t += i % 50 == 49 ? 86400000 : 10000 + rng_range(&seed, -50, 50);
		ts[i] = t;
		if (i % 31 == 30)
			vs[i] = NAN;
		else if (i % 5 == 0 && i > 0)
			vs[i] = vs[i - 1];
		else
			vs[i] = round(rng_unit(&seed) * 1000) / 10;
	}
	return n;
}

/* Re-opening at any point and appending the rest gives the bytes of a one-pass encoding. */
static void test_append_after_reopen_matches_one_pass(void **state)
{
	enum { N = 240 };
	int64_t ts[N];
	double vs[N];
	struct chunk_enc *all, *head, *re;
	const uint8_t *want, *p;
	size_t want_len, len;

	mixed_series(ts, vs, N);
	all = encode(ts, vs, N);
	want = chunk_enc_bytes(all, &want_len);
	for (size_t split = 0; split <= N; split++) {
		head = encode(ts, vs, split);
		p = chunk_enc_bytes(head, &len);
		assert_int_equal(chunk_enc_from_bytes(p, len, &re), 0);
		chunk_enc_free(head);
		assert_int_equal(chunk_enc_count(re), split);
		if (split > 0)
			assert_int_equal(chunk_enc_add(re, ts[split - 1], 0), OUTPOST_E_BAD_ARGS);
		for (size_t i = split; i < N; i++)
			assert_int_equal(chunk_enc_add(re, ts[i], vs[i]), 0);
		p = chunk_enc_bytes(re, &len);
		assert_int_equal(len, want_len);
		assert_memory_equal(p, want, len);
		chunk_enc_free(re);
	}
	chunk_enc_free(all);
}

static void test_header_errors_are_refused(void **state)
{
	int64_t ts[] = {1, 2, 3};
	double vs[] = {1, 2, 3};
	struct chunk_enc *e = encode(ts, vs, 3), *r;
	struct chunk_dec d;
	uint8_t buf[64];
	size_t len;
	const uint8_t *p = chunk_enc_bytes(e, &len);
	int64_t t;
	double v;

	memcpy(buf, p, len);
	assert_int_equal(chunk_dec_init(&d, NULL, 0), OUTPOST_E_INTERNAL);
	assert_int_equal(chunk_dec_next(&d, &t, &v), OUTPOST_E_INTERNAL); /* sticky */
	assert_int_equal(chunk_dec_init(&d, buf, CHUNK_HEADER_LEN - 1), OUTPOST_E_INTERNAL);
	assert_int_equal(chunk_dec_init(NULL, buf, len), OUTPOST_E_BAD_ARGS);
	buf[0] = CHUNK_VERSION + 1;
	assert_int_equal(chunk_dec_init(&d, buf, len), OUTPOST_E_INTERNAL);
	assert_int_equal(chunk_enc_from_bytes(buf, len, &r), OUTPOST_E_INTERNAL);
	assert_null(r);
	buf[0] = CHUNK_VERSION;
	buf[4] = 0x80; /* two billion samples cannot fit in a few bytes */
	assert_int_equal(chunk_dec_init(&d, buf, len), OUTPOST_E_INTERNAL);
	memcpy(buf, p, len);
	buf[1] = 2; /* fewer samples than the stream holds: trailing bits */
	assert_int_equal(chunk_dec_init(&d, buf, len), 0);
	assert_int_equal(chunk_dec_next(&d, &t, &v), 1);
	assert_int_equal(chunk_dec_next(&d, &t, &v), 1);
	assert_int_equal(chunk_dec_next(&d, &t, &v), OUTPOST_E_INTERNAL);
	assert_int_equal(chunk_dec_next(&d, &t, &v), OUTPOST_E_INTERNAL);
	assert_int_equal(chunk_enc_from_bytes(buf, len, &r), OUTPOST_E_INTERNAL);
	memcpy(buf, p, len);
	buf[len] = 0; /* a trailing byte, even a zero one */
	assert_int_equal(chunk_enc_from_bytes(buf, len + 1, &r), OUTPOST_E_INTERNAL);
	/* an empty chunk with a time, or with a stream */
	memset(buf, 0, sizeof(buf));
	buf[0] = CHUNK_VERSION;
	assert_int_equal(chunk_enc_from_bytes(buf, CHUNK_HEADER_LEN, &r), 0);
	chunk_enc_free(r);
	assert_int_equal(chunk_enc_from_bytes(buf, CHUNK_HEADER_LEN + 1, &r), OUTPOST_E_INTERNAL);
	buf[5] = 1;
	assert_int_equal(chunk_enc_from_bytes(buf, CHUNK_HEADER_LEN, &r), OUTPOST_E_INTERNAL);
	chunk_enc_free(e);
}

/* Every prefix of a chunk is refused: the header's count promises more than it holds. Each is
 * copied to a buffer of its exact size so that ASan sees any read past it. */
static void test_truncated_chunks_are_refused(void **state)
{
	enum { N = 240 };
	int64_t ts[N], ts2[N];
	double vs[N], vs2[N];
	struct chunk_enc *e, *r;
	const uint8_t *p;
	size_t len, got;

	mixed_series(ts, vs, N);
	e = encode(ts, vs, N);
	p = chunk_enc_bytes(e, &len);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *q = malloc(cut ? cut : 1);
		assert_non_null(q);
		memcpy(q, p, cut);
		assert_int_equal(decode_all(q, cut, ts2, vs2, N, &got), OUTPOST_E_INTERNAL);
		assert_int_equal(chunk_enc_from_bytes(q, cut, &r), OUTPOST_E_INTERNAL);
		free(q);
	}
	chunk_enc_free(e);
}

/* A flipped bit either decodes to some increasing series or is refused; never a crash, an
 * out-of-bounds read or more samples than announced. A re-opened survivor still appends. */
static void check_hostile(const uint8_t *q, size_t len, int *refused)
{
	enum { N = 4096 };
	static int64_t ts[N];
	static double vs[N];
	struct chunk_enc *r;
	struct chunk_dec d;
	size_t got, rlen;
	int rc = decode_all(q, len, ts, vs, N, &got);

	if (rc < 0) {
		(*refused)++;
		assert_int_equal(rc, OUTPOST_E_INTERNAL);
		assert_int_equal(chunk_enc_from_bytes(q, len, &r), OUTPOST_E_INTERNAL);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(chunk_dec_init(&d, q, len), 0);
	assert_int_equal(got, d.count);
	assert_int_equal(chunk_enc_from_bytes(q, len, &r), 0);
	if (got == 0 || ts[got - 1] < INT64_MAX) {
		const uint8_t *p;
		int64_t t = got ? ts[got - 1] + 1 : 0;
		assert_int_equal(chunk_enc_add(r, t, 1.0), 0);
		p = chunk_enc_bytes(r, &rlen);
		assert_int_equal(decode_all(p, rlen, ts, vs, N, &got), 0);
		assert_true(ts[got - 1] == t);
	}
	chunk_enc_free(r);
}

static void test_flipped_bits_and_garbage_never_crash(void **state)
{
	enum { N = 240 };
	int64_t ts[N];
	double vs[N];
	struct chunk_enc *e;
	const uint8_t *p;
	uint8_t *q;
	size_t len;
	int refused = 0, tries = 0;
	uint64_t seed = 99;

	mixed_series(ts, vs, N);
	e = encode(ts, vs, N);
	p = chunk_enc_bytes(e, &len);
	q = malloc(len);
	assert_non_null(q);
	for (size_t bit = 0; bit < len * 8; bit++, tries++) {
		memcpy(q, p, len);
		q[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
		check_hostile(q, len, &refused);
	}
	printf("chunk: %d of %d single-bit flips refused, the rest decode\n", refused, tries);
	free(q);

	/* a few random bytes overwritten, and maybe cut short */
	refused = tries = 0;
	for (int i = 0; i < 5000; i++, tries++) {
		size_t n = i % 2 ? len : (size_t)rng_range(&seed, 1, (int64_t)len);
		q = malloc(n);
		assert_non_null(q);
		memcpy(q, p, n);
		for (int k = (int)rng_range(&seed, 1, 8); k > 0; k--)
			q[rng_next(&seed) % n] = (uint8_t)rng_next(&seed);
		check_hostile(q, n, &refused);
		free(q);
	}
	printf("chunk: %d of %d chunks with overwritten bytes refused\n", refused, tries);
	chunk_enc_free(e);

	/* random bytes behind a valid version and a plausible count */
	refused = tries = 0;
	for (int i = 0; i < 20000; i++, tries++) {
		size_t n = (size_t)rng_range(&seed, CHUNK_HEADER_LEN, 200);
		q = malloc(n);
		assert_non_null(q);
		for (size_t j = 0; j < n; j++)
			q[j] = (uint8_t)rng_next(&seed);
		q[0] = CHUNK_VERSION;
		q[1] = (uint8_t)rng_range(&seed, 0, 40);
		q[2] = q[3] = q[4] = 0;
		if (i % 2)
			memset(q + 5, 0, 8);
		check_hostile(q, n, &refused);
		free(q);
	}
	printf("chunk: %d of %d random chunks refused\n", refused, tries);
}

/* ---- Size and speed on realistic host metrics ---- */

enum { HOST_N = 360, HOST_SERIES = 3 };
static const char *const host_names[HOST_SERIES] = {"cpu percent (0.1)", "memory used bytes",
                                                    "net rx bytes counter"};

/* One hour at 10 s with +-50 ms jitter: a CPU percentage rounded to 0.1 that wanders around a
 * load level; a memory gauge that moves by whole pages now and then; a byte counter that grows
 * at a varying rate. */
static void host_series(uint64_t seed, int64_t ts[HOST_SERIES][HOST_N],
                        double vs[HOST_SERIES][HOST_N])
{
	double cpu = 12, rate = 2e5, mem = 3.2e9, rx = 9.1e11;

	for (int i = 0; i < HOST_N; i++) {
		for (int s = 0; s < HOST_SERIES; s++)
			ts[s][i] = 1700000000000 + 10000 * (int64_t)i + rng_range(&seed, -50, 50);
		cpu += (rng_unit(&seed) - 0.5) * 4 + (12 - cpu) * 0.1;
		if (cpu < 0)
			cpu = 0;
		vs[0][i] = round(cpu * 10) / 10;
		if (rng_next(&seed) % 20 == 0)
			mem += 4096.0 * (double)rng_range(&seed, -2000, 2000);
		vs[1][i] = mem;
		rate *= 0.9 + 0.2 * rng_unit(&seed);
		rx += floor(rate * 10);
		vs[2][i] = rx;
	}
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_realistic_host_metrics_stay_small(void **state)
{
	/* per-series bounds: measured figures + ~10 % (the seeds are fixed, so these only move
	 * when the encoding does) */
	static const double bound[HOST_SERIES] = {7.8, 1.65, 5.3};
	const double overall_bound = 4.9;
	static int64_t ts[HOST_SERIES][HOST_N];
	static double vs[HOST_SERIES][HOST_N];
	static double zeros[HOST_N];
	size_t total[HOST_SERIES] = {0}, all = 0, times = 0;
	const int hosts = 20;

	for (int h = 0; h < hosts; h++) {
		host_series(1000 + (uint64_t)h, ts, vs);
		for (int s = 0; s < HOST_SERIES; s++) {
			struct chunk_enc *e = encode(ts[s], vs[s], HOST_N);
			size_t len;
			chunk_enc_bytes(e, &len);
			total[s] += len;
			chunk_enc_free(e);
			check_round_trip(ts[s], vs[s], HOST_N);
		}
		/* the same times with a constant value: what the timestamps cost alone */
		struct chunk_enc *e = encode(ts[0], zeros, HOST_N);
		size_t len;
		chunk_enc_bytes(e, &len);
		times += len;
		chunk_enc_free(e);
	}
	printf("chunk: timestamps alone (10 s +-50 ms) %.2f bytes/sample\n",
	       (double)times / (hosts * HOST_N));
	for (int s = 0; s < HOST_SERIES; s++) {
		double per = (double)total[s] / (hosts * HOST_N);
		printf(
		    "chunk: %-22s %5.2f bytes/sample (%d chunks of %d samples, header included)\n",
		    host_names[s], per, hosts, HOST_N);
		assert_true(per <= bound[s]);
		all += total[s];
	}
	printf("chunk: all three series      %5.2f bytes/sample\n",
	       (double)all / (hosts * HOST_N * HOST_SERIES));
	assert_true((double)all / (hosts * HOST_N * HOST_SERIES) <= overall_bound);
}

/* Printed, not asserted: machines differ. */
static void test_speed_is_printed(void **state)
{
	static int64_t ts[HOST_SERIES][HOST_N];
	static double vs[HOST_SERIES][HOST_N];
	const int reps = 300;
	double t0, enc_s, dec_s = 0;
	size_t samples = 0, n;
	uint8_t *copy[HOST_SERIES];
	size_t clen[HOST_SERIES];
	int64_t t;
	double v, sink = 0;

	host_series(1, ts, vs);
	t0 = now_s();
	for (int r = 0; r < reps; r++) {
		for (int s = 0; s < HOST_SERIES; s++) {
			struct chunk_enc *e = encode(ts[s], vs[s], HOST_N);
			const uint8_t *p = chunk_enc_bytes(e, &clen[s]);
			if (r == 0) {
				copy[s] = malloc(clen[s]);
				assert_non_null(copy[s]);
				memcpy(copy[s], p, clen[s]);
			}
			chunk_enc_free(e);
			samples += HOST_N;
		}
	}
	enc_s = now_s() - t0;
	t0 = now_s();
	for (int r = 0; r < reps; r++) {
		for (int s = 0; s < HOST_SERIES; s++) {
			struct chunk_dec d;
			assert_int_equal(chunk_dec_init(&d, copy[s], clen[s]), 0);
			n = 0;
			while (chunk_dec_next(&d, &t, &v) > 0) {
				sink += v;
				n++;
			}
			assert_int_equal(n, HOST_N);
		}
	}
	dec_s = now_s() - t0;
	for (int s = 0; s < HOST_SERIES; s++)
		free(copy[s]);
	printf("chunk: encode %.1f M samples/s, decode %.1f M samples/s (%zu samples; %g)\n",
	       (double)samples / enc_s / 1e6, (double)samples / dec_s / 1e6, samples,
	       sink > 0 ? 1.0 : 0.0);
}

/* ---- the scaled form (chunk_compact) ---- */

static struct chunk_enc *enc_of(const double *v, size_t n)
{
	struct chunk_enc *e = NULL;

	assert_int_equal(chunk_enc_new(&e), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(chunk_enc_add(e, 1700000000000LL + (int64_t)i * 10000, v[i]), 0);
	return e;
}

static void expect_same(const uint8_t *a, size_t alen, const double *v, size_t n)
{
	struct chunk_dec d;
	int64_t t;
	double x;
	size_t i = 0;

	assert_int_equal(chunk_dec_init(&d, a, alen), 0);
	while (i < n && chunk_dec_next(&d, &t, &x) == 1) {
		uint64_t xb, vb;
		memcpy(&xb, &x, 8);
		memcpy(&vb, &v[i], 8);
		if (xb != vb)
			fail_msg("sample %zu: %.17g != %.17g", i, x, v[i]);
		assert_int_equal(t, 1700000000000LL + (int64_t)i * 10000);
		i++;
	}
	assert_int_equal(i, n);
}

static void test_compact_decimals_are_smaller_and_exact(void **state)
{
	double v[720];
	struct chunk_enc *e, *re = NULL;
	const uint8_t *b;
	uint8_t *c = NULL;
	size_t len, clen;

	(void)state;
	srand(7);
	/* A CPU percentage with two places, a load with two, and some exact values between. */
	for (int i = 0; i < 720; i++)
		v[i] = (i % 7 == 0) ? -0.0 : (double)(1500 + rand() % 400) / 100.0;
	v[3] = INFINITY;
	v[5] = NAN;
	e = enc_of(v, 720);
	b = chunk_enc_bytes(e, &len);
	assert_int_equal(chunk_compact(b, len, &c, &clen), 1);
	print_message("plain %zu bytes, scaled %zu bytes (%.2f bytes/sample)\n", len, clen,
	              (double)clen / 720);
	assert_true(clen < len / 2);
	assert_int_equal(c[0], CHUNK_SCALED | 2);
	expect_same(c, clen, v, 720);
	/* Reopened to append: plain again, same samples, and one more. */
	assert_int_equal(chunk_enc_from_bytes(c, clen, &re), 0);
	assert_int_equal(chunk_enc_count(re), 720);
	assert_int_equal(chunk_enc_add(re, 1700000000000LL + 720 * 10000, 1.25), 0);
	b = chunk_enc_bytes(re, &len);
	assert_int_equal(b[0], CHUNK_VERSION);
	expect_same(b, len, v, 720);
	free(c);
	chunk_enc_free(re);
	chunk_enc_free(e);
}

static void test_compact_leaves_full_precision_values_plain(void **state)
{
	double v[100];
	struct chunk_enc *e;
	const uint8_t *b;
	uint8_t *c = NULL;
	size_t len, clen;

	(void)state;
	for (int i = 0; i < 100; i++)
		v[i] = 100.0 / (i + 3); /* 33.333..., 25, 20, 16.666... */
	e = enc_of(v, 100);
	b = chunk_enc_bytes(e, &len);
	assert_int_equal(chunk_compact(b, len, &c, &clen), 0);
	assert_null(c);
	chunk_enc_free(e);
	/* Integers are already as small as they get: k = 0 gives the same bytes, kept plain. */
	for (int i = 0; i < 100; i++)
		v[i] = 4096.0 * (i % 5);
	e = enc_of(v, 100);
	b = chunk_enc_bytes(e, &len);
	assert_int_equal(chunk_compact(b, len, &c, &clen), 0);
	chunk_enc_free(e);
}

static void test_scaled_version_byte_checked(void **state)
{
	double v[3] = {1.5, 2.5, 3.5};
	struct chunk_enc *e = enc_of(v, 3);
	struct chunk_dec d;
	const uint8_t *b;
	uint8_t bad[64];
	size_t len;

	(void)state;
	b = chunk_enc_bytes(e, &len);
	assert_true(len <= sizeof(bad));
	memcpy(bad, b, len);
	bad[0] = CHUNK_SCALED | 10; /* no such scale */
	assert_int_equal(chunk_dec_init(&d, bad, len), OUTPOST_E_INTERNAL);
	bad[0] = 0x20;
	assert_int_equal(chunk_dec_init(&d, bad, len), OUTPOST_E_INTERNAL);
	chunk_enc_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compact_decimals_are_smaller_and_exact),
	    cmocka_unit_test(test_compact_leaves_full_precision_values_plain),
	    cmocka_unit_test(test_scaled_version_byte_checked),
	    cmocka_unit_test(test_empty_chunk_is_a_header_and_decodes_to_nothing),
	    cmocka_unit_test(test_single_sample_round_trips),
	    cmocka_unit_test(test_layout_matches_the_documented_format),
	    cmocka_unit_test(test_regular_constant_series_costs_two_bits_a_sample),
	    cmocka_unit_test(test_edge_values_round_trip_bit_exact),
	    cmocka_unit_test(test_add_refuses_time_not_after_last_and_changes_nothing),
	    cmocka_unit_test(test_extreme_times_and_long_gaps_round_trip),
	    cmocka_unit_test(test_bucket_edges_round_trip),
	    cmocka_unit_test(test_random_series_round_trip),
	    cmocka_unit_test(test_append_after_reopen_matches_one_pass),
	    cmocka_unit_test(test_header_errors_are_refused),
	    cmocka_unit_test(test_truncated_chunks_are_refused),
	    cmocka_unit_test(test_flipped_bits_and_garbage_never_crash),
	    cmocka_unit_test(test_realistic_host_metrics_stay_small),
	    cmocka_unit_test(test_speed_is_printed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
