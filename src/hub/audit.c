/* The audit trail's one door (audit.h): what changed, who changed it, when. */
#include "audit.h"
#include "hub_impl.h"
#include "core/clk.h"

const char *audit_caller(struct httpd_req *req)
{
	struct hub_caller *c = httpd_req_data(req);
	return c ? c->name : "anonymous";
}

void audit_record(struct hub *h, struct httpd_req *req, const char *action, const char *target,
                  json_t *detail)
{
	audit_record_as(h, audit_caller(req), action, target, detail);
}

void audit_record_as(struct hub *h, const char *actor, const char *action, const char *target,
                     json_t *detail)
{
	if (h->store->ops->audit_add(h->store, actor, action, target, detail, clk_real_ms()) < 0)
		log_error(h->log, "audit", "cannot record %s %s", action, target);
	json_decref(detail);
}
