/* Config files: see conf.h. */
#include "conf.h"
#include "buf.h"
#include "log.h"

#include <outpost/plugin.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Replaces comments with spaces (newlines kept) outside strings. -1 on an unclosed block. */
static int conf_blank_comments(char *s, size_t len, size_t *bad_at)
{
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_str) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			else if (s[i] == '"')
				in_str = 0;
			continue;
		}
		if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '#' || (s[i] == '/' && i + 1 < len && s[i + 1] == '/')) {
			while (i < len && s[i] != '\n')
				s[i++] = ' ';
		} else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
			size_t start = i;
			s[i++] = ' ';
			s[i++] = ' ';
			while (i < len && !(s[i] == '*' && i + 1 < len && s[i + 1] == '/')) {
				if (s[i] != '\n')
					s[i] = ' ';
				i++;
			}
			if (i >= len) {
				*bad_at = start;
				return -1;
			}
			s[i++] = ' ';
			s[i] = ' ';
		}
	}
	return 0;
}

static void conf_position(const char *s, size_t at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < at; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

int conf_parse(const char *text, size_t len, const char *name, json_t **out, char *msg,
               size_t msglen)
{
	json_error_t jerr;
	char *copy;
	size_t bad_at = 0;
	int line, col;

	*out = NULL;
	if (len > CONF_MAX_BYTES) {
		snprintf(msg, msglen, "%s: larger than %u bytes", name, CONF_MAX_BYTES);
		return OUTPOST_E_BAD_JSON;
	}
	copy = malloc(len + 1);
	if (!copy) {
		snprintf(msg, msglen, "%s: out of memory", name);
		return OUTPOST_E_INTERNAL;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (conf_blank_comments(copy, len, &bad_at) < 0) {
		conf_position(text, bad_at, &line, &col);
		snprintf(msg, msglen, "%s:%d:%d: comment is never closed", name, line, col);
		free(copy);
		return OUTPOST_E_BAD_JSON;
	}
	*out = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
	free(copy);
	if (!*out) {
		snprintf(msg, msglen, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
		return OUTPOST_E_BAD_JSON;
	}
	if (!json_is_object(*out)) {
		snprintf(msg, msglen, "%s: the top level must be an object { ... }", name);
		json_decref(*out);
		*out = NULL;
		return OUTPOST_E_BAD_JSON;
	}
	return 0;
}

int conf_load(const char *path, json_t **out, char *msg, size_t msglen)
{
	struct buf b = BUF_INIT;
	struct stat st;
	char chunk[8192];
	ssize_t n;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return OUTPOST_E_NOT_FOUND;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "%s: not a regular file", path);
		close(fd);
		return OUTPOST_E_BAD_ARGS;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (b.len + (size_t)n > CONF_MAX_BYTES || buf_append(&b, chunk, (size_t)n) < 0) {
			snprintf(msg, msglen, "%s: larger than %u bytes", path, CONF_MAX_BYTES);
			close(fd);
			buf_free(&b);
			return OUTPOST_E_TOO_LARGE;
		}
	}
	close(fd);
	if (n < 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		buf_free(&b);
		return OUTPOST_E_INTERNAL;
	}
	rc = conf_parse(b.data ? b.data : "", b.len, path, out, msg, msglen);
	buf_free(&b);
	return rc;
}

int conf_merge(json_t *dst, const json_t *src)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)src, key, v)
	{
		json_t *cur = json_object_get(dst, key);
		if (json_is_object(cur) && json_is_object(v)) {
			if (conf_merge(cur, v) < 0)
				return -1;
		} else if (json_object_set(dst, key, v) < 0) {
			return -1;
		}
	}
	return 0;
}

int conf_layer(json_t *defaults, const char *path, const char *default_path,
               const json_t *overrides, json_t **out, char *msg, size_t msglen)
{
	json_t *file = NULL, *v;
	const char *k;
	int rc;

	*out = NULL;
	if (!defaults)
		return OUTPOST_E_INTERNAL;
	if (!path && default_path && access(default_path, F_OK) == 0)
		path = default_path;
	if (path) {
		rc = conf_load(path, &file, msg, msglen);
		if (rc < 0) {
			json_decref(defaults);
			return rc;
		}
		/* Sections merge key by key, so a file may set one key of a section. */
		conf_merge(defaults, file);
		json_decref(file);
	}
	json_object_foreach((json_t *)overrides, k, v) conf_set(defaults, k, json_incref(v));
	*out = defaults;
	return 0;
}

int conf_check_log(const struct conf_log *log, char *msg, size_t msglen)
{
	const char *s = log->level;

	if (s && log_level_parse(s) < 0) {
		snprintf(msg, msglen, "'log.level' must be error, warn, info or debug");
		return OUTPOST_E_BAD_ARGS;
	}
	s = log->target;
	if (s && strcmp(s, "stderr") && strcmp(s, "syslog")) {
		snprintf(msg, msglen, "'log.target' must be stderr or syslog");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

json_t *conf_get(const json_t *conf, const char *path)
{
	const json_t *cur = conf;
	char key[128];

	while (cur && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		cur = json_object_get(cur, key);
		path += n + (dot ? 1 : 0);
	}
	return (json_t *)cur;
}

int conf_set(json_t *conf, const char *path, json_t *v)
{
	json_t *cur = conf;
	char key[128];

	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key) || !json_is_object(cur))
			goto fail;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!dot)
			return json_object_set_new(cur, key, v);
		if (!json_object_get(cur, key) && json_object_set_new(cur, key, json_object()) < 0)
			goto fail;
		cur = json_object_get(cur, key);
		path = dot + 1;
	}
fail:
	json_decref(v);
	return -1;
}

static const char *conf_type_name(enum conf_type t)
{
	switch (t) {
	case CONF_STRING:
		return "a string";
	case CONF_INT:
		return "an integer";
	case CONF_BOOL:
		return "true or false";
	case CONF_NUMBER:
		return "a number";
	case CONF_OBJECT:
	case CONF_OBJECT_FREE:
		return "an object { ... }";
	case CONF_STRING_ARRAY:
		return "an array of strings";
	case CONF_OBJECT_ARRAY:
		return "an array of objects [{ ... }]";
	}
	return "?";
}

static int conf_type_ok(const struct conf_field *f, const json_t *v)
{
	size_t i;
	json_t *e;

	switch (f->type) {
	case CONF_STRING:
		return json_is_string(v);
	case CONF_INT:
		return json_is_integer(v);
	case CONF_BOOL:
		return json_is_boolean(v);
	case CONF_NUMBER:
		return json_is_number(v);
	case CONF_OBJECT:
	case CONF_OBJECT_FREE:
		return json_is_object(v);
	case CONF_STRING_ARRAY:
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, i, e) if (!json_is_string(e)) return 0;
		return 1;
	case CONF_OBJECT_ARRAY:
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, i, e) if (!json_is_object(e)) return 0;
		return 1;
	}
	return 0;
}

/* prefix: obj's path in the schema ("remote_write"); shown: the same as messages name it,
 * with a list element's index ("remote_write[1]"). */
static int conf_check_obj(const json_t *obj, const char *prefix, const char *shown,
                          const struct conf_field *schema, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		struct buf path = BUF_INIT, name = BUF_INIT;
		const struct conf_field *f;
		int rc = 0;

		if (buf_printf(&path, "%s%s%s", prefix, *prefix ? "." : "", key) < 0 ||
		    buf_printf(&name, "%s%s%s", shown, *shown ? "." : "", key) < 0) {
			buf_free(&path);
			return OUTPOST_E_INTERNAL;
		}
		for (f = schema; f->path && strcmp(f->path, path.data) != 0; f++)
			;
		if (!f->path) {
			snprintf(msg, msglen, "unknown key '%s'", name.data);
			rc = OUTPOST_E_BAD_ARGS;
		} else if (!conf_type_ok(f, v)) {
			snprintf(msg, msglen, "'%s' must be %s", name.data,
			         conf_type_name(f->type));
			rc = OUTPOST_E_BAD_ARGS;
		} else if ((f->type == CONF_INT || f->type == CONF_NUMBER) && (f->min || f->max) &&
		           (json_number_value(v) < f->min || json_number_value(v) > f->max)) {
			/* %.15g: integers print whole (1073741824, not 1.07374e+09). */
			snprintf(msg, msglen, "'%s' must be between %.15g and %.15g", name.data,
			         f->min, f->max);
			rc = OUTPOST_E_BAD_ARGS;
		} else if (f->type == CONF_OBJECT) {
			rc = conf_check_obj(v, path.data, name.data, schema, msg, msglen);
		} else if (f->type == CONF_OBJECT_ARRAY) {
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e)
			{
				struct buf at = BUF_INIT;
				if (rc == 0 && buf_printf(&at, "%s[%zu]", name.data, i) < 0)
					rc = OUTPOST_E_INTERNAL;
				if (rc == 0)
					rc = conf_check_obj(e, path.data, at.data, schema, msg,
					                    msglen);
				buf_free(&at);
			}
		}
		buf_free(&path);
		buf_free(&name);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int conf_check(const json_t *conf, const struct conf_field *schema, char *msg, size_t msglen)
{
	if (!json_is_object(conf)) {
		snprintf(msg, msglen, "the configuration must be an object");
		return OUTPOST_E_BAD_ARGS;
	}
	return conf_check_obj(conf, "", "", schema, msg, msglen);
}

/* ---- the typed reader ---- */

/* The bytes a row's member takes, by type; 0: a section (no member). */
static size_t conf_member_size(enum conf_type t)
{
	switch (t) {
	case CONF_STRING:
		return sizeof(const char *);
	case CONF_INT:
	case CONF_BOOL:
		return sizeof(int64_t);
	case CONF_NUMBER:
		return sizeof(double);
	case CONF_OBJECT_FREE:
		return sizeof(const json_t *);
	case CONF_STRING_ARRAY:
		return sizeof(struct conf_strv);
	case CONF_OBJECT_ARRAY:
		return sizeof(struct conf_list);
	case CONF_OBJECT:
		return 0;
	}
	return 0;
}

/* The list row whose elements hold f ("remote_write" for "remote_write.url"), or NULL. */
static const struct conf_field *conf_list_of(const struct conf_field *schema,
                                             const struct conf_field *f)
{
	for (const struct conf_field *l = schema; l->path; l++) {
		size_t n = strlen(l->path);
		if (l->type == CONF_OBJECT_ARRAY && strncmp(f->path, l->path, n) == 0 &&
		    f->path[n] == '.')
			return l;
	}
	return NULL;
}

static json_t *conf_default_of(const struct conf_field *f)
{
	const char *text = f->def_root && geteuid() == 0 ? f->def_root : f->def;

	return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

/* Sets the defaults of the rows that have one and are absent from conf: keys of the top level
 * and sections at their path, a list's element keys in each element. -1 on a default that is
 * not JSON. */
static int conf_fill_defaults(json_t *conf, const struct conf_field *schema)
{
	for (const struct conf_field *f = schema; f->path; f++) {
		const struct conf_field *l;
		json_t *d;
		if (!f->def && !f->def_root)
			continue;
		if ((l = conf_list_of(schema, f))) {
			const char *key = f->path + strlen(l->path) + 1;
			size_t i;
			json_t *e;
			json_array_foreach(conf_get(conf, l->path), i, e)
			{
				if (json_object_get(e, key))
					continue;
				if (!(d = conf_default_of(f)) || json_object_set_new(e, key, d) < 0)
					return -1;
			}
			continue;
		}
		if (conf_get(conf, f->path))
			continue;
		if (!(d = conf_default_of(f)) || conf_set(conf, f->path, d) < 0)
			return -1;
	}
	return 0;
}

json_t *conf_defaults(const struct conf_field *schema)
{
	json_t *conf = json_object();

	if (conf && conf_fill_defaults(conf, schema) < 0) {
		json_decref(conf);
		return NULL;
	}
	return conf;
}

/* Frees what the rows of schema allocated in the struct at base (lists' elements first). */
static void conf_release_rows(const struct conf_field *schema, const char *list, char *base)
{
	for (const struct conf_field *f = schema; f->path; f++) {
		const struct conf_field *l = conf_list_of(schema, f);
		if (list ? !l || strcmp(l->path, list) != 0 : l != NULL)
			continue;
		if (f->type == CONF_STRING_ARRAY) {
			free(((struct conf_strv *)(base + f->off))->v);
		} else if (f->type == CONF_OBJECT_ARRAY) {
			struct conf_list *cl = (struct conf_list *)(base + f->off);
			for (size_t i = 0; i < cl->n; i++)
				conf_release_rows(schema, f->path,
				                  (char *)cl->v + i * f->elem_size);
			free(cl->v);
		}
	}
}

/* The bytes of a struct that schema's rows fill: the head, up to the furthest member's end. */
static size_t conf_extent(const struct conf_field *schema)
{
	size_t size = sizeof(struct conf_head);

	for (const struct conf_field *f = schema; f->path; f++)
		if (!conf_list_of(schema, f) && f->off + f->size > size)
			size = f->off + f->size;
	return size;
}

void conf_release(void *base)
{
	struct conf_head *h = base;

	if (!h || !h->schema)
		return;
	conf_release_rows(h->schema, NULL, base);
	json_decref(h->json);
	memset(base, 0, conf_extent(h->schema));
}

/* Fills the members of the rows under list (NULL: the top level's) from obj. */
static int conf_fill_rows(const struct conf_field *schema, const char *list, const json_t *obj,
                          char *base)
{
	size_t skip = list ? strlen(list) + 1 : 0;

	for (const struct conf_field *f = schema; f->path; f++) {
		const struct conf_field *l = conf_list_of(schema, f);
		void *m = base + f->off;
		json_t *v, *e;
		size_t i;
		if (list ? !l || strcmp(l->path, list) != 0 : l != NULL)
			continue;
		if (f->type != CONF_OBJECT && f->size != conf_member_size(f->type))
			return -1; /* the row and its member disagree: conf_test says where */
		v = conf_get(obj, f->path + skip);
		switch (f->type) {
		case CONF_STRING:
			*(const char **)m = json_string_value(v);
			break;
		case CONF_INT:
			*(int64_t *)m = json_integer_value(v);
			break;
		case CONF_BOOL:
			*(int64_t *)m = v ? json_is_true(v) : -1;
			break;
		case CONF_NUMBER:
			*(double *)m = json_number_value(v);
			break;
		case CONF_OBJECT_FREE:
			*(const json_t **)m = v;
			break;
		case CONF_STRING_ARRAY: {
			struct conf_strv *sv = m;
			sv->n = json_array_size(v);
			if (!(sv->v = calloc(sv->n + 1, sizeof(*sv->v))))
				return -1;
			json_array_foreach(v, i, e) sv->v[i] = json_string_value(e);
			break;
		}
		case CONF_OBJECT_ARRAY: {
			struct conf_list *cl = m;
			size_t n = json_array_size(v);
			if (!(cl->v = calloc(n ? n : 1, f->elem_size)))
				return -1;
			json_array_foreach(v, i, e)
			{
				cl->n = i + 1;
				if (conf_fill_rows(schema, f->path, e,
				                   (char *)cl->v + i * f->elem_size) < 0)
					return -1;
			}
			break;
		}
		case CONF_OBJECT:
			break;
		}
	}
	return 0;
}

int conf_read(const json_t *conf, const struct conf_field *schema, void *base, char *msg,
              size_t msglen)
{
	struct conf_head *h = base;
	int rc;

	/* Whatever the caller's struct held: nothing to free on a failure half-way. */
	memset(base, 0, conf_extent(schema));
	if ((rc = conf_check(conf, schema, msg, msglen)) < 0)
		return rc;
	h->schema = schema;
	if (!(h->json = json_deep_copy(conf)) || conf_fill_defaults(h->json, schema) < 0 ||
	    conf_fill_rows(schema, NULL, h->json, base) < 0) {
		conf_release(base);
		snprintf(msg, msglen,
		         "the configuration cannot be read (out of memory, or a "
		         "schema row that does not fit its member)");
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

/* Marks the bytes [off, off+size) of a struct of n bytes in used; -1 when one is taken. */
static int conf_claim(unsigned char *used, size_t n, size_t off, size_t size)
{
	if (off + size > n)
		return -1;
	for (size_t i = off; i < off + size; i++)
		if (used[i]++)
			return -1;
	return 0;
}

static int conf_verify_rows(const struct conf_field *schema, const char *list, size_t size,
                            size_t head, char *msg, size_t msglen)
{
	unsigned char *used = calloc(size ? size : 1, 1);
	int rc = -1;

	if (!used) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	memset(used, 1, head);
	for (const struct conf_field *f = schema; f->path; f++) {
		const struct conf_field *l = conf_list_of(schema, f);
		if (list ? !l || strcmp(l->path, list) != 0 : l != NULL)
			continue;
		if (f->type == CONF_OBJECT) {
			if (f->size) {
				snprintf(msg, msglen, "'%s' is a section but fills a member",
				         f->path);
				goto out;
			}
			continue;
		}
		if (!f->size || f->size != conf_member_size(f->type)) {
			snprintf(msg, msglen, "'%s' has %s (%zu bytes) for a member of %zu bytes",
			         f->path, f->size ? "a member" : "no member", f->size,
			         conf_member_size(f->type));
			goto out;
		}
		if (conf_claim(used, size, f->off, f->size) < 0) {
			snprintf(msg, msglen,
			         "'%s' overlaps another row's member or the struct's end", f->path);
			goto out;
		}
		if (f->type == CONF_OBJECT_ARRAY &&
		    conf_verify_rows(schema, f->path, f->elem_size, 0, msg, msglen) < 0)
			goto out;
	}
	for (size_t i = 0; i < size; i++) {
		if (!used[i]) {
			snprintf(
			    msg, msglen,
			    "%s%sbyte %zu of the struct is no row's: a member the config never "
			    "fills",
			    list ? list : "", list ? ": " : "", i);
			goto out;
		}
	}
	rc = 0;
out:
	free(used);
	return rc;
}

int conf_schema_verify(const struct conf_field *schema, size_t size, char *msg, size_t msglen)
{
	json_t *d = conf_defaults(schema);
	int rc;

	if (!d) {
		snprintf(msg, msglen, "a default is not valid JSON text");
		return -1;
	}
	/* The defaults themselves must pass the schema: a row's default of the wrong type or out
	 * of its range would be caught only by a user who never sets the key. */
	rc = conf_check(d, schema, msg, msglen);
	json_decref(d);
	if (rc < 0)
		return -1;
	return conf_verify_rows(schema, NULL, size, sizeof(struct conf_head), msg, msglen);
}

/* Sets path in conf to v (stolen), or removes it when v is NULL. */
static int conf_put(json_t *conf, const char *path, json_t *v)
{
	const char *dot;
	char parent[256];
	json_t *p;

	if (v)
		return conf_set(conf, path, v);
	if (!(dot = strrchr(path, '.')))
		return json_object_del(conf, path), 0;
	if ((size_t)(dot - path) >= sizeof(parent))
		return -1;
	memcpy(parent, path, (size_t)(dot - path));
	parent[dot - path] = '\0';
	if ((p = conf_get(conf, parent)))
		json_object_del(p, dot + 1);
	return 0;
}

int conf_new(const struct conf_kind *k, const json_t *conf, void **out, char *msg, size_t msglen)
{
	void *c = calloc(1, k->size);
	int rc;

	*out = NULL;
	if (!c) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	if ((rc = conf_read(conf, k->schema, c, msg, msglen)) < 0 ||
	    (k->check && (rc = k->check(c, msg, msglen)) < 0)) {
		conf_free(c);
		return rc == OUTPOST_E_INTERNAL ? rc : OUTPOST_E_BAD_ARGS;
	}
	*out = c;
	return 0;
}

void conf_free(void *c)
{
	conf_release(c);
	free(c);
}

int conf_check_kind(const struct conf_kind *k, const json_t *conf, char *msg, size_t msglen)
{
	void *c;
	int rc = conf_new(k, conf, &c, msg, msglen);

	conf_free(c);
	return rc;
}

int conf_reload(const struct conf_kind *k, const void *cur, const json_t *conf, struct logger *log,
                void **out, char *msg, size_t msglen)
{
	const json_t *running = ((const struct conf_head *)cur)->json;
	struct buf kept = BUF_INIT;
	void *next = NULL;
	json_t *patched;
	int rc;

	*out = NULL;
	/* Checked whole first, so a bad file is refused with the message it gets at start. */
	if ((rc = conf_new(k, conf, &next, msg, msglen)) < 0)
		return rc;
	patched = json_deep_copy(((struct conf_head *)next)->json);
	for (const struct conf_field *f = k->schema; patched && f->path; f++) {
		json_t *was = conf_get(running, f->path), *now = conf_get(patched, f->path);
		/* json_equal(NULL, NULL) is 0: absent from both is no change. */
		if ((f->flags & CONF_RELOAD) || f->type == CONF_OBJECT ||
		    conf_list_of(k->schema, f) || was == now || json_equal(was, now))
			continue;
		if (conf_put(patched, f->path, was ? json_deep_copy(was) : NULL) < 0 ||
		    buf_printf(&kept, "%s%s", kept.len ? ", " : "", f->path) < 0) {
			json_decref(patched);
			patched = NULL;
		}
	}
	if (!patched) {
		snprintf(msg, msglen, "out of memory");
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	/* The struct the caller swaps in is what runs: restart-only keys as they were. */
	if (kept.len) {
		void *again = NULL;
		rc = conf_new(k, patched, &again, msg, msglen);
		conf_free(next);
		next = again;
		if (rc < 0)
			goto out;
		log_warn(log, "conf",
		         "reload: %s change only at a restart: kept at their running values, the "
		         "rest of the file applied",
		         kept.data);
	}
	*out = next;
	next = NULL;
	rc = 0;
out:
	conf_free(next);
	json_decref(patched);
	buf_free(&kept);
	return rc;
}
