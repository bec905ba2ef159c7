/* The fleet report (report.c): hosts up and down and what changed, agent versions, the top
 * hosts by CPU, memory and disk, file systems that fill within 7 days at their current rate,
 * alerts fired, tasks run and their failures; as HTML (GET /api/v1/report, the mail), as JSON
 * (?format=json: `outpost report` draws it in the terminal), and mailed on a schedule
 * (report.every_s to report.mail_to). Loop thread only. docs/reports.md. */
#ifndef OUTPOST_HUB_REPORT_H
#define OUTPOST_HUB_REPORT_H

#include <jansson.h>
#include <stdint.h>

struct hub;
struct httpd_req;
struct buf;

/* The report's data over the last hours; a new object (docs/reports.md has its shape). */
int report_build(struct hub *h, int hours, json_t **out);
/* The report as one HTML page; everything hosts said is escaped. */
int report_html(const json_t *rep, struct buf *b);
/* Queues the report by mail to report.mail_to (id: the caller's, may be NULL). */
int report_mail(struct hub *h, const char *id, const char *origin, char *msg, size_t msglen);
/* Every second: mails the report when report.every_s has passed (leading hub). */
void report_tick(struct hub *h);

void report_api_get(void *ctx, struct httpd_req *req);
void report_api_mail(void *ctx, struct httpd_req *req);

#endif
