/* One hub: registry, task engine and API on a loop it is given; no globals. */
#ifndef OUTPOST_HUB_HUB_H
#define OUTPOST_HUB_HUB_H

#include <jansson.h>
#include <stddef.h>

#include "core/log.h"

struct loop;
struct hub;

json_t *hub_conf_defaults(void);
int hub_conf_check(const json_t *conf, char *msg, size_t msglen);

int hub_new(struct loop *loop, json_t *conf, struct logger *log, struct hub **out, char *msg,
            size_t msglen);
int hub_reload(struct hub *h, json_t *conf, char *msg, size_t msglen);
void hub_shutdown(struct hub *h, void (*done)(void *arg), void *arg);
void hub_free(struct hub *h);
unsigned hub_port(const struct hub *h);

#endif
