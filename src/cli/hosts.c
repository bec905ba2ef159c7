/* outpost hosts ls | show | accept | reject | revoke | remove | label. */
#include "args.h"
#include "cli.h"
#include "output.h"
#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hosts_row(const json_t *h, const void *arg, struct buf *scratch, const char **cells)
{
	const int64_t *now = arg;
	int64_t seen = json_integer_value(json_object_get(h, "last_seen_ms"));

	if (out_age(&scratch[0], *now, seen) < 0 ||
	    out_labels(&scratch[1], json_object_get(h, "labels")) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(h, "id"));
	cells[1] = json_string_value(json_object_get(h, "hostname"));
	cells[2] = json_string_value(json_object_get(h, "state"));
	cells[3] = json_string_value(json_object_get(h, "version"));
	cells[4] = scratch[0].data;
	cells[5] = scratch[1].data;
	return 0;
}

int hosts_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"target", required_argument, NULL, 't'},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"ID",      "HOSTNAME",  "STATE",
	                                   "VERSION", "LAST SEEN", "LABELS"};
	const char *target = NULL;
	struct buf path = BUF_INIT;
	int64_t now = cli_now_ms();
	int ch, rc;

	while ((ch = cli_getopt(c, argc, argv, "t:", opts)) != -1) {
		if (ch != 't')
			return cli_getopt_exit(ch);
		target = optarg;
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s'", argv[optind]);
	if (buf_puts(&path, "/api/v1/hosts") < 0 ||
	    (target && (buf_puts(&path, "?target=") < 0 || req_escape(&path, target) < 0)))
		rc = CLI_EXIT_HUB;
	else
		rc = cli_list(c, path.data, 6, head, hosts_row, &now);
	buf_free(&path);
	return rc;
}

int hosts_show(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *h = NULL, *facts;
	const char *id;
	int rc;

	rc = cli_one_id(c, argc, argv, "host", &id);
	if (!id)
		return rc;
	buf_printf(&path, "/api/v1/hosts/%s", id);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &h)) != 0 || !h)
		goto out;
	buf_puts(&b, "id:         ");
	out_text(&b, json_string_value(json_object_get(h, "id")));
	buf_puts(&b, "\nhostname:   ");
	out_text(&b, json_string_value(json_object_get(h, "hostname")));
	buf_puts(&b, "\nstate:      ");
	out_text(&b, json_string_value(json_object_get(h, "state")));
	buf_puts(&b, "\nversion:    ");
	out_text(&b, json_string_value(json_object_get(h, "version")));
	buf_puts(&b, "\nfirst seen: ");
	out_time(&b, json_integer_value(json_object_get(h, "first_seen_ms")));
	buf_puts(&b, "\nlast seen:  ");
	out_time(&b, json_integer_value(json_object_get(h, "last_seen_ms")));
	buf_puts(&b, " (");
	out_age(&b, cli_now_ms(), json_integer_value(json_object_get(h, "last_seen_ms")));
	buf_puts(&b, ")\nlabels:     ");
	out_labels(&b, json_object_get(h, "labels"));
	buf_puts(&b, "\n");
	if (json_is_string(json_object_get(h, "pubkey"))) {
		buf_puts(&b, "pubkey:     ed25519:");
		out_text(&b, json_string_value(json_object_get(h, "pubkey")));
		buf_puts(&b, "\n");
	}
	facts = json_object_get(h, "facts");
	if (json_is_object(facts) && json_object_size(facts)) {
		buf_puts(&b, "facts:\n");
		out_flat(&b, "  ", "", facts);
	}
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(h);
	buf_free(&path);
	buf_free(&b);
	return rc;
}

/* POST /api/v1/hosts/ID/VERB {} and show the host's new state. */
static int hosts_change(struct cli *c, int argc, char **argv, const char *verb, int retry_s)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *body = json_object(), *h = NULL;
	const char *id;
	int rc;

	rc = cli_one_id(c, argc, argv, "host", &id);
	if (!id)
		goto out;
	buf_printf(&path, "/api/v1/hosts/%s/%s", id, verb);
	if ((rc = cli_request(c, "POST", path.data, body, retry_s, &h)) != 0 || !h)
		goto out;
	out_text(&b, id);
	buf_puts(&b, ": ");
	out_text(&b, json_string_value(json_object_get(h, "state")));
	buf_puts(&b, "\n");
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(body);
	json_decref(h);
	buf_free(&path);
	buf_free(&b);
	return rc;
}

int hosts_accept(struct cli *c, int argc, char **argv)
{
	return hosts_change(c, argc, argv, "accept", CLI_RETRY_S);
}

int hosts_reject(struct cli *c, int argc, char **argv)
{
	/* A rejected host stays (rejected): rejecting it again answers the same. */
	return hosts_change(c, argc, argv, "reject", CLI_RETRY_S);
}

int hosts_revoke(struct cli *c, int argc, char **argv)
{
	return hosts_change(c, argc, argv, "revoke", CLI_RETRY_S);
}

int hosts_remove(struct cli *c, int argc, char **argv)
{
	/* Not retried: a second remove after one that went through would say not found. */
	return hosts_change(c, argc, argv, "remove", 0);
}

int hosts_label(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"remove", required_argument, NULL, 'k'},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *set = json_object(), *remove = json_array(), *body = NULL, *h = NULL;
	struct buf path = BUF_INIT, b = BUF_INIT;
	char msg[256];
	const char *id;
	int ch, rc;

	if (!set || !remove) {
		rc = CLI_EXIT_HUB;
		goto out;
	}
	while ((ch = cli_getopt(c, argc, argv, "k:", opts)) != -1) {
		if (ch != 'k') {
			rc = cli_getopt_exit(ch);
			goto out;
		}
		if (!args_label_key_ok(optarg)) {
			rc = cli_usage(c, "-k: '%s' is not a label key", optarg);
			goto out;
		}
		if (json_array_append_new(remove, json_string(optarg)) < 0) {
			rc = CLI_EXIT_HUB;
			goto out;
		}
	}
	if (optind >= argc) {
		rc = cli_usage(c, "give a host id, then KEY=VALUE to set or -k KEY to remove");
		goto out;
	}
	id = argv[optind++];
	if (!args_id_ok(id)) {
		rc = cli_usage(c, "'%s' is not a host id", id);
		goto out;
	}
	for (; optind < argc; optind++)
		if (args_label_set(set, remove, argv[optind], msg, sizeof(msg)) < 0) {
			rc = cli_usage(c, "%s%s", msg,
			               strchr(argv[optind], '=') ? ""
			                                         : " (remove a label with -k KEY)");
			goto out;
		}
	if (json_object_size(set) == 0 && json_array_size(remove) == 0) {
		rc = cli_usage(c, "nothing to change: give KEY=VALUE or -k KEY");
		goto out;
	}
	body = json_pack("{s:O, s:O}", "set", set, "remove", remove);
	buf_printf(&path, "/api/v1/hosts/%s/labels", id);
	if (!body || !path.data) {
		rc = CLI_EXIT_HUB;
		goto out;
	}
	if ((rc = cli_request(c, "POST", path.data, body, CLI_RETRY_S, &h)) != 0 || !h)
		goto out;
	out_text(&b, id);
	buf_puts(&b, ": ");
	out_labels(&b, json_object_get(h, "labels"));
	buf_puts(&b, "\n");
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(set);
	json_decref(remove);
	json_decref(body);
	json_decref(h);
	buf_free(&path);
	buf_free(&b);
	return rc;
}
