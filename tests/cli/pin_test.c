/* Tests for src/cli/pin.c: fingerprints, PEM, and finding the public key to pin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cli/pin.h"

/* openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=hub
 *   -addext subjectAltName=DNS:localhost. Its fingerprint and SPKI pin come from
 * `openssl x509 -outform DER | sha256sum` and
 * `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary |
 * base64`. */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBiDCCAS2gAwIBAgIUAmhYxXrjLe9Yl/U23wefnqpIIhQwCgYIKoZIzj0EAwIw\n"
                               "DjEMMAoGA1UEAwwDaHViMB4XDTI2MTEyNTE2MDEyMloXDTI2MTEyODE2MDEyMlow\n"
                               "DjEMMAoGA1UEAwwDaHViMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQXbkNTuo\n"
                               "ZpntZtfvCj8x3yd9fbHmZsWFeV8MkMmemwXIvknCJTp6udjPYN5Qrrsg7kOa7m9t\n"
                               "XQZfFqmDfWxBb6NpMGcwHQYDVR0OBBYEFBPk17aAgh7LFzLSy5r5J9t3RfOfMB8G\n"
                               "A1UdIwQYMBaAFBPk17aAgh7LFzLSy5r5J9t3RfOfMA8GA1UdEwEB/wQFMAMBAf8w\n"
                               "FAYDVR0RBA0wC4IJbG9jYWxob3N0MAoGCCqGSM49BAMCA0kAMEYCIQDAK8/l8gGN\n"
                               "2YW0N0buM8V8kD8MbR5vO+Kg7mhvCpnSigIhAIKUS61pG1u0BLGsYXB2oFYVdmBx\n"
                               "fwuTkovxhE9F9D8L\n"
                               "-----END CERTIFICATE-----\n";
static const char cert_fp[] =
    "sha256:7e59ea1b8cb2f9ca1589dca918bc408f0bcb29afac368b8cf38776eae5200ae9";
static const char cert_spki_pin[] = "sha256//666v1roMlp3ERaxdMsYQhVVFUEkFXpviuXY13wVG8ww=";

static void test_parse_and_format_round_trip(void **state)
{
	unsigned char d[PIN_BYTES];
	char text[PIN_TEXT_MAX];

	assert_int_equal(pin_parse(cert_fp, d), 0);
	assert_int_equal(d[0], 0x7e);
	assert_int_equal(d[31], 0xe9);
	pin_format(d, text);
	assert_string_equal(text, cert_fp);
}

static void test_parse_takes_openssl_style_and_upper_case(void **state)
{
	unsigned char a[PIN_BYTES], b[PIN_BYTES];

	assert_int_equal(pin_parse(cert_fp, a), 0);
	assert_int_equal(
	    pin_parse("sha256:7E:59:EA:1B:8C:B2:F9:CA:15:89:DC:A9:18:BC:40:8F:0B:CB:29:AF:AC:"
	              "36:8B:8C:F3:87:76:EA:E5:20:0A:E9",
	              b),
	    0);
	assert_memory_equal(a, b, PIN_BYTES);
}

static void test_parse_refuses_other_forms(void **state)
{
	unsigned char d[PIN_BYTES];

	assert_int_equal(
	    pin_parse("7e59ea1b8cb2f9ca1589dca918bc408f0bcb29afac368b8cf38776eae5200ae9", d), -1);
	assert_int_equal(pin_parse("sha1:7e59", d), -1);
	assert_int_equal(pin_parse("sha256:7e59", d), -1);
	assert_int_equal(
	    pin_parse("sha256:7e59ea1b8cb2f9ca1589dca918bc408f0bcb29afac368b8cf38776eae5"
	              "200ae900",
	              d),
	    -1);
	assert_int_equal(
	    pin_parse("sha256:7g59ea1b8cb2f9ca1589dca918bc408f0bcb29afac368b8cf38776eae5"
	              "200ae9",
	              d),
	    -1);
	assert_int_equal(pin_parse("sha256//666v1roMlp3ERaxdMsYQhVVFUEkFXpviuXY13wVG8ww=", d), -1);
	assert_int_equal(pin_parse(NULL, d), -1);
}

static void test_pem_to_der_matches_the_fingerprint(void **state)
{
	unsigned char *der, digest[PIN_BYTES], want[PIN_BYTES];
	size_t len;

	assert_int_equal(pin_pem_to_der(cert_pem, &der, &len), 0);
	assert_int_equal(len, 396);
	crypto_hash_sha256(digest, der, len);
	assert_int_equal(pin_parse(cert_fp, want), 0);
	assert_memory_equal(digest, want, PIN_BYTES);
	free(der);
	assert_int_equal(pin_pem_to_der("no certificate here", &der, &len), -1);
	assert_int_equal(
	    pin_pem_to_der("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----", &der,
	                   &len),
	    -1);
	assert_null(der);
}

static void test_curl_key_is_the_spki_pin(void **state)
{
	unsigned char *der;
	size_t len;
	char *key;

	assert_int_equal(pin_pem_to_der(cert_pem, &der, &len), 0);
	assert_int_equal(pin_curl_key(der, len, &key), 0);
	assert_string_equal(key, cert_spki_pin);
	free(key);
	free(der);
}

static void test_spki_refuses_truncated_or_foreign_der(void **state)
{
	unsigned char *der, junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
	const unsigned char *spki;
	size_t len, spki_len;

	assert_int_equal(pin_pem_to_der(cert_pem, &der, &len), 0);
	assert_int_equal(pin_spki(der, len, &spki, &spki_len), 0);
	assert_int_equal(spki[0], 0x30);
	assert_int_equal(spki_len, 91); /* P-256: 0x30 0x59 + 89 bytes */
	for (size_t cut = 0; cut < 200; cut += 7)
		assert_int_equal(pin_spki(der, cut, &spki, &spki_len), -1);
	assert_int_equal(pin_spki(junk, sizeof(junk), &spki, &spki_len), -1);
	der[0] = 0x31;
	assert_int_equal(pin_spki(der, len, &spki, &spki_len), -1);
	free(der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_format_round_trip),
	    cmocka_unit_test(test_parse_takes_openssl_style_and_upper_case),
	    cmocka_unit_test(test_parse_refuses_other_forms),
	    cmocka_unit_test(test_pem_to_der_matches_the_fingerprint),
	    cmocka_unit_test(test_curl_key_is_the_spki_pin),
	    cmocka_unit_test(test_spki_refuses_truncated_or_foreign_der),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
