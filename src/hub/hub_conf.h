/* The hub's configuration as a typed struct, read once from the checked file (hub_conf.c) and
 * swapped whole on reload. Code reads members, never paths. To add a key: a member here, one
 * row in hub_schema (hub_conf.c), a line in docs/config.md; tests/hub/hub_conf_test.c fails
 * when the two disagree. Every member is 8 bytes or a multiple (int64_t for integers and
 * booleans, pointers; core/conf.h says which type a row fills). */
#ifndef OUTPOST_HUB_CONF_H
#define OUTPOST_HUB_CONF_H

#include <jansson.h>
#include <stdint.h>

#include "core/conf.h"

/* One element of remote_write. */
struct hub_conf_rwrite {
	const char *url, *bearer_token_file;
	int64_t timeout_ms, max_samples, queue_samples;
};

struct hub_conf {
	struct conf_head head;
	const char *listen, *state_dir;
	int64_t tls;
	struct conf_strv tls_names;
	struct conf_log log;
	struct {
		int64_t body_limit, conn_limit, per_ip_limit, conn_timeout_s, unauth_per_ip_limit,
		    unauth_timeout_s, admit_rate, admit_unread;
	} api;
	struct {
		int64_t beat_ms, missed_beats, poll_wait_s;
	} agents;
	struct {
		int64_t default_timeout_ms, default_expiry_ms, keep_days;
	} tasks;
	struct {
		int64_t keep_days;
	} events, audit;
	struct {
		int64_t raw_hours, rollup_1m_days, rollup_1h_days, checkpoint_s, query_max_running,
		    query_timeout_s;
	} metrics;
	struct {
		const char *backend, *dsn; /* backend NULL: sqlite */
	} store;
	struct {
		int64_t pending_max, pending_per_addr, pending_keep_days, facts_max_bytes;
	} enroll;
	struct {
		int64_t max_failures_per_min, max_unknown_per_min;
	} auth;
	struct {
		const char *connect, *secret_file; /* connect NULL: embedded mode */
		int64_t session_timeout_ms;
		const char *hub_id, *hub_url;
		int64_t single_hub; /* -1: not set */
	} zk;
	struct {
		const char *file; /* "" or NULL: none */
		int64_t interval_s;
		const char *webhook_secret_file; /* NULL: <state_dir>/webhook.secret */
	} rules;
	struct {
		int64_t keep_days;
	} alerts;
	struct conf_list remote_write; /* of struct hub_conf_rwrite */
	struct {
		const char *smtp_url, *from, *starttls, *username, *password_file, *ca_file;
		int64_t timeout_s, retry_s, retry_max_s, max_attempts;
	} mail; /* smtp_url NULL: no mail (mail.c) */
	struct {
		struct conf_strv mail_to;
		int64_t every_s, window_hours;
	} report;
};

/* The kind for conf_new, conf_reload, conf_free (core/conf.h): its rows, its struct, its
 * checks beyond types and ranges. */
extern const struct conf_kind hub_conf_kind;

#endif
