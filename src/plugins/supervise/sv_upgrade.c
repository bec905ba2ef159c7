/* supervise.upgrade: stop the agent, put the new binary in place of the old (kept beside it
 * as BINARY.outpost-prev), start it, and wait for its health check to pass; when it does not
 * within the time given, the old binary goes back and is started again. Runs on the call's
 * worker: the tick keeps its hands off the agent (hold) while the op owns it. */
#include "supervise.h"
#include "core/clk.h"
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SV_UPGRADE_HEALTH_MS 30000
#define SV_UPGRADE_SETTLE_MS 3000 /* without a health check: running this long is healthy */

struct up {
	char name[40];
	char binary[PATH_MAX], prev[PATH_MAX + 16];
	char **health, **version, *user;
	int64_t stop_ms, interval_ms;
};

/* Copies source over u->binary: a temp file beside it (the old one's mode and owner),
 * fsynced, the old one renamed to u->prev, the new one renamed in. 0, or a code with msg. */
static int install(const struct up *u, const char *source, const char *want_hex, char *got_hex,
                   char *msg, size_t msglen)
{
	char tmp[PATH_MAX + 32], dir[PATH_MAX];
	unsigned char h[crypto_hash_sha256_BYTES], buf[65536];
	crypto_hash_sha256_state hs;
	struct stat sst, bst;
	int in = -1, out = -1, rc = OUTPOST_E_INTERNAL, dfd;
	ssize_t n;

	if ((in = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(in, &sst) < 0 ||
	    !S_ISREG(sst.st_mode)) {
		snprintf(msg, msglen, "source %.200s: %s", source,
		         in < 0 ? strerror(errno) : "not a regular file");
		rc = in < 0 && errno == ENOENT ? OUTPOST_E_NOT_FOUND : OUTPOST_E_BAD_ARGS;
		goto out;
	}
	if (lstat(u->binary, &bst) < 0 || !S_ISREG(bst.st_mode)) {
		snprintf(msg, msglen, "the agent's binary %.200s: %s", u->binary,
		         errno ? strerror(errno) : "not a regular file");
		rc = OUTPOST_E_NOT_FOUND;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.outpost-new.XXXXXX", u->binary);
	if ((out = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "cannot write beside %.200s: %s", u->binary, strerror(errno));
		goto out;
	}
	crypto_hash_sha256_init(&hs);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		crypto_hash_sha256_update(&hs, buf, (unsigned long long)n);
		if (write(out, buf, (size_t)n) != n) {
			snprintf(msg, msglen, "writing %.200s: %s", tmp, strerror(errno));
			goto fail;
		}
	}
	crypto_hash_sha256_final(&hs, h);
	sodium_bin2hex(got_hex, 65, h, sizeof(h));
	if (n < 0) {
		snprintf(msg, msglen, "reading %.200s: %s", source, strerror(errno));
		goto fail;
	}
	if (want_hex && strcasecmp(want_hex, got_hex) != 0) {
		snprintf(msg, msglen, "source %.200s has sha256 %s, not the %.64s asked for",
		         source, got_hex, want_hex);
		rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	if (fchmod(out, bst.st_mode & 07777) < 0 ||
	    (fchown(out, bst.st_uid, bst.st_gid) < 0 && geteuid() == 0) || fsync(out) < 0) {
		snprintf(msg, msglen, "preparing %.200s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(u->binary, u->prev) < 0 || rename(tmp, u->binary) < 0) {
		snprintf(msg, msglen, "swapping %.200s: %s", u->binary, strerror(errno));
		rename(u->prev, u->binary);
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%s", u->binary);
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
	goto out;
fail:
	unlink(tmp);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Lets the tick start the agent, waits for it to run, then for its health check to pass
 * (or, without one, for it to keep running SV_UPGRADE_SETTLE_MS). 0 healthy, or -1 with why. */
static int start_healthy(struct sv *sv, const struct up *u, int64_t until, char *why, size_t whylen)
{
	struct sv_agent *a;
	int64_t settle;

	pthread_mutex_lock(&sv->lock);
	if ((a = sv_find(sv, u->name))) {
		a->want_run = 1;
		a->state = SV_STOPPED;
	}
	pthread_mutex_unlock(&sv->lock);
	/* The tick starts it; an exit while held leaves it exited. */
	if (sv_wait_state(sv, u->name, 1u << SV_RUNNING | 1u << SV_EXITED | 1u << SV_WAITING,
	                  until) < 0) {
		snprintf(why, whylen, "it did not start");
		return -1;
	}
	settle = clk_mono_ms() + SV_UPGRADE_SETTLE_MS;
	for (;;) {
		int running;
		pthread_mutex_lock(&sv->lock);
		a = sv_find(sv, u->name);
		running = a && a->state == SV_RUNNING;
		if (!running)
			snprintf(why, whylen, "it ended: %s", a ? a->last_reason : "gone");
		pthread_mutex_unlock(&sv->lock);
		if (!running)
			return -1;
		if (u->health && u->health[0]) {
			if (sv_run(u->health, u->user, u->interval_ms, NULL, 0) == 0)
				return 0;
		} else if (clk_mono_ms() >= settle) {
			return 0;
		}
		if (clk_mono_ms() >= until) {
			snprintf(why, whylen, "%s within the time given",
			         u->health && u->health[0] ? "its health check did not pass"
			                                   : "it did not keep running");
			return -1;
		}
		nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
	}
}

/* Has the tick stop the agent (held) and waits for it. */
static int stop_held(struct sv *sv, const struct up *u)
{
	struct sv_agent *a;

	pthread_mutex_lock(&sv->lock);
	if ((a = sv_find(sv, u->name))) {
		a->want_run = 0;
		if (a->state != SV_RUNNING && a->state != SV_STOPPING)
			a->state = SV_STOPPED;
	}
	pthread_mutex_unlock(&sv->lock);
	return sv_wait_state(sv, u->name, 1u << SV_STOPPED | 1u << SV_EXITED,
	                     clk_mono_ms() + u->stop_ms + 3 * u->interval_ms + 1000);
}

int sv_op_upgrade(struct outpost_call *call, json_t *args, json_t **result)
{
	struct sv *sv = outpost_call_state(call);
	const char *name = json_string_value(json_object_get(args, "name"));
	const char *source = json_string_value(json_object_get(args, "source"));
	const char *sha = json_string_value(json_object_get(args, "sha256"));
	json_t *hto = json_object_get(args, "health_timeout_ms");
	int64_t health_ms = hto ? json_integer_value(hto) : SV_UPGRADE_HEALTH_MS, until;
	char from[128] = "", to[128] = "", got[65] = "", msg[400] = "", why[300] = "";
	struct sv_agent *a;
	struct up u = {0};
	int rc = 0;

	if (health_ms < 100 || health_ms > 3600000)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "health_timeout_ms: from 100 to 3600000");
	if (source[0] != '/')
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS, "source: an absolute path");
	if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS, "sha256: 64 hex digits");
	pthread_mutex_lock(&sv->lock);
	if (!(a = sv_find(sv, name)) || a->hold) {
		pthread_mutex_unlock(&sv->lock);
		return a ? outpost_call_error(
		               call, OUTPOST_E_CONFLICT,
		               "supervise.upgrade %s: another upgrade of it is under way", name)
		         : outpost_call_error(call, OUTPOST_E_NOT_FOUND,
		                              "no agent '%.40s' in " SV_WHERE ".agents", name);
	}
	if (!sv_conf_binary(a->c) || sv_conf_binary(a->c)[0] != '/') {
		pthread_mutex_unlock(&sv->lock);
		return outpost_call_error(
		    call, OUTPOST_E_BAD_ARGS,
		    "supervise.upgrade %s: its command is not an absolute path; "
		    "set " SV_WHERE ".agents[].binary",
		    name);
	}
	a->hold = 1;
	snprintf(u.name, sizeof(u.name), "%s", name);
	snprintf(u.binary, sizeof(u.binary), "%s", sv_conf_binary(a->c));
	snprintf(u.prev, sizeof(u.prev), "%s.outpost-prev", u.binary);
	u.health = sv_argv_dup(&a->c->health);
	u.version = sv_argv_dup(&a->c->version);
	u.user = a->c->user ? strdup(a->c->user) : NULL;
	u.stop_ms = a->c->stop_timeout_ms;
	u.interval_ms = a->c->health_timeout_ms;
	pthread_mutex_unlock(&sv->lock);

	if (u.version && u.version[0])
		sv_run(u.version, u.user, 5000, from, sizeof(from));
	if (stop_held(sv, &u) < 0) {
		rc = outpost_call_error(call, OUTPOST_E_TIMEOUT,
		                        "supervise.upgrade %s: it did not stop", name);
		goto out;
	}
	if ((rc = install(&u, source, sha, got, msg, sizeof(msg))) < 0) {
		start_healthy(sv, &u, clk_mono_ms() + health_ms, why, sizeof(why));
		rc = outpost_call_error(call, rc, "supervise.upgrade %s: %s; the old binary runs",
		                        name, msg);
		goto out;
	}
	until = clk_mono_ms() + health_ms;
	if (until > outpost_call_deadline(call) - u.stop_ms - 2 * health_ms / 3)
		until = clk_mono_ms() + health_ms / 3; /* leave time to roll back */
	if (start_healthy(sv, &u, until, why, sizeof(why)) == 0) {
		if (u.version && u.version[0])
			sv_run(u.version, u.user, 5000, to, sizeof(to));
		outpost_log(sv->pc, OUTPOST_LOG_INFO, "%s upgraded from %s to %s", name,
		            from[0] ? from : "?", to[0] ? to : "?");
		pthread_mutex_lock(&sv->lock);
		if ((a = sv_find(sv, name)))
			sv_event(sv, a, "supervise.upgraded", "notice",
			         json_pack("{s:s, s:s, s:s, s:s}", "from", from, "to", to, "sha256",
			                   got, "binary", u.binary),
			         "%s upgraded%s%s%s%s (sha256 %.16s...)", name,
			         from[0] ? " from " : "", from, to[0] ? " to " : "", to, got);
		pthread_mutex_unlock(&sv->lock);
		*result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name", name, "from", from,
		                    "to", to, "sha256", got, "previous", u.prev, "rolled_back", 0);
		goto out;
	}
	/* Unhealthy: the old binary back. */
	stop_held(sv, &u);
	if (rename(u.prev, u.binary) < 0) {
		snprintf(msg, sizeof(msg), "cannot put the old binary back (%.150s -> %.150s: %s)",
		         u.prev, u.binary, strerror(errno));
	} else {
		char back[300] = "";
		if (start_healthy(sv, &u, clk_mono_ms() + health_ms, back, sizeof(back)) < 0)
			snprintf(msg, sizeof(msg), "the old version is not healthy either: %s",
			         back);
		else
			snprintf(msg, sizeof(msg), "the old version runs again and is healthy");
	}
	outpost_log(sv->pc, OUTPOST_LOG_WARN, "%s: the new version failed (%s); rolled back: %s",
	            name, why, msg);
	pthread_mutex_lock(&sv->lock);
	if ((a = sv_find(sv, name)))
		sv_event(
		    sv, a, "supervise.rolled_back", "warning",
		    json_pack("{s:s, s:s, s:s}", "reason", why, "sha256", got, "binary", u.binary),
		    "%s: the new version failed (%s); rolled back: %s", name, why, msg);
	pthread_mutex_unlock(&sv->lock);
	rc = outpost_call_error(call, OUTPOST_E_UNAVAILABLE,
	                        "supervise.upgrade %s: the new version failed (%s); rolled back to "
	                        "the old binary: %s",
	                        name, why, msg);
out:
	pthread_mutex_lock(&sv->lock);
	if ((a = sv_find(sv, name))) {
		a->hold = 0;
		a->want_run = 1;
	}
	pthread_mutex_unlock(&sv->lock);
	sv_publish(sv);
	sv_argv_free(u.health);
	sv_argv_free(u.version);
	free(u.user);
	return rc;
}
