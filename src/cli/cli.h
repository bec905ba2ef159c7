/* The operator CLI `outpost`: the context every command gets, exit statuses, option parsing
 * shared by all commands, and one entry point per command (hosts.c, run.c, tasks.c,
 * tokens.c, audit.c, metrics.c). */
#ifndef OUTPOST_CLI_H
#define OUTPOST_CLI_H

#include "core/buf.h"
#include "output.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,  /* a host failed, timed out, was lost, refused, expired, cancelled */
	CLI_EXIT_USAGE = 2,   /* the command line (or the CLI's config) is wrong */
	CLI_EXIT_HUB = 3,     /* the hub said no, or could not be reached */
	CLI_EXIT_UNKNOWN = 4, /* a submit may have reached the hub: whether the task exists is
	                       * unknown (its id is printed) */
	CLI_EXIT_INTERRUPTED = 130,
};

/* How long calls keep retrying a hub that is unreachable or busy. */
#define CLI_RETRY_S 5          /* an ordinary call */
#define CLI_FOLLOW_RETRY_S 120 /* following a task: the hub may be restarting */
#define CLI_POLL_WAIT_S 30     /* long-poll wait for task updates */

struct client;
struct cli_cmd;

struct client_conf;

struct cli {
	/* From flags (borrowed from argv); the environment and the config file fill the rest. */
	const char *hub, *token, *ca, *pin, *config;
	int json;
	int group;               /* run --group: identical outcomes once, after their hosts */
	int progress;            /* draw the progress line: stderr is a terminal and not --json */
	int progress_shown;      /* a progress line is on the screen now */
	char progress_last[128]; /* what it says, so an unchanged line is not redrawn */
	volatile sig_atomic_t *interrupted;
	const struct cli_cmd *cmd; /* the command running, for messages */
	struct client *client;     /* opened by cli_call on first use */
	struct client_conf *cc;    /* what it was opened with (its hub changes on failover) */
	char **hubs;               /* the hub URLs given (comma-separated), normalised */
	size_t nhubs, hub_i;       /* how many; the one client talks to */
	json_t *conf;              /* the config file, once read */
	char *conf_ca;             /* its ca, resolved against the file's directory */
	char err_code[32];         /* the hub's error code of the last failed cli_call, or "" */
	int err_sent; /* the last failed cli_call sent a request the hub may have acted on */
};

typedef int (*cli_fn)(struct cli *c, int argc, char **argv);

struct cli_cmd {
	const char *group; /* "hosts", or NULL for a command of its own ("run") */
	const char *name;
	cli_fn fn;
	const char *synopsis; /* after "outpost group name " */
	const char *summary;  /* one line for `outpost help` */
	const char *help;     /* options and details for `outpost help COMMAND` */
};

/* Long options every command takes besides its own: put CLI_GLOBAL_OPTIONS at the end of a
 * command's table, before the terminating zero entry. */
enum {
	CLI_OPT_HUB = 0x1000,
	CLI_OPT_TOKEN,
	CLI_OPT_CA,
	CLI_OPT_PIN,
	CLI_OPT_CONFIG,
	CLI_OPT_JSON,
	CLI_OPT_HELP,
};
#define CLI_GLOBAL_OPTIONS                                                                         \
	{"hub", required_argument, NULL, CLI_OPT_HUB},                                             \
	    {"token", required_argument, NULL, CLI_OPT_TOKEN},                                     \
	    {"ca", required_argument, NULL, CLI_OPT_CA},                                           \
	    {"pin", required_argument, NULL, CLI_OPT_PIN},                                         \
	    {"config", required_argument, NULL, CLI_OPT_CONFIG},                                   \
	    {"json", no_argument, NULL, CLI_OPT_JSON},                                             \
	{                                                                                          \
		"help", no_argument, NULL, CLI_OPT_HELP                                            \
	}

#define CLI_GETOPT_USAGE (-2) /* a usage error was printed: exit CLI_EXIT_USAGE */
#define CLI_GETOPT_HELP (-3)  /* help was printed: exit CLI_EXIT_OK */

/* getopt_long over a command's options (argv[0] is the command's name); global options are
 * handled here. Returns the next option of the command's own, -1 when they are over (optind
 * is the first operand), or CLI_GETOPT_USAGE / CLI_GETOPT_HELP. shortopts: "+" first to stop
 * at the first operand (run: the remote command's own flags follow). Reset optind to 0 first. */
int cli_getopt(struct cli *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
/* Maps cli_getopt's special returns to an exit status. */
int cli_getopt_exit(int rc);
/* After the options of a command that takes no operand: 0, or the usage error of the first
 * one left (CLI_EXIT_USAGE). */
int cli_no_operands(struct cli *c, int argc, char **argv);

/* The options of a command whose only operand is an id: *id (borrowed from argv), or NULL and
 * the exit status to end with (help shown, usage error). what names it: "host", "task". */
int cli_one_id(struct cli *c, int argc, char **argv, const char *what, const char **id);

/* Prints "outpost: MESSAGE" and a pointer to the command's help; returns CLI_EXIT_USAGE. */
int cli_usage(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One call to the hub (see client_call). Transient failures (connection, busy, unavailable)
 * are retried for up to retry_s seconds. On failure the error is printed once, as
 * "outpost: CODE: MESSAGE", c->err_code gets CODE, and the exit status is returned
 * (CLI_EXIT_INTERRUPTED silently); on success 0 and *result. */
int cli_call(struct cli *c, const char *method, const char *path, const json_t *body, int wait_s,
             int retry_s, json_t **result);

/* A call whose answer the command shows: cli_call without a long-poll wait, and with --json
 * the answer is printed here as the hub gave it and *result stays NULL. 0 (show *result when
 * it is not NULL), or the exit status. */
int cli_request(struct cli *c, const char *method, const char *path, const json_t *body,
                int retry_s, json_t **result);
/* GET path and show the array it answers as a table, a row per item (out_table_rows), or with
 * --json the answer. The exit status. */
int cli_list(struct cli *c, const char *path, size_t ncols, const char *const *head, out_row_fn row,
             const void *arg);
/* A list command whose only option is --limit N: its options, then cli_list of path (with
 * "?limit=N" when given). The exit status. */
int cli_list_limit(struct cli *c, int argc, char **argv, const char *path, size_t ncols,
                   const char *const *head, out_row_fn row);
/* list as a table on stdout: 0, CLI_EXIT_HUB (out of memory) or CLI_EXIT_FAILED (stdout is
 * gone). */
int cli_print_rows(struct cli *c, const json_t *list, size_t ncols, const char *const *head,
                   out_row_fn row, const void *arg);

/* Writes b to stdout (clearing the progress line first) and empties it. 0, or -1 when stdout
 * is gone (a closed pipe). */
int cli_write(struct cli *c, struct buf *b);
/* Prints a JSON value on stdout, indented. */
int cli_print_json(struct cli *c, const json_t *v);
/* Draws line as the progress line on stderr (when c->progress); NULL erases it. */
void cli_progress(struct cli *c, const char *line);
/* Milliseconds since 1970. */
int64_t cli_now_ms(void);

/* Commands. */
int hosts_ls(struct cli *c, int argc, char **argv);
int hosts_show(struct cli *c, int argc, char **argv);
int hosts_accept(struct cli *c, int argc, char **argv);
int hosts_reject(struct cli *c, int argc, char **argv);
int hosts_revoke(struct cli *c, int argc, char **argv);
int hosts_remove(struct cli *c, int argc, char **argv);
int hosts_label(struct cli *c, int argc, char **argv);
int run_run(struct cli *c, int argc, char **argv);
int run_cp(struct cli *c, int argc, char **argv);
int run_call(struct cli *c, int argc, char **argv);
int tasks_ls(struct cli *c, int argc, char **argv);
int tasks_show(struct cli *c, int argc, char **argv);
int tasks_wait(struct cli *c, int argc, char **argv);
int tasks_cancel(struct cli *c, int argc, char **argv);
int tokens_create(struct cli *c, int argc, char **argv);
int tokens_ls(struct cli *c, int argc, char **argv);
int tokens_revoke(struct cli *c, int argc, char **argv);
int audit_ls(struct cli *c, int argc, char **argv);
int events_ls(struct cli *c, int argc, char **argv);
int rules_ls(struct cli *c, int argc, char **argv);
int rules_show(struct cli *c, int argc, char **argv);
int rules_add(struct cli *c, int argc, char **argv);
int rules_edit(struct cli *c, int argc, char **argv);
int rules_rm(struct cli *c, int argc, char **argv);
int rules_test(struct cli *c, int argc, char **argv);
int alerts_ls(struct cli *c, int argc, char **argv);
int alerts_ack(struct cli *c, int argc, char **argv);
int alerts_silence(struct cli *c, int argc, char **argv);
int metrics_ls(struct cli *c, int argc, char **argv);
int metrics_latest(struct cli *c, int argc, char **argv);
int metrics_query(struct cli *c, int argc, char **argv);
int flows_ls(struct cli *c, int argc, char **argv);
int flows_get(struct cli *c, int argc, char **argv);
int flows_add(struct cli *c, int argc, char **argv);
int flows_rm(struct cli *c, int argc, char **argv);
int flows_run(struct cli *c, int argc, char **argv);
int flows_runs(struct cli *c, int argc, char **argv);
int flows_show(struct cli *c, int argc, char **argv);
int flows_cancel(struct cli *c, int argc, char **argv);
int report_show(struct cli *c, int argc, char **argv);

/* Follows a task until every host has an outcome, printing each as it lands, then a summary
 * (or, with --json, the final task). first: the task as already fetched, or NULL. The exit
 * status: 0 all ok, 1 any host not ok, 3 the hub, 130 interrupted (with how to resume). */
int tasks_follow(struct cli *c, const char *id, json_t *first);

#endif
