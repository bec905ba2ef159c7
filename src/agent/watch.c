/* inotify multiplexer: see watch.h. Several ids may share one kernel watch descriptor (two
 * plugins watching one path); each gets the events that match its own mask. */
#include "watch.h"
#include "core/loop.h"

#include <errno.h>
#include <limits.h>
#include <outpost/plugin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct watch_ent {
	int id;
	int wd;
	uint32_t mask;
	char *path;
	watch_fn fn;
	void *arg;
	struct watch_ent *next;
};

struct watch {
	struct loop *loop;
	struct loop_fd *h;
	int fd;
	int next_id;
	struct watch_ent *ents;
};

static void watch_on_read(void *arg, uint32_t events)
{
	struct watch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)events;
	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			for (struct watch_ent *e = w->ents; e; e = e->next)
				if (e->wd == ev->wd && (ev->mask & (e->mask | IN_Q_OVERFLOW)))
					e->fn(e->arg, e->path, ev->mask, ev->len ? ev->name : NULL);
			p += sizeof(*ev) + ev->len;
		}
	}
}

int watch_new(struct loop *loop, struct watch **out)
{
	struct watch *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return OUTPOST_E_INTERNAL;
	w->loop = loop;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		free(w);
		return OUTPOST_E_UNAVAILABLE;
	}
	rc = loop_fd_add(loop, w->fd, 0x001 /* EPOLLIN */, watch_on_read, w, &w->h);
	if (rc < 0) {
		close(w->fd);
		free(w);
		return OUTPOST_E_INTERNAL;
	}
	*out = w;
	return 0;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	while (w->ents) {
		struct watch_ent *e = w->ents;
		w->ents = e->next;
		free(e->path);
		free(e);
	}
	loop_fd_del(w->loop, w->h);
	close(w->fd);
	free(w);
}

int watch_add(struct watch *w, const char *path, uint32_t mask, watch_fn fn, void *arg)
{
	struct watch_ent *e;
	uint32_t all = mask;
	int wd;

	/* The kernel keeps one mask per path: add ours to the masks already watching it. */
	for (e = w->ents; e; e = e->next)
		if (strcmp(e->path, path) == 0)
			all |= e->mask;
	wd = inotify_add_watch(w->fd, path, all);
	if (wd < 0)
		return errno == ENOENT   ? OUTPOST_E_NOT_FOUND
		       : errno == EACCES ? OUTPOST_E_FORBIDDEN
		                         : OUTPOST_E_UNAVAILABLE;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(path))) {
		free(e);
		return OUTPOST_E_INTERNAL;
	}
	e->id = ++w->next_id;
	e->wd = wd;
	e->mask = mask;
	e->fn = fn;
	e->arg = arg;
	e->next = w->ents;
	w->ents = e;
	return e->id;
}

void watch_del(struct watch *w, int id)
{
	struct watch_ent **pp, *e;
	int wd = -1, shared = 0;

	for (pp = &w->ents; (e = *pp); pp = &e->next)
		if (e->id == id) {
			*pp = e->next;
			wd = e->wd;
			free(e->path);
			free(e);
			break;
		}
	if (wd < 0)
		return;
	for (e = w->ents; e; e = e->next)
		if (e->wd == wd)
			shared = 1;
	if (!shared)
		inotify_rm_watch(w->fd, wd);
}
