/* Who made a change, from the kernel's audit records (security.h). The plugin reads the
 * records the host's audit rules make (auditd's `-w /etc/passwd -p wa` and the like) as a
 * second reader beside auditd: the netlink group AUDIT_NLGRP_READLOG, on the agent's loop. It
 * adds no rule and changes nothing in the audit setup: what is watched is the host's audit
 * policy. For each path a record names it keeps the last writer for a while (login uid, uid,
 * pid, command, executable); nftables' own records (NETFILTER_CFG, made whenever audit is on)
 * name who changed the firewall. The checker thread takes them for its events. */
#include "security.h"
#include "core/wire.h"

#include <errno.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_KEEP_MAX 256          /* paths remembered */
#define AUDIT_KEEP_MS (10 * 60000)  /* a record older than this names nobody */
#define AUDIT_FIREWALL "(nftables)" /* the key of nftables' last writer */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of field name in a record's text into out: "x" quoted, or hex-encoded (audit's
 * form for a value with blanks or quotes), or bare (numbers). 0, or -1 when absent. */
static int field(const char *text, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = text;

	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == ' ') && p[nl] == '=')
			break;
		p += nl;
	}
	if (!p)
		return -1;
	p += nl + 1;
	if (*p == '"') {
		const char *e = strchr(++p, '"');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, p, n);
		out[n] = '\0';
	} else {
		size_t n = strcspn(p, " "), i, hex = n % 2 == 0 && n > 0;
		for (i = 0; i < n && hex; i++)
			hex = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F');
		/* A bare number is a number; a bare even run of hex digits with a letter is hex. */
		if (hex && strspn(p, "0123456789") < n && n / 2 < outlen) {
			for (i = 0; i < n / 2; i++) {
				unsigned v;
				sscanf(p + 2 * i, "%2X", &v);
				out[i] = (char)v;
			}
			out[n / 2] = '\0';
		} else {
			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, p, n);
			out[n] = '\0';
		}
	}
	if (!wire_utf8_ok(out, strlen(out)))
		snprintf(out, outlen, "?");
	return 0;
}

static long long field_num(const char *text, const char *name, long long dflt)
{
	char v[32], *end;
	long long n;

	if (field(text, name, v, sizeof(v)) < 0)
		return dflt;
	n = strtoll(v, &end, 10);
	return *end || end == v ? dflt : n;
}

/* {login_uid (null when unset), uid, pid, comm, exe?} of a SYSCALL or NETFILTER_CFG record. */
static json_t *who_of(const char *text)
{
	char comm[64] = "?", exe[PATH_MAX];
	long long auid = field_num(text, "auid", -1);
	json_t *w;

	field(text, "comm", comm, sizeof(comm));
	w = json_pack("{s:o, s:I, s:I, s:s}", "login_uid",
	              auid < 0 || auid == 4294967295LL ? json_null() : json_integer(auid), "uid",
	              (json_int_t)field_num(text, "uid", -1), "pid",
	              (json_int_t)field_num(text, "pid", -1), "comm", comm);
	if (w && field(text, "exe", exe, sizeof(exe)) == 0)
		json_object_set_new(w, "exe", json_string(exe));
	if (w && json_integer_value(json_object_get(w, "uid")) < 0)
		json_object_del(w, "uid");
	return w;
}

int sec_audit_open(struct sec_audit *a, char *msg, size_t msglen)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
	                         .nl_groups = 1u << (AUDIT_NLGRP_READLOG - 1)};
	pthread_condattr_t ca;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	a->recent = json_object();
	a->names = json_array();
	a->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_AUDIT);
	if (a->fd < 0 || bind(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* EPERM without CAP_AUDIT_READ; ECONNREFUSED outside the first namespace (a
		 * container); EPROTONOSUPPORT on a kernel without audit. */
		snprintf(msg, msglen, "the kernel's audit records cannot be read here: %s",
		         strerror(errno));
		if (a->fd >= 0)
			close(a->fd);
		a->fd = -1;
		return -1;
	}
	return a->fd;
}

void sec_audit_close(struct sec_audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	json_decref(a->recent);
	json_decref(a->names);
	json_decref(a->who);
	json_decref(a->netfilter);
	a->recent = a->names = a->who = a->netfilter = NULL;
}

int sec_audit_kernel_on(void)
{
	struct {
		struct nlmsghdr h;
		struct audit_status st;
	} q = {{NLMSG_LENGTH(0), AUDIT_GET, NLM_F_REQUEST, 1, 0}}, *ans;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	char buf[512];
	struct timeval tv = {1, 0};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT), rc = -1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, &q, q.h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) >= 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		ans = (void *)buf;
		if (n >= (ssize_t)NLMSG_LENGTH(sizeof(ans->st.mask) + sizeof(ans->st.enabled)) &&
		    ans->h.nlmsg_type == AUDIT_GET)
			rc = ans->st.enabled != 0;
	}
	close(fd);
	return rc;
}

/* Keeps who as the last writer of key (a full path), the oldest forgotten past the bound.
 * Takes who. */
static void keep(struct sec_audit *a, const char *key, json_t *who)
{
	json_t *v;
	const char *k;
	void *tmp;
	int64_t now = mono_ms();

	json_object_set_new(who, "mono_ms", json_integer((json_int_t)now));
	pthread_mutex_lock(&a->lock);
	if (json_object_size(a->recent) >= AUDIT_KEEP_MAX)
		json_object_foreach_safe(
		    a->recent, tmp, k,
		    v) if (now - json_integer_value(json_object_get(v, "mono_ms")) >
		           AUDIT_KEEP_MS / 10) json_object_del(a->recent, k);
	if (json_object_size(a->recent) >= AUDIT_KEEP_MAX)
		json_object_clear(a->recent);
	json_object_set_new(a->recent, key, who);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* The event read so far is whole (its EOE, or the next event began): its paths get its
 * writer. */
static void event_end(struct sec_audit *a)
{
	size_t i;
	json_t *v;

	if (a->netfilter) {
		if (a->who) /* the syscall's record knows the login uid and the executable */
			json_object_update(a->netfilter, a->who);
		keep(a, AUDIT_FIREWALL, a->netfilter);
		a->netfilter = NULL;
	}
	json_array_foreach(a->names, i, v) if (a->who)
	{
		char full[PATH_MAX];
		const char *name = json_string_value(v);
		if (name[0] == '/')
			snprintf(full, sizeof(full), "%s", name);
		else if ((size_t)snprintf(full, sizeof(full), "%s/%s", a->cwd, name) >=
		         sizeof(full))
			continue;
		keep(a, full, json_deep_copy(a->who));
	}
	json_array_clear(a->names);
	json_decref(a->who);
	a->who = NULL;
	a->cwd[0] = '\0';
}

/* One record: "audit(1733440000.123:456): field=value ...". */
static void record(struct sec_audit *a, int type, char *text)
{
	char *p = strstr(text, "):"), name[PATH_MAX];
	const char *colon = strchr(text, ':');
	unsigned long serial = colon ? strtoul(colon + 1, NULL, 10) : 0;

	if (!p || !colon || strncmp(text, "audit(", 6) != 0)
		return;
	p += 2;
	a->records++;
	if (serial != a->serial) {
		event_end(a);
		a->serial = serial;
	}
	switch (type) {
	case AUDIT_SYSCALL:
		json_decref(a->who);
		a->who = who_of(p);
		break;
	case AUDIT_PATH:
		if (field(p, "name", name, sizeof(name)) == 0 && strcmp(name, "(null)") != 0 &&
		    json_array_size(a->names) < 16)
			json_array_append_new(a->names, json_string(name));
		break;
	case AUDIT_CWD:
		field(p, "cwd", a->cwd, sizeof(a->cwd));
		break;
	case AUDIT_NETFILTER_CFG:
		if (!a->netfilter)
			a->netfilter = who_of(p);
		break;
	case AUDIT_EOE:
		event_end(a);
		break;
	}
}

void sec_audit_read(struct sec_audit *a)
{
	/* 8970: the kernel's MAX_AUDIT_MESSAGE_LENGTH (not in the uapi header) */
	char buf[8970 + NLMSG_HDRLEN + 1];

	for (;;) {
		ssize_t n = recv(a->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		struct nlmsghdr *h;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			a->lost++;
			continue;
		}
		if (n <= 0)
			break;
		/* int, not size_t: audit's lengths are not aligned, and the last NLMSG_NEXT may
		 * leave rem below zero, which must end the walk. */
		int rem = (int)n;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, rem); h = NLMSG_NEXT(h, rem)) {
			char *text = NLMSG_DATA(h);
			size_t len = h->nlmsg_len - NLMSG_HDRLEN;
			char save = text[len];
			text[len] = '\0'; /* the last byte read stays in buf: sizeof(buf) - 1 */
			record(a, h->nlmsg_type, text);
			text[len] = save;
		}
	}
	/* An event's end may come in the next datagram, or, for nftables alone, never. */
	if (a->netfilter && !a->who) {
		keep(a, AUDIT_FIREWALL, a->netfilter);
		a->netfilter = NULL;
	}
}

json_t *sec_audit_who(struct sec_audit *a, const char *key, int64_t deadline_ms)
{
	json_t *w = NULL, *v;

	if (!key)
		key = AUDIT_FIREWALL;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		v = json_object_get(a->recent, key);
		if (v && mono_ms() - json_integer_value(json_object_get(v, "mono_ms")) <=
		             AUDIT_KEEP_MS) {
			w = json_deep_copy(v);
			json_object_del(w, "mono_ms");
			/* Taken: a later change with no record of its own names nobody. */
			json_object_del(a->recent, key);
			break;
		}
		if (mono_ms() >= deadline_ms)
			break;
		{
			struct timespec ts = {deadline_ms / 1000, (deadline_ms % 1000) * 1000000};
			pthread_cond_timedwait(&a->cond, &a->lock, &ts);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return w;
}
