/* The Gorilla decoder (src/hub/chunk.c). The first byte picks the mode: even, the rest is a
 * chunk as read back from the store (decoded to the end, reopened for appending, compacted:
 * corrupt bytes must be refused, never read out of bounds); odd, the rest is samples (a time
 * step and a double per 12 bytes) that must come back bit-exact through both encodings (NaN
 * payloads too: compare bits, not values). */
#include "fuzz.h"

#include "hub/chunk.h"

#include <string.h>

static void decode_all(const uint8_t *p, size_t n)
{
	struct chunk_dec d;
	int64_t t, last = INT64_MIN;
	double v;
	int rc;

	if (chunk_dec_init(&d, p, n) < 0)
		return;
	while ((rc = chunk_dec_next(&d, &t, &v)) == 1) {
		FUZZ_CHECK(d.done <= d.count);
		FUZZ_CHECK(t > last || last == INT64_MIN);
		last = t;
	}
	FUZZ_CHECK(rc == 0 || rc == OUTPOST_E_INTERNAL);
}

static void from_store(const uint8_t *p, size_t n)
{
	struct chunk_enc *e = NULL;
	uint8_t *out = NULL;
	size_t outlen;
	int64_t first, last;

	decode_all(p, n);
	if (chunk_enc_from_bytes(p, n, &e) == 0) {
		if (chunk_enc_range(e, &first, &last) == 0 && last < INT64_MAX)
			FUZZ_CHECK(chunk_enc_add(e, last + 1, 1.5) == 0);
		chunk_enc_free(e);
	}
	if (chunk_compact(p, n, &out, &outlen) == 1) {
		decode_all(out, outlen);
		free(out);
	}
}

static void roundtrip(const uint8_t *p, size_t n)
{
	struct chunk_enc *e = NULL;
	struct chunk_dec d;
	const uint8_t *bytes;
	uint8_t *small = NULL;
	size_t len, smalllen, count = 0;
	int64_t t = 1700000000000LL, ts[512], got_t;
	double vs[512], got_v;

	FUZZ_CHECK(chunk_enc_new(&e) == 0);
	for (; n >= 12 && count < 512; p += 12, n -= 12) {
		uint32_t step;
		memcpy(&step, p, 4);
		memcpy(&vs[count], p + 4, 8);
		t += (int64_t)(step % 100000) + 1;
		ts[count] = t;
		FUZZ_CHECK(chunk_enc_add(e, t, vs[count]) == 0);
		count++;
	}
	bytes = chunk_enc_bytes(e, &len);
	FUZZ_CHECK(chunk_dec_init(&d, bytes, len) == 0 && d.count == count);
	for (size_t i = 0; i < count; i++) {
		FUZZ_CHECK(chunk_dec_next(&d, &got_t, &got_v) == 1);
		FUZZ_CHECK(got_t == ts[i] && memcmp(&got_v, &vs[i], 8) == 0);
	}
	FUZZ_CHECK(chunk_dec_next(&d, &got_t, &got_v) == 0);
	if (chunk_compact(bytes, len, &small, &smalllen) == 1) {
		FUZZ_CHECK(smalllen < len);
		FUZZ_CHECK(chunk_dec_init(&d, small, smalllen) == 0 && d.count == count);
		for (size_t i = 0; i < count; i++) {
			FUZZ_CHECK(chunk_dec_next(&d, &got_t, &got_v) == 1);
			FUZZ_CHECK(got_t == ts[i] && memcmp(&got_v, &vs[i], 8) == 0);
		}
		FUZZ_CHECK(chunk_dec_next(&d, &got_t, &got_v) == 0);
		free(small);
	}
	chunk_enc_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		roundtrip(data + 1, size - 1);
	else
		from_store(data + 1, size - 1);
	return 0;
}
