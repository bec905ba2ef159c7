/* Automation's rule set and its evaluation (docs/rules.md). Rules come from the store (the
 * API) and from the rules file; each is checked once into a struct rule (condition parsed,
 * scope parsed). A cycle evaluates every rule over a snapshot of the registry and the
 * time-series store in slices of RULES_SLICE_MS, one per turn of the loop, so that the loop
 * is never held long: a rule's metric terms walk the series of their name from a position
 * that survives between slices (tsdb_series_each_at), and a window's figures of a series are
 * computed once per cycle whatever the number of rules that read them. */
#include "rules_int.h"
#include "hub_impl.h"
#include "registry.h"
#include "selector.h"
#include "tsdb.h"
#include "zk.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/wire.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Rules: checked once ---- */

static int rule_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > RULES_NAME_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

void rule_free(struct rule *r)
{
	if (!r)
		return;
	free(r->name);
	json_decref(r->doc);
	json_decref(r->alerts);
	json_decref(r->last_act);
	rule_expr_free(r->expr);
	selector_free(r->scope);
	free(r);
}

static int opt_int(const json_t *opts, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out, char *msg, size_t msglen)
{
	json_t *v = json_object_get(opts, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(msg, msglen, "options.%s must be an integer from %lld to %lld", key,
		         (long long)lo, (long long)hi);
		return OUTPOST_E_BAD_ARGS;
	}
	*out = json_integer_value(v);
	return 0;
}

static int rule_options(struct rule *r, const json_t *opts, char *msg, size_t msglen)
{
	static const char *const known[] = {
	    "cooldown_s", "max_actions_per_hour", "dry_run", "repeat_s", "severity", NULL};
	const char *k;
	json_t *v;
	int64_t cool, cap, rep;
	int rc;

	if (opts && !json_is_object(opts)) {
		snprintf(msg, msglen, "options must be an object");
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)opts, k, v)
	{
		size_t i = 0;
		while (known[i] && strcmp(known[i], k) != 0)
			i++;
		if (!known[i]) {
			snprintf(msg, msglen,
			         "options: unknown key '%.64s' (cooldown_s, max_actions_per_hour, "
			         "dry_run, repeat_s, severity)",
			         k);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if ((rc = opt_int(opts, "cooldown_s", 0, 7 * 86400, 300, &cool, msg, msglen)) < 0 ||
	    (rc = opt_int(opts, "max_actions_per_hour", 1, RULES_CAP_MAX, 20, &cap, msg, msglen)) <
	        0 ||
	    (rc = opt_int(opts, "repeat_s", 0, 7 * 86400, 0, &rep, msg, msglen)) < 0)
		return rc;
	v = json_object_get(opts, "dry_run");
	if (v && !json_is_boolean(v)) {
		snprintf(msg, msglen, "options.dry_run must be true or false");
		return OUTPOST_E_BAD_ARGS;
	}
	v = json_object_get(opts, "severity");
	if (v && (!json_is_string(v) || json_string_length(v) > 32)) {
		snprintf(msg, msglen, "options.severity must be a string of at most 32 characters");
		return OUTPOST_E_BAD_ARGS;
	}
	r->dry_run = json_is_true(json_object_get(opts, "dry_run"));
	r->cooldown_ms = cool * 1000;
	r->repeat_ms = rep * 1000;
	r->cap = (int)cap;
	return 0;
}

int rule_build(const json_t *doc, struct rule **out, const char **field, int *col, char *msg,
               size_t msglen)
{
	static const char *const known[] = {"name",    "description", "scope", "condition",
	                                    "actions", "options",     "source"};
	const char *name = json_string_value(json_object_get(doc, "name"));
	const char *scope = json_string_value(json_object_get(doc, "scope"));
	const char *cond = json_string_value(json_object_get(doc, "condition"));
	json_t *actions = json_object_get(doc, "actions"), *a, *v;
	struct rule *r = NULL;
	const char *k;
	size_t i;
	int rc = OUTPOST_E_BAD_ARGS;

	*out = NULL;
	*col = 0;
	*field = NULL;
	if (!json_is_object(doc)) {
		snprintf(msg, msglen,
		         "a rule is an object {name, scope, condition, actions, options}");
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)doc, k, v)
	{
		for (i = 0; i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], k); i++)
			;
		if (i == sizeof(known) / sizeof(known[0])) {
			*field = k;
			snprintf(
			    msg, msglen,
			    "unknown key '%.64s' (name, description, scope, condition, actions, "
			    "options)",
			    k);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if (!rule_name_ok(name)) {
		*field = "name";
		snprintf(
		    msg, msglen,
		    "name must be 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit");
		return OUTPOST_E_BAD_ARGS;
	}
	v = json_object_get(doc, "description");
	if (v && (!json_is_string(v) || json_string_length(v) > 1024)) {
		*field = "description";
		snprintf(msg, msglen, "description must be a string of at most 1024 bytes");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!(r = calloc(1, sizeof(*r))) || !(r->name = strdup(name)) ||
	    !(r->alerts = json_object()) || !(r->last_act = json_object())) {
		rc = OUTPOST_E_INTERNAL;
		goto fail;
	}
	if (json_object_get(doc, "scope") && !scope) {
		*field = "scope";
		snprintf(msg, msglen, "scope must be a selector string (docs/selectors.md)");
		goto fail;
	}
	if (scope && *scope && strcmp(scope, "*") != 0) {
		char why[400];
		rc = selector_parse(scope, NULL, NULL, &r->scope, why, sizeof(why));
		if (rc < 0) {
			*field = "scope";
			if (sscanf(why, "at column %d", col) != 1)
				*col = 0;
			snprintf(msg, msglen, "scope: %s", why);
			goto fail;
		}
	}
	if (!cond) {
		*field = "condition";
		snprintf(msg, msglen,
		         "condition is required: a string such as "
		         "avg(host_cpu_percent[5m]) > 90 for 2m (docs/rules.md)");
		rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	{
		char why[400];
		if ((rc = rule_expr_parse(cond, &r->expr, col, why, sizeof(why))) < 0) {
			*field = "condition";
			snprintf(msg, msglen, "condition at column %d: %s", *col, why);
			goto fail;
		}
	}
	if (actions && (!json_is_array(actions) || json_array_size(actions) > RULES_ACTIONS_MAX)) {
		*field = "actions";
		snprintf(msg, msglen, "actions must be an array of at most %d actions",
		         RULES_ACTIONS_MAX);
		rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	json_array_foreach(actions, i, a)
	{
		char why[400];
		if ((rc = rules_action_check(a, why, sizeof(why))) < 0) {
			*field = "actions";
			snprintf(msg, msglen, "actions[%zu]: %s", i, why);
			goto fail;
		}
	}
	if ((rc = rule_options(r, json_object_get(doc, "options"), msg, msglen)) < 0) {
		*field = "options";
		goto fail;
	}
	if (!(r->doc = json_deep_copy(doc))) {
		rc = OUTPOST_E_INTERNAL;
		goto fail;
	}
	if (!json_object_get(r->doc, "actions"))
		json_object_set_new(r->doc, "actions", json_array());
	r->actions = json_object_get(r->doc, "actions");
	*out = r;
	return 0;
fail:
	if (rc == OUTPOST_E_INTERNAL)
		snprintf(msg, msglen, "out of memory");
	rule_free(r);
	return rc;
}

struct rule *rules_find(struct rules *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->v[i]->name, name) == 0)
			return rs->v[i];
	return NULL;
}

void rules_install(struct rules *rs, struct rule *r)
{
	struct rule **nv;

	rules_cycle_abort(rs);
	for (size_t i = 0; i < rs->n; i++) {
		if (strcmp(rs->v[i]->name, r->name) != 0)
			continue;
		/* Its alerts carry on under the new definition: they resolve at the next cycle if
		 * the new condition no longer holds. */
		json_decref(r->alerts);
		r->alerts = json_incref(rs->v[i]->alerts);
		json_decref(r->last_act);
		r->last_act = json_incref(rs->v[i]->last_act);
		memcpy(r->acts, rs->v[i]->acts, sizeof(r->acts));
		r->nacts = rs->v[i]->nacts;
		r->actpos = rs->v[i]->actpos;
		rule_free(rs->v[i]);
		rs->v[i] = r;
		return;
	}
	if (!(nv = realloc(rs->v, (rs->n + 1) * sizeof(*nv)))) {
		rule_free(r);
		return;
	}
	rs->v = nv;
	rs->v[rs->n++] = r;
}

void rules_uninstall(struct rules *rs, const char *name)
{
	const char *host;
	json_t *a;
	char key[200];

	rules_cycle_abort(rs);
	for (size_t i = 0; i < rs->n; i++) {
		if (strcmp(rs->v[i]->name, name) != 0)
			continue;
		json_object_foreach(rs->v[i]->alerts, host, a)
		{
			rules_alert_key(name, host, key, sizeof(key));
			rules_doc_del(rs->h, "alert", key);
		}
		rule_free(rs->v[i]);
		memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof(*rs->v));
		rs->n--;
		return;
	}
}

/* ---- The rules file ---- */

/* The line and column of position off of text (both from 1). */
static void text_line_col(const char *text, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && text[i]; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* Where the value of the nth (from 0) key "field" is in text: the offset of its first
 * character (inside the quotes for a string), or of the key when there is no value. */
static size_t text_find_key(const char *text, const char *field, size_t nth)
{
	char pat[80];
	const char *p = text, *q;

	snprintf(pat, sizeof(pat), "\"%s\"", field);
	for (;;) {
		if (!(q = strstr(p, pat)))
			return 0;
		p = q + strlen(pat);
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (*p != ':')
			continue;
		if (nth-- > 0)
			continue;
		p++;
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		return (size_t)(p - text) + (*p == '"');
	}
}

/* Reads the rules file into rules (a new array of built rules). 0, or BAD_ARGS with
 * "FILE:LINE:COLUMN: what" in msg. An absent file is no rules. */
static int rules_file_read(const char *path, struct rule ***out, size_t *nout, char *msg,
                           size_t msglen)
{
	json_t *conf = NULL, *list, *doc;
	struct rule **v = NULL;
	char *text = NULL;
	size_t i, n = 0;
	FILE *f;
	long len;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!path)
		return 0;
	if (!(f = fopen(path, "re")))
		return 0;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || len > (1 << 22) ||
	    fseek(f, 0, SEEK_SET) < 0 || !(text = calloc(1, (size_t)len + 1)) ||
	    fread(text, 1, (size_t)len, f) != (size_t)len) {
		fclose(f);
		free(text);
		snprintf(msg, msglen, "%s: cannot read it (at most 4 MiB)", path);
		return OUTPOST_E_BAD_ARGS;
	}
	fclose(f);
	if ((rc = conf_parse(text, (size_t)len, path, &conf, msg, msglen)) < 0) {
		rc = OUTPOST_E_BAD_ARGS;
		goto out;
	}
	list = json_object_get(conf, "rules");
	if (!json_is_object(conf) || json_object_size(conf) != 1 || !json_is_array(list) ||
	    json_array_size(list) > RULES_MAX) {
		snprintf(msg, msglen,
		         "%s:1:1: a rules file is {\"rules\": [RULE, ...]} (docs/rules.md)", path);
		rc = OUTPOST_E_BAD_ARGS;
		goto out;
	}
	if (!(v = calloc(json_array_size(list) + 1, sizeof(*v)))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	json_array_foreach(list, i, doc)
	{
		const char *field = NULL;
		char why[600];
		int col, line, c0;
		size_t off, nth = 0;
		rc = rule_build(doc, &v[n], &field, &col, why, sizeof(why));
		for (size_t j = 0; rc == 0 && j < n; j++)
			if (strcmp(v[j]->name, v[n]->name) == 0) {
				snprintf(why, sizeof(why), "a second rule named '%s'", v[n]->name);
				field = "name";
				col = 0;
				rc = OUTPOST_E_BAD_ARGS;
				rule_free(v[n]);
				v[n] = NULL;
			}
		if (rc == 0) {
			json_object_set_new(v[n]->doc, "source", json_string("file"));
			v[n]->from_file = 1;
			n++;
			continue;
		}
		/* Where: the field's value in the text (the nth rule that has that field). */
		off = 0;
		if (field) {
			for (size_t j = 0; j < i; j++)
				nth += json_object_get(json_array_get(list, j), field) != NULL;
			off = text_find_key(text, field, nth);
		} else {
			off = text_find_key(text, "name", i);
		}
		text_line_col(text, off, &line, &c0);
		snprintf(msg, msglen, "%s:%d:%d: rule %zu: %s", path, line,
		         c0 + (col > 0 ? col - 1 : 0), i + 1, why);
		rc = rc == OUTPOST_E_INTERNAL ? rc : OUTPOST_E_BAD_ARGS;
		goto out;
	}
	*out = v;
	*nout = n;
	v = NULL;
out:
	for (i = 0; v && i < n; i++)
		rule_free(v[i]);
	free(v);
	json_decref(conf);
	free(text);
	return rc;
}

int rules_file_check(const char *path, char *msg, size_t msglen)
{
	struct rule **v;
	size_t n;
	int rc = rules_file_read(path && *path ? path : NULL, &v, &n, msg, msglen);

	for (size_t i = 0; rc == 0 && i < n; i++)
		rule_free(v[i]);
	if (rc == 0)
		free(v);
	return rc;
}

/* Replaces the file's rules with those read now; the API's rules stay. A name the store
 * already has refuses the file. */
static int rules_load_file(struct rules *rs, char *msg, size_t msglen)
{
	struct rule **v;
	size_t n, i;
	int rc = rules_file_read(rs->file, &v, &n, msg, msglen);

	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		struct rule *old = rules_find(rs, v[i]->name);
		if (old && !old->from_file) {
			snprintf(msg, msglen,
			         "%s: rule '%s' is also kept in the store (made through the API): "
			         "rename one, or remove it with `outpost rules rm %s`",
			         rs->file, v[i]->name, v[i]->name);
			for (size_t j = 0; j < n; j++)
				rule_free(v[j]);
			free(v);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	/* File rules the file no longer has go. */
	for (size_t j = rs->n; j-- > 0;) {
		int kept = 0;
		if (!rs->v[j]->from_file)
			continue;
		for (i = 0; i < n && !kept; i++)
			kept = strcmp(v[i]->name, rs->v[j]->name) == 0;
		if (!kept)
			rules_uninstall(rs, rs->v[j]->name);
	}
	for (i = 0; i < n; i++)
		rules_install(rs, v[i]);
	free(v);
	return 0;
}

int rules_reload_file(struct hub *h, char *msg, size_t msglen)
{
	struct rules *rs = h->rules;
	int rc;

	if (!rs)
		return 0;
	rc = rules_load_file(rs, msg, msglen);
	if (rc == 0)
		log_info(h->log, "rules", "rules file %s: %zu rule(s) in force",
		         rs->file ? rs->file : "-", rs->n);
	return rc;
}

/* ---- The evaluation cycle ---- */

/* A window's figures of one series, computed once per cycle. t in seconds before now. */
struct wstat {
	uint32_t id;
	int64_t win;
	int n;
	double min, max, sum, first, last, ft, lt;
	double st, sv, stt, stv;
};

/* A metric term's values over every series it reads, once per cycle whatever the number of
 * rules that compare it (rules usually differ in thresholds and scopes, not in terms). */
struct term_memo {
	char *key;         /* rx_leaf.key */
	const char **host; /* keys of the cycle's hosts object (stable for the cycle) */
	double *v;
	size_t n, cap;
	size_t pos; /* the walk's position while it is under way */
	int done;
	struct term_memo *next;
};

/* The window figures of a cycle: a hash table of entry numbers over entries kept in blocks
 * that never move, kept from cycle to cycle by the rule set. Growing it rewrites only the
 * 4-byte slots: moving 100-byte entries into a fresh 14 MB table took one slice 150-200 ms
 * (page faults) in a cycle over 40,000 series. */
#define WC_BLOCK 4096
struct wcache {
	uint32_t *slot; /* entry number + 1; 0: empty */
	size_t cap, used;
	struct wstat **blk;
	size_t nblk;
};

static void wcache_free(struct wcache *wc)
{
	if (!wc)
		return;
	for (size_t i = 0; i < wc->nblk; i++)
		free(wc->blk[i]);
	free(wc->blk);
	free(wc->slot);
	free(wc);
}

static struct wstat *wc_entry(struct wcache *wc, size_t n)
{
	return &wc->blk[n / WC_BLOCK][n % WC_BLOCK];
}

/* Empty for a new cycle (its memory kept). */
static void wcache_reset(struct wcache *wc)
{
	if (wc->slot)
		memset(wc->slot, 0, wc->cap * sizeof(*wc->slot));
	wc->used = 0;
}

struct rules_cycle {
	int64_t now;
	json_t *hosts; /* id -> host (the store's hosts, read a page at a time) */
	int hosts_done;
	char hosts_after[80]; /* the last id read */
	json_t *events;       /* [{host_id, kind, at_ms}] */
	int64_t events_since;
	size_t ri, li, pos;
	uint64_t gen;
	json_t *sets[RX_MAX_LEAVES];
	struct rules_settle settle; /* the rule being settled (settle.matched not NULL) */
	int64_t wall0;
	clock_t cpu0;
	int64_t until; /* the slice's end (monotonic ms); 0: none */
	unsigned walked;
	struct wcache *wc; /* the rule set's (rs->wc), or its own for `rules test` */
	int wc_own;
	struct term_memo *memos;
	/* by series id: 0 not looked at yet, 1 its host is accepted, 2 it is not */
	uint8_t *host_ok;
	size_t nhost_ok;
	struct rule *only; /* rules test: this rule alone */
	int failed;        /* the hosts could not be read: nothing is settled */
};

static void cycle_free(struct rules_cycle *c)
{
	if (!c)
		return;
	json_decref(c->hosts);
	json_decref(c->events);
	for (int i = 0; i < RX_MAX_LEAVES; i++)
		json_decref(c->sets[i]);
	json_decref(c->settle.matched);
	json_decref(c->settle.gone);
	if (c->wc_own)
		wcache_free(c->wc);
	free(c->host_ok);
	while (c->memos) {
		struct term_memo *m = c->memos;
		c->memos = m->next;
		free(m->key);
		free(m->host);
		free(m->v);
		free(m);
	}
	free(c);
}

void rules_cycle_abort(struct rules *rs)
{
	cycle_free(rs->cyc);
	rs->cyc = NULL;
}

static size_t wkey(uint32_t id, int64_t win, size_t cap)
{
	uint64_t k = ((uint64_t)id * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)win * 0xC2B2AE3D27D4EB4FULL;
	return (size_t)(k >> 17) & (cap - 1);
}

static int wcache_grow(struct wcache *wc)
{
	size_t cap = wc->cap ? wc->cap * 2 : 4096;
	uint32_t *ns = calloc(cap, sizeof(*ns));

	if (!ns)
		return -1;
	for (size_t n = 0; n < wc->used; n++) {
		struct wstat *e = wc_entry(wc, n);
		size_t j;
		for (j = wkey(e->id, e->win, cap); ns[j]; j = (j + 1) & (cap - 1))
			;
		ns[j] = (uint32_t)n + 1;
	}
	free(wc->slot);
	wc->slot = ns;
	wc->cap = cap;
	return 0;
}

/* The entry of (id, win): found (*fresh 0), or new and zeroed (*fresh 1); NULL: no memory. */
static struct wstat *wcache_get(struct wcache *wc, uint32_t id, int64_t win, int *fresh)
{
	struct wstat *e;
	size_t i;

	if ((wc->used + 1) * 2 > wc->cap && wcache_grow(wc) < 0)
		return NULL;
	for (i = wkey(id, win, wc->cap); wc->slot[i]; i = (i + 1) & (wc->cap - 1)) {
		e = wc_entry(wc, wc->slot[i] - 1);
		if (e->id == id && e->win == win) {
			*fresh = 0;
			return e;
		}
	}
	if (wc->used / WC_BLOCK >= wc->nblk) {
		struct wstat **nb = realloc(wc->blk, (wc->nblk + 1) * sizeof(*nb));
		if (!nb)
			return NULL;
		wc->blk = nb;
		if (!(wc->blk[wc->nblk] = malloc(WC_BLOCK * sizeof(struct wstat))))
			return NULL;
		wc->nblk++;
	}
	e = wc_entry(wc, wc->used);
	wc->slot[i] = (uint32_t)++wc->used;
	memset(e, 0, sizeof(*e));
	e->id = id;
	e->win = win;
	*fresh = 1;
	return e;
}

/* The figures of series id over [now - win, now]; NULL when memory runs out. */
static struct wstat *window_stat(struct hub *h, struct rules_cycle *c, uint32_t id, int64_t win)
{
	struct tsdb_point *pts = NULL;
	struct wstat *w;
	size_t i, n = 0;
	int fresh;

	if (!(w = wcache_get(c->wc, id, win, &fresh)) || !fresh)
		return w;
	if (tsdb_read(h->tsdb, id, TSDB_RAW, c->now - win, c->now + 1, &pts, &n) < 0)
		n = 0;
	for (i = 0; i < n; i++) {
		double v = pts[i].sum / (pts[i].count > 0 ? pts[i].count : 1);
		double t = (double)(pts[i].t - c->now) / 1000.0;
		if (isnan(v))
			continue;
		if (!w->n || v < w->min)
			w->min = v;
		if (!w->n || v > w->max)
			w->max = v;
		if (!w->n) {
			w->first = v;
			w->ft = t;
		}
		w->last = v;
		w->lt = t;
		w->sum += v;
		w->st += t;
		w->sv += v;
		w->stt += t * t;
		w->stv += t * v;
		w->n++;
	}
	free(pts);
	return w;
}

/* The value of a metric term for one series: 0 and *v, or -1 when it has none (no samples in
 * the window; rate, delta and predict need two). */
static int leaf_value(struct hub *h, struct rules_cycle *c, const struct rx_leaf *lf,
                      const struct tsdb_series *s, double *v)
{
	struct wstat *w;

	if (lf->fn == RX_PCT) {
		struct tsdb_point *pts = NULL;
		size_t n = 0, k = 0;
		double *vals;
		if (tsdb_read(h->tsdb, s->id, TSDB_RAW, c->now - lf->window_ms, c->now + 1, &pts,
		              &n) < 0 ||
		    n == 0 || !(vals = malloc(n * sizeof(double)))) {
			free(pts);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			vals[k++] = pts[i].sum / (pts[i].count > 0 ? pts[i].count : 1);
		*v = query_quantile(vals, k, lf->pct);
		free(vals);
		free(pts);
		return isnan(*v) ? -1 : 0;
	}
	if (!(w = window_stat(h, c, s->id, lf->window_ms)) || w->n == 0)
		return -1;
	switch (lf->fn) {
	case RX_AVG:
		*v = w->sum / w->n;
		return 0;
	case RX_MIN:
		*v = w->min;
		return 0;
	case RX_MAX:
		*v = w->max;
		return 0;
	case RX_LAST:
		*v = w->last;
		return 0;
	case RX_DELTA:
		if (w->n < 2)
			return -1;
		*v = w->last - w->first;
		return 0;
	case RX_RATE:
		if (w->n < 2 || w->lt <= w->ft)
			return -1;
		*v = (w->last - w->first) / (w->lt - w->ft);
		return 0;
	default: { /* RX_PREDICT: least squares over the window, at now + ahead */
		double d = w->n * w->stt - w->st * w->st, b, a;
		if (w->n < 2 || d == 0)
			return -1;
		b = (w->n * w->stv - w->st * w->sv) / d;
		a = (w->sv - b * w->st) / w->n;
		*v = a + b * ((double)lf->ahead_ms / 1000.0);
		return 0;
	}
	}
}

/* A term held for host with value v: set[host][text] = v (the first series that holds). */
static int set_put(json_t *set, const char *host, const char *text, double v)
{
	json_t *vals = json_object_get(set, host);

	if (!vals) {
		if (!(vals = json_object()) || json_object_set_new(set, host, vals) < 0)
			return -1;
	}
	if (json_object_get(vals, text))
		return 0;
	return json_object_set_new(vals, text, json_real(v));
}

struct walk {
	struct rules *rs;
	struct rules_cycle *c;
	const struct rx_leaf *lf;
	struct term_memo *memo;
	int stopped;
};

static int is_accepted(const json_t *host)
{
	const char *st = json_string_value(json_object_get(host, "state"));

	return st && (strcmp(st, HOST_UP) == 0 || strcmp(st, HOST_DOWN) == 0);
}

static int walk_series(void *arg, const struct tsdb_series *s)
{
	struct walk *w = arg;
	struct rules_cycle *c = w->c;
	const struct rx_leaf *lf = w->lf;
	size_t re_work = 0;
	double v;

	if (c->until && (++c->walked & 15) == 0 && clk_mono_ms() >= c->until) {
		w->stopped = 1;
		return 1;
	}
	if (s->last_ms < c->now - lf->window_ms)
		return 0;
	if (s->id >= c->nhost_ok) {
		size_t n = (size_t)s->id * 2 + 1024;
		uint8_t *nv = realloc(c->host_ok, n);
		if (!nv)
			return 0;
		memset(nv + c->nhost_ok, 0, n - c->nhost_ok);
		c->host_ok = nv;
		c->nhost_ok = n;
	}
	if (!c->host_ok[s->id])
		c->host_ok[s->id] = is_accepted(json_object_get(c->hosts, s->host)) ? 1 : 2;
	if (c->host_ok[s->id] != 1)
		return 0;
	if (lf->nm && !query_series_match(lf->m, lf->nm, s, &re_work))
		return 0;
	w->rs->evals++;
	if (leaf_value(w->rs->h, c, lf, s, &v) == 0) {
		struct term_memo *m = w->memo;
		if (m->n == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 256;
			const char **nh = realloc(m->host, cap * sizeof(*nh));
			double *nv;
			if (nh)
				m->host = nh;
			if (!nh || !(nv = realloc(m->v, cap * sizeof(*nv))))
				return 0;
			m->v = nv;
			m->cap = cap;
		}
		/* the hosts object's own key: it outlives the walk, the series' name may not */
		m->host[m->n] = json_object_iter_key(json_object_iter_at(c->hosts, s->host));
		m->v[m->n++] = v;
	}
	return 0;
}

/* Evaluates leaf li of rule r into c->sets[li]. 1 when the slice ended first (call again). */
static int leaf_eval(struct rules *rs, struct rules_cycle *c, struct rule *r, size_t li)
{
	const struct rx_leaf *lf = &r->expr->leaves[li];
	const char *id;
	json_t *host, *ev;
	size_t i;

	if (!c->sets[li] && !(c->sets[li] = json_object()))
		return 0;
	switch (lf->kind) {
	case RX_METRIC: {
		struct walk w = {rs, c, lf, NULL, 0};
		struct term_memo *m;
		if (!rs->h->tsdb)
			return 0;
		for (m = c->memos; m && strcmp(m->key, lf->key) != 0; m = m->next)
			;
		if (!m) {
			if (!(m = calloc(1, sizeof(*m))) || !(m->key = strdup(lf->key))) {
				free(m);
				return 0;
			}
			m->next = c->memos;
			c->memos = m;
		}
		if (!m->done) {
			if (tsdb_generation(rs->h->tsdb) != c->gen) {
				/* the tsdb was reloaded under the walk: positions moved, start
				 * again */
				c->gen = tsdb_generation(rs->h->tsdb);
				m->pos = 0;
				m->n = 0;
			}
			w.memo = m;
			tsdb_series_each_at(rs->h->tsdb, lf->name, &m->pos, walk_series, &w);
			if (w.stopped)
				return 1;
			m->done = 1;
		}
		for (i = 0; i < m->n; i++)
			if (rule_expr_compare(lf->op, m->v[i], lf->value))
				set_put(c->sets[li], m->host[i], lf->text, m->v[i]);
		return 0;
	}
	case RX_DOWN:
	case RX_PENDING:
		json_object_foreach(c->hosts, id, host)
		{
			const char *st = json_string_value(json_object_get(host, "state"));
			int64_t seen = json_integer_value(json_object_get(host, "last_seen_ms"));
			if (lf->kind == RX_PENDING
			        ? strcmp(st, HOST_PENDING) == 0
			        : strcmp(st, HOST_DOWN) == 0 && c->now - seen >= lf->for_ms)
				set_put(c->sets[li], id, lf->text,
				        lf->kind == RX_DOWN ? (double)(c->now - seen) / 1000.0 : 1);
		}
		return 0;
	default: /* RX_EVENT */
		json_array_foreach(c->events, i, ev)
		{
			const char *hid = json_string_value(json_object_get(ev, "host_id"));
			const char *kind = json_string_value(json_object_get(ev, "kind"));
			int64_t at = json_integer_value(json_object_get(ev, "at_ms"));
			json_t *vals, *cnt;
			if (!hid || !kind || strcmp(kind, lf->event) != 0 ||
			    at <= (lf->for_ms ? c->now - lf->for_ms : c->events_since) ||
			    at > c->now)
				continue;
			vals = json_object_get(c->sets[li], hid);
			cnt = vals ? json_object_get(vals, lf->text) : NULL; /* a count of them */
			if (cnt)
				json_real_set(cnt, json_real_value(cnt) + 1);
			else
				set_put(c->sets[li], hid, lf->text, 1);
		}
		return 0;
	}
}

/* The hosts for which node holds, with their terms' values: a new object. */
static json_t *combine(struct rules_cycle *c, const struct rx_node *n)
{
	json_t *l, *r, *out;
	const char *host;
	json_t *vals;

	if (n->kind == RX_LEAF)
		return json_deep_copy(c->sets[n->leaf] ? c->sets[n->leaf] : json_object());
	l = combine(c, n->l);
	r = combine(c, n->r);
	if (!l || !r) {
		json_decref(l);
		json_decref(r);
		return NULL;
	}
	if (n->kind == RX_OR) {
		json_object_foreach(r, host, vals)
		{
			json_t *lv = json_object_get(l, host);
			if (lv)
				json_object_update_missing(lv, vals);
			else
				json_object_set(l, host, vals);
		}
		json_decref(r);
		return l;
	}
	out = json_object();
	json_object_foreach(l, host, vals)
	{
		json_t *rv = json_object_get(r, host);
		if (!rv || !out)
			continue;
		json_object_update(vals, rv);
		json_object_set(out, host, vals);
	}
	json_decref(l);
	json_decref(r);
	return out;
}

/* The hosts the rule's scope takes of matched. */
static void scope_filter(struct rules_cycle *c, const struct rule *r, json_t *matched)
{
	const char *host;
	json_t *vals;
	void *tmp;

	json_object_foreach_safe(matched, tmp, host, vals)
	{
		json_t *hj = json_object_get(c->hosts, host);
		if (!hj ||
		    (r->scope && !selector_match(r->scope, host, json_object_get(hj, "attrs"))))
			json_object_del(matched, host);
	}
}

/* Runs the cycle until it ends (0) or the slice does (1). */
static int cycle_run(struct rules *rs, struct rules_cycle *c)
{
	size_t nrules = c->only ? 1 : rs->n;

	/* The hosts first, a page at a time: reading 10,000 at once would hold the loop. */
	while (!c->hosts_done) {
		struct store *s = rs->h->store;
		json_t *page = NULL, *host;
		size_t i;
		if (s->ops->host_page(s, c->hosts_after, 500, &page) < 0) {
			/* Not a partial snapshot: the hosts missing from it would resolve their
			 * alerts. The cycle is dropped; the alerts stay as they are. */
			json_decref(page);
			c->failed = 1;
			return 0;
		}
		json_array_foreach(page, i, host)
		{
			const char *id = json_string_value(json_object_get(host, "id"));
			json_object_set(c->hosts, id, host);
			snprintf(c->hosts_after, sizeof(c->hosts_after), "%s", id);
		}
		c->hosts_done = json_array_size(page) < 500;
		json_decref(page);
		if (c->until && clk_mono_ms() >= c->until)
			return 1;
	}
	while (c->ri < nrules) {
		struct rule *r = c->only ? c->only : rs->v[c->ri];
		while (!c->settle.matched && c->li < r->expr->nleaves) {
			if (leaf_eval(rs, c, r, c->li))
				return 1;
			c->li++;
			c->pos = 0;
		}
		if (c->only)
			return 0;
		if (!c->settle.matched) {
			if (!(c->settle.matched = combine(c, r->expr->root)))
				c->settle.matched = json_object();
			scope_filter(c, r, c->settle.matched);
		}
		if (rules_settle(rs, r, &c->settle, c->hosts, c->now, c->until))
			return 1;
		json_decref(c->settle.matched);
		json_decref(c->settle.gone);
		memset(&c->settle, 0, sizeof(c->settle));
		for (size_t i = 0; i < r->expr->nleaves; i++)
			json_object_clear(c->sets[i]);
		c->li = 0;
		c->ri++;
		if (c->until && clk_mono_ms() >= c->until)
			return c->ri < nrules;
	}
	return 0;
}

/* Events that event(kind) terms see: the store's (the hub's host events, agents' and those
 * posted to POST /api/v1/events) since the previous cycle or the longest window an event term
 * has, newest RULES_EVENTS_MAX of them, and the task failures noted here. */
#define RULES_EVENTS_MAX 5000
static json_t *cycle_events(struct rules *rs, int64_t now, int64_t since)
{
	struct store *s = rs->h->store;
	struct store_events_query q = {.since_ms = since, .limit = RULES_EVENTS_MAX};
	json_t *ev = NULL;
	size_t i, k, any = 0;

	for (i = 0; i < rs->n; i++)
		for (k = 0; k < rs->v[i]->expr->nleaves; k++) {
			const struct rx_leaf *lf = &rs->v[i]->expr->leaves[k];
			if (lf->kind != RX_EVENT)
				continue;
			any = 1;
			if (lf->for_ms && now - lf->for_ms < q.since_ms)
				q.since_ms = now - lf->for_ms;
		}
	if (!any || s->ops->events_list(s, &q, &ev) < 0 || !ev) {
		json_decref(ev);
		ev = json_array();
	}
	return ev;
}

static struct rules_cycle *cycle_new(struct rules *rs, int64_t now, int64_t since)
{
	struct rules_cycle *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->now = now;
	c->events_since = since;
	/* The rule set's cache, unless a cycle is under way (`rules test` meanwhile). */
	if (!rs->cyc && (rs->wc || (rs->wc = calloc(1, sizeof(*rs->wc))))) {
		c->wc = rs->wc;
		wcache_reset(c->wc);
	} else if ((c->wc = calloc(1, sizeof(*c->wc)))) {
		c->wc_own = 1;
	} else {
		free(c);
		return NULL;
	}
	c->gen = rs->h->tsdb ? tsdb_generation(rs->h->tsdb) : 0;
	c->wall0 = clk_mono_ms();
	c->cpu0 = clock();
	if (!(c->hosts = json_object())) {
		cycle_free(c);
		return NULL;
	}
	c->events = cycle_events(rs, now, since);
	return c;
}

int rules_eval_now(struct rules *rs, struct rule *r, json_t **matched, char *msg, size_t msglen)
{
	struct rules_cycle *c = cycle_new(rs, clk_real_ms(), clk_real_ms() - 60000);

	*matched = NULL;
	if (!c) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	c->only = r;
	cycle_run(rs, c);
	if (c->failed) {
		cycle_free(c);
		snprintf(msg, msglen, "cannot read the hosts from the store: try again");
		return OUTPOST_E_UNAVAILABLE;
	}
	*matched = combine(c, r->expr->root);
	if (*matched)
		scope_filter(c, r, *matched);
	cycle_free(c);
	return *matched ? 0 : OUTPOST_E_INTERNAL;
}

static void rules_prune_history(struct rules *rs, int64_t now)
{
	struct store *s = rs->h->store;
	int64_t keep = rs->h->conf->alerts.keep_days * 86400000LL;
	int64_t n = 0;

	if (keep > 0)
		s->ops->alert_log_prune(s, now - keep, 500, &n);
}

static int64_t slice_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void rules_on_slice(void *arg)
{
	struct rules *rs = arg;
	struct rules_cycle *c = rs->cyc;
	int64_t wall = slice_us(CLOCK_MONOTONIC), cpu = slice_us(CLOCK_THREAD_CPUTIME_ID);
	int more;

	rs->slice_timer = NULL;
	if (!c)
		return;
	c->until = clk_mono_ms() + RULES_SLICE_MS;
	/* The slice's alert documents and history entries: one commit (a first cycle may move
	 * thousands of alerts; a commit each held the loop for 180 ms at a time). */
	hub_batch_begin(rs->h);
	more = cycle_run(rs, c);
	if (!more && !c->failed)
		rules_prune_history(rs, c->now);
	hub_batch_end(rs->h, "rules");
	if (c->failed) {
		log_warn(rs->h->log, "rules",
		         "cannot read the hosts from the store: cycle dropped, alerts unchanged");
		rules_cycle_abort(rs);
		return;
	}
	wall = slice_us(CLOCK_MONOTONIC) - wall;
	cpu = slice_us(CLOCK_THREAD_CPUTIME_ID) - cpu;
	if (wall > rs->max_slice_us)
		rs->max_slice_us = wall;
	if (cpu > rs->max_slice_cpu_us)
		rs->max_slice_cpu_us = cpu;
	if (more) {
		loop_timer_add(rs->h->loop, 0, 0, rules_on_slice, rs, &rs->slice_timer);
		return;
	}
	rs->cycles++;
	rs->last_cycle_ms = clk_mono_ms() - c->wall0;
	rs->last_cycle_cpu_us = (int64_t)((double)(clock() - c->cpu0) * 1e6 / CLOCKS_PER_SEC);
	rs->last_events_ms = c->now;
	rules_cycle_abort(rs);
}

static int rules_load_store(struct rules *rs, char *msg, size_t msglen);

/* The lead came to this hub (scale mode): what the hubs keep in the shared store (rules made
 * through any hub, alerts as the last leader's last slice left them, silences) replaces what
 * this hub held, so that an alert firing there goes on here, neither lost nor fired again.
 * File rules stay (each hub reads its own file); their alerts come from the store too. */
static void rules_take_over(struct rules *rs)
{
	char msg[300];

	rules_cycle_abort(rs);
	for (size_t j = rs->n; j-- > 0;) {
		struct rule *r = rs->v[j];
		if (r->from_file) {
			json_object_clear(r->alerts);
			json_object_clear(r->last_act);
			continue;
		}
		rule_free(r);
		memmove(&rs->v[j], &rs->v[j + 1], (rs->n - j - 1) * sizeof(*rs->v));
		rs->n--;
	}
	json_decref(rs->silences);
	rs->silences = NULL;
	if (rules_load_store(rs, msg, sizeof(msg)) < 0)
		log_warn(rs->h->log, "rules", "taking the lead: %s", msg);
	if (!rs->silences)
		rs->silences = json_array();
	log_info(rs->h->log, "rules", "leading: %zu rule(s) in force, their alerts from the store",
	         rs->n);
}

void rules_tick(struct hub *h)
{
	struct rules *rs = h->rules;
	int64_t now = clk_real_ms();

	if (!rs)
		return;
	rules_hook_drain(rs->hook, rs);
	/* Scale mode: the leader alone evaluates, so that each rule fires once; a hub that lost
	 * the lead drops its cycle under way, and one that takes it reads the store first. */
	if (!zk_leads(h->zk)) {
		rules_cycle_abort(rs);
		rs->led = 0;
		return;
	}
	if (!rs->led) {
		rules_take_over(rs);
		rs->led = 1;
	}
	if (rs->cyc || now < rs->next_ms || h->stopping)
		return;
	rs->next_ms = now + h->conf->rules.interval_s * 1000;
	if (!(rs->cyc = cycle_new(rs, now, rs->last_events_ms ? rs->last_events_ms : now - 1)))
		return;
	rules_on_slice(rs);
}

void rules_note(struct hub *h, const char *host, const char *kind, const char *task_id,
                const char *state)
{
	json_t *evs;
	char key[300], msg[300];
	int stored = 0;

	/* An event in the store, not a note in memory: a rule on it sees it after a restart of
	 * this hub and on the leading hub whichever hub the result reached. The key makes a
	 * result reported again store nothing more. */
	snprintf(key, sizeof(key), "%s/%s/%s", kind, task_id, host);
	snprintf(msg, sizeof(msg), "task %s ended %s", task_id, state);
	evs = json_pack("[{s:s, s:s, s:I, s:s, s:{s:s, s:s}, s:s}]", "kind", kind, "severity",
	                "warning", "ts", (json_int_t)clk_real_ms(), "message", msg, "data",
	                "task_id", task_id, "state", state, "key", key);
	if (!evs || h->store->ops->events_add(h->store, host, "hub", evs, &stored) < 0)
		log_warn(h->log, "rules", "event %s of task %s on %s not stored", kind, task_id,
		         host);
	json_decref(evs);
}

/* ---- Start and stop ---- */

static int doc_cmp(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	const char *k = json_object_get(x, "name") ? "name" : "id";
	const char *p = json_string_value(json_object_get(x, k));
	const char *q = json_string_value(json_object_get(y, k));

	return strcmp(p ? p : "", q ? q : "");
}

/* Every record of kind (rule, alert, silence), sorted by name or id: *docs, a new array. */
static int rules_docs(struct rules *rs, const char *kind, json_t **docs)
{
	struct store *s = rs->h->store;
	json_t **v;
	size_t i, n;
	int rc;

	if ((rc = s->ops->rec_list(s, kind, INT_MAX, docs)) < 0)
		return rc;
	n = json_array_size(*docs);
	if (n < 2 || !(v = malloc(n * sizeof(*v))))
		return 0;
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(*docs, i));
	qsort(v, n, sizeof(*v), doc_cmp);
	json_array_clear(*docs);
	for (i = 0; i < n; i++)
		json_array_append_new(*docs, v[i]);
	free(v);
	return 0;
}

static int rules_load_store(struct rules *rs, char *msg, size_t msglen)
{
	json_t *docs = NULL, *d;
	size_t i;
	int rc;

	if ((rc = rules_docs(rs, "rule", &docs)) < 0) {
		snprintf(msg, msglen, "rules: cannot read them from the store (%s)", err_name(rc));
		return rc;
	}
	json_array_foreach(docs, i, d)
	{
		struct rule *r;
		const char *field;
		char why[400];
		int col;
		if (rule_build(d, &r, &field, &col, why, sizeof(why)) < 0) {
			log_warn(rs->h->log, "rules", "stored rule %s left out: %s",
			         json_string_value(json_object_get(d, "name")), why);
			continue;
		}
		rules_install(rs, r);
	}
	json_decref(docs);
	/* Alerts as the last cycle left them (a restart neither fires nor resolves anything). */
	if ((rc = rules_docs(rs, "alert", &docs)) < 0)
		return rc;
	json_array_foreach(docs, i, d)
	{
		struct rule *r = rules_find(rs, json_string_value(json_object_get(d, "rule")));
		const char *host = json_string_value(json_object_get(d, "host"));
		if (!r || !host)
			continue;
		json_object_set(r->alerts, host, d);
		/* its cooldown goes on from its last action */
		if (json_object_get(d, "last_action_ms"))
			json_object_set(r->last_act, host, json_object_get(d, "last_action_ms"));
	}
	json_decref(docs);
	if ((rc = rules_docs(rs, "silence", &rs->silences)) < 0)
		return rc;
	return 0;
}

int rules_new(struct hub *h, struct rules **out, char *msg, size_t msglen)
{
	struct rules *rs = calloc(1, sizeof(*rs));
	const char *file = h->conf->rules.file;
	int rc;

	*out = NULL;
	if (!rs)
		goto oom;
	rs->h = h;
	if (file && *file && !(rs->file = strdup(file)))
		goto oom;
	h->rules = rs;
	if ((rc = rules_load_store(rs, msg, msglen)) < 0 ||
	    (rc = rules_load_file(rs, msg, msglen)) < 0 ||
	    (rc = rules_hook_start(h, &rs->hook, msg, msglen)) < 0) {
		h->rules = NULL;
		rules_free(rs);
		return rc;
	}
	rs->next_ms = clk_real_ms() + 1000;
	rs->led = 1; /* what it leads with was read just now */
	*out = rs;
	return 0;
oom:
	free(rs);
	snprintf(msg, msglen, "out of memory");
	return OUTPOST_E_INTERNAL;
}

void rules_free(struct rules *rs)
{
	if (!rs)
		return;
	rules_hook_stop(rs->hook);
	if (rs->slice_timer)
		loop_timer_del(rs->h->loop, rs->slice_timer);
	rules_cycle_abort(rs);
	wcache_free(rs->wc);
	for (size_t i = 0; i < rs->n; i++)
		rule_free(rs->v[i]);
	free(rs->v);
	free(rs->file);
	json_decref(rs->silences);
	free(rs);
}

void rules_stats(struct hub *h, struct buf *b)
{
	struct rules *rs = h->rules;
	unsigned long long sent = 0, failed = 0;
	size_t firing = 0, pending = 0;

	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		const char *host;
		json_t *a;
		json_object_foreach(rs->v[i]->alerts, host, a)
		{
			if (strcmp(json_string_value(json_object_get(a, "state")), "firing") == 0)
				firing++;
			else
				pending++;
		}
	}
	rules_hook_stats(rs->hook, &sent, &failed);
	buf_printf(
	    b,
	    "# HELP outpost_hub_rules Rules in force.\n# TYPE outpost_hub_rules gauge\n"
	    "outpost_hub_rules %zu\n"
	    "# HELP outpost_hub_alerts Alerts by state.\n# TYPE outpost_hub_alerts gauge\n"
	    "outpost_hub_alerts{state=\"pending\"} %zu\noutpost_hub_alerts{state=\"firing\"} "
	    "%zu\n"
	    "# TYPE outpost_hub_rule_cycles_total counter\noutpost_hub_rule_cycles_total %llu\n"
	    "# HELP outpost_hub_rule_cycle_seconds The last evaluation cycle: wall time, "
	    "CPU time, longest slice.\n# TYPE outpost_hub_rule_cycle_seconds gauge\n"
	    "outpost_hub_rule_cycle_seconds{what=\"wall\"} %.3f\n"
	    "outpost_hub_rule_cycle_seconds{what=\"cpu\"} %.6f\n"
	    "outpost_hub_rule_cycle_seconds{what=\"max_slice\"} %.6f\n"
	    "# TYPE outpost_hub_rule_actions_total counter\n"
	    "outpost_hub_rule_actions_total{outcome=\"started\"} %llu\n"
	    "outpost_hub_rule_actions_total{outcome=\"suppressed\"} %llu\n"
	    "outpost_hub_rule_actions_total{outcome=\"webhook_sent\"} %llu\n"
	    "outpost_hub_rule_actions_total{outcome=\"webhook_failed\"} %llu\n",
	    rs->n, pending, firing, rs->cycles, (double)rs->last_cycle_ms / 1000.0,
	    (double)rs->last_cycle_cpu_us / 1e6, (double)rs->max_slice_us / 1e6, rs->actions,
	    rs->suppressed, sent, failed);
}
