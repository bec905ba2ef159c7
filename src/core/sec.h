/* Security primitives shared by the hub, the agent and the CLI, on libsodium: Ed25519 key
 * files, detached signatures, random tokens, sha256, base64, constant-time compare. Prefix
 * sec_ (libsodium owns crypto_). */
#ifndef OUTPOST_SEC_H
#define OUTPOST_SEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SEC_PK_BYTES 32
#define SEC_SK_BYTES 64
#define SEC_SIG_BYTES 64

/* Must succeed once before anything else (idempotent, thread-safe). */
int sec_init(void);

/* Loads an Ed25519 key pair from path, or creates it (mode 0600, O_EXCL) when absent; *created
 * says which. An existing file readable by group or others, or owned by another user, is
 * refused: a key that others may have read is not a key. */
int sec_keyfile(const char *path, uint8_t pk[SEC_PK_BYTES], uint8_t sk[SEC_SK_BYTES], int *created,
                char *msg, size_t msglen);
/* Refuses a secret file (key, token) that is not a regular file of mode 0600 owned by us. */
int sec_check_secret_file(const char *path, char *msg, size_t msglen);
/* Writes data to path atomically with mode 0600 (temp, fsync, rename). */
int sec_write_secret(const char *path, const void *data, size_t len, char *msg, size_t msglen);

/* Standard base64 with padding; caller frees; NULL on OOM. */
char *sec_b64(const void *p, size_t n);
/* Decodes exactly want bytes; -1 if s is not base64 of that length. */
int sec_unb64(const char *s, void *out, size_t want);

/* Signs msg; returns a base64 signature (caller frees) or NULL. */
char *sec_sign_b64(const uint8_t sk[SEC_SK_BYTES], const void *msg, size_t len);
/* 0 if sig_b64 is a valid signature of msg by pk, else -1. */
int sec_verify_b64(const uint8_t pk[SEC_PK_BYTES], const void *msg, size_t len,
                   const char *sig_b64);

void sec_sha256_hex(const void *p, size_t n, char hex[65]);
/* A new random secret: prefix + 43 characters of URL-safe base64 (256 bits). Caller frees. */
char *sec_token(const char *prefix);
/* Constant-time equality of two NUL-terminated strings of any length. */
int sec_streq(const char *a, const char *b);

/* A time in ms since 1970 as an agent sends it (X-Outpost-Time): 1 to 15 decimal digits, no
 * sign, no spaces (so before the year 33658, never near int64 overflow). 0, or -1 for anything
 * else, out untouched. */
int sec_parse_time_ms(const char *s, int64_t *out);

/* What an agent signs for a request to the hub, and the hub verifies (docs/protocol.md):
 * "METHOD\nTARGET\nTIME\nhex(sha256(body))", target as sent (query included), time the
 * X-Outpost-Time text. One function for both sides, so they cannot drift apart. Caller frees;
 * NULL on OOM. */
char *sec_request_text(const char *method, const char *target, const char *time, const void *body,
                       size_t len);

/* The canonical text of a JSON value (compact, keys sorted): what gets signed. Caller frees. */
char *sec_canonical(const json_t *v);

#endif
