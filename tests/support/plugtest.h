/* Unit-test harness for plugins: loads one plugin into a real plugin context (private state
 * directory, real SQLite state, real loop) and calls its ops through call_invoke(), the same
 * path the dispatcher takes, minus the worker thread. */
#ifndef OUTPOST_TESTS_PLUGTEST_H
#define OUTPOST_TESTS_PLUGTEST_H

#include <outpost/plugin.h>

struct plugtest;
struct loop;

/* config_json: the plugin's config section as JSON text (NULL: {}). Fails the test when the
 * plugin's init fails unless expect_init_fail is set. */
struct plugtest *plugtest_new(const struct outpost_plugin *p, const char *config_json);
/* Calls op with args given as JSON text. Returns 0 and *result (new ref; may be NULL), or the
 * negative error code with *errmsg pointing at the message (valid until the next call). */
int plugtest_call(struct plugtest *t, const char *op, const char *args_json, json_t **result,
                  const char **errmsg);
/* The same with a deadline other than the default 10 s from now. */
int plugtest_call_deadline(struct plugtest *t, const char *op, const char *args_json,
                           int64_t timeout_ms, json_t **result, const char **errmsg);
/* A private temporary directory, removed by plugtest_free. */
const char *plugtest_dir(struct plugtest *t);
struct loop *plugtest_loop(struct plugtest *t);
struct outpost_plugin_ctx *plugtest_ctx(struct plugtest *t);
int plugtest_init_rc(struct plugtest *t);
void plugtest_free(struct plugtest *t);

/* As if the agent had a hub: from now on outpost_publish succeeds and every batch is kept
 * (parsed back from the text the core would spool). Returns that array, borrowed, in order;
 * call it before the plugin's first publish. Without it, outpost_publish answers unavailable
 * like an agent without a hub. */
json_t *plugtest_published(struct plugtest *t);

/* Like plugtest_new but does not fail the test when init fails (see plugtest_init_rc). */
struct plugtest *plugtest_new_any(const struct outpost_plugin *p, const char *config_json);

#endif
