/* Tests for the built-in file plugin (src/plugins/file.c), through the plugin harness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "agent/call.h"
#include "agent/plugins.h"
#include "plugins/builtin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	struct plugtest *t;
	char root[128];    /* the configured root, inside plugtest_dir() */
	char outside[128]; /* a sibling directory beyond the root: symlink targets live here */
	char paths[4][PATH_MAX];
	int next;
	const char *err;
};

/* Swaps the plugin's config section, as a reload does. conf is stolen. */
static void set_config(struct fx *f, json_t *conf)
{
	struct outpost_plugin_ctx *pc = plugtest_ctx(f->t);
	json_t *old;

	assert_non_null(conf);
	pthread_mutex_lock(&pc->conf_lock);
	old = pc->config;
	pc->config = conf;
	pthread_mutex_unlock(&pc->conf_lock);
	json_decref(old);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->t = plugtest_new(&outpost_plugin_file, NULL);
	snprintf(f->root, sizeof(f->root), "%s/root", plugtest_dir(f->t));
	snprintf(f->outside, sizeof(f->outside), "%s/outside", plugtest_dir(f->t));
	assert_int_equal(mkdir(f->root, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	set_config(f, json_pack("{s:[s]}", "roots", f->root));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	plugtest_free(f->t);
	free(f);
	return 0;
}

/* A path beneath the root (rel NULL: the root itself); valid for the next three calls. */
static const char *P(struct fx *f, const char *rel)
{
	char *p = f->paths[f->next++ % 4];

	if (rel)
		snprintf(p, PATH_MAX, "%s/%s", f->root, rel);
	else
		snprintf(p, PATH_MAX, "%s", f->root);
	return p;
}

static const char *OUT(struct fx *f, const char *rel)
{
	char *p = f->paths[f->next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", f->outside, rel);
	return p;
}

/* Calls op with args (stolen), the way the agent's API would hand them over. */
static int fcall(struct fx *f, const char *op, json_t *args, json_t **res)
{
	char *text;
	int rc;

	assert_non_null(args);
	text = json_dumps(args, JSON_COMPACT);
	json_decref(args);
	assert_non_null(text);
	*res = NULL;
	rc = plugtest_call(f->t, op, text, res, &f->err);
	free(text);
	return rc;
}

/* Calls op and expects an error with code; the message must mention hint when given. */
static void expect_err(struct fx *f, const char *op, json_t *args, int code, const char *hint)
{
	json_t *res;
	int rc = fcall(f, op, args, &res);

	if (rc != code)
		fail_msg("%s: expected %d, got %d (%s)", op, code, rc, f->err);
	assert_null(res);
	if (hint && !strstr(f->err, hint))
		fail_msg("%s: message '%s' does not mention '%s'", op, f->err, hint);
}

static json_t *expect_ok(struct fx *f, const char *op, json_t *args)
{
	json_t *res;
	int rc = fcall(f, op, args, &res);

	if (rc != 0)
		fail_msg("%s failed: %d (%s)", op, rc, f->err);
	assert_non_null(res);
	return res;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	size_t n = strlen(content);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* The whole file as a string (caller frees), or NULL when it does not exist. */
static char *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!fp)
		return NULL;
	buf = calloc(1, 1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	fclose(fp);
	if (len)
		*len = n;
	return buf;
}

static void assert_file(const char *path, const char *want)
{
	char *got = read_file(path, NULL);

	if (!got)
		fail_msg("%s does not exist", path);
	assert_string_equal(got, want);
	free(got);
}

static void assert_missing(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), -1);
}

/* Temp files the plugin left in dir. */
static int count_temps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, ".outpost-", 9) == 0)
			n++;
	closedir(d);
	return n;
}

static void sha256_hex(const void *d, size_t n, char hex[65])
{
	unsigned char md[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(md, d, n);
	sodium_bin2hex(hex, 65, md, sizeof(md));
}

static const char *sget(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("result has no string '%s'", key);
	return s;
}

static json_int_t iget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("result has no integer '%s'", key);
	return json_integer_value(v);
}

static int bget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_boolean(v))
		fail_msg("result has no boolean '%s'", key);
	return json_is_true(v);
}

static void put_text(struct fx *f, const char *path, const char *content)
{
	json_decref(expect_ok(f, "put", json_pack("{s:s, s:s}", "path", path, "content", content)));
}

/* ---- Configuration ---- */

static void test_no_roots_forbids_every_op(void **state)
{
	struct fx *f = *state;

	set_config(f, json_object());
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a"), "content", "x"),
	           OUTPOST_E_FORBIDDEN, "file.roots");
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_FORBIDDEN,
	           "file.roots");
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_FORBIDDEN,
	           "file.roots");
	expect_err(f, "remove", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_FORBIDDEN,
	           "file.roots");
	set_config(f, json_pack("{s:[]}", "roots"));
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_FORBIDDEN,
	           "file.roots");
	assert_missing(P(f, "a"));
}

static void test_malformed_roots_config_is_refused(void **state)
{
	struct fx *f = *state;

	set_config(f, json_pack("{s:[s, s]}", "roots", f->root, "relative/dir"));
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_UNAVAILABLE,
	           "file.roots[1]");
	set_config(f, json_pack("{s:s}", "roots", f->root));
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_UNAVAILABLE,
	           "array");
	set_config(f, json_pack("{s:[s], s:i}", "roots", f->root, "max_bytes", -1));
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "a")), OUTPOST_E_UNAVAILABLE,
	           "max_bytes");
}

/* ---- put and get ---- */

static void test_put_get_roundtrip_utf8(void **state)
{
	struct fx *f = *state;
	const char *text = "h\xc3\xa9llo\nw\xc3\xb6rld \xe2\x98\x83\n";
	char hex[65];
	json_t *r;

	sha256_hex(text, strlen(text), hex);
	r = expect_ok(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a.txt"), "content", text));
	assert_string_equal(sget(r, "path"), P(f, "a.txt"));
	assert_int_equal(iget(r, "size"), strlen(text));
	assert_string_equal(sget(r, "sha256"), hex);
	assert_string_equal(sget(r, "mode"), "0644");
	assert_true(bget(r, "changed"));
	json_decref(r);
	assert_file(P(f, "a.txt"), text);

	r = expect_ok(f, "get", json_pack("{s:s}", "path", P(f, "a.txt")));
	assert_string_equal(sget(r, "content"), text);
	assert_string_equal(sget(r, "encoding"), "utf8");
	assert_string_equal(sget(r, "sha256"), hex);
	assert_int_equal(iget(r, "size"), strlen(text));
	assert_string_equal(sget(r, "mode"), "0644");
	assert_int_equal(iget(r, "uid"), geteuid());
	assert_int_equal(iget(r, "gid"), getegid());
	assert_true(iget(r, "mtime") > 1600000000);
	json_decref(r);

	put_text(f, P(f, "empty"), "");
	r = expect_ok(f, "get", json_pack("{s:s}", "path", P(f, "empty")));
	assert_string_equal(sget(r, "content"), "");
	assert_int_equal(iget(r, "size"), 0);
	json_decref(r);
}

static void test_put_get_roundtrip_binary_base64(void **state)
{
	struct fx *f = *state;
	unsigned char bin[256];
	char b64[sodium_base64_ENCODED_LEN(256, sodium_base64_VARIANT_ORIGINAL)];
	char hex[65], *disk;
	size_t len;
	json_t *r;

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(255 - i);
	sodium_bin2base64(b64, sizeof(b64), bin, sizeof(bin), sodium_base64_VARIANT_ORIGINAL);
	sha256_hex(bin, sizeof(bin), hex);
	r = expect_ok(f, "put",
	              json_pack("{s:s, s:s, s:s, s:s}", "path", P(f, "b.bin"), "content", b64,
	                        "encoding", "base64", "sha256", hex));
	assert_int_equal(iget(r, "size"), 256);
	assert_string_equal(sget(r, "sha256"), hex);
	json_decref(r);
	disk = read_file(P(f, "b.bin"), &len);
	assert_non_null(disk);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(disk, bin, sizeof(bin));
	free(disk);

	r = expect_ok(f, "get",
	              json_pack("{s:s, s:s}", "path", P(f, "b.bin"), "encoding", "base64"));
	assert_string_equal(sget(r, "content"), b64);
	assert_string_equal(sget(r, "encoding"), "base64");
	assert_string_equal(sget(r, "sha256"), hex);
	json_decref(r);
}

static void test_get_refuses_binary_as_utf8_and_says_use_base64(void **state)
{
	struct fx *f = *state;

	write_file(P(f, "latin1"), "caf\xe9", 0644);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "latin1")), OUTPOST_E_BAD_ARGS,
	           "base64");
	/* Overlong encodings and UTF-16 surrogates are not UTF-8 either. */
	write_file(P(f, "overlong"), "\xc0\xaf", 0644);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "overlong")), OUTPOST_E_BAD_ARGS,
	           "base64");
	write_file(P(f, "surrogate"), "\xed\xa0\x80", 0644);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "surrogate")), OUTPOST_E_BAD_ARGS,
	           "base64");
	expect_err(f, "get", json_pack("{s:s, s:s}", "path", P(f, "latin1"), "encoding", "hex"),
	           OUTPOST_E_BAD_ARGS, "encoding");
}

static void test_put_refuses_invalid_base64(void **state)
{
	struct fx *f = *state;

	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "x"), "content", "not base64!",
	                     "encoding", "base64"),
	           OUTPOST_E_BAD_ARGS, "base64");
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "x"), "content", "QUJD", "encoding",
	                     "base32"),
	           OUTPOST_E_BAD_ARGS, "encoding");
	assert_missing(P(f, "x"));
}

static void test_put_verifies_sha256(void **state)
{
	struct fx *f = *state;
	char hex[65], upper[65];
	json_t *r;

	sha256_hex("hello", 5, hex);
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "h"), "content", "hellO", "sha256", hex),
	    OUTPOST_E_BAD_ARGS, "nothing was written");
	assert_missing(P(f, "h"));
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "h"), "content", "hello", "sha256", "abc"),
	    OUTPOST_E_BAD_ARGS, "64 hex");
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "h"), "content", "hello", "sha256", upper));
	assert_string_equal(sget(r, "sha256"), hex);
	json_decref(r);
	assert_file(P(f, "h"), "hello");
}

/* ---- Atomic replace ---- */

static void test_put_bad_sha256_keeps_old_file(void **state)
{
	struct fx *f = *state;

	put_text(f, P(f, "conf"), "old");
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "conf"), "content", "new", "sha256",
	                     "0000000000000000000000000000000000000000000000000000000000000000"),
	           OUTPOST_E_BAD_ARGS, NULL);
	assert_file(P(f, "conf"), "old");
	assert_int_equal(count_temps(f->root), 0);
}

static void test_put_too_large_keeps_old_file(void **state)
{
	struct fx *f = *state;

	set_config(f, json_pack("{s:[s], s:i}", "roots", f->root, "max_bytes", 16));
	put_text(f, P(f, "conf"), "0123456789abcdef");
	expect_err(f, "put",
	           json_pack("{s:s, s:s}", "path", P(f, "conf"), "content", "0123456789abcdefX"),
	           OUTPOST_E_TOO_LARGE, "file.max_bytes");
	/* 17 bytes in base64 */
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "conf"), "content",
	                     "MDEyMzQ1Njc4OWFiY2RlZlg=", "encoding", "base64"),
	           OUTPOST_E_TOO_LARGE, "file.max_bytes");
	assert_file(P(f, "conf"), "0123456789abcdef");
	assert_int_equal(count_temps(f->root), 0);
}

static void test_put_failed_write_keeps_old_file_and_no_temp(void **state)
{
	struct fx *f = *state;
	struct rlimit old, small;
	char *big = malloc(64 * 1024 + 1);
	void (*oldsig)(int);
	int rc;

	assert_non_null(big);
	memset(big, 'x', 64 * 1024);
	big[64 * 1024] = '\0';
	put_text(f, P(f, "conf"), "old");
	/* A real mid-write failure: the kernel refuses bytes past RLIMIT_FSIZE with EFBIG. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4096;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	json_t *res;
	rc = fcall(f, "put", json_pack("{s:s, s:s}", "path", P(f, "conf"), "content", big), &res);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	free(big);
	assert_true(rc < 0);
	assert_null(res);
	assert_file(P(f, "conf"), "old");
	assert_int_equal(count_temps(f->root), 0);
}

static void test_put_leaves_no_temp_files(void **state)
{
	struct fx *f = *state;
	char content[32];

	for (int i = 0; i < 20; i++) {
		snprintf(content, sizeof(content), "version %d", i);
		put_text(f, P(f, "conf"), content);
	}
	assert_file(P(f, "conf"), "version 19");
	assert_int_equal(count_temps(f->root), 0);
}

static void test_put_replaces_by_rename_never_through_a_hardlink(void **state)
{
	struct fx *f = *state;

	put_text(f, P(f, "a"), "shared");
	assert_int_equal(link(P(f, "a"), OUT(f, "hardlink")), 0);
	put_text(f, P(f, "a"), "replaced");
	assert_file(P(f, "a"), "replaced");
	assert_file(OUT(f, "hardlink"), "shared");
}

/* ---- Mode and owner ---- */

static void test_put_applies_mode_and_keeps_it_on_replace(void **state)
{
	struct fx *f = *state;
	struct stat st;
	mode_t old_umask = umask(077);
	json_t *r;

	put_text(f, P(f, "default"), "x");
	assert_int_equal(stat(P(f, "default"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644); /* whatever the agent's umask */

	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "m"), "content", "1", "mode", "0600"));
	assert_string_equal(sget(r, "mode"), "0600");
	json_decref(r);
	assert_int_equal(stat(P(f, "m"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	r = expect_ok(f, "put", json_pack("{s:s, s:s}", "path", P(f, "m"), "content", "2"));
	assert_string_equal(sget(r, "mode"), "0600");
	json_decref(r);
	assert_int_equal(stat(P(f, "m"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* A mode change alone is a change. */
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "m"), "content", "2", "mode", "640"));
	assert_true(bget(r, "changed"));
	assert_string_equal(sget(r, "mode"), "0640");
	json_decref(r);
	assert_int_equal(stat(P(f, "m"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	umask(old_umask);
}

static void test_put_refuses_special_bits_and_malformed_modes(void **state)
{
	struct fx *f = *state;
	const char *special[] = {"4755", "2755", "1777", "06755"};
	const char *bad[] = {"", "rwx", "0999", "17777", "0o644", "-644"};
	json_t *res;

	for (size_t i = 0; i < sizeof(special) / sizeof(*special); i++)
		expect_err(f, "put",
		           json_pack("{s:s, s:s, s:s}", "path", P(f, "s"), "content", "x", "mode",
		                     special[i]),
		           OUTPOST_E_FORBIDDEN, "setuid");
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		expect_err(
		    f, "put",
		    json_pack("{s:s, s:s, s:s}", "path", P(f, "s"), "content", "x", "mode", bad[i]),
		    OUTPOST_E_BAD_ARGS, "octal");
	/* An integer is refused: 644 in JSON is decimal, which is not what anyone means. */
	assert_int_equal(
	    fcall(f, "put",
	          json_pack("{s:s, s:s, s:i}", "path", P(f, "s"), "content", "x", "mode", 420),
	          &res),
	    OUTPOST_E_BAD_ARGS);
	assert_missing(P(f, "s"));
}

static void test_put_existing_setuid_file_needs_explicit_mode(void **state)
{
	struct fx *f = *state;
	struct stat st;
	json_t *r;

	write_file(P(f, "tool"), "old", 0755);
	assert_int_equal(chmod(P(f, "tool"), 04755), 0);
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "tool"), "content", "new"),
	           OUTPOST_E_FORBIDDEN, "0755");
	assert_file(P(f, "tool"), "old");
	/* Unchanged content asks for no write, so no refusal. */
	r = expect_ok(f, "put", json_pack("{s:s, s:s}", "path", P(f, "tool"), "content", "old"));
	assert_false(bget(r, "changed"));
	json_decref(r);
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "tool"), "content", "new", "mode", "0755"));
	assert_string_equal(sget(r, "mode"), "0755");
	json_decref(r);
	assert_int_equal(stat(P(f, "tool"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

static void test_put_changes_owner_to_nobody(void **state)
{
	struct fx *f = *state;
	struct stat st;
	json_t *r;

	if (geteuid() != 0)
		skip();
	r = expect_ok(f, "put",
	              json_pack("{s:s, s:s, s:s, s:s}", "path", P(f, "o"), "content", "x", "owner",
	                        "nobody", "group", "65534"));
	assert_true(bget(r, "changed"));
	json_decref(r);
	assert_int_equal(stat(P(f, "o"), &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* Same owner again: nothing to do. A replace without owner keeps it. */
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "o"), "content", "x", "owner", "65534"));
	assert_false(bget(r, "changed"));
	json_decref(r);
	put_text(f, P(f, "o"), "y");
	assert_int_equal(stat(P(f, "o"), &st), 0);
	assert_int_equal(st.st_uid, 65534);

	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "o")));
	assert_string_equal(sget(r, "owner"), "nobody");
	json_decref(r);

	/* Back to root: an owner-only change rewrites the file. */
	r = expect_ok(f, "put",
	              json_pack("{s:s, s:s, s:s, s:s}", "path", P(f, "o"), "content", "y", "owner",
	                        "root", "group", "0"));
	assert_true(bget(r, "changed"));
	json_decref(r);
	assert_int_equal(stat(P(f, "o"), &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, 0);

	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "o"), "content", "z", "owner",
	                     "no-such-user-outpost"),
	           OUTPOST_E_BAD_ARGS, "no user");
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:s}", "path", P(f, "o"), "content", "z", "group",
	                     "no-such-group-outpost"),
	           OUTPOST_E_BAD_ARGS, "no group");
	assert_file(P(f, "o"), "y");
}

/* ---- Path confinement ---- */

static void test_dot_and_dotdot_components_refused(void **state)
{
	struct fx *f = *state;
	const char *ops[] = {"get", "stat", "remove"};
	char esc[PATH_MAX];

	write_file(OUT(f, "secret"), "secret", 0600);
	snprintf(esc, sizeof(esc), "%s/../outside/secret", f->root);
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", esc, "content", "pwned"),
	           OUTPOST_E_BAD_ARGS, "'..'");
	for (size_t i = 0; i < 3; i++)
		expect_err(f, ops[i], json_pack("{s:s}", "path", esc), OUTPOST_E_BAD_ARGS, "'..'");
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "./a"), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "'.'");
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a/.."), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "'..'");
	assert_file(OUT(f, "secret"), "secret");
	assert_missing(P(f, "a"));
}

static void test_put_refuses_symlink_in_path(void **state)
{
	struct fx *f = *state;

	assert_int_equal(symlink(f->outside, P(f, "linkdir")), 0);
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "linkdir/x"), "content", "pwned"),
	           OUTPOST_E_FORBIDDEN, "symlink");
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:b}", "path", P(f, "linkdir/sub/x"), "content", "pwned",
	                     "make_dirs", 1),
	           OUTPOST_E_FORBIDDEN, "symlink");
	assert_missing(OUT(f, "x"));
	assert_missing(OUT(f, "sub"));

	write_file(OUT(f, "secret"), "secret", 0600);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "linkdir/secret")),
	           OUTPOST_E_FORBIDDEN, "symlink");
	expect_err(f, "stat", json_pack("{s:s}", "path", P(f, "linkdir/secret")),
	           OUTPOST_E_FORBIDDEN, "symlink");
	expect_err(f, "remove", json_pack("{s:s}", "path", P(f, "linkdir/secret")),
	           OUTPOST_E_FORBIDDEN, "symlink");
	assert_file(OUT(f, "secret"), "secret");

	/* A symlink deeper down is caught as well. */
	assert_int_equal(mkdir(P(f, "d"), 0755), 0);
	assert_int_equal(symlink(f->outside, P(f, "d/inner")), 0);
	expect_err(f, "put",
	           json_pack("{s:s, s:s}", "path", P(f, "d/inner/secret"), "content", "p"),
	           OUTPOST_E_FORBIDDEN, "d/inner");
	assert_file(OUT(f, "secret"), "secret");
}

static void test_put_refuses_symlink_final_component_and_target_is_untouched(void **state)
{
	struct fx *f = *state;
	struct stat st;
	json_t *r;

	write_file(OUT(f, "secret"), "secret", 0600);
	assert_int_equal(symlink(OUT(f, "secret"), P(f, "link")), 0);
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "link"), "content", "pwned"),
	           OUTPOST_E_FORBIDDEN, "symlink");
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "link"), "content", "pwned", "mode", "0666"),
	    OUTPOST_E_FORBIDDEN, "symlink");
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "link")), OUTPOST_E_FORBIDDEN,
	           "symlink");

	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "link")));
	assert_string_equal(sget(r, "type"), "symlink");
	assert_string_equal(sget(r, "target"), OUT(f, "secret"));
	assert_null(json_object_get(r, "sha256"));
	json_decref(r);

	/* remove deletes the link itself, never what it points at. */
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", P(f, "link")));
	assert_true(bget(r, "removed"));
	json_decref(r);
	assert_missing(P(f, "link"));
	assert_file(OUT(f, "secret"), "secret");
	assert_int_equal(stat(OUT(f, "secret"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_path_outside_roots_forbidden(void **state)
{
	struct fx *f = *state;
	char sibling[PATH_MAX];

	expect_err(f, "get", json_pack("{s:s}", "path", "/etc/passwd"), OUTPOST_E_FORBIDDEN,
	           "outside the allowed roots");
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", OUT(f, "x"), "content", "x"),
	           OUTPOST_E_FORBIDDEN, "outside the allowed roots");
	/* "<root>-evil" shares the root's prefix but is not beneath it. */
	snprintf(sibling, sizeof(sibling), "%s-evil/x", f->root);
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", sibling, "content", "x"),
	           OUTPOST_E_FORBIDDEN, "outside the allowed roots");
	assert_missing(OUT(f, "x"));
}

static void test_relative_and_empty_paths_refused(void **state)
{
	struct fx *f = *state;

	expect_err(f, "put", json_pack("{s:s, s:s}", "path", "root/a", "content", "x"),
	           OUTPOST_E_BAD_ARGS, "relative");
	expect_err(f, "stat", json_pack("{s:s}", "path", ""), OUTPOST_E_BAD_ARGS, "empty");
	expect_err(f, "stat", json_pack("{}"), OUTPOST_E_BAD_ARGS, "path");
	expect_err(f, "stat", json_pack("{s:i}", "path", 1), OUTPOST_E_BAD_ARGS, "path");
}

static void test_nul_in_path_refused(void **state)
{
	struct fx *f = *state;
	struct outpost_plugin_ctx *pc = plugtest_ctx(f->t);
	const struct outpost_op *op;
	struct outpost_call c;
	char path[PATH_MAX];
	json_t *args, *res = NULL;
	size_t idx, n;
	int rc;

	/* The wire already refuses \u0000 in JSON ... */
	rc = plugtest_call(f->t, "stat", "{\"path\":\"/a\\u0000b\"}", &res, &f->err);
	assert_int_equal(rc, OUTPOST_E_BAD_JSON);
	/* ... and the plugin refuses it on its own, for callers that build args another way. */
	n = (size_t)snprintf(path, sizeof(path), "%s/a", f->root);
	memcpy(path + n, "\0/../../etc/passwd", 18);
	op = plugins_find_op(pc, "put", &idx);
	assert_non_null(op);
	args = json_pack("{s:s%, s:s}", "path", path, n + 18, "content", "x");
	assert_non_null(args);
	call_init(&c, pc, op, idx, INT64_MAX);
	rc = call_invoke(&c, args, &res);
	assert_int_equal(rc, OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(c.errmsg, "NUL"));
	assert_null(res);
	call_release(&c);
	json_decref(args);
	assert_missing(P(f, "a"));
}

static void test_overlong_paths_refused(void **state)
{
	struct fx *f = *state;
	char *path = malloc(PATH_MAX + 64), name[NAME_MAX + 2];
	size_t n;

	assert_non_null(path);
	n = (size_t)snprintf(path, PATH_MAX + 64, "%s/", f->root);
	while (n < PATH_MAX + 8)
		n += (size_t)snprintf(path + n, PATH_MAX + 64 - n, "d/");
	path[n - 1] = 'x';
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", path, "content", "x"),
	           OUTPOST_E_BAD_ARGS, "over the limit");
	free(path);
	memset(name, 'n', NAME_MAX + 1);
	name[NAME_MAX + 1] = '\0';
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, name), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "component");
}

static void test_empty_component_and_trailing_slash_refused(void **state)
{
	struct fx *f = *state;

	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a//b"), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "empty component");
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a/"), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "trailing slash");
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "a/")), OUTPOST_E_BAD_ARGS,
	           "trailing slash");
	assert_missing(P(f, "a"));
}

static void test_root_missing(void **state)
{
	struct fx *f = *state;
	char missing[256], file[PATH_MAX];
	json_t *r;

	snprintf(missing, sizeof(missing), "%s/not-there", plugtest_dir(f->t));
	snprintf(file, sizeof(file), "%s/a", missing);
	set_config(f, json_pack("{s:[s]}", "roots", missing));
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", file, "content", "x"),
	           OUTPOST_E_NOT_FOUND, "root");
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:b}", "path", file, "content", "x", "make_dirs", 1),
	           OUTPOST_E_NOT_FOUND, "never creates a root");
	assert_missing(missing);
	expect_err(f, "get", json_pack("{s:s}", "path", file), OUTPOST_E_NOT_FOUND, "root");
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", file));
	assert_false(bget(r, "exists"));
	json_decref(r);
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", file));
	assert_false(bget(r, "removed"));
	json_decref(r);
}

static void test_ops_on_the_root_itself(void **state)
{
	struct fx *f = *state;
	json_t *r;

	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, NULL), "content", "x"),
	           OUTPOST_E_FORBIDDEN, "root itself");
	expect_err(f, "remove", json_pack("{s:s, s:b}", "path", P(f, NULL), "dir", 1),
	           OUTPOST_E_FORBIDDEN, "root itself");
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, NULL)), OUTPOST_E_BAD_ARGS,
	           "directory");
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, NULL)));
	assert_string_equal(sget(r, "type"), "dir");
	json_decref(r);
}

/* ---- make_dirs, if_sha256, idempotency ---- */

static void test_put_make_dirs(void **state)
{
	struct fx *f = *state;
	mode_t old_umask = umask(077);
	struct stat st;

	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a/b/c.conf"), "content", "x"),
	           OUTPOST_E_NOT_FOUND, "make_dirs");
	assert_missing(P(f, "a"));
	json_decref(expect_ok(f, "put",
	                      json_pack("{s:s, s:s, s:b}", "path", P(f, "a/b/c.conf"), "content",
	                                "x", "make_dirs", 1)));
	umask(old_umask);
	assert_file(P(f, "a/b/c.conf"), "x");
	assert_int_equal(stat(P(f, "a"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat(P(f, "a/b"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	/* A parent that is a file is an error, with or without make_dirs. */
	expect_err(f, "put",
	           json_pack("{s:s, s:s, s:b}", "path", P(f, "a/b/c.conf/d"), "content", "x",
	                     "make_dirs", 1),
	           OUTPOST_E_BAD_ARGS, "not a directory");
	/* A directory where the file should be. */
	expect_err(f, "put", json_pack("{s:s, s:s}", "path", P(f, "a/b"), "content", "x"),
	           OUTPOST_E_BAD_ARGS, "directory");
}

static void test_put_if_sha256_conflict(void **state)
{
	struct fx *f = *state;
	char v1[65], v2[65];
	json_t *r;

	sha256_hex("v1", 2, v1);
	sha256_hex("v2", 2, v2);
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "c"), "content", "v1", "if_sha256", v1),
	    OUTPOST_E_CONFLICT, "does not exist");
	assert_missing(P(f, "c"));
	put_text(f, P(f, "c"), "v1");

	/* Someone expected another version: refused, file kept. */
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "c"), "content", "v3", "if_sha256", v2),
	    OUTPOST_E_CONFLICT, v1);
	assert_file(P(f, "c"), "v1");

	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "c"), "content", "v2", "if_sha256", v1));
	assert_true(bget(r, "changed"));
	json_decref(r);
	assert_file(P(f, "c"), "v2");

	/* The same swap retried finds the file already as asked: success, no change. */
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "c"), "content", "v2", "if_sha256", v1));
	assert_false(bget(r, "changed"));
	json_decref(r);
	expect_err(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "c"), "content", "v1", "if_sha256", "zz"),
	    OUTPOST_E_BAD_ARGS, "if_sha256");
}

static void test_put_is_idempotent(void **state)
{
	struct fx *f = *state;
	struct stat before, after;
	json_t *r;

	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "i"), "content", "same", "mode", "0640"));
	assert_true(bget(r, "changed"));
	json_decref(r);
	assert_int_equal(stat(P(f, "i"), &before), 0);
	r = expect_ok(
	    f, "put",
	    json_pack("{s:s, s:s, s:s}", "path", P(f, "i"), "content", "same", "mode", "0640"));
	assert_false(bget(r, "changed"));
	assert_string_equal(sget(r, "mode"), "0640");
	json_decref(r);
	r = expect_ok(f, "put", json_pack("{s:s, s:s}", "path", P(f, "i"), "content", "same"));
	assert_false(bget(r, "changed"));
	json_decref(r);
	assert_int_equal(stat(P(f, "i"), &after), 0);
	assert_int_equal(before.st_ino, after.st_ino); /* not rewritten */
	assert_int_equal(count_temps(f->root), 0);
}

/* ---- remove ---- */

static void test_remove_is_idempotent(void **state)
{
	struct fx *f = *state;
	json_t *r;

	put_text(f, P(f, "gone"), "x");
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", P(f, "gone")));
	assert_true(bget(r, "removed"));
	assert_string_equal(sget(r, "path"), P(f, "gone"));
	json_decref(r);
	assert_missing(P(f, "gone"));
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", P(f, "gone")));
	assert_false(bget(r, "removed"));
	json_decref(r);
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", P(f, "no/such/dir/file")));
	assert_false(bget(r, "removed"));
	json_decref(r);
}

static void test_remove_directory_needs_dir_flag_and_must_be_empty(void **state)
{
	struct fx *f = *state;
	json_t *r;

	assert_int_equal(mkdir(P(f, "d"), 0755), 0);
	write_file(P(f, "d/f"), "x", 0644);
	expect_err(f, "remove", json_pack("{s:s}", "path", P(f, "d")), OUTPOST_E_BAD_ARGS,
	           "dir: true");
	expect_err(f, "remove", json_pack("{s:s, s:b}", "path", P(f, "d"), "dir", 1),
	           OUTPOST_E_CONFLICT, "not empty");
	assert_file(P(f, "d/f"), "x");
	r = expect_ok(f, "remove", json_pack("{s:s}", "path", P(f, "d/f")));
	json_decref(r);
	r = expect_ok(f, "remove", json_pack("{s:s, s:b}", "path", P(f, "d"), "dir", 1));
	assert_true(bget(r, "removed"));
	json_decref(r);
	assert_missing(P(f, "d"));

	assert_int_equal(mkfifo(P(f, "fifo"), 0600), 0);
	expect_err(f, "remove", json_pack("{s:s}", "path", P(f, "fifo")), OUTPOST_E_BAD_ARGS,
	           "special file");
}

/* ---- stat and get ---- */

static void test_stat_reports_files_dirs_and_missing_paths(void **state)
{
	struct fx *f = *state;
	char hex[65];
	json_t *r;

	put_text(f, P(f, "f"), "abc");
	sha256_hex("abc", 3, hex);
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "f")));
	assert_true(bget(r, "exists"));
	assert_string_equal(sget(r, "type"), "file");
	assert_int_equal(iget(r, "size"), 3);
	assert_string_equal(sget(r, "mode"), "0644");
	assert_int_equal(iget(r, "uid"), geteuid());
	assert_int_equal(iget(r, "gid"), getegid());
	assert_true(iget(r, "mtime") > 1600000000);
	assert_string_equal(sget(r, "sha256"), hex);
	if (geteuid() == 0)
		assert_string_equal(sget(r, "owner"), "root");
	json_decref(r);

	r = expect_ok(f, "stat", json_pack("{s:s, s:b}", "path", P(f, "f"), "hash", 0));
	assert_null(json_object_get(r, "sha256"));
	json_decref(r);

	assert_int_equal(mkdir(P(f, "d"), 0750), 0);
	assert_int_equal(chmod(P(f, "d"), 0750), 0);
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "d")));
	assert_string_equal(sget(r, "type"), "dir");
	assert_string_equal(sget(r, "mode"), "0750");
	assert_null(json_object_get(r, "sha256"));
	json_decref(r);

	assert_int_equal(mkfifo(P(f, "fifo"), 0600), 0);
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "fifo")));
	assert_string_equal(sget(r, "type"), "other");
	json_decref(r);

	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "nope")));
	assert_false(bget(r, "exists"));
	assert_null(json_object_get(r, "type"));
	json_decref(r);
	r = expect_ok(f, "stat", json_pack("{s:s}", "path", P(f, "f/below-a-file")));
	assert_false(bget(r, "exists"));
	json_decref(r);
}

static void test_get_refuses_missing_special_and_oversized_files(void **state)
{
	struct fx *f = *state;
	json_t *r;

	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "nope")), OUTPOST_E_NOT_FOUND,
	           "does not exist");
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "no/dir/file")), OUTPOST_E_NOT_FOUND,
	           "does not exist");
	assert_int_equal(mkdir(P(f, "d"), 0755), 0);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "d")), OUTPOST_E_BAD_ARGS,
	           "not a regular file");
	/* A FIFO with no writer must not hang the worker. */
	assert_int_equal(mkfifo(P(f, "fifo"), 0600), 0);
	expect_err(f, "get", json_pack("{s:s}", "path", P(f, "fifo")), OUTPOST_E_BAD_ARGS,
	           "not a regular file");

	put_text(f, P(f, "ten"), "0123456789");
	expect_err(f, "get", json_pack("{s:s, s:i}", "path", P(f, "ten"), "max_bytes", 9),
	           OUTPOST_E_TOO_LARGE, "max_bytes");
	expect_err(f, "get", json_pack("{s:s, s:i}", "path", P(f, "ten"), "max_bytes", 0),
	           OUTPOST_E_BAD_ARGS, "max_bytes");
	r = expect_ok(f, "get", json_pack("{s:s, s:i}", "path", P(f, "ten"), "max_bytes", 10));
	assert_string_equal(sget(r, "content"), "0123456789");
	json_decref(r);
	/* The config's limit wins over a larger max_bytes argument. */
	set_config(f, json_pack("{s:[s], s:i}", "roots", f->root, "max_bytes", 5));
	expect_err(f, "get", json_pack("{s:s, s:i}", "path", P(f, "ten"), "max_bytes", 100),
	           OUTPOST_E_TOO_LARGE, "file.max_bytes");
}

static void test_longest_matching_root_wins_and_roots_may_nest(void **state)
{
	struct fx *f = *state;
	char second[PATH_MAX];

	snprintf(second, sizeof(second), "%s/", f->outside); /* trailing slash is fine in config */
	set_config(f, json_pack("{s:[s, s]}", "roots", f->root, second));
	put_text(f, OUT(f, "in-second-root"), "x");
	assert_file(OUT(f, "in-second-root"), "x");
	put_text(f, P(f, "in-first-root"), "y");
	assert_file(P(f, "in-first-root"), "y");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_no_roots_forbids_every_op),
	    T(test_malformed_roots_config_is_refused),
	    T(test_put_get_roundtrip_utf8),
	    T(test_put_get_roundtrip_binary_base64),
	    T(test_get_refuses_binary_as_utf8_and_says_use_base64),
	    T(test_put_refuses_invalid_base64),
	    T(test_put_verifies_sha256),
	    T(test_put_bad_sha256_keeps_old_file),
	    T(test_put_too_large_keeps_old_file),
	    T(test_put_failed_write_keeps_old_file_and_no_temp),
	    T(test_put_leaves_no_temp_files),
	    T(test_put_replaces_by_rename_never_through_a_hardlink),
	    T(test_put_applies_mode_and_keeps_it_on_replace),
	    T(test_put_refuses_special_bits_and_malformed_modes),
	    T(test_put_existing_setuid_file_needs_explicit_mode),
	    T(test_put_changes_owner_to_nobody),
	    T(test_dot_and_dotdot_components_refused),
	    T(test_put_refuses_symlink_in_path),
	    T(test_put_refuses_symlink_final_component_and_target_is_untouched),
	    T(test_path_outside_roots_forbidden),
	    T(test_relative_and_empty_paths_refused),
	    T(test_nul_in_path_refused),
	    T(test_overlong_paths_refused),
	    T(test_empty_component_and_trailing_slash_refused),
	    T(test_root_missing),
	    T(test_ops_on_the_root_itself),
	    T(test_put_make_dirs),
	    T(test_put_if_sha256_conflict),
	    T(test_put_is_idempotent),
	    T(test_remove_is_idempotent),
	    T(test_remove_directory_needs_dir_flag_and_must_be_empty),
	    T(test_stat_reports_files_dirs_and_missing_paths),
	    T(test_get_refuses_missing_special_and_oversized_files),
	    T(test_longest_matching_root_wins_and_roots_may_nest),
#undef T
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
