/* The CLI's man page and bash completion, generated from the command table that `outpost
 * help` prints (main.c), so a command or option cannot be in one and missing from another:
 * `outpost --help-man` (roff, section 1) and `outpost --help-bash` (a bash completion
 * script). meson builds both into the package. */
#ifndef OUTPOST_CLI_HELPGEN_H
#define OUTPOST_CLI_HELPGEN_H

#include "cli.h"

#include <stdio.h>

struct helpgen {
	const struct cli_cmd *cmds;
	size_t ncmds;
	const char *task_help;   /* options of every command whose help holds "@TASK" */
	const char *global_help; /* "Global options ...:\n" then the options */
	const char *exit_help;   /* the exit statuses, in --help layout */
};

void helpgen_man(FILE *f, const struct helpgen *h);
void helpgen_bash(FILE *f, const struct helpgen *h);

#endif
