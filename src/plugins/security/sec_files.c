/* File integrity for the security plugin (security.h): the files an intruder or a careless
 * operator changes to keep a way in: passwd, shadow, group, sudoers, users' authorized_keys,
 * sshd_config, crontabs, systemd units in /etc. Each is kept as a record in the baseline: its
 * digest, mode and owner, and for a file anyone may read anyway, its lines (for a diff). Never
 * a secret: shadow is kept as one digest per user's hash, authorized_keys as a digest per key. */
#include "security.h"
#include "core/wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC_USERS_MAX 10000

struct sec_spec {
	const char *path;
	const char *cat; /* the kind is security.<cat>_changed */
	int dir;         /* the files in this directory (one level) */
};

static const struct sec_spec specs[] = {
    {"/etc/passwd", "passwd", 0},
    {"/etc/shadow", "shadow", 0},
    {"/etc/group", "group", 0},
    {"/etc/sudoers", "sudoers", 0},
    {"/etc/sudoers.d", "sudoers", 1},
    {"/etc/ssh/sshd_config", "sshd_config", 0},
    {"/etc/ssh/sshd_config.d", "sshd_config", 1},
    {"/etc/crontab", "crontab", 0},
    {"/etc/cron.d", "crontab", 1},
    {"/var/spool/cron/crontabs", "crontab", 1},
    {"/etc/systemd/system", "systemd_unit", 1},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* What a change of the category weighs. */
static const char *cat_severity(const char *cat)
{
	static const char *const warn[] = {"passwd", "shadow", "sudoers", "authorized_keys"};

	for (size_t i = 0; i < sizeof(warn) / sizeof(warn[0]); i++)
		if (strcmp(cat, warn[i]) == 0)
			return "warning";
	return "notice";
}

/* The category of a host path, or NULL when it is none of ours. */
static const char *path_cat(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;

	for (size_t i = 0; i < NSPECS; i++) {
		if (!specs[i].dir && strcmp(path, specs[i].path) == 0)
			return specs[i].cat;
		if (specs[i].dir && strlen(specs[i].path) == dlen &&
		    strncmp(path, specs[i].path, dlen) == 0 && slash[1] && slash[1] != '.')
			return specs[i].cat;
	}
	if (slash && strcmp(slash, "/authorized_keys") == 0 && dlen >= 5 &&
	    strncmp(slash - 5, "/.ssh", 5) == 0)
		return "authorized_keys";
	return NULL;
}

/* The users of a passwd text: [name, uid, home] per line, through fn. */
static void passwd_each(const json_t *lines,
                        void (*fn)(void *arg, const char *name, long uid, const char *home),
                        void *arg)
{
	size_t i;
	json_t *l;

	json_array_foreach(lines, i, l)
	{
		char buf[1024], *f[7] = {0}, *p;
		int n = 0;
		snprintf(buf, sizeof(buf), "%s", json_string_value(l));
		/* strsep keeps empty fields (gecos often is). */
		for (p = buf; n < 7 && (f[n] = strsep(&p, ":")); n++)
			;
		if (n >= 6 && f[0][0] && f[2][0])
			fn(arg, f[0], strtol(f[2], NULL, 10), f[5]);
	}
}

static void add_uid0(void *arg, const char *name, long uid, const char *home)
{
	if (uid == 0)
		json_array_append_new(arg, json_string(name));
}

static void add_name(void *arg, const char *name, long uid, const char *home)
{
	json_object_set_new(arg, name, json_true());
}

/* shadow's users: {name: digest of the hash field}, never the hash. */
static json_t *shadow_users(const char *text, size_t len)
{
	json_t *users = json_object();
	const char *p = text, *end = text + len;

	while (users && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *c1, *c2;
		const char *e = nl ? nl : end;
		c1 = memchr(p, ':', (size_t)(e - p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(e - c1 - 1)) : NULL;
		if (c1 && c2 && c1 > p && (size_t)(c1 - p) < 256) {
			char name[256], d[72];
			memcpy(name, p, (size_t)(c1 - p));
			name[c1 - p] = '\0';
			sec_digest(c1 + 1, (size_t)(c2 - c1 - 1), d);
			if (wire_utf8_ok(name, strlen(name)))
				json_object_set_new(users, name, json_string(d));
		}
		p = e + 1;
	}
	return users;
}

/* authorized_keys as one digest per key line: which keys came and went, never a key. */
static json_t *key_digests(const char *text, size_t len)
{
	json_t *lines = sec_lines(text, len, 1), *out = json_array(), *l;
	size_t i;

	json_array_foreach(lines, i, l)
	{
		char d[72];
		sec_digest(json_string_value(l), json_string_length(l), d);
		json_array_append_new(out, json_string(d));
	}
	json_decref(lines);
	return out;
}

/* What a path is now: NULL when absent; else {cat, sha256, mode, uid, gid, size, lines?,
 * users?, uid0?} or {cat, link, uid, gid} for a symlink (never followed). */
static json_t *file_record(const struct sec_conf *c, const char *path, const char *cat)
{
	char full[PATH_MAX], d[72], *text = NULL;
	struct stat st;
	json_t *rec;
	ssize_t n;
	size_t len = 0, cap = 0;
	int fd;

	if ((size_t)snprintf(full, sizeof(full), "%s%s", c->root, path) >= sizeof(full) ||
	    lstat(full, &st) < 0)
		return NULL;
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		n = readlink(full, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		return json_pack("{s:s, s:s, s:i, s:i}", "cat", cat, "link",
		                 wire_utf8_ok(target, strlen(target)) ? target : "?", "uid",
		                 (int)st.st_uid, "gid", (int)st.st_gid);
	}
	if (!S_ISREG(st.st_mode))
		return json_pack("{s:s, s:s, s:i}", "cat", cat, "type", "other", "mode",
		                 (int)(st.st_mode & 07777));
	fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	/* Sized by the file (plus one byte to see it grew), not by the bound: a buffer of the
	 * bound each time would leave the checker's heap holding megabytes. */
	if (fd >= 0 && fstat(fd, &st) == 0)
		cap = st.st_size < SEC_FILE_MAX ? (size_t)st.st_size + 1 : SEC_FILE_MAX;
	if (fd < 0 || !cap || !(text = malloc(cap))) {
		if (fd >= 0)
			close(fd);
		return json_pack("{s:s, s:s, s:i}", "cat", cat, "error", strerror(errno), "mode",
		                 (int)(st.st_mode & 07777));
	}
	while (len < cap && (n = read(fd, text + len, cap - len)) > 0)
		len += (size_t)n;
	close(fd);
	sec_digest(text, len, d);
	rec = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I}", "cat", cat, "sha256", d, "mode",
	                (int)(st.st_mode & 07777), "uid", (int)st.st_uid, "gid", (int)st.st_gid,
	                "size", (json_int_t)len);
	if (!rec)
		goto out;
	if (strcmp(cat, "shadow") == 0) {
		json_object_set_new(rec, "users", shadow_users(text, len));
	} else if (strcmp(cat, "authorized_keys") == 0) {
		json_object_set_new(rec, "lines", key_digests(text, len));
	} else if (strcmp(cat, "passwd") == 0 ||
	           ((st.st_mode & S_IROTH) && len <= SEC_LINES_MAX_BYTES)) {
		/* Readable by anyone on the host anyway: the diff tells nothing new. passwd's
		 * lines are kept whatever its size: the users and uid 0 come from them. */
		json_t *lines = sec_lines(text, len, 0);
		if (strcmp(cat, "passwd") == 0) {
			json_t *uid0 = json_array();
			passwd_each(lines, add_uid0, uid0);
			json_object_set_new(rec, "uid0", uid0);
		}
		json_object_set_new(rec, "lines", lines);
	}
out:
	free(text);
	return rec;
}

static int rec_same(const json_t *a, const json_t *b)
{
	static const char *const keys[] = {"sha256", "link", "mode", "uid", "gid", "type"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i])) &&
		    (json_object_get(a, keys[i]) || json_object_get(b, keys[i])))
			return 0;
	return 1;
}

static json_t *rec_id(const json_t *rec)
{
	json_t *v;

	if (!rec)
		return json_null();
	if ((v = json_object_get(rec, "sha256")) || (v = json_object_get(rec, "link")))
		return json_incref(v);
	return json_string("?");
}

/* Names in after's set (an object) not in before's. */
static json_t *names_new(const json_t *before, const json_t *after)
{
	json_t *out = json_array(), *v;
	const char *k;

	json_object_foreach((json_t *)after, k, v) if (!json_object_get(before, k))
	    json_array_append_new(out, json_string(k));
	return out;
}

static json_t *passwd_names(const json_t *rec)
{
	json_t *names = json_object();

	if (rec)
		passwd_each(json_object_get(rec, "lines"), add_name, names);
	return names;
}

static void join_names(char *out, size_t len, const json_t *names)
{
	size_t i, used = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(names, i, v)
	{
		int n =
		    snprintf(out + used, len - used, "%s%s", i ? ", " : "", json_string_value(v));
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* The events of one path's change from old to now (either may be NULL). */
static void file_changed(struct sec_run *r, const char *path, const char *cat, const json_t *old,
                         const json_t *now)
{
	char kind[64], what[600] = "";
	json_t *data;

	snprintf(kind, sizeof(kind), "security.%s_changed", cat);
	data =
	    json_pack("{s:s, s:o, s:o}", "path", path, "before", rec_id(old), "after", rec_id(now));
	if (!data)
		return;
	if (old && now && !json_equal(json_object_get(old, "mode"), json_object_get(now, "mode")))
		json_object_set_new(data, "mode",
		                    json_pack("[O, O]", json_object_get(old, "mode"),
		                              json_object_get(now, "mode")));
	if (old && now &&
	    (!json_equal(json_object_get(old, "uid"), json_object_get(now, "uid")) ||
	     !json_equal(json_object_get(old, "gid"), json_object_get(now, "gid"))))
		json_object_set_new(data, "owner",
		                    json_pack("[[O, O], [O, O]]", json_object_get(old, "uid"),
		                              json_object_get(old, "gid"),
		                              json_object_get(now, "uid"),
		                              json_object_get(now, "gid")));
	if (json_object_get(old, "lines") || json_object_get(now, "lines"))
		json_object_set_new(
		    data, "diff",
		    sec_diff(json_object_get(old, "lines"), json_object_get(now, "lines")));
	if (strcmp(cat, "passwd") == 0) {
		json_t *b = passwd_names(old), *a = passwd_names(now);
		json_t *added = names_new(b, a), *removed = names_new(a, b);
		char list[256];
		if (json_array_size(added)) {
			join_names(list, sizeof(list), added);
			snprintf(what, sizeof(what), ": user %s added", list);
		} else if (json_array_size(removed)) {
			join_names(list, sizeof(list), removed);
			snprintf(what, sizeof(what), ": user %s removed", list);
		}
		json_object_set_new(data, "users_added", added);
		json_object_set_new(data, "users_removed", removed);
		json_decref(a);
		json_decref(b);
	}
	if (strcmp(cat, "shadow") == 0) {
		/* Whose password changed: names only. */
		json_t *bu = json_object_get(old, "users"), *au = json_object_get(now, "users");
		json_t *changed = json_array(), *v;
		const char *k;
		json_object_foreach(au, k, v) if (!json_equal(v, json_object_get(bu, k)))
		    json_array_append_new(changed, json_string(k));
		json_object_set_new(data, "users_changed", changed);
		if (json_object_get(au, "root") && json_object_get(bu, "root") &&
		    !json_equal(json_object_get(au, "root"), json_object_get(bu, "root")))
			sec_event(r, "security.root_password_changed", "critical",
			          json_pack("{s:s}", "path", path),
			          "root's password hash changed in %s", path);
	}
	sec_event(r, kind, cat_severity(cat), data, "%s %s%s", path,
	          !old   ? "created"
	          : !now ? "removed"
	                 : "changed",
	          what);
	if (strcmp(cat, "passwd") == 0) {
		json_t *fresh = json_array(), *v;
		size_t i;
		json_array_foreach(json_object_get(now, "uid0"), i, v)
		{
			size_t j;
			json_t *w;
			int seen = 0;
			json_array_foreach(json_object_get(old, "uid0"), j, w) seen |=
			    json_equal(v, w);
			if (!seen)
				json_array_append(fresh, v);
		}
		if (old && json_array_size(fresh)) {
			char list[256];
			join_names(list, sizeof(list), fresh);
			sec_event(r, "security.uid0_added", "critical",
			          json_pack("{s:s, s:O}", "path", path, "users", fresh),
			          "a new user with uid 0 in %s: %s", path, list);
		}
		json_decref(fresh);
	}
}

/* Compares one path with its record in files and keeps what it is now. */
static void file_check(const struct sec_conf *c, json_t *files, const char *path, const char *cat,
                       int first, struct sec_run *r)
{
	json_t *old = json_object_get(files, path), *now = file_record(c, path, cat);

	if (!old && !now)
		return;
	if (old && now && rec_same(old, now)) {
		json_decref(now);
		return;
	}
	if (!first)
		file_changed(r, path, cat, old, now);
	r->changed = 1;
	if (now)
		json_object_set_new(files, path, now);
	else
		json_object_del(files, path);
}

static void add_home(void *arg, const char *name, long uid, const char *home)
{
	json_t *homes = arg;

	if (home[0] == '/' && home[1] && strcmp(home, "/nonexistent") != 0 &&
	    json_object_size(homes) < SEC_USERS_MAX && wire_utf8_ok(home, strlen(home)))
		json_object_set_new(homes, home, json_true());
}

int sec_files_check(const struct sec_conf *c, json_t *files, int first, struct sec_run *r,
                    json_t **dirs)
{
	json_t *seen = json_object(), *homes = json_object(), *v, *tmp;
	const char *k;
	char full[PATH_MAX], path[PATH_MAX];

	*dirs = json_pack("[s, s, s]", "/etc", "/etc/ssh", "/var/spool/cron");
	if (!seen || !homes || !*dirs) {
		json_decref(seen);
		json_decref(homes);
		return OUTPOST_E_INTERNAL;
	}
	for (size_t i = 0; i < NSPECS; i++) {
		DIR *d;
		struct dirent *e;
		if (!specs[i].dir) {
			file_check(c, files, specs[i].path, specs[i].cat, first, r);
			json_object_set_new(seen, specs[i].path, json_true());
			continue;
		}
		json_array_append_new(*dirs, json_string(specs[i].path));
		snprintf(full, sizeof(full), "%s%s", c->root, specs[i].path);
		if (!(d = opendir(full)))
			continue;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' || !wire_utf8_ok(e->d_name, strlen(e->d_name)) ||
			    (size_t)snprintf(path, sizeof(path), "%s/%s", specs[i].path,
			                     e->d_name) >= sizeof(path) ||
			    (e->d_type == DT_DIR))
				continue;
			file_check(c, files, path, specs[i].cat, first, r);
			json_object_set_new(seen, path, json_true());
		}
		closedir(d);
	}
	/* Every user's authorized_keys, from passwd as it is now. */
	passwd_each(json_object_get(json_object_get(files, "/etc/passwd"), "lines"), add_home,
	            homes);
	json_object_foreach(homes, k, v)
	{
		if ((size_t)snprintf(path, sizeof(path), "%s/.ssh/authorized_keys",
		                     strcmp(k, "/") ? k : "") >= sizeof(path))
			continue;
		file_check(c, files, path, "authorized_keys", first, r);
		json_object_set_new(seen, path, json_true());
		snprintf(path, sizeof(path), "%s/.ssh", k);
		json_array_append_new(*dirs, json_string(path));
	}
	/* What the baseline has and this walk did not meet: gone, or no longer listed (a
	 * user removed from passwd): looked at once more. */
	tmp = json_object();
	json_object_foreach(files, k, v) if (!json_object_get(seen, k))
	    json_object_set_new(tmp, k, json_true());
	json_object_foreach(tmp, k, v)
	{
		const char *cat =
		    json_string_value(json_object_get(json_object_get(files, k), "cat"));
		char *copy = strdup(k), *ccat = cat ? strdup(cat) : NULL;
		if (copy && ccat)
			file_check(c, files, copy, ccat, first, r);
		free(copy);
		free(ccat);
	}
	json_decref(tmp);
	json_decref(seen);
	json_decref(homes);
	return 0;
}

int sec_files_check_path(const struct sec_conf *c, json_t *files, const char *path,
                         struct sec_run *r)
{
	const char *cat = path_cat(path);

	if (!cat)
		return 0;
	file_check(c, files, path, cat, 0, r);
	return 1;
}
