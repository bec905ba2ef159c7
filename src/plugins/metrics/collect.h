/* Host metric collectors for the metrics plugin: CPU, load, memory, filesystems, disk I/O,
 * network, processes and TCP states, read straight from /proc and statvfs(). docs/metrics.md
 * lists every metric. One struct collect per caller thread; there is no global state. */
#ifndef OUTPOST_COLLECT_H
#define OUTPOST_COLLECT_H

#include <stdint.h>

struct collect;
struct statvfs;

/* Like statvfs(2): returns 0, or -1 with errno set. */
typedef int (*collect_statvfs_fn)(void *arg, const char *path, struct statvfs *st);

/* Receives one sample of one metric. name follows Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*);
 * labels is a NULL-terminated list of key, value, key, value. Everything is borrowed for the
 * duration of the call. Label values are raw bytes (a mount point may hold any character):
 * the serializer escapes them. */
typedef void (*collect_emit_fn)(void *arg, const char *name, const char *const *labels,
                                double value);

/* proc_root: "/proc" in production, a fixture directory in tests; it is opened afresh on every
 * sample. mounts_path: the mount table to read; NULL means <proc_root>/self/mounts. sv: NULL
 * means statvfs(2). Returns 0 and a new collector in *out (free with collect_free), or
 * OUTPOST_E_BAD_ARGS, OUTPOST_E_NOT_FOUND (no such proc_root), OUTPOST_E_INTERNAL (memory). */
int collect_new(const char *proc_root, const char *mounts_path, collect_statvfs_fn sv, void *sv_arg,
                struct collect **out);

/* Also emit host_cpu_core_percent for every CPU (off by default: it multiplies the series). */
void collect_set_per_cpu(struct collect *c, int on);

/* Reads every source once and emits what it found. now_ms is CLOCK_MONOTONIC in milliseconds;
 * rates are per second over the time since the previous call, so the first call (and the first
 * after a reboot, or after a device appears) emits no rates. Returns 0 when every source was
 * read; OUTPOST_E_UNAVAILABLE when some could not be (the rest was still emitted);
 * OUTPOST_E_INTERNAL when memory ran out; OUTPOST_E_BAD_ARGS for NULL arguments.
 * Blocking: statvfs() on each real filesystem, which is why network filesystems are left out. */
int collect_sample(struct collect *c, int64_t now_ms, collect_emit_fn emit, void *arg);

/* Malformed or truncated lines skipped since collect_new (also emitted as
 * host_collect_parse_errors_total). */
uint64_t collect_parse_errors(const struct collect *c);

void collect_free(struct collect *c); /* NULL ok */

#endif
