/* sd_notify over its datagram socket: see notify.h. */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *path, const char *state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n;
	socklen_t len;
	ssize_t sent;
	int fd, saved;

	if (!path || !*path)
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, path, n);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
	else
		len++;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	saved = errno;
	close(fd);
	errno = saved;
	return sent == (ssize_t)strlen(state) ? 0 : -1;
}

int64_t notify_watchdog_ms(const char *usec, const char *pid, pid_t self)
{
	char *end;
	long long us;

	if (!usec || !*usec)
		return 0;
	if (pid && *pid) {
		long long p = strtoll(pid, &end, 10);
		if (*end || p != (long long)self)
			return 0;
	}
	errno = 0;
	us = strtoll(usec, &end, 10);
	if (errno || *end || us <= 0)
		return 0;
	return us / 2000 > 0 ? us / 2000 : 1;
}
