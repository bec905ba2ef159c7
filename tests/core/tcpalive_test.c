/* Tests for src/core/tcpalive.c on real loopback TCP connections: the options reach the kernel,
 * a live peer answers the probes, a closed or reset one is not healthy. A peer that stops
 * answering probes cannot be made on loopback without privileges (the kernel answers for any
 * process, stopped or not), so that judgement is checked on the kernel's own tcp_info record
 * filled as it would be with probes unanswered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/tcpalive.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A connected pair on 127.0.0.1: fds[0] the accepting (hub's) side, fds[1] the client. */
static void tcp_pair(int fds[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fds[1], (struct sockaddr *)&sa, sizeof(sa)), 0);
	fds[0] = accept(l, NULL, NULL);
	assert_true(fds[0] >= 0);
	close(l);
}

static int sockopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_for_beats_probes_each_beat_and_gives_up_after_missed(void **state)
{
	struct tcpalive ka = tcpalive_for_beats(5000, 3);

	(void)state;
	assert_int_equal(ka.idle_ms, 5000);
	assert_int_equal(ka.intvl_ms, 5000);
	assert_int_equal(ka.probes, 3);
	/* One probe is unanswered for a round trip on every healthy round: never judge on one. */
	assert_int_equal(tcpalive_for_beats(1000, 1).probes, 2);
}

static void test_arm_sets_the_kernel_options_in_whole_seconds(void **state)
{
	struct tcpalive ka = {1500, 400, 4};
	int fds[2];

	(void)state;
	tcp_pair(fds);
	assert_int_equal(tcpalive_arm(fds[0], &ka), 0);
	assert_int_equal(sockopt(fds[0], SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(sockopt(fds[0], IPPROTO_TCP, TCP_KEEPIDLE), 2);
	assert_int_equal(sockopt(fds[0], IPPROTO_TCP, TCP_KEEPINTVL), 1);
	assert_int_equal(sockopt(fds[0], IPPROTO_TCP, TCP_KEEPCNT), 4);
	close(fds[0]);
	close(fds[1]);
}

static void test_unix_socket_is_refused_and_never_healthy(void **state)
{
	struct tcpalive ka = tcpalive_for_beats(1000, 3);
	int fds[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_true(tcpalive_arm(fds[0], &ka) < 0);
	assert_int_equal(tcpalive_healthy(fds[0], &ka), 0);
	assert_int_equal(tcpalive_healthy(-1, &ka), 0);
	close(fds[0]);
	close(fds[1]);
}

static void test_live_peer_answers_the_probes_and_stays_healthy(void **state)
{
	struct tcpalive ka = tcpalive_for_beats(1000, 3);
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fds[2];

	(void)state;
	tcp_pair(fds);
	assert_int_equal(tcpalive_arm(fds[0], &ka), 0);
	assert_int_equal(tcpalive_healthy(fds[0], &ka), 1);
	/* Idle for 2.5 s: probes left at 1 s and 2 s and the peer's kernel answered them (an
	 * acknowledgement came after the last data did). */
	sleep_ms(2500);
	assert_int_equal(getsockopt(fds[0], IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	assert_true(ti.tcpi_last_data_recv >= 2000);
	assert_true(ti.tcpi_last_ack_recv < ti.tcpi_last_data_recv - 500);
	assert_int_equal(ti.tcpi_probes, 0);
	assert_int_equal(tcpalive_healthy(fds[0], &ka), 1);
	close(fds[0]);
	close(fds[1]);
}

/* tcpalive_healthy(fd) once it turns 0, or after a second. */
static int wait_unhealthy(int fd, const struct tcpalive *ka)
{
	for (int i = 0; i < 100 && tcpalive_healthy(fd, ka); i++)
		sleep_ms(10);
	return tcpalive_healthy(fd, ka);
}

/* The peer's end going away as a killed process's does: the kernel closes it. */
static void test_peer_closed_or_reset_is_not_healthy(void **state)
{
	struct tcpalive ka = tcpalive_for_beats(1000, 3);
	struct linger lg = {1, 0};
	int fds[2];

	(void)state;
	tcp_pair(fds);
	close(fds[1]); /* FIN: our side is in CLOSE_WAIT */
	assert_int_equal(wait_unhealthy(fds[0], &ka), 0);
	close(fds[0]);

	tcp_pair(fds);
	assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(fds[1]); /* RST */
	assert_int_equal(wait_unhealthy(fds[0], &ka), 0);
	close(fds[0]);
}

/* What the kernel reports while probes go unanswered (a powered-off host, a cut network):
 * still ESTABLISHED, tcpi_probes counting up until it gives up. */
static void test_unanswered_probes_beyond_the_limit_are_not_healthy(void **state)
{
	struct tcpalive ka = tcpalive_for_beats(1000, 3);
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fds[2];

	(void)state;
	tcp_pair(fds);
	assert_int_equal(getsockopt(fds[0], IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	assert_int_equal(tcpalive_judge(&ti, &ka), 1);
	ti.tcpi_probes = 1; /* a probe on its way */
	assert_int_equal(tcpalive_judge(&ti, &ka), 1);
	ti.tcpi_probes = 2;
	assert_int_equal(tcpalive_judge(&ti, &ka), 1);
	ti.tcpi_probes = 3; /* missed rounds */
	assert_int_equal(tcpalive_judge(&ti, &ka), 0);
	ti.tcpi_probes = 0;
	ti.tcpi_state = TCP_CLOSE; /* the kernel gave up: timed out */
	assert_int_equal(tcpalive_judge(&ti, &ka), 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_for_beats_probes_each_beat_and_gives_up_after_missed),
	    cmocka_unit_test(test_arm_sets_the_kernel_options_in_whole_seconds),
	    cmocka_unit_test(test_unix_socket_is_refused_and_never_healthy),
	    cmocka_unit_test(test_live_peer_answers_the_probes_and_stays_healthy),
	    cmocka_unit_test(test_peer_closed_or_reset_is_not_healthy),
	    cmocka_unit_test(test_unanswered_probes_beyond_the_limit_are_not_healthy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
