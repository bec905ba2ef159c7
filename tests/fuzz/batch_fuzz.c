/* The hub's reader of agents' metric posts (src/hub/batch.c): batch_scan must take or refuse
 * any bytes with a reason, and batch_samples must then read every batch it took without
 * failing, handing over keys inside the body. */
#include "fuzz.h"

#include "hub/batch.h"

#include <outpost/plugin.h>
#include <string.h>

struct seen {
	const char *body;
	size_t len, n;
};

static int on_sample(void *arg, size_t i, const char *key, size_t keylen, double value)
{
	struct seen *s = arg;

	(void)value;
	FUZZ_CHECK(i < BATCH_MAX);
	/* A key is either in the body or an unescaped copy no longer than the body. */
	FUZZ_CHECK(keylen <= s->len);
	if (keylen)
		FUZZ_CHECK(key != NULL);
	s->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct batch_post post;
	uint8_t want[BATCH_MAX];
	struct seen s = {(const char *)data, size, 0};
	char msg[256] = "";
	int64_t bad = 0;
	int rc;

	rc = batch_scan((const char *)data, size, &post, msg, sizeof(msg));
	if (rc < 0) {
		FUZZ_CHECK(msg[0] && (rc == OUTPOST_E_BAD_JSON || rc == OUTPOST_E_BAD_ARGS));
		return 0;
	}
	FUZZ_CHECK(post.n <= BATCH_MAX);
	FUZZ_CHECK(strlen(post.epoch) < sizeof(post.epoch));
	for (size_t i = 0; i < post.n; i++) {
		want[i] = post.b[i].bad == NULL;
		if (i)
			FUZZ_CHECK(post.b[i].seq > post.b[i - 1].seq);
	}
	rc = batch_samples((const char *)data, size, want, on_sample, &s, &bad);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(bad >= 0);
	return 0;
}
