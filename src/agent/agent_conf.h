/* The agent's configuration as a typed struct, read once from the checked file (agent_conf.c)
 * and swapped whole on reload. Code reads members, never paths. To add a key: a member here,
 * one row in agent_schema (agent_conf.c), a line in docs/config.md; tests/agent/
 * agent_conf_test.c fails when the two disagree. Every member is 8 bytes or a multiple
 * (int64_t for integers and booleans, pointers; conf.h says which type a row fills). */
#ifndef OUTPOST_AGENT_CONF_H
#define OUTPOST_AGENT_CONF_H

#include <jansson.h>
#include <stdint.h>

#include "core/conf.h"
#include "link.h"

/* hub.url, hub.token, hub.ca, hub.fingerprint: how an agent reaches and trusts its hub; the
 * same section in outpost-sim, whose virtual agents are agents (sim_conf.c). */
struct agent_hub_link {
	const char *url, *token, *ca, *fingerprint;
};
#define AGENT_HUB_LINK_ROWS(T)                                                                     \
	CONF_KEY_AT(T, "hub.url", hub.link.url, CONF_STRING, 0, 0, NULL, 0,                        \
	            "the hub, https://HOST:PORT; none: local only"),                               \
	    CONF_KEY_AT(T, "hub.token", hub.link.token, CONF_STRING, 0, 0, NULL, 0,                \
	                "enrollment token (outpost token create --enroll)"),                       \
	    CONF_KEY_AT(T, "hub.ca", hub.link.ca, CONF_STRING, 0, 0, NULL, 0,                      \
	                "CA file for the hub's TLS; none: pin on first use"),                      \
	    CONF_KEY_AT(T, "hub.fingerprint", hub.link.fingerprint, CONF_STRING, 0, 0, NULL, 0,    \
	                "sha256:HEX the first-use certificate must have")

/* Sets lc's hub fields from h (borrowed: valid while h lives). */
static inline void agent_conf_link(struct link_config *lc, const struct agent_hub_link *h)
{
	lc->url = h->url;
	lc->token = h->token;
	lc->ca = h->ca;
	lc->fingerprint = h->fingerprint;
}

struct agent_conf {
	struct conf_head head;
	const char *listen, *socket, *state_dir, *plugin_dir;
	struct conf_log log;
	struct {
		int64_t body_limit, max_depth, conn_limit, conn_timeout_s;
		const char *group;
		struct conf_strv group_ops;
	} api;
	struct {
		int64_t workers, max_inflight, default_timeout_ms;
		const json_t *timeouts; /* {"plugin.op": ms} */
	} dispatch;
	struct {
		int64_t keep_days, max_rows;
	} ledger;
	const json_t *plugins; /* {"name": {section}}: each plugin's section, handed to it */
	struct {
		struct agent_hub_link link;
		const char *host_id, *mode;
		int64_t spool_max_bytes, refused_retry_s;
	} hub;
	struct {
		const char *connect;
		int64_t session_timeout_ms; /* 0: the hub's */
	} zk;
};

/* The kind for conf_new, conf_reload, conf_free (core/conf.h): its rows, its struct, its
 * checks beyond types and ranges. */
extern const struct conf_kind agent_conf_kind;

#endif
