/* outpost events ls: the hub's events (hosts' own, agents' plugins', other systems'), newest
 * first, filtered by the hub (GET /api/v1/events). */
#include "args.h"
#include "cli.h"
#include "output.h"
#include "req.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_KIND = 256, OPT_SINCE, OPT_UNTIL, OPT_LIMIT };

static int events_row(const json_t *e, const void *arg, struct buf *scratch, const char **cells)
{
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (out_time(&scratch[0], json_integer_value(json_object_get(e, "at_ms"))) < 0)
		return -1;
	cells[0] = scratch[0].data;
	cells[1] = json_string_value(json_object_get(e, "host_id"));
	cells[2] = json_string_value(json_object_get(e, "severity"));
	cells[3] = json_string_value(json_object_get(e, "kind"));
	/* The hub's own events (up, down, enrolled) say it in detail. */
	cells[4] = msg ? msg : json_string_value(json_object_get(e, "detail"));
	return 0;
}

int events_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"target", required_argument, NULL, 't'},
	    {"kind", required_argument, NULL, OPT_KIND},
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"until", required_argument, NULL, OPT_UNTIL},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"TIME", "HOST", "SEVERITY", "KIND", "MESSAGE"};
	const char *target = NULL, *kind = NULL, *since = NULL, *until = NULL, *limit = NULL;
	struct buf path = BUF_INIT;
	long long n;
	int ch, rc;

	while ((ch = cli_getopt(c, argc, argv, "t:", opts)) != -1) {
		switch (ch) {
		case 't':
			target = optarg;
			break;
		case OPT_KIND:
			kind = optarg;
			break;
		case OPT_SINCE:
			since = optarg;
			break;
		case OPT_UNTIL:
			until = optarg;
			break;
		case OPT_LIMIT:
			if (args_int(optarg, 1, 1000, &n) < 0)
				return cli_usage(c, "--limit: '%s' is not a count from 1 to 1000",
				                 optarg);
			limit = optarg;
			break;
		default:
			return cli_getopt_exit(ch);
		}
	}
	if (optind < argc && !target)
		target = argv[optind++];
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s' (quote a selector with spaces)",
		                 argv[optind]);
	/* The hub judges the values (times, kinds, the selector) and says what is wrong. */
	if (buf_puts(&path, "/api/v1/events") < 0 || req_param(&path, "hosts", target) < 0 ||
	    req_param(&path, "kind", kind) < 0 || req_param(&path, "since", since) < 0 ||
	    req_param(&path, "until", until) < 0 || req_param(&path, "limit", limit) < 0)
		rc = CLI_EXIT_HUB;
	else
		rc = cli_list(c, path.data, 5, head, events_row, NULL);
	buf_free(&path);
	return rc;
}
