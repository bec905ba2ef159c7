/* cgroup v2 helpers shared by the plugins that set limits (guard, supervise). */
#ifndef OUTPOST_PLUGINS_CGROUP_H
#define OUTPOST_PLUGINS_CGROUP_H

#include <jansson.h>
#include <stddef.h>

/* What the two parsers accept, for config errors. */
#define CG_MEMORY_HELP "must be bytes (an integer, or a number with K, M, G or T) or \"max\""
#define CG_CPU_HELP                                                                                \
	"must be a share of one CPU (\"50%\", \"200%\"), \"QUOTA PERIOD\" in microseconds, or "    \
	"\"max\""

/* memory.max from bytes (an integer, or a string with K/M/G/T, powers of 1024) or "max": what
 * the file must read into out. 0, or -1. */
int cg_parse_memory(const json_t *v, char *out, size_t len);
/* cpu.max from "50%" (of one CPU; 200% is two), "QUOTA PERIOD" in microseconds, or "max". */
int cg_parse_cpu(const json_t *v, char *out, size_t len);
/* Reads at most len-1 bytes of dir/name (no symlink at the last step), trailing blanks cut.
 * 0 or -1 (errno). */
int cg_read_small(const char *dir, const char *name, char *buf, size_t len);
/* Writes value to dir/name (no symlink at the last step). 0 or -1 (errno). */
int cg_write_small(const char *dir, const char *name, const char *value);
/* NULL when root has a cgroup v2 hierarchy (its cgroup.controllers), else why not. */
const char *cg_v2_missing(const char *root);
/* Sets the limit file ("memory.max", "cpu.max") of the cgroup at dir to want when its
 * controller is enabled there and it reads otherwise. 0: it already read want; 1: written
 * (was: what it read before); -1: not set, msg says why ("skipped: ..."). */
int cg_set(const char *dir, const char *file, const char *want, char *was, size_t waslen, char *msg,
           size_t msglen);

#endif
