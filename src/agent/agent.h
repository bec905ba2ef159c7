/* One agent: its state directory, database, ledger, plugins, dispatcher and local API, all on
 * a loop it is given. No globals: several agents can share a process and a loop (outpost-sim). */
#ifndef OUTPOST_AGENT_AGENT_H
#define OUTPOST_AGENT_AGENT_H

#include <jansson.h>
#include <outpost/plugin.h>

#include "core/log.h"

struct loop;
struct agent;

/* The effective config: defaults for this user (root: /etc, /var/lib; others: a local
 * directory), then the file, then flags. New reference. */
json_t *agent_conf_defaults(void);
/* Checks a whole effective config. 0 or OUTPOST_E_BAD_ARGS with msg. */
int agent_conf_check(const json_t *conf, char *msg, size_t msglen);

/* builtins: NULL-terminated table of built-in plugins (borrowed, static). conf is borrowed.
 * log is borrowed and outlives the agent. */
int agent_new(struct loop *loop, const struct outpost_plugin *const *builtins, json_t *conf,
              struct logger *log, struct agent **out, char *msg, size_t msglen);
/* Applies what can change without a restart (the rows with CONF_RELOAD in agent_conf.c: log
 * level, plugin sections, timeouts, ledger bounds, api.group_ops); a change of another key is
 * logged and waits for a restart. */
int agent_reload(struct agent *a, json_t *conf, char *msg, size_t msglen);
/* Stops taking calls; done(arg) runs on the loop when every call in flight has answered, or
 * after grace_ms. */
void agent_shutdown(struct agent *a, int64_t grace_ms, void (*done)(void *arg), void *arg);
void agent_free(struct agent *a); /* NULL ok */
unsigned agent_port(const struct agent *a);
/* The token TCP callers of the local API must show (borrowed; NULL without TCP). */
const char *agent_api_token(const struct agent *a);

#endif
