/* Serves the web console: one page and its scripts, styles and uPlot, all from the hub's own
 * binary. Every answer carries a strict Content-Security-Policy: scripts and styles only from
 * files of this origin (no inline code, no eval), API calls only to this origin, no framing.
 * The console holds no data and no route of its own: it calls /api/v1 with the token. */
#include "console.h"
#include "core/err.h"
#include "core/httpd.h"

#include <string.h>

#define CONSOLE_CSP                                                                                \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void console_send(struct httpd_req *req, const char *name)
{
	for (const struct console_asset *a = console_assets; a->name; a++) {
		if (strcmp(a->name, name))
			continue;
		if (httpd_req_add_header(req, "Content-Security-Policy", CONSOLE_CSP) < 0 ||
		    httpd_req_add_header(req, "X-Content-Type-Options", "nosniff") < 0) {
			httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
			return;
		}
		httpd_respond_text(req, 200, a->type, (const char *)a->data, a->len);
		return;
	}
	httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "no console file '%.64s'", name);
}

void console_page(void *ctx, struct httpd_req *req)
{
	(void)ctx;
	console_send(req, "index.html");
}

void console_file(void *ctx, struct httpd_req *req)
{
	(void)ctx;
	console_send(req, httpd_req_arg(req, 0));
}
