/* StatsD packets (src/plugins/metrics/statsd.c) into the metrics table: any bytes, any number
 * of lines, a small series bound so that the refusal path is fuzzed too. Also the name mapping
 * on the raw bytes. */
#include "fuzz.h"

#include "plugins/metrics/mtab.h"
#include "plugins/metrics/statsd.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct statsd_stats st = {0};
	struct mtab *t = NULL;
	char name[64];
	size_t n;

	FUZZ_CHECK(mtab_new(&t) == 0);
	statsd_packet(t, 32, (const char *)data, size, 1700000000000LL, &st);
	FUZZ_CHECK(st.packets == 1);
	/* The same packet again, a second later: the series exist now. */
	statsd_packet(t, 32, (const char *)data, size, 1700000001000LL, &st);
	FUZZ_CHECK(st.packets == 2);
	mtab_free(t);
	for (int colon = 0; colon < 2; colon++) {
		n = statsd_name((const char *)data, size, name, sizeof(name), colon);
		FUZZ_CHECK(n < sizeof(name));
		if (n)
			FUZZ_CHECK(strlen(name) == n);
	}
	return 0;
}
