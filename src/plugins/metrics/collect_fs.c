/* Space and inodes of every real filesystem: the mount table, less pseudo and network
 * filesystems, less over-mounted and bind-mounted duplicates, each measured by statvfs(). */
#include "collect_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

/* A container host lists thousands of mounts; past this many real ones the rest is ignored. */
#define COLLECT_MOUNTS_MAX 4096

/* Filesystem types left out. Pseudo filesystems hold no disk space (tmpfs is memory, already in
 * host_memory_bytes, and a container host mounts hundreds). overlay and aufs are container
 * layers over a filesystem listed anyway; squashfs, erofs and iso9660 are read-only images,
 * always full. Network and cluster filesystems and FUSE are left out because statvfs() on one
 * whose server (or lock manager, or daemon) does not answer blocks the collector; fuseblk
 * (ntfs-3g on a local disk) stays. (The sys plugin's facts skip statvfs on these too.) */
static const char *const collect_fs_skip[] = {
    "autofs",   "binfmt_misc", "bpf",        "configfs",   "debugfs",   "devpts", "devtmpfs",
    "efivarfs", "fusectl",     "hugetlbfs",  "mqueue",     "nsfs",      "proc",   "pstore",
    "ramfs",    "rootfs",      "rpc_pipefs", "securityfs", "selinuxfs", "sysfs",  "tmpfs",
    "tracefs",  "nfsd",        "overlay",    "aufs",       "squashfs",  "erofs",  "iso9660",
    "nfs",      "nfs4",        "cifs",       "smb3",       "smbfs",     "ceph",   "glusterfs",
    "9p",       "afs",         "lustre",     "fuse",       "davfs",     "gfs2",   "ocfs2",
    NULL,
};

static int collect_fs_wanted(const char *type)
{
	size_t i;

	if (strncmp(type, "cgroup", 6) == 0 || strncmp(type, "fuse.", 5) == 0)
		return 0;
	for (i = 0; collect_fs_skip[i]; i++)
		if (strcmp(type, collect_fs_skip[i]) == 0)
			return 0;
	return 1;
}

/* Undoes the octal escapes the kernel writes in mount fields (\040 blank, \011 tab, \012
 * newline, \134 backslash), in place. */
static void collect_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

static int collect_strs_add(struct collect *c, const char *s, size_t *off)
{
	*off = c->strs.len;
	return buf_append(&c->strs, s, strlen(s) + 1);
}

/* "/dev/vda / ext4 rw,relatime 0 0" */
static void collect_mount_line(struct collect *c, char *line, unsigned lineno, void *arg)
{
	char *p = line, *src, *dir, *type, *opts;
	struct collect_mount *m;

	if (collect_token(&p, &src) < 0 || collect_token(&p, &dir) < 0 ||
	    collect_token(&p, &type) < 0 || collect_token(&p, &opts) < 0) {
		collect_parse_error(c);
		return;
	}
	if (!collect_fs_wanted(type) || c->nmnt >= COLLECT_MOUNTS_MAX)
		return;
	collect_unescape(src);
	collect_unescape(dir);
	if (c->nmnt == c->mntcap) {
		size_t cap = c->mntcap ? c->mntcap * 2 : 16;

		m = realloc(c->mnt, cap * sizeof(*m));
		if (!m) {
			c->nomem = 1;
			return;
		}
		c->mnt = m;
		c->mntcap = cap;
	}
	m = &c->mnt[c->nmnt];
	memset(m, 0, sizeof(*m));
	if (collect_strs_add(c, src, &m->src) < 0 || collect_strs_add(c, dir, &m->dir) < 0 ||
	    collect_strs_add(c, type, &m->type) < 0) {
		c->nomem = 1;
		return;
	}
	m->dirlen = strlen(dir);
	m->order = c->nmnt++;
}

static int collect_cmp_order(const void *a, const void *b)
{
	const struct collect_mount *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

static int collect_cmp_dir(const void *a, const void *b)
{
	const struct collect_mount *x = a, *y = b;
	int r = strcmp(x->dirp, y->dirp);

	return r ? r : collect_cmp_order(a, b);
}

/* Visible first, then by filesystem, the shortest mount point of each first. */
static int collect_cmp_fs(const void *a, const void *b)
{
	const struct collect_mount *x = a, *y = b;
	int r;

	if (x->hidden != y->hidden)
		return x->hidden - y->hidden;
	if ((r = strcmp(x->srcp, y->srcp)) != 0 || (r = strcmp(x->typep, y->typep)) != 0)
		return r;
	if (x->dirlen != y->dirlen)
		return x->dirlen < y->dirlen ? -1 : 1;
	return collect_cmp_order(a, b);
}

/* Leaves one mount per filesystem. Of mounts on the same directory only the last is visible;
 * a filesystem mounted more than once (bind mounts, btrfs subvolumes: the same source and
 * type, the same space) is reported once, at its shortest mount point. */
static void collect_mounts_dedupe(struct collect *c)
{
	struct collect_mount *m = c->mnt;
	size_t i, n = c->nmnt;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		m[i].srcp = c->strs.data + m[i].src;
		m[i].dirp = c->strs.data + m[i].dir;
		m[i].typep = c->strs.data + m[i].type;
	}
	qsort(m, n, sizeof(*m), collect_cmp_dir);
	for (i = 0; i + 1 < n; i++)
		if (strcmp(m[i].dirp, m[i + 1].dirp) == 0)
			m[i].hidden = 1;
	qsort(m, n, sizeof(*m), collect_cmp_fs);
	for (i = 1; i < n; i++)
		if (!m[i].hidden && strcmp(m[i].srcp, m[i - 1].srcp) == 0 &&
		    strcmp(m[i].typep, m[i - 1].typep) == 0)
			m[i].hidden = 1;
	qsort(m, n, sizeof(*m), collect_cmp_order);
}

static void collect_fs_emit(struct collect *c, const struct collect_mount *m)
{
	const char *l[] = {"mount", m->dirp, "device", m->srcp, "fstype", m->typep, NULL};
	struct statvfs st;
	double frsize, size, freeb, avail, used;

	if (c->sv(c->sv_arg, m->dirp, &st) < 0 || st.f_blocks == 0)
		return; /* gone since the table was read, or not ours to see */
	frsize = (double)(st.f_frsize ? st.f_frsize : st.f_bsize);
	size = (double)st.f_blocks * frsize;
	freeb = (double)(st.f_bfree < st.f_blocks ? st.f_bfree : st.f_blocks) * frsize;
	avail = (double)(st.f_bavail < st.f_bfree ? st.f_bavail : st.f_bfree) * frsize;
	if (avail > freeb)
		avail = freeb;
	used = size - freeb;
	collect_emit(c, "host_filesystem_size_bytes", l, size);
	collect_emit(c, "host_filesystem_used_bytes", l, used);
	collect_emit(c, "host_filesystem_free_bytes", l, freeb);
	collect_emit(c, "host_filesystem_available_bytes", l, avail);
	/* As df prints it: of what users may fill, the part in use. */
	collect_emit(c, "host_filesystem_used_percent", l,
	             used + avail > 0 ? 100 * used / (used + avail) : 0);
	if (st.f_files > 0) { /* btrfs and some others have no inode table */
		double files = (double)st.f_files;
		double ffree = (double)(st.f_ffree < st.f_files ? st.f_ffree : st.f_files);

		collect_emit(c, "host_filesystem_inodes", l, files);
		collect_emit(c, "host_filesystem_inodes_used", l, files - ffree);
		collect_emit(c, "host_filesystem_inodes_free", l, ffree);
		collect_emit(c, "host_filesystem_inodes_used_percent", l,
		             100 * (files - ffree) / files);
	}
	collect_emit(c, "host_filesystem_readonly", l, (st.f_flag & ST_RDONLY) ? 1 : 0);
}

void collect_filesystems(struct collect *c)
{
	size_t i;
	int rc;

	c->nmnt = 0;
	buf_reset(&c->strs);
	if (c->mounts_path)
		rc = collect_read_lines(c, AT_FDCWD, c->mounts_path, collect_mount_line, NULL);
	else
		rc = collect_read_lines(c, c->dirfd, "self/mounts", collect_mount_line, NULL);
	if (rc < 0) {
		c->failed = 1;
		return;
	}
	collect_mounts_dedupe(c);
	for (i = 0; i < c->nmnt; i++)
		if (!c->mnt[i].hidden)
			collect_fs_emit(c, &c->mnt[i]);
}
