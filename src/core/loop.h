/* The event loop: epoll for fds, a timer heap for the wait timeout, and a thread-safe post
 * queue (eventfd) so worker threads hand results back to the loop thread. Everything but
 * loop_post() must be called on the loop's own thread. Several daemons may share one loop. */
#ifndef OUTPOST_LOOP_H
#define OUTPOST_LOOP_H

#include <stdint.h>

struct loop;
struct loop_fd;
struct loop_timer;

typedef void (*loop_fd_fn)(void *arg, uint32_t events);
typedef void (*loop_timer_fn)(void *arg);
typedef void (*loop_post_fn)(void *arg);

int loop_new(struct loop **out);
void loop_free(struct loop *l); /* NULL ok; the caller removed its fds and timers first */

/* Watches fd for events (EPOLLIN...). The handle stays valid until loop_fd_del. */
int loop_fd_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg,
                struct loop_fd **out);
int loop_fd_mod(struct loop *l, struct loop_fd *h, uint32_t events);
void loop_fd_del(struct loop *l, struct loop_fd *h); /* NULL ok; safe inside its own callback */

/* Fires after delay_ms, then every period_ms if period_ms > 0. A one-shot timer frees itself
 * after firing; do not del it then. */
int loop_timer_add(struct loop *l, int64_t delay_ms, int64_t period_ms, loop_timer_fn fn, void *arg,
                   struct loop_timer **out);
void loop_timer_del(struct loop *l, struct loop_timer *t); /* NULL ok; safe in its callback */
/* Moves a pending timer to fire delay_ms from now. A one-shot timer cannot re-arm itself from
 * its own callback (it is already done): use a periodic timer for that. */
void loop_timer_reset(struct loop *l, struct loop_timer *t, int64_t delay_ms);

/* Thread-safe: fn(arg) runs on the loop thread at its next turn. 0 or -1 (OOM). */
int loop_post(struct loop *l, loop_post_fn fn, void *arg);
/* Thread-safe: 1 when called on the loop's thread (the one that made it and runs it). */
int loop_in_thread(const struct loop *l);

/* One turn: waits up to max_wait_ms (-1: until something happens) and dispatches. */
int loop_run_once(struct loop *l, int max_wait_ms);
/* Turns until loop_stop(). */
int loop_run(struct loop *l);
void loop_stop(struct loop *l); /* thread-safe */

#endif
