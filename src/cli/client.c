/* The CLI's HTTP client: see client.h. One easy handle, reused, so requests share a
 * connection; no redirects, only http and https. */
#include "client.h"
#include "core/buf.h"
#include "core/wire.h"
#include "pin.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_PREFLIGHT_TIMEOUT_S 30
#define CLIENT_MAX_DEPTH 64

struct client {
	CURL *curl;
	struct curl_slist *headers;
	char *base; /* without a trailing slash */
	char *ca;   /* may be NULL */
	int has_pin;
	unsigned char pin[PIN_BYTES];
	char *pinned_key; /* curl's sha256//BASE64, once the preflight has seen the certificate */
	volatile sig_atomic_t *interrupted;
	int too_big; /* the answer went over CLIENT_MAX_ANSWER */
	struct buf answer;
	char errbuf[CURL_ERROR_SIZE];
};

static int client_fail(struct client_err *err, int rc, int retry, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

static int client_fail(struct client_err *err, int rc, int retry, const char *code, const char *fmt,
                       ...)
{
	va_list ap;

	snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->retry = retry;
	return rc;
}

static int client_check_url(const char *hub, struct client_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
	int rc = CLIENT_E_SETUP;

	if (!u)
		return client_fail(err, CLIENT_E_SETUP, 0, NULL, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, hub, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		client_fail(err, rc, 0, NULL, "hub URL '%s' is not a URL such as https://hub:8443",
		            hub);
	} else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		client_fail(err, rc, 0, NULL, "hub URL '%s': use https:// (or http://)", hub);
	} else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	           curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		client_fail(err, rc, 0, NULL, "hub URL '%s' must not have a query or fragment",
		            hub);
	} else {
		rc = 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	return rc;
}

int client_open(const struct client_conf *conf, struct client **out, struct client_err *err)
{
	struct client *cl;
	struct buf auth = BUF_INIT;
	size_t n;
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if ((rc = client_check_url(conf->hub, err)) < 0)
		return rc;
	if (conf->pin && strncmp(conf->hub, "https://", 8) != 0)
		return client_fail(err, CLIENT_E_SETUP, 0, NULL,
		                   "a pinned certificate needs an https:// hub URL");
	/* Checked here, or libcurl says only "Problem with the SSL CA cert (path? access
	 * rights?)". */
	if (conf->ca && access(conf->ca, R_OK) < 0)
		return client_fail(err, CLIENT_E_SETUP, 0, NULL, "cannot read the CA file %s: %s",
		                   conf->ca, strerror(errno));
	for (const char *p = conf->token; p && *p; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			return client_fail(err, CLIENT_E_SETUP, 0, NULL,
			                   "the token holds spaces or control characters");
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return client_fail(err, CLIENT_E_SETUP, 0, NULL, "out of memory");
	cl->interrupted = conf->interrupted;
	if (conf->pin) {
		if (pin_parse(conf->pin, cl->pin) < 0) {
			rc = client_fail(err, CLIENT_E_SETUP, 0, NULL,
			                 "pin '%s' is not sha256: and 64 hex digits", conf->pin);
			goto fail;
		}
		cl->has_pin = 1;
	}
	cl->base = strdup(conf->hub);
	cl->ca = conf->ca ? strdup(conf->ca) : NULL;
	cl->curl = curl_easy_init();
	if (!cl->base || (conf->ca && !cl->ca) || !cl->curl)
		goto oom;
	n = strlen(cl->base);
	while (n > 0 && cl->base[n - 1] == '/')
		cl->base[--n] = '\0';
	if (conf->token && (buf_printf(&auth, "Authorization: Bearer %s", conf->token) < 0 ||
	                    !(cl->headers = curl_slist_append(cl->headers, auth.data))))
		goto oom;
	{
		/* "Expect:" off: a large POST (cp) goes at once, without a 100-continue pause. */
		static const char *const hdrs[] = {"Accept: application/json",
		                                   "Content-Type: application/json", "Expect:"};
		for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
			struct curl_slist *l = curl_slist_append(cl->headers, hdrs[i]);
			if (!l)
				goto oom;
			cl->headers = l;
		}
	}
	buf_free(&auth);
	*out = cl;
	return 0;
oom:
	rc = client_fail(err, CLIENT_E_SETUP, 0, NULL, "out of memory");
fail:
	if (auth.data)
		sodium_memzero(auth.data, auth.len);
	buf_free(&auth);
	client_free(cl);
	return rc;
}

void client_free(struct client *cl)
{
	if (!cl)
		return;
	if (cl->curl)
		curl_easy_cleanup(cl->curl);
	for (struct curl_slist *l = cl->headers; l; l = l->next)
		sodium_memzero(l->data, strlen(l->data));
	curl_slist_free_all(cl->headers);
	free(cl->base);
	free(cl->ca);
	free(cl->pinned_key);
	buf_free(&cl->answer);
	free(cl);
}

static size_t client_on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct client *cl = arg;
	size_t n = size * nmemb;

	if (n > CLIENT_MAX_ANSWER - cl->answer.len) {
		cl->too_big = 1;
		return 0;
	}
	return buf_append(&cl->answer, p, n) < 0 ? 0 : n;
}

static int client_on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct client *cl = arg;
	return cl->interrupted && *cl->interrupted ? 1 : 0;
}

/* What every transfer of this client shares. */
static void client_common(struct client *cl, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CLIENT_CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, client_on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, cl);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cl->errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "outpost/" OUTPOST_VERSION);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* A failed transfer as a client_err; rc is libcurl's code. */
static int client_curl_fail(struct client *cl, CURLcode rc, struct client_err *err)
{
	const char *why = cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_ABORTED_BY_CALLBACK:
		return client_fail(err, CLIENT_E_INTR, 0, NULL, "interrupted");
	case CURLE_WRITE_ERROR:
		if (cl->too_big)
			return client_fail(err, CLIENT_E_NET, 0, NULL,
			                   "the hub's answer is larger than %u MiB",
			                   CLIENT_MAX_ANSWER >> 20);
		return client_fail(err, CLIENT_E_NET, 0, NULL, "out of memory");
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return client_fail(err, CLIENT_E_NET, 0, NULL,
		                   "the hub at %s is not trusted: %s. Pass --ca with the hub's "
		                   "certificate (<state-dir>/hub.crt), or --pin with the sha256 "
		                   "fingerprint it printed at its first start",
		                   cl->base, why);
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return client_fail(err, CLIENT_E_NET, 0, NULL,
		                   "the hub at %s does not have the pinned certificate's key: "
		                   "refusing to talk to it",
		                   cl->base);
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return client_fail(err, CLIENT_E_NET, 1, NULL, "cannot reach the hub at %s: %s",
		                   cl->base, why);
	default:
		return client_fail(err, CLIENT_E_NET, 0, NULL, "cannot reach the hub at %s: %s",
		                   cl->base, why);
	}
}

/* Whom a transfer trusts. Told whom to trust (--ca, --pin), it trusts exactly that: libcurl
 * would otherwise also read the system's CA store (CURLOPT_CAPATH, /etc/ssl/certs: ~150
 * files, ~50 ms) on every handshake, even one that verifies nothing. The preflight verifies
 * nothing itself (it checks the certificate against the pin afterwards). */
static void client_trust(const struct client *cl, CURL *h, int preflight)
{
	if (preflight || cl->ca || cl->has_pin) {
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(h, CURLOPT_CAINFO, preflight ? NULL : cl->ca);
	}
	if (preflight) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (cl->pinned_key) {
		/* The key is the hub's identity; with a CA file too, both must hold. */
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, cl->pinned_key);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cl->ca ? 1L : 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cl->ca ? 2L : 0L);
	}
}

/* Fetches the hub's certificate without credentials and checks it against the pin; on a match
 * its public key is pinned for the requests that follow (pin.h says why). */
static int client_preflight(struct client *cl, struct client_err *err)
{
	CURL *h = curl_easy_init();
	struct curl_certinfo *ci = NULL;
	const char *pem = NULL;
	unsigned char *der = NULL, digest[PIN_BYTES];
	size_t len = 0;
	char got[PIN_TEXT_MAX], want[PIN_TEXT_MAX];
	CURLcode crc;
	int rc;

	if (!h)
		return client_fail(err, CLIENT_E_SETUP, 0, NULL, "out of memory");
	cl->errbuf[0] = '\0';
	client_common(cl, h);
	curl_easy_setopt(h, CURLOPT_URL, cl->base);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	client_trust(cl, h, 1);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)CLIENT_PREFLIGHT_TIMEOUT_S);
	crc = curl_easy_perform(h);
	if (crc != CURLE_OK) {
		rc = client_curl_fail(cl, crc, err);
		goto out;
	}
	if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci && ci->num_of_certs > 0)
		for (struct curl_slist *l = ci->certinfo[0]; l && !pem; l = l->next)
			if (strncmp(l->data, "Cert:", 5) == 0)
				pem = l->data + 5;
	if (!pem || pin_pem_to_der(pem, &der, &len) < 0) {
		rc = client_fail(err, CLIENT_E_NET, 0, NULL,
		                 "cannot read the certificate of the hub at %s", cl->base);
		goto out;
	}
	crypto_hash_sha256(digest, der, len);
	if (sodium_memcmp(digest, cl->pin, PIN_BYTES) != 0) {
		pin_format(digest, got);
		pin_format(cl->pin, want);
		rc = client_fail(err, CLIENT_E_NET, 0, NULL,
		                 "the hub at %s has certificate %s, not the pinned %s: refusing "
		                 "to send it the token (if the hub's certificate was replaced on "
		                 "purpose, pin the new fingerprint)",
		                 cl->base, got, want);
		goto out;
	}
	if (pin_curl_key(der, len, &cl->pinned_key) < 0) {
		rc = client_fail(err, CLIENT_E_NET, 0, NULL,
		                 "cannot find the public key in the certificate of the hub at %s",
		                 cl->base);
		goto out;
	}
	rc = 0;
out:
	free(der);
	curl_easy_cleanup(h);
	return rc;
}

/* The answer as an envelope: its result, or the hub's error. */
static int client_envelope(struct client *cl, long status, json_t **result, struct client_err *err)
{
	json_t *env = NULL, *ok;
	char why[200];
	int rc;

	if (cl->answer.len == 0 ||
	    wire_parse(cl->answer.data, cl->answer.len, CLIENT_MAX_DEPTH, &env, why, sizeof(why)) <
	        0 ||
	    !json_is_boolean(ok = json_object_get(env, "ok"))) {
		/* A proxy's error page, or something else that is not the hub. */
		struct buf snip = BUF_INIT;
		size_t n = cl->answer.len < 80 ? cl->answer.len : 80;
		for (size_t i = 0; i < n; i++) {
			char c = cl->answer.data[i];
			buf_append(&snip, (c >= 0x20 && c < 0x7f) ? &c : " ", 1);
		}
		rc = client_fail(err, CLIENT_E_NET, status == 502 || status == 503 || status == 504,
		                 NULL,
		                 "the hub at %s answered HTTP %ld without an Outpost answer%s%s",
		                 cl->base, status, n ? ": " : "", n ? snip.data : "");
		buf_free(&snip);
		json_decref(env);
		return rc;
	}
	if (json_is_true(ok)) {
		json_t *r = json_object_get(env, "result");
		*result = r ? json_incref(r) : json_null();
		json_decref(env);
		return 0;
	}
	{
		json_t *e = json_object_get(env, "error");
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		if (!code)
			code = "internal";
		rc = client_fail(err, CLIENT_E_HUB,
		                 strcmp(code, "busy") == 0 || strcmp(code, "unavailable") == 0,
		                 code, "%s", msg ? msg : "(no message)");
	}
	json_decref(env);
	return rc;
}

int client_call(struct client *cl, const char *method, const char *path, const json_t *body,
                int wait_s, json_t **result, struct client_err *err)
{
	struct buf url = BUF_INIT;
	char *text = NULL;
	long status = 0, limit_s = wait_s > 0 ? wait_s + CLIENT_POLL_MARGIN_S : CLIENT_TIMEOUT_S;
	CURLcode crc;
	int rc;

	*result = NULL;
	memset(err, 0, sizeof(*err));
	if (cl->has_pin && !cl->pinned_key && (rc = client_preflight(cl, err)) < 0)
		return rc;
	if (buf_puts(&url, cl->base) < 0 || buf_puts(&url, path) < 0 ||
	    (body && !(text = wire_dump(body)))) {
		rc = client_fail(err, CLIENT_E_SETUP, 0, NULL, "out of memory");
		goto out;
	}
	buf_reset(&cl->answer);
	cl->too_big = 0;
	cl->errbuf[0] = '\0';
	client_common(cl, cl->curl);
	curl_easy_setopt(cl->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(cl->curl, CURLOPT_HTTPHEADER, cl->headers);
	curl_easy_setopt(cl->curl, CURLOPT_WRITEFUNCTION, client_on_data);
	curl_easy_setopt(cl->curl, CURLOPT_WRITEDATA, cl);
	curl_easy_setopt(cl->curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(cl->curl, CURLOPT_TIMEOUT, limit_s);
	/* A long-poll is silent until it answers, so the stall limit covers its whole wait. */
	curl_easy_setopt(cl->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(cl->curl, CURLOPT_LOW_SPEED_TIME,
	                 wait_s > 0 ? limit_s : (long)CLIENT_STALL_S);
	client_trust(cl, cl->curl, 0);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(cl->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(cl->curl, CURLOPT_POSTFIELDS, text ? text : "{}");
		curl_easy_setopt(cl->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(text ? text : "{}"));
	} else {
		curl_easy_setopt(cl->curl, CURLOPT_HTTPGET, 1L);
	}
	crc = curl_easy_perform(cl->curl);
	if (crc != CURLE_OK) {
		long reqsize = 0;
		rc = client_curl_fail(cl, crc, err);
		curl_easy_getinfo(cl->curl, CURLINFO_REQUEST_SIZE, &reqsize);
		err->sent = reqsize > 0;
		goto out;
	}
	curl_easy_getinfo(cl->curl, CURLINFO_RESPONSE_CODE, &status);
	rc = client_envelope(cl, status, result, err);
	/* An answer that is not the hub's (a proxy's 502) says nothing of what the hub did. */
	err->sent = rc != 0 && !err->code[0];
out:
	free(text);
	buf_free(&url);
	return rc;
}
