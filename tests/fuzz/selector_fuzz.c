/* Selectors (src/hub/selector.c): the first line is the selector, the rest (when it is a JSON
 * object) the host's attributes. A selector that parses has a canonical text that parses back
 * to a selector with the same canonical text and the same verdict on every host. */
#include "fuzz.h"

#include "core/wire.h"
#include "hub/selector.h"

#include <outpost/plugin.h>
#include <string.h>

/* The hub's key check, as selector_parse calls it: a key starting with 'x' is unknown,
 * "err" cannot be told (the store failed), any other is known. */
static int key_ok(void *arg, const char *key)
{
	(void)arg;
	if (strcmp(key, "err") == 0)
		return OUTPOST_E_INTERNAL;
	return key[0] != 'x';
}

static int match_all(const struct selector *s, const json_t *attrs)
{
	static const char *const ids[] = {"web-01", "db-7", "a", ""};
	int m = 0;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		m = m << 1 | selector_match(s, ids[i], attrs);
		m = m << 1 | selector_match(s, ids[i], NULL);
	}
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	size_t tlen = nl ? (size_t)(nl - (const char *)data) : size;
	struct selector *s = NULL, *s2 = NULL;
	char *text, *f = NULL, *f2 = NULL, msg[256];
	json_t *attrs = NULL;
	int rc;

	text = strndup((const char *)data, tlen);
	if (!text)
		return 0;
	if (nl && wire_parse(nl + 1, size - tlen - 1, WIRE_MAX_DEPTH_DEFAULT, &attrs, msg,
	                     sizeof(msg)) < 0)
		attrs = NULL;
	if (!attrs)
		attrs = json_pack("{s:s, s:s, s:i, s:b, s:f}", "role", "web", "os", "debian",
		                  "cpus", 8, "vm", 1, "load", 0.5);
	msg[0] = '\0';
	rc = selector_parse(text, key_ok, NULL, &s, msg, sizeof(msg));
	if (rc < 0) {
		FUZZ_CHECK(s == NULL);
		FUZZ_CHECK(rc == OUTPOST_E_INTERNAL || strncmp(msg, "at column ", 10) == 0);
		goto out;
	}
	f = selector_format(s);
	FUZZ_CHECK(f != NULL);
	if (selector_parse(f, NULL, NULL, &s2, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "canonical '%s' of '%s' does not parse: %s\n", f, text, msg);
		abort();
	}
	f2 = selector_format(s2);
	FUZZ_CHECK(f2 && strcmp(f, f2) == 0);
	FUZZ_CHECK(match_all(s, attrs) == match_all(s2, attrs));
out:
	free(f);
	free(f2);
	selector_free(s);
	selector_free(s2);
	json_decref(attrs);
	free(text);
	return 0;
}
