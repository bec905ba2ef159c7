/* A private directory under /tmp for a unit test's state, removed with all it holds. */
#ifndef OUTPOST_TESTS_TMPDIR_H
#define OUTPOST_TESTS_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#define TMPDIR_LEN 96

/* dir (TMPDIR_LEN bytes) gets /tmp/outpost-<name>-XXXXXX, made; 0 or -1. */
static inline int tmpdir_make(char *dir, const char *name)
{
	snprintf(dir, TMPDIR_LEN, "/tmp/outpost-%s-XXXXXX", name);
	return mkdtemp(dir) ? 0 : -1;
}

static inline int tmpdir_rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static inline void tmpdir_remove(const char *dir)
{
	nftw(dir, tmpdir_rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
