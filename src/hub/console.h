/* The web console's files, compiled into the hub (console_assets.c, made at build time from
 * src/console/ and uPlot from node_modules/), and the routes that serve them. */
#ifndef OUTPOST_HUB_CONSOLE_H
#define OUTPOST_HUB_CONSOLE_H

#include <stddef.h>

struct httpd_req;

struct console_asset {
	const char *name; /* the path under /console/: "app.js" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct console_asset console_assets[]; /* ends with a NULL name */

/* GET /console (the page) and GET /console/<name> (its files), for anyone: they hold no
 * data; everything the page shows it asks of the API with the operator's token. GET /
 * answers the page too, so the hub's address is the console's. */
void console_page(void *ctx, struct httpd_req *req);
void console_file(void *ctx, struct httpd_req *req);

#endif
