/* One HTTP POST from a worker thread of the hub (libcurl's easy interface), and the worker's
 * wait between two tries: what the webhook worker (rules_hook.c) and remote_write (rwrite.c)
 * share. Never called on the loop thread. */
#ifndef OUTPOST_HUB_HPOST_H
#define OUTPOST_HUB_HPOST_H

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* POSTs len bytes of body to url (http or https only) with the headers h (the caller's, freed
 * by the caller), within timeout_ms; the answer's body is discarded. The HTTP status, or 0
 * when none came back (err, CURL_ERROR_SIZE bytes, says why). c is reset first. */
long hpost(CURL *c, const char *url, struct curl_slist *h, const char *body, size_t len,
           long timeout_ms, char *err);

/* Waits ms on cond (lock held) until *stop is set; returns *stop. */
int hpost_wait(pthread_cond_t *cond, pthread_mutex_t *lock, const int *stop, int64_t ms);

#endif
