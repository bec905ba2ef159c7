/* Security primitives: see sec.h. */
#include "sec.h"

#include <outpost/plugin.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sec_init(void)
{
	return sodium_init() < 0 ? OUTPOST_E_INTERNAL : 0;
}

int sec_check_secret_file(const char *path, char *msg, size_t msglen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return OUTPOST_E_NOT_FOUND;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "%s is not a regular file", path);
		return OUTPOST_E_FORBIDDEN;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(
		    msg, msglen,
		    "%s must be mode 0600 and owned by uid %u (it is %04o, uid %u): fix it with "
		    "chmod 600 / chown, and replace the secret if others may have read it",
		    path, (unsigned)geteuid(), (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		return OUTPOST_E_FORBIDDEN;
	}
	return 0;
}

int sec_write_secret(const char *path, const void *data, size_t len, char *msg, size_t msglen)
{
	char tmp[4200];
	const char *p = data;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto fail;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
		close(fd);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		goto fail;
	return 0;
fail:
	snprintf(msg, msglen, "cannot write %s: %s", path, strerror(errno));
	unlink(tmp);
	return OUTPOST_E_INTERNAL;
}

int sec_keyfile(const char *path, uint8_t pk[SEC_PK_BYTES], uint8_t sk[SEC_SK_BYTES], int *created,
                char *msg, size_t msglen)
{
	char text[256];
	char *b64;
	ssize_t n;
	int fd, rc;

	*created = 0;
	if (access(path, F_OK) < 0) {
		crypto_sign_keypair(pk, sk);
		b64 = sec_b64(sk, SEC_SK_BYTES);
		if (!b64)
			return OUTPOST_E_INTERNAL;
		snprintf(text, sizeof(text), "%s\n", b64);
		free(b64);
		rc = sec_write_secret(path, text, strlen(text), msg, msglen);
		sodium_memzero(text, sizeof(text));
		if (rc == 0)
			*created = 1;
		return rc;
	}
	rc = sec_check_secret_file(path, msg, msglen);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return OUTPOST_E_INTERNAL;
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(msg, msglen, "%s: empty or unreadable", path);
		return OUTPOST_E_BAD_ARGS;
	}
	text[n] = '\0';
	text[strcspn(text, "\r\n")] = '\0';
	rc = sec_unb64(text, sk, SEC_SK_BYTES);
	sodium_memzero(text, sizeof(text));
	if (rc < 0) {
		snprintf(msg, msglen, "%s: not an Ed25519 secret key (base64 of 64 bytes)", path);
		return OUTPOST_E_BAD_ARGS;
	}
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	return 0;
}

char *sec_b64(const void *p, size_t n)
{
	size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(len);

	if (out)
		sodium_bin2base64(out, len, p, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

int sec_unb64(const char *s, void *out, size_t want)
{
	size_t got = 0;

	if (!s ||
	    sodium_base642bin(out, want, s, strlen(s), NULL, &got, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != want)
		return -1;
	return 0;
}

char *sec_sign_b64(const uint8_t sk[SEC_SK_BYTES], const void *msg, size_t len)
{
	uint8_t sig[SEC_SIG_BYTES];

	crypto_sign_detached(sig, NULL, msg, len, sk);
	return sec_b64(sig, sizeof(sig));
}

int sec_verify_b64(const uint8_t pk[SEC_PK_BYTES], const void *msg, size_t len, const char *sig_b64)
{
	uint8_t sig[SEC_SIG_BYTES];

	if (sec_unb64(sig_b64, sig, sizeof(sig)) < 0)
		return -1;
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

void sec_sha256_hex(const void *p, size_t n, char hex[65])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, p, n);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

char *sec_token(const char *prefix)
{
	uint8_t raw[32];
	char b64[64];
	size_t pl = strlen(prefix);
	char *out = malloc(pl + sizeof(b64));

	if (!out)
		return NULL;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	memcpy(out, prefix, pl);
	strcpy(out + pl, b64);
	sodium_memzero(raw, sizeof(raw));
	return out;
}

int sec_streq(const char *a, const char *b)
{
	char ha[65], hb[65];

	/* Compare fixed-size digests so neither content nor length leaks through timing. */
	sec_sha256_hex(a, strlen(a), ha);
	sec_sha256_hex(b, strlen(b), hb);
	return sodium_memcmp(ha, hb, 64) == 0;
}

char *sec_request_text(const char *method, const char *target, const char *time, const void *body,
                       size_t len)
{
	char hex[65], *out;
	size_t n;

	sec_sha256_hex(body ? body : "", body ? len : 0, hex);
	n = strlen(method) + strlen(target) + strlen(time) + 3 + 64 + 1;
	if (!(out = malloc(n)))
		return NULL;
	snprintf(out, n, "%s\n%s\n%s\n%s", method, target, time, hex);
	return out;
}

char *sec_canonical(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int sec_parse_time_ms(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t n = 0;

	if (!s)
		return -1;
	for (; s[n]; n++) {
		if (n >= 15 || s[n] < '0' || s[n] > '9')
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	if (n == 0)
		return -1;
	*out = v;
	return 0;
}
