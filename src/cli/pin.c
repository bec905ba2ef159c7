/* Certificate pinning helpers: see pin.h. */
#include "pin.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pin_parse(const char *s, unsigned char out[PIN_BYTES])
{
	size_t n = 0;

	if (!s || strncmp(s, "sha256:", 7) != 0)
		return -1;
	s += 7;
	while (*s) {
		unsigned hi, lo;
		if (*s == ':' && n > 0 && n < PIN_BYTES) {
			s++;
			continue;
		}
		if (n == PIN_BYTES || !isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]))
			return -1;
		hi = (unsigned)(isdigit((unsigned char)s[0])
		                    ? s[0] - '0'
		                    : tolower((unsigned char)s[0]) - 'a' + 10);
		lo = (unsigned)(isdigit((unsigned char)s[1])
		                    ? s[1] - '0'
		                    : tolower((unsigned char)s[1]) - 'a' + 10);
		out[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	return n == PIN_BYTES ? 0 : -1;
}

void pin_format(const unsigned char digest[PIN_BYTES], char out[PIN_TEXT_MAX])
{
	memcpy(out, "sha256:", 7);
	sodium_bin2hex(out + 7, PIN_TEXT_MAX - 7, digest, PIN_BYTES);
}

int pin_pem_to_der(const char *pem, unsigned char **der, size_t *len)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *b = strstr(pem, begin), *e;
	unsigned char *out;
	size_t cap, n = 0;

	*der = NULL;
	*len = 0;
	if (!b)
		return -1;
	b += sizeof(begin) - 1;
	e = strstr(b, end);
	if (!e)
		return -1;
	cap = (size_t)(e - b) / 4 * 3 + 3;
	out = malloc(cap);
	if (!out)
		return -1;
	if (sodium_base642bin(out, cap, b, (size_t)(e - b), " \t\r\n", &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n == 0) {
		free(out);
		return -1;
	}
	*der = out;
	*len = n;
	return 0;
}

/* One DER element at *p (before end): its tag, and its contents in [*body, *body + *blen).
 * Advances *p past it. Only the low tag numbers X.509 uses; definite lengths up to 4 bytes. */
static int pin_tlv(const unsigned char **p, const unsigned char *end, unsigned *tag,
                   const unsigned char **body, size_t *blen)
{
	const unsigned char *q = *p;
	size_t n;

	if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
		return -1;
	*tag = q[0];
	n = q[1];
	q += 2;
	if (n & 0x80) {
		size_t k = n & 0x7f;
		if (k == 0 || k > 4 || (size_t)(end - q) < k)
			return -1;
		n = 0;
		while (k--)
			n = n << 8 | *q++;
	}
	if ((size_t)(end - q) < n)
		return -1;
	*body = q;
	*blen = n;
	*p = q + n;
	return 0;
}

int pin_spki(const unsigned char *der, size_t len, const unsigned char **spki, size_t *spki_len)
{
	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
	 * serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE,
	 * subject SEQUENCE, subjectPublicKeyInfo SEQUENCE, ... }, ... } */
	static const unsigned expect[] = {0x02, 0x30, 0x30, 0x30, 0x30};
	const unsigned char *p = der, *end = der + len, *body, *start;
	size_t blen;
	unsigned tag;

	if (pin_tlv(&p, end, &tag, &body, &blen) < 0 || tag != 0x30)
		return -1;
	p = body;
	end = body + blen;
	if (pin_tlv(&p, end, &tag, &body, &blen) < 0 || tag != 0x30)
		return -1;
	p = body;
	end = body + blen;
	if (p < end && *p == 0xa0 && pin_tlv(&p, end, &tag, &body, &blen) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		if (pin_tlv(&p, end, &tag, &body, &blen) < 0 || tag != expect[i])
			return -1;
	start = p;
	if (pin_tlv(&p, end, &tag, &body, &blen) < 0 || tag != 0x30)
		return -1;
	*spki = start;
	*spki_len = (size_t)(p - start);
	return 0;
}

int pin_curl_key(const unsigned char *der, size_t len, char **out)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	const unsigned char *spki;
	size_t spki_len, n;
	char *s;

	*out = NULL;
	if (pin_spki(der, len, &spki, &spki_len) < 0)
		return -1;
	crypto_hash_sha256(digest, spki, spki_len);
	n = sodium_base64_ENCODED_LEN(sizeof(digest), sodium_base64_VARIANT_ORIGINAL);
	s = malloc(8 + n);
	if (!s)
		return -1;
	memcpy(s, "sha256//", 8);
	sodium_bin2base64(s + 8, n, digest, sizeof(digest), sodium_base64_VARIANT_ORIGINAL);
	*out = s;
	return 0;
}
