/* outpost run | cp | call: build a task, submit it with a caller id (so a retried submit never
 * makes a second task), then follow it host by host (tasks_follow). */
#include "args.h"
#include "cli.h"
#include "req.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MAX_SCRIPT 131071    /* the kernel's limit on one argument of sh -c */
#define RUN_MAX_FILE (47u << 20) /* base64 of it fits the hub's 64 MiB task body */

enum {
	RUN_OPT_TIMEOUT = 0x100,
	RUN_OPT_EXPIRES,
	RUN_OPT_BATCH,
	RUN_OPT_MAX_FAILURES,
	RUN_OPT_ID,
	RUN_OPT_NO_WAIT,
	RUN_OPT_SCRIPT,
	RUN_OPT_USER,
	RUN_OPT_CWD,
	RUN_OPT_ENV,
	RUN_OPT_MODE,
	RUN_OPT_OWNER,
	RUN_OPT_GROUP,
	RUN_OPT_MAKE_DIRS,
	RUN_OPT_GROUP_OUTPUT,
};

#define RUN_TASK_OPTIONS                                                                           \
	{"target", required_argument, NULL, 't'},                                                  \
	    {"timeout", required_argument, NULL, RUN_OPT_TIMEOUT},                                 \
	    {"expires", required_argument, NULL, RUN_OPT_EXPIRES},                                 \
	    {"batch", required_argument, NULL, RUN_OPT_BATCH},                                     \
	    {"max-failures", required_argument, NULL, RUN_OPT_MAX_FAILURES},                       \
	    {"id", required_argument, NULL, RUN_OPT_ID},                                           \
	{                                                                                          \
		"no-wait", no_argument, NULL, RUN_OPT_NO_WAIT                                      \
	}

/* What run, cp and call share. */
struct run_task {
	struct req_task t;
	char id[64];
	int no_wait;
};

static void run_task_init(struct run_task *r)
{
	memset(r, 0, sizeof(*r));
	r->t.max_failures = -1;
}

static void run_task_fini(struct run_task *r)
{
	json_decref(r->t.batch);
}

/* A task option: 1 taken, 0 not a task option, or -1 after a usage error. */
static int run_task_opt(struct cli *c, struct run_task *r, int ch, const char *val)
{
	long long n;

	switch (ch) {
	case 't':
		if (!*val) {
			cli_usage(c, "-t: the selector is empty (use '*' for every host)");
			return -1;
		}
		r->t.target = val;
		return 1;
	case RUN_OPT_TIMEOUT:
		if (args_duration(val, &r->t.timeout_ms) < 0) {
			cli_usage(c, "--timeout: '%s' is not a duration such as 60s, 5m, 2h", val);
			return -1;
		}
		return 1;
	case RUN_OPT_EXPIRES:
		if (args_duration(val, &r->t.expires_in_ms) < 0) {
			cli_usage(c, "--expires: '%s' is not a duration such as 10m, 1h, 1d", val);
			return -1;
		}
		return 1;
	case RUN_OPT_BATCH:
		json_decref(r->t.batch);
		if (args_batch(val, &r->t.batch) < 0) {
			cli_usage(c,
			          "--batch: '%s' is not a count of hosts (10) or a "
			          "percentage (10%%)",
			          val);
			return -1;
		}
		return 1;
	case RUN_OPT_MAX_FAILURES:
		if (args_int(val, 0, 1000000000, &n) < 0) {
			cli_usage(c, "--max-failures: '%s' is not a count (0 or more)", val);
			return -1;
		}
		r->t.max_failures = n;
		return 1;
	case RUN_OPT_ID:
		if (!args_id_ok(val)) {
			cli_usage(c,
			          "--id: '%s' is not an id: 1..64 of A-Z a-z 0-9 . _ -, "
			          "not starting with . or -",
			          val);
			return -1;
		}
		r->t.id = val;
		return 1;
	case RUN_OPT_NO_WAIT:
		r->no_wait = 1;
		return 1;
	default:
		return 0;
	}
}

/* cli_getopt that takes the task options itself: the next option of the command's own, -1 when
 * they are over, or CLI_GETOPT_USAGE / CLI_GETOPT_HELP (a usage error was printed). */
static int run_getopt(struct cli *c, struct run_task *r, int argc, char **argv,
                      const char *shortopts, const struct option *longopts)
{
	int ch;

	while ((ch = cli_getopt(c, argc, argv, shortopts, longopts)) != -1) {
		int taken = run_task_opt(c, r, ch, optarg);
		if (taken < 0)
			return CLI_GETOPT_USAGE;
		if (!taken)
			return ch;
	}
	return -1;
}

/* Reads a file ("-": stdin) of at most max bytes. 0 and a new NUL-terminated buffer, or an exit
 * status after printing why. */
static int run_read(struct cli *c, const char *flag, const char *path, size_t max, char **data,
                    size_t *len)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct buf b = BUF_INIT;
	char chunk[65536];
	int rc = 0;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return cli_usage(c, "%s: cannot open '%s': %s", flag, path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR && !*c->interrupted)
			continue;
		if (*c->interrupted) {
			rc = CLI_EXIT_INTERRUPTED;
			break;
		}
		if (n < 0) {
			rc = cli_usage(c, "%s: cannot read '%s': %s", flag, path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			rc = cli_usage(c, "%s: '%s' is larger than %zu bytes", flag, path, max);
			break;
		}
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			rc = cli_usage(c, "%s: out of memory", flag);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc) {
		buf_free(&b);
		return rc;
	}
	*len = b.len;
	*data = buf_steal(&b);
	return *data ? 0 : CLI_EXIT_HUB;
}

/* Submits the task (steals args) and follows it, or with --no-wait prints its id. */
static int run_submit(struct cli *c, struct run_task *r, const char *plugin, const char *op,
                      json_t *args)
{
	json_t *body, *task = NULL;
	const char *id;
	int rc;

	if (!r->t.id) {
		req_new_id(r->id);
		r->t.id = r->id;
	}
	body = req_task_body(&r->t, plugin, op, args);
	if (!body) {
		fprintf(stderr, "outpost: out of memory\n");
		return CLI_EXIT_HUB;
	}
	rc = cli_call(c, "POST", "/api/v1/tasks", body, 0, CLI_RETRY_S, &task);
	json_decref(body);
	if (rc == CLI_EXIT_INTERRUPTED || (rc == CLI_EXIT_HUB && c->err_sent)) {
		/* The id was chosen before sending: the one handle on a task that may exist.
		 * Running the command again without it could run it twice everywhere. */
		cli_progress(c, NULL);
		fprintf(
		    stderr,
		    "outpost: %s; task %s may have been created. Look with: outpost tasks show "
		    "%s (follow it: outpost tasks wait %s; submit again safely: the same command "
		    "with --id %s)\n",
		    rc == CLI_EXIT_INTERRUPTED ? "interrupted" : "the submit's outcome is unknown",
		    r->t.id, r->t.id, r->t.id, r->t.id);
		return rc == CLI_EXIT_INTERRUPTED ? rc : CLI_EXIT_UNKNOWN;
	}
	/* The hub makes no task for a target that matches no accepted host (not_found): for
	 * scripts that is a host not ok, exit 1 (docs/cli.md), not a hub failure. */
	if (rc == CLI_EXIT_HUB && strcmp(c->err_code, "not_found") == 0)
		return CLI_EXIT_FAILED;
	if (rc != 0)
		return rc;
	id = json_string_value(json_object_get(task, "id"));
	if (!id)
		id = r->t.id;
	if (r->no_wait) {
		struct buf b = BUF_INIT;
		if (c->json)
			rc = cli_print_json(c, task) < 0 ? CLI_EXIT_FAILED : 0;
		else
			rc = buf_printf(&b, "%s\n", id) < 0 || cli_write(c, &b) < 0
			         ? CLI_EXIT_FAILED
			         : 0;
		buf_free(&b);
	} else {
		rc = tasks_follow(c, id, task);
	}
	json_decref(task);
	return rc;
}

int run_run(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    RUN_TASK_OPTIONS,
	    {"script", required_argument, NULL, RUN_OPT_SCRIPT},
	    {"user", required_argument, NULL, RUN_OPT_USER},
	    {"cwd", required_argument, NULL, RUN_OPT_CWD},
	    {"env", required_argument, NULL, RUN_OPT_ENV},
	    {"group", no_argument, NULL, RUN_OPT_GROUP_OUTPUT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct run_task r;
	const char *script_path = NULL, *user = NULL, *cwd = NULL;
	json_t *env = json_object(), *args = NULL;
	char *script = NULL, msg[256];
	size_t script_len = 0;
	int ch, rc = 0;

	run_task_init(&r);
	/* "+": the first operand starts the remote command, whose own flags are not ours. */
	while ((ch = run_getopt(c, &r, argc, argv, "+t:b", opts)) != -1) {
		switch (ch) {
		case 'b':
		case RUN_OPT_GROUP_OUTPUT:
			c->group = 1;
			break;
		case RUN_OPT_SCRIPT:
			script_path = optarg;
			break;
		case RUN_OPT_USER:
			user = optarg;
			break;
		case RUN_OPT_CWD:
			if (optarg[0] != '/') {
				rc = cli_usage(c, "--cwd: '%s' is not an absolute path", optarg);
				goto out;
			}
			cwd = optarg;
			break;
		case RUN_OPT_ENV:
			if (args_env(env, optarg, msg, sizeof(msg)) < 0) {
				rc = cli_usage(c, "--env: %s", msg);
				goto out;
			}
			break;
		default:
			rc = cli_getopt_exit(ch);
			goto out;
		}
	}
	if (!r.t.target) {
		rc = cli_usage(c, "which hosts? Give -t SELECTOR (before the command)");
		goto out;
	}
	if (script_path && optind < argc) {
		rc = cli_usage(c, "give --script or a command, not both");
		goto out;
	}
	if (!script_path && optind >= argc) {
		rc = cli_usage(c, "no command: outpost run -t SELECTOR -- COMMAND [ARG...]");
		goto out;
	}
	if (script_path) {
		if ((rc = run_read(c, "--script", script_path, RUN_MAX_SCRIPT, &script,
		                   &script_len)) != 0)
			goto out;
		if (strlen(script) != script_len) {
			rc = cli_usage(c, "--script: '%s' holds a NUL byte", script_path);
			goto out;
		}
	}
	args = req_run_args(script ? NULL : argv + optind, script, user, cwd, env, r.t.timeout_ms);
	if (!args) {
		rc = cli_usage(c, "the command or script is not UTF-8 text");
		goto out;
	}
	rc = run_submit(c, &r, "exec", "run", args);
out:
	free(script);
	json_decref(env);
	run_task_fini(&r);
	return rc;
}

int run_cp(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    RUN_TASK_OPTIONS,
	    {"mode", required_argument, NULL, RUN_OPT_MODE},
	    {"owner", required_argument, NULL, RUN_OPT_OWNER},
	    {"group", required_argument, NULL, RUN_OPT_GROUP},
	    {"make-dirs", no_argument, NULL, RUN_OPT_MAKE_DIRS},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct run_task r;
	const char *mode = NULL, *owner = NULL, *group = NULL;
	char *data = NULL, *remote = NULL;
	size_t len = 0;
	int make_dirs = 0, ch, rc = 0;
	json_t *args;

	run_task_init(&r);
	while ((ch = run_getopt(c, &r, argc, argv, "t:", opts)) != -1) {
		switch (ch) {
		case RUN_OPT_MODE:
			if (!args_mode_ok(optarg)) {
				rc = cli_usage(c, "--mode: '%s' is not an octal mode such as 0644",
				               optarg);
				goto out;
			}
			mode = optarg;
			break;
		case RUN_OPT_OWNER:
			owner = optarg;
			break;
		case RUN_OPT_GROUP:
			group = optarg;
			break;
		case RUN_OPT_MAKE_DIRS:
			make_dirs = 1;
			break;
		default:
			rc = cli_getopt_exit(ch);
			goto out;
		}
	}
	if (!r.t.target) {
		rc = cli_usage(c, "which hosts? Give -t SELECTOR");
		goto out;
	}
	if (argc - optind != 2) {
		rc = cli_usage(c, "give LOCAL and REMOTE: outpost cp -t SELECTOR LOCAL REMOTE");
		goto out;
	}
	remote = req_cp_path(argv[optind], argv[optind + 1]);
	if (!remote) {
		rc = cli_usage(c, "REMOTE '%s' must be an absolute path%s", argv[optind + 1],
		               argv[optind + 1][0] == '/' ? " naming the file (LOCAL has no name)"
		                                          : "");
		goto out;
	}
	if ((rc = run_read(c, "LOCAL", argv[optind], RUN_MAX_FILE, &data, &len)) != 0)
		goto out;
	args = req_put_args(data, len, remote, mode, owner, group, make_dirs);
	if (!args) {
		rc = cli_usage(c, "REMOTE, --owner and --group must be UTF-8 text");
		goto out;
	}
	rc = run_submit(c, &r, "file", "put", args);
out:
	free(data);
	free(remote);
	run_task_fini(&r);
	return rc;
}

int run_call(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    RUN_TASK_OPTIONS,
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct run_task r;
	char *plugin = NULL, *op = NULL, msg[512];
	json_t *args = json_object();
	int ch, rc = 0;

	run_task_init(&r);
	if ((ch = run_getopt(c, &r, argc, argv, "t:", opts)) != -1) {
		rc = cli_getopt_exit(ch);
		goto out;
	}
	if (!r.t.target) {
		rc = cli_usage(c, "which hosts? Give -t SELECTOR");
		goto out;
	}
	if (optind >= argc || args_plugin_op(argv[optind], &plugin, &op) < 0) {
		rc = cli_usage(
		    c,
		    "give the op as PLUGIN.OP, such as sys.facts (names of 1 to 32 of a-z 0-9 _, "
		    "starting with a letter)");
		goto out;
	}
	for (optind++; optind < argc; optind++)
		if (args_call_arg(args, argv[optind], msg, sizeof(msg)) < 0) {
			rc = cli_usage(c, "%s", msg);
			goto out;
		}
	rc = run_submit(c, &r, plugin, op, args);
	args = NULL;
out:
	json_decref(args);
	free(plugin);
	free(op);
	run_task_fini(&r);
	return rc;
}
