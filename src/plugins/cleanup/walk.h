/* The cleanup plugin's file system side: directories opened beneath a root one component at a
 * time (openat, O_NOFOLLOW), trees listed without following a symlink or leaving the file
 * system they start on, and the two changes made to files (delete, gzip), each done through
 * the parent's fd after checking the file is still the one that was listed. No function here
 * takes a path string to the kernel from "/": a symlink planted anywhere beneath a policy's
 * directory, or a directory swapped for one between the listing and the change, is never
 * followed. */
#ifndef OUTPOST_CLEANUP_WALK_H
#define OUTPOST_CLEANUP_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CW_SCAN_MAX 200000 /* files listed for one rule; more: the rule is refused */
#define CW_DEPTH_MAX 32
#define CW_TMP_PREFIX ".outpost-cleanup-" /* our own temporary files: never listed */

/* Opens the directory rel names beneath fd ("a/b/c"; "" or "/" is fd itself, a new fd),
 * never through a symlink. Returns an fd (O_CLOEXEC), or -1 with errno: ELOOP when a
 * component is a symlink, ENOTDIR when one is not a directory, ENOENT. A leading '/' is
 * skipped: policy paths are absolute beneath the plugin's root. */
int cw_open_dir(int fd, const char *rel);
/* Opens the parent of rel's last component as cw_open_dir does; *name points into rel. */
int cw_open_parent(int fd, const char *rel, const char **name);

enum cw_action { CW_KEEP = 0, CW_DELETE, CW_COMPRESS };

struct cw_file {
	char *rel; /* beneath the scanned directory: "app.log.3", "sub/x.log"; owned */
	int64_t size;
	int64_t mtime_s;
	dev_t dev;
	ino_t ino;
	struct timespec
	    ctime;  /* with dev and ino: the same file, not a new one on a reused inode */
	size_t dir; /* index of the directory it is in, for keep-N */
	enum cw_action action;
	const char *reason; /* static: "max_age", "keep", "max_total_size", "compress_after" */
};

struct cw_scan {
	struct cw_file *v;
	size_t n, cap;
	size_t dirs;
	size_t symlinks; /* symlinks seen and left alone */
	int truncated;   /* more than CW_SCAN_MAX files: nothing may be decided */
};

/* Lists the regular files beneath dirfd whose names match pattern (fnmatch, FNM_PERIOD: "*"
 * skips dot files), into subdirectories too when recurse, never into a symlink or another
 * file system. stop (may be NULL) is asked now and then; nonzero ends the scan with
 * OUTPOST_E_TIMEOUT. Returns 0 or a negative OUTPOST_E_* with msg set. */
int cw_scan(int dirfd, const char *pattern, int recurse, int (*stop)(void *), void *stop_arg,
            struct cw_scan *out, char *msg, size_t msglen);
void cw_scan_free(struct cw_scan *s);

/* Removes f beneath dirfd if it is still the file listed (device, inode, ctime, size, mtime). */
int cw_delete(int dirfd, const struct cw_file *f, char *msg, size_t msglen);
/* Replaces f beneath dirfd with f.gz (zlib, level 6), same mode, owner and times, written to a
 * temporary file, fsynced and renamed (never over an existing f.gz); then removes f. Refuses
 * a file that changed while it was read (a log still being written). *saved: bytes freed. */
int cw_compress(int dirfd, const struct cw_file *f, int64_t *saved, char *msg, size_t msglen);

#endif
