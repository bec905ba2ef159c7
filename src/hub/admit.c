/* Admission control (admit.h): a token bucket over the first requests of agents' new
 * connections; the refused get a retry time from a schedule that admits them at the rate. */
#include "admit.h"
#include "hub_impl.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/httpd.h"

#include <stdio.h>
#include <string.h>

#define ADMIT_RETRY_MAX_S 300 /* a retry time never further than this */
/* Behind: the loop ran its tick this late, or this many connections wait in the kernel's
 * accept queue (the listen backlog is 1024). Not an old unread connection: a slow client (or
 * one that sends nothing) makes one whatever the hub does. */
#define ADMIT_BEHIND_LAG_MS 1000
#define ADMIT_BEHIND_ACCEPT_QUEUE 256

void admit_configure(struct admit *a, double rate)
{
	a->rate = rate;
	a->tokens = rate;
	a->last_ms = clk_mono_ms();
}

static int admit_guarded(const struct httpd_req *req)
{
	const struct httpd_route *rt = httpd_req_route(req);

	return rt && (rt->role == ROLE_AGENT || strcmp(rt->path, "/api/v1/enroll") == 0);
}

int admit_request(struct hub *h, struct httpd_req *req)
{
	struct admit *a = &h->admit;
	int64_t now = clk_mono_ms(), slot, wait_s;
	char ra[24];

	double rate = a->rate;

	if (a->rate <= 0 || httpd_req_admitted(req) || !admit_guarded(req))
		return 0;
	a->read_tick++;
	a->tokens += (double)(now - a->last_ms) * rate / 1000.0;
	if (a->tokens > rate)
		a->tokens = rate < 1 ? 1 : rate;
	a->last_ms = now;
	if (a->tokens >= 1) {
		a->tokens -= 1;
		httpd_req_admit(req);
		return 0;
	}
	/* Each refused request gets the next free place in a schedule at the rate: a herd of
	 * N comes back over N / rate seconds, not all at the next second. */
	slot = a->slot_ms > now ? a->slot_ms : now;
	slot += (int64_t)(1000.0 / rate) + 1;
	a->slot_ms = slot;
	wait_s = (slot - now + 999) / 1000;
	if (wait_s < 1)
		wait_s = 1;
	if (wait_s > ADMIT_RETRY_MAX_S)
		wait_s = ADMIT_RETRY_MAX_S;
	a->busy++;
	a->busy_ms = now;
	snprintf(ra, sizeof(ra), "%lld", (long long)wait_s);
	httpd_req_add_header(req, "Retry-After", ra);
	/* The agent comes back on this connection: its TLS handshake is not paid twice. */
	httpd_req_keep(req);
	httpd_respond_error(req, OUTPOST_E_BUSY,
	                    "the hub admits %.0f new agent connections a second and has more: "
	                    "retry after %lld s (Retry-After)",
	                    rate, (long long)wait_s);
	return OUTPOST_E_BUSY;
}

#define ADMIT_TICK_MS 1000
#define ADMIT_LAG_WINDOW (sizeof(((struct admit *)0)->lag_ring) / sizeof(int64_t))

void admit_tick(struct hub *h)
{
	struct admit *a = &h->admit;
	struct httpd_backlog b;
	int64_t now = clk_mono_ms(), span;

	span = a->tick_ms ? now - a->tick_ms : ADMIT_TICK_MS;
	a->lag_ms = span > ADMIT_TICK_MS ? span - ADMIT_TICK_MS : 0;
	a->tick_ms = now;
	a->lag_ring[a->lag_at++ % ADMIT_LAG_WINDOW] = a->lag_ms;
	/* How many new connections' first requests the hub read per second lately: what gets
	 * through its front door (accept, TLS handshake, headers) on this machine now. */
	a->measured =
	    0.5 * a->measured + 0.5 * (double)a->read_tick * 1000.0 / (double)(span > 0 ? span : 1);
	a->read_tick = 0;
	httpd_backlog(h->httpd, &b);
	a->behind =
	    admit_lag_ms(a) > ADMIT_BEHIND_LAG_MS || b.accept_queue >= ADMIT_BEHIND_ACCEPT_QUEUE;
}

int64_t admit_lag_ms(const struct admit *a)
{
	int64_t worst = 0;

	for (size_t i = 0; i < ADMIT_LAG_WINDOW; i++)
		if (a->lag_ring[i] > worst)
			worst = a->lag_ring[i];
	return worst;
}

int64_t admit_away_until_ms(const struct admit *a)
{
	return a->slot_ms ? a->slot_ms + 1000 : 0;
}
