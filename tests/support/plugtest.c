/* Plugin test harness: see plugtest.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "agent/call.h"
#include "agent/plugins.h"
#include "agent/watch.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/loop.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct plugtest {
	char dir[64];
	struct logger log;
	struct loop *loop;
	struct watch *watch;
	sqlite3 *db;
	struct plugin_host host;
	struct plugins *ps;
	struct outpost_plugin_ctx *pc;
	struct outpost_call call;
	int init_rc;
	json_t *published; /* what plugtest_publish kept, or NULL */
};

static struct plugtest *plugtest_make(const struct outpost_plugin *p, const char *config_json,
                                      int must_init)
{
	struct plugtest *t = calloc(1, sizeof(*t));
	json_t *conf = NULL;
	char path[128], msg[256];

	assert_non_null(t);
	strcpy(t->dir, "/tmp/outpost-test-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	log_init(&t->log, "plugtest",
	         getenv("OUTPOST_TEST_DEBUG") ? OUTPOST_LOG_DEBUG : OUTPOST_LOG_WARN,
	         LOG_TO_STDERR);
	assert_int_equal(loop_new(&t->loop), 0);
	/* Like the agent, go on without inotify when the user's instances are used up. */
	if (watch_new(t->loop, &t->watch) < 0)
		t->watch = NULL;
	snprintf(path, sizeof(path), "%s/agent.db", t->dir);
	assert_int_equal(db_open(path, &t->db, msg, sizeof(msg)), 0);
	t->host.log = &t->log;
	t->host.loop = t->loop;
	t->host.watch = t->watch;
	t->host.db = t->db;
	t->host.state_dir = t->dir;
	assert_int_equal(plugins_new(&t->host, &t->ps), 0);
	if (config_json) {
		conf = json_loads(config_json, 0, NULL);
		assert_non_null(conf);
	}
	assert_int_equal(plugins_add(t->ps, p, "builtin", conf, &t->pc), 0);
	json_decref(conf);
	plugins_init_all(t->ps);
	t->init_rc = t->pc->enabled ? 0 : -1;
	if (must_init)
		assert_true(t->pc->enabled);
	return t;
}

struct plugtest *plugtest_new(const struct outpost_plugin *p, const char *config_json)
{
	return plugtest_make(p, config_json, 1);
}

struct plugtest *plugtest_new_any(const struct outpost_plugin *p, const char *config_json)
{
	return plugtest_make(p, config_json, 0);
}

int plugtest_call_deadline(struct plugtest *t, const char *op, const char *args_json,
                           int64_t timeout_ms, json_t **result, const char **errmsg)
{
	const struct outpost_op *o;
	json_t *args;
	size_t idx;
	int rc;

	*result = NULL;
	*errmsg = "";
	o = plugins_find_op(t->pc, op, &idx);
	if (!o) {
		*errmsg = "unknown op";
		return OUTPOST_E_UNKNOWN_OP;
	}
	args = json_loads(args_json ? args_json : "{}", 0, NULL);
	if (!args) {
		*errmsg = "test passed invalid JSON";
		return OUTPOST_E_BAD_JSON;
	}
	call_release(&t->call);
	call_init(&t->call, t->pc, o, idx, clk_mono_ms() + timeout_ms);
	rc = call_invoke(&t->call, args, result);
	json_decref(args);
	*errmsg = t->call.errmsg;
	return rc;
}

int plugtest_call(struct plugtest *t, const char *op, const char *args_json, json_t **result,
                  const char **errmsg)
{
	return plugtest_call_deadline(t, op, args_json, 10000, result, errmsg);
}

const char *plugtest_dir(struct plugtest *t)
{
	return t->dir;
}

struct loop *plugtest_loop(struct plugtest *t)
{
	return t->loop;
}

struct outpost_plugin_ctx *plugtest_ctx(struct plugtest *t)
{
	return t->pc;
}

int plugtest_init_rc(struct plugtest *t)
{
	return t->init_rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int plugtest_publish(void *arg, const char *stream, const char *text, size_t len)
{
	struct plugtest *t = arg;
	json_t *b = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);

	assert_true(strcmp(stream, "metrics") == 0 || strcmp(stream, "events") == 0);
	assert_non_null(b);
	assert_int_equal(json_array_append_new(t->published, b), 0);
	return 0;
}

json_t *plugtest_published(struct plugtest *t)
{
	if (!t->published) {
		t->published = json_array();
		t->host.publish = plugtest_publish;
		t->host.publish_arg = t;
	}
	return t->published;
}

void plugtest_free(struct plugtest *t)
{
	if (!t)
		return;
	call_release(&t->call);
	plugins_free(t->ps);
	watch_free(t->watch);
	db_close(t->db);
	loop_free(t->loop);
	nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	json_decref(t->published);
	free(t);
}
