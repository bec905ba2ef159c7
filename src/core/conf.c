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

int conf_check_log(const json_t *conf, char *msg, size_t msglen)
{
	const char *s = json_string_value(conf_get(conf, "log.level"));

	if (s && log_level_parse(s) < 0) {
		snprintf(msg, msglen, "'log.level' must be error, warn, info or debug");
		return OUTPOST_E_BAD_ARGS;
	}
	s = json_string_value(conf_get(conf, "log.target"));
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

static int conf_check_obj(const json_t *obj, const char *prefix, const struct conf_field *schema,
                          char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		struct buf path = BUF_INIT;
		const struct conf_field *f;
		int rc = 0;

		if (buf_printf(&path, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
			return OUTPOST_E_INTERNAL;
		for (f = schema; f->path && strcmp(f->path, path.data) != 0; f++)
			;
		if (!f->path) {
			snprintf(msg, msglen, "unknown key '%s'", path.data);
			rc = OUTPOST_E_BAD_ARGS;
		} else if (!conf_type_ok(f, v)) {
			snprintf(msg, msglen, "'%s' must be %s", path.data,
			         conf_type_name(f->type));
			rc = OUTPOST_E_BAD_ARGS;
		} else if ((f->type == CONF_INT || f->type == CONF_NUMBER) && (f->min || f->max) &&
		           (json_number_value(v) < f->min || json_number_value(v) > f->max)) {
			/* %.15g: integers print whole (1073741824, not 1.07374e+09). */
			snprintf(msg, msglen, "'%s' must be between %.15g and %.15g", path.data,
			         f->min, f->max);
			rc = OUTPOST_E_BAD_ARGS;
		} else if (f->type == CONF_OBJECT) {
			rc = conf_check_obj(v, path.data, schema, msg, msglen);
		} else if (f->type == CONF_OBJECT_ARRAY) {
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e) if (rc == 0) rc =
			    conf_check_obj(e, path.data, schema, msg, msglen);
		}
		buf_free(&path);
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
	return conf_check_obj(conf, "", schema, msg, msglen);
}
