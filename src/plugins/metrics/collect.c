/* Host metric collectors (see collect.h): the collector's life and one sample, which calls the
 * sources in collect_sys.c (CPU, load, memory, processes), collect_fs.c (filesystems) and
 * collect_dev.c (disks, network interfaces, TCP); what they share is in collect_util.c. */
#include "collect_int.h"

#include <outpost/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int collect_default_statvfs(void *arg, const char *path, struct statvfs *st)
{
	return statvfs(path, st);
}

int collect_new(const char *proc_root, const char *mounts_path, collect_statvfs_fn sv, void *sv_arg,
                struct collect **out)
{
	struct collect *c;
	int fd;

	if (!proc_root || !out)
		return OUTPOST_E_BAD_ARGS;
	*out = NULL;
	fd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? OUTPOST_E_NOT_FOUND
		                                           : OUTPOST_E_UNAVAILABLE;
	close(fd);

	c = calloc(1, sizeof(*c));
	if (!c)
		return OUTPOST_E_INTERNAL;
	c->dirfd = -1;
	c->sv = sv ? sv : collect_default_statvfs;
	c->sv_arg = sv_arg;
	c->proc_root = strdup(proc_root);
	c->mounts_path = mounts_path ? strdup(mounts_path) : NULL;
	c->rcap = COLLECT_RBUF_INIT;
	/* sock_diag answers for the kernel the agent runs on: right for the real /proc only. */
	c->tcp_diag = strcmp(proc_root, "/proc") == 0;
	c->rbuf = malloc(c->rcap);
	if (!c->proc_root || (mounts_path && !c->mounts_path) || !c->rbuf) {
		collect_free(c);
		return OUTPOST_E_INTERNAL;
	}
	*out = c;
	return 0;
}

void collect_set_per_cpu(struct collect *c, int on)
{
	c->per_cpu = !!on;
}

uint64_t collect_parse_errors(const struct collect *c)
{
	return c->parse_errors;
}

void collect_free(struct collect *c)
{
	if (!c)
		return;
	free(c->proc_root);
	free(c->mounts_path);
	free(c->rbuf);
	free(c->cpus);
	collect_dev_clear(&c->disks);
	collect_dev_clear(&c->nets);
	free(c->mnt);
	buf_free(&c->strs);
	free(c);
}

/* ---- One sample ---- */

int collect_sample(struct collect *c, int64_t now_ms, collect_emit_fn emit, void *arg)
{
	int rc;

	if (!c || !emit)
		return OUTPOST_E_BAD_ARGS;
	c->dirfd = open(c->proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return OUTPOST_E_UNAVAILABLE;
	c->emit = emit;
	c->arg = arg;
	c->gen++;
	c->failed = c->nomem = 0;
	c->dt = c->have_prev && now_ms > c->prev_ms ? (double)(now_ms - c->prev_ms) / 1000 : 0;

	collect_stat(c); /* first: it may find a reboot and forget the previous counters */
	collect_loadavg(c);
	collect_meminfo(c);
	collect_pids(c);
	collect_filesystems(c);
	collect_disks(c);
	collect_nets(c);
	collect_tcp(c);
	collect_emit(c, "host_collect_parse_errors_total", NULL, (double)c->parse_errors);

	close(c->dirfd);
	c->dirfd = -1;
	c->have_prev = 1;
	c->prev_ms = now_ms;
	rc = c->nomem ? OUTPOST_E_INTERNAL : c->failed ? OUTPOST_E_UNAVAILABLE : 0;
	c->emit = NULL;
	c->arg = NULL;
	return rc;
}
