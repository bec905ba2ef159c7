/* Leveled logging to stderr (journal-aware) or syslog. A logger is a value owned by its daemon;
 * there is no global logger, so several agents can share a process. */
#ifndef OUTPOST_LOG_H
#define OUTPOST_LOG_H

#include <outpost/plugin.h>
#include <stdarg.h>

enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

struct logger {
	int level;         /* OUTPOST_LOG_*: lines above it are dropped */
	int target;        /* enum log_target */
	int journal;       /* stderr goes to the journal: use <N> prefixes, no timestamps */
	const char *ident; /* borrowed, e.g. "outpost-agent" */
};

void log_init(struct logger *lg, const char *ident, int level, int target);
/* Parses "error", "warn", "info", "debug"; returns the level or -1. */
int log_level_parse(const char *s);
void log_msg(const struct logger *lg, int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg(const struct logger *lg, int level, const char *who, const char *fmt, va_list ap);

#define log_error(lg, who, ...) log_msg(lg, OUTPOST_LOG_ERROR, who, __VA_ARGS__)
#define log_warn(lg, who, ...) log_msg(lg, OUTPOST_LOG_WARN, who, __VA_ARGS__)
#define log_info(lg, who, ...) log_msg(lg, OUTPOST_LOG_INFO, who, __VA_ARGS__)
#define log_debug(lg, who, ...) log_msg(lg, OUTPOST_LOG_DEBUG, who, __VA_ARGS__)

#endif
