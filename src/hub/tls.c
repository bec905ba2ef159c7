/* The hub's self-signed certificate, with GnuTLS (already loaded by libmicrohttpd). */
#include "tls.h"
#include "core/buf.h"
#include "core/sec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <outpost/plugin.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int read_file(const char *path, char **out)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len < 65536)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	*out = buf_steal(&b);
	return *out ? 0 : -1;
}

static int tls_fingerprint(const char *cert_pem, char fp[80])
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
	unsigned char raw[32];
	size_t n = sizeof(raw);
	int rc = -1;

	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0 &&
	    gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, raw, &n) >= 0 && n == 32) {
		strcpy(fp, "sha256:");
		sodium_bin2hex(fp + 7, 65, raw, n);
		rc = 0;
	}
	gnutls_x509_crt_deinit(crt);
	return rc;
}

static int tls_create(const char *const *extra, char **cert_pem, char **key_pem, char *msg,
                      size_t msglen)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t out = {NULL, 0};
	unsigned char serial[16], ip4[4], ip6[16];
	char host[256];
	time_t now = time(NULL);
	int rc = -1;

	*cert_pem = *key_pem = NULL;
	if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
		goto out;
	if (gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
		goto out;
	randombytes_buf(serial, sizeof(serial));
	serial[0] &= 0x7f; /* a positive serial number */
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 86400);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "outpost-hub", 11);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
	                                     GNUTLS_FSAN_APPEND);
	inet_pton(AF_INET, "127.0.0.1", ip4);
	inet_pton(AF_INET6, "::1", ip6);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4, 4, GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip6, 16,
	                                     GNUTLS_FSAN_APPEND);
	if (gethostname(host, sizeof(host)) == 0 && host[0])
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
		                                     (unsigned)strlen(host), GNUTLS_FSAN_APPEND);
	for (size_t i = 0; extra && extra[i]; i++) {
		if (inet_pton(AF_INET, extra[i], ip4) == 1)
			gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4, 4,
			                                     GNUTLS_FSAN_APPEND);
		else if (inet_pton(AF_INET6, extra[i], ip6) == 1)
			gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip6, 16,
			                                     GNUTLS_FSAN_APPEND);
		else
			gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, extra[i],
			                                     (unsigned)strlen(extra[i]),
			                                     GNUTLS_FSAN_APPEND);
	}
	/* Self-signed and a CA, so clients can use the file itself as their trust anchor. */
	gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
	gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
	gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	if (gnutls_x509_crt_set_key(crt, key) < 0 ||
	    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
		goto out;
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) < 0)
		goto out;
	*cert_pem = strndup((const char *)out.data, out.size);
	gnutls_free(out.data);
	out.data = NULL;
	if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out) < 0)
		goto out;
	*key_pem = strndup((const char *)out.data, out.size);
	sodium_memzero(out.data, out.size);
	gnutls_free(out.data);
	rc = *cert_pem && *key_pem ? 0 : -1;
out:
	if (rc < 0) {
		snprintf(msg, msglen, "cannot create the TLS certificate");
		free(*cert_pem);
		free(*key_pem);
		*cert_pem = *key_pem = NULL;
	}
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return rc;
}

int tls_identity(const char *dir, const char *const *extra_names, char **cert_pem, char **key_pem,
                 char fingerprint[80], int *created, char *msg, size_t msglen)
{
	char cpath[4200], kpath[4200];
	int rc;

	*created = 0;
	*cert_pem = *key_pem = NULL;
	snprintf(cpath, sizeof(cpath), "%s/hub.crt", dir);
	snprintf(kpath, sizeof(kpath), "%s/hub-tls.key", dir);
	if (access(kpath, F_OK) == 0) {
		rc = sec_check_secret_file(kpath, msg, msglen);
		if (rc < 0)
			return rc;
		if (read_file(cpath, cert_pem) < 0 || read_file(kpath, key_pem) < 0) {
			snprintf(msg, msglen, "cannot read %s or %s: %s", cpath, kpath,
			         strerror(errno));
			goto fail;
		}
	} else {
		if (tls_create(extra_names, cert_pem, key_pem, msg, msglen) < 0)
			goto fail;
		if (sec_write_secret(kpath, *key_pem, strlen(*key_pem), msg, msglen) < 0 ||
		    sec_write_secret(cpath, *cert_pem, strlen(*cert_pem), msg, msglen) < 0)
			goto fail;
		chmod(cpath, 0644); /* the certificate is public: agents and the CLI read it */
		*created = 1;
	}
	if (tls_fingerprint(*cert_pem, fingerprint) < 0) {
		snprintf(msg, msglen, "%s is not a PEM certificate", cpath);
		goto fail;
	}
	return 0;
fail:
	free(*cert_pem);
	free(*key_pem);
	*cert_pem = *key_pem = NULL;
	return OUTPOST_E_INTERNAL;
}
