/* Failure windows and replay memory: see auth_limit.h. */
#include "auth_limit.h"

#include <stdlib.h>
#include <string.h>

/* A fixed table: an attacker who rotates keys (addresses) pushes out old windows, never grows
 * the hub; the shared budget for unknown credentials is what rotation cannot escape. */
#define FAIL_SLOTS 4096
#define FAIL_PROBE 8
#define REPLAY_BUCKETS 4096

struct fail_slot {
	char key[80];
	int64_t start; /* window start; 0: free */
	int count;
};

struct replay_host {
	char host[65];
	int64_t floor; /* refused at or below: the newest time forgotten */
	int n;
	int64_t t[AUTH_REPLAY_SLOTS];
	uint64_t d[AUTH_REPLAY_SLOTS];
	struct replay_host *next;
};

struct auth_limit {
	struct fail_slot fails[FAIL_SLOTS];
	int64_t unknown_start;
	int unknown_count;
	struct replay_host *hosts[REPLAY_BUCKETS];
};

static uint64_t limit_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

struct auth_limit *auth_limit_new(void)
{
	return calloc(1, sizeof(struct auth_limit));
}

void auth_limit_free(struct auth_limit *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < REPLAY_BUCKETS; i++) {
		while (l->hosts[i]) {
			struct replay_host *n = l->hosts[i]->next;
			free(l->hosts[i]);
			l->hosts[i] = n;
		}
	}
	free(l);
}

static int window_live(int64_t start, int64_t now)
{
	return start && now - start < AUTH_LIMIT_WINDOW_MS;
}

static struct fail_slot *fail_find(const struct auth_limit *l, const char *key, int64_t now)
{
	size_t at = (size_t)(limit_hash(key) % FAIL_SLOTS);

	for (int i = 0; i < FAIL_PROBE; i++) {
		const struct fail_slot *s = &l->fails[(at + (size_t)i) % FAIL_SLOTS];
		if (window_live(s->start, now) && strncmp(s->key, key, sizeof(s->key) - 1) == 0)
			return (struct fail_slot *)s;
	}
	return NULL;
}

int auth_limit_fail(struct auth_limit *l, const char *key, int64_t now)
{
	struct fail_slot *s = fail_find(l, key, now), *victim = NULL;
	size_t at = (size_t)(limit_hash(key) % FAIL_SLOTS);

	if (s)
		return ++s->count;
	/* A free or ended slot, else the oldest window of the probe run. */
	for (int i = 0; i < FAIL_PROBE; i++) {
		struct fail_slot *c = &l->fails[(at + (size_t)i) % FAIL_SLOTS];
		if (!window_live(c->start, now)) {
			victim = c;
			break;
		}
		if (!victim || c->start < victim->start)
			victim = c;
	}
	memset(victim, 0, sizeof(*victim));
	strncpy(victim->key, key, sizeof(victim->key) - 1);
	victim->start = now ? now : 1;
	return victim->count = 1;
}

int auth_limit_count(const struct auth_limit *l, const char *key, int64_t now)
{
	const struct fail_slot *s = fail_find(l, key, now);

	return s ? s->count : 0;
}

int64_t auth_limit_wait_ms(const struct auth_limit *l, const char *key, int64_t now)
{
	const struct fail_slot *s = fail_find(l, key, now);

	return s ? s->start + AUTH_LIMIT_WINDOW_MS - now : 0;
}

int auth_limit_fail_unknown(struct auth_limit *l, int64_t now)
{
	if (!window_live(l->unknown_start, now)) {
		l->unknown_start = now ? now : 1;
		l->unknown_count = 0;
	}
	return ++l->unknown_count;
}

int auth_limit_count_unknown(const struct auth_limit *l, int64_t now)
{
	return window_live(l->unknown_start, now) ? l->unknown_count : 0;
}

static struct replay_host **replay_slot(struct auth_limit *l, const char *host)
{
	struct replay_host **p = &l->hosts[limit_hash(host) % REPLAY_BUCKETS];

	while (*p && strcmp((*p)->host, host) != 0)
		p = &(*p)->next;
	return p;
}

int auth_replay_check(struct auth_limit *l, const char *host, int64_t t, uint64_t d)
{
	struct replay_host **p = replay_slot(l, host), *r = *p;
	int oldest = 0;

	if (!r) {
		if (strlen(host) >= sizeof(r->host) || !(r = calloc(1, sizeof(*r))))
			return AUTH_REPLAY_STALE; /* refused rather than unguarded */
		strcpy(r->host, host);
		*p = r;
	}
	if (t <= r->floor)
		return AUTH_REPLAY_STALE;
	for (int i = 0; i < r->n; i++) {
		if (r->t[i] == t && r->d[i] == d)
			return AUTH_REPLAY_SEEN;
		if (r->t[i] < r->t[oldest])
			oldest = i;
	}
	if (r->n < AUTH_REPLAY_SLOTS) {
		oldest = r->n++;
	} else {
		/* Full: forget the oldest, and refuse from now on anything not newer than it,
		 * since it could no longer be recognised. */
		if (r->t[oldest] >= t)
			return AUTH_REPLAY_STALE;
		r->floor = r->t[oldest];
	}
	r->t[oldest] = t;
	r->d[oldest] = d;
	return AUTH_REPLAY_OK;
}

int auth_time_ok(int64_t t, int64_t now)
{
	return t <= now + AUTH_CLOCK_SKEW_MS && t >= now - AUTH_CLOCK_SKEW_MS;
}
