/* Event loop: see loop.h. Fd handles freed during a turn are parked until the turn ends, so a
 * later event of the same epoll batch never touches freed memory. */
#include "loop.h"
#include "clk.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct loop_fd {
	int fd;
	int dead;
	loop_fd_fn fn;
	void *arg;
	struct loop_fd *next_dead;
};

struct loop_timer {
	int64_t due;
	int64_t period;
	size_t idx; /* position in the heap */
	loop_timer_fn fn;
	void *arg;
};

struct loop_post_item {
	loop_post_fn fn;
	void *arg;
	struct loop_post_item *next;
};

struct loop {
	int epfd;
	int evfd;
	struct loop_fd evh;
	atomic_int stopping;
	struct loop_fd *dead; /* handles to free at the end of the turn */
	struct loop_timer **heap;
	size_t nheap, capheap;
	pthread_mutex_t post_lock; /* guards posts, post_tail */
	struct loop_post_item *posts, *post_tail;
	pthread_t thread; /* the loop's own thread: the one that made it; never changes */
};

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->idx = a;
	l->heap[b]->idx = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->due <= l->heap[i]->due)
			break;
		heap_swap(l, p, i);
		i = p;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->nheap && l->heap[c]->due < l->heap[m]->due)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->due < l->heap[m]->due)
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

static void heap_remove(struct loop *l, size_t i)
{
	l->nheap--;
	if (i == l->nheap)
		return;
	heap_swap(l, i, l->nheap);
	{
		struct loop_timer *moved = l->heap[i];
		heap_up(l, i);
		heap_down(l, moved->idx);
	}
}

static void loop_drain_posts(void *arg, uint32_t events)
{
	struct loop *l = arg;
	struct loop_post_item *it;
	uint64_t n;

	(void)events;
	if (read(l->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&l->post_lock);
	it = l->posts;
	l->posts = l->post_tail = NULL;
	pthread_mutex_unlock(&l->post_lock);
	while (it) {
		struct loop_post_item *next = it->next;
		it->fn(it->arg);
		free(it);
		it = next;
	}
}

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = {.events = EPOLLIN};

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->evfd < 0)
		goto fail;
	pthread_mutex_init(&l->post_lock, NULL);
	l->thread = pthread_self();
	l->evh.fd = l->evfd;
	l->evh.fn = loop_drain_posts;
	l->evh.arg = l;
	ev.data.ptr = &l->evh;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->evfd >= 0)
		close(l->evfd);
	free(l);
	return -errno;
}

static void loop_reap(struct loop *l)
{
	while (l->dead) {
		struct loop_fd *h = l->dead;
		l->dead = h->next_dead;
		free(h);
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	loop_drain_posts(l, 0);
	loop_reap(l);
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	close(l->epfd);
	close(l->evfd);
	pthread_mutex_destroy(&l->post_lock);
	free(l);
}

int loop_fd_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg,
                struct loop_fd **out)
{
	struct loop_fd *h = calloc(1, sizeof(*h));
	struct epoll_event ev = {.events = events};

	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->fn = fn;
	h->arg = arg;
	ev.data.ptr = h;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(h);
		return -e;
	}
	if (out)
		*out = h;
	return 0;
}

int loop_fd_mod(struct loop *l, struct loop_fd *h, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0 ? -errno : 0;
}

void loop_fd_del(struct loop *l, struct loop_fd *h)
{
	if (!h || h->dead)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	h->dead = 1;
	h->next_dead = l->dead;
	l->dead = h;
}

int loop_timer_add(struct loop *l, int64_t delay_ms, int64_t period_ms, loop_timer_fn fn, void *arg,
                   struct loop_timer **out)
{
	struct loop_timer *t;

	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 16;
		struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->capheap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->due = clk_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
	t->period = period_ms;
	t->fn = fn;
	t->arg = arg;
	t->idx = l->nheap;
	l->heap[l->nheap++] = t;
	heap_up(l, t->idx);
	if (out)
		*out = t;
	return 0;
}

void loop_timer_del(struct loop *l, struct loop_timer *t)
{
	if (!t)
		return;
	if (t->idx < l->nheap && l->heap[t->idx] == t)
		heap_remove(l, t->idx);
	free(t);
}

void loop_timer_reset(struct loop *l, struct loop_timer *t, int64_t delay_ms)
{
	if (t->idx >= l->nheap || l->heap[t->idx] != t)
		return; /* a one-shot timer inside its own callback: already off the heap */
	t->due = clk_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
	heap_up(l, t->idx);
	heap_down(l, t->idx);
}

int loop_in_thread(const struct loop *l)
{
	return pthread_equal(pthread_self(), l->thread) != 0;
}

int loop_post(struct loop *l, loop_post_fn fn, void *arg)
{
	struct loop_post_item *it = malloc(sizeof(*it));
	uint64_t one = 1;

	if (!it)
		return -1;
	it->fn = fn;
	it->arg = arg;
	it->next = NULL;
	int was_empty;

	pthread_mutex_lock(&l->post_lock);
	was_empty = l->posts == NULL;
	if (l->post_tail)
		l->post_tail->next = it;
	else
		l->posts = it;
	l->post_tail = it;
	pthread_mutex_unlock(&l->post_lock);
	/* One wake-up per batch: the loop drains the whole queue when it wakes. */
	if (was_empty && write(l->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -1;
	return 0;
}

static void loop_fire_timers(struct loop *l)
{
	int64_t now = clk_mono_ms();

	while (l->nheap && l->heap[0]->due <= now) {
		struct loop_timer *t = l->heap[0];
		if (t->period > 0) {
			t->due = now + t->period;
			heap_down(l, 0);
			t->fn(t->arg); /* may delete t */
		} else {
			heap_remove(l, 0);
			t->idx = (size_t)-1;
			t->fn(t->arg);
			free(t);
		}
	}
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event evs[64];
	int wait = max_wait_ms, n;

	if (l->nheap) {
		int64_t d = l->heap[0]->due - clk_mono_ms();
		if (d < 0)
			d = 0;
		if (wait < 0 || d < wait)
			wait = d > 60000 ? 60000 : (int)d;
	}
	n = epoll_wait(l->epfd, evs, 64, wait);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct loop_fd *h = evs[i].data.ptr;
		if (!h->dead)
			h->fn(h->arg, evs[i].events);
	}
	loop_fire_timers(l);
	loop_reap(l);
	return 0;
}

int loop_run(struct loop *l)
{
	int rc = 0;

	while (!atomic_load(&l->stopping) && rc == 0)
		rc = loop_run_once(l, -1);
	atomic_store(&l->stopping, 0);
	return rc;
}

static void loop_noop(void *arg)
{
	(void)arg;
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stopping, 1);
	loop_post(l, loop_noop, NULL);
}
