/* Webhook deliveries (docs/rules.md#webhooks): one worker thread POSTs each body with libcurl,
 * signed with HMAC-SHA256 under the hub's webhook secret, retried with backoff (1 s, 2 s,
 * 4 s, 8 s) while the receiver fails or is unreachable. The loop thread only queues bodies
 * and, once a second, takes the outcomes back into the alert history: no call here blocks
 * the loop. */
#include "rules_int.h"
#include "hub_impl.h"
#include "hpost.h"
#include "core/conf.h"
#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOOK_ATTEMPTS 5
#define HOOK_TIMEOUT_MS 5000
#define HOOK_QUEUE_MAX 1000

struct hook_job {
	char *url, *rule, *host, *body;
	char delivery[40];
	int attempts;
	long status;
	int ok;
	char err[CURL_ERROR_SIZE];
	struct hook_job *next;
};

struct rules_hook {
	pthread_t thread;
	int started;
	pthread_mutex_t lock; /* guards the queues and stop */
	pthread_cond_t wake;
	struct hook_job *todo, **todo_tail, *done;
	size_t queued;
	int stop;
	uint8_t secret[64];
	size_t secret_len;
	unsigned long long sent, failed, dropped;
};

static void job_free(struct hook_job *j)
{
	if (!j)
		return;
	free(j->url);
	free(j->rule);
	free(j->host);
	free(j->body);
	free(j);
}

/* One POST: the HTTP status, or 0 when none came back. */
static long hook_post(struct rules_hook *w, CURL *c, struct hook_job *j)
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char hex[2 * sizeof(mac) + 1], sig[120], ts[64], del[80];
	struct curl_slist *h = NULL;
	long status = 0;
	time_t now = time(NULL);

	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	/* Signed: "TIMESTAMP.BODY", so that a receiver can refuse an old body replayed. */
	crypto_auth_hmacsha256_init(&st, w->secret, w->secret_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)j->body, strlen(j->body));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	snprintf(sig, sizeof(sig), "X-Outpost-Signature: sha256=%s", hex);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: outpost-hub");
	h = curl_slist_append(h, sig);
	snprintf(ts, sizeof(ts), "X-Outpost-Timestamp: %lld", (long long)now);
	h = curl_slist_append(h, ts);
	snprintf(del, sizeof(del), "X-Outpost-Delivery: %s", j->delivery);
	h = curl_slist_append(h, del);
	status = hpost(c, j->url, h, j->body, strlen(j->body), HOOK_TIMEOUT_MS, j->err);
	curl_slist_free_all(h);
	return status;
}

static void *hook_main(void *arg)
{
	struct rules_hook *w = arg;
	CURL *c = curl_easy_init();

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct hook_job *j = w->todo;
		if (!j) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = &w->todo;
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		for (j->attempts = 1;; j->attempts++) {
			j->status = c ? hook_post(w, c, j) : 0;
			j->ok = j->status >= 200 && j->status < 300;
			if (j->ok || j->attempts >= HOOK_ATTEMPTS ||
			    (j->status >= 400 && j->status < 500 && j->status != 429))
				break;
			pthread_mutex_lock(&w->lock);
			if (hpost_wait(&w->wake, &w->lock, &w->stop, 1000LL << (j->attempts - 1))) {
				pthread_mutex_unlock(&w->lock);
				break;
			}
			pthread_mutex_unlock(&w->lock);
		}
		pthread_mutex_lock(&w->lock);
		j->next = w->done;
		w->done = j;
	}
	pthread_mutex_unlock(&w->lock);
	curl_easy_cleanup(c);
	return NULL;
}

/* The secret: rules.webhook_secret_file, or <state_dir>/webhook.secret made on first start. */
static int hook_secret(struct hub *h, struct rules_hook *w, char *msg, size_t msglen)
{
	const char *file = h->conf->rules.webhook_secret_file;
	char path[4200], buf[200];
	ssize_t n;
	int fd;

	if (file && *file)
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%s/webhook.secret", h->state_dir);
	if (access(path, F_OK) != 0 && !(file && *file)) {
		char *tok = sec_token("");
		char line[128];
		int rc;
		if (!tok)
			return OUTPOST_E_INTERNAL;
		snprintf(line, sizeof(line), "%s\n", tok);
		free(tok);
		rc = sec_write_secret(path, line, strlen(line), msg, msglen);
		sodium_memzero(line, sizeof(line));
		if (rc < 0)
			return rc;
		log_info(h->log, "rules", "webhook secret written to %s (mode 0600)", path);
	}
	if (sec_check_secret_file(path, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    (n = read(fd, buf, sizeof(buf) - 1)) <= 0) {
		if (fd >= 0)
			close(fd);
		snprintf(msg, msglen, "rules: cannot read the webhook secret %s", path);
		return OUTPOST_E_BAD_ARGS;
	}
	close(fd);
	buf[n] = '\0';
	n = (ssize_t)strcspn(buf, "\r\n");
	if (n < 16 || (size_t)n > sizeof(w->secret)) {
		snprintf(msg, msglen,
		         "rules: the webhook secret %s must be one line of 16 to 64 bytes", path);
		return OUTPOST_E_BAD_ARGS;
	}
	memcpy(w->secret, buf, (size_t)n);
	w->secret_len = (size_t)n;
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

int rules_hook_start(struct hub *h, struct rules_hook **out, char *msg, size_t msglen)
{
	struct rules_hook *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return OUTPOST_E_INTERNAL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->todo_tail = &w->todo;
	if ((rc = hook_secret(h, w, msg, msglen)) < 0) {
		rules_hook_stop(w);
		return rc;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (pthread_create(&w->thread, NULL, hook_main, w) != 0) {
		rules_hook_stop(w);
		snprintf(msg, msglen, "rules: cannot start the webhook thread");
		return OUTPOST_E_INTERNAL;
	}
	w->started = 1;
	*out = w;
	return 0;
}

void rules_hook_send(struct rules_hook *w, const char *url, const char *rule, const char *host,
                     char *body)
{
	struct hook_job *j = calloc(1, sizeof(*j));
	char *r;

	if (!w || !j || !(j->url = strdup(url)) || !(j->rule = strdup(rule)) ||
	    (host && !(j->host = strdup(host)))) {
		free(body);
		job_free(j);
		return;
	}
	j->body = body;
	r = sec_token("");
	snprintf(j->delivery, sizeof(j->delivery), "%.32s", r ? r : "0");
	free(r);
	pthread_mutex_lock(&w->lock);
	if (w->queued >= HOOK_QUEUE_MAX) {
		w->dropped++;
		pthread_mutex_unlock(&w->lock);
		job_free(j);
		return;
	}
	*w->todo_tail = j;
	w->todo_tail = &j->next;
	w->queued++;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void rules_hook_drain(struct rules_hook *w, struct rules *rs)
{
	struct hook_job *j, *next;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	j = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; j; j = next) {
		next = j->next;
		if (j->ok)
			w->sent++;
		else
			w->failed++;
		rules_log(rs, j->rule, j->host, "action",
		          json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s?}", "action", "webhook",
		                    "url", j->url, "delivery", j->delivery, "outcome",
		                    j->ok ? "delivered" : "failed", "attempts", j->attempts,
		                    "status", (json_int_t)j->status, "error",
		                    j->err[0] ? j->err : NULL));
		if (!j->ok)
			log_warn(rs->h->log, "rules",
			         "rule %s: webhook %s failed after %d attempt(s): %s", j->rule,
			         j->url, j->attempts, j->err[0] ? j->err : "HTTP error");
		job_free(j);
	}
}

void rules_hook_stats(struct rules_hook *w, unsigned long long *sent, unsigned long long *failed)
{
	if (!w)
		return;
	*sent = w->sent;
	*failed = w->failed;
}

void rules_hook_stop(struct rules_hook *w)
{
	struct hook_job *j, *next;

	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_cond_broadcast(&w->wake);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	for (j = w->todo; j; j = next) {
		next = j->next;
		job_free(j);
	}
	for (j = w->done; j; j = next) {
		next = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	sodium_memzero(w->secret, sizeof(w->secret));
	free(w);
}
