/* TCP keepalive as a sign of life: see tcpalive.h. */
#include "tcpalive.h"
#include "err.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

struct tcpalive tcpalive_for_beats(int64_t beat_ms, int missed)
{
	struct tcpalive ka = {beat_ms, beat_ms, missed < 2 ? 2 : missed};

	return ka;
}

static int tcpalive_secs(int64_t ms)
{
	int64_t s = (ms + 999) / 1000;

	return s < 1 ? 1 : s > 32767 ? 32767 : (int)s; /* the kernel's range (MAX_TCP_KEEPIDLE) */
}

int tcpalive_arm(int fd, const struct tcpalive *ka)
{
	int on = 1, idle = tcpalive_secs(ka->idle_ms), intvl = tcpalive_secs(ka->intvl_ms);
	int cnt = ka->probes < 1 ? 1 : ka->probes > 127 ? 127 : ka->probes;

	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0)
		return OUTPOST_E_BAD_ARGS;
	return 0;
}

int tcpalive_judge(const struct tcp_info *ti, const struct tcpalive *ka)
{
	/* The kernel counts a probe as unanswered from the moment it leaves, and resets the count
	 * on any answer: probes unanswered is how many rounds the peer missed, the last one
	 * possibly still on its way. */
	return ti->tcpi_state == TCP_ESTABLISHED && ti->tcpi_probes < ka->probes;
}

int tcpalive_healthy(int fd, const struct tcpalive *ka)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_probes) + sizeof(ti.tcpi_probes))
		return 0;
	return tcpalive_judge(&ti, ka);
}
