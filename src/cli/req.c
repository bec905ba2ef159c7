/* Request bodies for the hub: see req.h. */
#include "req.h"

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

json_t *req_task_body(const struct req_task *t, const char *plugin, const char *op, json_t *args)
{
	json_t *b = json_pack("{s:s, s:s, s:s, s:o}", "target", t->target, "plugin", plugin, "op",
	                      op, "args", args ? args : json_object());

	if (!b)
		return NULL;
	if ((t->id && json_object_set_new(b, "id", json_string(t->id)) < 0) ||
	    (t->timeout_ms > 0 &&
	     json_object_set_new(b, "timeout_ms", json_integer(t->timeout_ms)) < 0) ||
	    (t->expires_in_ms > 0 &&
	     json_object_set_new(b, "expires_in_ms", json_integer(t->expires_in_ms)) < 0) ||
	    (t->batch && json_object_set(b, "batch", t->batch) < 0) ||
	    (t->max_failures >= 0 &&
	     json_object_set_new(b, "max_failures", json_integer(t->max_failures)) < 0)) {
		json_decref(b);
		return NULL;
	}
	return b;
}

json_t *req_run_args(char *const *argv, const char *script, const char *user, const char *cwd,
                     const json_t *env, int64_t timeout_ms)
{
	json_t *a = json_object();

	if (!a)
		return NULL;
	if (argv) {
		json_t *arr = json_array();
		if (json_object_set_new(a, "argv", arr) < 0)
			goto fail;
		for (size_t i = 0; argv[i]; i++)
			if (json_array_append_new(arr, json_string(argv[i])) < 0)
				goto fail;
	} else if (json_object_set_new(a, "script", json_string(script)) < 0) {
		goto fail;
	}
	if ((user && json_object_set_new(a, "user", json_string(user)) < 0) ||
	    (cwd && json_object_set_new(a, "cwd", json_string(cwd)) < 0) ||
	    (env && json_object_size(env) && json_object_set(a, "env", (json_t *)env) < 0) ||
	    (timeout_ms > 0 && json_object_set_new(a, "timeout_ms", json_integer(timeout_ms)) < 0))
		goto fail;
	return a;
fail:
	json_decref(a);
	return NULL;
}

json_t *req_put_args(const void *content, size_t len, const char *path, const char *mode,
                     const char *owner, const char *group, int make_dirs)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	char hex[crypto_hash_sha256_BYTES * 2 + 1];
	size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64len);
	json_t *a = NULL;

	if (!b64)
		return NULL;
	sodium_bin2base64(b64, b64len, content, len, sodium_base64_VARIANT_ORIGINAL);
	crypto_hash_sha256(digest, content, len);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	a = json_pack("{s:s, s:s, s:s, s:s}", "path", path, "content", b64, "encoding", "base64",
	              "sha256", hex);
	free(b64);
	if (!a)
		return NULL;
	if ((mode && json_object_set_new(a, "mode", json_string(mode)) < 0) ||
	    (owner && json_object_set_new(a, "owner", json_string(owner)) < 0) ||
	    (group && json_object_set_new(a, "group", json_string(group)) < 0) ||
	    (make_dirs && json_object_set_new(a, "make_dirs", json_true()) < 0)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

char *req_cp_path(const char *local, const char *remote)
{
	size_t rlen = strlen(remote);
	const char *base;
	struct buf b = BUF_INIT;

	if (remote[0] != '/')
		return NULL;
	if (remote[rlen - 1] != '/')
		return strdup(remote);
	/* Like cp(1): a directory target takes the source's name. */
	base = strrchr(local, '/');
	base = base ? base + 1 : local;
	if (!*base || strcmp(base, "-") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return NULL;
	if (buf_puts(&b, remote) < 0 || buf_puts(&b, base) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

int req_param(struct buf *b, const char *key, const char *value)
{
	if (!value)
		return 0;
	if (buf_printf(b, "%c%s=", b->data && strchr(b->data, '?') ? '&' : '?', key) < 0)
		return -1;
	return req_escape(b, value);
}

int req_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
		int rc =
		    isalnum(c) || strchr("-._~", c) ? buf_append(b, s, 1) : buf_append(b, enc, 3);
		if (rc < 0)
			return -1;
	}
	return 0;
}

void req_new_id(char out[64])
{
	unsigned char rnd[16];

	randombytes_buf(rnd, sizeof(rnd));
	memcpy(out, REQ_ID_PREFIX, sizeof(REQ_ID_PREFIX) - 1);
	sodium_bin2hex(out + sizeof(REQ_ID_PREFIX) - 1, 64 - (sizeof(REQ_ID_PREFIX) - 1), rnd,
	               sizeof(rnd));
}
