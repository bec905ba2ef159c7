/* Who may call what on the agent's local API (docs/security.md#the-agents-local-api).
 *
 * Reads (GET /v1/health, /v1/plugins, /metrics) are open to whoever reaches a listener. An op
 * call (POST /v1/<plugin>/<op>) is checked when its headers arrive, before any body is read:
 * - on the unix socket, the caller is who the kernel says (SO_PEERCRED): root or the agent's
 *   own user may call every op, members of api.group the ops api.group_ops lists, nobody else
 *   anything (the socket file is 0660 root:api.group, or 0600 without a group);
 * - on TCP, the caller must show the token of <state_dir>/api.token (0600, so only root can
 *   read it) and may then call every op. Browsers are refused first: a web page can reach
 *   127.0.0.1 but cannot hide its Origin/Sec-Fetch-* headers, choose the Host a rebound DNS
 *   name carries, or send application/json without a preflight we never answer. */
#include "agent_impl.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/sec.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_TOKEN_FILE "api.token"
#define API_MAX_GROUPS 256

/* Resolves api.group (0 and no message when there is none or it is ""); a name that is not a
 * group is an error only when the operator set it (the default "outpost" may be absent). */
static int api_auth_group(const struct agent_conf *c, int *set, gid_t *gid, char *msg,
                          size_t msglen)
{
	const char *name = c->api.group;
	struct group gr, *res = NULL;
	char buf[4096];

	*set = 0;
	if (!name || !*name)
		return 0;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || !res) {
		if (strcmp(name, API_DEFAULT_GROUP) == 0)
			return 0;
		snprintf(msg, msglen, "'api.group': no group named '%.64s' on this host", name);
		return OUTPOST_E_BAD_ARGS;
	}
	*gid = res->gr_gid;
	*set = 1;
	return 0;
}

int api_auth_check_conf(const struct agent_conf *c, char *msg, size_t msglen)
{
	const char *s = c->listen;
	int set;
	gid_t gid;

	if (s && *s && !httpd_host_is_loopback(s)) {
		snprintf(
		    msg, msglen,
		    "'listen' (%.64s) is not a loopback address: the local API runs commands as "
		    "the agent's user, so it listens on 127.0.0.1, ::1 or localhost only (other "
		    "hosts reach this one through the hub)",
		    s);
		return OUTPOST_E_BAD_ARGS;
	}
	for (size_t i = 0; i < c->api.group_ops.n; i++) {
		const char *op = c->api.group_ops.v[i], *dot = strchr(op, '.');
		if (!dot || dot == op || !dot[1] || strchr(dot + 1, '.')) {
			snprintf(msg, msglen,
			         "'api.group_ops[%zu]': write plugin.op or plugin.* (e.g. "
			         "\"metrics.push\")",
			         i);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return api_auth_group(c, &set, &gid, msg, msglen);
}

/* The token TCP callers must show: made on first start, 0600, in the state directory. */
static int api_auth_token(struct agent *a, char *msg, size_t msglen)
{
	char path[4200], line[128];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/" API_TOKEN_FILE, a->state_dir);
	if (access(path, F_OK) != 0) {
		char *t = sec_token("opa_");
		int rc;

		if (!t)
			return OUTPOST_E_INTERNAL;
		snprintf(line, sizeof(line), "%s\n", t);
		free(t);
		rc = sec_write_secret(path, line, strlen(line), msg, msglen);
		if (rc < 0)
			return rc;
		log_info(a->log, "api",
		         "local API token written to %s (mode 0600): TCP callers send it as "
		         "'Authorization: Bearer <token>'",
		         path);
	} else if (sec_check_secret_file(path, msg, msglen) < 0) {
		return OUTPOST_E_FORBIDDEN;
	}
	f = fopen(path, "re");
	if (!f || !fgets(line, sizeof(line), f)) {
		snprintf(msg, msglen, "cannot read %s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return OUTPOST_E_INTERNAL;
	}
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < 16) {
		snprintf(msg, msglen, "%s holds no token: remove it and restart to make a new one",
		         path);
		return OUTPOST_E_BAD_ARGS;
	}
	a->api_token = strdup(line);
	return a->api_token ? 0 : OUTPOST_E_INTERNAL;
}

int api_auth_open(struct agent *a, char *msg, size_t msglen)
{
	const char *listen = a->conf->listen;
	int rc = api_auth_group(a->conf, &a->api_group_set, &a->api_gid, msg, msglen);

	if (rc < 0)
		return rc;
	if (listen && *listen)
		return api_auth_token(a, msg, msglen);
	return 0;
}

void api_auth_close(struct agent *a)
{
	if (a->api_token) {
		explicit_bzero(a->api_token, strlen(a->api_token));
		free(a->api_token);
		a->api_token = NULL;
	}
}

/* Whether "plugin/op" (the path's tail) is one of api.group_ops. */
static int api_auth_group_may(const struct agent *a, const char *tail)
{
	const char *slash = strchr(tail, '/');
	const struct conf_strv *ops = &a->conf->api.group_ops;
	size_t plen = slash ? (size_t)(slash - tail) : 0;

	if (!slash)
		return 0;
	for (size_t i = 0; i < ops->n; i++) {
		const char *s = ops->v[i], *dot = strchr(s, '.');
		if ((size_t)(dot - s) == plen && strncmp(s, tail, plen) == 0 &&
		    (strcmp(dot + 1, "*") == 0 || strcmp(dot + 1, slash + 1) == 0))
			return 1;
	}
	return 0;
}

static int api_auth_in_group(int fd, gid_t primary, gid_t want)
{
	gid_t groups[API_MAX_GROUPS];
	socklen_t len = sizeof(groups);

	if (primary == want)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return 0;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == want)
			return 1;
	return 0;
}

static int api_auth_unix(struct agent *a, struct httpd_req *req)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = httpd_req_fd(req);

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN, "cannot tell who is calling");
		return OUTPOST_E_FORBIDDEN;
	}
	if (cr.uid == 0 || cr.uid == geteuid())
		return 0;
	if (a->api_group_set && api_auth_in_group(fd, cr.gid, a->api_gid)) {
		if (api_auth_group_may(a, httpd_req_tail(req)))
			return 0;
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
		                    "members of group '%s' may call only the ops in api.group_ops; "
		                    "this one needs root",
		                    a->conf->api.group);
		return OUTPOST_E_FORBIDDEN;
	}
	httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
	                    "uid %u may not call ops of the local API: root may, and members of "
	                    "the group in api.group may call what api.group_ops lists",
	                    (unsigned)cr.uid);
	return OUTPOST_E_FORBIDDEN;
}

/* What a browser cannot help sending, or cannot send without a preflight we never answer. */
static int api_auth_browser(struct httpd_req *req, int call)
{
	const char *host = httpd_req_header(req, "Host");
	const char *ct = httpd_req_header(req, "Content-Type");

	if (httpd_req_header(req, "Origin") || httpd_req_header(req, "Sec-Fetch-Site") ||
	    httpd_req_header(req, "Sec-Fetch-Mode")) {
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
		                    "requests from web pages are refused: the local API is for "
		                    "programs on this host");
		return OUTPOST_E_FORBIDDEN;
	}
	if (host && !httpd_host_is_loopback(host)) {
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
		                    "Host '%.64s' is not a loopback name: the local API answers "
		                    "requests to localhost, 127.0.0.1 or [::1] only",
		                    host);
		return OUTPOST_E_FORBIDDEN;
	}
	if (call && (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
	             (ct[16] && ct[16] != ';' && ct[16] != ' '))) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "Content-Type must be application/json (curl: -H "
		                    "'Content-Type: application/json')");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

static int api_auth_tcp(struct agent *a, struct httpd_req *req)
{
	const char *h = httpd_req_header(req, "Authorization");

	if (h && strncasecmp(h, "Bearer ", 7) == 0 && a->api_token &&
	    sec_streq(h + 7, a->api_token))
		return 0;
	httpd_respond_error(req, OUTPOST_E_UNAUTHORIZED,
	                    "op calls over TCP need 'Authorization: Bearer <token>' with the token "
	                    "in %s/" API_TOKEN_FILE " (root only), or use the unix socket",
	                    a->state_dir);
	return OUTPOST_E_UNAUTHORIZED;
}

int api_auth_headers(void *ctx, struct httpd_req *req, int role)
{
	struct agent *a = ctx;
	int tcp = strcmp(httpd_req_peer(req), "unix") != 0, rc;

	if (tcp && (rc = api_auth_browser(req, role == API_ROLE_CALL)) < 0)
		return rc;
	if (role != API_ROLE_CALL)
		return 0;
	return tcp ? api_auth_tcp(a, req) : api_auth_unix(a, req);
}
