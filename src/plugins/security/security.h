/* The security plugin's parts (docs/plugins/security.md): security.c holds the plugin (config,
 * the checker thread, ops, the baseline), sec_files.c what files say (integrity of passwd,
 * shadow, sudoers, keys, units ...), sec_net.c the firewall, listening sockets and setuid
 * files. Every check compares what it sees now with the baseline and adds events for what
 * differs; only the checker thread runs them, holding the plugin's state lock. */
#ifndef OUTPOST_PLUGIN_SECURITY_H
#define OUTPOST_PLUGIN_SECURITY_H

#include <jansson.h>
#include <outpost/plugin.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SEC_DIFF_LINES 20         /* lines added and removed an event shows, each */
#define SEC_LINES_MAX_BYTES 16384 /* files up to this size keep their lines for a diff */
#define SEC_FILE_MAX (4 << 20)    /* bytes of a file read for its digest */
#define SEC_RULES_MAX (1 << 20)   /* bytes of a firewall listing read */

struct sec_conf {
	int enabled;
	const char *root;     /* "" for "/": paths are root + host path */
	int64_t interval_ms;  /* the full check */
	json_t *firewall;     /* array of argv arrays (borrowed from the config) */
	const char *fw_netns; /* the namespace nftables' notifications come from; NULL: ours */
	int audit;            /* read the kernel's audit records for who made a change */
	int sockets;          /* listening sockets */
	json_t *setuid_roots; /* array of host paths (borrowed) */
};

/* One check's findings: events to publish, and whether the baseline changed. */
struct sec_run {
	json_t *events; /* array */
	int changed;
	int64_t now_ms;
};

/* Adds an event (data stolen). */
void sec_event(struct sec_run *r, const char *kind, const char *severity, json_t *data,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* sha256 of n bytes as "sha256:<hex>" into out (72 bytes). */
void sec_digest(const void *p, size_t n, char out[72]);
/* The lines of a text as a JSON array (empty lines and, with comments, '#' lines dropped). */
json_t *sec_lines(const char *text, size_t len, int comments);
/* {"added": [...], "removed": [...]}, SEC_DIFF_LINES each at most ("more": N beyond), of
 * two line arrays (NULL: none). */
json_t *sec_diff(const json_t *before, const json_t *after);

/* sec_files.c. files: the baseline's {host path: record}. A NULL base->files entry means a
 * first look: records are taken without events. dirs gets the directories to watch (host
 * paths, new array). */
int sec_files_check(const struct sec_conf *c, json_t *files, int first, struct sec_run *r,
                    json_t **dirs);
/* One path a watch named: checked again if it is one of ours (1), else 0. */
int sec_files_check_path(const struct sec_conf *c, json_t *files, const char *host_path,
                         struct sec_run *r);

/* sec_net.c: each updates its part of the baseline (an object it owns), events unless first. */
void sec_firewall_check(const struct sec_conf *c, json_t *fw, int first, struct sec_run *r);
/* A socket (non-blocking, close-on-exec) on nftables' notifications (NETLINK_NETFILTER, group
 * NFNLGRP_NFTABLES: every committed change of the rule set, iptables-nft's too) of the agent's
 * network namespace, or of netns (a path such as /run/netns/NAME); -1 with msg saying why. */
int sec_nft_listen(const char *netns, char *msg, size_t msglen);
/* Reads every queued notification; 1 when there was any (a change to check). */
int sec_nft_drain(int fd);
int sec_sockets_check(json_t *listen, int first, struct sec_run *r, char *msg, size_t msglen);
void sec_setuid_check(const struct sec_conf *c, json_t *setuid, int first, struct sec_run *r);
/* root's logins: the records wtmp gained since the offset kept in wtmp ({ino, offset}). */
void sec_logins_check(const struct sec_conf *c, json_t *wtmp, int first, struct sec_run *r);

/* sec_audit.c: who made a change, from the kernel's audit records. The loop reads them
 * (sec_audit_read when fd is readable); the checker thread asks (sec_audit_who). */
struct sec_audit {
	int fd;               /* -1: no records */
	pthread_mutex_t lock; /* guards recent; cond: a record came */
	pthread_cond_t cond;
	json_t *recent; /* {full path or "(nftables)": {login_uid, uid, pid, comm, exe, mono_ms}} */
	/* The event being read: loop thread only. */
	unsigned long serial;
	json_t *who, *names, *netfilter;
	char cwd[4096];
	unsigned long long records, lost;
};
/* Joins the kernel's read-only audit log group; fd, or -1 with msg saying why. */
int sec_audit_open(struct sec_audit *a, char *msg, size_t msglen);
void sec_audit_close(struct sec_audit *a);
void sec_audit_read(struct sec_audit *a);
/* 1 when the kernel audits (auditctl -e 1), 0 when not, -1 when it does not say. */
int sec_audit_kernel_on(void);
/* The last writer of full_path (NULL: nftables' last change) as a new object, taken from the
 * records (a second change with no record of its own names nobody); waits until deadline_ms
 * (CLOCK_MONOTONIC) for its record; NULL when none came. Any thread. */
json_t *sec_audit_who(struct sec_audit *a, const char *full_path, int64_t deadline_ms);

#endif
