/* Walking and changing files beneath a cleanup policy's directory: see walk.h. */
#include "walk.h"

#include <outpost/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CW_COPY_CHUNK 65536

static int open_step(int fd, const char *name)
{
	return openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Walks the first n bytes of rel from fd; returns a new fd or -1 with errno. */
static int open_prefix(int fd, const char *rel, size_t n)
{
	char comp[NAME_MAX + 1];
	int cur = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	size_t i = 0;

	while (cur >= 0 && i < n) {
		size_t j = i, len;
		int next, saved;
		while (j < n && rel[j] != '/')
			j++;
		len = j - i;
		if (len == 0) {
			i = j + 1;
			continue;
		}
		if (len > NAME_MAX || (len == 1 && rel[i] == '.') ||
		    (len == 2 && rel[i] == '.' && rel[i + 1] == '.')) {
			close(cur);
			errno = EINVAL;
			return -1;
		}
		memcpy(comp, rel + i, len);
		comp[len] = '\0';
		next = open_step(cur, comp);
		saved = errno;
		/* O_DIRECTORY | O_NOFOLLOW on a symlink answers ENOTDIR: say which it was. */
		if (next < 0 && (saved == ENOTDIR || saved == ELOOP)) {
			struct stat st;
			if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0)
				saved = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
		}
		close(cur);
		errno = saved;
		cur = next;
		i = j + 1;
	}
	return cur;
}

int cw_open_dir(int fd, const char *rel)
{
	return open_prefix(fd, rel, strlen(rel));
}

int cw_open_parent(int fd, const char *rel, const char **name)
{
	const char *slash = strrchr(rel, '/');

	*name = slash ? slash + 1 : rel;
	if (!**name) {
		errno = EINVAL;
		return -1;
	}
	return open_prefix(fd, rel, slash ? (size_t)(slash - rel) : 0);
}

/* ---- Scanning ---- */

struct scanner {
	const char *pattern;
	int recurse;
	dev_t dev;
	int (*stop)(void *);
	void *stop_arg;
	size_t seen;
	struct cw_scan *out;
	char *msg;
	size_t msglen;
};

static int scan_add(struct scanner *s, const char *prefix, const char *name, const struct stat *st,
                    size_t dir)
{
	struct cw_scan *o = s->out;
	struct cw_file *f;
	size_t n;

	if (o->n == CW_SCAN_MAX) {
		o->truncated = 1;
		return 0;
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct cw_file *v = realloc(o->v, cap * sizeof(*v));
		if (!v)
			return OUTPOST_E_INTERNAL;
		o->v = v;
		o->cap = cap;
	}
	f = &o->v[o->n];
	memset(f, 0, sizeof(*f));
	n = strlen(prefix) + strlen(name) + 2;
	f->rel = malloc(n);
	if (!f->rel)
		return OUTPOST_E_INTERNAL;
	snprintf(f->rel, n, "%s%s%s", prefix, *prefix ? "/" : "", name);
	f->size = (int64_t)st->st_size;
	f->mtime_s = (int64_t)st->st_mtim.tv_sec;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->ctime = st->st_ctim;
	f->dir = dir;
	o->n++;
	return 0;
}

/* Lists the directory open at fd (owned: closed here), whose path beneath the top is prefix. */
static int scan_dir(struct scanner *s, int fd, const char *prefix, int depth)
{
	size_t dir = s->out->dirs++;
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int rc = 0;

	if (!d) {
		close(fd);
		snprintf(s->msg, s->msglen, "cannot list %s: %s", *prefix ? prefix : ".",
		         strerror(errno));
		return OUTPOST_E_INTERNAL;
	}
	while (rc == 0 && !s->out->truncated && (de = readdir(d))) {
		struct stat st;
		const char *name = de->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if ((++s->seen & 255) == 0 && s->stop && s->stop(s->stop_arg)) {
			snprintf(s->msg, s->msglen, "passed the deadline while listing files");
			rc = OUTPOST_E_TIMEOUT;
			break;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone since readdir */
		if (S_ISLNK(st.st_mode)) {
			s->out->symlinks++;
		} else if (S_ISDIR(st.st_mode)) {
			struct stat now;
			char *sub;
			size_t n;
			int sfd;
			if (!s->recurse || st.st_dev != s->dev || depth >= CW_DEPTH_MAX)
				continue;
			sfd = open_step(dirfd(d), name);
			if (sfd < 0)
				continue; /* swapped for a symlink, or gone: not ours to follow */
			if (fstat(sfd, &now) < 0 || now.st_dev != st.st_dev ||
			    now.st_ino != st.st_ino) {
				close(sfd);
				continue;
			}
			n = strlen(prefix) + strlen(name) + 2;
			sub = malloc(n);
			if (!sub) {
				close(sfd);
				rc = OUTPOST_E_INTERNAL;
				break;
			}
			snprintf(sub, n, "%s%s%s", prefix, *prefix ? "/" : "", name);
			rc = scan_dir(s, sfd, sub, depth + 1);
			free(sub);
		} else if (S_ISREG(st.st_mode) &&
		           strncmp(name, CW_TMP_PREFIX, strlen(CW_TMP_PREFIX)) != 0 &&
		           fnmatch(s->pattern, name, FNM_PERIOD) == 0) {
			rc = scan_add(s, prefix, name, &st, dir);
		}
	}
	closedir(d);
	return rc;
}

int cw_scan(int dirfd, const char *pattern, int recurse, int (*stop)(void *), void *stop_arg,
            struct cw_scan *out, char *msg, size_t msglen)
{
	struct scanner s = {.pattern = pattern,
	                    .recurse = recurse,
	                    .stop = stop,
	                    .stop_arg = stop_arg,
	                    .out = out,
	                    .msg = msg,
	                    .msglen = msglen};
	struct stat st;
	int fd;

	memset(out, 0, sizeof(*out));
	/* A new open file description, not a dup: a dup would share the directory offset, and
	 * a second scan of the same fd would start at its end. */
	if (fstat(dirfd, &st) < 0 ||
	    (fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "cannot read the directory: %s", strerror(errno));
		return OUTPOST_E_INTERNAL;
	}
	s.dev = st.st_dev;
	return scan_dir(&s, fd, "", 0);
}

void cw_scan_free(struct cw_scan *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].rel);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- Changes ---- */

static int same_file(const struct stat *st, const struct cw_file *f)
{
	return S_ISREG(st->st_mode) && st->st_dev == f->dev && st->st_ino == f->ino &&
	       st->st_ctim.tv_sec == f->ctime.tv_sec && st->st_ctim.tv_nsec == f->ctime.tv_nsec &&
	       (int64_t)st->st_size == f->size && (int64_t)st->st_mtim.tv_sec == f->mtime_s;
}

/* Opens the parent of f and checks the name still names the file listed. */
static int open_checked(int dirfd, const struct cw_file *f, const char **name, struct stat *st,
                        char *msg, size_t msglen)
{
	int pfd = cw_open_parent(dirfd, f->rel, name);

	if (pfd < 0) {
		snprintf(msg, msglen, "%s: cannot open its directory: %s", f->rel,
		         errno == ELOOP ? "a component became a symlink (not followed)"
		                        : strerror(errno));
		return -1;
	}
	if (fstatat(pfd, *name, st, AT_SYMLINK_NOFOLLOW) < 0 || !same_file(st, f)) {
		snprintf(msg, msglen, "%s changed since it was listed: left alone", f->rel);
		close(pfd);
		return -1;
	}
	return pfd;
}

int cw_delete(int dirfd, const struct cw_file *f, char *msg, size_t msglen)
{
	const char *name;
	struct stat st;
	int pfd = open_checked(dirfd, f, &name, &st, msg, msglen), rc = 0;

	if (pfd < 0)
		return OUTPOST_E_CONFLICT;
	if (unlinkat(pfd, name, 0) < 0) {
		snprintf(msg, msglen, "cannot remove %s: %s", f->rel, strerror(errno));
		rc = errno == EACCES || errno == EPERM ? OUTPOST_E_FORBIDDEN : OUTPOST_E_INTERNAL;
	}
	close(pfd);
	return rc;
}

/* Writes the gzip of in to out; 0 or -1 with msg set. */
static int gz_copy(int in, int out, const char *rel, char *msg, size_t msglen)
{
	unsigned char *buf = malloc(CW_COPY_CHUNK);
	int ofd = fcntl(out, F_DUPFD_CLOEXEC, 0);
	gzFile gz = ofd >= 0 ? gzdopen(ofd, "wb6") : NULL;
	ssize_t got;
	int rc = 0;

	if (!buf || !gz) {
		if (ofd >= 0 && !gz)
			close(ofd);
		snprintf(msg, msglen, "cannot start compressing %s: out of memory", rel);
		rc = -1;
		goto out;
	}
	while ((got = read(in, buf, CW_COPY_CHUNK)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			snprintf(msg, msglen, "cannot read %s: %s", rel, strerror(errno));
			rc = -1;
			break;
		}
		if (gzwrite(gz, buf, (unsigned)got) != (int)got) {
			snprintf(msg, msglen, "cannot write %s.gz: %s", rel, strerror(errno));
			rc = -1;
			break;
		}
	}
out:
	if (gz && gzclose(gz) != Z_OK && rc == 0) {
		snprintf(msg, msglen, "cannot write %s.gz: %s", rel, strerror(errno));
		rc = -1;
	}
	free(buf);
	return rc;
}

int cw_compress(int dirfd, const struct cw_file *f, int64_t *saved, char *msg, size_t msglen)
{
	static const char suffix[] = ".gz";
	char gzname[NAME_MAX + 1], tmp[64];
	const char *name;
	struct stat st, now, gst;
	int pfd, in = -1, out = -1, rc = OUTPOST_E_INTERNAL;

	*saved = 0;
	pfd = open_checked(dirfd, f, &name, &st, msg, msglen);
	if (pfd < 0)
		return OUTPOST_E_CONFLICT;
	if (strlen(name) + sizeof(suffix) > sizeof(gzname)) {
		snprintf(msg, msglen, "%s: the name is too long to add .gz", f->rel);
		goto out;
	}
	snprintf(gzname, sizeof(gzname), "%s%s", name, suffix);
	if (fstatat(pfd, gzname, &gst, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(msg, msglen, "%s.gz already exists: %s left as it is", f->rel, f->rel);
		rc = OUTPOST_E_CONFLICT;
		goto out;
	}
	in = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (in < 0 || fstat(in, &now) < 0 || !same_file(&now, f)) {
		snprintf(msg, msglen, "%s changed since it was listed: left alone", f->rel);
		rc = OUTPOST_E_CONFLICT;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s%d-%lx.tmp", CW_TMP_PREFIX, (int)getpid(),
	         (unsigned long)f->ino);
	out = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		snprintf(msg, msglen, "cannot create a temporary file beside %s: %s", f->rel,
		         strerror(errno));
		goto out;
	}
	if (gz_copy(in, out, f->rel, msg, msglen) < 0)
		goto drop;
	/* The copy's owner, mode and times are the original's: rotation tools and readers see
	 * the same file, only smaller. fchown fails for an agent that is not root: kept ours. */
	if (fchown(out, st.st_uid, st.st_gid) < 0 && errno != EPERM) {
		snprintf(msg, msglen, "cannot chown %s.gz: %s", f->rel, strerror(errno));
		goto drop;
	}
	if (fchmod(out, st.st_mode & 0777) < 0 || fsync(out) < 0 ||
	    futimens(out, (struct timespec[2]){st.st_atim, st.st_mtim}) < 0 ||
	    fstat(out, &gst) < 0) {
		snprintf(msg, msglen, "cannot finish %s.gz: %s", f->rel, strerror(errno));
		goto drop;
	}
	if (fstat(in, &now) < 0 || !same_file(&now, f)) {
		snprintf(msg, msglen,
		         "%s changed while it was compressed (still written?): left alone", f->rel);
		rc = OUTPOST_E_CONFLICT;
		goto drop;
	}
	if (renameat2(pfd, tmp, pfd, gzname, RENAME_NOREPLACE) < 0) {
		/* File systems without RENAME_NOREPLACE: a hard link never replaces either. */
		if ((errno != EINVAL && errno != ENOSYS) || linkat(pfd, tmp, pfd, gzname, 0) < 0) {
			snprintf(msg, msglen, "cannot rename into %s.gz: %s", f->rel,
			         strerror(errno));
			rc = errno == EEXIST ? OUTPOST_E_CONFLICT : OUTPOST_E_INTERNAL;
			goto drop;
		}
		unlinkat(pfd, tmp, 0);
	}
	if (fstatat(pfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&now, f) &&
	    unlinkat(pfd, name, 0) < 0) {
		snprintf(msg, msglen, "%s.gz written, but cannot remove %s: %s", f->rel, f->rel,
		         strerror(errno));
		goto out;
	}
	*saved = f->size - (int64_t)gst.st_size;
	rc = 0;
	goto out;
drop:
	unlinkat(pfd, tmp, 0);
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	close(pfd);
	return rc;
}
