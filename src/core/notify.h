/* The service manager's readiness and watchdog protocol (sd_notify), spoken directly: one
 * datagram of "KEY=VALUE\n..." text to the unix socket named by $NOTIFY_SOCKET. A few lines
 * instead of libsystemd, which would add a library (and its dependencies) to the agent's
 * memory on every host for the same one sendto(). */
#ifndef OUTPOST_NOTIFY_H
#define OUTPOST_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/* Sends state ("READY=1", "WATCHDOG=1", "STOPPING=1", ...) to the socket at path: a file
 * system path, or an abstract name written with a leading '@'. path NULL or empty: nothing to
 * tell (not started by a service manager), returns 0. 0, or -1 with errno. */
int notify_send(const char *path, const char *state);

/* How often to send WATCHDOG=1, in ms: half of $WATCHDOG_USEC (usec), so one late beat is not
 * a restart. 0 when there is no watchdog, or it is meant for another process ($WATCHDOG_PID
 * set and not self). */
int64_t notify_watchdog_ms(const char *usec, const char *pid, pid_t self);

#endif
