/* Trusting a hub by a pinned certificate fingerprint (--pin sha256:HEX, what the hub prints at
 * its first start: sha256 of its certificate's DER). libcurl pins a public key, not a
 * certificate, so the client fetches the certificate once without credentials, checks its
 * fingerprint here, and pins the public key found in it (curl's "sha256//BASE64" of the
 * SubjectPublicKeyInfo) for every request that carries the token. Pure functions. */
#ifndef OUTPOST_CLI_PIN_H
#define OUTPOST_CLI_PIN_H

#include <stddef.h>

#define PIN_BYTES 32
#define PIN_TEXT_MAX 72 /* "sha256:" + 64 hex + NUL, rounded up */

/* "sha256:HEX" (64 hex digits, either case; colons between bytes allowed, as openssl prints
 * them). 0 and the digest in out, or -1. */
int pin_parse(const char *s, unsigned char out[PIN_BYTES]);
/* "sha256:<lowercase hex>". */
void pin_format(const unsigned char digest[PIN_BYTES], char out[PIN_TEXT_MAX]);

/* The DER bytes of the first certificate in PEM text. 0 and a new buffer (caller frees), or -1. */
int pin_pem_to_der(const char *pem, unsigned char **der, size_t *len);

/* The SubjectPublicKeyInfo element (tag and length included) inside an X.509 certificate's
 * DER; borrowed from der. 0, or -1 when der is not a certificate as X.509 lays it out. */
int pin_spki(const unsigned char *der, size_t len, const unsigned char **spki, size_t *spki_len);

/* libcurl's CURLOPT_PINNEDPUBLICKEY value for a certificate: "sha256//" + base64 of the sha256
 * of its SubjectPublicKeyInfo. 0 and a new string (caller frees), or -1. */
int pin_curl_key(const unsigned char *der, size_t len, char **out);

#endif
