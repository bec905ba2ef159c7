/* The store's contract (store.h) as tests: one body that runs on every implementation through
 * its ops table. tests/hub/store_sqlite_test.c and store_pg_test.c include it after saying how
 * to open their store; what only one implementation has (SQLite's file migrations) stays in
 * its own file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub/store.h"
#include <outpost/plugin.h>

#define T0 1700000000000LL /* a fixed "now" */
#define HOUR 3600000LL

struct fx {
	char dir[64];
	struct store *st;
	const struct store_ops *op;
};

/* Each includer defines these (store_sqlite_test.c, store_pg_test.c). */
static const char *fx_name;                                 /* "sqlite", "postgresql" */
static int fx_open(struct fx *f, char *msg, size_t msglen); /* opens f->st on f->dir */
static int fx_fresh(struct fx *f);                          /* an empty store next */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/outpost-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(fx_fresh(f), 0);
	if (fx_open(f, msg, sizeof(msg)) != 0) {
		print_error("%s\n", msg);
		fail();
	}
	f->op = f->st->ops;
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->st)
		f->op->close(f->st);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static int enroll_full(struct fx *f, const char *id, const char *key, int accept, json_t *facts,
                       json_t *labels, json_t **host)
{
	struct store_enroll e = {.host_id = id,
	                         .pubkey = key,
	                         .hostname = id,
	                         .version = "0.1.0",
	                         .facts = facts,
	                         .labels = labels,
	                         .accept = accept,
	                         .now_ms = T0};
	return f->op->host_enroll(f->st, &e, host);
}

/* Enrolls an accepted host with key "key-<id>". */
static void enroll(struct fx *f, const char *id)
{
	char key[96];
	json_t *h;

	snprintf(key, sizeof(key), "key-%s", id);
	assert_int_equal(enroll_full(f, id, key, 1, NULL, NULL, &h), 0);
	json_decref(h);
}

static const char *sval(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t ival(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static json_t *host(struct fx *f, const char *id)
{
	json_t *h;
	assert_int_equal(f->op->host_get(f->st, id, &h), 0);
	return h;
}

/* A task over hosts (NULL-terminated varargs would hide mistakes: pass a JSON array text). */
static int task_new(struct fx *f, const char *id, const char *hosts_json, int batch, int maxf,
                    json_t **existing)
{
	json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:i, s:I, s:I, s:s, s:i, s:i}", "id",
	                      id, "target", "*", "plugin", "exec", "op", "run", "args", "cmd",
	                      "uptime", "timeout_ms", 60000, "created_ms", (json_int_t)T0,
	                      "expires_ms", (json_int_t)(T0 + HOUR), "created_by", "admin",
	                      "batch_size", batch, "max_failures", maxf);
	json_t *hosts = json_loads(hosts_json, 0, NULL);
	int rc;

	assert_non_null(t);
	assert_non_null(hosts);
	rc = f->op->task_create(f->st, t, hosts, existing);
	json_decref(t);
	json_decref(hosts);
	return rc;
}

static json_t *task(struct fx *f, const char *id, int64_t since)
{
	json_t *t;
	assert_int_equal(f->op->task_get(f->st, id, 1, since, &t), 0);
	return t;
}

static const char *row_state(struct fx *f, const char *task_id, const char *host_id)
{
	static char buf[32];
	json_t *t = task(f, task_id, 0), *h;
	size_t i;

	buf[0] = '\0';
	json_array_foreach(json_object_get(t, "hosts"), i, h)
	{
		if (strcmp(sval(h, "host_id"), host_id) == 0)
			snprintf(buf, sizeof(buf), "%s", sval(h, "state"));
	}
	json_decref(t);
	return buf;
}

static const char *task_state(struct fx *f, const char *id)
{
	static char buf[32];
	json_t *t = task(f, id, 0);
	snprintf(buf, sizeof(buf), "%s", sval(t, "state"));
	json_decref(t);
	return buf;
}

/* Takes the host's tasks; returns how many. */
static size_t take(struct fx *f, const char *host_id, int64_t now, int limit)
{
	json_t *items;
	size_t n;
	assert_int_equal(f->op->task_take(f->st, host_id, now, limit, &items), 0);
	n = json_array_size(items);
	json_decref(items);
	return n;
}

static int report(struct fx *f, const char *task_id, const char *host_id, const char *state,
                  int *done)
{
	json_t *resp = json_pack("{s:b}", "ok", strcmp(state, "ok") == 0);
	int rc = f->op->task_report(f->st, task_id, host_id, state, resp, T0 + 1, T0 + 2, done);
	json_decref(resp);
	return rc;
}

/* Compares the compact, key-sorted text of v with want. */
static void assert_json_text(const json_t *v, const char *want)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_non_null(text);
	if (strcmp(text, want) != 0) {
		print_error("got  %s\nwant %s\n", text, want);
		free(text);
		fail();
	}
	free(text);
}

static int64_t us_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int has_str(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (strcmp(json_string_value(v), s) == 0)
			return 1;
	}
	return 0;
}

/* ---- hosts ---- */

static void test_enroll_same_key_is_idempotent(void **state)
{
	struct fx *f = *state;
	json_t *h1, *h2, *ev;

	assert_int_equal(enroll_full(f, "web-01", "K1", 0, NULL, NULL, &h1), 0);
	assert_string_equal(sval(h1, "state"), "pending");
	assert_int_equal(enroll_full(f, "web-01", "K1", 0, NULL, NULL, &h2), 0);
	assert_true(json_equal(h1, h2));
	assert_int_equal(
	    f->op->events_list(f->st,
	                       &(struct store_events_query){.host_id = "web-01", .limit = 10}, &ev),
	    0);
	assert_int_equal(json_array_size(ev), 1); /* one "enrolled", not two */
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "enrolled");
	json_decref(h1);
	json_decref(h2);
	json_decref(ev);
}

static void test_enroll_other_key_is_conflict(void **state)
{
	struct fx *f = *state;
	json_t *h;

	enroll(f, "web-01");
	assert_int_equal(enroll_full(f, "web-01", "other", 1, NULL, NULL, &h), OUTPOST_E_CONFLICT);
	assert_null(h);
	h = host(f, "web-01");
	assert_string_equal(sval(h, "pubkey"), "key-web-01");
	json_decref(h);
}

static void test_enroll_revoked_is_forbidden(void **state)
{
	struct fx *f = *state;
	json_t *h;

	enroll(f, "web-01");
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_REVOKED, "stolen", T0), 0);
	assert_int_equal(enroll_full(f, "web-01", "key-web-01", 1, NULL, NULL, &h),
	                 OUTPOST_E_FORBIDDEN);
	assert_null(h);
	/* Removed, the id may enroll again. */
	assert_int_equal(f->op->host_remove(f->st, "web-01"), 0);
	assert_int_equal(enroll_full(f, "web-01", "new", 0, NULL, NULL, &h), 0);
	json_decref(h);
}

/* host_key: what every agent request is checked against, the same as host_get's. */
static void test_host_key_matches_the_row(void **state)
{
	struct fx *f = *state;
	struct store_host_key k;
	int down = 0;
	json_t *h;

	assert_int_equal(f->op->host_key(f->st, "nobody", &k), OUTPOST_E_NOT_FOUND);
	enroll(f, "web-01");
	assert_int_equal(f->op->host_seen(f->st, "web-01", T0 + 5000, "0.1.0", NULL, &down), 0);
	assert_int_equal(f->op->host_key(f->st, "web-01", &k), 0);
	h = host(f, "web-01");
	assert_string_equal(k.pubkey, "key-web-01");
	assert_string_equal(k.pubkey, sval(h, "pubkey"));
	assert_string_equal(k.state, HOST_UP);
	assert_int_equal(k.last_seen_ms, T0 + 5000);
	assert_int_equal(k.last_seen_ms, ival(h, "last_seen_ms"));
	json_decref(h);
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_REVOKED, "stolen", T0), 0);
	assert_int_equal(f->op->host_key(f->st, "web-01", &k), 0);
	assert_string_equal(k.state, HOST_REVOKED);
}

/* A rejected host stays, so that its agent, which keeps asking, cannot come back pending. */
static void test_rejected_host_stays_refused_until_accepted(void **state)
{
	struct fx *f = *state;
	json_t *h, *ev;

	assert_int_equal(enroll_full(f, "db-01", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_REJECTED, "by admin", T0 + 1),
	                 0);
	h = host(f, "db-01");
	assert_string_equal(sval(h, "state"), "rejected");
	assert_string_equal(sval(h, "pubkey"), "K");
	json_decref(h);
	/* Its key again, or another, or with a valid token: refused, and nothing changes. */
	assert_int_equal(enroll_full(f, "db-01", "K", 0, NULL, NULL, &h), OUTPOST_E_FORBIDDEN);
	assert_null(h);
	assert_int_equal(enroll_full(f, "db-01", "other", 1, NULL, NULL, &h), OUTPOST_E_FORBIDDEN);
	assert_null(h);
	assert_int_equal(f->op->host_seen(f->st, "db-01", T0 + 2, "0.1.0", NULL, NULL),
	                 OUTPOST_E_FORBIDDEN);
	h = host(f, "db-01");
	assert_string_equal(sval(h, "state"), "rejected");
	assert_string_equal(sval(h, "pubkey"), "K");
	json_decref(h);
	/* Rejecting again changes nothing; an accepted host cannot be rejected (revoke). */
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_REJECTED, "again", T0 + 3), 0);
	enroll(f, "web-01");
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_REJECTED, "", T0),
	                 OUTPOST_E_CONFLICT);
	/* Accepting undoes it, with the key it enrolled with. */
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_UP, "by admin", T0 + 4), 0);
	assert_int_equal(enroll_full(f, "db-01", "K", 0, NULL, NULL, &h), 0);
	assert_string_equal(sval(h, "state"), "up");
	json_decref(h);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = "db-01", .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 3);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "accepted");
	assert_string_equal(sval(json_array_get(ev, 1), "kind"), "rejected");
	assert_int_equal(ival(json_array_get(ev, 1), "at_ms"), T0 + 1);
	assert_string_equal(sval(json_array_get(ev, 2), "kind"), "enrolled");
	json_decref(ev);
}

static void test_enroll_with_token_is_up_with_labels(void **state)
{
	struct fx *f = *state;
	json_t *labels = json_pack("{s:s}", "role", "web"), *h;

	assert_int_equal(enroll_full(f, "web-01", "K", 1, NULL, labels, &h), 0);
	assert_string_equal(sval(h, "state"), "up");
	assert_string_equal(sval(json_object_get(h, "labels"), "role"), "web");
	assert_null(json_object_get(h, "facts")); /* the enroll answer stays small */
	json_decref(h);
	json_decref(labels);
}

static void test_enroll_pending_host_with_token_is_accepted(void **state)
{
	struct fx *f = *state;
	json_t *labels = json_pack("{s:s, s:s}", "role", "web", "dc", "sh"), *set, *h;

	assert_int_equal(enroll_full(f, "web-01", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	set = json_pack("{s:s}", "dc", "bj"); /* set by an operator while it waited */
	assert_int_equal(f->op->host_labels(f->st, "web-01", set, NULL), 0);
	assert_int_equal(enroll_full(f, "web-01", "K", 1, NULL, labels, &h), 0);
	assert_string_equal(sval(h, "state"), "up");
	assert_string_equal(sval(json_object_get(h, "labels"), "dc"), "bj");
	assert_string_equal(sval(json_object_get(h, "labels"), "role"), "web");
	json_decref(h);
	json_decref(set);
	json_decref(labels);
}

static void test_accept_moves_pending_to_up_with_event(void **state)
{
	struct fx *f = *state;
	json_t *h, *ev;

	assert_int_equal(enroll_full(f, "db-01", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_UP, "by admin", T0 + 5), 0);
	h = host(f, "db-01");
	assert_string_equal(sval(h, "state"), "up");
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = "db-01", .limit = 1},
	                       &ev),
	    0);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "accepted");
	assert_string_equal(sval(json_array_get(ev, 0), "detail"), "by admin");
	assert_int_equal(ival(json_array_get(ev, 0), "at_ms"), T0 + 5);
	/* Accepting again changes nothing and records nothing. */
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_UP, "again", T0 + 6), 0);
	json_decref(ev);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = "db-01", .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 2);
	json_decref(ev);
	json_decref(h);
}

static void test_set_state_refuses_leaving_revoked(void **state)
{
	struct fx *f = *state;

	enroll(f, "web-01");
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_REVOKED, "", T0), 0);
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_UP, "", T0),
	                 OUTPOST_E_CONFLICT);
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_PENDING, "", T0),
	                 OUTPOST_E_CONFLICT);
	assert_int_equal(f->op->host_set_state(f->st, "web-01", "gone", "", T0),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(f->op->host_set_state(f->st, "nope", HOST_UP, "", T0),
	                 OUTPOST_E_NOT_FOUND);
}

static void test_labels_set_and_remove(void **state)
{
	struct fx *f = *state;
	json_t *set = json_pack("{s:s, s:s, s:s}", "role", "web", "dc", "sh", "tier", "1");
	json_t *set2 = json_pack("{s:s}", "dc", "bj"), *rm = json_pack("[s, s]", "tier", "absent");
	json_t *h;

	enroll(f, "web-01");
	assert_int_equal(f->op->host_labels(f->st, "web-01", set, NULL), 0);
	assert_int_equal(f->op->host_labels(f->st, "web-01", set2, rm), 0);
	h = host(f, "web-01");
	assert_json_text(json_object_get(h, "labels"), "{\"dc\":\"bj\",\"role\":\"web\"}");
	assert_int_equal(f->op->host_labels(f->st, "nope", set, NULL), OUTPOST_E_NOT_FOUND);
	json_decref(h);
	json_decref(set);
	json_decref(set2);
	json_decref(rm);
}

static void test_labels_refuse_fact_names_and_non_strings(void **state)
{
	struct fx *f = *state;
	json_t *os = json_pack("{s:s}", "os", "windows"), *num = json_pack("{s:i}", "n", 1);

	enroll(f, "web-01");
	assert_int_equal(f->op->host_labels(f->st, "web-01", os, NULL), OUTPOST_E_BAD_ARGS);
	assert_int_equal(f->op->host_labels(f->st, "web-01", num, NULL), OUTPOST_E_BAD_ARGS);
	json_decref(os);
	json_decref(num);
}

static void test_host_list_flattens_facts_into_attrs(void **state)
{
	struct fx *f = *state;
	json_t *facts = json_loads("{\"os\":{\"id\":\"debian\",\"version_id\":\"12\"},"
	                           "\"kernel\":{\"release\":\"6.1\",\"machine\":\"x86_64\"},"
	                           "\"cpu\":{\"count\":2},\"disks\":[{\"name\":\"sda\"}]}",
	                           0, NULL);
	json_t *labels = json_pack("{s:s, s:s}", "role", "web", "os", "spoofed");
	json_t *hosts, *h;

	assert_int_equal(enroll_full(f, "web-02", "K2", 1, NULL, NULL, &h), 0);
	json_decref(h);
	assert_int_equal(enroll_full(f, "web-01", "K1", 1, facts, labels, &h), 0);
	json_decref(h);
	assert_int_equal(f->op->host_list(f->st, &hosts), 0);
	assert_int_equal(json_array_size(hosts), 2);
	h = json_array_get(hosts, 0);
	assert_string_equal(sval(h, "id"), "web-01"); /* sorted by id */
	assert_null(json_object_get(h, "facts"));
	/* The label "os" is kept in labels but does not shadow the fact. */
	assert_json_text(json_object_get(h, "attrs"),
	                 "{\"agent_version\":\"0.1.0\",\"arch\":\"x86_64\",\"cpus\":\"2\","
	                 "\"hostname\":\"web-01\",\"kernel\":\"6.1\",\"os\":\"debian\","
	                 "\"os_version\":\"12\",\"role\":\"web\"}");
	assert_string_equal(sval(json_object_get(h, "labels"), "os"), "spoofed");
	/* Facts are kept whole for host_get. */
	h = host(f, "web-01");
	assert_int_equal(ival(json_object_get(json_object_get(h, "facts"), "cpu"), "count"), 2);
	json_decref(h);
	json_decref(hosts);
	json_decref(facts);
	json_decref(labels);
}

static void test_host_page_walks_every_host_in_id_order(void **state)
{
	struct fx *f = *state;
	const char *ids[] = {"c", "a", "e", "b", "d"};
	json_t *page, *h;
	char after[16] = "";
	char seen[16] = "";

	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(enroll_full(f, ids[i], ids[i], 1, NULL, NULL, &h), 0);
		json_decref(h);
	}
	for (int n = 0; n < 3; n++) {
		assert_int_equal(f->op->host_page(f->st, after, 2, &page), 0);
		for (size_t i = 0; i < json_array_size(page); i++) {
			h = json_array_get(page, i);
			strcat(seen, sval(h, "id"));
			snprintf(after, sizeof(after), "%s", sval(h, "id"));
			assert_non_null(json_object_get(h, "attrs"));
		}
		assert_int_equal(json_array_size(page), n < 2 ? 2 : 1);
		json_decref(page);
	}
	assert_string_equal(seen, "abcde");
}

/* The alert history is newest first and pruned by age. */
static void test_alert_history(void **state)
{
	struct fx *f = *state;
	json_t *list, *e;
	int64_t n;

	e = json_pack("{s:s, s:s, s:s, s:{s:i}}", "rule_id", "b", "host_id", "h", "kind", "firing",
	              "detail", "x", 1);
	assert_int_equal(f->op->alert_log_add(f->st, e, T0 - 2 * HOUR), 0);
	json_object_set_new(e, "kind", json_string("resolved"));
	assert_int_equal(f->op->alert_log_add(f->st, e, T0), 0);
	json_decref(e);
	e = json_pack("{s:s, s:s}", "rule_id", "other", "kind", "firing");
	assert_int_equal(f->op->alert_log_add(f->st, e, T0), 0);
	json_decref(e);
	assert_int_equal(f->op->alert_log_list(f->st, "b", 10, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(sval(json_array_get(list, 0), "kind"), "resolved");
	assert_int_equal(ival(json_object_get(json_array_get(list, 1), "detail"), "x"), 1);
	json_decref(list);
	assert_int_equal(f->op->alert_log_prune(f->st, T0 - HOUR, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f->op->alert_log_list(f->st, NULL, 10, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_true(json_is_null(json_object_get(json_array_get(list, 0), "host_id")));
	json_decref(list);
}

static void test_seen_flips_down_to_up_with_event(void **state)
{
	struct fx *f = *state;
	json_t *facts = json_loads("{\"os\":{\"id\":\"alpine\"}}", 0, NULL), *ids, *h, *ev, *hosts;
	int was_down = -1;

	enroll(f, "web-01");
	assert_int_equal(f->op->host_seen(f->st, "web-01", T0 + 1000, NULL, NULL, &was_down), 0);
	assert_int_equal(was_down, 0);
	assert_int_equal(f->op->hosts_mark_down(f->st, T0 + 5000, T0 + 20000, NULL, NULL, &ids), 0);
	json_decref(ids);
	assert_int_equal(f->op->host_seen(f->st, "web-01", T0 + 30000, "0.2.0", facts, &was_down),
	                 0);
	assert_int_equal(was_down, 1);
	h = host(f, "web-01");
	assert_string_equal(sval(h, "state"), "up");
	assert_string_equal(sval(h, "version"), "0.2.0");
	assert_int_equal(ival(h, "last_seen_ms"), T0 + 30000);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = "web-01", .limit = 1},
	                       &ev),
	    0);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "up");
	assert_int_equal(f->op->host_list(f->st, &hosts), 0);
	assert_string_equal(sval(json_object_get(json_array_get(hosts, 0), "attrs"), "os"),
	                    "alpine");
	json_decref(hosts);
	json_decref(ev);
	json_decref(h);
	json_decref(facts);
}

static void test_seen_refuses_pending_revoked_and_unknown(void **state)
{
	struct fx *f = *state;
	json_t *h;
	int was_down;

	assert_int_equal(enroll_full(f, "p", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	enroll(f, "r");
	assert_int_equal(f->op->host_set_state(f->st, "r", HOST_REVOKED, "", T0), 0);
	assert_int_equal(f->op->host_seen(f->st, "p", T0, NULL, NULL, &was_down),
	                 OUTPOST_E_UNAVAILABLE);
	assert_int_equal(f->op->host_seen(f->st, "r", T0, NULL, NULL, &was_down),
	                 OUTPOST_E_FORBIDDEN);
	assert_int_equal(f->op->host_seen(f->st, "x", T0, NULL, NULL, &was_down),
	                 OUTPOST_E_NOT_FOUND);
}

static void test_mark_down_takes_only_stale_up_hosts(void **state)
{
	struct fx *f = *state;
	json_t *ids, *h, *ev;
	int was_down;

	enroll(f, "a");
	enroll(f, "b");
	assert_int_equal(enroll_full(f, "c", "K", 0, NULL, NULL, &h), 0); /* pending: not up */
	json_decref(h);
	assert_int_equal(f->op->host_seen(f->st, "b", T0 + 10000, NULL, NULL, &was_down), 0);
	assert_int_equal(f->op->hosts_mark_down(f->st, T0 + 5000, T0 + 12000, NULL, NULL, &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	assert_string_equal(json_string_value(json_array_get(ids, 0)), "a");
	json_decref(ids);
	h = host(f, "a");
	assert_string_equal(sval(h, "state"), "down");
	json_decref(h);
	assert_int_equal(f->op->events_list(
	                     f->st, &(struct store_events_query){.host_id = "a", .limit = 1}, &ev),
	                 0);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "down");
	assert_string_equal(sval(json_array_get(ev, 0), "detail"), "no beat for 12000 ms");
	json_decref(ev);
	/* Down already: not again. */
	assert_int_equal(f->op->hosts_mark_down(f->st, T0 + 5000, T0 + 13000, NULL, NULL, &ids), 0);
	assert_int_equal(json_array_size(ids), 0);
	json_decref(ids);
}

/* Many hosts' last contact in one statement: only those up, never backwards, unknown ids
 * ignored; a bad argument refused. */
static void test_hosts_touch_writes_last_seen_of_up_hosts_only(void **state)
{
	struct fx *f = *state;
	json_t *ids = json_pack("[s, s, s, s]", "a", "b", "c", "nobody"), *h;
	int n = -1, was_down;

	enroll(f, "a");
	enroll(f, "b");
	assert_int_equal(enroll_full(f, "c", "K", 0, NULL, NULL, &h), 0); /* pending */
	json_decref(h);
	assert_int_equal(f->op->host_seen(f->st, "b", T0 + 90000, NULL, NULL, &was_down), 0);
	assert_int_equal(f->op->hosts_touch(f->st, ids, T0 + 60000, &n), 0);
	assert_int_equal(n, 2);
	h = host(f, "a");
	assert_int_equal(json_integer_value(json_object_get(h, "last_seen_ms")), T0 + 60000);
	json_decref(h);
	h = host(f, "b"); /* newer already: kept */
	assert_int_equal(json_integer_value(json_object_get(h, "last_seen_ms")), T0 + 90000);
	json_decref(h);
	h = host(f, "c");
	assert_string_equal(sval(h, "state"), "pending");
	assert_true(json_integer_value(json_object_get(h, "last_seen_ms")) < T0 + 60000);
	json_decref(h);
	json_decref(ids);
	ids = json_array();
	assert_int_equal(f->op->hosts_touch(f->st, ids, T0, &n), 0);
	assert_int_equal(n, 0);
	json_decref(ids);
	assert_int_equal(f->op->hosts_touch(f->st, NULL, T0, &n), OUTPOST_E_BAD_ARGS);
}

static int keep_named(void *arg, const char *id)
{
	return strcmp(arg, id) == 0;
}

static void test_mark_down_spares_the_hosts_keep_vouches_for(void **state)
{
	struct fx *f = *state;
	json_t *ids, *h;

	enroll(f, "a");
	enroll(f, "b");
	assert_int_equal(
	    f->op->hosts_mark_down(f->st, T0 + 5000, T0 + 12000, keep_named, "b", &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	assert_string_equal(json_string_value(json_array_get(ids, 0)), "a");
	json_decref(ids);
	h = host(f, "b");
	assert_string_equal(sval(h, "state"), "up");
	json_decref(h);
	/* Once keep no longer vouches for it, the same sweep takes it. */
	assert_int_equal(
	    f->op->hosts_mark_down(f->st, T0 + 5000, T0 + 13000, keep_named, "-", &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	assert_string_equal(json_string_value(json_array_get(ids, 0)), "b");
	json_decref(ids);
}

static void test_events_list_filters_by_host_newest_first(void **state)
{
	struct fx *f = *state;
	json_t *ev;

	enroll(f, "a");
	enroll(f, "b");
	assert_int_equal(f->op->host_set_state(f->st, "a", HOST_REVOKED, "r", T0 + 1), 0);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = NULL, .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 3);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "revoked");
	json_decref(ev);
	assert_int_equal(f->op->events_list(
	                     f->st, &(struct store_events_query){.host_id = "b", .limit = 10}, &ev),
	                 0);
	assert_int_equal(json_array_size(ev), 1);
	json_decref(ev);
	assert_int_equal(f->op->events_list(
	                     f->st, &(struct store_events_query){.host_id = NULL, .limit = 0}, &ev),
	                 OUTPOST_E_BAD_ARGS);
}

/* An event for events_add: kind, ts, and the dedupe key (NULL: none). */
static json_t *ev_new(const char *kind, int64_t ts, const char *key)
{
	json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:{s:s}}", "kind", kind, "severity", "warning",
	                      "message", "something changed", "ts", (json_int_t)ts, "data", "after",
	                      "sha256:ab");

	if (key)
		json_object_set_new(e, "key", json_string(key));
	return e;
}

static void test_events_add_stores_a_key_once_and_filters(void **state)
{
	struct fx *f = *state;
	json_t *evs = json_array(), *ev, *ids;
	int stored;

	json_array_append_new(evs, ev_new("security.passwd_changed", T0 + 10, "k1"));
	json_array_append_new(evs, ev_new("security.firewall_changed", T0 + 20, "k2"));
	json_array_append_new(evs, ev_new("securityx.other", T0 + 30, "k3"));
	assert_int_equal(f->op->events_add(f->st, "web-1", "agent", evs, &stored), 0);
	assert_int_equal(stored, 3);
	/* A replay stores nothing; a new key in the same call does. */
	json_array_append_new(evs, ev_new("cleanup.freed", T0 + 40, "k4"));
	assert_int_equal(f->op->events_add(f->st, "web-2", "agent", evs, &stored), 0);
	assert_int_equal(stored, 1);
	json_decref(evs);

	/* "security" takes security.* but not securityx.*. */
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.kind = "security", .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 2);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "security.firewall_changed");
	assert_string_equal(sval(json_array_get(ev, 0), "severity"), "warning");
	assert_string_equal(sval(json_array_get(ev, 0), "source"), "agent");
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(json_array_get(ev, 0), "data"), "after")),
	                    "sha256:ab");
	json_decref(ev);
	/* Time window, then one page after another by id. */
	assert_int_equal(
	    f->op->events_list(
	        f->st,
	        &(struct store_events_query){.since_ms = T0 + 20, .until_ms = T0 + 40, .limit = 10},
	        &ev),
	    0);
	assert_int_equal(json_array_size(ev), 2);
	json_decref(ev);
	assert_int_equal(f->op->events_list(f->st, &(struct store_events_query){.limit = 3}, &ev),
	                 0);
	assert_int_equal(json_array_size(ev), 3);
	{
		int64_t last = json_integer_value(json_object_get(json_array_get(ev, 2), "id"));
		json_decref(ev);
		assert_int_equal(
		    f->op->events_list(
		        f->st, &(struct store_events_query){.before_id = last, .limit = 3}, &ev),
		    0);
		assert_int_equal(json_array_size(ev), 1);
		assert_string_equal(sval(json_array_get(ev, 0), "kind"), "security.passwd_changed");
		json_decref(ev);
	}
	/* A selector's matches: an array of ids, an empty one matching nothing. */
	ids = json_pack("[s]", "web-2");
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_ids = ids, .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 1);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "cleanup.freed");
	json_decref(ev);
	json_array_clear(ids);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_ids = ids, .limit = 10},
	                       &ev),
	    0);
	assert_int_equal(json_array_size(ev), 0);
	json_decref(ev);
	json_decref(ids);
}

static void test_remove_cancels_the_hosts_queued_rows(void **state)
{
	struct fx *f = *state;
	json_t *h;

	enroll(f, "a");
	assert_int_equal(enroll_full(f, "b", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "ok", NULL), 0);
	assert_string_equal(task_state(f, "t1"), "running");
	assert_int_equal(f->op->host_remove(f->st, "b"), 0); /* a rejected pending host */
	assert_string_equal(row_state(f, "t1", "b"), "cancelled");
	assert_string_equal(task_state(f, "t1"), "done");
	assert_int_equal(f->op->host_get(f->st, "b", &h), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->host_remove(f->st, "b"), OUTPOST_E_NOT_FOUND);
}

static void test_hostile_ids_are_data(void **state)
{
	struct fx *f = *state;
	const char *id = "x'); DROP TABLE hosts; --";
	json_t *hosts;

	enroll(f, id);
	assert_int_equal(f->op->host_list(f->st, &hosts), 0);
	assert_int_equal(json_array_size(hosts), 1);
	assert_string_equal(sval(json_array_get(hosts, 0), "id"), id);
	json_decref(hosts);
}

/* ---- tokens ---- */

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static json_t *token(const char *id, const char *hash, const char *kind, int64_t expires)
{
	json_t *t = json_pack("{s:s, s:s, s:s, s:{s:s}, s:I, s:I, s:s}", "id", id, "hash", hash,
	                      "kind", kind, "labels", "role", "web", "created_ms", (json_int_t)T0,
	                      "expires_ms", (json_int_t)expires, "created_by", "admin");
	if (strcmp(kind, "operator") == 0)
		json_object_set_new(t, "role", json_string("operator"));
	return t;
}

static void test_token_add_and_find_by_hash(void **state)
{
	struct fx *f = *state;
	json_t *t = token("tok1", HASH_A, "enroll", 0), *got;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_find(f->st, HASH_A, T0, &got), 0);
	assert_string_equal(sval(got, "id"), "tok1");
	assert_string_equal(sval(got, "kind"), "enroll");
	assert_string_equal(sval(json_object_get(got, "labels"), "role"), "web");
	assert_null(json_object_get(got, "hash"));
	json_decref(got);
	assert_int_equal(f->op->token_find(f->st, HASH_B, T0, &got), OUTPOST_E_NOT_FOUND);
	assert_null(got);
	json_decref(t);
}

static void test_token_add_is_idempotent_by_id(void **state)
{
	struct fx *f = *state;
	json_t *t = token("tok1", HASH_A, "operator", 0),
	       *t2 = token("tok1", HASH_B, "operator", 0);
	json_t *t3 = token("tok2", HASH_A, "operator", 0);

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_add(f->st, t2), OUTPOST_E_CONFLICT); /* same id */
	assert_int_equal(f->op->token_add(f->st, t3), OUTPOST_E_CONFLICT); /* same hash */
	json_decref(t);
	json_decref(t2);
	json_decref(t3);
}

static void test_token_add_refuses_what_is_not_a_hash(void **state)
{
	struct fx *f = *state;
	json_t *t = token("tok1", "s3cret-plaintext", "enroll", 0);
	json_t *r = token("tok2", HASH_A, "operator", 0);

	assert_int_equal(f->op->token_add(f->st, t), OUTPOST_E_BAD_ARGS);
	json_object_set_new(r, "role", json_string("root"));
	assert_int_equal(f->op->token_add(f->st, r), OUTPOST_E_BAD_ARGS);
	json_decref(t);
	json_decref(r);
}

static void test_token_find_ignores_expired(void **state)
{
	struct fx *f = *state;
	json_t *t = token("tok1", HASH_A, "enroll", T0 + 1000), *got;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_find(f->st, HASH_A, T0 + 999, &got), 0);
	json_decref(got);
	assert_int_equal(f->op->token_find(f->st, HASH_A, T0 + 1000, &got), OUTPOST_E_NOT_FOUND);
	json_decref(t);
}

static void test_token_revoke_hides_it(void **state)
{
	struct fx *f = *state;
	json_t *t = token("tok1", HASH_A, "operator", 0), *got, *list;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_revoke(f->st, "tok1"), 0);
	assert_int_equal(f->op->token_find(f->st, HASH_A, T0, &got), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->token_revoke(f->st, "nope"), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->token_list(f->st, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_true(json_is_true(json_object_get(json_array_get(list, 0), "revoked")));
	assert_null(json_object_get(json_array_get(list, 0), "hash"));
	assert_string_equal(sval(json_array_get(list, 0), "role"), "operator");
	json_decref(list);
	json_decref(t);
}

/* ---- tasks ---- */

static void test_task_create_is_idempotent_by_id(void **state)
{
	struct fx *f = *state;
	json_t *ex;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\"]", 0, -1, &ex), 0);
	assert_null(ex);
	assert_int_equal(task_new(f, "t1", "[\"c\"]", 0, -1, &ex), OUTPOST_E_CONFLICT);
	assert_non_null(ex);
	assert_string_equal(sval(ex, "id"), "t1");
	assert_int_equal(ival(ex, "total"), 2); /* the first task, unchanged */
	assert_int_equal(json_array_size(json_object_get(ex, "hosts")), 2);
	json_decref(ex);
}

static void test_task_create_refuses_a_host_twice(void **state)
{
	struct fx *f = *state;
	json_t *t;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"a\"]", 0, -1, NULL), OUTPOST_E_BAD_ARGS);
	assert_int_equal(f->op->task_get(f->st, "t1", 0, 0, &t), OUTPOST_E_NOT_FOUND);
}

static void test_task_create_with_no_hosts_is_done(void **state)
{
	struct fx *f = *state;

	assert_int_equal(task_new(f, "t1", "[]", 0, -1, NULL), 0);
	assert_string_equal(task_state(f, "t1"), "done");
}

static void test_task_get_shape_and_zero_counts(void **state)
{
	struct fx *f = *state;
	json_t *t, *c, *h;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 0, -1, NULL), 0);
	t = task(f, "t1", 0);
	assert_string_equal(sval(t, "state"), "running");
	assert_string_equal(sval(json_object_get(t, "args"), "cmd"), "uptime");
	assert_int_equal(ival(t, "total"), 3);
	assert_int_equal(ival(t, "expires_ms"), T0 + HOUR);
	c = json_object_get(t, "counts");
	assert_int_equal(json_object_size(c), 10);
	assert_int_equal(ival(c, "queued"), 3);
	assert_int_equal(ival(c, "refused"), 0);
	h = json_array_get(json_object_get(t, "hosts"), 0);
	assert_string_equal(sval(h, "host_id"), "a"); /* hosts in the order given */
	assert_true(json_is_null(json_object_get(h, "response")));
	assert_true(json_is_null(json_object_get(h, "started_ms")));
	json_decref(t);
}

static void test_task_take_marks_sent(void **state)
{
	struct fx *f = *state;
	json_t *items, *it, *t;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\"]", 0, -1, NULL), 0);
	assert_int_equal(f->op->task_take(f->st, "a", T0 + 10, 10, &items), 0);
	assert_int_equal(json_array_size(items), 1);
	it = json_object_get(json_array_get(items, 0), "task");
	assert_string_equal(sval(it, "task_id"), "t1");
	assert_string_equal(sval(it, "host_id"), "a");
	assert_string_equal(sval(it, "plugin"), "exec");
	assert_string_equal(sval(json_object_get(it, "args"), "cmd"), "uptime");
	assert_int_equal(ival(it, "timeout_ms"), 60000);
	assert_int_equal(ival(it, "issued_ms"), T0 + 10);
	assert_int_equal(ival(it, "expires_ms"), T0 + HOUR);
	json_decref(items);
	assert_string_equal(row_state(f, "t1", "a"), "sent");
	assert_string_equal(row_state(f, "t1", "b"), "queued");
	assert_int_equal(take(f, "a", T0 + 20, 10), 0); /* handed out once */
	t = task(f, "t1", 0);
	assert_int_equal(ival(json_object_get(t, "counts"), "sent"), 1);
	json_decref(t);
}

/* After an agent restart it asks for what it was sent and never finished, again. */
static void test_task_resume_hands_out_sent_and_running_again(void **state)
{
	struct fx *f = *state;
	json_t *items;
	int done = 0;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t2", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t3", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0 + 10, 10), 3);
	assert_int_equal(report(f, "t2", "a", "running", &done), 0);
	assert_int_equal(report(f, "t3", "a", "ok", &done), 0);
	assert_int_equal(f->op->task_resume(f->st, "a", T0 + 20, 10, &items), 0);
	assert_int_equal(json_array_size(items), 2); /* t1 sent, t2 running; t3 is final */
	assert_string_equal(sval(json_object_get(json_array_get(items, 0), "task"), "task_id"),
	                    "t1");
	assert_string_equal(sval(json_object_get(json_array_get(items, 1), "task"), "task_id"),
	                    "t2");
	json_decref(items);
	/* Unchanged by it: still sent and running, nothing handed out as new. */
	assert_string_equal(row_state(f, "t1", "a"), "sent");
	assert_string_equal(row_state(f, "t2", "a"), "running");
	assert_int_equal(f->op->task_resume(f->st, "b", T0 + 20, 10, &items), 0);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
}

static void test_task_take_skips_expired_tasks(void **state)
{
	struct fx *f = *state;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0 + HOUR, 10), 0);
	assert_string_equal(row_state(f, "t1", "a"), "queued");
}

static void test_task_take_respects_limit_oldest_first(void **state)
{
	struct fx *f = *state;
	json_t *items;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t2", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t3", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(f->op->task_take(f->st, "a", T0, 2, &items), 0);
	assert_int_equal(json_array_size(items), 2);
	assert_string_equal(sval(json_object_get(json_array_get(items, 0), "task"), "task_id"),
	                    "t1");
	assert_string_equal(sval(json_object_get(json_array_get(items, 1), "task"), "task_id"),
	                    "t2");
	json_decref(items);
	assert_int_equal(take(f, "a", T0, 2), 1);
	assert_int_equal(f->op->task_take(f->st, "a", T0, 0, &items), OUTPOST_E_BAD_ARGS);
}

static void test_task_take_waits_for_the_hosts_batch(void **state)
{
	struct fx *f = *state;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 2, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(take(f, "c", T0, 10), 0); /* batch 1, not yet released */
}

static void test_task_report_moves_forward_only(void **state)
{
	struct fx *f = *state;
	json_t *t, *h;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "running", NULL), 0);
	assert_string_equal(row_state(f, "t1", "a"), "running");
	assert_int_equal(report(f, "t1", "a", "ok", NULL), 0);
	assert_int_equal(report(f, "t1", "a", "running", NULL), 0); /* late: ignored */
	assert_int_equal(report(f, "t1", "a", "failed", NULL), 0);  /* final stays */
	t = task(f, "t1", 0);
	h = json_array_get(json_object_get(t, "hosts"), 0);
	assert_string_equal(sval(h, "state"), "ok");
	assert_true(json_is_true(json_object_get(json_object_get(h, "response"), "ok")));
	assert_int_equal(ival(h, "started_ms"), T0 + 1);
	assert_int_equal(ival(h, "finished_ms"), T0 + 2);
	json_decref(t);
	assert_int_equal(report(f, "t1", "a", "cancelled", NULL), OUTPOST_E_BAD_ARGS);
	assert_int_equal(report(f, "t1", "a", "bogus", NULL), OUTPOST_E_BAD_ARGS);
}

static void test_task_report_for_unsent_row_is_not_found(void **state)
{
	struct fx *f = *state;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(report(f, "t1", "a", "ok", NULL), OUTPOST_E_NOT_FOUND); /* queued */
	assert_int_equal(report(f, "t1", "z", "ok", NULL), OUTPOST_E_NOT_FOUND);
	assert_int_equal(report(f, "t9", "a", "ok", NULL), OUTPOST_E_NOT_FOUND);
	assert_string_equal(row_state(f, "t1", "a"), "queued");
}

static void test_task_report_sets_done_when_all_hosts_final(void **state)
{
	struct fx *f = *state;
	int done = -1;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "ok", &done), 0);
	assert_int_equal(done, 0);
	assert_string_equal(task_state(f, "t1"), "running");
	assert_int_equal(report(f, "t1", "b", "timeout", &done), 0);
	assert_int_equal(done, 1);
	assert_string_equal(task_state(f, "t1"), "done");
	assert_int_equal(report(f, "t1", "b", "ok", &done), 0); /* a repeat: nothing new */
	assert_int_equal(done, 0);
}

static void test_task_cancel_cancels_queued_and_sent(void **state)
{
	struct fx *f = *state;
	int done;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "running", NULL), 0);
	assert_int_equal(f->op->task_cancel(f->st, "t1", T0 + 5), 0);
	assert_string_equal(row_state(f, "t1", "a"), "running");
	assert_string_equal(row_state(f, "t1", "b"), "cancelled");
	assert_string_equal(row_state(f, "t1", "c"), "cancelled");
	assert_string_equal(task_state(f, "t1"), "running"); /* a still runs */
	assert_int_equal(take(f, "c", T0, 10), 0);
	assert_int_equal(report(f, "t1", "a", "ok", &done), 0);
	assert_int_equal(done, 1);
	assert_string_equal(task_state(f, "t1"), "cancelled");
	assert_int_equal(f->op->task_cancel(f->st, "t1", T0 + 6), 0); /* idempotent */
	assert_int_equal(f->op->task_cancel(f->st, "t9", T0), OUTPOST_E_NOT_FOUND);
}

static void test_task_cancel_of_finished_task_changes_nothing(void **state)
{
	struct fx *f = *state;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "ok", NULL), 0);
	assert_int_equal(f->op->task_cancel(f->st, "t1", T0 + 5), 0);
	assert_string_equal(task_state(f, "t1"), "done");
}

static void test_tasks_expire_queued_and_sent_rows(void **state)
{
	struct fx *f = *state;
	json_t *ids;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t2", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 1), 1); /* t1 */
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "b", "ok", NULL), 0);
	assert_int_equal(f->op->tasks_expire(f->st, T0 + HOUR - 1, &ids), 0);
	assert_int_equal(json_array_size(ids), 0);
	json_decref(ids);
	assert_int_equal(f->op->tasks_expire(f->st, T0 + HOUR, &ids), 0);
	assert_int_equal(json_array_size(ids), 2);
	assert_true(has_str(ids, "t1") && has_str(ids, "t2"));
	json_decref(ids);
	assert_string_equal(row_state(f, "t1", "a"), "expired");
	assert_string_equal(row_state(f, "t1", "b"), "ok");
	assert_string_equal(row_state(f, "t1", "c"), "expired");
	assert_string_equal(task_state(f, "t1"), "done");
	assert_string_equal(task_state(f, "t2"), "done");
}

static void test_tasks_expire_loses_rows_running_past_timeout(void **state)
{
	struct fx *f = *state;
	json_t *ids;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "running", NULL), 0);
	assert_int_equal(f->op->tasks_expire(f->st, T0 + HOUR + 60000, &ids), 0);
	assert_int_equal(json_array_size(ids), 0); /* it may still end within its timeout */
	json_decref(ids);
	assert_int_equal(f->op->tasks_expire(f->st, T0 + HOUR + 60000 + 60000, &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	json_decref(ids);
	assert_string_equal(row_state(f, "t1", "a"), "lost");
	assert_string_equal(task_state(f, "t1"), "done");
}

static void test_tasks_advance_releases_next_batch(void **state)
{
	struct fx *f = *state;
	json_t *woken;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\", \"d\", \"e\"]", 2, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "ok", NULL), 0);
	assert_int_equal(f->op->tasks_advance(f->st, T0, &woken), 0);
	assert_int_equal(json_array_size(woken), 0); /* b still runs */
	json_decref(woken);
	assert_int_equal(report(f, "t1", "b", "failed", NULL), 0); /* no failure limit */
	assert_int_equal(f->op->tasks_advance(f->st, T0, &woken), 0);
	assert_int_equal(json_array_size(woken), 2);
	assert_true(has_str(woken, "c") && has_str(woken, "d"));
	json_decref(woken);
	assert_int_equal(take(f, "c", T0, 10), 1);
	assert_int_equal(take(f, "e", T0, 10), 0);
	assert_int_equal(f->op->task_hosts_waiting(f->st, "t1", &woken), 0);
	assert_int_equal(json_array_size(woken), 1); /* d: released, not yet taken */
	assert_string_equal(json_string_value(json_array_get(woken, 0)), "d");
	json_decref(woken);
}

static void test_tasks_advance_cancels_rest_over_max_failures(void **state)
{
	struct fx *f = *state;
	json_t *woken, *t;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\", \"d\"]", 2, 1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "failed", NULL), 0);
	assert_int_equal(report(f, "t1", "b", "refused", NULL), 0); /* 2 > 1 */
	assert_int_equal(f->op->tasks_advance(f->st, T0 + 9, &woken), 0);
	assert_int_equal(json_array_size(woken), 0);
	json_decref(woken);
	assert_string_equal(row_state(f, "t1", "c"), "cancelled");
	assert_string_equal(row_state(f, "t1", "d"), "cancelled");
	t = task(f, "t1", 0);
	assert_string_equal(sval(t, "state"), "done");
	assert_int_equal(ival(json_object_get(t, "counts"), "cancelled"), 2);
	json_decref(t);
}

static void test_tasks_advance_within_max_failures_goes_on(void **state)
{
	struct fx *f = *state;
	json_t *woken;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 2, 1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "a", "failed", NULL), 0);
	assert_int_equal(report(f, "t1", "b", "ok", NULL), 0);
	assert_int_equal(f->op->tasks_advance(f->st, T0, &woken), 0);
	assert_int_equal(json_array_size(woken), 1);
	json_decref(woken);
}

static void test_task_get_since_returns_rows_changed_after(void **state)
{
	struct fx *f = *state;
	json_t *t;
	json_int_t seq;

	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 0, -1, NULL), 0);
	t = task(f, "t1", 0);
	assert_int_equal(json_array_size(json_object_get(t, "hosts")), 3);
	seq = ival(t, "seq");
	json_decref(t);
	t = task(f, "t1", seq);
	assert_int_equal(json_array_size(json_object_get(t, "hosts")), 0);
	json_decref(t);
	assert_int_equal(take(f, "b", T0, 10), 1);
	assert_int_equal(report(f, "t1", "b", "ok", NULL), 0);
	t = task(f, "t1", seq);
	assert_int_equal(ival(t, "seq"), seq + 2); /* sent, then ok */
	assert_int_equal(json_array_size(json_object_get(t, "hosts")), 1);
	assert_string_equal(sval(json_array_get(json_object_get(t, "hosts"), 0), "host_id"), "b");
	assert_int_equal(ival(json_array_get(json_object_get(t, "hosts"), 0), "seq"), seq + 2);
	json_decref(t);
	assert_int_equal(f->op->task_get(f->st, "t1", 0, 0, &t), 0);
	assert_null(json_object_get(t, "hosts"));
	json_decref(t);
}

static void test_task_list_newest_first_with_counts(void **state)
{
	struct fx *f = *state;
	json_t *list;

	assert_int_equal(task_new(f, "t1", "[\"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t2", "[\"a\", \"b\"]", 0, -1, NULL), 0);
	assert_int_equal(f->op->task_list(f->st, 10, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(sval(json_array_get(list, 0), "id"), "t2");
	assert_int_equal(ival(json_array_get(list, 0), "total"), 2);
	assert_null(json_object_get(json_array_get(list, 0), "hosts"));
	json_decref(list);
	assert_int_equal(f->op->task_list(f->st, 1, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
}

static void test_task_hosts_waiting_after_restart(void **state)
{
	struct fx *f = *state;
	char msg[256];
	json_t *ids;

	assert_int_equal(task_new(f, "t1", "[\"b\", \"a\"]", 0, -1, NULL), 0);
	assert_int_equal(task_new(f, "t2", "[\"a\", \"c\"]", 1, -1, NULL), 0);
	f->op->close(f->st); /* state survives a restart */
	assert_int_equal(fx_open(f, msg, sizeof(msg)), 0);
	assert_int_equal(f->op->task_hosts_waiting(f->st, NULL, &ids), 0);
	assert_json_text(ids, "[\"a\",\"b\"]"); /* c: in batch 1 */
	json_decref(ids);
	assert_int_equal(f->op->task_hosts_waiting(f->st, "t9", &ids), OUTPOST_E_NOT_FOUND);
}

/* ---- audit, stats ---- */

static void test_audit_newest_first(void **state)
{
	struct fx *f = *state;
	json_t *d = json_pack("{s:s}", "target", "role=web"), *list, *e;

	assert_int_equal(f->op->audit_add(f->st, "admin", "task.create", "t1", d, T0), 0);
	assert_int_equal(f->op->audit_add(f->st, "admin", "host.revoke", "web-01", NULL, T0 + 1),
	                 0);
	assert_int_equal(f->op->audit_list(f->st, 10, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	e = json_array_get(list, 0);
	assert_string_equal(sval(e, "action"), "host.revoke");
	assert_true(json_is_null(json_object_get(e, "detail")));
	e = json_array_get(list, 1);
	assert_string_equal(sval(e, "actor"), "admin");
	assert_string_equal(sval(e, "target"), "t1");
	assert_int_equal(ival(e, "at_ms"), T0);
	assert_true(json_equal(json_object_get(e, "detail"), d));
	json_decref(list);
	assert_int_equal(f->op->audit_add(f->st, "", "x", NULL, NULL, T0), OUTPOST_E_BAD_ARGS);
	json_decref(d);
}

static void test_stats_count_hosts_tasks_and_queue(void **state)
{
	struct fx *f = *state;
	json_t *st, *h;

	enroll(f, "a");
	enroll(f, "b");
	assert_int_equal(enroll_full(f, "c", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	assert_int_equal(task_new(f, "t1", "[\"a\", \"b\", \"c\"]", 2, -1, NULL), 0);
	assert_int_equal(take(f, "a", T0, 10), 1);
	assert_int_equal(f->op->stats(f->st, &st), 0);
	assert_json_text(st, "{\"hosts\":{\"down\":0,\"pending\":1,\"rejected\":0,"
	                     "\"revoked\":0,\"up\":2},"
	                     "\"queue_depth\":1,\"tasks_running\":1}");
	json_decref(st);
}

/* ---- timings for bench/fanout (printed, not asserted) ---- */

static void test_fanout_1000_hosts_timing(void **state)
{
	struct fx *f = *state;
	json_t *hosts = json_array(), *t, *items;
	json_t *resp = json_pack("{s:b, s:{s:b}}", "ok", 1, "result", "pong", 1);
	char id[32];
	int64_t a, create_us, take_us, report_us;
	int done = 0, finished = 0;

	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "host-%04d", i);
		json_array_append_new(hosts, json_string(id));
	}
	t = json_pack("{s:s, s:s, s:s, s:s, s:{}, s:i, s:I, s:I}", "id", "fan", "target", "*",
	              "plugin", "sys", "op", "ping", "args", "timeout_ms", 60000, "created_ms",
	              (json_int_t)T0, "expires_ms", (json_int_t)(T0 + HOUR));
	a = us_now();
	assert_int_equal(f->op->task_create(f->st, t, hosts, NULL), 0);
	create_us = us_now() - a;
	a = us_now();
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "host-%04d", i);
		assert_int_equal(f->op->task_take(f->st, id, T0, 16, &items), 0);
		assert_int_equal(json_array_size(items), 1);
		json_decref(items);
	}
	take_us = us_now() - a;
	a = us_now();
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "host-%04d", i);
		assert_int_equal(f->op->task_report(f->st, "fan", id, "ok", resp, T0, T0, &done),
		                 0);
		finished += done;
	}
	report_us = us_now() - a;
	assert_int_equal(finished, 1);
	assert_string_equal(task_state(f, "fan"), "done");
	print_message("store %s: task_create of 1000 hosts %.2f ms; 1000 task_take %.2f ms; "
	              "1000 task_report %.2f ms\n",
	              fx_name, create_us / 1000.0, take_us / 1000.0, report_us / 1000.0);
	json_decref(resp);
	json_decref(t);
	json_decref(hosts);
}

/* ---- enrollment bounds: token uses, pending caps, squatters, pending hosts that stop asking ----
 */

static int enroll_as(struct fx *f, struct store_enroll *e, const char *id, const char *key,
                     const char *token_id, const char *source, int64_t now_ms)
{
	json_t *h = NULL;
	int rc;

	e->host_id = id;
	e->pubkey = key;
	e->hostname = id;
	e->accept = token_id != NULL;
	e->token_id = token_id;
	e->addr = source;
	e->now_ms = now_ms;
	rc = f->op->host_enroll(f->st, e, &h);
	json_decref(h);
	return rc;
}

static void test_enroll_token_uses_are_counted_once_per_host(void **state)
{
	struct fx *f = *state;
	struct store_enroll e = {0};
	json_t *t = token("tk", HASH_A, "enroll", 0), *list;

	json_object_set_new(t, "max_uses", json_integer(2));
	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "a", "KA", "tk", "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "a", "KA", "tk", "1.1.1.1", T0), 0); /* a repeat */
	assert_int_equal(enroll_as(f, &e, "b", "KB", "tk", "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "c", "KC", "tk", "1.1.1.1", T0), OUTPOST_E_UNAUTHORIZED);
	assert_int_equal(f->op->host_get(f->st, "c", &list), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->token_list(f->st, &list), 0);
	assert_int_equal(ival(json_array_get(list, 0), "uses"), 2);
	assert_int_equal(ival(json_array_get(list, 0), "max_uses"), 2);
	json_decref(list);
	/* revoked: no use left either */
	json_decref(t);
	t = token("tk2", HASH_B, "enroll", 0);
	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_revoke(f->st, "tk2"), 0);
	assert_int_equal(enroll_as(f, &e, "d", "KD", "tk2", NULL, T0), OUTPOST_E_UNAUTHORIZED);
	assert_int_equal(f->op->token_revoke(f->st, "nope"), OUTPOST_E_NOT_FOUND);
	json_decref(t);
	/* uses bound only enrollment tokens, and are a count */
	t = token("op", HASH_C, "operator", 0);
	json_object_set_new(t, "max_uses", json_integer(1));
	assert_int_equal(f->op->token_add(f->st, t), OUTPOST_E_BAD_ARGS);
	json_object_set_new(t, "kind", json_string("enroll"));
	json_object_del(t, "role");
	json_object_set_new(t, "max_uses", json_integer(-1));
	assert_int_equal(f->op->token_add(f->st, t), OUTPOST_E_BAD_ARGS);
	json_decref(t);
}

static void test_enroll_caps_pending_hosts_per_source_and_overall(void **state)
{
	struct fx *f = *state;
	int refused = 0;
	struct store_enroll e = {.pending_max = 2, .pending_per_addr = 1, .refused = &refused};
	json_t *t = token("tk", HASH_A, "enroll", 0);

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "p1", "K1", NULL, "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "p1", "K1", NULL, "1.1.1.1", T0), 0); /* a repeat */
	assert_int_equal(enroll_as(f, &e, "p2", "K2", NULL, "1.1.1.1", T0), OUTPOST_E_BUSY);
	assert_int_equal(refused, ENROLL_CAP_ADDR);
	assert_int_equal(enroll_as(f, &e, "p2", "K2", NULL, "2.2.2.2", T0), 0);
	assert_int_equal(enroll_as(f, &e, "p3", "K3", NULL, "3.3.3.3", T0), OUTPOST_E_BUSY);
	assert_int_equal(refused, ENROLL_CAP_TOTAL);
	/* a token is never capped */
	assert_int_equal(enroll_as(f, &e, "t1", "KT", "tk", "1.1.1.1", T0), 0);
	json_decref(t);
}

static void test_enroll_token_replaces_a_pending_squatter(void **state)
{
	struct fx *f = *state;
	int replaced = 0;
	struct store_enroll e = {.replaced = &replaced};
	json_t *t = token("tk", HASH_A, "enroll", 0), *h, *ev;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "db-7", "SQUAT", NULL, "6.6.6.6", T0), 0);
	assert_int_equal(replaced, 0);
	assert_int_equal(enroll_as(f, &e, "db-7", "REAL", "tk", "1.1.1.1", T0 + 1), 0);
	assert_int_equal(replaced, 1);
	h = host(f, "db-7");
	assert_string_equal(sval(h, "pubkey"), "REAL");
	assert_string_equal(sval(h, "state"), "up");
	json_decref(h);
	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = "db-7", .limit = 10},
	                       &ev),
	    0);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "replaced");
	json_decref(ev);
	/* an accepted host is never replaced */
	assert_int_equal(enroll_as(f, &e, "db-7", "OTHER", "tk", "1.1.1.1", T0 + 2),
	                 OUTPOST_E_CONFLICT);
	/* nor a pending one without a token */
	assert_int_equal(enroll_as(f, &e, "p", "K1", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "p", "K2", NULL, NULL, T0), OUTPOST_E_CONFLICT);
	json_decref(t);
}

static void test_pending_prune_forgets_pending_hosts_that_stopped_asking(void **state)
{
	struct fx *f = *state;
	struct store_enroll e = {0};
	json_t *t = token("tk", HASH_A, "enroll", 0), *h;
	int64_t n;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "old", "K1", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "asks", "K2", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "up", "K3", "tk", NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "asks", "K2", NULL, NULL, T0 + 10 * 24 * HOUR), 0);
	assert_int_equal(f->op->pending_prune(f->st, T0 + 5 * 24 * HOUR, 1000, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f->op->host_get(f->st, "old", &h), OUTPOST_E_NOT_FOUND);
	json_decref(host(f, "asks"));
	json_decref(host(f, "up"));
	json_decref(t);
}

/* ---- records (flows, mail) ---- */

static void test_rec_put_get_replace_and_only_new(void **state)
{
	struct fx *f = *state;
	json_t *a = json_pack("{s:s, s:i}", "id", "r1", "n", 1), *b, *got;

	assert_int_equal(f->op->rec_put(f->st, "flow_run", "r1", a, T0, T0, 1), 0);
	/* only_new on a taken id: a conflict, the first body stays */
	b = json_pack("{s:s, s:i}", "id", "r1", "n", 2);
	assert_int_equal(f->op->rec_put(f->st, "flow_run", "r1", b, T0, T0, 1), OUTPOST_E_CONFLICT);
	assert_int_equal(f->op->rec_get(f->st, "flow_run", "r1", &got), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "n")), 1);
	json_decref(got);
	/* a put replaces; kinds are apart */
	assert_int_equal(f->op->rec_put(f->st, "flow_run", "r1", b, 0, T0 + 1, 0), 0);
	assert_int_equal(f->op->rec_get(f->st, "flow_run", "r1", &got), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "n")), 2);
	json_decref(got);
	assert_int_equal(f->op->rec_get(f->st, "mail", "r1", &got), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->rec_put(f->st, "mail", "r1", json_null(), 0, T0, 0),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(f->op->rec_del(f->st, "flow_run", "r1"), 0);
	assert_int_equal(f->op->rec_del(f->st, "flow_run", "r1"), OUTPOST_E_NOT_FOUND);
	json_decref(a);
	json_decref(b);
}

/* A batch: one transaction for many calls, each call still all or nothing in it (a conflict
 * or a refused call does not undo the others), its writes read back before it ends, not
 * nested; ending none is nothing. */
static void test_batch_keeps_every_call_but_the_failed_ones(void **state)
{
	struct fx *f = *state;
	json_t *a = json_pack("{s:i}", "n", 1), *got = NULL, *ids = NULL;

	enroll(f, "web-01");
	assert_int_equal(f->op->batch_end(f->st), 0);
	assert_int_equal(f->op->batch_begin(f->st), 0);
	assert_int_equal(f->op->batch_begin(f->st), OUTPOST_E_CONFLICT);
	assert_int_equal(f->op->rec_put(f->st, "alert", "r/a", a, 0, T0, 1), 0);
	assert_int_equal(f->op->rec_put(f->st, "alert", "r/a", a, 0, T0, 1), OUTPOST_E_CONFLICT);
	/* a call with its own transaction, refused half way: only it is undone */
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_REVOKED, "", T0), 0);
	assert_int_equal(f->op->host_set_state(f->st, "web-01", HOST_UP, "", T0),
	                 OUTPOST_E_CONFLICT);
	assert_int_equal(f->op->rec_put(f->st, "alert", "r/b", a, 0, T0, 0), 0);
	assert_int_equal(f->op->rec_get(f->st, "alert", "r/b", &got), 0);
	json_decref(got);
	assert_int_equal(f->op->rec_del(f->st, "alert", "r/none"), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->batch_end(f->st), 0);
	assert_int_equal(f->op->rec_list(f->st, "alert", 10, &ids), 0);
	assert_int_equal(json_array_size(ids), 2);
	json_decref(ids);
	got = host(f, "web-01");
	assert_string_equal(sval(got, "state"), HOST_REVOKED);
	json_decref(got);
	/* and after it, calls are their own transactions again */
	assert_int_equal(f->op->rec_del(f->st, "alert", "r/a"), 0);
	json_decref(a);
}

static void test_rec_due_and_list_order(void **state)
{
	struct fx *f = *state;
	json_t *v, *got;
	const char *ids[] = {"late", "early", "never", "o'hara; --"};
	int64_t due[] = {T0 + 500, T0 + 100, 0, T0 + 300};

	for (int i = 0; i < 4; i++) {
		v = json_pack("{s:s}", "id", ids[i]);
		assert_int_equal(f->op->rec_put(f->st, "mail", ids[i], v, due[i], T0 + i, 0), 0);
		json_decref(v);
	}
	/* due: 0 < due_ms <= now, the earliest first, at most limit */
	assert_int_equal(f->op->rec_due(f->st, "mail", T0 + 400, 10, &got), 0);
	assert_int_equal(json_array_size(got), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "id")),
	                    "early");
	assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "id")),
	                    "o'hara; --");
	json_decref(got);
	assert_int_equal(f->op->rec_due(f->st, "mail", T0 + 1000, 1, &got), 0);
	assert_int_equal(json_array_size(got), 1);
	json_decref(got);
	assert_int_equal(f->op->rec_due(f->st, "flow_run", T0 + 1000, 10, &got), 0);
	assert_int_equal(json_array_size(got), 0);
	json_decref(got);
	/* list: the latest written first */
	assert_int_equal(f->op->rec_list(f->st, "mail", 10, &got), 0);
	assert_int_equal(json_array_size(got), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "id")),
	                    "o'hara; --");
	json_decref(got);
	/* prune: only what is not due, written before the bound; other kinds untouched */
	{
		int64_t n = -1;
		assert_int_equal(f->op->rec_prune(f->st, "flow_run", T0 + 100, 10, &n), 0);
		assert_int_equal(n, 0);
		assert_int_equal(f->op->rec_prune(f->st, "mail", T0 + 100, 10, &n), 0);
		assert_int_equal(n, 1); /* "never" */
		assert_int_equal(f->op->rec_get(f->st, "mail", "never", &got), OUTPOST_E_NOT_FOUND);
		assert_int_equal(f->op->rec_list(f->st, "mail", 10, &got), 0);
		assert_int_equal(json_array_size(got), 3);
		json_decref(got);
	}
}

/* The cases, for the includer's table: STORE_CASES(T) with T(name) making one entry. */
/* clang-format off */
#define STORE_CASES(T) \
	T(test_host_page_walks_every_host_in_id_order), \
	T(test_alert_history), \
	T(test_enroll_same_key_is_idempotent), \
	T(test_enroll_other_key_is_conflict), \
	T(test_enroll_revoked_is_forbidden), \
	T(test_host_key_matches_the_row), \
	T(test_rejected_host_stays_refused_until_accepted), \
	T(test_enroll_with_token_is_up_with_labels), \
	T(test_enroll_pending_host_with_token_is_accepted), \
	T(test_accept_moves_pending_to_up_with_event), \
	T(test_set_state_refuses_leaving_revoked), \
	T(test_labels_set_and_remove), \
	T(test_labels_refuse_fact_names_and_non_strings), \
	T(test_host_list_flattens_facts_into_attrs), \
	T(test_seen_flips_down_to_up_with_event), \
	T(test_seen_refuses_pending_revoked_and_unknown), \
	T(test_mark_down_takes_only_stale_up_hosts), \
	T(test_hosts_touch_writes_last_seen_of_up_hosts_only), \
	T(test_mark_down_spares_the_hosts_keep_vouches_for), \
	T(test_events_list_filters_by_host_newest_first), \
	T(test_events_add_stores_a_key_once_and_filters), \
	T(test_remove_cancels_the_hosts_queued_rows), \
	T(test_hostile_ids_are_data), \
	T(test_token_add_and_find_by_hash), \
	T(test_token_add_is_idempotent_by_id), \
	T(test_token_add_refuses_what_is_not_a_hash), \
	T(test_token_find_ignores_expired), \
	T(test_token_revoke_hides_it), \
	T(test_task_create_is_idempotent_by_id), \
	T(test_task_create_refuses_a_host_twice), \
	T(test_task_create_with_no_hosts_is_done), \
	T(test_task_get_shape_and_zero_counts), \
	T(test_task_take_marks_sent), \
	T(test_task_resume_hands_out_sent_and_running_again), \
	T(test_task_take_skips_expired_tasks), \
	T(test_task_take_respects_limit_oldest_first), \
	T(test_task_take_waits_for_the_hosts_batch), \
	T(test_task_report_moves_forward_only), \
	T(test_task_report_for_unsent_row_is_not_found), \
	T(test_task_report_sets_done_when_all_hosts_final), \
	T(test_task_cancel_cancels_queued_and_sent), \
	T(test_task_cancel_of_finished_task_changes_nothing), \
	T(test_tasks_expire_queued_and_sent_rows), \
	T(test_tasks_expire_loses_rows_running_past_timeout), \
	T(test_tasks_advance_releases_next_batch), \
	T(test_tasks_advance_cancels_rest_over_max_failures), \
	T(test_tasks_advance_within_max_failures_goes_on), \
	T(test_task_get_since_returns_rows_changed_after), \
	T(test_task_list_newest_first_with_counts), \
	T(test_task_hosts_waiting_after_restart), \
	T(test_audit_newest_first), \
	T(test_stats_count_hosts_tasks_and_queue), \
	T(test_enroll_token_uses_are_counted_once_per_host), \
	T(test_enroll_caps_pending_hosts_per_source_and_overall), \
	T(test_enroll_token_replaces_a_pending_squatter), \
	T(test_pending_prune_forgets_pending_hosts_that_stopped_asking), \
	T(test_rec_put_get_replace_and_only_new), \
	T(test_batch_keeps_every_call_but_the_failed_ones), \
	T(test_rec_due_and_list_order), \
	T(test_fanout_1000_hosts_timing),
/* clang-format on */
