/* Tests for src/hub/selector.c: grammar, errors that name their column, matching, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "hub/selector.h"
#include <outpost/plugin.h>

/* Parses text that must be valid and returns its canonical form (caller frees). */
static char *canon(const char *text)
{
	struct selector *s = NULL;
	char msg[256];
	char *f;
	int rc = selector_parse(text, NULL, NULL, &s, msg, sizeof(msg));
	if (rc != 0)
		fail_msg("'%s' should parse, got %d: %s", text, rc, msg);
	assert_string_equal(msg, "");
	f = selector_format(s);
	assert_non_null(f);
	selector_free(s);
	return f;
}

static void assert_canon(const char *text, const char *want)
{
	char *f = canon(text);
	char *again = canon(f); /* the canonical form is a fixed point */
	assert_string_equal(f, want);
	assert_string_equal(again, want);
	free(f);
	free(again);
}

/* Parses text that must fail and checks the whole message. */
static void assert_error(const char *text, const char *want)
{
	struct selector *s = (struct selector *)1;
	char msg[256];
	int rc = selector_parse(text, NULL, NULL, &s, msg, sizeof(msg));
	if (rc != OUTPOST_E_BAD_ARGS)
		fail_msg("'%s' should fail, got %d", text, rc);
	assert_null(s);
	if (strncmp(msg, want, strlen(want)) != 0)
		fail_msg("'%s': message\n  '%s'\nshould start with\n  '%s'", text, msg, want);
}

static int known_keys(void *arg, const char *key)
{
	int *calls = arg;
	static const char *const keys[] = {"role", "dc", "os", "os.family", "cpus", NULL};
	if (calls)
		(*calls)++;
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], key) == 0)
			return 1;
	return 0;
}

static int store_down(void *arg, const char *key)
{
	return OUTPOST_E_UNAVAILABLE;
}

static struct selector *must_parse(const char *text)
{
	struct selector *s = NULL;
	char msg[256];
	if (selector_parse(text, NULL, NULL, &s, msg, sizeof(msg)) != 0)
		fail_msg("'%s' should parse: %s", text, msg);
	return s;
}

/* Whether text selects the host (id; the hostname it reported, which the hub puts in attrs
 * as "hostname"; attrs given as JSON text). */
static int sel(const char *text, const char *id, const char *hostname, const char *attrs_json)
{
	struct selector *s = must_parse(text);
	json_t *attrs = NULL;
	int r;
	if (attrs_json) {
		attrs = json_loads(attrs_json, 0, NULL);
		assert_non_null(attrs);
	}
	if (hostname && (!attrs || json_is_object(attrs))) {
		if (!attrs)
			attrs = json_object();
		if (!json_object_get(attrs, "hostname"))
			json_object_set_new(attrs, "hostname", json_string(hostname));
	}
	r = selector_match(s, id, attrs);
	json_decref(attrs);
	selector_free(s);
	return r;
}

/* ---- grammar and canonical form ---- */

static void test_format_is_canonical(void **state)
{
	assert_canon("role=web and dc!=sh", "role=web and dc!=sh");
	assert_canon("  role = web\tand dc != sh  or\n db-*  ", "role=web and dc!=sh or db-*");
	assert_canon("*", "*");
	assert_canon("web-01", "web-01");
	assert_canon("os=debian*", "os=debian*");
	assert_canon("a or b and c or d", "a or b and c or d");
	assert_canon("_k.x-y=1", "_k.x-y=1");
	assert_canon("addr=10.0.0.1/24 and mac=aa:bb:cc:dd:ee:ff and who=root@h+1",
	             "addr=10.0.0.1/24 and mac=aa:bb:cc:dd:ee:ff and who=root@h+1");
	/* a keyword used as a key is a key, since a term is expected there */
	assert_canon("and=1 or or=2", "and=1 or or=2");
}

static void test_format_quotes_what_needs_it(void **state)
{
	assert_canon("os=\"debian 12\"", "os=\"debian 12\"");
	assert_canon("x=\"a\\\"b\\\\c\"", "x=\"a\\\"b\\\\c\"");
	assert_canon("x=\"plain\"", "x=plain");
	assert_canon("x=\"\"", "x=\"\"");
	assert_canon("role=and", "role=\"and\"");
	assert_canon("\"or\"", "\"or\"");
	assert_canon("\"my host\"", "\"my host\"");
	assert_canon("web-[!0]*", "\"web-[!0]*\"");
	assert_canon("name=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\"",
	             "name=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\"");
}

static void test_key_callback_sees_each_key(void **state)
{
	struct selector *s = NULL;
	char msg[256];
	int calls = 0;
	assert_int_equal(selector_parse("role=web and os.family=debian and web-* or dc!=x",
	                                known_keys, &calls, &s, msg, sizeof(msg)),
	                 0);
	assert_int_equal(calls, 3);
	selector_free(s);
}

/* ---- errors: each names its column ---- */

static void test_errors_name_the_column(void **state)
{
	assert_error("", "at column 1: empty selector");
	assert_error("   ", "at column 4: empty selector");
	assert_error("=web", "at column 1: expected a key before '='");
	assert_error("!=web", "at column 1: expected a key before '!='");
	assert_error("dc!=sh and role<5", "at column 16: expected '=' or '!=' after key 'role'");
	assert_error("role!web", "at column 5: expected '=' or '!=' after key 'role'");
	assert_error("role ~ web", "at column 6: expected '=' or '!=' after key 'role'");
	assert_error("role=web and", "at column 13: expected a term after 'and'");
	assert_error("role=web or  ", "at column 14: expected a term after 'or'");
	assert_error("a or or b", "at column 6: expected a term after 'or', found 'or'");
	assert_error("a and or b", "at column 7: expected a term after 'and', found 'or'");
	assert_error("and a", "at column 1: a selector cannot start with 'and'");
	assert_error("or", "at column 1: a selector cannot start with 'or'");
	assert_error("role=web dc=sh", "at column 10: expected 'and' or 'or' before 'dc'");
	assert_error("a \"b\"", "at column 3: expected 'and' or 'or' before the quoted string");
	assert_error("a AND b", "at column 3: keywords are lowercase: write 'and'");
	assert_error("a Or b", "at column 3: keywords are lowercase: write 'or'");
	assert_error("a=b=c", "at column 4: expected 'and' or 'or', found '='");
	assert_error("role=", "at column 6: expected a value after 'role='");
	assert_error("role!=  ", "at column 9: expected a value after 'role!='");
	assert_error("role==web", "at column 6: expected a value after 'role=', found '='");
	assert_error("role=!=web", "at column 6: expected a value after 'role=', found '!='");
	assert_error("role=,", "at column 6: ',' does not separate terms");
	assert_error("web-01,web-02", "at column 7: ',' does not separate terms");
	assert_error("web-01, web-02", "at column 7: ',' does not separate terms");
	assert_error("(a or b)", "at column 1: parentheses are not supported");
	assert_error("a and (b)", "at column 7: parentheses are not supported");
	assert_error("a && b", "at column 3: '&' is not an operator");
	assert_error("a || b", "at column 3: '|' is not an operator");
	assert_error("!role=web", "at column 1: '!' stands only in '!='");
	assert_error("role='web'", "at column 6: single quotes are not supported");
	assert_error("a\\b", "at column 2: '\\' is allowed only inside double quotes");
	assert_error("a\x01", "at column 2: unexpected control character 0x01");
	assert_error("a ;", "at column 3: unexpected character ';'");
}

static void test_errors_in_keys(void **state)
{
	char key[80], text[128];
	assert_error("web-*=x", "at column 1: invalid key 'web-*'");
	assert_error("1abc=x", "at column 1: invalid key '1abc'");
	assert_error("-x=1", "at column 1: invalid key '-x'");
	assert_error("a and [x]=1", "at column 7: invalid key '[x]'");
	assert_error("\"role\"=web", "at column 1: a key cannot be quoted");
	memset(key, 'k', 63);
	key[63] = '\0';
	snprintf(text, sizeof(text), "%s=1", key);
	free(canon(text)); /* 63 is fine */
	snprintf(text, sizeof(text), "x=1 and k%s=1", key);
	assert_error(text, "at column 9: key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' is "
	                   "64 characters long, the limit is 63");
}

static void test_unknown_key_names_key_and_column(void **state)
{
	struct selector *s = NULL;
	char msg[256];
	assert_int_equal(selector_parse("rol=web", known_keys, NULL, &s, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_null(s);
	assert_non_null(strstr(msg, "at column 1: unknown key 'rol'"));
	assert_int_equal(
	    selector_parse("role=web and dcc!=sh", known_keys, NULL, &s, msg, sizeof(msg)),
	    OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "at column 14: unknown key 'dcc'"));
	/* host words are not keys: no callback needed */
	assert_int_equal(selector_parse("rol", known_keys, NULL, &s, msg, sizeof(msg)), 0);
	selector_free(s);
}

static void test_key_callback_failure_is_passed_up(void **state)
{
	struct selector *s = NULL;
	char msg[256];
	assert_int_equal(selector_parse("role=web", store_down, NULL, &s, msg, sizeof(msg)),
	                 OUTPOST_E_UNAVAILABLE);
	assert_null(s);
	assert_non_null(strstr(msg, "at column 1: cannot check key 'role'"));
}

static void test_quoted_string_errors(void **state)
{
	assert_error("role=\"web", "at column 6: unterminated quoted string");
	assert_error("role=\"web\\\"", "at column 6: unterminated quoted string");
	assert_error("role=\"web\\", "at column 6: unterminated quoted string");
	assert_error("\"", "at column 1: unterminated quoted string");
	assert_error("role=\"we\\nb\"", "at column 9: unknown escape in quoted string");
	assert_error("x=\"a\tb\"", "at column 5: control character 0x09 in quoted string");
	assert_error("x=\"a\x7f\"", "at column 5: control character 0x7f in quoted string");
	assert_error("x=\"\xff\"", "at column 4: invalid UTF-8 in quoted string");
	assert_error("x=\"\xc0\xaf\"", "at column 4: invalid UTF-8");         /* overlong '/' */
	assert_error("x=\"\xed\xa0\x80\"", "at column 4: invalid UTF-8");     /* surrogate */
	assert_error("x=\"\xf4\x90\x80\x80\"", "at column 4: invalid UTF-8"); /* > U+10FFFF */
	assert_error("x=\"\xe2\x82\"", "at column 4: invalid UTF-8");         /* cut short */
}

static void test_unicode_columns_count_characters(void **state)
{
	/* outside quotes non-ASCII is refused; inside, columns count characters */
	assert_error("r\xc3\xb4le=web", "at column 2: non-ASCII character outside quotes");
	assert_error("\xe2\x80\x8b", "at column 1: non-ASCII character outside quotes");
	assert_error("os=\"d\xc3\xa9\x62ian\" and x y",
	             "at column 19: expected 'and' or 'or' before 'y'");
	assert_error("x=\"\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80\" ,", "at column 8: ','");
}

static void test_long_words_are_cut_in_messages(void **state)
{
	char text[600], msg[256];
	struct selector *s = NULL;
	memcpy(text, "a ", 2);
	memset(text + 2, 'w', 500);
	text[502] = '\0';
	assert_int_equal(selector_parse(text, NULL, NULL, &s, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "at column 3: expected 'and' or 'or' before 'www"));
	assert_non_null(strstr(msg, "...'"));
	assert_true(strlen(msg) < 120);
}

static void test_value_and_host_word_limits(void **state)
{
	char text[SELECTOR_MAX_VALUE + 16];
	memcpy(text, "x=", 2);
	memset(text + 2, 'v', SELECTOR_MAX_VALUE);
	text[2 + SELECTOR_MAX_VALUE] = '\0';
	free(canon(text));
	memcpy(text + 2 + SELECTOR_MAX_VALUE, "v", 2);
	assert_error(text, "at column 3: value is 1025 bytes long, the limit is 1024");
	memset(text, 'h', SELECTOR_MAX_VALUE + 1);
	text[SELECTOR_MAX_VALUE + 1] = '\0';
	assert_error(text, "at column 1: host name is 1025 bytes long, the limit is 1024");
}

static void test_small_or_missing_msg_buffer_is_safe(void **state)
{
	struct selector *s = NULL;
	char msg[8];
	memset(msg, 'x', sizeof(msg));
	assert_int_equal(selector_parse("a or or", NULL, NULL, &s, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "at colu");
	assert_int_equal(selector_parse("a or or", NULL, NULL, &s, NULL, 0), OUTPOST_E_BAD_ARGS);
	assert_int_equal(selector_parse("a or or", NULL, NULL, &s, msg, 0), OUTPOST_E_BAD_ARGS);
	assert_int_equal(selector_parse("a", NULL, NULL, &s, NULL, 0), 0);
	selector_free(s);
}

static void test_null_arguments(void **state)
{
	struct selector *s = (struct selector *)1;
	char msg[128];
	assert_int_equal(selector_parse(NULL, NULL, NULL, &s, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_null(s);
	assert_non_null(strstr(msg, "at column 1: no selector given"));
	assert_int_equal(selector_parse("a", NULL, NULL, NULL, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	selector_free(NULL);
	assert_null(selector_format(NULL));
	assert_int_equal(selector_match(NULL, "a", NULL), 0);
}

/* ---- limits and hostile input ---- */

static void test_text_limit(void **state)
{
	char *text = malloc(SELECTOR_MAX_TEXT + 2);
	size_t off = 0;
	char *f;
	assert_non_null(text);
	/* 64 long host words joined by 'or', padded with spaces to exactly the limit */
	for (int i = 0; i < SELECTOR_MAX_TERMS; i++) {
		if (i) {
			memcpy(text + off, " or ", 4);
			off += 4;
		}
		memset(text + off, 'a' + i % 26, 58);
		off += 58;
	}
	memset(text + off, ' ', SELECTOR_MAX_TEXT - off);
	text[SELECTOR_MAX_TEXT] = '\0';
	f = canon(text);
	assert_int_equal(strlen(f), off);
	free(f);
	text[SELECTOR_MAX_TEXT] = ' ';
	text[SELECTOR_MAX_TEXT + 1] = '\0';
	assert_error(text, "at column 4097: selector longer than 4096 bytes");
	free(text);
}

static void test_term_limit(void **state)
{
	struct buf b = BUF_INIT;
	size_t len;
	for (int i = 0; i < SELECTOR_MAX_TERMS; i++)
		assert_int_equal(buf_puts(&b, i ? " or h" : "h"), 0);
	free(canon(b.data));
	len = b.len;
	assert_int_equal(buf_puts(&b, " or h"), 0);
	assert_error(b.data, "at column 321: more than 64 terms");
	b.len = len;
	assert_int_equal(buf_puts(&b, " and x=1"), 0);
	assert_error(b.data, "at column 322: more than 64 terms");
	buf_free(&b);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_huge_inputs_rejected_fast(void **state)
{
	size_t big = 16u << 20;
	struct buf b = BUF_INIT;
	struct selector *s = NULL;
	char *text = malloc(big + 1);
	char msg[128];
	double t0;

	assert_non_null(text);
	/* 10k terms */
	for (size_t i = 0; i < 10000; i++)
		assert_int_equal(buf_printf(&b, "%srole=web%zu", i ? " and " : "", i), 0);
	t0 = now();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(selector_parse(b.data, known_keys, NULL, &s, msg, sizeof(msg)),
		                 OUTPOST_E_BAD_ARGS);
	assert_true(now() - t0 < 0.5);
	assert_non_null(strstr(msg, "at column 4097: selector longer"));
	buf_free(&b);

	/* 16 MB of one word: the length check does not read it all */
	memset(text, 'a', big);
	text[big] = '\0';
	t0 = now();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(selector_parse(text, NULL, NULL, &s, msg, sizeof(msg)),
		                 OUTPOST_E_BAD_ARGS);
	assert_true(now() - t0 < 0.5);
	free(text);
}

static void test_worst_case_parse_is_fast(void **state)
{
	struct buf b = BUF_INIT;
	struct selector *s = NULL;
	char msg[128];
	double t0;

	/* 64 terms that each call the key callback, then an error at the very end */
	for (int i = 0; i < SELECTOR_MAX_TERMS; i++)
		assert_int_equal(buf_printf(&b, "%sos.family=\"%040d\"", i ? " and " : "", i), 0);
	assert_int_equal(buf_puts(&b, " ,"), 0);
	assert_true(b.len <= SELECTOR_MAX_TEXT);
	t0 = now();
	for (int i = 0; i < 2000; i++)
		assert_int_equal(selector_parse(b.data, known_keys, NULL, &s, msg, sizeof(msg)),
		                 OUTPOST_E_BAD_ARGS);
	assert_true(now() - t0 < 2.0);
	assert_non_null(strstr(msg, "','"));
	buf_free(&b);
}

/* Checks the contract on any input: an error names a column inside the text (or just past
 * it); a success prints a canonical form that parses back to itself. */
static void check_any(const char *text)
{
	struct selector *s = NULL, *s2 = NULL;
	char msg[256], msg2[256];
	int rc = selector_parse(text, NULL, NULL, &s, msg, sizeof(msg));
	if (rc == 0) {
		char *f = selector_format(s), *f2;
		assert_non_null(f);
		if (selector_parse(f, NULL, NULL, &s2, msg2, sizeof(msg2)) != 0)
			fail_msg("'%s' parsed, its form '%s' did not: %s", text, f, msg2);
		f2 = selector_format(s2);
		assert_string_equal(f, f2);
		/* matching never crashes, whatever the terms */
		selector_match(s, "id", NULL);
		free(f);
		free(f2);
		selector_free(s);
		selector_free(s2);
		return;
	}
	assert_int_equal(rc, OUTPOST_E_BAD_ARGS);
	assert_null(s);
	unsigned long col;
	if (sscanf(msg, "at column %lu: ", &col) != 1)
		fail_msg("'%s': message does not name a column: %s", text, msg);
	assert_true(col >= 1 && col <= strlen(text) + 1);
}

static void test_random_garbage(void **state)
{
	char text[300];
	srand(12345);
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rand() % 280);
		for (size_t i = 0; i < len; i++)
			text[i] = (char)(1 + rand() % 255);
		text[len] = '\0';
		check_any(text);
	}
}

static void test_random_token_soup(void **state)
{
	static const char *const toks[] = {
	    "a",  "web-*", "role", "and",   "or",  "AND", "=", "!=",      "!", "\"",
	    "\\", " ",     "  ",   "\t",    ",",   "(",   ")", "\"x y\"", "*", "[!0]",
	    "é",  "\xff",  "os",   "=\"\"", "x.y", "&&",  "'", "\\\"",    "?", "1",
	};
	size_t ntoks = sizeof(toks) / sizeof(toks[0]);
	struct buf b = BUF_INIT;
	int ok = 0;
	srand(777);
	for (int iter = 0; iter < 30000; iter++) {
		struct selector *s = NULL;
		size_t n = (size_t)(rand() % 12);
		buf_reset(&b);
		assert_int_equal(buf_puts(&b, ""), 0);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(buf_puts(&b, toks[rand() % ntoks]), 0);
			if (rand() % 2)
				assert_int_equal(buf_puts(&b, " "), 0);
		}
		if (selector_parse(b.data, NULL, NULL, &s, NULL, 0) == 0)
			ok++;
		selector_free(s);
		check_any(b.data);
	}
	buf_free(&b);
	assert_true(ok > 100); /* the soup does produce valid selectors too */
}

/* ---- matching ---- */

static void test_bare_word_matches_only_the_accepted_id(void **state)
{
	assert_int_equal(sel("web-01", "web-01", "x.example", NULL), 1);
	assert_int_equal(sel("web-01", "web-011", "x.example", NULL), 0);
	/* what a host says of itself is not its id: lab-9 claiming hostname web-01 */
	assert_int_equal(sel("web-01", "lab-9", "web-01", NULL), 0);
	assert_int_equal(sel("web-*", "lab-9", "web-17.example", NULL), 0);
	assert_int_equal(sel("web-*", "web-id", "db-1.example", NULL), 1); /* globs on the id */
	assert_int_equal(sel("web-0?", "web-07", "h", NULL), 1);
	assert_int_equal(sel("web-0?", "web-070", "h", NULL), 0);
	assert_int_equal(sel("web-[!0-3]*", "web-2x", "h", NULL), 0);
	assert_int_equal(sel("web-[!0-3]*", "web-7x", "h", NULL), 1);
	assert_int_equal(sel("web-[a-c]*", "web-bx", "h", NULL), 1);
	assert_int_equal(sel("WEB-1", "web-1", "x", NULL), 0); /* ids keep their case */
	assert_int_equal(sel("*.sh.example", "a.b.sh.example", "h", NULL), 1);
	assert_int_equal(sel("\"or\"", "or", "h", NULL), 1);
	/* a fact is matched when the selector names it */
	assert_int_equal(sel("hostname=web-01", "lab-9", "web-01", NULL), 1);
	assert_int_equal(sel("hostname=web-*", "lab-9", "db-1", NULL), 0);
}

/* ---- node-set ranges ---- */

static void test_ranges_expand_with_padding(void **state)
{
	assert_int_equal(sel("web[01-10]", "web01", "h", NULL), 1);
	assert_int_equal(sel("web[01-10]", "web10", "h", NULL), 1);
	assert_int_equal(sel("web[01-10]", "web1", "h", NULL), 0); /* padding kept */
	assert_int_equal(sel("web[01-10]", "web11", "h", NULL), 0);
	assert_int_equal(sel("web[01-10]", "web0", "h", NULL), 0); /* not a glob class */
	assert_int_equal(sel("web[1-10]", "web7", "h", NULL), 1);
	assert_int_equal(sel("web[1-10]", "web07", "h", NULL), 0);
	assert_int_equal(sel("web[1-3,7]", "web2", "h", NULL), 1);
	assert_int_equal(sel("web[1-3,7]", "web7", "h", NULL), 1);
	assert_int_equal(sel("web[1-3,7]", "web5", "h", NULL), 0);
	assert_int_equal(sel("rack[1-2]-n[01-04]", "rack2-n03", "h", NULL), 1);
	assert_int_equal(sel("rack[1-2]-n[01-04]", "rack3-n03", "h", NULL), 0);
	assert_int_equal(sel("rack[1-2]-n[01-04]", "rack1-n05", "h", NULL), 0);
	assert_int_equal(sel("web[5]", "web5", "h", NULL), 1);
	/* with globs around them, and in values */
	assert_int_equal(sel("web[1-2]*", "web2.dc1", "h", NULL), 1);
	assert_int_equal(sel("web[1-2]*", "web3.dc1", "h", NULL), 0);
	assert_int_equal(sel("rack=r[08-12]", "i", "h", "{\"rack\":\"r09\"}"), 1);
	assert_int_equal(sel("rack!=r[08-12]", "i", "h", "{\"rack\":\"r09\"}"), 0);
	assert_int_equal(sel("rack!=r[08-12]", "i", "h", "{\"rack\":\"r13\"}"), 1);
	/* quoted, a bracket is a glob class as before */
	assert_int_equal(sel("\"web[1-3]\"", "web2", "h", NULL), 1);
	assert_int_equal(sel("\"web[01-10]\"", "web01", "h", NULL), 0);
	assert_int_equal(sel("\"web[01-10]\"", "web1", "h", NULL), 1);
}

static void test_ranges_keep_their_form(void **state)
{
	assert_canon("web[1-3,7]", "web[1-3,7]");
	assert_canon("rack[1-2]-n[01-04] or role=r[1,3]", "rack[1-2]-n[01-04] or role=r[1,3]");
	assert_canon("\"web[1-3]\"", "\"web[1-3]\""); /* a quoted one stays quoted */
}

static void test_range_errors_name_the_column(void **state)
{
	assert_error("web[10-1]", "at column 5: range 10-1 runs backwards");
	assert_error("web[1-3", "at column 4: unterminated range: close it with ']'");
	assert_error("web[1-", "at column 7: unterminated range");
	assert_error("a or web[1-3,]", "at column 14: expected a number in the range, found ']'");
	assert_error("web[1-3a]", "at column 8: unexpected 'a' in a range");
	assert_error("web[1--3]", "at column 7: expected a number in the range, found '-'");
	assert_error("web[1234567890]", "at column 5: number in a range longer than 9 digits");
	assert_error("web[0-99999]", "at column 4: ranges expand to more than 16384 names");
	assert_error("a[1-200]b[1-200]", "at column 10: ranges expand to more than 16384 names");
	/* the bound counts the whole selector */
	assert_error("a[1-9000] or b[1-9000]", "at column 15: ranges expand to more than");
	assert_error("a[1][1][1][1][1][1][1][1][1]",
	             "at column 26: more than 8 ranges in one word");
}

static void test_range_at_the_bound_is_fast(void **state)
{
	struct selector *s = must_parse("n[00000-16383]");
	char id[16];
	clock_t t0 = clock();
	for (int i = 0; i < 20000; i++) {
		snprintf(id, sizeof(id), "n%05d", i);
		assert_int_equal(selector_match(s, id, NULL), i < 16384);
	}
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
	selector_free(s);
}

static void test_star_matches_every_host(void **state)
{
	assert_int_equal(sel("*", "a", "b", NULL), 1);
	assert_int_equal(sel("*", NULL, NULL, NULL), 1);
	assert_int_equal(sel("*", "", "", "{}"), 1);
	assert_int_equal(sel("* and role=web", "a", "b", "{\"role\":\"db\"}"), 0);
	assert_int_equal(sel("web-*", NULL, NULL, NULL), 0);
}

static void test_match_key_value(void **state)
{
	const char *h = "{\"role\":\"web\",\"dc\":\"sh\",\"os\":\"debian 12\",\"os.family\":"
	                "\"debian\",\"cpus\":8,\"virtual\":true,\"load\":0.1,\"disks\":[1],"
	                "\"empty\":\"\",\"none\":null}";
	assert_int_equal(sel("role=web", "i", "h", h), 1);
	assert_int_equal(sel("role=db", "i", "h", h), 0);
	assert_int_equal(sel("role=w*", "i", "h", h), 1);
	assert_int_equal(sel("role=WEB", "i", "h", h), 0); /* values keep their case */
	assert_int_equal(sel("os=debian*", "i", "h", h), 1);
	assert_int_equal(sel("os=\"debian 12\"", "i", "h", h), 1);
	assert_int_equal(sel("os=debian", "i", "h", h), 0);
	assert_int_equal(sel("os.family=debian", "i", "h", h), 1);
	assert_int_equal(sel("cpus=8", "i", "h", h), 1);
	assert_int_equal(sel("cpus=1*", "i", "h", h), 0);
	assert_int_equal(sel("virtual=true", "i", "h", h), 1);
	assert_int_equal(sel("load=0.1", "i", "h", h), 1);
	assert_int_equal(sel("empty=\"\"", "i", "h", h), 1);
	assert_int_equal(sel("empty=*", "i", "h", h), 1);
	/* arrays, objects and null count as missing */
	assert_int_equal(sel("disks=*", "i", "h", h), 0);
	assert_int_equal(sel("none=*", "i", "h", h), 0);
	assert_int_equal(sel("none!=x", "i", "h", h), 1);
}

static void test_not_equal_and_missing_keys(void **state)
{
	const char *h = "{\"role\":\"web\",\"dc\":\"sh\"}";
	assert_int_equal(sel("dc!=sh", "i", "h", h), 0);
	assert_int_equal(sel("dc!=bj", "i", "h", h), 1);
	assert_int_equal(sel("dc!=s*", "i", "h", h), 0);
	/* a host without the key does not have that value: != matches, = does not */
	assert_int_equal(sel("rack!=r1", "i", "h", h), 1);
	assert_int_equal(sel("rack=r1", "i", "h", h), 0);
	assert_int_equal(sel("rack=*", "i", "h", h), 0);
	assert_int_equal(sel("rack!=*", "i", "h", h), 1);
	/* no attrs at all, or attrs that are not an object */
	assert_int_equal(sel("rack!=r1", "i", "h", NULL), 1);
	assert_int_equal(sel("rack=r1", "i", "h", NULL), 0);
	assert_int_equal(sel("rack!=r1", "i", "h", "[1]"), 1);
}

static void test_glob_escapes_in_values(void **state)
{
	const char *h = "{\"tag\":\"a*b\",\"path\":\"/srv/x\"}";
	assert_int_equal(sel("tag=\"a\\\\*b\"", "i", "h", h), 1); /* \* is a literal star */
	assert_int_equal(sel("tag=\"a\\\\*b\"", "i", "h", "{\"tag\":\"axb\"}"), 0);
	assert_int_equal(sel("path=/srv/*", "i", "h", h), 1); /* '*' crosses '/' */
}

static void test_and_binds_tighter_than_or(void **state)
{
	const char *web_sh = "{\"role\":\"web\",\"dc\":\"sh\"}";
	const char *db_bj = "{\"role\":\"db\",\"dc\":\"bj\"}";
	const char *web_bj = "{\"role\":\"web\",\"dc\":\"bj\"}";
	/* role=db or (role=web and dc=sh) */
	const char *s = "role=db or role=web and dc=sh";
	assert_int_equal(sel(s, "i", "h", web_sh), 1);
	assert_int_equal(sel(s, "i", "h", db_bj), 1);
	assert_int_equal(sel(s, "i", "h", web_bj), 0);
	/* (role=web and dc!=sh) or db-* */
	s = "role=web and dc!=sh or db-*";
	assert_int_equal(sel(s, "web-1", "h", web_sh), 0);
	assert_int_equal(sel(s, "web-1", "h", web_bj), 1);
	assert_int_equal(sel(s, "db-1", "h", web_sh), 1);
	/* a failing first group does not spoil a later one, and the last group counts */
	s = "role=x and dc=sh or role=web and dc=bj or role=db";
	assert_int_equal(sel(s, "i", "h", web_bj), 1);
	assert_int_equal(sel(s, "i", "h", db_bj), 1);
	assert_int_equal(sel(s, "i", "h", web_sh), 0);
	assert_int_equal(sel("a and a*", "a", "b", NULL), 1);
	assert_int_equal(sel("a and b", "a", "b", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_is_canonical),
	    cmocka_unit_test(test_format_quotes_what_needs_it),
	    cmocka_unit_test(test_key_callback_sees_each_key),
	    cmocka_unit_test(test_errors_name_the_column),
	    cmocka_unit_test(test_errors_in_keys),
	    cmocka_unit_test(test_unknown_key_names_key_and_column),
	    cmocka_unit_test(test_key_callback_failure_is_passed_up),
	    cmocka_unit_test(test_quoted_string_errors),
	    cmocka_unit_test(test_unicode_columns_count_characters),
	    cmocka_unit_test(test_long_words_are_cut_in_messages),
	    cmocka_unit_test(test_value_and_host_word_limits),
	    cmocka_unit_test(test_small_or_missing_msg_buffer_is_safe),
	    cmocka_unit_test(test_null_arguments),
	    cmocka_unit_test(test_text_limit),
	    cmocka_unit_test(test_term_limit),
	    cmocka_unit_test(test_huge_inputs_rejected_fast),
	    cmocka_unit_test(test_worst_case_parse_is_fast),
	    cmocka_unit_test(test_random_garbage),
	    cmocka_unit_test(test_random_token_soup),
	    cmocka_unit_test(test_bare_word_matches_only_the_accepted_id),
	    cmocka_unit_test(test_ranges_expand_with_padding),
	    cmocka_unit_test(test_ranges_keep_their_form),
	    cmocka_unit_test(test_range_errors_name_the_column),
	    cmocka_unit_test(test_range_at_the_bound_is_fast),
	    cmocka_unit_test(test_star_matches_every_host),
	    cmocka_unit_test(test_match_key_value),
	    cmocka_unit_test(test_not_equal_and_missing_keys),
	    cmocka_unit_test(test_glob_escapes_in_values),
	    cmocka_unit_test(test_and_binds_tighter_than_or),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
