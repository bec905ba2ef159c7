/* Text for people: see output.h. */
#include "output.h"

#include <ctype.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Appends s[0..n) with control characters escaped; keep_tab keeps '\t' as it is. */
static int out_escape(struct buf *b, const char *s, size_t n, int keep_tab)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3] = {'^', 0, 0};
		size_t skip = 1;

		if (c >= 0x20 && c != 0x7f &&
		    !(c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		      (unsigned char)s[i + 1] <= 0x9f))
			continue;
		if (c == '\t' && keep_tab)
			continue;
		if (buf_append(b, s + start, i - start) < 0)
			return -1;
		if (c == 0xc2) {
			/* A C1 control (U+0080..U+009F): some terminals obey them too. */
			if (buf_puts(b, "\xef\xbf\xbd") < 0)
				return -1;
			skip = 2;
		} else {
			esc[1] = c == 0x7f ? '?' : (char)(c + '@');
			if (buf_append(b, esc, 2) < 0)
				return -1;
		}
		i += skip - 1;
		start = i + 1;
	}
	return buf_append(b, s + start, n - start);
}

int out_text(struct buf *b, const char *s)
{
	return out_escape(b, s ? s : "", s ? strlen(s) : 0, 0);
}

int out_lines(struct buf *b, const char *text, const char *prefix)
{
	const char *p = text;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		size_t shown = n > 0 && p[n - 1] == '\r' ? n - 1 : n;

		if (buf_puts(b, prefix) < 0 || out_escape(b, p, shown, 1) < 0 ||
		    buf_puts(b, "\n") < 0)
			return -1;
		p = nl ? nl + 1 : p + n;
	}
	return 0;
}

static const char *const out_final[] = {"ok",      "failed",  "timeout",   "lost",
                                        "refused", "expired", "cancelled", NULL};

int out_state_final(const char *state)
{
	for (size_t i = 0; state && out_final[i]; i++)
		if (strcmp(state, out_final[i]) == 0)
			return 1;
	return 0;
}

int out_state_bad(const char *state)
{
	return out_state_final(state) && strcmp(state, "ok") != 0;
}

static int64_t out_int(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *out_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

void out_counts(const json_t *task, struct out_counts *c)
{
	const json_t *counts = json_object_get(task, "counts");
	const char *k;
	json_t *v;

	memset(c, 0, sizeof(*c));
	json_object_foreach((json_t *)counts, k, v)
	{
		int64_t n = json_integer_value(v);
		if (strcmp(k, "ok") == 0)
			c->ok += n;
		else if (out_state_bad(k))
			c->bad += n;
		else
			c->pending += n;
	}
	c->done = c->ok + c->bad;
	c->total = json_is_integer(json_object_get(task, "total")) ? out_int(task, "total")
	                                                           : c->done + c->pending;
}

/* Why a host has no answer, by its state. */
static const char *out_no_answer(const char *state)
{
	static const struct {
		const char *state, *why;
	} why[] = {
	    {"timeout", "no answer within the task's timeout"},
	    {"lost", "the agent stopped while running it; the outcome is unknown"},
	    {"refused", "the agent refused the task (bad signature, wrong host, expired or "
	                "replayed; see the agent's log)"},
	    {"expired", "the host did not take the task before it expired"},
	    {"cancelled", "cancelled before it started"},
	    {"failed", "no answer"},
	};
	for (size_t i = 0; i < sizeof(why) / sizeof(why[0]); i++)
		if (strcmp(state, why[i].state) == 0)
			return why[i].why;
	return NULL;
}

/* timed 0: no time shown at all (grouped outcomes, where times differ by host). */
static int out_exec_result(struct buf *b, const json_t *r, int64_t dur, int timed)
{
	const json_t *code = json_object_get(r, "exit_code");
	const char *sig = out_str(r, "signal");
	static const char *const streams[][2] = {{"stdout", OUT_INDENT}, {"stderr", OUT_STDERR}};
	int rc = 0;

	if (json_is_true(json_object_get(r, "timed_out")))
		rc = buf_puts(b, ", killed at its timeout");
	else if (json_is_true(json_object_get(r, "agent_stopped")))
		rc = buf_puts(b, ", killed: the agent stopped while it ran");
	else if (json_is_integer(code))
		rc = buf_printf(b, ", exit %" PRId64, (int64_t)json_integer_value(code));
	else if (sig)
		rc = buf_puts(b, ", killed by ") < 0 ? -1 : out_text(b, sig);
	if (!timed)
		dur = -1;
	else if (json_is_integer(json_object_get(r, "duration_ms")))
		dur = out_int(r, "duration_ms");
	if (rc < 0 ||
	    (dur >= 0 &&
	     (buf_puts(b, " (") < 0 || out_duration(b, dur) < 0 || buf_puts(b, ")") < 0)) ||
	    buf_puts(b, "\n") < 0)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		char key[32];
		if (out_lines(b, out_str(r, streams[i][0]), streams[i][1]) < 0)
			return -1;
		snprintf(key, sizeof(key), "%s_truncated", streams[i][0]);
		if (json_is_true(json_object_get(r, key)) &&
		    buf_printf(b, "%s[%s truncated]\n", streams[i][1], streams[i][0]) < 0)
			return -1;
		snprintf(key, sizeof(key), "%s_base64", streams[i][0]);
		if (json_object_get(r, key) &&
		    buf_printf(b, "%s[%s is not UTF-8 text: exact bytes in %s with --json]\n",
		               streams[i][1], streams[i][0], key) < 0)
			return -1;
	}
	return 0;
}

static int out_put_result(struct buf *b, const json_t *r, int64_t dur)
{
	const char *mode = out_str(r, "mode");

	if (buf_puts(b, json_is_false(json_object_get(r, "changed")) ? ", unchanged"
	                                                             : ", changed") < 0 ||
	    buf_printf(b, " (%" PRId64 " bytes", out_int(r, "size")) < 0 ||
	    (mode && (buf_puts(b, ", mode ") < 0 || out_text(b, mode) < 0)) ||
	    (dur >= 0 && (buf_puts(b, ", ") < 0 || out_duration(b, dur) < 0)) ||
	    buf_puts(b, ")\n") < 0)
		return -1;
	return 0;
}

static int out_any_result(struct buf *b, const json_t *r, int64_t dur)
{
	char *text;
	int rc;

	if (dur >= 0 && (buf_puts(b, " (") < 0 || out_duration(b, dur) < 0 || buf_puts(b, ")") < 0))
		return -1;
	if (buf_puts(b, "\n") < 0)
		return -1;
	if (!r || json_is_null(r))
		return 0;
	/* Short results on one line, so a thousand hosts stay readable; longer ones indented. */
	text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	if (text && strlen(text) > OUT_ONE_LINE) {
		free(text);
		text = json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	}
	if (!text)
		return -1;
	rc = out_lines(b, text, OUT_INDENT);
	free(text);
	return rc;
}

/* What follows "id: " on a host's header line, and its output; timed: with durations. */
static int out_outcome(struct buf *b, const char *plugin, const char *op, const json_t *host,
                       int timed)
{
	const char *state = out_str(host, "state");
	const json_t *resp = json_object_get(host, "response");
	const json_t *err = json_object_get(resp, "error");
	int64_t started = out_int(host, "started_ms"), finished = out_int(host, "finished_ms");
	int64_t dur = timed && started > 0 && finished >= started ? finished - started : -1;

	if (!state)
		state = "unknown";
	if (out_text(b, state) < 0)
		return -1;
	if (json_is_true(json_object_get(resp, "ok"))) {
		const json_t *r = json_object_get(resp, "result");
		if (plugin && op && strcmp(plugin, "exec") == 0 && strcmp(op, "run") == 0)
			return out_exec_result(b, r, dur, timed);
		if (plugin && op && strcmp(plugin, "file") == 0 && strcmp(op, "put") == 0)
			return out_put_result(b, r, dur);
		return out_any_result(b, r, dur);
	}
	if (err) {
		if (buf_puts(b, ": ") < 0 || out_text(b, out_str(err, "code")) < 0 ||
		    buf_puts(b, ": ") < 0 || out_text(b, out_str(err, "message")) < 0 ||
		    buf_puts(b, "\n") < 0)
			return -1;
		return 0;
	}
	if (out_no_answer(state) &&
	    (buf_puts(b, ": ") < 0 || buf_puts(b, out_no_answer(state)) < 0))
		return -1;
	return buf_puts(b, "\n");
}

int out_host(struct buf *b, const char *plugin, const char *op, const json_t *host)
{
	if (out_text(b, out_str(host, "host_id")) < 0 || buf_puts(b, ": ") < 0)
		return -1;
	return out_outcome(b, plugin, op, host, 1);
}

/* ---- Node sets: web01 web02 web03 db1 -> db1,web[01-03] ---- */

struct out_node {
	const char *id;
	size_t pre;   /* bytes before the last run of digits */
	size_t ndig;  /* digits in it (0: none) */
	long long n;  /* its value */
	size_t width; /* zero-padded width, or 0 when not padded */
};

static void out_node_parse(struct out_node *nd, const char *id)
{
	size_t len = strlen(id), e = len, s;

	memset(nd, 0, sizeof(*nd));
	nd->id = id;
	while (e > 0 && !isdigit((unsigned char)id[e - 1]))
		e--;
	s = e;
	while (s > 0 && isdigit((unsigned char)id[s - 1]))
		s--;
	nd->pre = s;
	nd->ndig = e - s;
	if (nd->ndig == 0 || nd->ndig > 18) {
		nd->pre = len, nd->ndig = 0;
		return;
	}
	nd->n = strtoll(id + s, NULL, 10);
	nd->width = id[s] == '0' && nd->ndig > 1 ? nd->ndig : 0;
}

/* Same prefix and suffix around the number: they fold into one bracket. */
static int out_node_same_pattern(const struct out_node *a, const struct out_node *b)
{
	return a->ndig && b->ndig && a->pre == b->pre && strncmp(a->id, b->id, a->pre) == 0 &&
	       strcmp(a->id + a->pre + a->ndig, b->id + b->pre + b->ndig) == 0;
}

/* By pattern (prefix, suffix), then number, whatever the padding. */
static int out_node_cmp_pattern(const void *x, const void *y)
{
	const struct out_node *a = x, *b = y;
	int c;

	if (out_node_same_pattern(a, b))
		return a->n < b->n ? -1 : a->n > b->n ? 1 : strcmp(a->id, b->id);
	/* Group by pattern: prefix, then suffix, then the whole id. */
	c = strncmp(a->id, b->id, a->pre < b->pre ? a->pre : b->pre);
	if (c == 0 && a->pre != b->pre)
		c = a->pre < b->pre ? -1 : 1;
	if (c == 0)
		c = strcmp(a->id + a->pre + a->ndig, b->id + b->pre + b->ndig);
	return c ? c : strcmp(a->id, b->id);
}

/* By pattern, then padding, then number. */
static int out_node_cmp(const void *x, const void *y)
{
	const struct out_node *a = x, *b = y;

	if (out_node_same_pattern(a, b)) {
		if (a->width != b->width)
			return a->width < b->width ? -1 : 1;
		return a->n < b->n ? -1 : a->n > b->n;
	}
	return out_node_cmp_pattern(a, b);
}

/* Sorts nd by pattern, then padding, then number. A number written without padding joins a
 * padded range of its own length (web10 with web01..web09: web[01-10]). */
static void out_node_sort(struct out_node *nd, size_t n)
{
	qsort(nd, n, sizeof(*nd), out_node_cmp_pattern);
	for (size_t i = 0, j; i < n; i = j) {
		int padded[19] = {0};
		for (j = i; j < n && (j == i || out_node_same_pattern(&nd[i], &nd[j])); j++)
			if (nd[j].width)
				padded[nd[j].width] = 1;
		for (size_t k = i; k < j; k++)
			if (!nd[k].width && nd[k].ndig > 1 && padded[nd[k].ndig])
				nd[k].width = nd[k].ndig;
		qsort(nd + i, j - i, sizeof(*nd), out_node_cmp);
	}
}

/* A number as it was written: zero-padded to the node's width. */
static int out_node_num(struct buf *b, const struct out_node *nd, long long n)
{
	return buf_printf(b, "%0*lld", (int)nd->width, n);
}

int out_nodeset(struct buf *b, const json_t *ids)
{
	size_t n = json_array_size(ids), i = 0, k;
	struct out_node *nd = calloc(n ? n : 1, sizeof(*nd));
	int rc = -1;

	if (!nd)
		return -1;
	for (k = 0; k < n; k++)
		out_node_parse(&nd[k], json_string_value(json_array_get(ids, k))
		                           ? json_string_value(json_array_get(ids, k))
		                           : "?");
	out_node_sort(nd, n);
	while (i < n) {
		size_t j = i + 1;
		/* nd[i..j): one pattern, one padding. */
		while (j < n && out_node_same_pattern(&nd[i], &nd[j]) && nd[j].width == nd[i].width)
			j++;
		if (i > 0 && buf_puts(b, ",") < 0)
			goto out;
		if (j - i == 1) {
			if (out_text(b, nd[i].id) < 0)
				goto out;
			i = j;
			continue;
		}
		{
			struct buf pre = BUF_INIT;
			int bad = buf_printf(&pre, "%.*s", (int)nd[i].pre, nd[i].id) < 0 ||
			          out_text(b, pre.data) < 0 || buf_puts(b, "[") < 0;
			buf_free(&pre);
			if (bad)
				goto out;
		}
		for (size_t r = i; r < j;) {
			size_t e = r;
			while (e + 1 < j && nd[e + 1].n <= nd[e].n + 1)
				e++;
			if ((r > i && buf_puts(b, ",") < 0) ||
			    out_node_num(b, &nd[r], nd[r].n) < 0 ||
			    (nd[e].n != nd[r].n &&
			     (buf_puts(b, "-") < 0 || out_node_num(b, &nd[e], nd[e].n) < 0)))
				goto out;
			r = e + 1;
		}
		if (buf_puts(b, "]") < 0 || out_text(b, nd[i].id + nd[i].pre + nd[i].ndig) < 0)
			goto out;
		i = j;
	}
	rc = 0;
out:
	free(nd);
	return rc;
}

int out_groups(struct buf *b, const char *plugin, const char *op, const json_t *hosts)
{
	json_t *groups = json_object(), *order = json_array(), *g, *ids, *v;
	struct buf text = BUF_INIT;
	size_t i;
	int rc = -1;

	if (!groups || !order)
		goto out;
	/* Hosts by the text of their outcome, in the order outcomes first appeared. */
	json_array_foreach(hosts, i, v)
	{
		buf_reset(&text);
		if (out_outcome(&text, plugin, op, v, 0) < 0 || !text.data)
			goto out;
		if (!(ids = json_object_get(groups, text.data))) {
			if (json_object_set_new(groups, text.data, ids = json_array()) < 0 ||
			    json_array_append_new(order, json_string(text.data)) < 0)
				goto out;
		}
		if (json_array_append(ids, json_object_get(v, "host_id")) < 0)
			goto out;
	}
	/* Most hosts first: the odd ones out come last, next to the summary. */
	for (size_t done = 0; done < json_array_size(order); done++) {
		size_t best = 0, best_n = 0;
		const char *key = NULL;
		json_array_foreach(order, i, g)
		{
			size_t n =
			    json_is_string(g)
			        ? json_array_size(json_object_get(groups, json_string_value(g)))
			        : 0;
			if (n > best_n)
				best = i, best_n = n;
		}
		g = json_array_get(order, best);
		key = json_string_value(g);
		ids = json_object_get(groups, key);
		if (out_nodeset(b, ids) < 0 ||
		    buf_printf(b, " (%zu host%s): ", best_n, best_n == 1 ? "" : "s") < 0 ||
		    buf_puts(b, key) < 0)
			goto out;
		json_array_set_new(order, best, json_null());
	}
	rc = 0;
out:
	buf_free(&text);
	json_decref(groups);
	json_decref(order);
	return rc;
}

int out_progress(struct buf *b, const struct out_counts *c)
{
	return buf_printf(b, "%" PRId64 "/%" PRId64 " done, %" PRId64 " failed", c->done, c->total,
	                  c->bad);
}

int out_summary(struct buf *b, const json_t *task, const json_t *bad_ids, int64_t elapsed_ms)
{
	static const char *const order[] = {"ok",      "failed",  "timeout",   "lost",
	                                    "refused", "expired", "cancelled", NULL};
	const json_t *counts = json_object_get(task, "counts");
	struct out_counts c;
	size_t i, n = json_array_size(bad_ids);
	json_t *v;

	out_counts(task, &c);
	if (buf_puts(b, "task ") < 0 || out_text(b, out_str(task, "id")) < 0)
		return -1;
	if (c.total == 0)
		return buf_puts(b, ": no host matched the target\n");
	if (buf_printf(b, ": %" PRId64 " host%s", c.total, c.total == 1 ? "" : "s") < 0)
		return -1;
	for (i = 0; order[i]; i++) {
		int64_t k = out_int(counts, order[i]);
		if ((k > 0 || i == 0) && buf_printf(b, ", %" PRId64 " %s", k, order[i]) < 0)
			return -1;
	}
	if (c.pending > 0 && buf_printf(b, ", %" PRId64 " unfinished", c.pending) < 0)
		return -1;
	if (elapsed_ms >= 0 && (buf_puts(b, " in ") < 0 || out_duration(b, elapsed_ms) < 0))
		return -1;
	if (buf_puts(b, "\n") < 0)
		return -1;
	if (n == 0)
		return 0;
	if (buf_puts(b, "not ok:") < 0)
		return -1;
	json_array_foreach(bad_ids, i, v)
	{
		if (i == OUT_MAX_LISTED)
			break;
		if (buf_puts(b, " ") < 0 || out_text(b, json_string_value(v)) < 0)
			return -1;
	}
	if (n > OUT_MAX_LISTED) {
		if (buf_printf(b, " and %zu more (outpost tasks show ", n - OUT_MAX_LISTED) < 0 ||
		    out_text(b, out_str(task, "id")) < 0 || buf_puts(b, ")") < 0)
			return -1;
	}
	return buf_puts(b, "\n");
}

int out_task_head(struct buf *b, const json_t *task)
{
	struct out_counts c;
	char *args = json_dumps(json_object_get(task, "args"),
	                        JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	int rc = -1;

	out_counts(task, &c);
	if (buf_puts(b, "task:    ") < 0 || out_text(b, out_str(task, "id")) < 0 ||
	    buf_puts(b, "\ntarget:  ") < 0 || out_text(b, out_str(task, "target")) < 0 ||
	    buf_puts(b, "\nop:      ") < 0 || out_text(b, out_str(task, "plugin")) < 0 ||
	    buf_puts(b, ".") < 0 || out_text(b, out_str(task, "op")) < 0)
		goto out;
	if (args) {
		/* Arguments can be a whole file (cp): the start says what it was. */
		size_t n = strlen(args);
		if (n > 200)
			strcpy(args + 197, "...");
		if (buf_puts(b, " ") < 0 || out_text(b, args) < 0)
			goto out;
	}
	if (buf_puts(b, "\nstate:   ") < 0 || out_text(b, out_str(task, "state")) < 0 ||
	    buf_puts(b, "\ncreated: ") < 0 || out_time(b, out_int(task, "created_ms")) < 0 ||
	    buf_puts(b, "\nexpires: ") < 0 || out_time(b, out_int(task, "expires_ms")) < 0 ||
	    buf_printf(b,
	               "\nhosts:   %" PRId64 " total, %" PRId64 " ok, %" PRId64 " not ok, %" PRId64
	               " unfinished\n",
	               c.total, c.ok, c.bad, c.pending) < 0)
		goto out;
	rc = 0;
out:
	free(args);
	return rc;
}

int out_duration(struct buf *b, int64_t ms)
{
	int64_t s = ms / 1000;

	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		return buf_printf(b, "%" PRId64 "ms", ms);
	if (ms < 60000)
		return buf_printf(b, "%" PRId64 ".%" PRId64 "s", s, ms % 1000 / 100);
	if (s < 3600)
		return buf_printf(b, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	if (s < 86400)
		return buf_printf(b, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	return buf_printf(b, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
}

int out_time(struct buf *b, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char text[32];

	if (ms <= 0)
		return buf_puts(b, "-");
	if (!localtime_r(&t, &tm) || strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return buf_printf(b, "@%" PRId64, ms / 1000);
	return buf_puts(b, text);
}

int out_age(struct buf *b, int64_t now_ms, int64_t ms)
{
	int64_t s;

	if (ms <= 0)
		return buf_puts(b, "never");
	s = now_ms > ms ? (now_ms - ms) / 1000 : 0;
	if (s < 60)
		return buf_printf(b, "%" PRId64 "s ago", s);
	if (s < 3600)
		return buf_printf(b, "%" PRId64 "m ago", s / 60);
	if (s < 86400)
		return buf_printf(b, "%" PRId64 "h ago", s / 3600);
	return buf_printf(b, "%" PRId64 "d ago", s / 86400);
}

int out_labels(struct buf *b, const json_t *labels)
{
	const char *k;
	json_t *v;
	int first = 1;

	json_object_foreach((json_t *)labels, k, v)
	{
		char *text =
		    json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		int rc = (!first && buf_puts(b, ",") < 0) || out_text(b, k) < 0 ||
		                 buf_puts(b, "=") < 0 ||
		                 out_text(b, json_is_string(v) ? json_string_value(v) : text) < 0
		             ? -1
		             : 0;
		free(text);
		if (rc < 0)
			return -1;
		first = 0;
	}
	return first ? buf_puts(b, "-") : 0;
}

int out_flat(struct buf *b, const char *indent, const char *prefix, const json_t *v)
{
	if (json_is_object(v) && json_object_size(v) > 0) {
		const char *k;
		json_t *child;
		json_object_foreach((json_t *)v, k, child)
		{
			struct buf key = BUF_INIT;
			int rc = buf_printf(&key, "%s%s%s", prefix, *prefix ? "." : "", k) < 0
			             ? -1
			             : out_flat(b, indent, key.data, child);
			buf_free(&key);
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	{
		char *text =
		    json_is_string(v)
		        ? NULL
		        : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
		int rc = buf_puts(b, indent) < 0 || out_text(b, prefix) < 0 ||
		                 buf_puts(b, ": ") < 0 ||
		                 out_text(b, json_is_string(v) ? json_string_value(v) : text) < 0 ||
		                 buf_puts(b, "\n") < 0
		             ? -1
		             : 0;
		free(text);
		return rc;
	}
}

struct out_table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, row 0 the header */
};

struct out_table *out_table_new(size_t ncols, const char *const *header)
{
	struct out_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	if (out_table_add(t, header) < 0) {
		out_table_free(t);
		return NULL;
	}
	return t;
}

int out_table_add(struct out_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));
		if (!p)
			return -1;
		t->cells = p;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		struct buf cell = BUF_INIT;
		if (out_text(&cell, cells[i] ? cells[i] : "-") < 0) {
			buf_free(&cell);
			for (size_t j = 0; j < i; j++)
				free(t->cells[t->nrows * t->ncols + j]);
			return -1;
		}
		t->cells[t->nrows * t->ncols + i] = buf_steal(&cell);
	}
	t->nrows++;
	return 0;
}

/* Characters shown, counting a UTF-8 sequence as one. */
static size_t out_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

int out_table_render(const struct out_table *t, struct buf *b)
{
	size_t *width = calloc(t->ncols, sizeof(*width));

	if (!width)
		return -1;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = out_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			int last = c + 1 == t->ncols;
			if (buf_puts(b, cell) < 0 ||
			    (!last &&
			     buf_printf(b, "%*s", (int)(width[c] - out_width(cell) + 2), "") < 0)) {
				free(width);
				return -1;
			}
		}
		if (buf_puts(b, "\n") < 0) {
			free(width);
			return -1;
		}
	}
	free(width);
	return 0;
}

void out_table_free(struct out_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int out_table_rows(struct buf *b, size_t ncols, const char *const *header, const json_t *list,
                   out_row_fn row, const void *arg)
{
	struct out_table *t = out_table_new(ncols, header);
	const char **cells = calloc(ncols, sizeof(*cells));
	struct buf scratch[OUT_ROW_BUFS];
	const json_t *item;
	size_t i;
	int rc = -1;

	for (i = 0; i < OUT_ROW_BUFS; i++)
		scratch[i] = (struct buf)BUF_INIT;
	if (!t || !cells)
		goto out;
	json_array_foreach(list, i, item)
	{
		int r;

		memset(cells, 0, ncols * sizeof(*cells));
		r = row(item, arg, scratch, cells) < 0 || out_table_add(t, cells) < 0 ? -1 : 0;
		/* Freed, not emptied: a scratch buffer the next row leaves unwritten is NULL ("-").
		 */
		for (size_t k = 0; k < OUT_ROW_BUFS; k++)
			buf_free(&scratch[k]);
		if (r < 0)
			goto out;
	}
	rc = out_table_render(t, b);
out:
	for (i = 0; i < OUT_ROW_BUFS; i++)
		buf_free(&scratch[i]);
	free(cells);
	out_table_free(t);
	return rc;
}
