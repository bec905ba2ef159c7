/* outpost: the operator CLI. Global flags, settings (flags > environment > config file), the
 * command table and help, and the calls to the hub every command goes through. */
#include "args.h"
#include "cli.h"
#include "client.h"
#include "core/conf.h"
#include "helpgen.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLI_CONFIG_REL "outpost/cli.conf"

/* Set by SIGINT; commands and the client look at it through struct cli. */
static volatile sig_atomic_t main_interrupted;

static const struct cli_cmd cli_cmds[] = {
    {"hosts", "ls", hosts_ls, "[-t SELECTOR]", "list hosts",
     "  -t, --target SELECTOR  only the hosts the selector matches (docs/selectors.md)\n"},
    {"hosts", "show", hosts_show, "ID", "one host, with its labels and facts", ""},
    {"hosts", "accept", hosts_accept, "ID",
     "accept a pending host, or a rejected one: that undoes the rejection (admin)", ""},
    {"hosts", "reject", hosts_reject, "ID",
     "reject a pending host: its agent is refused until it is accepted (admin)", ""},
    {"hosts", "revoke", hosts_revoke, "ID",
     "revoke a host: its agent is refused from now on (admin)", ""},
    {"hosts", "remove", hosts_remove, "ID",
     "forget a revoked, rejected or pending host and its key, so that its id may enroll again "
     "(a reinstalled server) (admin)",
     ""},
    {"hosts", "label", hosts_label, "ID [KEY=VALUE...] [-k KEY...]",
     "set and remove labels of a host (admin)",
     "  KEY=VALUE              set a label (the value is always a string)\n"
     "  -k, --remove KEY       remove a label (repeatable)\n"},
    {NULL, "run", run_run, "-t SELECTOR [options] -- COMMAND [ARG...]",
     "run a command on hosts and show each host's outcome",
     "  -t, --target SELECTOR  the hosts to run on (required)\n"
     "  --script FILE|-        run a shell script (sh -c) read from FILE or stdin,\n"
     "                         instead of COMMAND\n"
     "  --user USER            run as this user (default: the agent's, root)\n"
     "  --cwd DIR              run in this absolute directory (default /)\n"
     "  --env NAME=VALUE       add to the command's clean environment (repeatable)\n"
     "  -b, --group            show each distinct outcome once, after the hosts that had it\n"
     "                         in node-set notation (web[01-03]), when all have ended,\n"
     "                         as clush -b does\n"
     "@TASK"},
    {NULL, "cp", run_cp, "-t SELECTOR [options] LOCAL REMOTE",
     "copy a local file to hosts (file.put)",
     "  -t, --target SELECTOR  the hosts to copy to (required)\n"
     "  LOCAL                  a file, or - for stdin (at most 47 MiB)\n"
     "  REMOTE                 an absolute path; ending in / it names a directory and the\n"
     "                         file keeps LOCAL's name\n"
     "  --mode MODE            octal mode such as 0644 (default: 0644 for a new file, the\n"
     "                         old mode for a replaced one)\n"
     "  --owner USER, --group GROUP  owner and group on the host\n"
     "  --make-dirs            create missing parent directories\n"
     "@TASK"},
    {NULL, "call", run_call, "-t SELECTOR [options] PLUGIN.OP [KEY=VALUE|KEY:=JSON...]",
     "call any plugin op on hosts",
     "  -t, --target SELECTOR  the hosts to call (required)\n"
     "  KEY=VALUE              an argument with a string value, always: n=5 sends \"5\"\n"
     "  KEY:=JSON              an argument with a JSON value: n:=5, on:=true,\n"
     "                         argv:='[\"ls\",\"-l\"]', env:='{\"A\":\"b\"}'\n"
     "@TASK"},
    {"tasks", "ls", tasks_ls, "[--limit N]", "list recent tasks, newest first",
     "  --limit N              at most N tasks (default: the hub's)\n"},
    {"tasks", "show", tasks_show, "ID", "a task and every host's outcome so far", ""},
    {"tasks", "wait", tasks_wait, "ID",
     "follow a task until it ends, showing outcomes as they land (exit status as run)", ""},
    {"tasks", "cancel", tasks_cancel, "ID",
     "cancel a task: hosts that have not started it never will (operator)", ""},
    {"token", "create", tokens_create,
     "--enroll [--ttl DURATION] [--uses N] [--labels K=V,...] | --operator --role ROLE "
     "[--ttl DURATION|never]",
     "create a token (admin); it is printed once, on stdout",
     "  --enroll               a token agents enroll with: accepted at once\n"
     "  --labels K=V,...       labels a host gets when it enrolls with the token\n"
     "  --operator             a token for people and scripts using this CLI or the API\n"
     "  --role ROLE            viewer (read), operator (+ run and cancel tasks) or\n"
     "                         admin (+ hosts, labels, tokens, audit)\n"
     "  --uses N               --enroll: enrolls at most N hosts (default: any number\n"
     "                         within its lifetime)\n"
     "  --ttl DURATION|never   lifetime: 24h by default for --enroll, 90d for --operator;\n"
     "                         never: it does not expire\n"},
    {"token", "ls", tokens_ls, "",
     "list tokens (admin): expiry, uses, state (valid, expired, used up, revoked); never "
     "their secrets",
     ""},
    {"token", "revoke", tokens_revoke, "ID",
     "revoke a token (admin): refused from the next request on, for good", ""},
    {"metrics", "ls", metrics_ls, "[--name NAME] [--match L=V...] [SELECTOR]",
     "list metric series, by host",
     "  --name NAME            only series of this metric\n"
     "  --match L=V            a label matcher: L=V, L!=V, L=~REGEX, L!~REGEX (repeatable)\n"
     "  SELECTOR, -t SELECTOR  only these hosts (docs/selectors.md)\n"
     "  --limit N              at most N series (default 1000)\n"},
    {"metrics", "latest", metrics_latest, "NAME [--match L=V...] [SELECTOR]",
     "the latest value of a metric on each host",
     "  --match L=V            a label matcher: L=V, L!=V, L=~REGEX, L!~REGEX (repeatable)\n"
     "  SELECTOR, -t SELECTOR  only these hosts (docs/selectors.md)\n"
     "  --limit N              at most N series (default 1000)\n"},
    {"metrics", "query", metrics_query,
     "NAME [--match L=V...] [SELECTOR] [--from -1h] [--to now] [--step 1m] [--agg AGG] "
     "[--chart]",
     "a metric over time, per host or aggregated across hosts",
     "  --match L=V            a label matcher: L=V, L!=V, L=~REGEX, L!~REGEX (repeatable)\n"
     "  SELECTOR, -t SELECTOR  only these hosts (docs/selectors.md)\n"
     "  --from TIME, --to TIME ms since 1970, now, or before now: -24h, -90m (default\n"
     "                         the last hour)\n"
     "  --step STEP            one point per step: 30s, 5m, 1h (default: the range / 240)\n"
     "  --agg AGG              across hosts: avg, min, max, sum, count, p50, p90, p99...\n"
     "                         (grouped by the other labels; default none: each host)\n"
     "  --chart                draw each series (at most 8) in the terminal\n"},
    {"events", "ls", events_ls,
     "[SELECTOR] [--kind KIND] [--since TIME] [--until TIME] [--limit N]",
     "events of hosts and of other systems, newest first",
     "  SELECTOR, -t SELECTOR  only these hosts (docs/selectors.md)\n"
     "  --kind KIND            this kind and the kinds under it: security takes\n"
     "                         security.passwd_changed\n"
     "  --since TIME, --until TIME\n"
     "                         ms since 1970, now, or before now: -24h, -90m\n"
     "  --limit N              at most N events (default 100, at most 1000)\n"},
    {"flows", "ls", flows_ls, "[--limit N]", "list flow definitions",
     "  --limit N              at most N flows (default 100)\n"},
    {"flows", "get", flows_get, "NAME", "a flow's definition, as JSON (flows add takes it back)",
     ""},
    {"flows", "add", flows_add, "FILE|-",
     "define a flow, or replace the one of its name, from a JSON file (operator); errors "
     "say where (FILE:LINE:COLUMN, steps[N])",
     ""},
    {"flows", "rm", flows_rm, "NAME", "remove a flow's definition (operator); runs go on", ""},
    {"flows", "run", flows_run, "NAME [--var NAME=VALUE...] [--id ID] [--no-wait]",
     "start a run of a flow and follow it to its end (operator): exit 0 when it ended ok",
     "  --var NAME=VALUE       an environment variable of every command and script step\n"
     "                         (repeatable)\n"
     "  --id ID                the run's id: repeating it follows the first run\n"
     "  --no-wait              print the run's id and exit at once\n"},
    {"flows", "runs", flows_runs, "[--limit N]", "list flow runs, the latest first",
     "  --limit N              at most N runs (default 100)\n"},
    {"flows", "show", flows_show, "RUN", "a run: its state and each step's outcome", ""},
    {"flows", "cancel", flows_cancel, "RUN",
     "cancel a run (operator): its current step's task is cancelled, no later step starts", ""},
    {NULL, "report", report_show, "[--hours N]",
     "the fleet report in the terminal (the hub serves it as HTML at /api/v1/report)",
     "  --hours N              the period it covers (default: the hub's, 24)\n"},
    {NULL, "audit", audit_ls, "[--limit N]", "the audit log, newest first (admin)",
     "  --limit N              at most N entries (default: the hub's)\n"},
    {"rules", "ls", rules_ls, "", "list the rules in force (docs/rules.md)", ""},
    {"rules", "show", rules_show, "NAME", "a rule, its alerts and its recent history", ""},
    {"rules", "add", rules_add, "FILE",
     "add a rule from a JSON file (- for stdin); the same rule again changes nothing (operator)",
     ""},
    {"rules", "edit", rules_edit, "NAME FILE", "replace a rule with the one in FILE (operator)",
     ""},
    {"rules", "rm", rules_rm, "NAME", "remove a rule and its alerts (operator)", ""},
    {"rules", "test", rules_test, "NAME|FILE",
     "which hosts a rule (in force, or in FILE) matches now; nothing fires (operator)", ""},
    {"alerts", "ls", alerts_ls,
     "[--state firing|pending] | --history [--rule NAME] [--limit N] | --silences",
     "alerts pending and firing now, their history, or the silences",
     "  --state STATE          only firing or only pending alerts\n"
     "  --history              what rules did: firing, resolved, actions, suppressions\n"
     "  --rule NAME            --history: of this rule only\n"
     "  --silences             the silences in force\n"},
    {"alerts", "ack", alerts_ack, "RULE HOST [--comment TEXT]",
     "acknowledge an alert: its repeated notifications stop (operator)", ""},
    {"alerts", "silence", alerts_silence,
     "[--rule NAME] [--host ID] [-t SELECTOR] --for DURATION [--comment TEXT] [--id ID]",
     "hold the actions of matching alerts until the silence ends (operator)",
     "  --rule NAME            alerts of this rule\n"
     "  --host ID              alerts of this host\n"
     "  -t, --target SELECTOR  alerts of the hosts it matches\n"
     "  --for DURATION         how long: 30m, 2h, 1d (at most 90d)\n"
     "  --id ID                the silence's id: the same again changes nothing\n"},
};

#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

static const char cli_task_help[] =
    "  --timeout DURATION     time each host has to finish (60s, 5m, 2h, 1d)\n"
    "  --expires DURATION     how long the task waits for hosts that are down\n"
    "  --batch N|N%           release the hosts N (or N% of them) at a time; the next\n"
    "                         batch starts when the current one has finished\n"
    "  --max-failures N       after more than N hosts failed, cancel the rest\n"
    "  --id ID                the task's id (default: a new random one); repeating a\n"
    "                         command with the same id follows the first task\n"
    "  --no-wait              print the task id and exit at once\n";

static const char cli_global_help[] =
    "Global options (also accepted after the command):\n"
    "  --hub URL[,URL...]     the hub; several: tried in turn (env OUTPOST_HUB; config \"hub\")\n"
    "  --token TOKEN          operator token (env OUTPOST_TOKEN; config \"token\")\n"
    "  --ca FILE              trust the hub through this CA certificate, e.g. the hub's\n"
    "                         <state-dir>/hub.crt (env OUTPOST_CA; config \"ca\")\n"
    "  --pin sha256:HEX       trust the hub by its certificate's fingerprint, as the hub\n"
    "                         printed it (env OUTPOST_PIN; config \"pin\")\n"
    "  --config FILE          config file (default ~/.config/outpost/cli.conf)\n"
    "  --json                 machine-readable output on stdout\n"
    "  --version, --help\n";

static const char cli_exit_help[] =
    "  0                      every host ok\n"
    "  1                      a host was not ok: failed, timed out, lost, refused, expired\n"
    "                         or cancelled (metrics: no series matched)\n"
    "  2                      usage error\n"
    "  3                      the hub said no, or could not be reached\n"
    "  130                    interrupted\n";

static const struct helpgen cli_helpgen = {
    .cmds = cli_cmds,
    .ncmds = CLI_NCMDS,
    .task_help = cli_task_help,
    .global_help = cli_global_help,
    .exit_help = cli_exit_help,
};

static void cli_on_sigint(int sig)
{
	if (main_interrupted) {
		/* A second Ctrl-C: stop now. */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	main_interrupted = 1;
}

static void cli_cmd_name(const struct cli_cmd *cmd, char *out, size_t n)
{
	if (cmd->group)
		snprintf(out, n, "%s %s", cmd->group, cmd->name);
	else
		snprintf(out, n, "%s", cmd->name);
}

static void cli_help_cmd(FILE *f, const struct cli_cmd *cmd)
{
	char name[64];
	const char *task = strstr(cmd->help, "@TASK");

	cli_cmd_name(cmd, name, sizeof(name));
	fprintf(f, "usage: outpost %s %s\n\n%c%s.\n", name, cmd->synopsis,
	        cmd->summary[0] - 'a' + 'A', cmd->summary + 1);
	if (cmd->help[0]) {
		fprintf(f, "\nOptions:\n%.*s",
		        task ? (int)(task - cmd->help) : (int)strlen(cmd->help), cmd->help);
		if (task)
			fputs(cli_task_help, f);
	}
	fprintf(f,
	        "\n%s\nExit status: 0 ok, 1 %s, 2 usage error, 3 hub or connection error, 130 "
	        "interrupted.\n",
	        cli_global_help,
	        cmd->group && strcmp(cmd->group, "metrics") == 0 ? "no series matched"
	                                                         : "a host was not ok");
}

static void cli_help(FILE *f, const char *group)
{
	fprintf(f, "usage: outpost [global options] COMMAND [options] [arguments]\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < CLI_NCMDS; i++) {
		char name[64];
		if (group && (!cli_cmds[i].group || strcmp(cli_cmds[i].group, group) != 0))
			continue;
		cli_cmd_name(&cli_cmds[i], name, sizeof(name));
		fprintf(f, "  %-15s %s\n", name, cli_cmds[i].summary);
	}
	fprintf(f,
	        "\n%s\nRun 'outpost help COMMAND' for a command's options; docs/cli.md has "
	        "examples.\n",
	        cli_global_help);
}

int cli_usage(struct cli *c, const char *fmt, ...)
{
	char name[64] = "";
	va_list ap;

	cli_progress(c, NULL);
	fputs("outpost: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c->cmd)
		cli_cmd_name(c->cmd, name, sizeof(name));
	fprintf(stderr, "\nRun 'outpost help%s%s' for usage.\n", name[0] ? " " : "", name);
	return CLI_EXIT_USAGE;
}

int cli_getopt(struct cli *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
	char opts[64];
	int stop = shortopts[0] == '+';

	/* ':' first: missing values come back as ':', and getopt prints nothing itself. */
	snprintf(opts, sizeof(opts), "%s:h%s", stop ? "+" : "", shortopts + stop);
	opterr = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, opts, longopts, NULL);
		switch (ch) {
		case CLI_OPT_HUB:
			c->hub = optarg;
			break;
		case CLI_OPT_TOKEN:
			c->token = optarg;
			break;
		case CLI_OPT_CA:
			c->ca = optarg;
			break;
		case CLI_OPT_PIN:
			c->pin = optarg;
			break;
		case CLI_OPT_CONFIG:
			c->config = optarg;
			break;
		case CLI_OPT_JSON:
			c->json = 1;
			break;
		case 'h':
		case CLI_OPT_HELP:
			if (c->cmd)
				cli_help_cmd(stdout, c->cmd);
			else
				cli_help(stdout, NULL);
			return CLI_GETOPT_HELP;
		case '?':
		case ':': {
			/* A long option is shown as typed; a short one by its letter. */
			const char *typed = argv[optind - 1];
			char shown[64];

			if (strncmp(typed, "--", 2) == 0 || !optopt || optopt >= 0x100)
				snprintf(shown, sizeof(shown), "%s", typed);
			else
				snprintf(shown, sizeof(shown), "-%c", optopt);
			if (ch == '?')
				cli_usage(c, "unknown option '%s'", shown);
			else
				cli_usage(c, "option '%s' needs a value", shown);
			return CLI_GETOPT_USAGE;
		}
		default:
			return ch;
		}
	}
}

int cli_getopt_exit(int rc)
{
	return rc == CLI_GETOPT_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int cli_no_operands(struct cli *c, int argc, char **argv)
{
	return optind < argc ? cli_usage(c, "unexpected argument '%s'", argv[optind]) : 0;
}

int cli_one_id(struct cli *c, int argc, char **argv, const char *what, const char **id)
{
	static const struct option opts[] = {
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int ch = cli_getopt(c, argc, argv, "", opts);

	*id = NULL;
	if (ch != -1)
		return cli_getopt_exit(ch);
	if (argc - optind != 1)
		return cli_usage(c, "give exactly one %s id", what);
	if (!args_id_ok(argv[optind]))
		return cli_usage(c, "'%s' is not a %s id", argv[optind], what);
	*id = argv[optind];
	return 0;
}

int cli_list_limit(struct cli *c, int argc, char **argv, const char *path, size_t ncols,
                   const char *const *head, out_row_fn row)
{
	static const struct option opts[] = {
	    {"limit", required_argument, NULL, 'n'},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct buf query = BUF_INIT;
	long long limit = 0;
	int ch, rc;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		if (ch != 'n')
			return cli_getopt_exit(ch);
		if (args_int(optarg, 1, 100000, &limit) < 0)
			return cli_usage(c, "--limit: '%s' is not a count from 1 to 100000",
			                 optarg);
	}
	if ((rc = cli_no_operands(c, argc, argv)) != 0)
		return rc;
	if (buf_puts(&query, path) < 0 || (limit && buf_printf(&query, "?limit=%lld", limit) < 0))
		rc = CLI_EXIT_HUB;
	else
		rc = cli_list(c, query.data, ncols, head, row, NULL);
	buf_free(&query);
	return rc;
}

int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *cli_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static const struct conf_field cli_conf_schema[] = {
    CONF_CHECK_ONLY("hub", CONF_STRING, 0, 0,
                    "the hub's URL; several, comma-separated: tried in turn"),
    CONF_CHECK_ONLY("token", CONF_STRING, 0, 0, "operator token"),
    CONF_CHECK_ONLY("ca", CONF_STRING, 0, 0,
                    "CA certificate file; relative to this file's directory"),
    CONF_CHECK_ONLY("pin", CONF_STRING, 0, 0, "sha256:HEX of the hub's certificate"),
    {NULL},
};

/* Reads the config file: the one named by --config (which must exist), or the default one
 * if it exists. 0, or an exit status after printing why. */
static int cli_load_conf(struct cli *c)
{
	const char *xdg = cli_env("XDG_CONFIG_HOME"), *home = cli_env("HOME");
	struct buf path = BUF_INIT;
	char msg[512];
	struct stat st;
	const char *ca;
	int rc = 0;

	if (c->config)
		buf_puts(&path, c->config);
	else if (xdg)
		buf_printf(&path, "%s/%s", xdg, CLI_CONFIG_REL);
	else if (home)
		buf_printf(&path, "%s/.config/%s", home, CLI_CONFIG_REL);
	if (!path.data || (!c->config && stat(path.data, &st) < 0 && errno == ENOENT))
		goto out;
	/* conf_load's messages name the file already; conf_check's name the key. */
	if (conf_load(path.data, &c->conf, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "outpost: config %s\n", msg);
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if (conf_check(c->conf, cli_conf_schema, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "outpost: config %s: %s\n", path.data, msg);
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if (json_object_get(c->conf, "token") && stat(path.data, &st) == 0 && (st.st_mode & 077))
		fprintf(stderr,
		        "outpost: warning: %s holds a token and others may read it: chmod 600 %s\n",
		        path.data, path.data);
	ca = json_string_value(json_object_get(c->conf, "ca"));
	if (ca && ca[0] != '/') {
		const char *slash = strrchr(path.data, '/');
		struct buf abs = BUF_INIT;
		if (slash)
			buf_printf(&abs, "%.*s/%s", (int)(slash - path.data), path.data, ca);
		else
			buf_puts(&abs, ca);
		c->conf_ca = buf_steal(&abs);
	}
out:
	buf_free(&path);
	return rc;
}

/* The first setting that is there: flag, environment, config file. */
static const char *cli_setting(struct cli *c, const char *flag, const char *env, const char *key)
{
	if (flag && *flag)
		return flag;
	if (cli_env(env))
		return cli_env(env);
	if (strcmp(key, "ca") == 0 && c->conf_ca)
		return c->conf_ca;
	return json_string_value(json_object_get(c->conf, key));
}

/* http to anything but this machine sends the token in clear: say so. */
static void cli_warn_plaintext(const char *hub)
{
	static const char *const local[] = {"http://localhost", "http://127.", "http://[::1]"};

	if (strncmp(hub, "http://", 7) != 0)
		return;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strncmp(hub, local[i], strlen(local[i])) == 0)
			return;
	fprintf(stderr, "outpost: warning: %s is plain http: the token travels unencrypted\n", hub);
}

#define CLI_HUBS_MAX 16

/* The hub setting: one URL or several, comma-separated (the hubs of one fleet in scale mode,
 * tried in turn); "hub:8443" means https://hub:8443. 0, or an exit status after saying why. */
static int cli_hubs(struct cli *c, const char *list)
{
	const char *p = list;

	c->hubs = calloc(CLI_HUBS_MAX, sizeof(*c->hubs));
	if (!c->hubs)
		return CLI_EXIT_HUB;
	while (*p) {
		size_t len = strcspn(p, ",");
		struct buf hub = BUF_INIT;
		while (len && (*p == ' ')) {
			p++;
			len--;
		}
		if (!len || c->nhubs == CLI_HUBS_MAX)
			return cli_usage(c,
			                 "--hub: %s (one URL, or up to %d separated by commas, "
			                 "none empty)",
			                 len ? "too many hubs" : "an empty hub URL", CLI_HUBS_MAX);
		if (!memmem(p, len, "://", 3))
			buf_puts(&hub, "https://");
		buf_printf(&hub, "%.*s", (int)len, p);
		if (!hub.data)
			return CLI_EXIT_HUB;
		c->hubs[c->nhubs++] = buf_steal(&hub);
		p += len;
		if (*p == ',' && !*++p)
			return cli_usage(c, "--hub: an empty hub URL after the last comma");
	}
	if (!c->nhubs)
		return cli_usage(c, "--hub: an empty hub URL");
	return 0;
}

/* (Re)opens the client on hub c->hub_i. */
static int cli_open_hub(struct cli *c)
{
	struct client_err err;

	client_free(c->client);
	c->client = NULL;
	c->cc->hub = c->hubs[c->hub_i];
	cli_warn_plaintext(c->cc->hub);
	if (client_open(c->cc, &c->client, &err) < 0)
		return cli_usage(c, "%s", err.message);
	return 0;
}

static int cli_connect(struct cli *c)
{
	const char *h;
	int rc;

	if ((rc = cli_load_conf(c)) != 0)
		return rc;
	if (!(c->cc = calloc(1, sizeof(*c->cc))))
		return CLI_EXIT_HUB;
	c->cc->interrupted = c->interrupted;
	h = cli_setting(c, c->hub, "OUTPOST_HUB", "hub");
	c->cc->token = cli_setting(c, c->token, "OUTPOST_TOKEN", "token");
	c->cc->ca = cli_setting(c, c->ca, "OUTPOST_CA", "ca");
	c->cc->pin = cli_setting(c, c->pin, "OUTPOST_PIN", "pin");
	if (!h)
		return cli_usage(c, "which hub? Pass --hub URL, set OUTPOST_HUB, or put \"hub\" "
		                    "in ~/.config/outpost/cli.conf");
	if (!c->cc->token)
		return cli_usage(c, "no token: pass --token TOKEN, set OUTPOST_TOKEN, or put "
		                    "\"token\" in ~/.config/outpost/cli.conf (the hub's first "
		                    "admin token is in <state-dir>/admin.token)");
	if ((rc = cli_hubs(c, h)) != 0)
		return rc;
	return cli_open_hub(c);
}

/* A call that never reached its hub (no connection): the next hub given, if any is left to
 * try in this call; 1 when the client moved. */
static int cli_next_hub(struct cli *c, const struct client_err *err, size_t *tried)
{
	size_t from = c->hub_i;

	if (err->sent || !err->retry || err->code[0] || *tried + 1 >= c->nhubs)
		return 0;
	(*tried)++;
	c->hub_i = (c->hub_i + 1) % c->nhubs;
	fprintf(stderr, "outpost: warning: %s: %s; trying %s\n", c->hubs[from], err->message,
	        c->hubs[c->hub_i]);
	return cli_open_hub(c) == 0;
}

/* Sleeps ms unless interrupted first; 0, or -1 when interrupted. */
static int cli_sleep(struct cli *c, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (!*c->interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return *c->interrupted ? -1 : 0;
}

int cli_call(struct cli *c, const char *method, const char *path, const json_t *body, int wait_s,
             int retry_s, json_t **result)
{
	int64_t deadline = cli_now_ms() + (int64_t)retry_s * 1000;
	int delay = 500, warned = 0, rc;
	struct client_err err;
	size_t tried = 0;

	*result = NULL;
	c->err_code[0] = '\0';
	c->err_sent = 0;
	if (!c->client && (rc = cli_connect(c)) != 0)
		return rc;
	for (;;) {
		err.sent = 0;
		rc = client_call(c->client, method, path, body, wait_s, result, &err);
		if (rc == 0)
			return 0;
		c->err_sent |= err.sent; /* any attempt may have reached the hub */
		if (rc == CLIENT_E_INTR || *c->interrupted)
			return CLI_EXIT_INTERRUPTED;
		if (cli_next_hub(c, &err, &tried))
			continue;
		tried = 0; /* every hub failed: the retries go round them again */
		if (!err.retry || cli_now_ms() + delay > deadline)
			break;
		if (!warned && retry_s >= CLI_FOLLOW_RETRY_S) {
			cli_progress(c, NULL);
			fprintf(stderr, "outpost: warning: %s%s%s; retrying\n", err.code,
			        err.code[0] ? ": " : "", err.message);
			warned = 1;
		}
		if (cli_sleep(c, delay) < 0)
			return CLI_EXIT_INTERRUPTED;
		delay = delay * 2 > 5000 ? 5000 : delay * 2;
	}
	cli_progress(c, NULL);
	snprintf(c->err_code, sizeof(c->err_code), "%s", err.code);
	if (err.code[0])
		fprintf(stderr, "outpost: %s: %s\n", err.code, err.message);
	else
		fprintf(stderr, "outpost: %s\n", err.message);
	return rc == CLIENT_E_SETUP ? CLI_EXIT_USAGE : CLI_EXIT_HUB;
}

int cli_request(struct cli *c, const char *method, const char *path, const json_t *body,
                int retry_s, json_t **result)
{
	int rc = cli_call(c, method, path, body, 0, retry_s, result);

	if (rc == 0 && c->json) {
		rc = cli_print_json(c, *result) < 0 ? CLI_EXIT_FAILED : 0;
		json_decref(*result);
		*result = NULL;
	}
	return rc;
}

int cli_print_rows(struct cli *c, const json_t *list, size_t ncols, const char *const *head,
                   out_row_fn row, const void *arg)
{
	struct buf b = BUF_INIT;
	int rc = CLI_EXIT_HUB;

	if (out_table_rows(&b, ncols, head, list, row, arg) == 0)
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	buf_free(&b);
	return rc;
}

int cli_list(struct cli *c, const char *path, size_t ncols, const char *const *head, out_row_fn row,
             const void *arg)
{
	json_t *list = NULL;
	int rc = cli_request(c, "GET", path, NULL, CLI_RETRY_S, &list);

	if (rc == 0 && list)
		rc = cli_print_rows(c, list, ncols, head, row, arg);
	json_decref(list);
	return rc;
}

int cli_write(struct cli *c, struct buf *b)
{
	int rc = 0;

	if (b->len == 0)
		return 0;
	cli_progress(c, NULL);
	if (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0)
		rc = -1;
	buf_reset(b);
	return rc;
}

int cli_print_json(struct cli *c, const json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	struct buf b = BUF_INIT;
	int rc = -1;

	if (text && buf_puts(&b, text) == 0 && buf_puts(&b, "\n") == 0)
		rc = cli_write(c, &b);
	free(text);
	buf_free(&b);
	return rc;
}

void cli_progress(struct cli *c, const char *line)
{
	if (!c->progress || c->json || (!line && !c->progress_shown))
		return;
	if (line && c->progress_shown && strcmp(line, c->progress_last) == 0)
		return;
	snprintf(c->progress_last, sizeof(c->progress_last), "%s", line ? line : "");
	/* Back to the start of the line and erase it, then draw. */
	fprintf(stderr, "\r\033[K%s", line ? line : "");
	fflush(stderr);
	c->progress_shown = line != NULL;
}

static const struct cli_cmd *cli_find(const char *group, const char *name)
{
	for (size_t i = 0; i < CLI_NCMDS; i++) {
		const struct cli_cmd *cmd = &cli_cmds[i];
		if (group ? cmd->group && strcmp(cmd->group, group) == 0 && name &&
		                strcmp(cmd->name, name) == 0
		          : !cmd->group && strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

static int cli_is_group(const char *word)
{
	for (size_t i = 0; i < CLI_NCMDS; i++)
		if (cli_cmds[i].group && strcmp(cli_cmds[i].group, word) == 0)
			return 1;
	return 0;
}

/* `outpost help [COMMAND...]`. */
static int cli_help_command(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc == 0) {
		cli_help(stdout, NULL);
		return CLI_EXIT_OK;
	}
	if (cli_is_group(argv[0])) {
		if (argc == 1) {
			cli_help(stdout, argv[0]);
			return CLI_EXIT_OK;
		}
		cmd = cli_find(argv[0], argv[1]);
	} else {
		cmd = cli_find(NULL, argv[0]);
	}
	if (!cmd)
		return cli_usage(c, "no command '%s%s%s'", argv[0], argc > 1 ? " " : "",
		                 argc > 1 ? argv[1] : "");
	cli_help_cmd(stdout, cmd);
	return CLI_EXIT_OK;
}

static int cli_dispatch(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc == 0) {
		cli_help(stderr, NULL);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[0], "help") == 0)
		return cli_help_command(c, argc - 1, argv + 1);
	if (cli_is_group(argv[0])) {
		if (argc < 2) {
			cli_help(stderr, argv[0]);
			return CLI_EXIT_USAGE;
		}
		cmd = cli_find(argv[0], argv[1]);
		if (!cmd) {
			fprintf(stderr, "outpost: %s has no command '%s'\n\n", argv[0], argv[1]);
			cli_help(stderr, argv[0]);
			return CLI_EXIT_USAGE;
		}
		argc--;
		argv++;
	} else if (!(cmd = cli_find(NULL, argv[0]))) {
		return cli_usage(c, "unknown command '%s'", argv[0]);
	}
	c->cmd = cmd;
	optind = 0;
	return cmd->fn(c, argc, argv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"version", no_argument, NULL, 'V'},
	    {"help-man", no_argument, NULL, 'M'},
	    {"help-bash", no_argument, NULL, 'B'},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli c = {.interrupted = &main_interrupted};
	struct sigaction sa;
	int ch, rc;

	/* No SA_RESTART: a Ctrl-C must end a sleep or a blocking read at once. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "outpost: cannot initialise libsodium or libcurl\n");
		return CLI_EXIT_HUB;
	}
	c.progress = isatty(STDERR_FILENO);
	optind = 0;
	while ((ch = cli_getopt(&c, argc, argv, "+", opts)) != -1) {
		if (ch == 'V') {
			printf("outpost %s\n", OUTPOST_VERSION);
			rc = CLI_EXIT_OK;
			goto out;
		}
		if (ch == 'M' || ch == 'B') {
			/* For packagers: the man page and the completion, from this very table. */
			(ch == 'M' ? helpgen_man : helpgen_bash)(stdout, &cli_helpgen);
			rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
			goto out;
		}
		rc = cli_getopt_exit(ch);
		goto out;
	}
	rc = cli_dispatch(&c, argc - optind, argv + optind);
out:
	client_free(c.client);
	free(c.cc);
	for (size_t i = 0; i < c.nhubs; i++)
		free(c.hubs[i]);
	free(c.hubs);
	json_decref(c.conf);
	free(c.conf_ca);
	curl_global_cleanup();
	return rc;
}
