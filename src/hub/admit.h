/* Admission control for agents' new connections (docs/agent-link.md, Admission): past a rate,
 * the first request of a new agent connection is answered busy with a Retry-After that spreads
 * the refused over the seconds to come, instead of letting a storm (a fleet after a hub
 * restart) swamp the hub's one thread. Beside it, what the hub's backlog says (its loop late,
 * connections waiting to be accepted) and what gets through its door, for /metrics. */
#ifndef OUTPOST_HUB_ADMIT_H
#define OUTPOST_HUB_ADMIT_H

#include <stdint.h>

struct hub;
struct httpd_req;

struct admit {
	double rate;             /* new agent connections' first requests per second; 0: no bound */
	double tokens;           /* a bucket of one second's worth */
	int64_t last_ms;         /* monotonic, when tokens was last filled */
	int64_t slot_ms;         /* the latest retry time handed out (monotonic), or 0 */
	unsigned long long busy; /* answered busy since the start */
	int64_t busy_ms;         /* the last time (monotonic), or 0 */
	/* How late the hub's loop is: the once-a-second tick's delay past its second, the last
	 * one's and the worst of the last ADMIT_LAG_WINDOW ticks (ms). */
	int64_t tick_ms, lag_ms, lag_ring[8];
	unsigned lag_at;
	/* First requests of new connections read in the current second (admitted or not), and
	 * per second lately (a moving average); whether the hub is behind (admit_tick). */
	unsigned read_tick;
	double measured;
	int behind;
};

/* Once a second, from the hub's tick: measures the loop's lateness and what was read, and
 * reads the server's backlog. */
void admit_tick(struct hub *h);
/* The worst lateness of the loop in the last ticks (ms). */
int64_t admit_lag_ms(const struct admit *a);

void admit_configure(struct admit *a, double rate);
/* For a request of an agent's connection not yet admitted (enrollment, a signed agent route):
 * 0 to go on, or OUTPOST_E_BUSY after answering busy with Retry-After (seconds). */
int admit_request(struct hub *h, struct httpd_req *req);
/* Until when (monotonic ms) agents told to come back may still be away: the last retry time
 * handed out plus a second of their jitter; 0 if none was. */
int64_t admit_away_until_ms(const struct admit *a);

#endif
