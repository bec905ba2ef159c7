/* Tests for src/core/loop.c: timers in order, periodic and cancelled timers, posts from
 * threads, fds, and two users sharing one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clk.h"
#include "core/loop.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct rec {
	int order[8];
	int n;
};

struct tmark {
	struct rec *r;
	int id;
};

static void mark(void *arg)
{
	struct tmark *m = arg;
	m->r->order[m->r->n++] = m->id;
}

static void test_timers_fire_in_due_order(void **state)
{
	struct loop *l;
	struct rec r = {0};
	struct tmark m[4] = {{&r, 1}, {&r, 2}, {&r, 3}, {&r, 4}};
	struct loop_timer *cancel;

	assert_int_equal(loop_new(&l), 0);
	loop_timer_add(l, 60, 0, mark, &m[2], NULL);
	loop_timer_add(l, 10, 0, mark, &m[0], NULL);
	loop_timer_add(l, 30, 0, mark, &m[1], &cancel);
	loop_timer_add(l, 40, 0, mark, &m[3], NULL);
	loop_timer_del(l, cancel);
	for (int64_t end = clk_mono_ms() + 500; clk_mono_ms() < end && r.n < 3;)
		loop_run_once(l, 100);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.order[0], 1);
	assert_int_equal(r.order[1], 4);
	assert_int_equal(r.order[2], 3);
	loop_free(l);
}

static void tick(void *arg)
{
	(*(int *)arg)++;
}

static void test_periodic_timer_repeats_until_deleted(void **state)
{
	struct loop *l;
	struct loop_timer *t;
	int n = 0;

	assert_int_equal(loop_new(&l), 0);
	loop_timer_add(l, 5, 5, tick, &n, &t);
	for (int64_t end = clk_mono_ms() + 2000; clk_mono_ms() < end && n < 5;)
		loop_run_once(l, 50);
	assert_true(n >= 5);
	loop_timer_del(l, t);
	n = 0;
	for (int i = 0; i < 3; i++)
		loop_run_once(l, 20);
	assert_int_equal(n, 0);
	loop_free(l);
}

struct poster {
	struct loop *l;
	int *count;
};

static void bump(void *arg)
{
	(*(int *)arg)++;
}

static void *post_many(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 1000; i++)
		loop_post(p->l, bump, p->count);
	return NULL;
}

static void test_posts_from_threads_all_arrive_on_the_loop(void **state)
{
	struct loop *l;
	pthread_t th[4];
	int count = 0;
	struct poster p;

	assert_int_equal(loop_new(&l), 0);
	p.l = l;
	p.count = &count;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, post_many, &p);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int64_t end = clk_mono_ms() + 2000; clk_mono_ms() < end && count < 4000;)
		loop_run_once(l, 50);
	assert_int_equal(count, 4000);
	loop_free(l);
}

struct fdrec {
	struct loop *l;
	struct loop_fd *h;
	int fd;
	int reads;
};

static void on_readable(void *arg, uint32_t ev)
{
	struct fdrec *f = arg;
	char c;
	(void)ev;
	if (read(f->fd, &c, 1) == 1)
		f->reads++;
	/* Deleting itself inside its own callback is allowed. */
	loop_fd_del(f->l, f->h);
}

static void test_fd_callback_may_delete_itself(void **state)
{
	struct loop *l;
	int p[2];
	struct fdrec a = {0}, b = {0};
	int q[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	assert_int_equal(loop_new(&l), 0);
	a.l = b.l = l;
	a.fd = p[0];
	b.fd = q[0];
	assert_int_equal(loop_fd_add(l, p[0], EPOLLIN, on_readable, &a, &a.h), 0);
	assert_int_equal(loop_fd_add(l, q[0], EPOLLIN, on_readable, &b, &b.h), 0);
	assert_int_equal(write(p[1], "xy", 2), 2);
	assert_int_equal(write(q[1], "z", 1), 1);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 20);
	assert_int_equal(a.reads, 1);
	assert_int_equal(b.reads, 1);
	loop_free(l);
	close(p[0]), close(p[1]), close(q[0]), close(q[1]);
}

struct rearm {
	struct loop *l;
	struct loop_timer *t;
	int n;
};

static void rearm_self(void *arg)
{
	struct rearm *r = arg;
	r->n++;
	loop_timer_reset(r->l, r->t, 1);
}

/* A bug seen in the HTTP server: a timer re-armed from its own callback corrupted the heap. */
static void test_periodic_timer_may_reset_itself(void **state)
{
	struct rearm r = {0};

	assert_int_equal(loop_new(&r.l), 0);
	assert_int_equal(loop_timer_add(r.l, 1, 1000, rearm_self, &r, &r.t), 0);
	for (int64_t end = clk_mono_ms() + 2000; clk_mono_ms() < end && r.n < 5;)
		loop_run_once(r.l, 10);
	assert_int_equal(r.n, 5);
	loop_timer_del(r.l, r.t);
	loop_free(r.l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_fire_in_due_order),
	    cmocka_unit_test(test_periodic_timer_repeats_until_deleted),
	    cmocka_unit_test(test_posts_from_threads_all_arrive_on_the_loop),
	    cmocka_unit_test(test_fd_callback_may_delete_itself),
	    cmocka_unit_test(test_periodic_timer_may_reset_itself),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
