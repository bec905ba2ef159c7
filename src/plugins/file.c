/* The built-in `file` plugin: put, get, stat and remove files beneath the configured roots, with
 * sha256, atomic replace, mode and owner. docs/plugins/file.md is the operator's side.
 *
 * Paths are walked one component at a time with openat(O_NOFOLLOW | O_DIRECTORY) from an fd of
 * the root, and the final component is only ever reached through its parent's fd
 * (fstatat(AT_SYMLINK_NOFOLLOW), openat(O_NOFOLLOW), renameat, unlinkat): no symlink beneath a
 * root is followed, and '.' and '..' are refused before the kernel sees them. We walk rather
 * than call openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) because the agent runs on a whole
 * fleet (kernels before 5.6, seccomp profiles that answer ENOSYS), make_dirs has to walk anyway,
 * and a walk can tell the caller which component was the symlink. */
#include "plugins/builtin.h"
#include "core/clk.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX_BYTES_DEFAULT ((size_t)64 * 1024 * 1024)
#define FILE_HEX_LEN (crypto_hash_sha256_BYTES * 2)
#define FILE_CHUNK ((size_t)1 << 20)
#define FILE_LOCKS 32
#define FILE_TMP_PREFIX ".outpost-" /* + 16 hex digits + ".tmp": always fits NAME_MAX */
#define FILE_SPECIAL_BITS ((mode_t)(S_ISUID | S_ISGID | S_ISVTX))

struct file_state {
	/* Writers of one path (put, remove) hold the lock of its stripe from the first look at the
	 * file to the rename, so if_sha256 and the idempotency check are true compare-and-swap
	 * among the agent's own calls. */
	pthread_mutex_t locks[FILE_LOCKS];
};

/* An error on its way to the caller; reported once, by the op, with outpost_call_error. */
struct ferr {
	int code;
	int missing; /* the path (or a parent) does not exist: stat and remove answer, not fail */
	char msg[480];
};

__attribute__((format(printf, 3, 4))) static int ferr_set(struct ferr *e, int code, const char *fmt,
                                                          ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

static int ferr_report(struct outpost_call *call, const struct ferr *e)
{
	return outpost_call_error(call, e->code, "%s", e->msg);
}

/* ---- Config ---- */

struct fconf {
	json_t *roots; /* borrowed from the call's config: an array of checked strings */
	size_t max_bytes;
};

/* Length of an absolute, canonical directory path without its trailing slashes, or 0. */
static size_t root_len(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || n >= PATH_MAX || s[0] != '/' || strlen(s) != n)
		return 0;
	while (n > 1 && s[n - 1] == '/')
		n--;
	while (i < n) {
		size_t j = ++i;
		while (j < n && s[j] != '/')
			j++;
		if (j == i && n > 1)
			return 0; /* empty component */
		if ((j - i == 1 && s[i] == '.') || (j - i == 2 && s[i] == '.' && s[i + 1] == '.'))
			return 0;
		i = j;
	}
	return n;
}

static int conf_load(struct outpost_call *call, struct fconf *c, struct ferr *e)
{
	json_t *conf = outpost_call_config(call);
	json_t *roots = json_object_get(conf, "roots");
	json_t *max = json_object_get(conf, "max_bytes");
	json_t *r;
	size_t i;

	c->roots = NULL;
	c->max_bytes = FILE_MAX_BYTES_DEFAULT;
	if (max && !json_is_null(max)) {
		if (!json_is_integer(max) || json_integer_value(max) <= 0)
			return ferr_set(
			    e, OUTPOST_E_UNAVAILABLE,
			    "file.max_bytes must be a positive integer (bytes); fix the "
			    "agent config");
		if ((uint64_t)json_integer_value(max) < SIZE_MAX / 2)
			c->max_bytes = (size_t)json_integer_value(max);
	}
	if (!roots || json_is_null(roots) || (json_is_array(roots) && !json_array_size(roots)))
		return ferr_set(e, OUTPOST_E_FORBIDDEN,
		                "no roots configured: set file.roots in the agent config to the "
		                "absolute directories the file plugin may touch");
	if (!json_is_array(roots))
		return ferr_set(e, OUTPOST_E_UNAVAILABLE,
		                "file.roots must be an array of absolute directory paths; fix the "
		                "agent config");
	json_array_foreach(roots, i, r)
	{
		if (!json_is_string(r) || !root_len(json_string_value(r), json_string_length(r)))
			return ferr_set(
			    e, OUTPOST_E_UNAVAILABLE,
			    "file.roots[%zu] must be an absolute directory path without "
			    "'.', '..' or empty components; fix the agent config",
			    i);
	}
	c->roots = roots;
	return 0;
}

/* ---- Paths ---- */

/* A request path matched to a root and opened down to the parent of its final component. */
struct fpath {
	const char *path; /* as given; borrowed from args */
	char root[PATH_MAX];
	const char *rel;         /* into path: beneath the root; "" when path is the root itself */
	char name[NAME_MAX + 1]; /* the final component; "" for the root */
	int rootfd;
	int dirfd; /* the parent of name; == rootfd or its own fd */
};

static void fpath_init(struct fpath *fp)
{
	memset(fp, 0, sizeof(*fp));
	fp->rootfd = -1;
	fp->dirfd = -1;
}

static void fpath_close(struct fpath *fp)
{
	if (fp->dirfd >= 0 && fp->dirfd != fp->rootfd)
		close(fp->dirfd);
	if (fp->rootfd >= 0)
		close(fp->rootfd);
	fp->dirfd = fp->rootfd = -1;
}

/* Checks the path argument's form and picks the longest root it is beneath. */
static int fpath_resolve(struct fpath *fp, const struct fconf *c, json_t *arg, struct ferr *e)
{
	const char *p = json_string_value(arg);
	size_t n = json_string_length(arg), best = 0, i = 0;
	json_t *r;
	int found = 0;

	fp->path = p;
	if (n == 0)
		return ferr_set(e, OUTPOST_E_BAD_ARGS, "path is empty: give an absolute path");
	if (strlen(p) != n)
		return ferr_set(e, OUTPOST_E_BAD_ARGS, "path contains a NUL byte");
	if (n >= PATH_MAX)
		return ferr_set(e, OUTPOST_E_BAD_ARGS, "path is %zu bytes, over the limit of %d", n,
		                PATH_MAX - 1);
	if (p[0] != '/')
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "path '%s' is relative: give an absolute path beneath a root", p);
	if (n > 1 && p[n - 1] == '/')
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "path '%s' ends with '/': remove the trailing slash", p);
	while (n > 1 && i < n) {
		size_t j = ++i;
		while (j < n && p[j] != '/')
			j++;
		if (j == i)
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "path '%s' has an empty component ('//')", p);
		if ((j - i == 1 && p[i] == '.') || (j - i == 2 && p[i] == '.' && p[i + 1] == '.'))
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "path '%s' has a '.' or '..' component: give the canonical "
			                "path",
			                p);
		if (j - i > NAME_MAX)
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "a component of path '%.64s...' is over %d bytes", p,
			                NAME_MAX);
		i = j;
	}
	json_array_foreach(c->roots, i, r)
	{
		const char *s = json_string_value(r);
		size_t rl = root_len(s, json_string_length(r));
		int under = rl == 1 ||
		            (n >= rl && memcmp(p, s, rl) == 0 && (p[rl] == '/' || p[rl] == '\0'));
		if (under && (!found || rl > best)) {
			found = 1;
			best = rl;
			memcpy(fp->root, s, rl);
			fp->root[rl] = '\0';
		}
	}
	if (!found)
		return ferr_set(e, OUTPOST_E_FORBIDDEN,
		                "path '%s' is outside the allowed roots: use a path beneath one of "
		                "file.roots, or add a root to the agent config",
		                p);
	fp->rel = p + best;
	while (*fp->rel == '/')
		fp->rel++;
	return 0;
}

/* Opens one directory component beneath fd, never through a symlink; creates it when allowed. */
static int dir_step(const struct fpath *fp, int fd, const char *comp, size_t prefix, int make_dirs,
                    int *out, struct ferr *e)
{
	struct stat st;
	int created = 0, tried = 0, nfd;

	for (;;) {
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd >= 0 || errno != ENOENT || !make_dirs || tried++)
			break;
		if (mkdirat(fd, comp, 0755) == 0)
			created = 1;
		else if (errno != EEXIST)
			return ferr_set(e, OUTPOST_E_INTERNAL, "cannot create directory %.*s: %s",
			                (int)prefix, fp->path, strerror(errno));
	}
	if (nfd >= 0) {
		/* Exactly 0755 whatever the agent's umask; a directory someone else made is theirs.
		 */
		if (created && fchmod(nfd, 0755) < 0) {
			close(nfd);
			return ferr_set(e, OUTPOST_E_INTERNAL, "cannot chmod %.*s: %s", (int)prefix,
			                fp->path, strerror(errno));
		}
		*out = nfd;
		return 0;
	}
	switch (errno) {
	case ENOENT:
		e->missing = 1;
		return ferr_set(
		    e, OUTPOST_E_NOT_FOUND,
		    "directory %.*s does not exist (put creates it with make_dirs: true)",
		    (int)prefix, fp->path);
	case ELOOP:
	case ENOTDIR:
		if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return ferr_set(
			    e, OUTPOST_E_FORBIDDEN,
			    "%.*s is a symlink: the file plugin never follows symlinks; "
			    "use the real path",
			    (int)prefix, fp->path);
		e->missing = 1;
		return ferr_set(e, OUTPOST_E_BAD_ARGS, "%.*s is not a directory", (int)prefix,
		                fp->path);
	case EACCES:
		return ferr_set(e, OUTPOST_E_FORBIDDEN, "permission denied on %.*s", (int)prefix,
		                fp->path);
	default:
		return ferr_set(e, OUTPOST_E_INTERNAL, "cannot open %.*s: %s", (int)prefix,
		                fp->path, strerror(errno));
	}
}

/* Opens the root and walks to the parent of the final component (dirfd, name). */
static int fpath_open(struct fpath *fp, int make_dirs, struct ferr *e)
{
	const char *s = fp->rel;
	int fd = -1;

	/* The root itself comes from the operator's config and is trusted: it may be reached
	 * through a symlink. Nothing beneath it may. */
	fp->rootfd = open(fp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fp->rootfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			e->missing = 1;
			return ferr_set(e, OUTPOST_E_NOT_FOUND,
			                "root %s does not exist or is not a directory: create it "
			                "(make_dirs never creates a root), or fix file.roots",
			                fp->root);
		}
		return ferr_set(e, OUTPOST_E_INTERNAL, "cannot open root %s: %s", fp->root,
		                strerror(errno));
	}
	fp->dirfd = fp->rootfd;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);

		memcpy(fp->name, s, len); /* len <= NAME_MAX: checked by fpath_resolve */
		fp->name[len] = '\0';
		if (!slash)
			break;
		if (dir_step(fp, fp->dirfd, fp->name, (size_t)(slash - fp->path), make_dirs, &fd,
		             e) < 0)
			return e->code;
		if (fp->dirfd != fp->rootfd)
			close(fp->dirfd);
		fp->dirfd = fd;
		s = slash + 1;
	}
	return 0;
}

static const char *mode_type(mode_t m)
{
	if (S_ISREG(m))
		return "file";
	if (S_ISDIR(m))
		return "dir";
	if (S_ISLNK(m))
		return "symlink";
	return "other";
}

static json_t *mode_json(mode_t m)
{
	char s[8];

	snprintf(s, sizeof(s), "%04o", (unsigned)(m & 07777));
	return json_string(s);
}

/* Opens the regular file name beneath dirfd for reading, and checks it is still the one *st
 * described (no swap between the look and the open). O_NONBLOCK: a FIFO never blocks us. */
static int reg_open(const struct fpath *fp, const struct stat *st, int *out, struct ferr *e)
{
	struct stat now;
	int fd;

	fd = openat(fp->dirfd, fp->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return ferr_set(e, OUTPOST_E_CONFLICT,
			                "%s changed while being opened; retry", fp->path);
		return ferr_set(e, errno == EACCES ? OUTPOST_E_FORBIDDEN : OUTPOST_E_INTERNAL,
		                "cannot open %s: %s", fp->path, strerror(errno));
	}
	if (fstat(fd, &now) < 0 || !S_ISREG(now.st_mode) || now.st_ino != st->st_ino ||
	    now.st_dev != st->st_dev) {
		close(fd);
		return ferr_set(e, OUTPOST_E_CONFLICT, "%s changed while being opened; retry",
		                fp->path);
	}
	*out = fd;
	return 0;
}

static int deadline_check(struct outpost_call *call, const struct fpath *fp, const char *doing,
                          struct ferr *e)
{
	if (clk_mono_ms() <= outpost_call_deadline(call))
		return 0;
	return ferr_set(e, OUTPOST_E_TIMEOUT, "passed the deadline while %s %s", doing, fp->path);
}

static void hex_of(const unsigned char *d, char hex[FILE_HEX_LEN + 1])
{
	sodium_bin2hex(hex, FILE_HEX_LEN + 1, d, crypto_hash_sha256_BYTES);
}

/* Reads fd to its end. With data NULL only hashes (no size limit); otherwise collects at most
 * limit bytes into *data (caller frees) and answers TOO_LARGE past that. */
static int fd_read(struct outpost_call *call, const struct fpath *fp, int fd, size_t hint,
                   size_t limit, unsigned char **data, size_t *size, char hex[FILE_HEX_LEN + 1],
                   struct ferr *e)
{
	crypto_hash_sha256_state h;
	unsigned char digest[crypto_hash_sha256_BYTES];
	unsigned char *buf = NULL, *chunk = NULL;
	size_t cap = 0, len = 0;
	ssize_t got;
	int rc = 0;

	crypto_hash_sha256_init(&h);
	if (data) {
		cap = (hint < limit ? hint : limit) + 1;
		buf = malloc(cap);
	} else {
		buf = chunk = malloc(FILE_CHUNK);
		cap = FILE_CHUNK;
	}
	if (!buf) {
		rc = ferr_set(e, OUTPOST_E_INTERNAL, "out of memory reading %s", fp->path);
		goto out;
	}
	for (;;) {
		size_t want;
		if ((rc = deadline_check(call, fp, "reading", e)) < 0)
			goto out;
		if (data && len == cap) {
			unsigned char *nb;
			if (len > limit) {
				rc = ferr_set(
				    e, OUTPOST_E_TOO_LARGE,
				    "%s grew past the limit of %zu bytes while being read: "
				    "raise max_bytes or use stat for its sha256",
				    fp->path, limit);
				goto out;
			}
			cap = cap + cap / 2 < limit + 1 ? cap + cap / 2 : limit + 1;
			if (cap <= len)
				cap = len + 1;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = ferr_set(e, OUTPOST_E_INTERNAL, "out of memory reading %s",
				              fp->path);
				goto out;
			}
			buf = nb;
		}
		want = data ? cap - len : FILE_CHUNK;
		if (want > FILE_CHUNK)
			want = FILE_CHUNK;
		got = read(fd, data ? buf + len : chunk, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = ferr_set(e, OUTPOST_E_INTERNAL, "cannot read %s: %s", fp->path,
			              strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		crypto_hash_sha256_update(&h, data ? buf + len : chunk, (size_t)got);
		len += (size_t)got;
		if (data && len > limit) {
			rc = ferr_set(e, OUTPOST_E_TOO_LARGE,
			              "%s grew past the limit of %zu bytes while being read: raise "
			              "max_bytes or use stat for its sha256",
			              fp->path, limit);
			goto out;
		}
	}
	crypto_hash_sha256_final(&h, digest);
	hex_of(digest, hex);
	*size = len;
	if (data) {
		*data = buf;
		buf = NULL;
	}
out:
	free(buf);
	return rc;
}

/* The sha256 (hex) of the regular file *st describes. */
static int file_hash(struct outpost_call *call, const struct fpath *fp, const struct stat *st,
                     char hex[FILE_HEX_LEN + 1], struct ferr *e)
{
	size_t size;
	int fd = -1, rc;

	if ((rc = reg_open(fp, st, &fd, e)) < 0)
		return rc;
	rc = fd_read(call, fp, fd, 0, 0, NULL, &size, hex, e);
	close(fd);
	return rc;
}

/* ---- Argument helpers ---- */

static const char *arg_str(json_t *args, const char *name)
{
	return json_string_value(json_object_get(args, name)); /* NULL when absent or null */
}

static int arg_bool(json_t *args, const char *name, int dflt)
{
	json_t *v = json_object_get(args, name);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A 64-digit hex sha256, lowercased into out. */
static int parse_hex(const char *s, const char *what, char out[FILE_HEX_LEN + 1], struct ferr *e)
{
	size_t i;

	for (i = 0; s[i] && i < FILE_HEX_LEN; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			break;
		out[i] = c;
	}
	if (i != FILE_HEX_LEN || s[i])
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "%s must be a sha256 as 64 hex digits (sha256sum prints it)", what);
	out[i] = '\0';
	return 0;
}

/* An octal mode string such as "0644"; setuid, setgid and sticky bits are refused. */
static int parse_mode(const char *s, mode_t *out, struct ferr *e)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '7' && i < 6; i++)
		v = v * 8 + (unsigned long)(s[i] - '0');
	if (i == 0 || s[i] || v > 07777)
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "mode must be an octal string like \"0644\", got \"%.16s\"", s);
	if (v & FILE_SPECIAL_BITS)
		return ferr_set(
		    e, OUTPOST_E_FORBIDDEN,
		    "mode %04lo has setuid, setgid or sticky bits, which the file plugin "
		    "never sets: use a mode without them, such as \"%04lo\"",
		    v, v & 0777);
	*out = (mode_t)v;
	return 0;
}

/* getpw*_r and getgr*_r buffers: grow until the entry fits. */
static char *nss_buf(char *old, size_t *len)
{
	char *nb;

	*len = *len ? *len * 4 : 4096;
	if (*len > (1u << 22)) {
		free(old);
		return NULL;
	}
	nb = realloc(old, *len);
	if (!nb)
		free(old);
	return nb;
}

static int numeric_id(const char *s, unsigned *out)
{
	unsigned long long v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 11; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (i == 0 || s[i] || v >= UINT32_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A user or group by name, else as a number (the order chown(1) uses). */
static int resolve_id(const char *s, int group, unsigned *out, struct ferr *e)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	do {
		if (!(buf = nss_buf(buf, &len)))
			return ferr_set(e, OUTPOST_E_INTERNAL, "out of memory looking up %.64s", s);
		rc =
		    group ? getgrnam_r(s, &gr, buf, len, &grp) : getpwnam_r(s, &pw, buf, len, &pwp);
	} while (rc == ERANGE);
	if (pwp)
		*out = pw.pw_uid;
	if (grp)
		*out = gr.gr_gid;
	free(buf);
	if (pwp || grp || numeric_id(s, out) == 0)
		return 0;
	return ferr_set(e, OUTPOST_E_BAD_ARGS,
	                "no %s named '%.64s' on this host: give an existing name or a numeric id",
	                group ? "group" : "user", s);
}

/* The name of a uid or gid, or JSON null. */
static json_t *id_name(unsigned id, int group)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char *buf = NULL;
	size_t len = 0;
	json_t *out = NULL;
	int rc;

	do {
		if (!(buf = nss_buf(buf, &len)))
			return json_null();
		rc = group ? getgrgid_r(id, &gr, buf, len, &grp)
		           : getpwuid_r(id, &pw, buf, len, &pwp);
	} while (rc == ERANGE);
	if (pwp)
		out = json_string(pw.pw_name);
	if (grp)
		out = json_string(gr.gr_name);
	free(buf);
	return out ? out : json_null();
}

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], cp, min;
		size_t k;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

static int parse_encoding(json_t *args, int *base64, struct ferr *e)
{
	const char *enc = arg_str(args, "encoding");

	*base64 = 0;
	if (!enc || strcmp(enc, "utf8") == 0)
		return 0;
	if (strcmp(enc, "base64") == 0) {
		*base64 = 1;
		return 0;
	}
	return ferr_set(e, OUTPOST_E_BAD_ARGS, "encoding must be \"utf8\" or \"base64\"");
}

static pthread_mutex_t *path_lock(struct outpost_call *call, const char *path)
{
	struct file_state *s = outpost_call_state(call);
	uint32_t h = 2166136261u; /* FNV-1a: paths are canonical, so one file, one stripe */

	for (; *path; path++)
		h = (h ^ (unsigned char)*path) * 16777619u;
	return &s->locks[h % FILE_LOCKS];
}

/* ---- put ---- */

struct put_req {
	unsigned char *data; /* decoded content; owned */
	size_t len;
	char hex[FILE_HEX_LEN + 1];
	char if_hex[FILE_HEX_LEN + 1];
	int has_if;
	int has_mode, has_uid, has_gid;
	mode_t mode;
	unsigned uid, gid;
	int make_dirs;
};

static int put_args(json_t *args, const struct fconf *c, struct put_req *q, struct ferr *e)
{
	json_t *content = json_object_get(args, "content");
	const char *s = json_string_value(content);
	size_t n = json_string_length(content);
	unsigned char digest[crypto_hash_sha256_BYTES];
	char want[FILE_HEX_LEN + 1];
	int base64, rc;

	if ((rc = parse_encoding(args, &base64, e)) < 0)
		return rc;
	if (!base64) {
		if (n > c->max_bytes)
			return ferr_set(e, OUTPOST_E_TOO_LARGE,
			                "content is %zu bytes, over file.max_bytes (%zu)", n,
			                c->max_bytes);
		q->data = malloc(n ? n : 1);
		if (!q->data)
			return ferr_set(e, OUTPOST_E_INTERNAL, "out of memory");
		memcpy(q->data, s, n);
		q->len = n;
	} else {
		const char *end = NULL;
		q->data = malloc(n / 4 * 3 + 3);
		if (!q->data)
			return ferr_set(e, OUTPOST_E_INTERNAL, "out of memory");
		if (sodium_base642bin(q->data, n / 4 * 3 + 3, s, n, " \t\r\n", &q->len, &end,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    end != s + n)
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "content is not valid base64 (standard alphabet, with '=' "
			                "padding)");
		if (q->len > c->max_bytes)
			return ferr_set(e, OUTPOST_E_TOO_LARGE,
			                "content is %zu bytes, over file.max_bytes (%zu)", q->len,
			                c->max_bytes);
	}
	crypto_hash_sha256(digest, q->data, q->len);
	hex_of(digest, q->hex);
	if ((s = arg_str(args, "sha256"))) {
		if ((rc = parse_hex(s, "sha256", want, e)) < 0)
			return rc;
		if (strcmp(want, q->hex) != 0)
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "content has sha256 %s, not the expected %s: nothing was "
			                "written; resend the content",
			                q->hex, want);
	}
	if ((s = arg_str(args, "if_sha256"))) {
		if ((rc = parse_hex(s, "if_sha256", q->if_hex, e)) < 0)
			return rc;
		q->has_if = 1;
	}
	if ((s = arg_str(args, "mode"))) {
		if ((rc = parse_mode(s, &q->mode, e)) < 0)
			return rc;
		q->has_mode = 1;
	}
	if ((s = arg_str(args, "owner"))) {
		if ((rc = resolve_id(s, 0, &q->uid, e)) < 0)
			return rc;
		q->has_uid = 1;
	}
	if ((s = arg_str(args, "group"))) {
		if ((rc = resolve_id(s, 1, &q->gid, e)) < 0)
			return rc;
		q->has_gid = 1;
	}
	if (geteuid() != 0 &&
	    ((q->has_uid && q->uid != geteuid()) || (q->has_gid && q->gid != getegid())))
		return ferr_set(e, OUTPOST_E_FORBIDDEN,
		                "changing owner or group needs the agent to run as root; omit "
		                "owner and group");
	q->make_dirs = arg_bool(args, "make_dirs", 0);
	return 0;
}

static int write_all(struct outpost_call *call, const struct fpath *fp, int fd,
                     const unsigned char *d, size_t n, struct ferr *e)
{
	size_t off = 0;

	while (off < n) {
		size_t want = n - off < FILE_CHUNK ? n - off : FILE_CHUNK;
		ssize_t w;
		int rc;
		if ((rc = deadline_check(call, fp, "writing", e)) < 0)
			return rc;
		w = write(fd, d + off, want);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EFBIG)
			return ferr_set(e, OUTPOST_E_TOO_LARGE,
			                "the file system refused %s at %zu bytes (file size limit)",
			                fp->path, off);
		if (w < 0)
			return ferr_set(e, OUTPOST_E_INTERNAL,
			                "cannot write %s: %s; the old file is unchanged", fp->path,
			                strerror(errno));
		off += (size_t)w;
	}
	return 0;
}

/* Writes a temp file next to name, gives it mode and owner, syncs it and renames it over name.
 * uid or gid (unsigned)-1: keep what the new file got (the agent's, or a setgid directory's).
 * On any failure the temp file is removed and name is as it was. */
static int put_replace(struct outpost_call *call, const struct fpath *fp, const struct put_req *q,
                       mode_t mode, unsigned uid, unsigned gid, struct ferr *e)
{
	char tmp[sizeof(FILE_TMP_PREFIX) + 24];
	unsigned char rnd[8];
	struct stat st;
	int fd = -1, rc, tries = 0;

	do {
		char hex[sizeof(rnd) * 2 + 1];
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
		snprintf(tmp, sizeof(tmp), FILE_TMP_PREFIX "%s.tmp", hex);
		fd = openat(fp->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            0600);
	} while (fd < 0 && errno == EEXIST && ++tries < 8);
	if (fd < 0)
		return ferr_set(e, errno == EACCES ? OUTPOST_E_FORBIDDEN : OUTPOST_E_INTERNAL,
		                "cannot create a temporary file next to %s: %s", fp->path,
		                strerror(errno));
	if ((rc = write_all(call, fp, fd, q->data, q->len, e)) < 0)
		goto fail;
	/* chown before chmod: chown may clear mode bits. The temp file's group may come from a
	 * setgid directory, so compare with what it really has. */
	if (fstat(fd, &st) < 0) {
		rc = ferr_set(e, OUTPOST_E_INTERNAL, "cannot stat a temporary file: %s",
		              strerror(errno));
		goto fail;
	}
	if (((uid != (unsigned)-1 && st.st_uid != uid) ||
	     (gid != (unsigned)-1 && st.st_gid != gid)) &&
	    fchown(fd, uid, gid) < 0) {
		rc = ferr_set(e, errno == EPERM ? OUTPOST_E_FORBIDDEN : OUTPOST_E_INTERNAL,
		              "cannot give %s owner %u and group %u: %s%s", fp->path, uid, gid,
		              strerror(errno),
		              errno == EPERM ? " (the agent must run as root to change owners)"
		                             : "");
		goto fail;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		rc = ferr_set(e, OUTPOST_E_INTERNAL, "cannot finish %s: %s", fp->path,
		              strerror(errno));
		goto fail;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = ferr_set(e, OUTPOST_E_INTERNAL, "cannot write %s: %s", fp->path,
		              strerror(errno));
		goto fail;
	}
	/* Past the deadline the caller has been told "timeout": do not change anything now. */
	if ((rc = deadline_check(call, fp, "writing", e)) < 0)
		goto fail;
	if (renameat(fp->dirfd, tmp, fp->dirfd, fp->name) < 0) {
		rc = ferr_set(e, OUTPOST_E_INTERNAL, "cannot rename into %s: %s", fp->path,
		              strerror(errno));
		goto fail;
	}
	if (fsync(fp->dirfd) < 0)
		outpost_call_log(call, OUTPOST_LOG_WARN,
		                 "%s replaced, but syncing its directory failed: %s", fp->path,
		                 strerror(errno));
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(fp->dirfd, tmp, 0);
	return rc;
}

static int put_locked(struct outpost_call *call, struct fpath *fp, const struct put_req *q,
                      int *changed, mode_t *mode_out, struct ferr *e)
{
	struct stat st;
	char cur[FILE_HEX_LEN + 1] = "";
	mode_t mode = q->has_mode ? q->mode : 0644;
	unsigned uid = q->has_uid ? q->uid : (unsigned)-1;
	unsigned gid = q->has_gid ? q->gid : (unsigned)-1;
	int exists = 1, rc;

	if (fstatat(fp->dirfd, fp->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return ferr_set(e, OUTPOST_E_INTERNAL, "cannot stat %s: %s", fp->path,
			                strerror(errno));
		exists = 0;
	} else if (S_ISLNK(st.st_mode)) {
		return ferr_set(e, OUTPOST_E_FORBIDDEN,
		                "%s is a symlink: the file plugin never writes through symlinks; "
		                "remove it first or use the real path",
		                fp->path);
	} else if (!S_ISREG(st.st_mode)) {
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "%s is a %s, not a regular file: put only writes regular files",
		                fp->path, S_ISDIR(st.st_mode) ? "directory" : "special file");
	}
	if (exists) {
		/* A replace keeps what the caller did not ask to change. */
		if (!q->has_mode)
			mode = st.st_mode & 07777;
		if (!q->has_uid)
			uid = st.st_uid;
		if (!q->has_gid)
			gid = st.st_gid;
		/* Different sizes differ in content: hash only when it can tell us something. */
		if ((q->has_if || (uint64_t)st.st_size == q->len) &&
		    (rc = file_hash(call, fp, &st, cur, e)) < 0)
			return rc;
	}
	*mode_out = mode;
	if (exists && (size_t)st.st_size == q->len && strcmp(cur, q->hex) == 0 &&
	    (st.st_mode & 07777) == mode && st.st_uid == uid && st.st_gid == gid) {
		/* Already as asked, whatever if_sha256 said: a retried swap stays a success. */
		*changed = 0;
		return 0;
	}
	if (q->has_if && !exists)
		return ferr_set(
		    e, OUTPOST_E_CONFLICT,
		    "%s does not exist, so it does not have sha256 %s: omit if_sha256 to "
		    "create it",
		    fp->path, q->if_hex);
	if (q->has_if && strcmp(cur, q->if_hex) != 0)
		return ferr_set(e, OUTPOST_E_CONFLICT,
		                "%s has sha256 %s, not %s (someone changed it): get it again and "
		                "retry with its current sha256",
		                fp->path, cur, q->if_hex);
	if (mode & FILE_SPECIAL_BITS)
		return ferr_set(
		    e, OUTPOST_E_FORBIDDEN,
		    "%s has mode %04o with setuid, setgid or sticky bits, which the file "
		    "plugin never writes: pass mode without them (such as \"%04o\") to "
		    "replace it",
		    fp->path, (unsigned)mode, (unsigned)(mode & 0777));
	if ((rc = put_replace(call, fp, q, mode, uid, gid, e)) < 0)
		return rc;
	*changed = 1;
	return 0;
}

static int op_put(struct outpost_call *call, json_t *args, json_t **result)
{
	struct put_req q;
	struct fconf c;
	struct fpath fp;
	struct ferr e = {0};
	pthread_mutex_t *lock;
	mode_t mode = 0;
	int changed = 0, rc;

	memset(&q, 0, sizeof(q));
	fpath_init(&fp);
	if ((rc = conf_load(call, &c, &e)) < 0 ||
	    (rc = fpath_resolve(&fp, &c, json_object_get(args, "path"), &e)) < 0 ||
	    (rc = put_args(args, &c, &q, &e)) < 0)
		goto out;
	if (!*fp.rel) {
		rc = ferr_set(&e, OUTPOST_E_FORBIDDEN,
		              "%s is a root itself: put writes files beneath a root", fp.path);
		goto out;
	}
	/* With if_sha256 the file must exist already, and so must its parents. */
	if ((rc = fpath_open(&fp, q.make_dirs && !q.has_if, &e)) < 0)
		goto out;
	lock = path_lock(call, fp.path);
	pthread_mutex_lock(lock);
	rc = put_locked(call, &fp, &q, &changed, &mode, &e);
	pthread_mutex_unlock(lock);
	if (rc < 0)
		goto out;
	*result = json_pack("{s:s, s:I, s:s, s:o, s:b}", "path", fp.path, "size", (json_int_t)q.len,
	                    "sha256", q.hex, "mode", mode_json(mode), "changed", changed);
	if (!*result)
		rc = ferr_set(&e, OUTPOST_E_INTERNAL, "out of memory");
out:
	fpath_close(&fp);
	free(q.data);
	return rc < 0 ? ferr_report(call, &e) : 0;
}

/* ---- get ---- */

static int op_get(struct outpost_call *call, json_t *args, json_t **result)
{
	struct fconf c;
	struct fpath fp;
	struct ferr e = {0};
	struct stat st;
	char hex[FILE_HEX_LEN + 1];
	unsigned char *data = NULL;
	json_t *content = NULL, *max = json_object_get(args, "max_bytes");
	size_t size = 0, limit;
	int base64, fd = -1, rc;

	fpath_init(&fp);
	if ((rc = conf_load(call, &c, &e)) < 0 ||
	    (rc = fpath_resolve(&fp, &c, json_object_get(args, "path"), &e)) < 0 ||
	    (rc = parse_encoding(args, &base64, &e)) < 0)
		goto out;
	limit = c.max_bytes;
	if (json_is_integer(max)) {
		if (json_integer_value(max) <= 0) {
			rc = ferr_set(&e, OUTPOST_E_BAD_ARGS, "max_bytes must be positive");
			goto out;
		}
		if ((uint64_t)json_integer_value(max) < limit)
			limit = (size_t)json_integer_value(max);
	}
	if (!*fp.rel) {
		rc = ferr_set(&e, OUTPOST_E_BAD_ARGS,
		              "%s is a directory (a root), not a regular file: use stat", fp.path);
		goto out;
	}
	if ((rc = fpath_open(&fp, 0, &e)) < 0)
		goto out;
	if (fstatat(fp.dirfd, fp.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = errno == ENOENT
		         ? ferr_set(&e, OUTPOST_E_NOT_FOUND, "%s does not exist", fp.path)
		         : ferr_set(&e, OUTPOST_E_INTERNAL, "cannot stat %s: %s", fp.path,
		                    strerror(errno));
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		rc = ferr_set(&e, OUTPOST_E_FORBIDDEN,
		              "%s is a symlink: the file plugin never follows symlinks; use stat "
		              "to see it, or get the real path",
		              fp.path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ferr_set(&e, OUTPOST_E_BAD_ARGS,
		              "%s is a %s, not a regular file: get reads regular files; use stat",
		              fp.path, S_ISDIR(st.st_mode) ? "directory" : "special file");
		goto out;
	}
	if ((uint64_t)st.st_size > limit) {
		rc = ferr_set(&e, OUTPOST_E_TOO_LARGE,
		              "%s is %lld bytes, over the limit of %zu: raise max_bytes (at most "
		              "file.max_bytes), or use stat for its sha256",
		              fp.path, (long long)st.st_size, limit);
		goto out;
	}
	if ((rc = reg_open(&fp, &st, &fd, &e)) < 0 ||
	    (rc = fd_read(call, &fp, fd, (size_t)st.st_size, limit, &data, &size, hex, &e)) < 0)
		goto out;
	if (base64) {
		size_t blen = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
		char *b = malloc(blen);
		if (b) {
			sodium_bin2base64(b, blen, data, size, sodium_base64_VARIANT_ORIGINAL);
			content = json_stringn(b, blen - 1);
			free(b);
		}
	} else if (!utf8_valid(data, size)) {
		rc = ferr_set(&e, OUTPOST_E_BAD_ARGS,
		              "%s is not valid UTF-8 text: ask again with encoding \"base64\"",
		              fp.path);
		goto out;
	} else {
		content = json_stringn((const char *)data, size);
	}
	*result = content ? json_pack("{s:s, s:I, s:s, s:o, s:I, s:I, s:I, s:o, s:s}", "path",
	                              fp.path, "size", (json_int_t)size, "sha256", hex, "mode",
	                              mode_json(st.st_mode), "uid", (json_int_t)st.st_uid, "gid",
	                              (json_int_t)st.st_gid, "mtime", (json_int_t)st.st_mtime,
	                              "content", content, "encoding", base64 ? "base64" : "utf8")
	                  : NULL;
	if (!*result)
		rc = ferr_set(&e, OUTPOST_E_INTERNAL, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	free(data);
	fpath_close(&fp);
	return rc < 0 ? ferr_report(call, &e) : 0;
}

/* ---- stat ---- */

static int op_stat(struct outpost_call *call, json_t *args, json_t **result)
{
	struct fconf c;
	struct fpath fp;
	struct ferr e = {0};
	struct stat st;
	char hex[FILE_HEX_LEN + 1];
	json_t *r = NULL;
	int rc;

	fpath_init(&fp);
	if ((rc = conf_load(call, &c, &e)) < 0 ||
	    (rc = fpath_resolve(&fp, &c, json_object_get(args, "path"), &e)) < 0)
		goto out;
	if ((rc = fpath_open(&fp, 0, &e)) < 0) {
		if (!e.missing)
			goto out;
		rc = 0;
		goto absent;
	}
	if (!*fp.rel) {
		rc = fstat(fp.rootfd, &st);
	} else {
		rc = fstatat(fp.dirfd, fp.name, &st, AT_SYMLINK_NOFOLLOW);
		if (rc < 0 && (errno == ENOENT || errno == ENOTDIR)) {
			rc = 0;
			goto absent;
		}
	}
	if (rc < 0) {
		rc = ferr_set(&e, OUTPOST_E_INTERNAL, "cannot stat %s: %s", fp.path,
		              strerror(errno));
		goto out;
	}
	r = json_pack("{s:s, s:b, s:s, s:I, s:o, s:I, s:I, s:o, s:o, s:I}", "path", fp.path,
	              "exists", 1, "type", mode_type(st.st_mode), "size", (json_int_t)st.st_size,
	              "mode", mode_json(st.st_mode), "uid", (json_int_t)st.st_uid, "gid",
	              (json_int_t)st.st_gid, "owner", id_name(st.st_uid, 0), "group",
	              id_name(st.st_gid, 1), "mtime", (json_int_t)st.st_mtime);
	if (r && S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(fp.dirfd, fp.name, target, sizeof(target) - 1);
		if (n >= 0)
			json_object_set_new(r, "target", json_stringn(target, (size_t)n));
	}
	if (r && S_ISREG(st.st_mode) && arg_bool(args, "hash", 1)) {
		if ((rc = file_hash(call, &fp, &st, hex, &e)) < 0)
			goto out;
		json_object_set_new(r, "sha256", json_string(hex));
	}
	goto done;
absent:
	r = json_pack("{s:s, s:b}", "path", fp.path, "exists", 0);
done:
	if (!r)
		rc = ferr_set(&e, OUTPOST_E_INTERNAL, "out of memory");
	*result = r;
	r = NULL;
out:
	json_decref(r);
	fpath_close(&fp);
	return rc < 0 ? ferr_report(call, &e) : 0;
}

/* ---- remove ---- */

static int remove_locked(struct fpath *fp, int dir, int *removed, struct ferr *e)
{
	struct stat st;
	int flags = 0;

	if (fstatat(fp->dirfd, fp->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return ferr_set(e, OUTPOST_E_INTERNAL, "cannot stat %s: %s", fp->path,
		                strerror(errno));
	}
	if (S_ISDIR(st.st_mode)) {
		if (!dir)
			return ferr_set(e, OUTPOST_E_BAD_ARGS,
			                "%s is a directory: pass dir: true to remove an empty "
			                "directory",
			                fp->path);
		flags = AT_REMOVEDIR;
	} else if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		return ferr_set(e, OUTPOST_E_BAD_ARGS,
		                "%s is a special file: remove deletes only regular files, symlinks "
		                "and empty directories",
		                fp->path);
	}
	/* unlinkat removes the entry itself: a symlink goes, its target stays. */
	if (unlinkat(fp->dirfd, fp->name, flags) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTEMPTY || errno == EEXIST)
			return ferr_set(e, OUTPOST_E_CONFLICT,
			                "directory %s is not empty: remove its entries first",
			                fp->path);
		return ferr_set(
		    e, errno == EACCES || errno == EPERM ? OUTPOST_E_FORBIDDEN : OUTPOST_E_INTERNAL,
		    "cannot remove %s: %s", fp->path, strerror(errno));
	}
	fsync(fp->dirfd); /* durability only: the entry is gone either way */
	*removed = 1;
	return 0;
}

static int op_remove(struct outpost_call *call, json_t *args, json_t **result)
{
	struct fconf c;
	struct fpath fp;
	struct ferr e = {0};
	pthread_mutex_t *lock;
	int removed = 0, rc;

	fpath_init(&fp);
	if ((rc = conf_load(call, &c, &e)) < 0 ||
	    (rc = fpath_resolve(&fp, &c, json_object_get(args, "path"), &e)) < 0)
		goto out;
	if (!*fp.rel) {
		rc =
		    ferr_set(&e, OUTPOST_E_FORBIDDEN,
		             "%s is a root itself: remove deletes entries beneath a root", fp.path);
		goto out;
	}
	if ((rc = fpath_open(&fp, 0, &e)) < 0) {
		if (!e.missing)
			goto out;
		rc = 0;
	} else {
		lock = path_lock(call, fp.path);
		pthread_mutex_lock(lock);
		rc = remove_locked(&fp, arg_bool(args, "dir", 0), &removed, &e);
		pthread_mutex_unlock(lock);
		if (rc < 0)
			goto out;
	}
	*result = json_pack("{s:s, s:b}", "path", fp.path, "removed", removed);
	if (!*result)
		rc = ferr_set(&e, OUTPOST_E_INTERNAL, "out of memory");
out:
	fpath_close(&fp);
	return rc < 0 ? ferr_report(call, &e) : 0;
}

/* ---- The plugin table ---- */

static int file_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct file_state *s;
	json_t *roots = json_object_get(outpost_plugin_config(pc), "roots");

	if (sodium_init() < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "libsodium failed to initialise");
		return OUTPOST_E_INTERNAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return OUTPOST_E_INTERNAL;
	for (size_t i = 0; i < FILE_LOCKS; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	if (!json_array_size(roots))
		outpost_log(pc, OUTPOST_LOG_INFO,
		            "no file.roots configured: every file op will be refused");
	*state = s;
	return 0;
}

static void file_fini(void *state)
{
	struct file_state *s = state;

	if (!s)
		return;
	for (size_t i = 0; i < FILE_LOCKS; i++)
		pthread_mutex_destroy(&s->locks[i]);
	free(s);
}

static const struct outpost_arg put_args_spec[] = {
    {"path", OUTPOST_ARG_STRING, 1, "absolute path beneath one of file.roots"},
    {"content", OUTPOST_ARG_STRING, 1, "the new content, encoded as encoding says"},
    {"encoding", OUTPOST_ARG_STRING, 0, "\"utf8\" (default) or \"base64\""},
    {"sha256", OUTPOST_ARG_STRING, 0, "expected sha256 (hex) of the decoded content"},
    {"if_sha256", OUTPOST_ARG_STRING, 0, "replace only if the file now has this sha256"},
    {"mode", OUTPOST_ARG_STRING, 0, "octal string, e.g. \"0644\"; no setuid/setgid/sticky"},
    {"owner", OUTPOST_ARG_STRING, 0, "user name or numeric uid (agent must be root)"},
    {"group", OUTPOST_ARG_STRING, 0, "group name or numeric gid (agent must be root)"},
    {"make_dirs", OUTPOST_ARG_BOOL, 0, "create missing parent directories (0755)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_arg get_args_spec[] = {
    {"path", OUTPOST_ARG_STRING, 1, "absolute path beneath one of file.roots"},
    {"encoding", OUTPOST_ARG_STRING, 0, "\"utf8\" (default; refused if not UTF-8) or \"base64\""},
    {"max_bytes", OUTPOST_ARG_INT, 0, "refuse files larger than this (at most file.max_bytes)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_arg stat_args_spec[] = {
    {"path", OUTPOST_ARG_STRING, 1, "absolute path beneath one of file.roots"},
    {"hash", OUTPOST_ARG_BOOL, 0, "include sha256 of a regular file (default true)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_arg remove_args_spec[] = {
    {"path", OUTPOST_ARG_STRING, 1, "absolute path beneath one of file.roots"},
    {"dir", OUTPOST_ARG_BOOL, 0, "also remove an empty directory"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op file_ops[] = {
    {"put", op_put, put_args_spec, OUTPOST_OP_MUTATING,
     "write a file atomically, with sha256 check, mode and owner"},
    {"get", op_get, get_args_spec, 0, "read a file with its sha256, mode and owner"},
    {"stat", op_stat, stat_args_spec, 0, "describe a path without following symlinks"},
    {"remove", op_remove, remove_args_spec, OUTPOST_OP_MUTATING,
     "remove a file, a symlink or an empty directory"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_file = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "file",
    .version = "1.0.0",
    .init = file_init,
    .fini = file_fini,
    .ops = file_ops,
};
