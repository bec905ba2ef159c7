/* outpost metrics ls | latest | query: the hub's metric queries (docs/metrics.md, "Queries"),
 * as tables, small terminal charts, or the API's JSON. */
#include "args.h"
#include "chart.h"
#include "cli.h"
#include "output.h"
#include "req.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define METRICS_MAX_MATCH 16
#define METRICS_WIDE 6   /* up to this many series: one column each; more: a summary row each */
#define METRICS_CHARTS 8 /* charts drawn at most */

enum { M_LS, M_LATEST, M_QUERY };

struct mopts {
	const char *name, *target, *from, *to, *step, *agg;
	const char *match[METRICS_MAX_MATCH];
	size_t nmatch;
	long long limit;
	int chart;
};

enum {
	OPT_NAME = 0x100,
	OPT_MATCH,
	OPT_FROM,
	OPT_TO,
	OPT_STEP,
	OPT_AGG,
	OPT_CHART,
	OPT_LIMIT,
};

/* Options and operands of the three commands: 0, or the exit status to end with. */
static int metrics_args(struct cli *c, int argc, char **argv, int kind, struct mopts *o)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, OPT_NAME},
	    {"target", required_argument, NULL, 't'},
	    {"match", required_argument, NULL, OPT_MATCH},
	    {"from", required_argument, NULL, OPT_FROM},
	    {"to", required_argument, NULL, OPT_TO},
	    {"step", required_argument, NULL, OPT_STEP},
	    {"agg", required_argument, NULL, OPT_AGG},
	    {"chart", no_argument, NULL, OPT_CHART},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = cli_getopt(c, argc, argv, "t:", opts)) != -1) {
		int ok = 1;
		switch (ch) {
		case 't':
			o->target = optarg;
			break;
		case OPT_NAME:
			ok = kind == M_LS;
			o->name = optarg;
			break;
		case OPT_MATCH:
			if (o->nmatch == METRICS_MAX_MATCH)
				return cli_usage(c, "--match: at most %d", METRICS_MAX_MATCH);
			if (!strchr(optarg, '='))
				return cli_usage(c,
				                 "--match: '%s' is not a matcher: label=value, "
				                 "label!=value, label=~regex or label!~regex",
				                 optarg);
			o->match[o->nmatch++] = optarg;
			break;
		case OPT_FROM:
			ok = kind == M_QUERY;
			o->from = optarg;
			break;
		case OPT_TO:
			ok = kind == M_QUERY;
			o->to = optarg;
			break;
		case OPT_STEP:
			ok = kind == M_QUERY;
			o->step = optarg;
			break;
		case OPT_AGG:
			ok = kind == M_QUERY;
			o->agg = optarg;
			break;
		case OPT_CHART:
			ok = kind == M_QUERY;
			o->chart = 1;
			break;
		case OPT_LIMIT:
			ok = kind != M_QUERY;
			if (ok && args_int(optarg, 1, 100000, &o->limit) < 0)
				return cli_usage(c, "--limit: '%s' is not a count from 1 to 100000",
				                 optarg);
			break;
		default:
			return cli_getopt_exit(ch);
		}
		if (!ok)
			return cli_usage(c, "option '%s' does not apply to this command",
			                 argv[optind - 1]);
	}
	if (kind != M_LS) {
		if (optind >= argc)
			return cli_usage(c,
			                 "give the metric's name (outpost metrics ls lists them)");
		o->name = argv[optind++];
	}
	if (optind < argc) {
		if (o->target)
			return cli_usage(c, "give the hosts once: -t SELECTOR or SELECTOR");
		o->target = argv[optind++];
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s' (quote a selector with spaces)",
		                 argv[optind]);
	return 0;
}

static int metrics_path(struct buf *b, const char *route, const struct mopts *o)
{
	char limit[32];
	int rc = buf_printf(b, "/api/v1/metrics/%s", route);

	rc = rc ? rc : req_param(b, "name", o->name);
	for (size_t i = 0; rc == 0 && i < o->nmatch; i++)
		rc = req_param(b, "match", o->match[i]);
	rc = rc ? rc : req_param(b, "hosts", o->target);
	rc = rc ? rc : req_param(b, "from", o->from);
	rc = rc ? rc : req_param(b, "to", o->to);
	rc = rc ? rc : req_param(b, "step", o->step);
	rc = rc ? rc : req_param(b, "agg", o->agg);
	snprintf(limit, sizeof(limit), "%lld", o->limit);
	return rc ? rc : req_param(b, "limit", o->limit ? limit : NULL);
}

/* A value as the API gives it: a number, or "NaN", "+Inf", "-Inf". */
static double metrics_value(const json_t *v)
{
	const char *s = json_string_value(v);

	if (json_is_number(v))
		return json_number_value(v);
	if (s && strcmp(s, "+Inf") == 0)
		return INFINITY;
	if (s && strcmp(s, "-Inf") == 0)
		return -INFINITY;
	return NAN;
}

static int put_value(struct buf *b, double v)
{
	if (isnan(v))
		return buf_puts(b, "NaN");
	if (isinf(v))
		return buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	if (v == floor(v) && fabs(v) < 1e15)
		return buf_printf(b, "%.0f", v);
	return buf_printf(b, "%.6g", v);
}

/* The call and, with --json, the printing; *result for the caller otherwise. 0 or exit. */
static int metrics_fetch(struct cli *c, const char *route, const struct mopts *o, json_t **result)
{
	struct buf path = BUF_INIT;
	int rc;

	*result = NULL;
	if (metrics_path(&path, route, o) < 0) {
		buf_free(&path);
		return CLI_EXIT_HUB;
	}
	rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, result);
	buf_free(&path);
	return rc;
}

static void metrics_truncated(const json_t *result, size_t shown)
{
	if (json_is_true(json_object_get(result, "truncated")))
		fprintf(stderr,
		        "outpost: showing the first %zu series only: narrow with a selector, "
		        "--name or --match, or raise --limit\n",
		        shown);
}

static int metrics_none(const struct mopts *o)
{
	fprintf(stderr, "outpost: no series%s%s match%s%s\n", o->name ? " of " : "",
	        o->name ? o->name : "", o->target ? " on hosts " : "", o->target ? o->target : "");
	return CLI_EXIT_FAILED;
}

static int ls_row(const json_t *s, const void *arg, struct buf *scratch, const char **cells)
{
	const int64_t *now = arg;

	if (out_labels(&scratch[0], json_object_get(s, "labels")) < 0 ||
	    out_time(&scratch[1], json_integer_value(json_object_get(s, "first_ms"))) < 0 ||
	    out_age(&scratch[2], *now, json_integer_value(json_object_get(s, "last_ms"))) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(s, "host"));
	cells[1] = json_string_value(json_object_get(s, "name"));
	cells[2] = scratch[0].data;
	cells[3] = scratch[1].data;
	cells[4] = scratch[2].data;
	return 0;
}

static int latest_row(const json_t *s, const void *arg, struct buf *scratch, const char **cells)
{
	const int64_t *now = arg;

	if (out_labels(&scratch[0], json_object_get(s, "labels")) < 0 ||
	    put_value(&scratch[1], metrics_value(json_object_get(s, "value"))) < 0 ||
	    out_age(&scratch[2], *now, json_integer_value(json_object_get(s, "t"))) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(s, "host"));
	cells[1] = scratch[0].data;
	cells[2] = scratch[1].data;
	cells[3] = scratch[2].data;
	return 0;
}

/* ls and latest: fetch the route's list and print it as a table, a row per item. */
static int metrics_list(struct cli *c, int argc, char **argv, int mode, const char *route,
                        const char *key, const char *const *head, size_t ncols, out_row_fn row)
{
	json_t *result = NULL, *list;
	int64_t now = cli_now_ms();
	struct mopts o;
	int rc;

	if ((rc = metrics_args(c, argc, argv, mode, &o)) != 0)
		return rc;
	if ((rc = metrics_fetch(c, route, &o, &result)) != 0 || !result)
		return rc;
	list = json_object_get(result, key);
	if (json_array_size(list) == 0) {
		rc = metrics_none(&o);
	} else {
		rc = cli_print_rows(c, list, ncols, head, row, &now);
		metrics_truncated(result, json_array_size(list));
	}
	json_decref(result);
	return rc;
}

int metrics_ls(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"HOST", "NAME", "LABELS", "SINCE", "LAST"};

	return metrics_list(c, argc, argv, M_LS, "series", "series", head, 5, ls_row);
}

int metrics_latest(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"HOST", "LABELS", "VALUE", "AGE"};

	return metrics_list(c, argc, argv, M_LATEST, "latest", "samples", head, 4, latest_row);
}

/* A series' title: its host and labels, or for an aggregate the aggregation and labels. */
static int series_title(struct buf *b, const json_t *s, const char *agg)
{
	const json_t *host = json_object_get(s, "host"), *labels = json_object_get(s, "labels");
	int rc = buf_puts(b, json_is_string(host) ? json_string_value(host) : agg);

	if (rc == 0 && json_object_size(labels))
		rc = buf_puts(b, " ") < 0 || out_labels(b, labels) < 0 ? -1 : 0;
	return rc;
}

/* One column per series, one row per step that has a value in any of them. */
static int query_wide(struct cli *c, const json_t *list, const char *agg, int64_t from, int64_t to,
                      int64_t step)
{
	size_t n = json_array_size(list), *at = calloc(n + 1, sizeof(size_t));
	const char **head = calloc(n + 1, sizeof(char *)), **cells = calloc(n + 1, sizeof(char *));
	struct buf *titles = calloc(n + 1, sizeof(struct buf)),
	           *vals = calloc(n + 1, sizeof(struct buf));
	struct out_table *t = NULL;
	struct buf b = BUF_INIT;
	int rc = CLI_EXIT_HUB;

	if (!at || !head || !cells || !titles || !vals)
		goto out;
	head[0] = "TIME";
	for (size_t i = 0; i < n; i++) {
		if (series_title(&titles[i], json_array_get(list, i), agg) < 0)
			goto out;
		head[i + 1] = titles[i].data;
	}
	if (!(t = out_table_new(n + 1, head)))
		goto out;
	for (int64_t ts = from; ts < to; ts += step) {
		struct buf when = BUF_INIT;
		int any = 0, r;
		for (size_t i = 0; i < n; i++) {
			json_t *pts = json_object_get(json_array_get(list, i), "points");
			json_t *p = json_array_get(pts, at[i]);
			buf_reset(&vals[i]);
			cells[i + 1] = NULL;
			if (p && json_integer_value(json_array_get(p, 0)) == ts) {
				put_value(&vals[i], metrics_value(json_array_get(p, 1)));
				cells[i + 1] = vals[i].data;
				at[i]++;
				any = 1;
			}
		}
		if (!any)
			continue;
		out_time(&when, ts);
		cells[0] = when.data;
		r = out_table_add(t, cells);
		buf_free(&when);
		if (r < 0)
			goto out;
	}
	if (out_table_render(t, &b) == 0)
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	buf_free(&b);
	for (size_t i = 0; titles && vals && i < n; i++) {
		buf_free(&titles[i]);
		buf_free(&vals[i]);
	}
	out_table_free(t);
	free(at);
	free(head);
	free(cells);
	free(titles);
	free(vals);
	return rc;
}

/* Many series: one row each with its number of points, lowest, average, highest and last. */
static int summary_row(const json_t *s, const void *agg, struct buf *b, const char **cells)
{
	json_t *pts = json_object_get(s, "points"), *p;
	double lo = INFINITY, hi = -INFINITY, sum = 0, last = NAN;
	size_t k, nfin = 0;
	int r = 0;

	json_array_foreach(pts, k, p)
	{
		double v = metrics_value(json_array_get(p, 1));
		last = v;
		if (!isfinite(v))
			continue;
		lo = fmin(lo, v);
		hi = fmax(hi, v);
		sum += v;
		nfin++;
	}
	r |= series_title(&b[0], s, agg);
	r |= buf_printf(&b[1], "%zu", json_array_size(pts));
	if (nfin) {
		r |= put_value(&b[2], lo);
		r |= put_value(&b[3], sum / (double)nfin);
		r |= put_value(&b[4], hi);
	}
	if (json_array_size(pts))
		r |= put_value(&b[5], last);
	for (int j = 0; j < 6; j++)
		cells[j] = b[j].data;
	return r < 0 ? -1 : 0;
}

static int query_charts(struct cli *c, const json_t *list, const char *agg, int64_t from,
                        int64_t to, int64_t step)
{
	size_t n = json_array_size(list);
	int width = chart_width(STDOUT_FILENO), rc = 0;
	struct buf b = BUF_INIT;

	for (size_t i = 0; rc == 0 && i < n && i < METRICS_CHARTS; i++) {
		json_t *pts = json_object_get(json_array_get(list, i), "points"), *p;
		size_t np = json_array_size(pts), k;
		int64_t *t = malloc((np + 1) * sizeof(int64_t));
		double *v = malloc((np + 1) * sizeof(double));
		struct buf title = BUF_INIT;
		struct chart_series cs;
		if (!t || !v || series_title(&title, json_array_get(list, i), agg) < 0) {
			free(t);
			free(v);
			buf_free(&title);
			rc = CLI_EXIT_HUB;
			break;
		}
		json_array_foreach(pts, k, p)
		{
			t[k] = json_integer_value(json_array_get(p, 0));
			v[k] = metrics_value(json_array_get(p, 1));
		}
		cs = (struct chart_series){title.data, t, v, np};
		if ((i && buf_puts(&b, "\n") < 0) ||
		    chart_render(&b, &cs, from, to, 2 * step, width, CHART_ROWS) < 0)
			rc = CLI_EXIT_HUB;
		free(t);
		free(v);
		buf_free(&title);
	}
	if (rc == 0)
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	buf_free(&b);
	if (rc == 0 && n > METRICS_CHARTS)
		fprintf(stderr,
		        "outpost: drew %d of %zu series: narrow with a selector or --match, or "
		        "aggregate with --agg\n",
		        METRICS_CHARTS, n);
	return rc;
}

int metrics_query(struct cli *c, int argc, char **argv)
{
	static const char *const summary_head[] = {"SERIES", "POINTS", "MIN", "AVG", "MAX", "LAST"};
	json_t *result = NULL, *list;
	const char *agg;
	int64_t from, to, step;
	struct mopts o;
	int rc;

	if ((rc = metrics_args(c, argc, argv, M_QUERY, &o)) != 0)
		return rc;
	if ((rc = metrics_fetch(c, "query", &o, &result)) != 0 || !result)
		return rc;
	list = json_object_get(result, "series");
	agg = json_string_value(json_object_get(result, "agg"));
	from = json_integer_value(json_object_get(result, "from"));
	to = json_integer_value(json_object_get(result, "to"));
	step = json_integer_value(json_object_get(result, "step_ms"));
	if (json_array_size(list) == 0)
		rc = metrics_none(&o);
	else if (step <= 0 || to <= from)
		rc = CLI_EXIT_HUB;
	else if (o.chart)
		rc = query_charts(c, list, agg ? agg : "", from, to, step);
	else if (json_array_size(list) <= METRICS_WIDE)
		rc = query_wide(c, list, agg ? agg : "", from, to, step);
	else
		rc = cli_print_rows(c, list, 6, summary_head, summary_row, agg ? agg : "");
	json_decref(result);
	return rc;
}
