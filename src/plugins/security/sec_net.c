/* The security plugin's checks of what is not a file (security.h): the firewall's rule sets
 * (a listing command each, hashed and diffed), listening sockets (netlink sock_diag, with the
 * owning process from /proc), setuid/setgid files under configured roots, and root's logins
 * (wtmp). */
#include "security.h"
#include "core/proc.h"
#include "core/wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utmp.h>

#define SEC_CMD_TIMEOUT_MS 10000
#define SEC_SETUID_MAX_ENTRIES 500000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- firewall ---- */

/* A listing without what changes by itself: comments (iptables-save's "Generated ... on
 * <date>") and packet counters ("[12:3456]"). */
static json_t *rules_lines(const char *text, size_t len)
{
	json_t *lines = sec_lines(text, len, 1), *out = json_array(), *l;
	size_t i;

	json_array_foreach(lines, i, l)
	{
		const char *s = json_string_value(l);
		const char *br = strrchr(s, '[');
		if (br && s[0] == ':' && br[strlen(br) - 1] == ']')
			json_array_append_new(out, json_stringn(s, (size_t)(br - s)));
		else
			json_array_append(out, l);
	}
	json_decref(lines);
	return out;
}

void sec_firewall_check(const struct sec_conf *c, json_t *fw, int first, struct sec_run *r)
{
	size_t i;
	json_t *argv_j;

	json_array_foreach(c->firewall, i, argv_j)
	{
		char *argv[32] = {0}, name[512] = "", d[72];
		struct proc_spec spec = {0};
		struct proc_result res = {0};
		json_t *old, *now, *lines, *v;
		size_t j, used = 0;
		char *text;

		json_array_foreach(argv_j, j, v)
		{
			int n;
			if (j < 31)
				argv[j] = (char *)json_string_value(v);
			if (used >= sizeof(name) - 1)
				continue; /* the name is cut; the command is whole */
			n = snprintf(name + used, sizeof(name) - used, "%s%s", j ? " " : "",
			             json_string_value(v));
			used = n < 0 ? used : used + (size_t)n;
		}
		spec.argv = argv;
		spec.max_stdout = SEC_RULES_MAX;
		spec.max_stderr = 4096;
		spec.deadline_ms = mono_ms() + SEC_CMD_TIMEOUT_MS;
		old = json_object_get(fw, name);
		if (proc_run(&spec, &res, NULL, 0) < 0 || res.exit_code != 0) {
			/* Not installed, not allowed: said once in status, no event. */
			char why[200];
			snprintf(why, sizeof(why), "exit %d: %.150s", res.exit_code,
			         res.err.data ? res.err.data : "");
			if (!json_is_string(json_object_get(old, "error")) ||
			    strcmp(json_string_value(json_object_get(old, "error")), why) != 0) {
				json_object_set_new(fw, name, json_pack("{s:s}", "error", why));
				r->changed = 1;
			}
			proc_result_free(&res);
			continue;
		}
		text = res.out.data ? res.out.data : "";
		lines = rules_lines(text, res.out.len);
		{
			char *joined = NULL;
			size_t k, total = 0;
			json_array_foreach(lines, k, v) total += json_string_length(v) + 1;
			joined = malloc(total + 1);
			total = 0;
			json_array_foreach(lines, k, v) if (joined)
			{
				memcpy(joined + total, json_string_value(v), json_string_length(v));
				total += json_string_length(v);
				joined[total++] = '\n';
			}
			sec_digest(joined ? joined : "", joined ? total : 0, d);
			free(joined);
		}
		proc_result_free(&res);
		if (old && json_is_string(json_object_get(old, "sha256")) &&
		    strcmp(json_string_value(json_object_get(old, "sha256")), d) == 0) {
			json_decref(lines);
			continue;
		}
		now = json_pack("{s:s, s:o}", "sha256", d, "lines", lines);
		/* The first listing that works is the baseline, as on a first start. */
		if (!first && old && json_object_get(old, "sha256"))
			sec_event(r, "security.firewall_changed", "warning",
			          json_pack("{s:s, s:O, s:s, s:o}", "command", name, "before",
			                    json_object_get(old, "sha256"), "after", d, "diff",
			                    sec_diff(json_object_get(old, "lines"), lines)),
			          "firewall rules changed (%s)", name);
		json_object_set_new(fw, name, now);
		r->changed = 1;
	}
}

/* ---- nftables' notifications ---- */

struct nft_open {
	const char *netns;
	int fd, err;
};

static void *nft_open_in(void *arg)
{
	struct nft_open *o = arg;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
	                         .nl_groups = 1u << (NFNLGRP_NFTABLES - 1)};
	int ns;

	if (o->netns) {
		if ((ns = open(o->netns, O_RDONLY | O_CLOEXEC)) < 0) {
			o->err = errno;
			return NULL;
		}
		if (setns(ns, CLONE_NEWNET) < 0) {
			o->err = errno;
			close(ns);
			return NULL;
		}
		close(ns);
	}
	o->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
	if (o->fd < 0) {
		o->err = errno;
		return NULL;
	}
	if (bind(o->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		o->err = errno;
		close(o->fd);
		o->fd = -1;
	}
	return NULL;
}

int sec_nft_listen(const char *netns, char *msg, size_t msglen)
{
	struct nft_open o = {netns, -1, 0};
	pthread_t th;
	int rc;

	/* setns moves only the thread that calls it, and a socket stays in the namespace it was
	 * made in: a short thread of its own enters the namespace, the loop never does. */
	if (!netns) {
		nft_open_in(&o);
	} else if ((rc = pthread_create(&th, NULL, nft_open_in, &o)) != 0) {
		o.err = rc;
	} else {
		pthread_join(th, NULL);
	}
	if (o.fd < 0)
		snprintf(msg, msglen, "no nftables notifications%s%s: %s", netns ? " in " : "",
		         netns ? netns : "", strerror(o.err));
	return o.fd;
}

int sec_nft_drain(int fd)
{
	char buf[8192];
	int changed = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			changed = 1;
		} else if (n < 0 && errno == ENOBUFS) {
			changed = 1; /* some were lost: a change all the same */
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			break;
		}
	}
	return changed;
}

/* ---- listening sockets ---- */

/* The processes holding the socket inodes in want ({"<ino>": null, ...}): each value set to
 * {pid, comm, exe} where found. One walk of /proc/<pid>/fd for all of them, ended when all are
 * found: a busy host opens many sockets between two checks, and a walk each cost tens of ms. */
static void socket_owners(json_t *want)
{
	char path[PATH_MAX], link[128];
	DIR *proc = opendir("/proc"), *fds;
	struct dirent *p, *f;
	size_t left = json_object_size(want);

	while (proc && left && (p = readdir(proc))) {
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		if (!(fds = opendir(path)))
			continue;
		while (left && (f = readdir(fds))) {
			char comm[64] = "", exe[PATH_MAX] = "";
			json_t *slot;
			FILE *fp;
			ssize_t n;
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, f->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 8 || strncmp(link, "socket:[", 8) != 0 || link[n - 1] != ']')
				continue;
			link[n - 1] = '\0';
			slot = json_object_get(want, link + 8);
			if (!json_is_null(slot))
				continue; /* not wanted, or found already */
			snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
			if ((fp = fopen(path, "re"))) {
				if (fgets(comm, sizeof(comm), fp))
					comm[strcspn(comm, "\n")] = '\0';
				fclose(fp);
			}
			snprintf(path, sizeof(path), "/proc/%s/exe", p->d_name);
			n = readlink(path, exe, sizeof(exe) - 1);
			exe[n > 0 ? n : 0] = '\0';
			json_object_set_new(
			    want, link + 8,
			    json_pack("{s:i, s:s, s:s}", "pid", atoi(p->d_name), "comm",
			              wire_utf8_ok(comm, strlen(comm)) ? comm : "?", "exe",
			              wire_utf8_ok(exe, strlen(exe)) ? exe : "?"));
			left--;
		}
		closedir(fds);
	}
	if (proc)
		closedir(proc);
}

/* One sock_diag dump of family/protocol into now: {"tcp 127.0.0.1:80": {ino, uid}}. TCP:
 * listening sockets; UDP: bound, unconnected ones below the ephemeral range. */
static int diag_dump(int family, int proto, json_t *now, char *msg, size_t msglen)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} q = {0};
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	char buf[16384];
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), rc = 0;

	if (fd < 0) {
		snprintf(msg, msglen, "sock_diag: %s", strerror(errno));
		return OUTPOST_E_UNAVAILABLE;
	}
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.req.sdiag_family = (unsigned char)family;
	q.req.sdiag_protocol = (unsigned char)proto;
	q.req.idiag_states = proto == IPPROTO_TCP ? (1u << 10) /* LISTEN */ : (1u << 7) /* CLOSE */;
	if (sendto(fd, &q, sizeof(q), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(msg, msglen, "sock_diag: %s", strerror(errno));
		close(fd);
		return OUTPOST_E_UNAVAILABLE;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(msg, msglen, "sock_diag: %s", strerror(errno));
			rc = OUTPOST_E_UNAVAILABLE;
			break;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);
			char addr[INET6_ADDRSTRLEN], key[96];
			unsigned port;
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				snprintf(msg, msglen, "sock_diag: refused");
				rc = OUTPOST_E_UNAVAILABLE;
				goto out;
			}
			port = ntohs(m->id.idiag_sport);
			if (proto == IPPROTO_UDP && (m->id.idiag_dport != 0 || port >= 32768))
				continue;
			inet_ntop(family, m->id.idiag_src, addr, sizeof(addr));
			snprintf(key, sizeof(key), family == AF_INET6 ? "%s [%s]:%u" : "%s %s:%u",
			         proto == IPPROTO_TCP ? "tcp" : "udp", addr, port);
			json_object_set_new(now, key,
			                    json_pack("{s:I, s:i}", "ino",
			                              (json_int_t)m->idiag_inode, "uid",
			                              (int)m->idiag_uid));
		}
	}
out:
	close(fd);
	return rc;
}

int sec_sockets_check(json_t *listen, int first, struct sec_run *r, char *msg, size_t msglen)
{
	static const int fams[] = {AF_INET, AF_INET6}, protos[] = {IPPROTO_TCP, IPPROTO_UDP};
	json_t *now = json_object(), *owners = json_object(), *v;
	const char *k;
	void *tmp;
	int rc = 0;

	if (!now || !owners) {
		json_decref(now);
		json_decref(owners);
		return OUTPOST_E_INTERNAL;
	}
	for (int f = 0; f < 2 && rc == 0; f++)
		for (int p = 0; p < 2 && rc == 0; p++)
			rc = diag_dump(fams[f], protos[p], now, msg, msglen);
	if (rc < 0) {
		json_decref(now);
		json_decref(owners);
		return rc;
	}
	json_object_foreach(now, k, v) if (!first && !json_object_get(listen, k))
	{
		char ino[24];
		snprintf(ino, sizeof(ino), "%lld",
		         (long long)json_integer_value(json_object_get(v, "ino")));
		json_object_set_new(owners, ino, json_null());
	}
	if (json_object_size(owners))
		socket_owners(owners);
	json_object_foreach(now, k, v)
	{
		json_t *owner;
		char ino[24];
		if (json_object_get(listen, k))
			continue;
		r->changed = 1;
		if (first)
			continue;
		snprintf(ino, sizeof(ino), "%lld",
		         (long long)json_integer_value(json_object_get(v, "ino")));
		owner = json_object_get(owners, ino);
		owner = json_is_object(owner) ? json_incref(owner) : NULL;
		sec_event(r, "security.listen_opened", "notice",
		          json_pack("{s:s, s:O, s:o*}", "socket", k, "uid",
		                    json_object_get(v, "uid"), "process", owner),
		          "a new listening socket: %s%s%s", k, owner ? " by " : "",
		          owner ? json_string_value(json_object_get(owner, "comm")) : "");
	}
	/* Closed ones leave the baseline quietly: a service restarting is no news. */
	json_object_foreach_safe(listen, tmp, k, v) if (!json_object_get(now, k))
	{
		json_object_del(listen, k);
		r->changed = 1;
	}
	json_object_foreach(now, k, v) if (!json_object_get(listen, k))
	    json_object_set_new(listen, k, json_object());
	json_decref(now);
	json_decref(owners);
	return 0;
}

/* ---- setuid and setgid files ---- */

static __thread struct {
	json_t *now;
	size_t entries;
	size_t root_len;
} walk; /* nftw has no argument: per thread, each agent's checker its own */

static int setuid_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (++walk.entries > SEC_SETUID_MAX_ENTRIES)
		return 1;
	if (type == FTW_F && S_ISREG(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
	    wire_utf8_ok(path, strlen(path)))
		json_object_set_new(walk.now, path + walk.root_len,
		                    json_pack("{s:i, s:i, s:i}", "mode", (int)(st->st_mode & 07777),
		                              "uid", (int)st->st_uid, "gid", (int)st->st_gid));
	return 0;
}

void sec_setuid_check(const struct sec_conf *c, json_t *setuid, int first, struct sec_run *r)
{
	json_t *v, *now = json_object();
	const char *k;
	void *tmp;
	size_t i;

	if (!now)
		return;
	walk.now = now;
	walk.entries = 0;
	walk.root_len = strlen(c->root);
	json_array_foreach(c->setuid_roots, i, v)
	{
		char full[PATH_MAX];
		snprintf(full, sizeof(full), "%s%s", c->root, json_string_value(v));
		nftw(full, setuid_visit, 16, FTW_PHYS | FTW_MOUNT);
	}
	json_object_foreach(now, k, v)
	{
		json_t *old = json_object_get(setuid, k);
		if (old && json_equal(old, v))
			continue;
		r->changed = 1;
		if (!first)
			sec_event(r, "security.setuid_added", "warning",
			          json_pack("{s:s, s:O, s:O, s:O}", "path", k, "mode",
			                    json_object_get(v, "mode"), "uid",
			                    json_object_get(v, "uid"), "gid",
			                    json_object_get(v, "gid")),
			          "%s is now set%s (mode %o)", k,
			          json_integer_value(json_object_get(v, "mode")) & S_ISUID ? "uid"
			                                                                   : "gid",
			          (unsigned)json_integer_value(json_object_get(v, "mode")));
		json_object_set(setuid, k, v);
	}
	json_object_foreach_safe(setuid, tmp, k, v) if (!json_object_get(now, k))
	{
		json_object_del(setuid, k);
		r->changed = 1;
	}
	json_decref(now);
}

/* ---- root logins ---- */

#define SEC_WTMP_MAX_READ (1024 * sizeof(struct utmp)) /* records read per check at most */

static void fixed_str(char *out, size_t outlen, const char *in, size_t inlen)
{
	size_t n = strnlen(in, inlen);

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, in, n);
	out[n] = '\0';
	if (!wire_utf8_ok(out, n))
		snprintf(out, outlen, "?");
}

void sec_logins_check(const struct sec_conf *c, json_t *wtmp, int first, struct sec_run *r)
{
	char path[PATH_MAX];
	struct stat st;
	struct utmp u;
	int64_t ino, off;
	size_t read_bytes = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/var/log/wtmp", c->root);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	ino = (int64_t)st.st_ino;
	off = json_integer_value(json_object_get(wtmp, "offset"));
	/* A new file (rotated) or a shorter one (truncated): read it from its start. */
	if (json_integer_value(json_object_get(wtmp, "ino")) != ino || off > st.st_size)
		off = 0;
	/* The first look only notes where the file ends: old logins are no news. */
	if (first || !json_object_get(wtmp, "ino"))
		off = st.st_size - st.st_size % (off_t)sizeof(u);
	while (read_bytes < SEC_WTMP_MAX_READ &&
	       pread(fd, &u, sizeof(u), (off_t)off) == (ssize_t)sizeof(u)) {
		off += (int64_t)sizeof(u);
		read_bytes += sizeof(u);
		if (u.ut_type == USER_PROCESS &&
		    strncmp(u.ut_user, "root", sizeof(u.ut_user)) == 0 &&
		    (sizeof(u.ut_user) == 4 || u.ut_user[4] == '\0')) {
			char line[sizeof(u.ut_line) + 1], host[sizeof(u.ut_host) + 1];
			fixed_str(line, sizeof(line), u.ut_line, sizeof(u.ut_line));
			fixed_str(host, sizeof(host), u.ut_host, sizeof(u.ut_host));
			sec_event(
			    r, "security.root_login", "notice",
			    json_pack("{s:s, s:s, s:s, s:I, s:i}", "user", "root", "line", line,
			              "from", host, "at_ms",
			              (json_int_t)u.ut_tv.tv_sec * 1000 + u.ut_tv.tv_usec / 1000,
			              "pid", (int)u.ut_pid),
			    "root logged in on %s%s%s", line, host[0] ? " from " : "", host);
		}
	}
	close(fd);
	if (json_integer_value(json_object_get(wtmp, "offset")) != off ||
	    json_integer_value(json_object_get(wtmp, "ino")) != ino) {
		json_object_set_new(wtmp, "offset", json_integer((json_int_t)off));
		json_object_set_new(wtmp, "ino", json_integer((json_int_t)ino));
		r->changed = 1;
	}
}
