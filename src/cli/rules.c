/* outpost rules ls | show | add | edit | rm | test, and outpost alerts ls | ack | silence
 * (docs/rules.md). A rule travels as the JSON document the hub keeps; add and edit read it
 * from a file ("-": standard input). */
#include "args.h"
#include "cli.h"
#include "output.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rule's name as the hub takes it: it goes into a path, so nothing else gets that far. */
static int rule_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* The rule document in file ("-": stdin); NULL after printing why. */
static json_t *rule_file(struct cli *c, const char *file)
{
	json_error_t err;
	json_t *v =
	    strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &err) : json_load_file(file, 0, &err);

	if (!v)
		fprintf(stderr, "outpost: %s:%d:%d: %s\n", strcmp(file, "-") == 0 ? "stdin" : file,
		        err.line, err.column, err.text);
	else if (!json_is_object(v)) {
		fprintf(stderr, "outpost: %s: a rule is a JSON object (docs/rules.md)\n", file);
		json_decref(v);
		v = NULL;
	}
	(void)c;
	return v;
}

static int rules_row(const json_t *r, const void *arg, struct buf *scratch, const char **cells)
{
	const json_t *acts = json_object_get(r, "actions"), *a;
	const json_t *al = json_object_get(r, "alerts");
	size_t i;

	(void)arg;
	json_array_foreach(acts, i, a)
	{
		if (i)
			buf_puts(&scratch[0], ",");
		buf_puts(&scratch[0], json_string_value(json_object_get(a, "kind")));
	}
	buf_printf(&scratch[1], "%lld/%lld",
	           (long long)json_integer_value(json_object_get(al, "firing")),
	           (long long)json_integer_value(json_object_get(al, "pending")));
	cells[0] = json_string_value(json_object_get(r, "name"));
	cells[1] = json_string_value(json_object_get(r, "source"));
	cells[2] = json_string_value(json_object_get(r, "scope"));
	cells[3] = json_string_value(json_object_get(r, "condition"));
	cells[4] = scratch[0].data;
	cells[5] = scratch[1].data;
	return 0;
}

int rules_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"NAME",      "SOURCE",  "SCOPE",
	                                   "CONDITION", "ACTIONS", "FIRING/PENDING"};
	int ch;

	if ((ch = cli_getopt(c, argc, argv, "", opts)) != -1)
		return cli_getopt_exit(ch);
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s'", argv[optind]);
	return cli_list(c, "/api/v1/rules", 6, head, rules_row, NULL);
}

/* The one operand NAME of show and rm: checked. */
static int one_name(struct cli *c, int argc, char **argv, const char **name)
{
	int rc = cli_one_id(c, argc, argv, "rule", name);

	if (*name && !rule_name_ok(*name)) {
		*name = NULL;
		return cli_usage(c, "'%s' is not a rule name (A-Z a-z 0-9 . _ -)", argv[argc - 1]);
	}
	return rc;
}

int rules_show(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT;
	json_t *r = NULL;
	const char *name;
	int rc = one_name(c, argc, argv, &name);

	if (!name)
		return rc;
	buf_printf(&path, "/api/v1/rules/%s", name);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &r)) == 0 && r)
		rc = cli_print_json(c, r) < 0 ? CLI_EXIT_FAILED : 0;
	json_decref(r);
	buf_free(&path);
	return rc;
}

/* add FILE, edit NAME FILE, test NAME|FILE: the operands after the options. */
static int operands(struct cli *c, int argc, char **argv, int want, const char **a, const char **b)
{
	static const struct option opts[] = {
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	if ((ch = cli_getopt(c, argc, argv, "", opts)) != -1)
		return cli_getopt_exit(ch);
	if (argc - optind != want)
		return cli_usage(c, "expected %s", want == 1 ? "one operand" : "NAME and FILE");
	*a = argv[optind];
	*b = want == 2 ? argv[optind + 1] : NULL;
	return 0;
}

static int rules_send(struct cli *c, const char *path, json_t *body, const char *done)
{
	struct buf b = BUF_INIT;
	json_t *r = NULL;
	int rc = cli_request(c, "POST", path, body, CLI_RETRY_S, &r);

	if (rc == 0 && r) {
		out_text(&b, json_string_value(json_object_get(r, "name")));
		buf_printf(&b, ": %s\n", done);
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	}
	json_decref(r);
	buf_free(&b);
	return rc;
}

int rules_add(struct cli *c, int argc, char **argv)
{
	const char *file, *unused;
	json_t *body;
	int rc = operands(c, argc, argv, 1, &file, &unused);

	if (rc)
		return rc;
	if (!(body = rule_file(c, file)))
		return CLI_EXIT_USAGE;
	rc = rules_send(c, "/api/v1/rules", body, "added");
	json_decref(body);
	return rc;
}

int rules_edit(struct cli *c, int argc, char **argv)
{
	const char *name, *file;
	struct buf path = BUF_INIT;
	json_t *body;
	int rc = operands(c, argc, argv, 2, &name, &file);

	if (rc)
		return rc;
	if (!rule_name_ok(name))
		return cli_usage(c, "'%s' is not a rule name (A-Z a-z 0-9 . _ -)", name);
	if (!(body = rule_file(c, file)))
		return CLI_EXIT_USAGE;
	buf_printf(&path, "/api/v1/rules/%s/edit", name);
	rc = rules_send(c, path.data, body, "changed");
	json_decref(body);
	buf_free(&path);
	return rc;
}

int rules_rm(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT;
	json_t *body = json_object();
	const char *name;
	int rc = one_name(c, argc, argv, &name);

	if (name) {
		buf_printf(&path, "/api/v1/rules/%s/remove", name);
		rc = rules_send(c, path.data, body, "removed");
	}
	json_decref(body);
	buf_free(&path);
	return rc;
}

static int matched_row(const json_t *m, const void *arg, struct buf *scratch, const char **cells)
{
	char *vals = json_dumps(json_object_get(m, "values"), JSON_COMPACT);

	(void)arg;
	if (!vals || buf_puts(&scratch[0], vals) < 0) {
		free(vals);
		return -1;
	}
	free(vals);
	cells[0] = json_string_value(json_object_get(m, "host"));
	cells[1] = scratch[0].data;
	return 0;
}

/* test NAME (a rule in force) or test FILE (a rule not added yet): which hosts match now. */
int rules_test(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"HOST", "VALUES"};
	const char *what, *unused, *host;
	json_t *body, *r = NULL, *rows = NULL, *vals;
	struct buf b = BUF_INIT;
	int rc = operands(c, argc, argv, 1, &what, &unused);
	FILE *f;

	if (rc)
		return rc;
	if (strcmp(what, "-") == 0 || (f = fopen(what, "r")) != NULL) {
		if (strcmp(what, "-") != 0)
			fclose(f);
		if (!(body = rule_file(c, what)))
			return CLI_EXIT_USAGE;
	} else if (rule_name_ok(what)) {
		body = json_pack("{s:s}", "name", what);
	} else {
		return cli_usage(c, "'%s' is neither a rule's name nor a file", what);
	}
	rc = cli_request(c, "POST", "/api/v1/rules/test", body, CLI_RETRY_S, &r);
	if (rc == 0 && r) {
		rows = json_array();
		json_object_foreach(json_object_get(r, "matched"), host, vals)
		    json_array_append_new(rows,
		                          json_pack("{s:s, s:O}", "host", host, "values", vals));
		if (json_array_size(rows))
			rc = cli_print_rows(c, rows, 2, head, matched_row, NULL);
		buf_printf(&b, "%zu host(s) match now", json_array_size(rows));
		if (json_integer_value(json_object_get(r, "for_ms")))
			buf_printf(&b, " (the rule fires once it holds for %lld s)",
			           (long long)json_integer_value(json_object_get(r, "for_ms")) /
			               1000);
		fprintf(stderr, "%s\n", b.data);
	}
	json_decref(rows);
	json_decref(r);
	json_decref(body);
	buf_free(&b);
	return rc;
}

/* ---- alerts ---- */

static int alerts_row(const json_t *a, const void *arg, struct buf *scratch, const char **cells)
{
	char *vals = json_dumps(json_object_get(a, "values"), JSON_COMPACT);
	int64_t fired = json_integer_value(json_object_get(a, "fired_ms"));

	(void)arg;
	if (out_time(&scratch[0],
	             fired ? fired : json_integer_value(json_object_get(a, "since_ms"))) < 0 ||
	    !vals || buf_puts(&scratch[1], vals) < 0) {
		free(vals);
		return -1;
	}
	free(vals);
	cells[0] = json_string_value(json_object_get(a, "rule"));
	cells[1] = json_string_value(json_object_get(a, "host"));
	cells[2] = json_string_value(json_object_get(a, "state"));
	cells[3] = scratch[0].data;
	cells[4] = json_string_value(json_object_get(a, "acked_by"));
	cells[5] = json_string_value(json_object_get(a, "silenced"));
	cells[6] = scratch[1].data;
	return 0;
}

static int history_row(const json_t *e, const void *arg, struct buf *scratch, const char **cells)
{
	char *d = json_dumps(json_object_get(e, "detail"), JSON_COMPACT | JSON_ENCODE_ANY);

	(void)arg;
	if (out_time(&scratch[0], json_integer_value(json_object_get(e, "at_ms"))) < 0 || !d ||
	    buf_puts(&scratch[1], d) < 0) {
		free(d);
		return -1;
	}
	free(d);
	cells[0] = scratch[0].data;
	cells[1] = json_string_value(json_object_get(e, "rule_id"));
	cells[2] = json_string_value(json_object_get(e, "host_id"));
	cells[3] = json_string_value(json_object_get(e, "kind"));
	cells[4] = scratch[1].data;
	return 0;
}

static int silence_row(const json_t *s, const void *arg, struct buf *scratch, const char **cells)
{
	(void)arg;
	if (out_time(&scratch[0], json_integer_value(json_object_get(s, "ends_ms"))) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(s, "id"));
	cells[1] = json_string_value(json_object_get(s, "rule"));
	cells[2] = json_string_value(json_object_get(s, "host"));
	cells[3] = json_string_value(json_object_get(s, "selector"));
	cells[4] = scratch[0].data;
	cells[5] = json_string_value(json_object_get(s, "created_by"));
	cells[6] = json_string_value(json_object_get(s, "comment"));
	return 0;
}

enum {
	AL_STATE = 0x100,
	AL_HISTORY,
	AL_RULE,
	AL_SILENCES,
	AL_LIMIT,
	AL_COMMENT,
	AL_HOST,
	AL_FOR,
	AL_ID
};

int alerts_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, AL_STATE},
	    {"history", no_argument, NULL, AL_HISTORY},
	    {"rule", required_argument, NULL, AL_RULE},
	    {"silences", no_argument, NULL, AL_SILENCES},
	    {"limit", required_argument, NULL, AL_LIMIT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"RULE",  "HOST",     "STATE", "SINCE",
	                                   "ACKED", "SILENCED", "VALUES"};
	static const char *const hhead[] = {"TIME", "RULE", "HOST", "WHAT", "DETAIL"};
	static const char *const shead[] = {"ID",   "RULE", "HOST",   "SELECTOR",
	                                    "ENDS", "BY",   "COMMENT"};
	const char *state = NULL, *rule = NULL;
	long long limit = 0;
	int ch, history = 0, silences = 0, rc;
	struct buf path = BUF_INIT;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		switch (ch) {
		case AL_STATE:
			if (strcmp(optarg, "firing") != 0 && strcmp(optarg, "pending") != 0)
				return cli_usage(c, "--state: firing or pending");
			state = optarg;
			break;
		case AL_HISTORY:
			history = 1;
			break;
		case AL_SILENCES:
			silences = 1;
			break;
		case AL_RULE:
			if (!rule_name_ok(optarg))
				return cli_usage(c, "--rule: '%s' is not a rule name", optarg);
			rule = optarg;
			break;
		case AL_LIMIT:
			if (args_int(optarg, 1, 10000, &limit) < 0)
				return cli_usage(c, "--limit: a number from 1 to 10000");
			break;
		default:
			return cli_getopt_exit(ch);
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s'", argv[optind]);
	if (silences)
		return cli_list(c, "/api/v1/silences", 7, shead, silence_row, NULL);
	if (history) {
		buf_printf(&path, "/api/v1/alerts/history?limit=%lld", limit ? limit : 100);
		if (rule)
			buf_printf(&path, "&rule=%s", rule);
		rc = cli_list(c, path.data, 5, hhead, history_row, NULL);
	} else {
		buf_puts(&path, "/api/v1/alerts");
		if (state)
			buf_printf(&path, "?state=%s", state);
		rc = cli_list(c, path.data, 7, head, alerts_row, NULL);
	}
	buf_free(&path);
	return rc;
}

int alerts_ack(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"comment", required_argument, NULL, AL_COMMENT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *comment = NULL;
	json_t *body, *r = NULL;
	struct buf b = BUF_INIT;
	int ch, rc;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		if (ch != AL_COMMENT)
			return cli_getopt_exit(ch);
		comment = optarg;
	}
	if (argc - optind != 2)
		return cli_usage(c, "expected RULE and HOST");
	body = json_pack("{s:s, s:s, s:s?}", "rule", argv[optind], "host", argv[optind + 1],
	                 "comment", comment);
	rc = cli_request(c, "POST", "/api/v1/alerts/ack", body, CLI_RETRY_S, &r);
	if (rc == 0 && r) {
		buf_printf(&b, "%s on %s: acknowledged by %s\n", argv[optind], argv[optind + 1],
		           json_string_value(json_object_get(r, "acked_by")));
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	}
	json_decref(r);
	json_decref(body);
	buf_free(&b);
	return rc;
}

int alerts_silence(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"rule", required_argument, NULL, AL_RULE},
	    {"host", required_argument, NULL, AL_HOST},
	    {"target", required_argument, NULL, 't'},
	    {"for", required_argument, NULL, AL_FOR},
	    {"comment", required_argument, NULL, AL_COMMENT},
	    {"id", required_argument, NULL, AL_ID},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *body = json_object(), *r = NULL;
	struct buf b = BUF_INIT;
	int64_t dur = 0;
	int ch, rc = 0;

	while ((ch = cli_getopt(c, argc, argv, "t:", opts)) != -1) {
		switch (ch) {
		case AL_RULE:
			json_object_set_new(body, "rule", json_string(optarg));
			break;
		case AL_HOST:
			json_object_set_new(body, "host", json_string(optarg));
			break;
		case 't':
			json_object_set_new(body, "selector", json_string(optarg));
			break;
		case AL_COMMENT:
			json_object_set_new(body, "comment", json_string(optarg));
			break;
		case AL_ID:
			json_object_set_new(body, "id", json_string(optarg));
			break;
		case AL_FOR:
			if (args_duration(optarg, &dur) < 0 || dur < 1000) {
				rc = cli_usage(c, "--for: a duration such as 30m, 2h, 1d");
				goto out;
			}
			break;
		default:
			rc = cli_getopt_exit(ch);
			goto out;
		}
	}
	if (optind < argc || !dur) {
		rc = cli_usage(c, optind < argc ? "unexpected argument"
		                                : "--for DURATION is required");
		goto out;
	}
	json_object_set_new(body, "duration_s", json_integer(dur / 1000));
	rc = cli_request(c, "POST", "/api/v1/silences", body, CLI_RETRY_S, &r);
	if (rc == 0 && r) {
		buf_printf(&b, "%s: silenced until ", json_string_value(json_object_get(r, "id")));
		out_time(&b, json_integer_value(json_object_get(r, "ends_ms")));
		buf_puts(&b, "\n");
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	}
out:
	json_decref(r);
	json_decref(body);
	buf_free(&b);
	return rc;
}
