/* Typed Prometheus text: see prom.h. */
#include "prom.h"
#include "httpd.h"

#include <outpost/plugin.h>
#include <string.h>

/* What the handlers leave undescribed, said once here. Families not listed get their type
 * from prom_type and a help line naming where they are documented. */
static const struct {
	const char *family, *type, *help;
} prom_catalog[] = {
    {"outpost_agent_uptime_seconds", "gauge", "Seconds since the agent started."},
    {"outpost_agent_resident_memory_bytes", "gauge", "Resident memory of the agent process."},
    {"outpost_agent_calls_failed_total", "counter", "Calls that ended in an error envelope."},
    {"outpost_agent_calls_busy_total", "counter",
     "Calls refused busy: over dispatch.max_inflight."},
    {"outpost_agent_calls_timeout_total", "counter", "Calls that passed their deadline."},
    {"outpost_agent_calls_replayed_total", "counter",
     "Calls answered from the ledger: an id seen before, not run again."},
    {"outpost_agent_calls_inflight", "gauge", "Calls queued or running now."},
    {"outpost_agent_hub_reconnects_total", "counter", "Connections to the hub made again."},
    {"outpost_agent_hub_tasks_received_total", "counter", "Tasks the hub delivered."},
    {"outpost_agent_hub_tasks_replayed_total", "counter",
     "Tasks delivered again whose outcome the ledger had: not run again."},
    {"outpost_agent_hub_results_sent_total", "counter", "Task results the hub acknowledged."},
    {"outpost_agent_hub_results_dropped_total", "counter",
     "Task results given up on (the hub refused them for good)."},
    {"outpost_agent_hub_spool_bytes", "gauge", "Bytes of metric batches waiting for the hub."},
    {"outpost_hub_info", "gauge", "Hub version, in the version label; always 1."},
    {"outpost_hub_tasks_running", "gauge", "Tasks not yet done."},
    {"outpost_hub_tasks_created_total", "counter", "Tasks created."},
    {"outpost_hub_task_copies_signed_total", "counter", "Per-host task copies signed."},
    {"outpost_hub_results_total", "counter", "Per-host results agents reported."},
    {"outpost_hub_enrollments_total", "counter", "Agent enrollments accepted or pending."},
    {"outpost_hub_auth_refused_total", "counter", "Requests refused for their credentials."},
    {"outpost_hub_requests_total", "counter", "Requests answered."},
};

#define PROM_NCATALOG (sizeof(prom_catalog) / sizeof(prom_catalog[0]))

static int prom_catalog_find(const char *family)
{
	for (size_t i = 0; i < PROM_NCATALOG; i++)
		if (strcmp(prom_catalog[i].family, family) == 0)
			return (int)i;
	return -1;
}

static int prom_ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

const char *prom_type(const char *family)
{
	int i = prom_catalog_find(family);

	if (i >= 0)
		return prom_catalog[i].type;
	return prom_ends_with(family, strlen(family), "_total") ? "counter" : "gauge";
}

/* Help for a family no handler described: the catalog's, else where it is documented. */
static int prom_put_help(struct buf *out, const char *family)
{
	int i = prom_catalog_find(family);

	if (i >= 0)
		return buf_printf(out, "# HELP %s %s\n", family, prom_catalog[i].help);
	if (strncmp(family, "host_", 5) == 0)
		return buf_printf(out,
		                  "# HELP %s Host metric as the agents measure it (outpost "
		                  "docs/metrics.md).\n",
		                  family);
	if (strncmp(family, "outpost_", 8) == 0)
		return buf_printf(
		    out, "# HELP %s Outpost's own metric (outpost docs/metrics.md).\n", family);
	return buf_printf(out,
	                  "# HELP %s Application metric pushed on the hosts (outpost "
	                  "docs/metrics.md).\n",
	                  family);
}

/* The families seen so far, with what they declared: a small list, the handlers' output has
 * tens of families (and /federate's come sorted, so only the last one matters there). */
struct prom_seen {
	struct buf names; /* "\n"-separated entries "<flags><name>" */
};

enum { PROM_HELP = 1, PROM_TYPE = 2, PROM_SAMPLED = 4, PROM_COMPOSITE = 8 };

/* The flags byte of name in s, or NULL. */
static char *prom_seen_find(struct prom_seen *s, const char *name, size_t n)
{
	char *p = s->names.data, *end = p ? p + s->names.len : NULL;

	while (p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if ((size_t)(nl - p - 1) == n && memcmp(p + 1, name, n) == 0)
			return p;
		p = nl + 1;
	}
	return NULL;
}

static char *prom_seen_get(struct prom_seen *s, const char *name, size_t n)
{
	char *f = prom_seen_find(s, name, n);
	size_t off = s->names.len;

	if (f)
		return f;
	if (buf_append(&s->names, "@", 1) < 0 || buf_append(&s->names, name, n) < 0 ||
	    buf_append(&s->names, "\n", 1) < 0)
		return NULL;
	s->names.data[off] = '@'; /* flags start at 0x40 so the byte is never '\n' */
	return s->names.data + off;
}

int prom_complete(const char *text, size_t len, struct buf *out)
{
	struct prom_seen seen = {BUF_INIT};
	const char *p = text, *end = text + len;
	int rc = -1;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *f;

		if (ll > 7 && (memcmp(p, "# HELP ", 7) == 0 || memcmp(p, "# TYPE ", 7) == 0)) {
			size_t n = strcspn(p + 7, " \n");
			if (!(f = prom_seen_get(&seen, p + 7, n)))
				goto out;
			*f |= p[2] == 'H' ? PROM_HELP : PROM_TYPE;
			if (p[2] == 'T' &&
			    (memmem(p, ll, " histogram", 10) || memmem(p, ll, " summary", 8)))
				*f |= PROM_COMPOSITE;
		} else if (ll > 0 && p[0] != '#') {
			size_t n = strcspn(p, "{ \n");
			char name[256];
			/* _bucket, _sum, _count of a declared histogram or summary: its family. */
			static const char *const parts[] = {"_bucket", "_sum", "_count"};
			for (size_t i = 0; i < 3; i++) {
				size_t k = strlen(parts[i]);
				char *base;
				if (prom_ends_with(p, n, parts[i]) &&
				    (base = prom_seen_find(&seen, p, n - k)) &&
				    (*base & PROM_COMPOSITE)) {
					n -= k;
					break;
				}
			}
			if (!(f = prom_seen_get(&seen, p, n)))
				goto out;
			if (!(*f & PROM_SAMPLED) && n < sizeof(name)) {
				memcpy(name, p, n);
				name[n] = '\0';
				f = prom_seen_find(&seen, p, n); /* the buffer may have moved */
				if ((!(*f & PROM_HELP) && prom_put_help(out, name) < 0) ||
				    (!(*f & PROM_TYPE) &&
				     buf_printf(out, "# TYPE %s %s\n", name, prom_type(name)) < 0))
					goto out;
				*f |= PROM_HELP | PROM_TYPE | PROM_SAMPLED;
			}
		}
		if (buf_append(out, p, ll) < 0 || buf_append(out, "\n", 1) < 0)
			goto out;
		p += ll + (nl ? 1 : 0);
	}
	rc = 0;
out:
	buf_free(&seen.names);
	return rc;
}

void prom_respond(struct httpd_req *req, const char *text, size_t len)
{
	struct buf out = BUF_INIT;

	if (prom_complete(text ? text : "", text ? len : 0, &out) < 0 || !out.data) {
		buf_free(&out);
		if (!text || len == 0) {
			httpd_respond_text(req, 200, "text/plain; version=0.0.4", "", 0);
			return;
		}
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	httpd_respond_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
	buf_free(&out);
}
