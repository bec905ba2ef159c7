/* The CLI's HTTP client for the hub's operator API (libcurl easy interface): TLS trust by a CA
 * file or a pinned certificate fingerprint, the Bearer token, timeouts, and the one envelope.
 * It never prints: failures come back as a code and a message for the caller to show once. */
#ifndef OUTPOST_CLI_CLIENT_H
#define OUTPOST_CLI_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#define CLIENT_CONNECT_TIMEOUT_S 10
#define CLIENT_TIMEOUT_S 300    /* a whole ordinary request */
#define CLIENT_STALL_S 60       /* no byte at all for this long: give up */
#define CLIENT_POLL_MARGIN_S 30 /* a long-poll may take its wait plus this */
#define CLIENT_MAX_ANSWER (512u << 20)

struct client_conf {
	const char *hub;   /* base URL: https://hub.example:8443 (a path prefix is kept) */
	const char *token; /* may be NULL: no Authorization header */
	const char *ca;    /* CA file (PEM) to verify the hub with; NULL: the system's */
	const char *pin;   /* "sha256:HEX" of the hub's certificate; NULL: none */
	/* With ca or pin, only they are trusted: the system's CA store is not even read. */
	volatile sig_atomic_t *interrupted; /* set by SIGINT: abort the transfer; may be NULL */
};

enum client_rc {
	CLIENT_OK = 0,
	CLIENT_E_HUB = -1,   /* the hub answered an error envelope: code and message */
	CLIENT_E_NET = -2,   /* no usable answer: connection, TLS, timeout, not an envelope */
	CLIENT_E_INTR = -3,  /* interrupted by the user */
	CLIENT_E_SETUP = -4, /* bad configuration (URL, pin) or out of memory */
};

struct client_err {
	char code[32];     /* the hub's error code ("not_found"); empty for other failures */
	char message[640]; /* what happened, for people */
	int retry;         /* worth trying again: connection failed or reset, busy, unavailable */
	int sent;          /* the request left (in part or whole) and no envelope came back: the
	                    * hub may have acted on it */
};

struct client;

/* Checks the configuration (URL scheme, pin syntax, a readable CA file). 0 and a new client, or
 * CLIENT_E_SETUP with err set. Strings in conf are copied. */
int client_open(const struct client_conf *conf, struct client **out, struct client_err *err);
void client_free(struct client *cl); /* NULL is a no-op */

/* One request: method "GET" or "POST", path with query ("/api/v1/tasks?limit=5"), body NULL
 * for GET. wait_s > 0 marks a long-poll that may legitimately take that long. On success 0
 * and *result gets a new reference to the envelope's result (JSON null when it had none). */
int client_call(struct client *cl, const char *method, const char *path, const json_t *body,
                int wait_s, json_t **result, struct client_err *err);

#endif
