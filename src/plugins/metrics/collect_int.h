/* What the collectors of collect*.c share: the collector state, the line reader, the number
 * parsers and the counter-to-rate rule. Not an API: only collect*.c include it. */
#ifndef OUTPOST_COLLECT_INT_H
#define OUTPOST_COLLECT_INT_H

#include "collect.h"
#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

#define COLLECT_NAME_MAX 32 /* disk and interface names: DISK_NAME_LEN 32, IFNAMSIZ 16 */
#define COLLECT_DEV_COUNTERS 8
#define COLLECT_CPU_MODES 8
/* The read buffer starts at one seq_file batch and grows only for a longer line. A busy host's
 * /proc/net/tcp is megabytes: it streams through the buffer, never all of it at once. */
#define COLLECT_RBUF_INIT (64 * 1024)
#define COLLECT_LINE_MAX (1024 * 1024)

/* A disk or interface listed by the last sample, with its counters then. */
struct collect_dev {
	char name[COLLECT_NAME_MAX];
	uint64_t v[COLLECT_DEV_COUNTERS];
	unsigned gen; /* the sample that last listed it */
};

/* Devices in the order the kernel lists them; that order is stable, so a lookup starts where
 * the previous one ended and a sample costs O(n). */
struct collect_devtab {
	struct collect_dev *d;
	size_t n, cap;
	size_t next;
};

/* One CPU's jiffies by mode (user nice system idle iowait irq softirq steal). */
struct collect_cpu {
	uint64_t prev[COLLECT_CPU_MODES];
	uint64_t cur[COLLECT_CPU_MODES];
	int prev_ok, cur_ok;
};

/* A mount that passed the filesystem type filter, during one sample. */
struct collect_mount {
	size_t src, dir, type;           /* offsets into collect.strs while reading, then ... */
	const char *srcp, *dirp, *typep; /* ... pointers, once strs no longer moves */
	size_t dirlen;
	size_t order; /* position in the mount table */
	int hidden;   /* over-mounted, or a bind mount of a filesystem listed elsewhere */
};

struct collect {
	char *proc_root;   /* owned */
	char *mounts_path; /* owned; NULL: self/mounts under proc_root */
	collect_statvfs_fn sv;
	void *sv_arg;
	int per_cpu;

	/* During one sample. */
	int dirfd; /* proc_root */
	collect_emit_fn emit;
	void *arg;
	double dt;    /* seconds since the previous sample; 0 when no rates can be given */
	unsigned gen; /* bumped every sample */
	int failed;   /* a source could not be read */
	int nomem;

	char *rbuf; /* read buffer, reused; grows up to COLLECT_LINE_MAX for one long line */
	size_t rcap;
	uint64_t parse_errors;
	int tcp_diag;          /* TCP states through sock_diag: only for the real /proc */
	uint32_t tcp_diag_seq; /* of the last dump request */

	/* Kept from the previous sample. */
	int have_prev;
	int64_t prev_ms;
	uint64_t btime;
	int have_btime;
	uint64_t forks, ctxt; /* and whether each was read: */
	int forks_ok, ctxt_ok;
	struct collect_cpu total;
	struct collect_cpu *cpus; /* per-CPU, indexed by CPU number; only with per_cpu */
	size_t ncpus;
	struct collect_devtab disks, nets;

	/* Scratch for the mount table, reused. */
	struct collect_mount *mnt;
	size_t nmnt, mntcap;
	struct buf strs;
};

/* Calls fn for every complete, non-empty line of path (relative to dirfd), NUL-terminated in
 * place and writable; lineno counts every line from 0. An unterminated last line or a line longer
 * than the buffer can grow to is skipped and counted. Returns 0, OUTPOST_E_NOT_FOUND when the file
 * does not exist, or OUTPOST_E_UNAVAILABLE when it cannot be read. */
typedef void (*collect_line_fn)(struct collect *c, char *line, unsigned lineno, void *arg);
int collect_read_lines(struct collect *c, int dirfd, const char *path, collect_line_fn fn,
                       void *arg);

/* Parsers over a NUL-terminated line. Each skips blanks first, advances *pp past what it read,
 * and returns 0, or -1 (leaving *pp) when there is no well-formed field. */
int collect_num(const char **pp, uint64_t *out); /* digits; may be followed by anything */
int collect_u64(const char **pp, uint64_t *out); /* digits followed by a blank or the end */
int collect_token(char **pp, char **tok);        /* a word, NUL-terminated in place */
int collect_is_blank(char ch);

/* The increase of a counter from prev to cur in *delta; -1 when it was reset (see collect.c). */
int collect_delta(uint64_t prev, uint64_t cur, uint64_t *delta);
/* Emits name{labels} = (cur - prev) * scale / dt, unless there is no interval or the counter
 * was reset. */
void collect_emit_rate(struct collect *c, const char *name, const char *const *labels,
                       uint64_t prev, uint64_t cur, double scale);
void collect_emit(struct collect *c, const char *name, const char *const *labels, double v);
void collect_parse_error(struct collect *c);

/* The entry for name, created (with no previous counters: *fresh = 1) when it is new, and
 * marked as listed by this sample; NULL when memory runs out. */
struct collect_dev *collect_dev_get(struct collect *c, struct collect_devtab *t, const char *name,
                                    int *fresh);
/* Forgets the devices this sample did not list: one that comes back starts afresh. */
void collect_dev_prune(struct collect *c, struct collect_devtab *t);
void collect_dev_clear(struct collect_devtab *t);

/* Forgets every previous counter (after a reboot): the next rates need two new samples. */
void collect_forget(struct collect *c);

/* The sources, called in this order by collect_sample. collect_stat comes first: it may find
 * a reboot. Each emits what it read, sets c->failed when its file could not be read. */
void collect_stat(struct collect *c);
void collect_loadavg(struct collect *c);
void collect_meminfo(struct collect *c);
void collect_pids(struct collect *c);
void collect_filesystems(struct collect *c);
void collect_disks(struct collect *c);
void collect_nets(struct collect *c);
void collect_tcp(struct collect *c);

/* Counts, by kernel TCP state (count has COLLECT_TCP_STATES slots), the sockets in one datagram
 * of a TCPDIAG_GETSOCK dump answering request seq; a record too short or with an unknown state
 * is skipped and counted in *bad. Returns 1 at the end of the dump, 0 when more datagrams
 * follow, -1 for an error from the kernel, a foreign sequence number or a cut message. */
#define COLLECT_TCP_STATES 13
int collect_tcp_diag_batch(const void *data, size_t len, uint32_t seq, uint64_t *count,
                           uint64_t *bad);

#endif
