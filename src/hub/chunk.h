/* Sample compression for the hub's time-series store: one series' samples over a time window,
 * encoded Gorilla-style (delta-of-delta timestamps, XOR'd values) into a self-describing byte
 * string that the store keeps as one BLOB. Format and bucket choices: chunk.c. */
#ifndef OUTPOST_HUB_CHUNK_H
#define OUTPOST_HUB_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include <outpost/plugin.h>

/* Format version, the first byte of every chunk. Decoders refuse any other. */
#define CHUNK_VERSION 1
/* The scaled form's version bytes: CHUNK_SCALED | k, values stored as v * 10^k (chunk.c). */
#define CHUNK_SCALED 0x10
#define CHUNK_SCALE_MAX 9
/* Version (1) + sample count (u32 LE) + first timestamp (i64 LE). */
#define CHUNK_HEADER_LEN 13

/* Errors: OUTPOST_E_BAD_ARGS for a caller mistake (NULL, a timestamp not after the last one),
 * OUTPOST_E_INTERNAL for bytes that are not a valid chunk (corrupt, truncated, trailing bytes,
 * unknown version: to the store that is data corruption) and for memory exhaustion,
 * OUTPOST_E_TOO_LARGE for a chunk already holding UINT32_MAX samples. */

/* An encoder: an open chunk that samples are appended to. Not thread-safe. */
struct chunk_enc;

/* A new, empty chunk; caller frees with chunk_enc_free. */
int chunk_enc_new(struct chunk_enc **out);
/* Re-opens encoded bytes (copied, not borrowed) to append to them; the whole chunk is decoded and
 * checked first. Appending then yields the bytes a single encoder would have produced. */
int chunk_enc_from_bytes(const uint8_t *p, size_t len, struct chunk_enc **out);
/* Appends one sample. t_ms must be after the last sample's time; otherwise, or on any error,
 * the chunk is unchanged. Any double is stored bit-exactly (NaN payloads, -0.0, infinities). */
int chunk_enc_add(struct chunk_enc *e, int64_t t_ms, double v);
size_t chunk_enc_count(const struct chunk_enc *e);
/* Times of the first and last sample; OUTPOST_E_NOT_FOUND when the chunk is empty. */
int chunk_enc_range(const struct chunk_enc *e, int64_t *first_ms, int64_t *last_ms);
/* The encoded chunk, header included. Borrowed: valid until the next add or free. */
const uint8_t *chunk_enc_bytes(const struct chunk_enc *e, size_t *len);
void chunk_enc_free(struct chunk_enc *e); /* NULL is a no-op */

/* An iterator over encoded bytes; lives on the stack, owns nothing, needs no cleanup. The bytes
 * are borrowed and must outlive it. Fields are private except count: the number of samples the
 * header announces, set by chunk_dec_init. */
struct chunk_dec {
	uint32_t count;
	uint32_t done; /* samples returned so far */
	int err;       /* sticky: once corrupt, always corrupt */
	const uint8_t *bits;
	size_t nbits; /* bits after the header */
	size_t pos;   /* next bit to read */
	int64_t t;
	uint64_t delta;
	uint64_t v;
	unsigned lead, sig; /* XOR window; sig == 0 while there is none */
	double scale;       /* 10^k for a scaled chunk, 0 for a plain one */
};

/* Checks the header; 0 or OUTPOST_E_INTERNAL. Samples are checked as they are read. */
int chunk_dec_init(struct chunk_dec *d, const uint8_t *p, size_t len);
/* 1 with the next sample in *t_ms and *v; 0 at the end; OUTPOST_E_INTERNAL if the bytes are
 * corrupt, which may be found only after the last sample (e.g. trailing bytes), so a caller
 * that must not act on a corrupt chunk reads it to the end before using it. */
int chunk_dec_next(struct chunk_dec *d, int64_t *t_ms, double *v);

/* The same samples in the scaled form when every value is a decimal of at most
 * CHUNK_SCALE_MAX places and that is smaller: 1 with *out (caller frees) and *outlen; 0 when
 * the plain bytes are best as they are; a negative code on error. Decoders read both forms;
 * chunk_enc_from_bytes reopens a scaled chunk as plain. */
int chunk_compact(const uint8_t *p, size_t len, uint8_t **out, size_t *outlen);

#endif
