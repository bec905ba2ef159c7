/* outpost token create | ls | revoke. A new token's secret is shown once: alone on stdout, so
 * TOKEN=$(outpost token create --enroll) works; what it is goes to stderr. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS_ENROLL_TTL_MS (24LL * 3600 * 1000)

enum {
	TOKENS_OPT_ENROLL = 0x100,
	TOKENS_OPT_OPERATOR,
	TOKENS_OPT_ROLE,
	TOKENS_OPT_TTL,
	TOKENS_OPT_LABELS,
	TOKENS_OPT_USES,
};

int tokens_create(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"enroll", no_argument, NULL, TOKENS_OPT_ENROLL},
	    {"operator", no_argument, NULL, TOKENS_OPT_OPERATOR},
	    {"role", required_argument, NULL, TOKENS_OPT_ROLE},
	    {"ttl", required_argument, NULL, TOKENS_OPT_TTL},
	    {"labels", required_argument, NULL, TOKENS_OPT_LABELS},
	    {"uses", required_argument, NULL, TOKENS_OPT_USES},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *kind = NULL, *role = NULL;
	int64_t ttl_ms = 0; /* 0: the default; -1: never expires */
	long long uses = 0;
	json_t *labels = json_object(), *body = NULL, *tok = NULL;
	struct buf b = BUF_INIT;
	char msg[256];
	int ch, rc = 0;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		switch (ch) {
		case TOKENS_OPT_ENROLL:
		case TOKENS_OPT_OPERATOR: {
			const char *k = ch == TOKENS_OPT_ENROLL ? "enroll" : "operator";
			if (kind && strcmp(kind, k) != 0) {
				rc = cli_usage(c, "give --enroll or --operator, not both");
				goto out;
			}
			kind = k;
			break;
		}
		case TOKENS_OPT_ROLE:
			if (!args_role_ok(optarg)) {
				rc = cli_usage(c, "--role: '%s' is not viewer, operator or admin",
				               optarg);
				goto out;
			}
			role = optarg;
			break;
		case TOKENS_OPT_TTL:
			if (strcmp(optarg, "never") == 0) {
				ttl_ms = -1;
				break;
			}
			if (args_duration(optarg, &ttl_ms) < 0 || ttl_ms < 1000) {
				rc =
				    cli_usage(c,
				              "--ttl: '%s' is not a duration such as 1h, 24h, 30d, "
				              "or never",
				              optarg);
				goto out;
			}
			break;
		case TOKENS_OPT_USES:
			if (args_int(optarg, 1, 1000000, &uses) < 0) {
				rc = cli_usage(c,
				               "--uses: '%s' is not a number of hosts from 1 to "
				               "1000000",
				               optarg);
				goto out;
			}
			break;
		case TOKENS_OPT_LABELS:
			if (args_label_list(labels, optarg, msg, sizeof(msg)) < 0) {
				rc = cli_usage(c, "--labels: %s", msg);
				goto out;
			}
			break;
		default:
			rc = cli_getopt_exit(ch);
			goto out;
		}
	}
	if ((rc = cli_no_operands(c, argc, argv)) != 0)
		goto out;
	if (!kind) {
		rc = cli_usage(c, "which kind? Give --enroll or --operator --role ROLE");
		goto out;
	}
	if (strcmp(kind, "operator") == 0 && !role) {
		rc = cli_usage(c, "an operator token needs --role viewer|operator|admin");
		goto out;
	}
	if (strcmp(kind, "enroll") == 0 && role) {
		rc = cli_usage(c, "--role is for --operator tokens");
		goto out;
	}
	if (strcmp(kind, "operator") == 0 && (json_object_size(labels) || uses)) {
		rc = cli_usage(c, "--labels and --uses are for --enroll tokens");
		goto out;
	}
	/* An operator token without --ttl gets the hub's default (90 days). */
	if (strcmp(kind, "enroll") == 0 && ttl_ms == 0)
		ttl_ms = TOKENS_ENROLL_TTL_MS;
	body = json_pack("{s:s}", "kind", kind);
	if (!body || (role && json_object_set_new(body, "role", json_string(role)) < 0) ||
	    (ttl_ms && json_object_set_new(body, "ttl_s",
	                                   json_integer(ttl_ms < 0 ? 0 : ttl_ms / 1000)) < 0) ||
	    (uses && json_object_set_new(body, "uses", json_integer(uses)) < 0) ||
	    (json_object_size(labels) && json_object_set(body, "labels", labels) < 0)) {
		rc = CLI_EXIT_HUB;
		goto out;
	}
	/* Not retried: a second try would make a second token. */
	if ((rc = cli_request(c, "POST", "/api/v1/tokens", body, 0, &tok)) != 0 || !tok)
		goto out;
	out_text(&b, json_string_value(json_object_get(tok, "token")));
	buf_puts(&b, "\n");
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	buf_reset(&b);
	buf_puts(&b, "outpost: ");
	buf_puts(&b, kind);
	if (role) {
		buf_puts(&b, " (");
		buf_puts(&b, role);
		buf_puts(&b, ")");
	}
	buf_puts(&b, " token ");
	out_text(&b, json_string_value(json_object_get(tok, "id")));
	buf_puts(&b, ", expires ");
	out_time(&b, json_integer_value(json_object_get(tok, "expires_ms")));
	if (json_integer_value(json_object_get(tok, "expires_ms")) <= 0)
		buf_puts(&b, " (never)");
	if (json_integer_value(json_object_get(tok, "max_uses")) > 0)
		buf_printf(&b, ", enrolls at most %lld hosts",
		           (long long)json_integer_value(json_object_get(tok, "max_uses")));
	buf_puts(&b, ". It is shown only this once.\n");
	if (b.data)
		fputs(b.data, stderr);
out:
	json_decref(labels);
	json_decref(body);
	json_decref(tok);
	buf_free(&b);
	return rc;
}

static int tokens_row(const json_t *tok, const void *arg, struct buf *scratch, const char **cells)
{
	int64_t exp = json_integer_value(json_object_get(tok, "expires_ms"));
	json_int_t max = json_integer_value(json_object_get(tok, "max_uses"));
	json_int_t used = json_integer_value(json_object_get(tok, "uses"));
	const char *state = json_is_true(json_object_get(tok, "revoked")) ? "revoked"
	                    : exp > 0 && exp <= cli_now_ms()              ? "expired"
	                    : max > 0 && used >= max                      ? "used up"
	                                                                  : "valid";
	int kind_enroll = strcmp(json_string_value(json_object_get(tok, "kind")), "enroll") == 0;

	if (out_time(&scratch[0], json_integer_value(json_object_get(tok, "created_ms"))) < 0 ||
	    (exp > 0 ? out_time(&scratch[1], exp) : buf_puts(&scratch[1], "never")) < 0 ||
	    out_labels(&scratch[2], json_object_get(tok, "labels")) < 0 ||
	    (!kind_enroll ? buf_puts(&scratch[3], "-")
	     : max > 0    ? buf_printf(&scratch[3], "%lld/%lld", (long long)used, (long long)max)
	                  : buf_printf(&scratch[3], "%lld/any", (long long)used)) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(tok, "id"));
	cells[1] = json_string_value(json_object_get(tok, "kind"));
	cells[2] = json_string_value(json_object_get(tok, "role"));
	cells[3] = scratch[0].data;
	cells[4] = scratch[1].data;
	cells[5] = scratch[3].data;
	cells[6] = state;
	cells[7] = json_string_value(json_object_get(tok, "created_by"));
	cells[8] = scratch[2].data;
	return 0;
}

int tokens_ls(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	static const char *const head[] = {"ID",   "KIND",  "ROLE",    "CREATED", "EXPIRES",
	                                   "USES", "STATE", "CREATOR", "LABELS"};
	int ch;

	if ((ch = cli_getopt(c, argc, argv, "", opts)) != -1)
		return cli_getopt_exit(ch);
	if (optind < argc)
		return cli_usage(c, "unexpected argument '%s'", argv[optind]);
	return cli_list(c, "/api/v1/tokens", 9, head, tokens_row, NULL);
}

/* Revoking twice answers the same: retried freely. */
int tokens_revoke(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *body = json_object(), *t = NULL;
	const char *id;
	int rc;

	rc = cli_one_id(c, argc, argv, "token", &id);
	if (!id)
		goto out;
	buf_printf(&path, "/api/v1/tokens/%s/revoke", id);
	if ((rc = cli_request(c, "POST", path.data, body, CLI_RETRY_S, &t)) != 0 || !t)
		goto out;
	out_text(&b, id);
	buf_puts(&b, ": revoked\n");
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(body);
	json_decref(t);
	buf_free(&path);
	buf_free(&b);
	return rc;
}
