/* Tests for the cleanup plugin's walker (src/plugins/cleanup/walk.c) and the rules' decisions
 * (cl_rule_decide in run.c): nothing beneath a directory is reached through a symlink, a file
 * swapped after the listing is left alone, and age, keep-N, total size and compression pick
 * the files they should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tmpdir.h"
#include "plugins/cleanup/run.h"
#include "plugins/cleanup/walk.h"

#include <errno.h>
#include <fcntl.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

struct fx {
	char dir[TMPDIR_LEN];
	char path[512];
	int top; /* fd of dir/top: the scanned directory */
};

static const char *P(struct fx *f, const char *rel)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, rel);
	return f->path;
}

/* A file of size bytes, age_s seconds old. */
static void mkfile(struct fx *f, const char *rel, size_t size, int64_t age_s)
{
	struct timespec ts[2];
	char *data = calloc(1, size + 1);
	int fd;

	for (size_t i = 0; i < size; i++)
		data[i] = (char)('a' + i % 7);
	fd = open(P(f, rel), O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age_s;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	free(data);
}

/* link_rel -> dir/target_rel (absolute). */
static void mklink(struct fx *f, const char *target_rel, const char *link_rel)
{
	char target[512];

	snprintf(target, sizeof(target), "%s/%s", f->dir, target_rel);
	assert_int_equal(symlink(target, P(f, link_rel)), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(tmpdir_make(f->dir, "cleanup-walk"), 0);
	assert_int_equal(mkdir(P(f, "top"), 0755), 0);
	assert_int_equal(mkdir(P(f, "top/sub"), 0755), 0);
	assert_int_equal(mkdir(P(f, "outside"), 0755), 0);
	mkfile(f, "outside/victim.log", 100, 100 * 86400);
	f->top = open(P(f, "top"), O_RDONLY | O_DIRECTORY);
	assert_true(f->top >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	close(f->top);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static const struct cw_file *find(const struct cw_scan *s, const char *rel)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].rel, rel) == 0)
			return &s->v[i];
	return NULL;
}

static void test_scan_lists_matches_and_skips_symlinks(void **state)
{
	struct fx *f = *state;
	struct cw_scan s;
	char msg[256];

	mkfile(f, "top/a.log", 10, 0);
	mkfile(f, "top/b.txt", 10, 0);
	mkfile(f, "top/.hidden.log", 10, 0);
	mkfile(f, "top/sub/c.log", 10, 0);
	mklink(f, "outside", "top/out");
	assert_int_equal(symlink("../outside/victim.log", P(f, "top/v.log")), 0);

	assert_int_equal(cw_scan(f->top, "*.log", 1, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(s.n, 2);
	assert_non_null(find(&s, "a.log"));
	assert_non_null(find(&s, "sub/c.log"));
	assert_null(find(&s, "v.log"));
	assert_int_equal(s.symlinks, 2);
	cw_scan_free(&s);

	assert_int_equal(cw_scan(f->top, "*.log", 0, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(s.n, 1); /* no recursion: sub/ not entered */
	cw_scan_free(&s);
}

static void test_open_dir_refuses_symlinked_components(void **state)
{
	struct fx *f = *state;
	int fd;

	mklink(f, "outside", "top/link");
	fd = cw_open_dir(f->top, "sub");
	assert_true(fd >= 0);
	close(fd);
	errno = 0;
	assert_int_equal(cw_open_dir(f->top, "/link"), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(cw_open_dir(f->top, "sub/../../outside"), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_delete_leaves_a_swapped_file_alone(void **state)
{
	struct fx *f = *state;
	struct cw_scan s;
	char msg[256], moved[512];
	struct stat st;

	mkfile(f, "top/sub/old.log", 10, 30 * 86400);
	assert_int_equal(cw_scan(f->top, "*", 1, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(s.n, 1);
	/* The directory is swapped for a symlink to outside between listing and deleting. */
	snprintf(moved, sizeof(moved), "%s", P(f, "top/sub.moved"));
	assert_int_equal(rename(P(f, "top/sub"), moved), 0);
	mklink(f, "outside", "top/sub");
	mkfile(f, "outside/old.log", 10, 30 * 86400);
	assert_int_equal(cw_delete(f->top, &s.v[0], msg, sizeof(msg)), OUTPOST_E_CONFLICT);
	assert_non_null(strstr(msg, "symlink"));
	assert_int_equal(stat(P(f, "outside/old.log"), &st), 0);
	/* And a file replaced by another of the same name is not the one listed. */
	assert_int_equal(unlink(P(f, "top/sub")), 0);
	assert_int_equal(rename(moved, P(f, "top/sub")), 0);
	assert_int_equal(unlink(P(f, "top/sub/old.log")), 0);
	mkfile(f, "top/sub/old.log", 10, 30 * 86400);
	assert_int_equal(cw_delete(f->top, &s.v[0], msg, sizeof(msg)), OUTPOST_E_CONFLICT);
	assert_int_equal(stat(P(f, "top/sub/old.log"), &st), 0);
	cw_scan_free(&s);
}

static void test_compress_keeps_content_mode_and_times(void **state)
{
	struct fx *f = *state;
	struct cw_scan s;
	char msg[256], back[5000];
	struct stat st;
	int64_t saved = 0;
	gzFile gz;

	mkfile(f, "top/app.log", 4000, 3 * 86400);
	assert_int_equal(cw_scan(f->top, "*", 0, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(cw_compress(f->top, &s.v[0], &saved, msg, sizeof(msg)), 0);
	assert_true(saved > 3000);
	assert_int_equal(stat(P(f, "top/app.log"), &st), -1);
	assert_int_equal(stat(P(f, "top/app.log.gz"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(st.st_mtim.tv_sec, s.v[0].mtime_s);
	gz = gzopen(P(f, "top/app.log.gz"), "rb");
	assert_non_null(gz);
	assert_int_equal(gzread(gz, back, sizeof(back)), 4000);
	assert_int_equal(back[8], 'a' + 8 % 7);
	gzclose(gz);
	cw_scan_free(&s);
}

static void test_compress_never_replaces_an_existing_gz(void **state)
{
	struct fx *f = *state;
	struct cw_scan s;
	char msg[256];
	struct stat st;
	int64_t saved;

	mkfile(f, "top/x.log", 100, 3 * 86400);
	mkfile(f, "top/x.log.gz", 7, 0);
	assert_int_equal(cw_scan(f->top, "*.log", 0, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(cw_compress(f->top, &s.v[0], &saved, msg, sizeof(msg)),
	                 OUTPOST_E_CONFLICT);
	assert_int_equal(stat(P(f, "top/x.log.gz"), &st), 0);
	assert_int_equal(st.st_size, 7);
	assert_int_equal(stat(P(f, "top/x.log"), &st), 0);
	cw_scan_free(&s);
}

static enum cw_action action(const struct cw_scan *s, const char *rel)
{
	const struct cw_file *f = find(s, rel);

	assert_non_null(f);
	return f ? f->action : (enum cw_action) - 1;
}

static void test_rules_age_keep_size_compress(void **state)
{
	struct fx *f = *state;
	struct cw_scan s;
	struct cl_rule r = {.keep = -1, .max_total_bytes = -1};
	char msg[256];
	int64_t now = time(NULL);

	/* Five rotations a day apart, 100 bytes each, plus one in sub/. */
	for (int i = 1; i <= 5; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "top/app.log.%d", i);
		mkfile(f, rel, 100, i * 86400 + 60);
	}
	mkfile(f, "top/sub/app.log.9", 100, 9 * 86400);
	assert_int_equal(cw_scan(f->top, "app.log*", 1, NULL, NULL, &s, msg, sizeof(msg)), 0);
	assert_int_equal(s.n, 6);

	r.max_age_s = 4 * 86400; /* .4 .5 and sub's .9 are older */
	cl_rule_decide(&s, &r, now);
	assert_int_equal(action(&s, "app.log.3"), CW_KEEP);
	assert_int_equal(action(&s, "app.log.4"), CW_DELETE);
	assert_int_equal(action(&s, "sub/app.log.9"), CW_DELETE);

	r.max_age_s = 0;
	r.keep = 2; /* per directory: .1 .2 stay, sub's only one stays */
	cl_rule_decide(&s, &r, now);
	assert_int_equal(action(&s, "app.log.2"), CW_KEEP);
	assert_int_equal(action(&s, "app.log.3"), CW_DELETE);
	assert_string_equal(find(&s, "app.log.3") ? find(&s, "app.log.3")->reason : "", "keep");
	assert_int_equal(action(&s, "sub/app.log.9"), CW_KEEP);

	r.keep = -1;
	r.max_total_bytes = 250; /* the oldest go until 2 files are left */
	cl_rule_decide(&s, &r, now);
	assert_int_equal(action(&s, "sub/app.log.9"), CW_DELETE);
	assert_int_equal(action(&s, "app.log.3"), CW_DELETE);
	assert_int_equal(action(&s, "app.log.2"), CW_KEEP);
	assert_int_equal(action(&s, "app.log.1"), CW_KEEP);

	r.max_total_bytes = -1;
	r.compress_after_s = 2 * 86400; /* older than two days: .2 (2d + 60 s) and on */
	cl_rule_decide(&s, &r, now);
	assert_int_equal(action(&s, "app.log.1"), CW_KEEP);
	assert_int_equal(action(&s, "app.log.2"), CW_COMPRESS);
	cw_scan_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_scan_lists_matches_and_skips_symlinks, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_open_dir_refuses_symlinked_components, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_delete_leaves_a_swapped_file_alone, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_compress_keeps_content_mode_and_times, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_compress_never_replaces_an_existing_gz, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_rules_age_keep_size_compress, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
