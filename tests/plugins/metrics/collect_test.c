/* Tests for src/plugins/metrics/collect*.c, against the /proc fixtures in fixtures/ (how they
 * were made, and the deltas between them: fixtures/make.py) and once against the real /proc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <outpost/plugin.h>

#include "plugins/metrics/collect.h"
#include "plugins/metrics/collect_int.h"

/* ---- A sink that keeps every emitted sample and checks its name and labels ---- */

struct rec {
	char name[96];
	char labels[256]; /* "k=v,k=v" */
	double v;
};

struct sink {
	struct rec *r;
	size_t n, cap;
};

static int name_ok(const char *s, int colon)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
			return 0;
	return 1;
}

static void sink_emit(void *arg, const char *name, const char *const *labels, double value)
{
	struct sink *s = arg;
	struct rec *r;
	size_t i, off = 0;

	assert_true(name_ok(name, 1));
	assert_int_equal(strncmp(name, "host_", 5), 0);
	assert_non_null(labels);
	assert_true(isfinite(value));
	assert_true(value >= 0);
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		r = realloc(s->r, s->cap * sizeof(*s->r));
		if (!r)
			abort();
		s->r = r;
	}
	r = &s->r[s->n++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->labels[0] = '\0';
	for (i = 0; labels[i]; i += 2) {
		assert_true(name_ok(labels[i], 0));
		assert_non_null(labels[i + 1]);
		off += (size_t)snprintf(r->labels + off, sizeof(r->labels) - off, "%s%s=%s",
		                        i ? "," : "", labels[i], labels[i + 1]);
		assert_true(off < sizeof(r->labels));
	}
	r->v = value;
}

static const struct rec *find(const struct sink *s, const char *name, const char *labels)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->r[i].name, name) == 0 && strcmp(s->r[i].labels, labels) == 0)
			return &s->r[i];
	return NULL;
}

static double get(const struct sink *s, const char *name, const char *labels)
{
	const struct rec *r = find(s, name, labels);

	if (!r) {
		fail_msg("no sample %s{%s}", name, labels);
		return NAN;
	}
	return r->v;
}

static size_t count(const struct sink *s, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += strcmp(s->r[i].name, name) == 0;
	return n;
}

static size_t count_suffix(const struct sink *s, const char *suffix)
{
	size_t n = 0, l = strlen(suffix);

	for (size_t i = 0; i < s->n; i++) {
		size_t nl = strlen(s->r[i].name);
		n += nl >= l && strcmp(s->r[i].name + nl - l, suffix) == 0;
	}
	return n;
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-6)

/* ---- A statvfs() that answers from a table and remembers what it was asked ---- */

struct fakefs {
	const char *path;
	unsigned long bsize, frsize;
	unsigned long blocks, bfree, bavail, files, ffree, flag;
};

static const struct fakefs fakefs[] = {
    {"/", 4096, 4096, 1000000, 400000, 350000, 65536, 60000, 0},
    {"/data disk", 1024, 0, 1000, 1000, 1000, 10, 10, ST_RDONLY}, /* no f_frsize */
    {"/mnt", 4096, 4096, 100, 50, 50, 100, 0, 0},
    {"/boot/efi", 512, 512, 2000, 1000, 1000, 0, 0, 0}, /* vfat: no inodes */
    {"/var/lib/docker/volumes/x", 4096, 4096, 1, 1, 1, 1, 1, 0},
    {NULL, 0, 0, 0, 0, 0, 0, 0, 0},
};

struct asked {
	char path[16][128];
	int n;
};

static int fake_statvfs(void *arg, const char *path, struct statvfs *st)
{
	struct asked *a = arg;

	if (a->n < 16)
		snprintf(a->path[a->n++], sizeof(a->path[0]), "%s", path);
	for (const struct fakefs *f = fakefs; f->path; f++) {
		if (strcmp(f->path, path) != 0)
			continue;
		memset(st, 0, sizeof(*st));
		st->f_bsize = f->bsize;
		st->f_frsize = f->frsize;
		st->f_blocks = f->blocks;
		st->f_bfree = f->bfree;
		st->f_bavail = f->bavail;
		st->f_files = f->files;
		st->f_ffree = f->ffree;
		st->f_flag = f->flag;
		return 0;
	}
	errno = ENOENT;
	return -1;
}

/* ---- Each test gets a private directory with a symlink "proc" to the snapshot in use ---- */

struct fx {
	char tmp[64];
	char link[96];
	char mounts[128];
	char fixtures[PATH_MAX];
	struct collect *c;
	struct sink sink;
	struct asked asked;
};

static int setup(void **state)
{
	const char *src = getenv("OUTPOST_SRC");
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->fixtures, sizeof(fx->fixtures), "%s/tests/plugins/metrics/fixtures",
	         src ? src : "../..");
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/collect_test.XXXXXX");
	if (!mkdtemp(fx->tmp))
		return -1;
	snprintf(fx->link, sizeof(fx->link), "%s/proc", fx->tmp);
	snprintf(fx->mounts, sizeof(fx->mounts), "%s/mounts", fx->link);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	collect_free(fx->c);
	free(fx->sink.r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->tmp);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void point_at(struct fx *fx, const char *dir)
{
	unlink(fx->link);
	assert_int_equal(symlink(dir, fx->link), 0);
}

static void use(struct fx *fx, const char *snapshot)
{
	char dir[PATH_MAX + 64];

	snprintf(dir, sizeof(dir), "%s/%s", fx->fixtures, snapshot);
	point_at(fx, dir);
}

static void open_collector(struct fx *fx, const char *first)
{
	use(fx, first);
	assert_int_equal(collect_new(fx->link, fx->mounts, fake_statvfs, &fx->asked, &fx->c), 0);
}

static int sample(struct fx *fx, const char *snapshot, int64_t now_ms)
{
	if (snapshot)
		use(fx, snapshot);
	fx->sink.n = 0;
	fx->asked.n = 0;
	return collect_sample(fx->c, now_ms, sink_emit, &fx->sink);
}

/* A snapshot written by the test: a directory with the named files. */
static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static const char *gen_dir(struct fx *fx)
{
	static char dir[128];

	snprintf(dir, sizeof(dir), "%s/gen", fx->tmp);
	mkdir(dir, 0755);
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/net");
	mkdir(dir, 0755);
	dir[strlen(dir) - 4] = '\0';
	return dir;
}

/* ---- Tests ---- */

static void test_new_refuses_bad_arguments(void **state)
{
	struct collect *c = (struct collect *)1;

	assert_int_equal(collect_new(NULL, NULL, NULL, NULL, &c), OUTPOST_E_BAD_ARGS);
	assert_int_equal(collect_new("/nonexistent/proc", NULL, NULL, NULL, &c),
	                 OUTPOST_E_NOT_FOUND);
	assert_null(c);
	assert_int_equal(collect_sample(NULL, 0, sink_emit, NULL), OUTPOST_E_BAD_ARGS);
	collect_free(NULL);
}

static void test_delta_handles_32bit_wrap_and_refuses_resets(void **state)
{
	uint64_t d;

	assert_int_equal(collect_delta(10, 15, &d), 0);
	assert_int_equal(d, 5);
	assert_int_equal(collect_delta(4294967000u, 704, &d), 0); /* wrapped at 2^32 */
	assert_int_equal(d, 1000);
	assert_int_equal(collect_delta(UINT32_MAX, 0, &d), 0);
	assert_int_equal(d, 1);
	assert_int_equal(collect_delta((UINT64_C(1) << 31) + 10, 5, &d), 0);
	assert_int_equal(d, (UINT64_C(1) << 31) - 5);
	/* Fell by less than half the 32-bit range: a reset, not a wrap worth 4 GB. */
	assert_int_equal(collect_delta(1460, 10, &d), -1);
	assert_int_equal(collect_delta((UINT64_C(1) << 31) - 1, 0, &d), -1);
	/* A 64-bit counter that went down was reset. */
	assert_int_equal(collect_delta(UINT64_C(5000000000), 1000, &d), -1);
}

static void test_first_sample_emits_gauges_and_no_rates(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);

	assert_int_equal(count(s, "host_cpu_percent"), 0);
	assert_int_equal(count_suffix(s, "_per_second"), 0);
	assert_int_equal(count(s, "host_disk_busy_percent"), 0);

	assert_near(get(s, "host_cpu_count", ""), 2);
	assert_near(get(s, "host_load1", ""), 1.35);
	assert_near(get(s, "host_load5", ""), 0.59);
	assert_near(get(s, "host_load15", ""), 0.25);
	assert_near(get(s, "host_thread_count", ""), 104);
	assert_near(get(s, "host_process_count", ""), 3); /* 1, 42, 8643; not sys, 12ab */
	assert_near(get(s, "host_processes", "state=running"), 2);
	assert_near(get(s, "host_processes", "state=blocked"), 1);

	assert_near(get(s, "host_memory_bytes", "kind=total"), 24684092.0 * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=free"), 23603236.0 * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=available"), 23843668.0 * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=used"), (24684092.0 - 23843668) * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=buffers"), 158788.0 * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=cached"), 242072.0 * 1024);
	assert_near(get(s, "host_swap_bytes", "kind=total"), 2097152.0 * 1024);
	assert_near(get(s, "host_swap_bytes", "kind=free"), 1572864.0 * 1024);
	assert_near(get(s, "host_swap_bytes", "kind=used"), 524288.0 * 1024);

	/* tcp: the recorded LISTEN line plus 3 established, 2 time_wait, 1 close_wait, 1 listen;
	 * tcp6: 1 listen, 2 established, 1 syn_recv. */
	assert_near(get(s, "host_tcp_connections", "state=established"), 5);
	assert_near(get(s, "host_tcp_connections", "state=listen"), 3);
	assert_near(get(s, "host_tcp_connections", "state=time_wait"), 2);
	assert_near(get(s, "host_tcp_connections", "state=close_wait"), 1);
	assert_near(get(s, "host_tcp_connections", "state=syn_recv"), 1);
	assert_near(get(s, "host_tcp_connections", "state=fin_wait1"), 0);
	assert_int_equal(count(s, "host_tcp_connections"), 11);

	assert_near(get(s, "host_collect_parse_errors_total", ""), 0);
	assert_int_equal(collect_parse_errors(fx->c), 0);
}

static void test_second_sample_gives_exact_cpu_percent_and_rates(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	double sum = 0;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(sample(fx, "t1", 11000), 0);

	/* cpu line deltas: 100 0 50 800 30 0 10 10 of 1000 jiffies. */
	assert_near(get(s, "host_cpu_percent", "mode=user"), 10);
	assert_near(get(s, "host_cpu_percent", "mode=nice"), 0);
	assert_near(get(s, "host_cpu_percent", "mode=system"), 5);
	assert_near(get(s, "host_cpu_percent", "mode=idle"), 80);
	assert_near(get(s, "host_cpu_percent", "mode=iowait"), 3);
	assert_near(get(s, "host_cpu_percent", "mode=irq"), 0);
	assert_near(get(s, "host_cpu_percent", "mode=softirq"), 1);
	assert_near(get(s, "host_cpu_percent", "mode=steal"), 1);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->r[i].name, "host_cpu_percent") == 0)
			sum += s->r[i].v;
	assert_near(sum, 100);
	assert_int_equal(count(s, "host_cpu_core_percent"), 0); /* off by default */

	assert_near(get(s, "host_forks_per_second", ""), 12);
	assert_near(get(s, "host_context_switches_per_second", ""), 2500);
	assert_near(get(s, "host_processes", "state=running"), 5);

	/* vda: +100 reads, +2048 sectors read, +50 writes, +4096 sectors written, +2500 io ms */
	assert_near(get(s, "host_disk_reads_per_second", "device=vda"), 10);
	assert_near(get(s, "host_disk_writes_per_second", "device=vda"), 5);
	assert_near(get(s, "host_disk_read_bytes_per_second", "device=vda"), 2048 * 512 / 10.0);
	assert_near(get(s, "host_disk_write_bytes_per_second", "device=vda"), 4096 * 512 / 10.0);
	assert_near(get(s, "host_disk_busy_percent", "device=vda"), 25);
	/* nvme0n1 was busy 20 s in 10 s (io ms overlaps across queues): capped at 100 */
	assert_near(get(s, "host_disk_busy_percent", "device=nvme0n1"), 100);
	assert_near(get(s, "host_disk_read_bytes_per_second", "device=nvme0n1"), 4096);

	/* eth0: +1e6 rx bytes, +1000 packets, +10 errs, +20 drops; +5e5 tx bytes, +400, 0, +5 */
	assert_near(get(s, "host_network_receive_bytes_per_second", "interface=eth0"), 100000);
	assert_near(get(s, "host_network_receive_packets_per_second", "interface=eth0"), 100);
	assert_near(get(s, "host_network_receive_errors_per_second", "interface=eth0"), 1);
	assert_near(get(s, "host_network_receive_drops_per_second", "interface=eth0"), 2);
	assert_near(get(s, "host_network_transmit_bytes_per_second", "interface=eth0"), 50000);
	assert_near(get(s, "host_network_transmit_packets_per_second", "interface=eth0"), 40);
	assert_near(get(s, "host_network_transmit_errors_per_second", "interface=eth0"), 0);
	assert_near(get(s, "host_network_transmit_drops_per_second", "interface=eth0"), 0.5);
	assert_near(get(s, "host_network_receive_bytes_per_second", "interface=eth1"), 0);

	assert_near(get(s, "host_tcp_connections", "state=established"), 4);
	assert_near(get(s, "host_tcp_connections", "state=time_wait"), 3);
	assert_near(get(s, "host_memory_bytes", "kind=available"), 23806952.0 * 1024);
	assert_near(get(s, "host_load1", ""), 1.32);
}

static void test_per_cpu_percent_when_enabled(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	collect_set_per_cpu(fx->c, 1);
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(count(s, "host_cpu_core_percent"), 0);
	assert_int_equal(sample(fx, "t1", 11000), 0);
	assert_near(get(s, "host_cpu_core_percent", "cpu=0,mode=user"), 8);
	assert_near(get(s, "host_cpu_core_percent", "cpu=0,mode=idle"), 84);
	assert_near(get(s, "host_cpu_core_percent", "cpu=1,mode=user"), 12);
	assert_near(get(s, "host_cpu_core_percent", "cpu=1,mode=idle"), 76);
	assert_int_equal(count(s, "host_cpu_core_percent"), 16);
	assert_near(get(s, "host_cpu_percent", "mode=user"), 10);
}

static void test_partitions_and_idle_loop_devices_are_left_out(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *shown[] = {"vda", "nvme0n1", "loop8", "dm-1", "dm-10", "sdb"};
	const char *hidden[] = {"vda1", "nvme0n1p1", "loop0", "loop7", "zram0"};
	char l[64];

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(sample(fx, "t1", 11000), 0);
	for (size_t i = 0; i < sizeof(shown) / sizeof(*shown); i++) {
		snprintf(l, sizeof(l), "device=%s", shown[i]);
		assert_non_null(find(s, "host_disk_reads_per_second", l));
	}
	for (size_t i = 0; i < sizeof(hidden) / sizeof(*hidden); i++) {
		snprintf(l, sizeof(l), "device=%s", hidden[i]);
		assert_null(find(s, "host_disk_reads_per_second", l));
	}
	assert_int_equal(count(s, "host_disk_reads_per_second"), 6);
	assert_near(get(s, "host_disk_reads_per_second", "device=loop8"), 0);
}

static void test_loopback_and_silent_interfaces_are_left_out(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(sample(fx, "t1", 11000), 0);
	assert_null(find(s, "host_network_receive_bytes_per_second", "interface=lo"));
	assert_null(find(s, "host_network_receive_bytes_per_second", "interface=ifb0"));
	assert_int_equal(count(s, "host_network_receive_bytes_per_second"), 2); /* eth0, eth1 */
	assert_int_equal(count_suffix(s, "_per_second") - count(s, "host_forks_per_second") -
	                     count(s, "host_context_switches_per_second"),
	                 2 * 8 + 6 * 4);
}

static void test_pseudo_network_and_duplicate_filesystems_are_left_out(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *root = "mount=/,device=/dev/vda,fstype=ext4";
	const char *data = "mount=/data disk,device=/dev/vdb,fstype=xfs";
	const char *efi = "mount=/boot/efi,device=/dev/sda1,fstype=vfat";

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);

	/* Only real filesystems were measured, each once, in mount table order: not proc, sysfs,
	 * tmpfs, devpts, cgroup, overlay, squashfs, nfs4, fuse.sshfs; not the bind mount of
	 * /dev/vda; not /dev/vdc, hidden under /dev/vdd on /mnt. */
	assert_int_equal(fx->asked.n, 4);
	assert_string_equal(fx->asked.path[0], "/");
	assert_string_equal(fx->asked.path[1], "/data disk");
	assert_string_equal(fx->asked.path[2], "/mnt");
	assert_string_equal(fx->asked.path[3], "/boot/efi");
	assert_int_equal(count(s, "host_filesystem_size_bytes"), 4);
	assert_non_null(
	    find(s, "host_filesystem_size_bytes", "mount=/mnt,device=/dev/vdd,fstype=ext4"));

	assert_near(get(s, "host_filesystem_size_bytes", root), 1000000.0 * 4096);
	assert_near(get(s, "host_filesystem_used_bytes", root), 600000.0 * 4096);
	assert_near(get(s, "host_filesystem_free_bytes", root), 400000.0 * 4096);
	assert_near(get(s, "host_filesystem_available_bytes", root), 350000.0 * 4096);
	assert_near(get(s, "host_filesystem_used_percent", root), 100 * 600000.0 / 950000);
	assert_near(get(s, "host_filesystem_inodes", root), 65536);
	assert_near(get(s, "host_filesystem_inodes_used", root), 5536);
	assert_near(get(s, "host_filesystem_inodes_free", root), 60000);
	assert_near(get(s, "host_filesystem_inodes_used_percent", root), 100 * 5536.0 / 65536);
	assert_near(get(s, "host_filesystem_readonly", root), 0);

	assert_near(get(s, "host_filesystem_size_bytes", data), 1000.0 * 1024); /* f_bsize */
	assert_near(get(s, "host_filesystem_used_percent", data), 0);
	assert_near(get(s, "host_filesystem_readonly", data), 1);

	assert_near(get(s, "host_filesystem_size_bytes", efi), 2000.0 * 512);
	assert_null(find(s, "host_filesystem_inodes", efi));
	assert_int_equal(count(s, "host_filesystem_inodes"), 3);
}

static void test_32bit_wrap_gives_the_true_rate_and_resets_give_none(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *eth0 = "interface=eth0";

	open_collector(fx, "wrap0");
	assert_int_equal(sample(fx, NULL, 21000), 0);
	assert_int_equal(sample(fx, "wrap1", 31000), 0);
	/* rx bytes 4294967000 -> 704: wrapped, 1000 bytes in 10 s. */
	assert_near(get(s, "host_network_receive_bytes_per_second", eth0), 100);
	/* rx packets 1460 -> 10 and tx bytes 5e9 -> 1000 were reset: no rate, not a bogus one. */
	assert_null(find(s, "host_network_receive_packets_per_second", eth0));
	assert_null(find(s, "host_network_transmit_bytes_per_second", eth0));
	/* The other counters of the interface are unaffected. */
	assert_near(get(s, "host_network_transmit_packets_per_second", eth0), 10);
	assert_near(get(s, "host_network_receive_errors_per_second", eth0), 0);
	/* io ms 4294967000 -> 704 (a 32-bit field in older kernels): 1000 ms in 10 s. */
	assert_near(get(s, "host_disk_busy_percent", "device=vda"), 10);
	assert_near(get(s, "host_disk_reads_per_second", "device=vda"), 10);

	/* After a reset the counter is followed from its new value. */
	assert_int_equal(sample(fx, "wrap2", 41000), 0);
	assert_near(get(s, "host_network_receive_packets_per_second", eth0), 1);
	assert_near(get(s, "host_network_transmit_bytes_per_second", eth0), 100);
}

static void test_device_that_vanished_starts_afresh(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "wrap0");
	assert_int_equal(sample(fx, NULL, 21000), 0);
	assert_int_equal(sample(fx, "wrap1", 31000), 0); /* sdb gone */
	assert_null(find(s, "host_disk_reads_per_second", "device=sdb"));
	/* sdb is back with counters above those of wrap0: still no rate, they may not compare. */
	assert_int_equal(sample(fx, "wrap2", 41000), 0);
	assert_null(find(s, "host_disk_reads_per_second", "device=sdb"));
	assert_non_null(find(s, "host_disk_reads_per_second", "device=vda"));
	assert_int_equal(sample(fx, "wrap2", 51000), 0);
	assert_near(get(s, "host_disk_reads_per_second", "device=sdb"), 0);
}

static void test_reboot_forgets_previous_counters(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(sample(fx, "reboot", 11000), 0); /* btime moved by an hour */
	assert_int_equal(count(s, "host_cpu_percent"), 0);
	assert_int_equal(count_suffix(s, "_per_second"), 0);
	assert_int_equal(count(s, "host_disk_busy_percent"), 0);
	assert_non_null(find(s, "host_load1", ""));

	assert_int_equal(sample(fx, "reboot2", 21000), 0);
	assert_near(get(s, "host_cpu_percent", "mode=user"), 10);
	assert_near(get(s, "host_context_switches_per_second", ""), 500);
	assert_near(get(s, "host_network_receive_bytes_per_second", "interface=eth0"), 0);
}

static void test_clock_that_did_not_advance_gives_no_rates(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 5000), 0);
	assert_int_equal(sample(fx, "t1", 5000), 0);
	assert_int_equal(count_suffix(s, "_per_second"), 0);
	assert_int_equal(count(s, "host_disk_busy_percent"), 0);
	/* CPU shares come from the kernel's own jiffies, not from now_ms. */
	assert_near(get(s, "host_cpu_percent", "mode=user"), 10);
}

static void test_malformed_lines_are_skipped_and_counted(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;

	open_collector(fx, "t0");
	assert_int_equal(sample(fx, NULL, 1000), 0);
	assert_int_equal(sample(fx, "malformed", 11000), 0);
	/* 3 in stat, 3 in meminfo, 3 in diskstats, 3 in net/dev, 3 in net/tcp, the cut last line
	 * of net/tcp6, 2 in mounts: see fixtures/make.py. */
	assert_int_equal(collect_parse_errors(fx->c), 18);
	assert_near(get(s, "host_collect_parse_errors_total", ""), 18);
	/* The good lines around them still count. */
	assert_near(get(s, "host_cpu_percent", "mode=user"), 10);
	assert_near(get(s, "host_forks_per_second", ""), 12);
	assert_near(get(s, "host_memory_bytes", "kind=cached"), 295008.0 * 1024);
	assert_near(get(s, "host_memory_bytes", "kind=free"), 23452992.0 * 1024);
	assert_near(get(s, "host_disk_reads_per_second", "device=vda"), 10);
	assert_near(get(s, "host_network_receive_bytes_per_second", "interface=eth0"), 100000);
	assert_null(find(s, "host_network_receive_bytes_per_second", "interface=eth8"));
	assert_near(get(s, "host_tcp_connections", "state=established"), 4);
	assert_near(get(s, "host_tcp_connections", "state=syn_recv"), 1);
	assert_int_equal(count(s, "host_filesystem_size_bytes"), 4);
}

static void test_missing_sources_are_reported_and_the_rest_emitted(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *dir = gen_dir(fx);
	const char stat[] = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
	                    "procs_running 3\n";

	write_file(dir, "stat", stat, sizeof(stat) - 1);
	point_at(fx, dir);
	assert_int_equal(collect_new(fx->link, fx->mounts, fake_statvfs, &fx->asked, &fx->c), 0);
	assert_int_equal(sample(fx, NULL, 1000), OUTPOST_E_UNAVAILABLE);
	assert_near(get(s, "host_cpu_count", ""), 1);
	assert_near(get(s, "host_processes", "state=running"), 3);
	assert_null(find(s, "host_load1", ""));
	assert_int_equal(count(s, "host_tcp_connections"), 0);
	assert_int_equal(collect_parse_errors(fx->c), 0);
}

static void test_overlong_line_is_skipped_and_counted(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *dir = gen_dir(fx);
	struct buf b = BUF_INIT;

	/* A 200 KB intr line fits once the buffer has grown; a 3 MB one is past the limit. */
	assert_int_equal(buf_puts(&b, "cpu  1 2 3 4 5 6 7 8 0 0\nintr"), 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(buf_puts(&b, " 7"), 0);
	assert_int_equal(buf_puts(&b, "\ncpu0 1 2 3 4 5 6 7 8 0 0\nsoftirq"), 0);
	for (int i = 0; i < 1500000; i++)
		assert_int_equal(buf_puts(&b, " 9"), 0);
	assert_int_equal(buf_puts(&b, "\ncpu1 1 2 3 4 5 6 7 8 0 0\nprocs_running 7\n"), 0);
	write_file(dir, "stat", b.data, b.len);
	buf_free(&b);

	point_at(fx, dir);
	assert_int_equal(collect_new(fx->link, fx->mounts, fake_statvfs, &fx->asked, &fx->c), 0);
	assert_int_equal(sample(fx, NULL, 1000), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(collect_parse_errors(fx->c), 1);
	assert_near(get(s, "host_cpu_count", ""), 2);
	assert_near(get(s, "host_processes", "state=running"), 7);
}

static void test_tcp_counts_stream_through_a_large_table(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	const char *dir = gen_dir(fx);
	struct buf b = BUF_INIT;
	const int n = 200000;

	assert_int_equal(buf_puts(&b, "  sl  local_address rem_address   st tx_queue rx_queue tr "
	                              "tm->when retrnsmt   uid  timeout inode\n"),
	                 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(
		    buf_printf(&b,
		               "%6d: 0100007F:%04X 0100007F:%04X %02X 00000000:00000000 "
		               "00:00000000 00000000  1000        0 %d 1 "
		               "0000000000000000 20 4 30 10 -1\n",
		               i, i & 0xffff, (i * 7) & 0xffff, i % 3 ? 0x01 : 0x06, 100000 + i),
		    0);
	write_file(dir, "net/tcp", b.data, b.len);
	buf_free(&b);

	point_at(fx, dir);
	assert_int_equal(collect_new(fx->link, fx->mounts, fake_statvfs, &fx->asked, &fx->c), 0);
	sample(fx, NULL, 1000); /* no tcp6 is fine; the other files are missing */
	assert_near(get(s, "host_tcp_connections", "state=time_wait"), (n + 2) / 3);
	assert_near(get(s, "host_tcp_connections", "state=established"), n - (n + 2) / 3);
	assert_int_equal(collect_parse_errors(fx->c), 0);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_real_proc_is_sane(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	struct timespec nap = {0, 200 * 1000 * 1000};
	double sum = 0;
	int rc;

	assert_int_equal(collect_new("/proc", NULL, NULL, NULL, &fx->c), 0);
	rc = collect_sample(fx->c, mono_ms(), sink_emit, s);
	assert_true(rc == 0 || rc == OUTPOST_E_UNAVAILABLE);
	nanosleep(&nap, NULL);
	s->n = 0;
	rc = collect_sample(fx->c, mono_ms(), sink_emit, s);
	assert_true(rc == 0 || rc == OUTPOST_E_UNAVAILABLE);

	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->r[i].name, "host_cpu_percent") == 0) {
			assert_true(s->r[i].v <= 100);
			sum += s->r[i].v;
		}
	}
	if (count(s, "host_cpu_percent")) /* no jiffy may pass on an idle host in 200 ms */
		assert_true(fabs(sum - 100) < 0.01);
	assert_true(get(s, "host_cpu_count", "") >= 1);
	assert_true(get(s, "host_memory_bytes", "kind=total") > 0);
	assert_true(get(s, "host_memory_bytes", "kind=available") <=
	            get(s, "host_memory_bytes", "kind=total"));
	assert_true(get(s, "host_process_count", "") >= 1);
	assert_true(get(s, "host_thread_count", "") >= 1);
	assert_non_null(find(s, "host_load1", ""));
	assert_true(count(s, "host_filesystem_size_bytes") >= 1);
	assert_int_equal(count(s, "host_tcp_connections"), 11);
	assert_int_equal(collect_parse_errors(fx->c), 0);
}

/* ---- TCP states through sock_diag ---- */

/* Appends one netlink message of the given type (a TCPDIAG_GETSOCK record with state, or a
 * NLMSG_DONE carrying err) to the datagram in b; returns its aligned length. */
static size_t nl_put(char *b, size_t off, uint16_t type, uint32_t seq, int state, int err)
{
	struct nlmsghdr *h = (void *)(b + off);
	size_t payload = type == NLMSG_DONE ? sizeof(int) : sizeof(struct inet_diag_msg);

	memset(h, 0, NLMSG_SPACE(payload));
	h->nlmsg_len = NLMSG_LENGTH(payload);
	h->nlmsg_type = type;
	h->nlmsg_seq = seq;
	if (type == NLMSG_DONE)
		memcpy(NLMSG_DATA(h), &err, sizeof(err));
	else
		((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_state = (uint8_t)state;
	return off + NLMSG_SPACE(payload);
}

static void test_tcp_diag_batch_counts_states_until_done(void **state)
{
	_Alignas(struct nlmsghdr) char b[1024];
	uint64_t count[COLLECT_TCP_STATES] = {0}, bad = 0;
	size_t n = 0;

	(void)state;
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 1, 0); /* established */
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 1, 0);
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 10, 0); /* listen */
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 12, 0); /* new_syn_recv */
	/* More to come: no NLMSG_DONE yet. */
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), 0);
	assert_int_equal(count[1], 2);
	assert_int_equal(count[10], 1);
	assert_int_equal(count[12], 1);

	n = nl_put(b, 0, TCPDIAG_GETSOCK, 7, 6, 0);  /* time_wait */
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 13, 0); /* a state this code does not know */
	n = nl_put(b, n, TCPDIAG_GETSOCK, 7, 0, 0);  /* and 0, which is no state */
	n = nl_put(b, n, NLMSG_DONE, 7, 0, 0);
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), 1);
	assert_int_equal(count[6], 1);
	assert_int_equal(bad, 2);
	assert_int_equal(count[0], 0);
}

static void test_tcp_diag_batch_refuses_errors_strangers_and_cut_messages(void **state)
{
	_Alignas(struct nlmsghdr) char b[1024];
	uint64_t count[COLLECT_TCP_STATES] = {0}, bad = 0;
	struct nlmsghdr *h = (void *)b;
	size_t n;

	(void)state;
	n = nl_put(b, 0, NLMSG_DONE, 7, 0, -EINTR); /* a dump cut short */
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), -1);

	n = nl_put(b, 0, TCPDIAG_GETSOCK, 8, 1, 0); /* another request's answer */
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), -1);

	n = nl_put(b, 0, TCPDIAG_GETSOCK, 7, 1, 0);
	h->nlmsg_type = NLMSG_ERROR; /* the kernel refused the request */
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), -1);

	n = nl_put(b, 0, TCPDIAG_GETSOCK, 7, 1, 0);
	assert_int_equal(collect_tcp_diag_batch(b, n - 1, 7, count, &bad), -1); /* cut */
	h->nlmsg_len = 4;                                                       /* impossible */
	assert_int_equal(collect_tcp_diag_batch(b, n, 7, count, &bad), -1);

	n = nl_put(b, 0, TCPDIAG_GETSOCK, 7, 1, 0);
	memset(b + n, 0, 8);
	assert_int_equal(collect_tcp_diag_batch(b, n + 8, 7, count, &bad), -1); /* a scrap after */
	assert_int_equal(bad, 0); /* (count is partial after -1: the caller drops it) */
	assert_int_equal(collect_tcp_diag_batch(b, 0, 7, count, &bad), 0); /* empty: wait on */
}

/* The real kernel through both sources: a listener and a connected pair of this process show
 * up in each, and the real /proc is read through sock_diag without falling back. */
static void test_real_tcp_states_through_sock_diag_and_files(void **state)
{
	struct fx *fx = *state;
	struct sink *s = &fx->sink;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct collect *files = NULL;
	int l, cl, sv;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof(a)), 0);
	sv = accept(l, NULL, NULL);
	assert_true(sv >= 0);

	assert_int_equal(collect_new("/proc", NULL, NULL, NULL, &fx->c), 0);
	collect_sample(fx->c, mono_ms(), sink_emit, s);
	assert_int_equal(fx->c->tcp_diag, 1); /* it did not fall back to the files */
	assert_true(get(s, "host_tcp_connections", "state=listen") >= 1);
	assert_true(get(s, "host_tcp_connections", "state=established") >= 2);
	assert_int_equal(count(s, "host_tcp_connections"), 11);

	point_at(fx, "/proc"); /* another path to the same /proc: the files are read */
	assert_int_equal(collect_new(fx->link, NULL, NULL, NULL, &files), 0);
	s->n = 0;
	collect_sample(files, mono_ms(), sink_emit, s);
	assert_int_equal(files->tcp_diag, 0);
	assert_true(get(s, "host_tcp_connections", "state=listen") >= 1);
	assert_true(get(s, "host_tcp_connections", "state=established") >= 2);
	assert_int_equal(collect_parse_errors(fx->c) + collect_parse_errors(files), 0);
	collect_free(files);
	close(sv);
	close(cl);
	close(l);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_refuses_bad_arguments),
	    cmocka_unit_test(test_delta_handles_32bit_wrap_and_refuses_resets),
	    T(test_first_sample_emits_gauges_and_no_rates),
	    T(test_second_sample_gives_exact_cpu_percent_and_rates),
	    T(test_per_cpu_percent_when_enabled),
	    T(test_partitions_and_idle_loop_devices_are_left_out),
	    T(test_loopback_and_silent_interfaces_are_left_out),
	    T(test_pseudo_network_and_duplicate_filesystems_are_left_out),
	    T(test_32bit_wrap_gives_the_true_rate_and_resets_give_none),
	    T(test_device_that_vanished_starts_afresh),
	    T(test_reboot_forgets_previous_counters),
	    T(test_clock_that_did_not_advance_gives_no_rates),
	    T(test_malformed_lines_are_skipped_and_counted),
	    T(test_missing_sources_are_reported_and_the_rest_emitted),
	    T(test_overlong_line_is_skipped_and_counted),
	    T(test_tcp_counts_stream_through_a_large_table),
	    T(test_real_proc_is_sane),
	    cmocka_unit_test(test_tcp_diag_batch_counts_states_until_done),
	    cmocka_unit_test(test_tcp_diag_batch_refuses_errors_strangers_and_cut_messages),
	    T(test_real_tcp_states_through_sock_diag_and_files),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
