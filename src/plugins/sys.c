/* The built-in sys plugin: ping (the latency benchmark's op) and facts, the host's inventory
 * read from /proc, /sys, /etc and a few local syscalls. Read-only; never touches the network. */
#include "plugins/builtin.h"
#include "core/buf.h"
#include "core/wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "unknown"
#endif

#define SYS_STR_MAX 256        /* bytes kept of any string read from the host */
#define SYS_LINE_MAX 8192      /* longer lines are skipped whole */
#define SYS_FILE_MAX (4 << 20) /* bytes read of any one file */
#define SYS_LIST_MAX 1024      /* entries kept of disks, mounts, NICs, addresses per NIC */

/* ---- Strings: bounded, valid UTF-8 ---- */

/* A JSON string of the first SYS_STR_MAX bytes of s: invalid bytes (and NUL) become U+FFFD, a
 * character cut by the limit is dropped. NULL on OOM. */
static json_t *sys_jstr(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char out[SYS_STR_MAX * 3];
	size_t o = 0, i = 0;

	if (n > SYS_STR_MAX) {
		n = SYS_STR_MAX;
		size_t k = n;
		while (k > 0 && k > n - 4 && (p[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && p[k - 1] >= 0xc0 && !wire_utf8_len((const char *)p + k - 1, n - k + 1))
			n = k - 1; /* an incomplete last character */
	}
	while (i < n) {
		size_t len = wire_utf8_len((const char *)p + i, n - i);
		if (len) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return json_stringn_nocheck(out, o);
}

static json_t *sys_jstr0(const char *s)
{
	return sys_jstr(s, strlen(s));
}

/* Sets o[k] = v, JSON null when v is NULL (a source that failed). */
static void jset(json_t *o, const char *k, json_t *v)
{
	json_object_set_new(o, k, v ? v : json_null());
}

static char *trim(char *s, size_t *len)
{
	size_t n = *len;

	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	s[n] = '\0';
	*len = n;
	return s;
}

/* ---- Reading files under the root ---- */

/* Called for each line (NUL-terminated, without its newline); non-zero stops the scan. */
typedef int (*sys_line_fn)(void *arg, char *line, size_t len);

/* Calls fn for each line of path (relative to dir) until fn says stop, the file ends, or
 * SYS_FILE_MAX bytes are read. Lines longer than SYS_LINE_MAX are skipped whole. Returns 0,
 * or -1 when the file cannot be opened or read. */
static int sys_scan(int dir, const char *path, sys_line_fn fn, void *arg)
{
	char buf[SYS_LINE_MAX];
	size_t have = 0, total = 0;
	int skipping = 0, rc = -1, fd;

	fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	while (total < SYS_FILE_MAX) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		char *p = buf, *end, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		total += (size_t)n;
		have += (size_t)n;
		end = buf + have;
		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			*nl = '\0';
			if (!skipping && fn(arg, p, (size_t)(nl - p))) {
				rc = 0;
				goto out;
			}
			skipping = 0;
			p = nl + 1;
		}
		have = (size_t)(end - p);
		memmove(buf, p, have);
		if (have == sizeof(buf)) {
			skipping = 1;
			have = 0;
		}
	}
	if (have && !skipping && total < SYS_FILE_MAX) {
		buf[have] = '\0'; /* have < sizeof(buf): a full buffer was reset above */
		fn(arg, buf, have);
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* Reads a small file (a /sys attribute) into out, trimmed, NUL-terminated. Returns its length,
 * or -1. */
static ssize_t sys_read(int dir, const char *path, char *out, size_t outlen)
{
	size_t have = 0;
	int fd;

	fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	while (have < outlen - 1) {
		ssize_t n = read(fd, out + have, outlen - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	out[have] = '\0';
	memmove(out, trim(out, &have), have + 1);
	return (ssize_t)have;
}

static json_t *sys_read_str(int dir, const char *path)
{
	char v[SYS_STR_MAX + 1];
	ssize_t n = sys_read(dir, path, v, sizeof(v));

	return n > 0 ? sys_jstr(v, (size_t)n) : NULL;
}

/* An unsigned decimal, whole; -1 if s is not one or is past max. */
static int64_t sys_parse_u64(const char *s, int64_t max)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || v > (unsigned long long)max)
		return -1;
	return (int64_t)v;
}

static json_t *sys_read_u64(int dir, const char *path)
{
	char v[32];

	if (sys_read(dir, path, v, sizeof(v)) <= 0)
		return NULL;
	int64_t n = sys_parse_u64(v, INT64_MAX);
	return n < 0 ? NULL : json_integer(n);
}

/* Splits "key : value" lines (cpuinfo) and "KEY: value" lines (meminfo). */
static char *sys_kv(char *line, size_t len, char sep, char **val, size_t *vlen)
{
	char *s = memchr(line, sep, len);
	size_t klen;

	if (!s)
		return NULL;
	*s = '\0';
	klen = (size_t)(s - line);
	*vlen = len - klen - 1;
	*val = trim(s + 1, vlen);
	return trim(line, &klen);
}

/* ---- Sections ---- */

static json_t *facts_agent(int root)
{
	json_t *o = json_object();

	jset(o, "version", json_string(OUTPOST_VERSION));
	return o;
}

struct hosts_scan {
	const char *host;
	json_t *fqdn;
};

/* /etc/hosts: the canonical (first) name of the first line naming our host, if it has a dot. */
static int hosts_line(void *arg, char *line, size_t len)
{
	struct hosts_scan *h = arg;
	char *save = NULL, *canon = NULL, *tok;
	char *hash = memchr(line, '#', len);

	if (hash)
		*hash = '\0';
	if (!strtok_r(line, " \t", &save)) /* the address */
		return 0;
	while ((tok = strtok_r(NULL, " \t", &save))) {
		if (!canon)
			canon = tok;
		if (strcasecmp(tok, h->host) == 0 && strchr(canon, '.')) {
			h->fqdn = sys_jstr0(canon);
			return 1;
		}
	}
	return 0;
}

static int sys_is_machine_id(const char *s, ssize_t n)
{
	if (n != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static json_t *facts_host(int root)
{
	json_t *o = json_object();
	char host[SYS_STR_MAX + 1], mid[64];
	ssize_t n;

	/* The file is what uname -n says; reading it keeps the root prefix honest in tests. */
	n = sys_read(root, "proc/sys/kernel/hostname", host, sizeof(host));
	if (n <= 0) {
		struct utsname u;
		n = uname(&u) == 0 ? (ssize_t)strnlen(u.nodename, sizeof(u.nodename)) : 0;
		if (n > 0 && (size_t)n < sizeof(host))
			memcpy(host, u.nodename, (size_t)n + 1);
		else
			n = 0;
	}
	jset(o, "hostname", n > 0 ? sys_jstr(host, (size_t)n) : NULL);
	if (n > 0 && strchr(host, '.')) {
		jset(o, "fqdn", sys_jstr(host, (size_t)n));
	} else if (n > 0) {
		/* Only the hosts file: a resolver could block on the network. */
		struct hosts_scan h = {host, NULL};
		sys_scan(root, "etc/hosts", hosts_line, &h);
		jset(o, "fqdn", h.fqdn);
	} else {
		jset(o, "fqdn", NULL);
	}
	n = sys_read(root, "etc/machine-id", mid, sizeof(mid));
	jset(o, "machine_id", sys_is_machine_id(mid, n) ? json_stringn(mid, 32) : NULL);
	return o;
}

/* os-release values are shell-quoted: "..." with \ escaping "\$`, or '...', or bare. */
static size_t osrel_unquote(char *v, size_t n)
{
	size_t o = 0;

	if (n && v[0] == '\'') {
		char *q = memchr(v + 1, '\'', n - 1);
		o = q ? (size_t)(q - v - 1) : n - 1;
		memmove(v, v + 1, o);
	} else if (n && v[0] == '"') {
		for (size_t i = 1; i < n && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < n && strchr("\"\\$`", v[i + 1]))
				i++;
			v[o++] = v[i];
		}
	} else {
		o = n;
	}
	v[o] = '\0';
	return o;
}

static int osrel_line(void *arg, char *line, size_t len)
{
	static const struct {
		const char *key, *field;
	} keys[] = {{"ID", "id"}, {"VERSION_ID", "version_id"}, {"PRETTY_NAME", "pretty_name"}};
	char *val, *key;
	size_t vlen;

	if (line[0] == '#' || !(key = sys_kv(line, len, '=', &val, &vlen)))
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].key) == 0)
			jset(arg, keys[i].field, sys_jstr(val, osrel_unquote(val, vlen)));
	return 0;
}

static json_t *facts_os(int root)
{
	json_t *o = json_object();

	jset(o, "id", NULL);
	jset(o, "version_id", NULL);
	jset(o, "pretty_name", NULL);
	if (sys_scan(root, "etc/os-release", osrel_line, o) < 0 &&
	    sys_scan(root, "usr/lib/os-release", osrel_line, o) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *facts_kernel(int root)
{
	struct utsname u;
	json_t *o;

	if (uname(&u) < 0)
		return NULL;
	o = json_object();
	jset(o, "sysname", sys_jstr0(u.sysname));
	jset(o, "release", sys_jstr0(u.release));
	jset(o, "version", sys_jstr0(u.version));
	jset(o, "machine", sys_jstr0(u.machine));
	return o;
}

/* The CPU model's key differs by architecture; the first in this list wins. */
static const char *const cpu_model_keys[] = {"model name", "Processor", "cpu model", "cpu",
                                             "uarch"};
#define CPU_MODEL_KEYS (sizeof(cpu_model_keys) / sizeof(cpu_model_keys[0]))

struct cpu_scan {
	size_t best; /* index in cpu_model_keys of model, CPU_MODEL_KEYS if none */
	json_t *model;
};

static int cpuinfo_line(void *arg, char *line, size_t len)
{
	struct cpu_scan *c = arg;
	char *key, *val;
	size_t vlen;

	if (len == 0) /* end of the first processor's block */
		return c->model != NULL;
	if (!(key = sys_kv(line, len, ':', &val, &vlen)) || vlen == 0)
		return 0;
	for (size_t i = 0; i < c->best; i++) {
		if (strcmp(key, cpu_model_keys[i]) == 0) {
			json_decref(c->model);
			c->model = sys_jstr(val, vlen);
			c->best = i;
			break;
		}
	}
	return c->best == 0;
}

static json_t *facts_cpu(int root)
{
	struct cpu_scan c = {CPU_MODEL_KEYS, NULL};
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	json_t *o = json_object();

	sys_scan(root, "proc/cpuinfo", cpuinfo_line, &c);
	jset(o, "model", c.model);
	jset(o, "count", n > 0 ? json_integer(n) : NULL);
	return o;
}

static int meminfo_line(void *arg, char *line, size_t len)
{
	json_t *o = arg;
	char *key, *val;
	size_t vlen;
	int64_t kb;

	if (!(key = sys_kv(line, len, ':', &val, &vlen)))
		return 0;
	const char *field = strcmp(key, "MemTotal") == 0    ? "total_bytes"
	                    : strcmp(key, "SwapTotal") == 0 ? "swap_total_bytes"
	                                                    : NULL;
	if (!field)
		return 0;
	if (vlen < 3 || strcmp(val + vlen - 3, " kB") != 0)
		return 0;
	val[vlen - 3] = '\0';
	kb = sys_parse_u64(val, INT64_MAX / 1024);
	if (kb >= 0)
		jset(o, field, json_integer(kb * 1024));
	return 0;
}

static json_t *facts_memory(int root)
{
	json_t *o = json_object();

	jset(o, "total_bytes", NULL);
	jset(o, "swap_total_bytes", NULL);
	if (sys_scan(root, "proc/meminfo", meminfo_line, o) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Block devices that exist whether or not anything backs them: listed only when sized. */
static int disk_is_virtual(const char *name)
{
	static const char *const prefixes[] = {"loop", "ram", "zram", "nbd"};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

static int disk_filter(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static json_t *facts_disks(int root)
{
	struct dirent **names = NULL;
	json_t *list = NULL;
	int block, n;

	block = openat(root, "sys/block", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (block < 0)
		return NULL;
	n = scandirat(block, ".", &names, disk_filter, versionsort);
	if (n < 0)
		goto out;
	list = json_array();
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		int dev = openat(block, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		json_t *size, *rot, *d;

		if (dev < 0 || json_array_size(list) >= SYS_LIST_MAX) {
			if (dev >= 0)
				close(dev);
			continue;
		}
		/* size is in 512-byte sectors whatever the device's block size. */
		size = sys_read_u64(dev, "size");
		if (size && json_integer_value(size) > INT64_MAX / 512) {
			json_decref(size);
			size = NULL;
		}
		if (disk_is_virtual(name) && (!size || json_integer_value(size) == 0)) {
			json_decref(size);
			close(dev);
			continue;
		}
		if (size)
			json_integer_set(size, json_integer_value(size) * 512);
		rot = sys_read_u64(dev, "queue/rotational");
		d = json_object();
		jset(d, "name", sys_jstr0(name));
		jset(d, "size_bytes", size);
		jset(d, "rotational", rot ? json_boolean(json_integer_value(rot) != 0) : NULL);
		jset(d, "model", sys_read_str(dev, "device/model"));
		json_decref(rot);
		json_array_append_new(list, d);
		close(dev);
	}
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	close(block);
	return list;
}

/* How facts treats a filesystem type; unlisted types are real and measured. First match wins;
 * a name ending in '.' matches as a prefix. */
enum fs_kind {
	FS_SKIP = 1, /* pseudo or memory-backed: not listed */
	FS_NOSTAT,   /* listed without sizes: statvfs could block on a network or a daemon */
};
static const struct {
	const char *type;
	enum fs_kind kind;
} sys_fstypes[] = {
    {"autofs", FS_SKIP},      {"binfmt_misc", FS_SKIP},
    {"bpf", FS_SKIP},         {"cgroup", FS_SKIP},
    {"cgroup2", FS_SKIP},     {"configfs", FS_SKIP},
    {"debugfs", FS_SKIP},     {"devpts", FS_SKIP},
    {"devtmpfs", FS_SKIP},    {"efivarfs", FS_SKIP},
    {"fusectl", FS_SKIP},     {"hugetlbfs", FS_SKIP},
    {"mqueue", FS_SKIP},      {"nsfs", FS_SKIP},
    {"proc", FS_SKIP},        {"pstore", FS_SKIP},
    {"ramfs", FS_SKIP},       {"rootfs", FS_SKIP},
    {"rpc_pipefs", FS_SKIP},  {"securityfs", FS_SKIP},
    {"selinuxfs", FS_SKIP},   {"sysfs", FS_SKIP},
    {"tmpfs", FS_SKIP},       {"tracefs", FS_SKIP},
    {"nfsd", FS_SKIP},        {"squashfs", FS_SKIP}, /* read-only images (snaps): always full */
    {"fuse.lxcfs", FS_SKIP},  {"fuse.gvfsd-fuse", FS_SKIP},
    {"fuse.portal", FS_SKIP}, {"9p", FS_NOSTAT},
    {"afs", FS_NOSTAT},       {"ceph", FS_NOSTAT},
    {"cifs", FS_NOSTAT},      {"davfs", FS_NOSTAT},
    {"fuse", FS_NOSTAT},      {"fuse.", FS_NOSTAT},
    {"gfs2", FS_NOSTAT},      {"glusterfs", FS_NOSTAT},
    {"lustre", FS_NOSTAT},    {"nfs", FS_NOSTAT},
    {"nfs4", FS_NOSTAT},      {"ocfs2", FS_NOSTAT},
    {"smb3", FS_NOSTAT},      {"smbfs", FS_NOSTAT},
};

static int fs_kind(const char *type)
{
	for (size_t i = 0; i < sizeof(sys_fstypes) / sizeof(sys_fstypes[0]); i++) {
		const char *t = sys_fstypes[i].type;
		size_t n = strlen(t);
		if (t[n - 1] == '.' ? strncmp(type, t, n) == 0 : strcmp(type, t) == 0)
			return (int)sys_fstypes[i].kind;
	}
	return 0;
}

/* Undoes the \ooo escapes of /proc/self/mounts (space, tab, newline, backslash), in place. */
static size_t mount_unescape(char *s)
{
	size_t o = 0;

	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
		    s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			s[o++] =
			    (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

struct mount_scan {
	int root;
	json_t *list;
};

static int mounts_line(void *arg, char *line, size_t len)
{
	struct mount_scan *m = arg;
	char *save = NULL, *dev, *mp, *type, *opts, *opt;
	int kind, ro = 0, fd;
	size_t devlen, mplen;
	json_t *o;

	if (json_array_size(m->list) >= SYS_LIST_MAX)
		return 1;
	if (!(dev = strtok_r(line, " ", &save)) || !(mp = strtok_r(NULL, " ", &save)) ||
	    !(type = strtok_r(NULL, " ", &save)) || !(opts = strtok_r(NULL, " ", &save)))
		return 0;
	kind = fs_kind(type);
	if (kind == FS_SKIP)
		return 0;
	devlen = mount_unescape(dev);
	mplen = mount_unescape(mp);
	for (opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save))
		ro |= strcmp(opt, "ro") == 0;
	o = json_object();
	jset(o, "device", sys_jstr(dev, devlen));
	jset(o, "mount_point", sys_jstr(mp, mplen));
	jset(o, "fstype", sys_jstr0(type));
	jset(o, "read_only", json_boolean(ro));
	jset(o, "total_bytes", NULL);
	jset(o, "free_bytes", NULL);
	jset(o, "avail_bytes", NULL);
	/* O_PATH: no open of the filesystem's files, just a handle to ask statfs. */
	fd = kind == FS_NOSTAT || mp[0] != '/'
	         ? -1
	         : openat(m->root, mp[1] ? mp + 1 : ".", O_PATH | O_CLOEXEC);
	if (fd >= 0) {
		struct statvfs st;
		if (fstatvfs(fd, &st) == 0 && st.f_frsize > 0 &&
		    st.f_blocks <= (uint64_t)INT64_MAX / st.f_frsize) {
			jset(o, "total_bytes",
			     json_integer((json_int_t)(st.f_blocks * st.f_frsize)));
			jset(o, "free_bytes", json_integer((json_int_t)(st.f_bfree * st.f_frsize)));
			jset(o, "avail_bytes",
			     json_integer((json_int_t)(st.f_bavail * st.f_frsize)));
		}
		close(fd);
	}
	json_array_append_new(m->list, o);
	return 0;
}

static json_t *facts_mounts(int root)
{
	struct mount_scan m = {root, json_array()};

	if (sys_scan(root, "proc/self/mounts", mounts_line, &m) < 0) {
		json_decref(m.list);
		return NULL;
	}
	return m.list;
}

static int prefix_len(const struct sockaddr *mask)
{
	const unsigned char *p;
	size_t n;
	int bits = 0;

	if (!mask)
		return -1;
	if (mask->sa_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
		n = 4;
	} else if (mask->sa_family == AF_INET6) {
		p = ((const struct sockaddr_in6 *)mask)->sin6_addr.s6_addr;
		n = 16;
	} else {
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		bits += __builtin_popcount(p[i]);
	return bits;
}

static json_t *nic_new(int net, const char *name, unsigned flags)
{
	json_t *o = json_object();
	int dir = -1;

	if (net >= 0 && name[0] != '.' && !strchr(name, '/'))
		dir = openat(net, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	jset(o, "name", sys_jstr0(name));
	jset(o, "mac", dir >= 0 ? sys_read_str(dir, "address") : NULL);
	jset(o, "mtu", dir >= 0 ? sys_read_u64(dir, "mtu") : NULL);
	jset(o, "up", json_boolean(flags & IFF_UP));
	jset(o, "running", json_boolean(flags & IFF_RUNNING));
	jset(o, "addresses", json_array());
	if (dir >= 0)
		close(dir);
	return o;
}

static json_t *facts_nics(int root)
{
	struct ifaddrs *ifs, *ifa;
	json_t *list, *byname;
	int net;

	if (getifaddrs(&ifs) < 0)
		return NULL;
	net = openat(root, "sys/class/net", O_PATH | O_DIRECTORY | O_CLOEXEC);
	list = json_array();
	byname = json_object(); /* name -> the entry in list (borrowed) */
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		char name[IF_NAMESIZE + 1], addr[INET6_ADDRSTRLEN];
		const void *a;
		json_t *nic, *e;
		int family, bits;

		/* An IPv4 label "eth0:1" is an address of eth0. */
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(ifa->ifa_name, ":"),
		         ifa->ifa_name);
		nic = json_object_get(byname, name);
		if (!nic) {
			if (json_array_size(list) >= SYS_LIST_MAX)
				continue;
			nic = nic_new(net, name, ifa->ifa_flags);
			json_object_set_nocheck(byname, name, nic);
			json_array_append_new(list, nic);
		}
		if (!ifa->ifa_addr)
			continue;
		family = ifa->ifa_addr->sa_family;
		if (family == AF_INET)
			a = &((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
		else if (family == AF_INET6)
			a = &((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
		else
			continue;
		if (!inet_ntop(family, a, addr, sizeof(addr)))
			continue;
		json_t *addrs = json_object_get(nic, "addresses");
		if (json_array_size(addrs) >= SYS_LIST_MAX)
			continue;
		bits = prefix_len(ifa->ifa_netmask);
		e = json_object();
		jset(e, "family", json_string(family == AF_INET ? "ipv4" : "ipv6"));
		jset(e, "address", json_string(addr));
		jset(e, "prefix", bits >= 0 ? json_integer(bits) : NULL);
		json_array_append_new(addrs, e);
	}
	json_decref(byname);
	if (net >= 0)
		close(net);
	freeifaddrs(ifs);
	return list;
}

static int stat_line(void *arg, char *line, size_t len)
{
	int64_t *btime = arg;

	if (strncmp(line, "btime ", 6) != 0)
		return 0;
	*btime = sys_parse_u64(line + 6, INT64_MAX);
	return 1;
}

static json_t *facts_boot(int root)
{
	json_t *o = json_object();
	int64_t btime = -1;
	char up[64], iso[32];
	struct tm tm;
	time_t t;

	sys_scan(root, "proc/stat", stat_line, &btime);
	t = (time_t)btime;
	if (btime >= 0 && gmtime_r(&t, &tm) &&
	    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		jset(o, "time", json_integer(btime));
		jset(o, "time_iso", json_string(iso));
	} else {
		jset(o, "time", NULL);
		jset(o, "time_iso", NULL);
	}
	/* /proc/uptime: "seconds.hundredths idle"; the whole seconds are enough. */
	if (sys_read(root, "proc/uptime", up, sizeof(up)) > 0) {
		up[strspn(up, "0123456789")] = '\0';
		int64_t s = sys_parse_u64(up, INT64_MAX);
		jset(o, "uptime_seconds", s >= 0 ? json_integer(s) : NULL);
	} else {
		jset(o, "uptime_seconds", NULL);
	}
	return o;
}

/* The sections of facts, in output order; `only` names a subset. */
static const struct {
	const char *name;
	json_t *(*fn)(int root);
} sys_sections[] = {
    {"agent", facts_agent},   {"host", facts_host},     {"os", facts_os},
    {"kernel", facts_kernel}, {"cpu", facts_cpu},       {"memory", facts_memory},
    {"disks", facts_disks},   {"mounts", facts_mounts}, {"nics", facts_nics},
    {"boot", facts_boot},
};
#define SYS_NSECTIONS (sizeof(sys_sections) / sizeof(sys_sections[0]))

/* ---- Config ---- */

/* The only key, `root`, is for tests: every file facts reads is read under it instead of /.
 * Returns the root path, or NULL with why set. */
static const char *sys_conf_root(json_t *conf, const char **why)
{
	const char *key;
	json_t *v;

	json_object_foreach(conf, key, v)
	{
		if (strcmp(key, "root") != 0) {
			*why = "unknown key in the sys config (known: root)";
			return NULL;
		}
	}
	v = json_object_get(conf, "root");
	if (!v)
		return "/";
	if (!json_is_string(v) || json_string_value(v)[0] != '/') {
		*why = "sys config 'root' must be an absolute path";
		return NULL;
	}
	return json_string_value(v);
}

static int sys_init(struct outpost_plugin_ctx *pc, void **state)
{
	const char *why = NULL;

	if (!sys_conf_root(outpost_plugin_config(pc), &why)) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s", why);
		return OUTPOST_E_BAD_ARGS;
	}
	*state = NULL;
	return 0;
}

/* ---- Ops ---- */

/* The latency benchmark's op: one clock read, one small object, nothing else. */
static int sys_ping(struct outpost_call *call, json_t *args, json_t **result)
{
	struct timespec ts;
	json_t *r = json_object();

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!r || json_object_set_new(r, "pong", json_true()) ||
	    json_object_set_new(
	        r, "time_ms", json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000))) {
		json_decref(r);
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "sys.ping: out of memory");
	}
	*result = r;
	return 0;
}

static int sys_bad_section(struct outpost_call *call, const char *got)
{
	struct buf b = BUF_INIT;
	int rc;

	for (size_t i = 0; i < SYS_NSECTIONS; i++)
		buf_printf(&b, "%s%s", i ? ", " : "", sys_sections[i].name);
	rc = outpost_call_error(call, OUTPOST_E_BAD_ARGS,
	                        "'only' names an unknown section '%.64s'; valid: %s", got,
	                        b.data ? b.data : "");
	buf_free(&b);
	return rc;
}

static int64_t sys_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sys_facts(struct outpost_call *call, json_t *args, json_t **result)
{
	json_t *only = json_object_get(args, "only"), *v, *out;
	const char *rootpath, *why = NULL;
	unsigned want = 0;
	size_t i;
	int root, rc = 0;

	if (!only || json_is_null(only))
		want = (1u << SYS_NSECTIONS) - 1;
	json_array_foreach(only, i, v)
	{
		size_t s;
		if (!json_is_string(v))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'only' must be an array of section names");
		for (s = 0; s < SYS_NSECTIONS; s++)
			if (strcmp(json_string_value(v), sys_sections[s].name) == 0)
				break;
		if (s == SYS_NSECTIONS)
			return sys_bad_section(call, json_string_value(v));
		want |= 1u << s;
	}
	rootpath = sys_conf_root(outpost_call_config(call), &why);
	if (!rootpath)
		return outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "%s", why);
	/* A root that cannot be opened leaves every file-read fact null (openat(-1) fails). */
	root = open(rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
	out = json_object();
	if (!out) {
		rc = outpost_call_error(call, OUTPOST_E_INTERNAL, "sys.facts: out of memory");
		goto out;
	}
	for (i = 0; i < SYS_NSECTIONS; i++) {
		if (!(want & (1u << i)))
			continue;
		if (sys_mono_ms() > outpost_call_deadline(call)) {
			rc = outpost_call_error(call, OUTPOST_E_TIMEOUT,
			                        "sys.facts: deadline passed before section '%s'",
			                        sys_sections[i].name);
			goto out;
		}
		jset(out, sys_sections[i].name, sys_sections[i].fn(root));
	}
	*result = out;
	out = NULL;
out:
	json_decref(out);
	if (root >= 0)
		close(root);
	return rc;
}

static const struct outpost_arg ping_args[] = {{NULL, 0, 0, NULL}};

static const struct outpost_arg facts_args[] = {
    {"only", OUTPOST_ARG_ARRAY, 0,
     "section names to return (agent, host, os, kernel, cpu, memory, disks, mounts, nics, "
     "boot); all when absent"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op sys_ops[] = {
    {"ping", sys_ping, ping_args, OUTPOST_OP_INLINE, "liveness and latency check: {pong, time_ms}"},
    {"facts", sys_facts, facts_args, 0,
     "host inventory: OS, kernel, CPU, memory, disks, mounts, NICs, boot time"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_sys = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "sys",
    .version = OUTPOST_VERSION,
    .init = sys_init,
    .fini = NULL,
    .ops = sys_ops,
};
