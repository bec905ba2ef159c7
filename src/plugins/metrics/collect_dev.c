/* Per-device rates and socket counts: disk I/O from /proc/diskstats, network traffic from
 * /proc/net/dev, TCP connections by state from /proc/net/tcp and /proc/net/tcp6. */
#include "collect_int.h"

#include <outpost/plugin.h>

#include <string.h>

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
#define COLLECT_TCP_STATES 13
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

void collect_tcp(struct collect *c)
{
	uint64_t count[COLLECT_TCP_STATES] = {0};
	int rc4, rc6, i, j;

	rc4 = collect_read_lines(c, c->dirfd, "net/tcp", collect_tcp_line, count);
	rc6 = collect_read_lines(c, c->dirfd, "net/tcp6", collect_tcp_line, count);
	/* No tcp6 is normal: IPv6 disabled. */
	if (rc4 < 0 || (rc6 < 0 && rc6 != OUTPOST_E_NOT_FOUND))
		c->failed = 1;
	if (rc4 < 0 && rc6 < 0)
		return;
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
