/* What auth.c remembers between requests, in memory and bounded: failed credentials counted
 * per key (an address, a token id, a host id) and for unknown credentials as a whole, in
 * one-minute windows; and, per host, the agent requests it recently accepted, so that one
 * cannot be replayed (docs/protocol.md, "Replay"). Pure: no hub, no clock of its own. */
#ifndef OUTPOST_HUB_AUTH_LIMIT_H
#define OUTPOST_HUB_AUTH_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_LIMIT_WINDOW_MS 60000
/* Accepted requests remembered per host: more than an agent has in flight at once (its poll,
 * beat, results and metrics), so honest reordering never reaches the floor. */
#define AUTH_REPLAY_SLOTS 32

struct auth_limit;

struct auth_limit *auth_limit_new(void);    /* NULL on OOM */
void auth_limit_free(struct auth_limit *l); /* NULL ok */

/* Counts one failure under key (up to 79 bytes are kept) at now (monotonic ms); returns the
 * failures under key in the current window, this one included. */
int auth_limit_fail(struct auth_limit *l, const char *key, int64_t now);
/* Failures under key in the current window (0 when none or the window is over). */
int auth_limit_count(const struct auth_limit *l, const char *key, int64_t now);
/* The same two for the one budget every unknown credential shares, whatever its address. */
int auth_limit_fail_unknown(struct auth_limit *l, int64_t now);
int auth_limit_count_unknown(const struct auth_limit *l, int64_t now);
/* Milliseconds until key's window ends (0: none open): what a refused client waits. */
int64_t auth_limit_wait_ms(const struct auth_limit *l, const char *key, int64_t now);

/* How far an agent's clock (X-Outpost-Time) may be from the hub's, either way: a signed request
 * outside it is refused as "clock skew" (docs/protocol.md). The bound also keeps the replay
 * memory small: a request older than it is refused whatever the memory holds. */
#define AUTH_CLOCK_SKEW_MS (300 * 1000)
/* 1 when a request signed at t (the sender's ms) is within AUTH_CLOCK_SKEW_MS of now (the
 * hub's ms), the bound included. */
int auth_time_ok(int64_t t, int64_t now);

enum {
	AUTH_REPLAY_OK = 0,
	AUTH_REPLAY_SEEN = -1,  /* this very request was accepted already */
	AUTH_REPLAY_STALE = -2, /* older than what the host's memory still covers */
};

/* An agent request of host signed at t (the sender's ms) whose signed text has digest d:
 * AUTH_REPLAY_OK (and remembered) when neither the same (t, d) was accepted before nor t is
 * at or below the host's floor (the time of the newest request forgotten to make room). */
int auth_replay_check(struct auth_limit *l, const char *host, int64_t t, uint64_t d);

#endif
