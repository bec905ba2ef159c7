/* The hub's mail (mail.c): a queue of messages kept in the store (records "mail"), delivered
 * over SMTP by libcurl (STARTTLS, AUTH) from a thread of its own, retried with a growing
 * delay, so that neither a slow server nor a hub restart loses a message. The config section
 * is "mail" (docs/config.md); in scale mode only the leading hub delivers. docs/mail.md. */
#ifndef OUTPOST_HUB_MAIL_H
#define OUTPOST_HUB_MAIL_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct httpd_req;
struct mail;

/* A message to queue; every string borrowed for the call only. */
struct mail_msg {
	const char *id;        /* the caller's (1..64 of A-Z a-z 0-9 . _ : -): a repeat queues
	                        * nothing more; NULL: one is made */
	const char *const *to; /* nto addresses, 1 to 50 */
	size_t nto;
	const char *subject;     /* UTF-8, no line break, at most 900 bytes */
	const char *text;        /* the text/plain body; at least one of text and html */
	const char *html;        /* the text/html body */
	const char *attach_name; /* optional attachment: file name, */
	const char *attach_type; /* MIME type ("text/html"), */
	const char *attach_data; /* UTF-8 text content, */
	size_t attach_len;       /* its bytes */
	const char *origin;      /* who asked ("report", "rule:<id>"): kept with the message */
};

/* Queues m for delivery: 0, or OUTPOST_E_BAD_ARGS (a field, or mail.smtp_url not set),
 * another OUTPOST_E_* from the store; msg says why. Delivery starts within a second (on the
 * leading hub) and is retried on failure: mail.retry_s, doubling up to mail.retry_max_s, at
 * most mail.max_attempts times. */
int mail_queue(struct hub *h, const struct mail_msg *m, char *msg, size_t msglen);

int mail_new(struct hub *h, struct mail **out);
/* Waits for a delivery under way (bounded by mail.timeout_s), then frees. NULL ok. */
void mail_free(struct mail *m);
/* Every second: collects a finished delivery, starts the next one that is due. */
void mail_tick(struct hub *h);
/* 1 when mail.smtp_url is set. */
int mail_configured(const struct hub *h);

/* GET /api/v1/mail: the queue and what was sent, without bodies (admin). */
void mail_api_list(void *ctx, struct httpd_req *req);

#endif
