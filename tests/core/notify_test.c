/* Tests for src/core/notify.c against datagram sockets the test binds, as systemd would: a
 * path socket and an abstract one; the watchdog interval from the environment's values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/notify.h"
#include "support/tmpdir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Binds a datagram socket at name (a path, or '@' + abstract name); returns its fd. */
static int bind_dgram(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	else
		len++;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char got[256];
	ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void test_send_reaches_a_path_socket(void **state)
{
	char dir[TMPDIR_LEN], path[160];
	int fd;

	(void)state;
	assert_int_equal(tmpdir_make(dir, "notify"), 0);
	snprintf(path, sizeof(path), "%s/notify.sock", dir);
	fd = bind_dgram(path);
	assert_int_equal(notify_send(path, "READY=1"), 0);
	expect_datagram(fd, "READY=1");
	assert_int_equal(notify_send(path, "STOPPING=1"), 0);
	expect_datagram(fd, "STOPPING=1");
	close(fd);
	tmpdir_remove(dir);
}

static void test_send_reaches_an_abstract_socket(void **state)
{
	char name[64];
	int fd;

	(void)state;
	snprintf(name, sizeof(name), "@outpost-notify-test-%ld", (long)getpid());
	fd = bind_dgram(name);
	assert_int_equal(notify_send(name, "WATCHDOG=1"), 0);
	expect_datagram(fd, "WATCHDOG=1");
	close(fd);
}

static void test_send_without_a_socket_is_a_no_op(void **state)
{
	(void)state;
	assert_int_equal(notify_send(NULL, "READY=1"), 0);
	assert_int_equal(notify_send("", "READY=1"), 0);
}

static void test_send_refuses_a_relative_or_missing_socket(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(notify_send("relative.sock", "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(notify_send("/nonexistent/outpost/notify.sock", "READY=1"), -1);
}

static void test_watchdog_is_half_the_interval_for_this_process(void **state)
{
	(void)state;
	assert_int_equal(notify_watchdog_ms("20000000", NULL, 42), 10000);
	assert_int_equal(notify_watchdog_ms("20000000", "42", 42), 10000);
	assert_int_equal(notify_watchdog_ms("1000", NULL, 42), 1); /* never 0: that is "none" */
}

static void test_watchdog_off_when_absent_bad_or_for_another_pid(void **state)
{
	(void)state;
	assert_int_equal(notify_watchdog_ms(NULL, NULL, 42), 0);
	assert_int_equal(notify_watchdog_ms("", NULL, 42), 0);
	assert_int_equal(notify_watchdog_ms("abc", NULL, 42), 0);
	assert_int_equal(notify_watchdog_ms("-5", NULL, 42), 0);
	assert_int_equal(notify_watchdog_ms("20000000", "43", 42), 0);
	assert_int_equal(notify_watchdog_ms("20000000", "4x", 42), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_send_reaches_a_path_socket),
	    cmocka_unit_test(test_send_reaches_an_abstract_socket),
	    cmocka_unit_test(test_send_without_a_socket_is_a_no_op),
	    cmocka_unit_test(test_send_refuses_a_relative_or_missing_socket),
	    cmocka_unit_test(test_watchdog_is_half_the_interval_for_this_process),
	    cmocka_unit_test(test_watchdog_off_when_absent_bad_or_for_another_pid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
