/* The built-in metrics plugin, agent side: samples the host on a timer aligned to the interval
 * grid, keeps the latest values of host and application series in memory, takes application
 * metrics from metrics.push and from a StatsD listener on loopback, answers metrics.now, and
 * publishes one batch per sample for the hub (outpost_publish_text: the core spools and ships it).
 * docs/metrics.md is the operator's page. Threads: the timer and the StatsD socket run on the
 * agent's loop thread, the ops on workers; `lock` guards everything they share. */
#include "batch.h"
#include "collect.h"
#include "mtab.h"
#include "statsd.h"
#include "core/buf.h"
#include "core/clk.h"

#include <outpost/plugin.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define METRICS_PUSH_MAX 1000
#define METRICS_UDP_MAX 65536
#define METRICS_PACKETS_PER_WAKEUP 64

struct metrics_conf {
	int64_t interval_ms;
	int64_t max_series;
	int64_t expire_ms;
	int per_cpu;
	const char *statsd_listen; /* borrowed from the config; "" disables */
	const char *proc_root;     /* tests read fixtures through it */
};

/* One host sample: keys packed end to end (mtab_key format) and their values. The collectors
 * emit about 60 series; nothing is allocated per sample once the arrays have their size. */
struct host_entry {
	uint32_t off;
	uint32_t len;
	double value;
};

struct host_set {
	struct buf keys;
	struct host_entry *v;
	size_t n, cap;
};

struct metrics {
	struct outpost_plugin_ctx *pc;
	struct metrics_conf conf;
	struct collect *col; /* loop thread only */
	int timer_id;
	int fd, fd_id;
	int warned_unavailable;
	char *rbuf;         /* METRICS_UDP_MAX bytes, for one datagram; loop thread only */
	int no_hub;         /* outpost_publish said the agent has no hub: build no batches */
	int publish_failed; /* the last publish failed (logged once until one works) */
	struct buf kbuf;    /* a sample's key while the batch is built; loop thread only */
	struct buf bbuf;    /* the batch's text, kept from sample to sample; loop thread only */

	pthread_mutex_t lock; /* guards what follows */
	struct mtab *tab;
	struct host_set host[2]; /* host[cur] is published; the timer fills the other unlocked */
	int cur;
	int64_t time_ms; /* grid time of host[cur]; 0 before the first sample */
	struct statsd_stats sd;
	uint64_t push_refused; /* series metrics.push refused over max_series */
};

/* ---- Config ---- */

static const char *const metrics_conf_keys =
    "interval_ms, max_series, expire_ms, statsd_listen, per_cpu, proc_root";

/* Reads the section into c; unknown keys are refused: a mistyped key left at its default is
 * worse than a plugin that says what to fix. 0, or -1 with msg set. */
static int metrics_conf_load(json_t *conf, struct metrics_conf *c, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	c->interval_ms = 10000;
	c->max_series = 10000;
	c->expire_ms = 3600000;
	c->per_cpu = 0;
	c->statsd_listen = "127.0.0.1:8125";
	c->proc_root = "/proc";
	if (!conf)
		return 0;
	if (!json_is_object(conf)) {
		snprintf(msg, msglen, "the metrics config section must be an object");
		return -1;
	}
	json_object_foreach(conf, key, v)
	{
		int64_t *ip = NULL, min = 0;
		if (strcmp(key, "interval_ms") == 0)
			ip = &c->interval_ms, min = 1000;
		else if (strcmp(key, "max_series") == 0)
			ip = &c->max_series, min = 1;
		else if (strcmp(key, "expire_ms") == 0)
			ip = &c->expire_ms, min = 0;
		if (ip) {
			if (!json_is_integer(v) || json_integer_value(v) < min) {
				snprintf(msg, msglen,
				         "metrics.%s must be an integer of at least %lld; fix the "
				         "agent config",
				         key, (long long)min);
				return -1;
			}
			*ip = json_integer_value(v);
		} else if (strcmp(key, "per_cpu") == 0) {
			if (!json_is_boolean(v)) {
				snprintf(msg, msglen, "metrics.per_cpu must be true or false");
				return -1;
			}
			c->per_cpu = json_is_true(v);
		} else if (strcmp(key, "statsd_listen") == 0 || strcmp(key, "proc_root") == 0) {
			if (!json_is_string(v)) {
				snprintf(msg, msglen, "metrics.%s must be a string", key);
				return -1;
			}
			if (key[0] == 's')
				c->statsd_listen = json_string_value(v);
			else
				c->proc_root = json_string_value(v);
		} else {
			snprintf(msg, msglen,
			         "unknown metrics config key '%.64s' (known: %s); fix the agent "
			         "config",
			         key, metrics_conf_keys);
			return -1;
		}
	}
	return 0;
}

/* ---- Host samples ---- */

static void host_emit(void *arg, const char *name, const char *const *labels, double value)
{
	struct host_set *hs = arg;
	char key[4096];
	size_t n = 0, len;

	while (labels && labels[2 * n])
		n++;
	len = mtab_key(key, sizeof(key), name, labels, n);
	if (len == 0)
		return; /* a mount point of several KiB: not worth a series */
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 64;
		struct host_entry *v = realloc(hs->v, cap * sizeof(*v));
		if (!v)
			return;
		hs->v = v;
		hs->cap = cap;
	}
	if (hs->keys.len + len > UINT32_MAX || buf_append(&hs->keys, key, len) < 0)
		return;
	hs->v[hs->n].off = (uint32_t)(hs->keys.len - len);
	hs->v[hs->n].len = (uint32_t)len;
	/* Two decimal places: finer than any host figure means (a percentage to 0.01, a rate to
	 * 0.01/s), and a decimal of few places is what the hub's store keeps small; 15.577889...
	 * costs it six bytes a sample, 15.58 one or two. */
	if (isfinite(value) && fabs(value) < 1e13)
		value = nearbyint(value * 100) / 100;
	hs->v[hs->n].value = value;
	hs->n++;
}

/* The next grid time at least half an interval away, so that a timer that fires a little
 * early or late still gets a full interval of rates. */
static int64_t metrics_next_delay(int64_t now, int64_t interval)
{
	int64_t next = ((now + interval / 2) / interval + 1) * interval;
	return next - now;
}

/* One series as metrics.now shows it and the batch carries it: a packed key (mtab_key), an
 * extra label xk=xv when xk (a timer's stat), its value. Returns < 0 to stop. */
typedef int (*series_fn)(void *arg, const char *key, size_t keylen, const char *xk, const char *xv,
                         double value);

/* Calls fn for every series with a value, in metrics.now's order: host series, application
 * series (gauges and counters now, timers and sets as of the last closed interval), then the
 * plugin's own. match: a name prefix, or NULL. The caller holds m->lock. */
static int metrics_each(struct metrics *m, const char *match, series_fn fn, void *arg)
{
	size_t mlen = match ? strlen(match) : 0, pos = 0;
	struct mtab_series *s;
	int err = 0;
	const struct {
		const char *name;
		uint64_t v;
	} self[] = {
	    {MTAB_SELF_BAD_LINES, m->sd.bad_lines},
	    {MTAB_SELF_PACKETS, m->sd.packets},
	    {MTAB_SELF_REFUSED, m->sd.refused + m->push_refused},
	};

	if (m->time_ms > 0) {
		const struct host_set *hs = &m->host[m->cur];
		for (size_t i = 0; i < hs->n && err >= 0; i++) {
			const char *key = hs->keys.data + hs->v[i].off;
			if (!match || strncmp(key, match, mlen) == 0)
				err = fn(arg, key, hs->v[i].len, NULL, NULL, hs->v[i].value);
		}
	}
	while (err >= 0 && (s = mtab_next(m->tab, &pos))) {
		if (match && strncmp(s->key, match, mlen) != 0)
			continue;
		if (s->type == MTAB_TIMER) {
			const double *st = mtab_timer_stats(s);
			for (int i = 0; i < MTAB_NSTATS && err >= 0; i++)
				if (!isnan(st[i]))
					err = fn(arg, s->key, s->keylen, "stat", mtab_stat_names[i],
					         st[i]);
		} else if (!isnan(s->value)) {
			err = fn(arg, s->key, s->keylen, NULL, NULL, s->value);
		}
	}
	for (size_t i = 0; i < sizeof(self) / sizeof(self[0]) && err >= 0; i++)
		if (!match || strncmp(self[i].name, match, mlen) == 0)
			err = fn(arg, self[i].name, strlen(self[i].name) + 1, NULL, NULL,
			         (double)self[i].v);
	return err < 0 ? err : 0;
}

struct batch_ctx {
	struct buf *out;
	struct buf *kbuf;
};

static int batch_series(void *arg, const char *key, size_t keylen, const char *xk, const char *xv,
                        double value)
{
	struct batch_ctx *c = arg;

	/* A key the hub would refuse (over 1024 bytes, not UTF-8) is left out: only host series
	 * can have one (a mount point); push and StatsD refuse them. */
	return batch_add(c->out, c->kbuf, key, keylen, xk, xv, value) < 0 ? -1 : 0;
}

/* The batch of the sample of grid time t, for the hub: {"t", "samples": [[key, value]...]},
 * written as text into one buffer kept between samples (a jansson tree and its dump cost more
 * than the sample). Loop thread; on it outpost_publish_text stores the batch before it
 * returns. */
static void metrics_publish(struct metrics *m, int64_t t)
{
	struct batch_ctx c = {&m->bbuf, &m->kbuf};
	int rc;

	if (m->no_hub)
		return;
	rc = batch_begin(&m->bbuf, t) < 0 ? OUTPOST_E_INTERNAL : 0;
	if (rc == 0) {
		pthread_mutex_lock(&m->lock);
		rc = metrics_each(m, NULL, batch_series, &c) < 0 ? OUTPOST_E_INTERNAL : 0;
		pthread_mutex_unlock(&m->lock);
	}
	if (rc == 0 && batch_end(&m->bbuf) < 0)
		rc = OUTPOST_E_INTERNAL;
	if (rc == 0)
		rc = outpost_publish_text(m->pc, "metrics", m->bbuf.data, m->bbuf.len);
	if (rc == OUTPOST_E_UNAVAILABLE) {
		outpost_log(m->pc, OUTPOST_LOG_INFO,
		            "the agent has no hub: samples stay local (metrics.now)");
		m->no_hub = 1;
		buf_free(&m->bbuf);
	} else if (rc < 0 && !m->publish_failed) {
		outpost_log(m->pc, OUTPOST_LOG_WARN,
		            "the sample of %lld could not be handed to the hub's spool (%d); "
		            "logged once until it works again",
		            (long long)t, rc);
		m->publish_failed = 1;
	} else if (rc == 0 && m->publish_failed) {
		outpost_log(m->pc, OUTPOST_LOG_INFO, "samples reach the hub's spool again");
		m->publish_failed = 0;
	}
}

static void metrics_tick(struct outpost_plugin_ctx *pc, void *arg)
{
	struct metrics *m = arg;
	int64_t now = clk_real_ms(), iv = m->conf.interval_ms, t0 = clk_mono_ms();
	struct host_set *hs = &m->host[!m->cur]; /* only this thread writes cur */
	int rc, id;

	/* The timer fires just after a grid point (or a few ms before it): the nearest one. */
	int64_t t = (now + iv / 2) / iv * iv;

	hs->n = 0;
	buf_reset(&hs->keys);
	/* On the loop thread: about 0.5 ms, most of it the kernel walking its TCP hash table for
	 * the sock_diag dump (docs/metrics.md, Cost). Worth a thread of its own only if that
	 * grows. */
	rc = collect_sample(m->col, t0, host_emit, hs);
	if (rc == OUTPOST_E_UNAVAILABLE && !m->warned_unavailable) {
		outpost_log(pc, OUTPOST_LOG_WARN,
		            "some host metric sources cannot be read; the rest is reported");
		m->warned_unavailable = 1;
	} else if (rc < 0 && rc != OUTPOST_E_UNAVAILABLE) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "host metrics sample failed (%d)", rc);
	}
	pthread_mutex_lock(&m->lock);
	m->cur = !m->cur;
	m->time_ms = t;
	mtab_roll(m->tab, m->conf.expire_ms > 0 ? now - m->conf.expire_ms : 0);
	pthread_mutex_unlock(&m->lock);
	outpost_log(pc, OUTPOST_LOG_DEBUG, "sampled %zu host series at %lld in %lld ms", hs->n,
	            (long long)t, (long long)(clk_mono_ms() - t0));
	metrics_publish(m, t);

	/* Re-arm on the grid: the loop's periodic timers drift by the time each turn takes, and
	 * the wall clock is slewed by NTP. A new timer first, so a failure keeps the old one. */
	now = clk_real_ms();
	id = outpost_timer_add(pc, metrics_next_delay(now, iv), metrics_tick, m);
	if (id > 0) {
		outpost_timer_del(pc, m->timer_id);
		m->timer_id = id;
	}
}

/* ---- StatsD ---- */

static void metrics_on_udp(struct outpost_plugin_ctx *pc, void *arg, int fd, uint32_t events)
{
	struct metrics *m = arg;

	(void)pc;
	(void)events;
	/* A bounded batch per wake-up, so a flood cannot starve the rest of the loop. */
	for (int i = 0; i < METRICS_PACKETS_PER_WAKEUP; i++) {
		ssize_t n = recv(fd, m->rbuf, METRICS_UDP_MAX, MSG_DONTWAIT);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error queued on the socket: nothing to read */
		pthread_mutex_lock(&m->lock);
		statsd_packet(m->tab, (size_t)m->conf.max_series, m->rbuf, (size_t)n, clk_real_ms(),
		              &m->sd);
		pthread_mutex_unlock(&m->lock);
	}
}

/* Opens the StatsD socket on "host:port" (numeric; "[v6]:port" for IPv6). Returns the fd, -1
 * for a bad address (msg set), -2 when it cannot be bound (msg set). */
static int metrics_statsd_open(const char *listen, char *msg, size_t msglen, int *loopback)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[128];
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hlen;
	int fd, rc;

	if (!colon || colon == listen || !colon[1] || strlen(colon + 1) > 5) {
		snprintf(msg, msglen, "metrics.statsd_listen '%.64s' is not host:port", listen);
		return -1;
	}
	hlen = (size_t)(colon - listen);
	if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']')
		h++, hlen -= 2;
	if (hlen >= sizeof(host)) {
		snprintf(msg, msglen, "metrics.statsd_listen: host too long");
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		snprintf(msg, msglen,
		         "metrics.statsd_listen '%.64s' is not a numeric address and port (%s)",
		         listen, gai_strerror(rc));
		return -1;
	}
	if (ai->ai_family == AF_INET)
		*loopback =
		    (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
	else
		*loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(msg, msglen, "StatsD listener on %.64s: %s", listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -2;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---- Life cycle ---- */

static void metrics_fini(void *state)
{
	struct metrics *m = state;

	if (!m)
		return;
	/* The agent removed the fd and the timer from the loop before calling fini. */
	if (m->fd >= 0)
		close(m->fd);
	collect_free(m->col);
	mtab_free(m->tab);
	for (int i = 0; i < 2; i++) {
		buf_free(&m->host[i].keys);
		free(m->host[i].v);
	}
	free(m->rbuf);
	buf_free(&m->kbuf);
	buf_free(&m->bbuf);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int metrics_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct metrics *m = calloc(1, sizeof(*m));
	char msg[512];
	int rc = OUTPOST_E_INTERNAL, loopback = 1;

	*state = NULL;
	if (!m)
		return OUTPOST_E_INTERNAL;
	m->pc = pc;
	m->fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	if (metrics_conf_load(outpost_plugin_config(pc), &m->conf, msg, sizeof(msg)) < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s", msg);
		rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	if (mtab_new(&m->tab) < 0)
		goto fail;
	rc = collect_new(m->conf.proc_root, NULL, NULL, NULL, &m->col);
	if (rc < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "metrics: cannot read %s (%d)",
		            m->conf.proc_root, rc);
		goto fail;
	}
	collect_set_per_cpu(m->col, m->conf.per_cpu);
	/* A first, unpublished sample: the first one on the grid then has rates. */
	m->host[1].n = 0;
	collect_sample(m->col, clk_mono_ms(), host_emit, &m->host[1]);
	m->host[1].n = 0;
	buf_reset(&m->host[1].keys);

	if (m->conf.statsd_listen[0]) {
		m->fd = metrics_statsd_open(m->conf.statsd_listen, msg, sizeof(msg), &loopback);
		if (m->fd == -1) {
			outpost_log(pc, OUTPOST_LOG_ERROR, "%s; fix the agent config", msg);
			rc = OUTPOST_E_BAD_ARGS;
			goto fail;
		}
		if (m->fd == -2) {
			/* Another StatsD daemon may own the port: host metrics and push still work.
			 */
			outpost_log(pc, OUTPOST_LOG_WARN, "%s; going on without StatsD", msg);
			m->fd = -1;
		}
	}
	if (m->fd >= 0) {
		m->rbuf = malloc(METRICS_UDP_MAX);
		rc = m->rbuf ? outpost_fd_add(pc, m->fd, EPOLLIN, metrics_on_udp, m)
		             : OUTPOST_E_INTERNAL;
		if (rc < 0) {
			outpost_log(pc, OUTPOST_LOG_ERROR,
			            "metrics: cannot watch the StatsD socket");
			goto fail;
		}
		m->fd_id = rc;
		if (!loopback)
			outpost_log(pc, OUTPOST_LOG_WARN,
			            "StatsD listens on %s, not loopback: any host that reaches it "
			            "can write metrics",
			            m->conf.statsd_listen);
	}
	rc = outpost_timer_add(pc, metrics_next_delay(clk_real_ms(), m->conf.interval_ms),
	                       metrics_tick, m);
	if (rc < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "metrics: cannot add the sample timer (%d)", rc);
		goto fail;
	}
	m->timer_id = rc;
	*state = m;
	return 0;
fail:
	if (m->fd_id > 0)
		outpost_fd_del(pc, m->fd_id);
	metrics_fini(m);
	return rc;
}

/* ---- metrics.now ---- */

/* One series into an array of metrics.now: name and labels from a packed key, plus an extra
 * label if xk. */
static int series_json(void *arg, const char *key, size_t keylen, const char *xk, const char *xv,
                       double value)
{
	json_t *arr = arg, *labels = json_object(), *o;
	size_t i = strlen(key) + 1;

	if (!labels)
		return -1;
	while (i < keylen) {
		const char *k = key + i, *v = k + strlen(k) + 1;
		json_object_set_new(labels, k, json_string(v));
		i = (size_t)(v - key) + strlen(v) + 1;
	}
	if (xk)
		json_object_set_new(labels, xk, json_string(xv));
	o = json_pack("{s:s, s:o, s:f}", "name", key, "labels", labels, "value", value);
	return o ? json_array_append_new(arr, o) : -1;
}

static int metrics_now(struct outpost_call *call, json_t *args, json_t **result)
{
	struct metrics *m = outpost_call_state(call);
	json_t *jm = json_object_get(args, "match"), *arr = json_array(), *out = NULL;

	pthread_mutex_lock(&m->lock);
	if (arr && metrics_each(m, json_string_value(jm), series_json, arr) == 0)
		out = json_pack("{s:o, s:I, s:o}", "time_ms",
		                m->time_ms > 0 ? json_integer(m->time_ms) : json_null(),
		                "interval_ms", (json_int_t)m->conf.interval_ms, "series", arr);
	pthread_mutex_unlock(&m->lock);
	if (!out) {
		json_decref(arr);
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "metrics.now: out of memory");
	}
	*result = out;
	return 0;
}

/* ---- metrics.push ---- */

struct push_item {
	size_t off, len; /* of its key in the call's key buffer */
	size_t index;    /* in the call's array */
	int type;
	double value;
	const char *name;
	struct mtab_series *s; /* the existing series, or NULL */
};

/* Checks one item and packs its key into keys. 0, or an error set on call. */
static int push_check(struct outpost_call *call, size_t i, json_t *o, struct push_item *it,
                      struct buf *keys)
{
	const char *labels[2 * MTAB_LABELS_MAX], *k, *type = "gauge";
	char key[MTAB_NAME_MAX + 2 + MTAB_LABELS_MAX * (MTAB_NAME_MAX + MTAB_LABEL_VALUE_MAX + 4)];
	json_t *name, *jl, *jv, *jt, *v;
	size_t nl = 0;

	if (!json_is_object(o))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS, "metrics[%zu] is not an object",
		                          i);
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "name") && strcmp(k, "labels") && strcmp(k, "value") &&
		    strcmp(k, "type"))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "metrics[%zu]: unknown field '%.64s' (known: "
			                          "name, labels, value, type)",
			                          i, k);
	}
	name = json_object_get(o, "name");
	jl = json_object_get(o, "labels");
	jv = json_object_get(o, "value");
	jt = json_object_get(o, "type");
	if (!json_is_string(name) ||
	    !mtab_name_ok(json_string_value(name), json_string_length(name)))
		return outpost_call_error(
		    call, OUTPOST_E_BAD_ARGS,
		    "metrics[%zu]: name must match [a-zA-Z_:][a-zA-Z0-9_:]*, not start with __, "
		    "and be at most %d bytes",
		    i, MTAB_NAME_MAX);
	it->name = json_string_value(name);
	if (mtab_name_reserved(it->name))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "metrics[%zu]: name '%s' is reserved (host_* and the "
		                          "plugin's own series)",
		                          i, it->name);
	if (jt && !(json_is_string(jt) && (strcmp(json_string_value(jt), "gauge") == 0 ||
	                                   strcmp(json_string_value(jt), "counter") == 0)))
		return outpost_call_error(
		    call, OUTPOST_E_BAD_ARGS,
		    "metrics[%zu] (%s): type must be \"gauge\" or \"counter\"", i, it->name);
	if (jt)
		type = json_string_value(jt);
	it->type = type[0] == 'g' ? MTAB_GAUGE : MTAB_COUNTER;
	if (!json_is_number(jv) || !isfinite(json_number_value(jv)))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "metrics[%zu] (%s): value must be a finite number", i,
		                          it->name);
	it->value = json_number_value(jv);
	if (it->type == MTAB_COUNTER && it->value < 0)
		return outpost_call_error(
		    call, OUTPOST_E_BAD_ARGS,
		    "metrics[%zu] (%s): a counter's increment cannot be negative", i, it->name);
	if (jl && !json_is_object(jl))
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "metrics[%zu] (%s): labels must be an object", i,
		                          it->name);
	if (json_object_size(jl) > MTAB_LABELS_MAX)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "metrics[%zu] (%s): %zu labels, at most %d", i, it->name,
		                          json_object_size(jl), MTAB_LABELS_MAX);
	json_object_foreach(jl, k, v)
	{
		if (!mtab_label_name_ok(k, strlen(k)))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "metrics[%zu] (%s): label name '%.64s' must "
			                          "match [a-zA-Z_][a-zA-Z0-9_]* "
			                          "and not start with __",
			                          i, it->name, k);
		if (strcmp(k, "host") == 0)
			return outpost_call_error(
			    call, OUTPOST_E_BAD_ARGS,
			    "metrics[%zu] (%s): the label 'host' is reserved: "
			    "the hub adds it (this host's id) to every series",
			    i, it->name);
		if (!json_is_string(v) || json_string_length(v) > MTAB_LABEL_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return outpost_call_error(
			    call, OUTPOST_E_BAD_ARGS,
			    "metrics[%zu] (%s): label '%s' must be a string of at most %d bytes", i,
			    it->name, k, MTAB_LABEL_VALUE_MAX);
		labels[2 * nl] = k;
		labels[2 * nl + 1] = json_string_value(v);
		nl++;
	}
	it->len = mtab_key(key, sizeof(key), it->name, labels, nl);
	it->off = keys->len;
	it->index = i;
	if (it->len == 0 || buf_append(keys, key, it->len) < 0)
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "metrics.push: out of memory");
	if (batch_key_len(key, it->len, NULL, NULL) > BATCH_KEY_MAX)
		return outpost_call_error(
		    call, OUTPOST_E_BAD_ARGS,
		    "metrics[%zu] (%s): the series is %zu bytes as name{label=\"value\",...}, "
		    "at most %d (the hub refuses longer ones): shorten its labels",
		    i, it->name, batch_key_len(key, it->len, NULL, NULL), BATCH_KEY_MAX);
	return 0;
}

/* The call's key buffer, for push_cmp: qsort passes no argument. */
static __thread const char *push_keys_tls;

static int push_cmp(const void *a, const void *b)
{
	const struct push_item *x = *(struct push_item *const *)a,
	                       *y = *(struct push_item *const *)b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(push_keys_tls + x->off, push_keys_tls + y->off, x->len);
}

static const char *type_name(int type)
{
	static const char *const n[] = {"?", "gauge", "counter", "timer", "set"};
	return type >= MTAB_GAUGE && type <= MTAB_SET ? n[type] : "?";
}

static int metrics_push(struct outpost_call *call, json_t *args, json_t **result)
{
	struct metrics *m = outpost_call_state(call);
	json_t *arr = json_object_get(args, "metrics"), *o;
	size_t n = json_array_size(arr), nnew = 0, distinct = 0, i;
	struct push_item *items = NULL, **fresh = NULL;
	struct buf keys = BUF_INIT;
	int64_t now = clk_real_ms();
	int rc = 0, locked = 0;

	if (n > METRICS_PUSH_MAX)
		return outpost_call_error(
		    call, OUTPOST_E_TOO_LARGE,
		    "metrics.push: %zu metrics in one call, at most %d; split "
		    "the call",
		    n, METRICS_PUSH_MAX);
	items = calloc(n ? n : 1, sizeof(*items));
	fresh = calloc(n ? n : 1, sizeof(*fresh));
	if (!items || !fresh) {
		rc = outpost_call_error(call, OUTPOST_E_INTERNAL, "metrics.push: out of memory");
		goto out;
	}
	json_array_foreach(arr, i, o)
	{
		rc = push_check(call, i, o, &items[i], &keys);
		if (rc < 0)
			goto out;
	}
	/* Everything is checked before anything is applied: a call is all or nothing. */
	pthread_mutex_lock(&m->lock);
	locked = 1;
	for (i = 0; i < n; i++) {
		struct push_item *it = &items[i];
		it->s = mtab_find(m->tab, keys.data + it->off, it->len);
		if (it->s && it->s->type != it->type) {
			rc = outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                        "metrics[%zu] (%s): the series is a %s, not a %s",
			                        i, it->name, type_name(it->s->type),
			                        type_name(it->type));
			goto out;
		}
		if (!it->s)
			fresh[nnew++] = it;
	}
	push_keys_tls = keys.data;
	qsort(fresh, nnew, sizeof(*fresh), push_cmp);
	for (i = 0; i < nnew; i++) {
		if (i > 0 && push_cmp(&fresh[i - 1], &fresh[i]) == 0) {
			if (fresh[i - 1]->type != fresh[i]->type) {
				struct push_item *a = fresh[i - 1], *b = fresh[i];
				if (a->index > b->index)
					a = fresh[i], b = fresh[i - 1];
				rc = outpost_call_error(call, OUTPOST_E_BAD_ARGS,
				                        "metrics[%zu] (%s): the series is a %s in "
				                        "metrics[%zu], not a %s",
				                        b->index, b->name, type_name(a->type),
				                        a->index, type_name(b->type));
				goto out;
			}
			continue;
		}
		distinct++;
	}
	if (mtab_output_count(m->tab) + distinct > (size_t)m->conf.max_series) {
		m->push_refused += distinct;
		rc = outpost_call_error(
		    call, OUTPOST_E_TOO_LARGE,
		    "metrics.push: %zu new series would make %zu, over max_series "
		    "(%lld); nothing was applied",
		    distinct, mtab_output_count(m->tab) + distinct, (long long)m->conf.max_series);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct push_item *it = &items[i];
		struct mtab_series *s = it->s;
		int created;
		if (!s)
			s = mtab_get(m->tab, keys.data + it->off, it->len, it->type, &created);
		if (!s) {
			rc = outpost_call_error(call, OUTPOST_E_INTERNAL,
			                        "metrics.push: out of memory");
			goto out;
		}
		if (it->type == MTAB_COUNTER)
			s->value = (isnan(s->value) ? 0 : s->value) + it->value;
		else
			s->value = it->value;
		s->updated_ms = now;
	}
	*result = json_pack("{s:I}", "accepted", (json_int_t)n);
out:
	if (locked)
		pthread_mutex_unlock(&m->lock);
	buf_free(&keys);
	free(items);
	free(fresh);
	return rc;
}

static const struct outpost_arg now_args[] = {
    {"match", OUTPOST_ARG_STRING, 0, "only series whose name starts with this"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_arg push_args[] = {
    {"metrics", OUTPOST_ARG_ARRAY, 1,
     "array of {name, labels: {k: v}, value, type: \"gauge\" (default) or \"counter\"}; at "
     "most 1000"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op metrics_ops[] = {
    {"now", metrics_now, now_args, 0,
     "latest values of host and application series: {time_ms, interval_ms, series: [{name, "
     "labels, value}]}"},
    {"push", metrics_push, push_args, 0,
     "set gauges and add to counters of application metrics; all or nothing"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_metrics = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "metrics",
    .version = "1.0.0",
    .init = metrics_init,
    .fini = metrics_fini,
    .ops = metrics_ops,
};
