/* Per-device rates and socket counts: disk I/O from /proc/diskstats, network traffic from
 * /proc/net/dev, TCP connections by state from the kernel's sock_diag netlink interface, or from
 * /proc/net/tcp and /proc/net/tcp6 where that is not available (and for fixture trees). */
#include "collect_int.h"

#include <outpost/plugin.h>

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int collect_isdigit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* ---- /proc/diskstats ---- */

/* The kernel lists a disk before its partitions, and names a partition after its disk: sda1,
 * or nvme0n1p1 when the disk's name ends in a digit. So a name is a partition when it extends
 * an earlier line's disk that way; dm-10 is not a partition of dm-1. */
static int collect_disk_is_partition(struct collect *c, const char *name)
{
	size_t i, len;
	const char *s;

	for (i = 0; i < c->disks.n; i++) {
		const struct collect_dev *d = &c->disks.d[i];

		len = strlen(d->name);
		if (d->gen != c->gen || len == 0 || strncmp(name, d->name, len) != 0)
			continue;
		s = name + len;
		if (collect_isdigit(d->name[len - 1]) && *s++ != 'p')
			continue;
		if (!collect_isdigit(*s))
			continue;
		while (collect_isdigit(*s))
			s++;
		if (*s == '\0')
			return 1;
	}
	return 0;
}

/* Loop and RAM disks are many and mostly idle: they are shown once they have done any I/O. */
static int collect_disk_is_idle_virtual(const char *name, uint64_t reads, uint64_t writes)
{
	return (strncmp(name, "loop", 4) == 0 || strncmp(name, "ram", 3) == 0 ||
	        strncmp(name, "zram", 4) == 0) &&
	       reads == 0 && writes == 0;
}

enum { DISK_RSECT, DISK_WSECT, DISK_READS, DISK_WRITES, DISK_TICKS, DISK_N };

/* "   8       0 sda 28805 6421 2110858 37293 5166 6290 436896 3760 0 21184 41762 ..." */
static void collect_disk_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	static const char *const names[] = {
	    "host_disk_read_bytes_per_second",
	    "host_disk_write_bytes_per_second",
	    "host_disk_reads_per_second",
	    "host_disk_writes_per_second",
	};
	static const double scale[] = {512, 512, 1, 1}; /* diskstats counts 512-byte sectors */
	uint64_t major, minor, f[11], v[DISK_N], d;
	const char *p = line;
	char *q, *name;
	struct collect_dev *dev;
	int i, fresh;

	if (collect_u64(&p, &major) < 0 || collect_u64(&p, &minor) < 0)
		goto bad;
	q = line + (p - line);
	if (collect_token(&q, &name) < 0 || strlen(name) >= COLLECT_NAME_MAX)
		goto bad;
	p = q;
	for (i = 0; i < 11; i++)
		if (collect_u64(&p, &f[i]) < 0)
			goto bad;
	if (collect_disk_is_partition(c, name))
		return;
	v[DISK_READS] = f[0];
	v[DISK_RSECT] = f[2];
	v[DISK_WRITES] = f[4];
	v[DISK_WSECT] = f[6];
	v[DISK_TICKS] = f[9]; /* ms the device had I/O in flight; 32 bits on older kernels */

	dev = collect_dev_get(c, &c->disks, name, &fresh);
	if (!dev)
		return;
	if (!fresh && !collect_disk_is_idle_virtual(name, f[0], f[4])) {
		const char *l[] = {"device", dev->name, NULL};

		for (i = 0; i < 4; i++)
			collect_emit_rate(c, names[i], l, dev->v[i], v[i], scale[i]);
		if (c->dt > 0 && collect_delta(dev->v[DISK_TICKS], v[DISK_TICKS], &d) == 0) {
			double busy = (double)d / (c->dt * 10); /* ms per s / 1000 * 100 */

			collect_emit(c, "host_disk_busy_percent", l, busy > 100 ? 100 : busy);
		}
	}
	memcpy(dev->v, v, sizeof(v));
	return;
bad:
	collect_parse_error(c);
}

void collect_disks(struct collect *c)
{
	if (collect_read_lines(c, c->dirfd, "diskstats", collect_disk_line, NULL) < 0) {
		c->failed = 1;
		return;
	}
	collect_dev_prune(c, &c->disks);
}

/* ---- /proc/net/dev ---- */

/* The counters kept, in the order of the metric names. */
static const char *const collect_net_names[COLLECT_DEV_COUNTERS] = {
    "host_network_receive_bytes_per_second",   "host_network_receive_packets_per_second",
    "host_network_receive_errors_per_second",  "host_network_receive_drops_per_second",
    "host_network_transmit_bytes_per_second",  "host_network_transmit_packets_per_second",
    "host_network_transmit_errors_per_second", "host_network_transmit_drops_per_second",
};

/* "  eth0: 19388700 460 0 0 0 0 0 0 27425 313 0 0 0 0 0 0": receive bytes packets errs drop
 * fifo frame compressed multicast, then transmit bytes packets errs drop fifo colls carrier
 * compressed. Old kernels print no blank after the colon. */
static void collect_net_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	static const int pick[COLLECT_DEV_COUNTERS] = {0, 1, 2, 3, 8, 9, 10, 11};
	uint64_t f[16], v[COLLECT_DEV_COUNTERS];
	struct collect_dev *dev;
	char *name = line, *colon;
	const char *p;
	int i, fresh;

	if (lineno < 2) /* two header lines */
		return;
	while (collect_is_blank(*name))
		name++;
	colon = strchr(name, ':');
	if (!colon || colon == name || colon - name >= COLLECT_NAME_MAX)
		goto bad;
	*colon = '\0';
	p = colon + 1;
	for (i = 0; i < 16; i++)
		if (collect_u64(&p, &f[i]) < 0)
			goto bad;
	/* Loopback traffic never leaves the host: it is not network bandwidth. */
	if (strcmp(name, "lo") == 0)
		return;
	for (i = 0; i < COLLECT_DEV_COUNTERS; i++)
		v[i] = f[pick[i]];

	dev = collect_dev_get(c, &c->nets, name, &fresh);
	if (!dev)
		return;
	/* An interface that never carried a packet (down, unused ifb) is left out until it does. */
	if (!fresh && (f[0] | f[1] | f[8] | f[9]) != 0) {
		const char *l[] = {"interface", dev->name, NULL};

		for (i = 0; i < COLLECT_DEV_COUNTERS; i++)
			collect_emit_rate(c, collect_net_names[i], l, dev->v[i], v[i], 1);
	}
	memcpy(dev->v, v, sizeof(v));
	return;
bad:
	collect_parse_error(c);
}

void collect_nets(struct collect *c)
{
	if (collect_read_lines(c, c->dirfd, "net/dev", collect_net_line, NULL) < 0) {
		c->failed = 1;
		return;
	}
	collect_dev_prune(c, &c->nets);
}

/* ---- /proc/net/tcp, /proc/net/tcp6 ---- */

/* Kernel TCP states (include/net/tcp_states.h) and their label. A request socket
 * (TCP_NEW_SYN_RECV) is a connection being set up, like SYN_RECV. */
static const char *const collect_tcp_state[COLLECT_TCP_STATES] = {
    NULL,    "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
    "close", "close_wait",  "last_ack", "listen",   "closing",   "syn_recv",
};

static int collect_hexdigit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 ...": the state is the 4th field.
 * Only that is looked at: on a busy host these files have a line per socket. */
static void collect_tcp_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	uint64_t *count = arg;
	const char *p = line;
	int i, hi, lo;

	if (lineno == 0)
		return;
	for (i = 0; i < 3; i++) {
		while (collect_is_blank(*p))
			p++;
		if (!*p)
			goto bad;
		while (*p && !collect_is_blank(*p))
			p++;
	}
	while (collect_is_blank(*p))
		p++;
	hi = collect_hexdigit(p[0]);
	lo = hi < 0 ? -1 : collect_hexdigit(p[1]);
	if (lo < 0 || !collect_is_blank(p[2]))
		goto bad;
	i = hi * 16 + lo;
	if (i >= COLLECT_TCP_STATES || !collect_tcp_state[i])
		goto bad;
	count[i]++;
	return;
bad:
	collect_parse_error(c);
}

/* ---- The same counts through sock_diag ---- */

/* Reading /proc/net/tcp and tcp6 costs about 9.5 ms of kernel time per sample on a host with a
 * 262,144-bucket established hash, even with no connections: each file walks the whole table
 * (again for every read: seq_file restarts) and prints every socket. A sock_diag dump walks it
 * once for both families and sends a fixed 72-byte record per socket: about 0.4 ms here. The
 * request is the compatibility form (TCPDIAG_GETSOCK), which the kernel answers with IPv4 and IPv6
 * sockets in one walk; SOCK_DIAG_BY_FAMILY would need a walk per family. States 1-12 only: 13
 * (TCP_BOUND_INACTIVE, Linux 6.5) lists sockets that are bound and nothing else, which
 * /proc/net/tcp does not show either. */
#define COLLECT_TCP_DIAG_STATES 0x1ffeu

int collect_tcp_diag_batch(const void *data, size_t len, uint32_t seq, uint64_t *count,
                           uint64_t *bad)
{
	const char *p = data;

	while (len >= sizeof(struct nlmsghdr)) {
		const struct nlmsghdr *h = (const void *)p;
		const struct inet_diag_msg *m = NLMSG_DATA(h);
		size_t step;

		if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len || h->nlmsg_seq != seq)
			return -1; /* cut short, or not the answer to our request */
		if (h->nlmsg_type == NLMSG_DONE) {
			int err = 0;

			/* A dump ends with the error that cut it short, if any. */
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(err)))
				memcpy(&err, NLMSG_DATA(h), sizeof(err));
			return err < 0 ? -1 : 1;
		}
		if (h->nlmsg_type != TCPDIAG_GETSOCK)
			return -1; /* NLMSG_ERROR: the request was refused */
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) ||
		    m->idiag_state >= COLLECT_TCP_STATES || !collect_tcp_state[m->idiag_state])
			(*bad)++;
		else
			count[m->idiag_state]++;
		step = NLMSG_ALIGN(h->nlmsg_len);
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
	/* The kernel never splits a message across datagrams. */
	return len == 0 ? 0 : -1;
}

/* Fills count from one dump; 0, or -1 when sock_diag cannot be used (count is then partial). */
static int collect_tcp_diag(struct collect *c, uint64_t *count)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req r;
	} req;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct timeval limit = {.tv_sec = 1}; /* the loop thread waits on this: never for long */
	uint64_t bad = 0;
	int fd, rc = -1;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_INET_DIAG);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0)
		goto out;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = TCPDIAG_GETSOCK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = ++c->tcp_diag_seq;
	req.r.idiag_family = AF_UNSPEC;
	req.r.idiag_states = COLLECT_TCP_DIAG_STATES;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		goto out;
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = {.iov_base = c->rbuf, .iov_len = c->rcap};
		struct msghdr msg = {.msg_name = &from,
		                     .msg_namelen = sizeof(from),
		                     .msg_iov = &iov,
		                     .msg_iovlen = 1};
		ssize_t n = recvmsg(fd, &msg, 0);

		if (n < 0 && errno == EINTR)
			continue;
		/* Only the kernel (port 0) answers; a datagram cut short is a lost count. */
		if (n <= 0 || (msg.msg_flags & MSG_TRUNC) || msg.msg_namelen != sizeof(from) ||
		    from.nl_pid != 0) {
			rc = -1;
			break;
		}
		rc = collect_tcp_diag_batch(c->rbuf, (size_t)n, c->tcp_diag_seq, count, &bad);
		if (rc != 0)
			break;
	}
	rc = rc == 1 ? 0 : -1;
out:
	c->parse_errors += bad;
	close(fd);
	return rc;
}

void collect_tcp(struct collect *c)
{
	uint64_t count[COLLECT_TCP_STATES] = {0};
	int rc4, rc6, i, j;

	if (c->tcp_diag) {
		if (collect_tcp_diag(c, count) == 0)
			goto emit;
		/* Refused (a seccomp or LSM policy, a kernel without inet_diag): the files from now
		 * on, which say the same, slower. */
		c->tcp_diag = 0;
		memset(count, 0, sizeof(count));
	}
	rc4 = collect_read_lines(c, c->dirfd, "net/tcp", collect_tcp_line, count);
	rc6 = collect_read_lines(c, c->dirfd, "net/tcp6", collect_tcp_line, count);
	/* No tcp6 is normal: IPv6 disabled. */
	if (rc4 < 0 || (rc6 < 0 && rc6 != OUTPOST_E_NOT_FOUND))
		c->failed = 1;
	if (rc4 < 0 && rc6 < 0)
		return;
emit:
	for (i = 1; i < COLLECT_TCP_STATES; i++) {
		const char *l[] = {"state", collect_tcp_state[i], NULL};
		uint64_t n = count[i];

		/* Emit each label once, folding later states that share it. */
		for (j = 1; j < i; j++)
			if (strcmp(collect_tcp_state[j], collect_tcp_state[i]) == 0)
				break;
		if (j < i)
			continue;
		for (j = i + 1; j < COLLECT_TCP_STATES; j++)
			if (strcmp(collect_tcp_state[j], collect_tcp_state[i]) == 0)
				n += count[j];
		collect_emit(c, "host_tcp_connections", l, (double)n);
	}
}
