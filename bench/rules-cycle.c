/* bench/rules' engine: a real hub (hub_new on its own loop, SQLite store in a temp dir) with
 * N hosts written into the store and 4 series each in the time-series store (10 samples over
 * the last 5 minutes), M rules of a realistic mix, then evaluation cycles run the way the
 * hub runs them (a slice per turn of the loop). Prints one JSON object: the hub thread's
 * CPU time per cycle, the wall time, the longest time the loop was held at once. */
#include "hub/hub_impl.h"
#include "hub/rules_int.h"
#include "hub/tsdb.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *const metrics[] = {"bench_cpu_percent", "bench_mem_percent",
                                      "bench_fs_used_percent", "bench_net_bytes_total"};

/* Rule i of the mix: most are threshold rules over one window (as operators write them),
 * some combine two terms, some predict, some watch host state. */
static json_t *rule_doc(int i)
{
	char cond[300], name[32];
	const char *scope = i % 3 == 0 ? "role=web" : i % 3 == 1 ? "role=db" : "*";

	snprintf(name, sizeof(name), "r%04d", i);
	switch (i % 10) {
	case 0:
	case 1:
	case 2:
		snprintf(cond, sizeof(cond), "avg(bench_cpu_percent[5m]) > %d for 2m", 90 + i % 10);
		break;
	case 3:
		snprintf(cond, sizeof(cond), "max(bench_mem_percent[1m]) > %d", 95 + i % 5);
		break;
	case 4:
		snprintf(cond, sizeof(cond), "last(bench_fs_used_percent{mount=\"/\"}[5m]) > 97");
		break;
	case 5:
		snprintf(cond, sizeof(cond),
		         "predict(bench_fs_used_percent{mount=\"/\"}[5m], 24h) > 100");
		break;
	case 6:
		snprintf(cond, sizeof(cond), "rate(bench_net_bytes_total[5m]) > 1e9");
		break;
	case 7:
		snprintf(cond, sizeof(cond),
		         "avg(bench_cpu_percent[5m]) > 95 and max(bench_mem_percent[5m]) > 95");
		break;
	case 8:
		snprintf(cond, sizeof(cond), "down for 3m");
		break;
	default:
		snprintf(cond, sizeof(cond),
		         "delta(bench_fs_used_percent[5m]) > 10 or event(task_failed)");
		break;
	}
	return json_pack("{s:s, s:s, s:s, s:[{s:s}]}", "name", name, "scope", scope, "condition",
	                 cond, "actions", "kind", "log");
}

int main(int argc, char **argv)
{
	int nhosts = argc > 2 ? atoi(argv[2]) : 10000, nrules = argc > 3 ? atoi(argv[3]) : 1000;
	int cycles = argc > 4 ? atoi(argv[4]) : 3;
	const char *dir = argc > 1 ? argv[1] : "/tmp/rules-bench";
	struct logger log;
	struct loop *loop;
	struct hub *h;
	json_t *conf = hub_conf_defaults();
	char msg[1024], pk[64];
	int64_t now = clk_real_ms(), t0;
	uint8_t raw[32] = {1};

	log_init(&log, "rules-bench", OUTPOST_LOG_WARN, LOG_TO_STDERR);
	conf_set(conf, "state_dir", json_string(dir));
	conf_set(conf, "listen", json_string("127.0.0.1:0"));
	conf_set(conf, "tls", json_false());
	conf_set(conf, "log.level", json_string("warn"));
	/* no agents beat here: the down sweep must not take the hosts down under the bench */
	conf_set(conf, "agents.beat_ms", json_integer(3600000));
	conf_set(conf, "agents.missed_beats", json_integer(100));
	conf_set(conf, "rules.interval_s", json_integer(3600));
	conf_set(conf, "rules.file", json_string(""));
	conf_set(conf, "metrics.checkpoint_s", json_integer(86400));
	if (loop_new(&loop) < 0 || hub_new(loop, conf, &log, &h, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "rules-bench: %s\n", msg);
		return 1;
	}
	{
		char *b = sec_b64(raw, sizeof(raw));
		snprintf(pk, sizeof(pk), "%s", b);
		free(b);
	}
	t0 = mono_us();
	for (int i = 0; i < nhosts; i++) {
		char id[32];
		json_t *host = NULL, *labels = json_pack("{s:s}", "role", i % 2 ? "web" : "db");
		struct store_enroll e = {.host_id = id,
		                         .pubkey = pk,
		                         .hostname = id,
		                         .version = "0.1.0",
		                         .labels = labels,
		                         .accept = 1,
		                         /* 1 % of the hosts were last seen 10 minutes ago */
		                         .now_ms = i % 100 == 0 ? now - 600000 : now};
		snprintf(id, sizeof(id), "h%05d", i);
		if (h->store->ops->host_enroll(h->store, &e, &host) < 0) {
			fprintf(stderr, "rules-bench: enroll %s failed\n", id);
			return 1;
		}
		json_decref(host);
		json_decref(labels);
	}
	{
		json_t *ids = NULL;
		h->store->ops->hosts_mark_down(h->store, now - 300000, now, NULL, NULL, &ids);
		json_decref(ids);
	}
	for (int i = 0; i < nhosts; i++) {
		char id[32], key[128];
		struct tsdb_host *th;
		snprintf(id, sizeof(id), "h%05d", i);
		th = tsdb_host_get(h->tsdb, id);
		for (int m = 0; m < 4; m++) {
			for (int k = 0; k < 10; k++) {
				/* cpu and memory wander below 90 %, file systems sit at 40-80 %,
				 * the network counter grows 1 MB per sample: few rules hold
				 * anywhere */
				double v = m == 3   ? 1e6 * k + i
				           : m == 2 ? 40.0 + i % 40 + k * 0.001
				                    : (double)((i * 7 + k * 3 + m * 11) % 90);
				snprintf(key, sizeof(key), m == 2 ? "%s{mount=\"/\"}" : "%s",
				         metrics[m]);
				tsdb_append(h->tsdb, th, key, strlen(key), now - (10 - k) * 30000,
				            v, msg, sizeof(msg));
			}
		}
		if (i % 200 == 199 && tsdb_flush(h->tsdb) < 0) {
			fprintf(stderr, "rules-bench: flush failed\n");
			return 1;
		}
	}
	tsdb_flush(h->tsdb);
	fprintf(stderr, "rules-bench: %d hosts, %d series written in %.1f s\n", nhosts, nhosts * 4,
	        (double)(mono_us() - t0) / 1e6);
	for (int i = 0; i < nrules; i++) {
		json_t *doc = rule_doc(i);
		struct rule *r;
		const char *field;
		int col;
		if (rule_build(doc, &r, &field, &col, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "rules-bench: rule %d: %s\n", i, msg);
			return 1;
		}
		rules_install(h->rules, r);
		json_decref(doc);
	}
	printf("{\"hosts\": %d, \"series\": %d, \"rules\": %d, \"cycles\": [", nhosts, nhosts * 4,
	       nrules);
	for (int c = 0; c < cycles; c++) {
		struct rules *rs = h->rules;
		int64_t cpu0 = thread_cpu_us(), w0 = mono_us(), held0, held = 0, turns = 0, hcpu;
		size_t firing = 0;

		rs->max_slice_us = 0;
		rs->max_slice_cpu_us = 0;
		rs->next_ms = 0;
		held0 = mono_us();
		hcpu = thread_cpu_us();
		rules_tick(h); /* the snapshot and the first slice */
		held = mono_us() - held0;
		hcpu = thread_cpu_us() - hcpu;
		while (rs->cyc) {
			int64_t a;
			loop_run_once(loop, 100);
			a = mono_us();
			(void)a;
			turns++;
		}
		for (size_t i = 0; i < rs->n; i++)
			firing += json_object_size(rs->v[i]->alerts);
		printf("%s{\"cpu_s\": %.3f, \"wall_s\": %.3f, \"first_hold_ms\": %.1f, "
		       "\"first_hold_cpu_ms\": %.1f, \"max_slice_ms\": %.1f, "
		       "\"max_slice_cpu_ms\": %.1f, \"slices\": %lld, \"alerts\": %zu, \"evals\": "
		       "%llu}",
		       c ? ", " : "", (double)(thread_cpu_us() - cpu0) / 1e6,
		       (double)(mono_us() - w0) / 1e6, (double)held / 1000.0, (double)hcpu / 1000.0,
		       (double)(rs->max_slice_us > held ? rs->max_slice_us : held) / 1000.0,
		       (double)(rs->max_slice_cpu_us > hcpu ? rs->max_slice_cpu_us : hcpu) / 1000.0,
		       (long long)turns + 1, firing, rs->evals);
		fflush(stdout);
	}
	printf("]}\n");
	hub_free(h);
	loop_free(loop);
	json_decref(conf);
	return 0;
}
