/* Logging: one line per message, written with a single write(2) so threads do not interleave. */
#include "log.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(struct logger *lg, const char *ident, int level, int target)
{
	lg->level = level;
	lg->target = target;
	lg->ident = ident;
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal. */
	lg->journal = getenv("JOURNAL_STREAM") != NULL;
	if (target == LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int log_level_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void log_vmsg(const struct logger *lg, int level, const char *who, const char *fmt, va_list ap)
{
	static const int sysprio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	struct buf b = BUF_INIT;
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	if (!lg || level > lg->level)
		return;
	if (level < 0)
		level = 0;
	if (level > 3)
		level = 3;
	if (lg->target == LOG_TO_SYSLOG) {
		if (buf_printf(&b, "%s: ", who ? who : "-") == 0 && buf_vprintf(&b, fmt, ap) == 0)
			syslog(sysprio[level], "%s", b.data);
		buf_free(&b);
		return;
	}
	if (lg->journal) {
		buf_printf(&b, "<%d>%s: ", sysprio[level], who ? who : "-");
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		buf_printf(&b, "%s.%03ldZ %s %s %s: ", stamp, ts.tv_nsec / 1000000, lg->ident,
		           level_names[level], who ? who : "-");
	}
	buf_vprintf(&b, fmt, ap);
	buf_puts(&b, "\n");
	if (b.data) {
		ssize_t off = 0;
		while ((size_t)off < b.len) {
			ssize_t n = write(STDERR_FILENO, b.data + off, b.len - (size_t)off);
			if (n <= 0)
				break;
			off += n;
		}
	}
	buf_free(&b);
}

void log_msg(const struct logger *lg, int level, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lg, level, who, fmt, ap);
	va_end(ap);
}
