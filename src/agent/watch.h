/* One inotify fd on the agent's loop, shared by every plugin's file-notify watches. */
#ifndef OUTPOST_AGENT_WATCH_H
#define OUTPOST_AGENT_WATCH_H

#include <stdint.h>

struct loop;
struct watch;

typedef void (*watch_fn)(void *arg, const char *path, uint32_t mask, const char *name);

int watch_new(struct loop *loop, struct watch **out);
void watch_free(struct watch *w); /* NULL ok */
/* Returns an id > 0, or a negative OUTPOST_E_* code. */
int watch_add(struct watch *w, const char *path, uint32_t mask, watch_fn fn, void *arg);
void watch_del(struct watch *w, int id);

#endif
