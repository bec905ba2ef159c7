/* What the daemons share at start: leaving the terminal, and signals as a file descriptor. */
#ifndef OUTPOST_DAEMON_H
#define OUTPOST_DAEMON_H

/* Forks into the background (double fork, setsid, stdio on /dev/null). 0 in the daemon. */
int daemon_detach(void);
/* Ignores SIGPIPE and blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in threads
 * started later); returns a non-blocking signalfd that reads them, or -1. */
int daemon_signalfd(void);

#endif
