/* TCP keepalive as a sign of life: arm it on a connection the hub holds (an agent's long-poll)
 * and ask the kernel whether the peer still answers. A host whose kernel answers the probes is
 * up as far as the network can tell; a powered-off host or a cut network stops answering, an
 * agent that dies has its kernel close the connection. */
#ifndef OUTPOST_TCPALIVE_H
#define OUTPOST_TCPALIVE_H

#include <stdint.h>

struct tcp_info;

/* How a held connection is probed: the first probe after idle_ms without traffic, then every
 * intvl_ms; the peer is dead after probes unanswered probes in a row. */
struct tcpalive {
	int64_t idle_ms, intvl_ms;
	int probes;
};

/* The probing that finds a dead peer within about missed x beat_ms of its last answer: a probe
 * a beat after the last traffic, then one each beat, and missed of them unanswered (at least 2:
 * one probe is briefly unanswered on every healthy round trip). */
struct tcpalive tcpalive_for_beats(int64_t beat_ms, int missed);

/* Turns keepalive on for fd with ka (times rounded up to whole seconds, the kernel's unit).
 * 0, or a negative OUTPOST_E_* when fd is not a TCP socket or the kernel refuses. */
int tcpalive_arm(int fd, const struct tcpalive *ka);

/* 1 while fd's connection is established and fewer than ka->probes keepalive probes are
 * unanswered; 0 once the peer closed, reset or stopped answering (or fd is no TCP socket). */
int tcpalive_healthy(int fd, const struct tcpalive *ka);

/* The judgement of tcpalive_healthy on a tcp_info the kernel gave (tests feed their own). */
int tcpalive_judge(const struct tcp_info *ti, const struct tcpalive *ka);

#endif
