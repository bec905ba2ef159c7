/* The audit trail's one door: every change an operator (or an enrollment token) makes is
 * recorded here, under the caller auth named. */
#ifndef OUTPOST_HUB_AUDIT_H
#define OUTPOST_HUB_AUDIT_H

#include <jansson.h>

struct hub;
struct httpd_req;

/* Who is calling, as the audit log names them ("token:<id>", "host:<id>", "anonymous"). */
const char *audit_caller(struct httpd_req *req);
/* Records action on target by req's caller, with detail (stolen, may be NULL). A store that
 * refuses is logged; the change itself stands. */
void audit_record(struct hub *h, struct httpd_req *req, const char *action, const char *target,
                  json_t *detail);
/* The same for what the hub does by itself on someone's behalf (a flow's step: "flow:<run>",
 * a rule's action: "rule:<id>"). */
void audit_record_as(struct hub *h, const char *actor, const char *action, const char *target,
                     json_t *detail);

#endif
