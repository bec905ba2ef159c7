/* outpost audit: the hub's audit log, newest first. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include <stdlib.h>

/* The entry's time, under the names a store may give it. */
static int64_t audit_time(const json_t *e)
{
	static const char *const keys[] = {"at_ms", "time_ms", "created_ms"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_is_integer(json_object_get(e, keys[i])))
			return json_integer_value(json_object_get(e, keys[i]));
	return 0;
}

int audit_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"limit", required_argument, NULL, 'n'},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"};
	struct buf path = BUF_INIT, b = BUF_INIT;
	struct out_table *t = NULL;
	json_t *entries = NULL, *e;
	long long limit = 0;
	size_t i;
	int ch, rc;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		if (ch != 'n')
			return cli_getopt_exit(ch);
		if (args_int(optarg, 1, 100000, &limit) < 0)
			return cli_usage(c, "--limit: '%s' is not a count from 1 to 100000",
			                 optarg);
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s'", argv[optind]);
	buf_puts(&path, "/api/v1/audit");
	if (limit)
		buf_printf(&path, "?limit=%lld", limit);
	if ((rc = cli_call(c, "GET", path.data, NULL, 0, CLI_RETRY_S, &entries)) != 0)
		goto out;
	if (c->json) {
		rc = cli_print_json(c, entries) < 0 ? CLI_EXIT_FAILED : 0;
		goto out;
	}
	rc = CLI_EXIT_HUB;
	if (!(t = out_table_new(5, head)))
		goto out;
	json_array_foreach(entries, i, e)
	{
		struct buf when = BUF_INIT;
		const json_t *d = json_object_get(e, "detail");
		char *detail =
		    d && !json_is_null(d)
		        ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)
		        : NULL;
		const char *cells[5];
		int r;

		out_time(&when, audit_time(e));
		cells[0] = when.data;
		cells[1] = json_string_value(json_object_get(e, "actor"));
		cells[2] = json_string_value(json_object_get(e, "action"));
		cells[3] = json_string_value(json_object_get(e, "target"));
		cells[4] = detail;
		r = out_table_add(t, cells);
		buf_free(&when);
		free(detail);
		if (r < 0)
			goto out;
	}
	if (out_table_render(t, &b) < 0)
		goto out;
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	out_table_free(t);
	json_decref(entries);
	buf_free(&path);
	buf_free(&b);
	return rc;
}
