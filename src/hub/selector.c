/* Target selectors: parse, match and print. A selector is kept flat, in disjunctive normal
 * form: a list of terms where some terms start a new 'or' group, since 'and' binds tighter and
 * there are no parentheses. */
#include "selector.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <outpost/plugin.h>

#include "core/buf.h"
#include "core/wire.h"

enum term_kind {
	TERM_HOST, /* value is a glob (or node-set range) on the host id the hub accepted */
	TERM_EQ,   /* key=value */
	TERM_NE,   /* key!=value */
};

struct term {
	enum term_kind kind;
	int new_group; /* 1 when an 'or' comes before this term (and for the first term) */
	char *key;     /* NULL for TERM_HOST; owned */
	char *value;   /* owned; as written, ranges unexpanded */
	/* A value with node-set ranges ("web[01-10]") is the set of its expansions: names is the
	 * sorted array (owned) when it has any range, else NULL. literal: no glob character
	 * outside the ranges, so a name matches by equality (binary search). */
	char **names;
	size_t nnames;
	int literal;
};

struct selector {
	size_t n;
	size_t nnames; /* expansions over all terms, bounded by SELECTOR_MAX_NAMES */
	struct term terms[SELECTOR_MAX_TERMS];
};

enum tok_type { T_END, T_WORD, T_STRING, T_EQ, T_NE, T_CHAR };

/* A token is only a span of the text; quoted strings are checked when lexed and decoded when
 * used, so peeking ahead costs no allocation. */
struct tok {
	enum tok_type type;
	size_t start, end;
};

struct parser {
	const char *s;
	selector_key_fn key_ok;
	void *arg;
	char *msg;
	size_t msglen;
	struct selector *sel;
};

#define SHOW_MAX 40 /* bytes of a user's word echoed in a message */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Characters of an unquoted word: a host id, a hostname glob, a key or a value. */
static int is_word_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("_.-*?[]:/@+", c) != NULL);
}

static int is_keyword(const char *s, size_t len)
{
	return (len == 3 && memcmp(s, "and", 3) == 0) || (len == 2 && memcmp(s, "or", 2) == 0);
}

/* 1-based column of byte offset off, counting characters rather than UTF-8 bytes. */
static size_t column(const char *s, size_t off)
{
	size_t col = 1;

	for (size_t i = 0; i < off; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			col++;
	return col;
}

static int fail(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->msg || p->msglen == 0)
		return OUTPOST_E_BAD_ARGS;
	n = snprintf(p->msg, p->msglen, "at column %zu: ", column(p->s, off));
	if (n >= 0 && (size_t)n < p->msglen) {
		va_start(ap, fmt);
		vsnprintf(p->msg + n, p->msglen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return OUTPOST_E_BAD_ARGS;
}

/* A word of the user's, cut short for a message. Only unquoted words are shown, and those are
 * printable ASCII by construction. */
static const char *shown(const char *s, size_t len, char out[SHOW_MAX + 4])
{
	if (len > SHOW_MAX) {
		memcpy(out, s, SHOW_MAX);
		memcpy(out + SHOW_MAX, "...", 4);
	} else {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	return out;
}

/* Reads the token at or after pos. Fails only on a malformed quoted string; any other stray
 * character comes back as T_CHAR for the parser to explain in context. */
static int lex(struct parser *p, size_t pos, struct tok *t)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i;

	while (is_space(s[pos]))
		pos++;
	t->start = pos;
	if (s[pos] == '\0') {
		t->type = T_END;
		t->end = pos;
		return 0;
	}
	if (s[pos] == '=') {
		t->type = T_EQ;
		t->end = pos + 1;
		return 0;
	}
	if (s[pos] == '!' && s[pos + 1] == '=') {
		t->type = T_NE;
		t->end = pos + 2;
		return 0;
	}
	if (is_word_char(s[pos])) {
		/* '!' right after '[' is glob negation ("web-[!0]*"), not the start of '!='; ','
		 * inside a node-set range ("web[1-3,7]") is part of the word. */
		int in_range = 0;
		for (i = pos; is_word_char(s[i]) || (s[i] == '!' && i > pos && s[i - 1] == '[') ||
		              (s[i] == ',' && in_range);
		     i++) {
			if (s[i] == '[' && is_digit(s[i + 1]))
				in_range = 1;
			else if (s[i] == ']' ||
			         (in_range && !is_digit(s[i]) && s[i] != '-' && s[i] != ','))
				in_range = 0;
		}
		t->type = T_WORD;
		t->end = i;
		return 0;
	}
	if (s[pos] != '"') {
		t->type = T_CHAR;
		t->end = pos + 1;
		return 0;
	}
	for (i = pos + 1;;) {
		size_t n;

		if (s[i] == '\0')
			return fail(p, pos, "unterminated quoted string: add the closing '\"'");
		if (s[i] == '"')
			break;
		if (s[i] == '\\') {
			if (s[i + 1] == '\0')
				return fail(p, pos,
				            "unterminated quoted string: add the closing '\"'");
			if (s[i + 1] != '"' && s[i + 1] != '\\')
				return fail(p, i,
				            "unknown escape in quoted string: only \\\" and \\\\ "
				            "are allowed");
			i += 2;
			continue;
		}
		if (s[i] < 0x20 || s[i] == 0x7f)
			return fail(p, i, "control character 0x%02x in quoted string", s[i]);
		n = wire_utf8_len((const char *)s + i, 4); /* stops at the NUL */
		if (n == 0)
			return fail(p, i, "invalid UTF-8 in quoted string");
		i += n;
	}
	t->type = T_STRING;
	t->end = i + 1;
	return 0;
}

/* Explains a character that cannot stand where it is. */
static int fail_char(struct parser *p, size_t off)
{
	unsigned char c = (unsigned char)p->s[off];

	switch (c) {
	case ',':
		return fail(p, off, "',' does not separate terms: join them with 'or' or 'and'");
	case '(':
	case ')':
		return fail(p, off, "parentheses are not supported: 'and' binds tighter than 'or'");
	case '&':
		return fail(p, off, "'&' is not an operator: join terms with 'and'");
	case '|':
		return fail(p, off, "'|' is not an operator: join terms with 'or'");
	case '!':
		return fail(p, off, "'!' stands only in '!=': write key!=value");
	case '\'':
		return fail(p, off, "single quotes are not supported: use double quotes");
	case '\\':
		return fail(p, off, "'\\' is allowed only inside double quotes");
	}
	if (c >= 0x80)
		return fail(p, off,
		            "non-ASCII character outside quotes: put the value in "
		            "double quotes");
	if (c < 0x20 || c == 0x7f)
		return fail(p, off, "unexpected control character 0x%02x", c);
	return fail(p, off, "unexpected character '%c'", c);
}

/* Copies the text of a word or quoted string; NULL when memory runs out. */
static char *tok_text(const struct parser *p, const struct tok *t, size_t *lenp)
{
	const char *s = p->s;
	size_t i, j, end;
	char *out;

	if (t->type == T_WORD) {
		*lenp = t->end - t->start;
		out = malloc(*lenp + 1);
		if (out) {
			memcpy(out, s + t->start, *lenp);
			out[*lenp] = '\0';
		}
		return out;
	}
	end = t->end - 1; /* the closing quote */
	out = malloc(end - t->start);
	if (!out)
		return NULL;
	for (i = t->start + 1, j = 0; i < end; i++) {
		if (s[i] == '\\')
			i++; /* lex() let only \" and \\ through */
		out[j++] = s[i];
	}
	out[j] = '\0';
	*lenp = j;
	return out;
}

static int check_key(struct parser *p, const struct tok *t)
{
	const char *k = p->s + t->start;
	size_t len = t->end - t->start;
	char show[SHOW_MAX + 4];

	if (len > SELECTOR_MAX_KEY)
		return fail(p, t->start, "key '%s' is %zu characters long, the limit is %d",
		            shown(k, len, show), len, SELECTOR_MAX_KEY);
	if (!is_alpha((unsigned char)k[0]) && k[0] != '_')
		goto bad;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '.' && c != '-')
			goto bad;
	}
	return 0;
bad:
	return fail(p, t->start,
	            "invalid key '%s': a key starts with a letter or '_' and holds only letters, "
	            "digits, '_', '.' and '-'",
	            shown(k, len, show));
}

static int add_term(struct parser *p, const struct tok *at, enum term_kind kind, int new_group,
                    char *key, char *value)
{
	struct term *t;

	if (p->sel->n == SELECTOR_MAX_TERMS) {
		free(key);
		free(value);
		return fail(p, at->start, "more than %d terms: group the hosts with a label",
		            SELECTOR_MAX_TERMS);
	}
	t = &p->sel->terms[p->sel->n++];
	t->kind = kind;
	t->new_group = new_group;
	t->key = key;
	t->value = value;
	t->names = NULL;
	t->nnames = 0;
	t->literal = 0;
	return 0;
}

static int oom(struct parser *p)
{
	if (p->msg && p->msglen)
		snprintf(p->msg, p->msglen, "out of memory");
	return OUTPOST_E_INTERNAL;
}

/* ---- node-set ranges: "web[01-10]", "web[1-3,7]", "rack[1-2]-n[01-04]" ----
 * A '[' followed by a digit in an unquoted word opens a range, as in ClusterShell and pdsh;
 * any other bracket is a glob class ("[!0]", "[a-f]"). A range whose first number has leading
 * zeros is padded to that width. The expansions of a selector are bounded in number
 * (SELECTOR_MAX_NAMES) and bytes (SELECTOR_MAX_NAME_BYTES), checked before any is made. */
#define RANGE_MAX_GROUPS 8 /* ranges in one word */
#define RANGE_MAX_ITEMS 64 /* comma-separated items in one range */
#define RANGE_MAX_DIGITS 9 /* digits of a number, so sums cannot overflow */

struct ritem {
	unsigned long lo, hi;
	int width; /* zero-padded width, 0 for none */
};

struct rgroup {
	size_t open, close; /* offsets of '[' and ']' in the word */
	size_t nitems;
	struct ritem items[RANGE_MAX_ITEMS];
};

static int range_num(struct parser *p, const char *v, size_t base, size_t *i, unsigned long *n,
                     int *width)
{
	size_t st = *i;

	if (!is_digit((unsigned char)v[st])) {
		if (v[st] == '\0')
			return fail(p, base + st, "unterminated range: close it with ']'");
		return fail(p, base + st, "expected a number in the range, found '%c'", v[st]);
	}
	for (*n = 0; is_digit((unsigned char)v[*i]); (*i)++) {
		if (*i - st == RANGE_MAX_DIGITS)
			return fail(p, base + st, "number in a range longer than %d digits",
			            RANGE_MAX_DIGITS);
		*n = *n * 10 + (unsigned long)(v[*i] - '0');
	}
	*width = v[st] == '0' && *i - st > 1 ? (int)(*i - st) : 0;
	return 0;
}

/* Reads one range starting at v[*i] == '['; *size gets its number of values. */
static int range_group(struct parser *p, const char *v, size_t base, size_t *i, struct rgroup *r,
                       unsigned long *size)
{
	int rc, w;

	r->open = (*i)++;
	r->nitems = 0;
	*size = 0;
	for (;;) {
		size_t at = *i;
		struct ritem *it;

		if (r->nitems == RANGE_MAX_ITEMS)
			return fail(p, base + at, "more than %d items in one range",
			            RANGE_MAX_ITEMS);
		it = &r->items[r->nitems++];
		if ((rc = range_num(p, v, base, i, &it->lo, &it->width)) < 0)
			return rc;
		it->hi = it->lo;
		if (v[*i] == '-') {
			(*i)++;
			if ((rc = range_num(p, v, base, i, &it->hi, &w)) < 0)
				return rc;
			if (it->hi < it->lo)
				return fail(
				    p, base + at,
				    "range %lu-%lu runs backwards: write the smaller number "
				    "first",
				    it->lo, it->hi);
		}
		*size += it->hi - it->lo + 1;
		if (v[*i] == ',') {
			(*i)++;
			continue;
		}
		if (v[*i] == ']')
			break;
		if (v[*i] == '\0')
			return fail(p, base + r->open, "unterminated range: close it with ']'");
		return fail(p, base + *i,
		            "unexpected '%c' in a range: a range holds numbers, '-' and ','",
		            v[*i]);
	}
	r->close = *i;
	return 0;
}

/* Appends every expansion of v from group gi on (text before it starts at from). */
static int range_gen(struct buf *b, const char *v, const struct rgroup *g, size_t ng, size_t gi,
                     size_t from, char **names, size_t *n)
{
	size_t stop = gi < ng ? g[gi].open : strlen(v), len;

	if (buf_append(b, v + from, stop - from) < 0)
		return -1;
	if (gi == ng) {
		names[*n] = strdup(b->data);
		return names[(*n)++] ? 0 : -1;
	}
	len = b->len;
	for (size_t k = 0; k < g[gi].nitems; k++) {
		const struct ritem *it = &g[gi].items[k];
		for (unsigned long x = it->lo; x <= it->hi; x++) {
			b->len = len;
			if (buf_printf(b, "%0*lu", it->width, x) < 0 ||
			    range_gen(b, v, g, ng, gi + 1, g[gi].close + 1, names, n) < 0)
				return -1;
		}
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands the ranges of t's value, an unquoted word that starts at offset base of the text. */
static int term_expand(struct parser *p, struct term *t, size_t base)
{
	struct rgroup *g;
	const char *v = t->value;
	unsigned long count = 1, size;
	size_t ng = 0, n = 0, len = strlen(v);
	struct buf b = BUF_INIT;
	int rc = 0;

	if (!strchr(v, '['))
		return 0;
	g = calloc(RANGE_MAX_GROUPS, sizeof(*g));
	if (!g)
		return oom(p);
	t->literal = 1;
	for (size_t i = 0; v[i]; i++) {
		if (v[i] == '*' || v[i] == '?')
			t->literal = 0;
		if (v[i] != '[')
			continue;
		if (!is_digit((unsigned char)v[i + 1])) {
			t->literal = 0; /* a glob class */
			continue;
		}
		if (ng == RANGE_MAX_GROUPS) {
			rc = fail(p, base + i, "more than %d ranges in one word", RANGE_MAX_GROUPS);
			goto out;
		}
		if ((rc = range_group(p, v, base, &i, &g[ng++], &size)) < 0)
			goto out;
		/* each factor <= SELECTOR_MAX_NAMES before multiplying: no overflow */
		if (size > SELECTOR_MAX_NAMES || (count *= size) > SELECTOR_MAX_NAMES ||
		    p->sel->nnames + count > SELECTOR_MAX_NAMES ||
		    count * (len + 1) > SELECTOR_MAX_NAME_BYTES) {
			rc = fail(p, base + g[ng - 1].open,
			          "ranges expand to more than %d names or %d bytes in one "
			          "selector: select on a label or a glob",
			          SELECTOR_MAX_NAMES, SELECTOR_MAX_NAME_BYTES);
			goto out;
		}
	}
	if (ng == 0)
		goto out;
	t->names = calloc(count, sizeof(*t->names));
	if (!t->names || range_gen(&b, v, g, ng, 0, 0, t->names, &n) < 0) {
		t->nnames = n;
		rc = oom(p);
		goto out;
	}
	t->nnames = n;
	p->sel->nnames += n;
	qsort(t->names, n, sizeof(*t->names), name_cmp);
out:
	buf_free(&b);
	free(g);
	return rc;
}

/* Parses one key=value or key!=value term; kt is the key, op the operator after it. */
static int parse_pair(struct parser *p, const struct tok *kt, const struct tok *op, int new_group,
                      size_t *pos)
{
	const char *opname = op->type == T_EQ ? "=" : "!=";
	char show[SHOW_MAX + 4];
	char *key = NULL, *value = NULL;
	struct tok vt;
	size_t len;
	int rc;

	if (kt->type == T_STRING)
		return fail(p, kt->start, "a key cannot be quoted: write key%svalue", opname);
	rc = check_key(p, kt);
	if (rc < 0)
		return rc;
	rc = lex(p, op->end, &vt);
	if (rc < 0)
		return rc;
	key = tok_text(p, kt, &len);
	if (!key)
		return oom(p);
	if (vt.type != T_WORD && vt.type != T_STRING) {
		if (vt.type == T_EQ)
			rc = fail(p, vt.start,
			          "expected a value after '%s%s', found '=': write '=' "
			          "once",
			          key, opname);
		else if (vt.type == T_END)
			rc = fail(p, vt.start,
			          "expected a value after '%s%s' (\"\" for an empty value)", key,
			          opname);
		else if (vt.type == T_NE)
			rc = fail(p, vt.start, "expected a value after '%s%s', found '!='", key,
			          opname);
		else
			rc = fail_char(p, vt.start);
		goto out;
	}
	value = tok_text(p, &vt, &len);
	if (!value) {
		rc = oom(p);
		goto out;
	}
	if (len > SELECTOR_MAX_VALUE) {
		rc = fail(p, vt.start, "value is %zu bytes long, the limit is %d", len,
		          SELECTOR_MAX_VALUE);
		goto out;
	}
	if (p->key_ok) {
		rc = p->key_ok(p->arg, key);
		if (rc < 0) {
			fail(p, kt->start, "cannot check key '%s' now: try again",
			     shown(key, strlen(key), show));
			goto out;
		}
		if (rc == 0) {
			rc = fail(p, kt->start,
			          "unknown key '%s': no host has a label or fact of "
			          "that name",
			          key);
			goto out;
		}
	}
	rc = add_term(p, kt, op->type == T_EQ ? TERM_EQ : TERM_NE, new_group, key, value);
	key = value = NULL; /* add_term took them, even when it failed */
	if (rc == 0 && vt.type == T_WORD)
		rc = term_expand(p, &p->sel->terms[p->sel->n - 1], vt.start);
	*pos = vt.end;
out:
	free(key);
	free(value);
	return rc;
}

static int parse(struct parser *p)
{
	char show[SHOW_MAX + 4];
	const char *last_kw = NULL;
	int expect_term = 1, new_group = 1;
	struct tok t, next;
	size_t pos = 0, len;
	char *word;
	int rc;

	for (;;) {
		rc = lex(p, pos, &t);
		if (rc < 0)
			return rc;
		len = t.end - t.start;
		if (!expect_term) {
			if (t.type == T_END)
				return 0;
			if (t.type == T_WORD && is_keyword(p->s + t.start, len)) {
				last_kw = len == 3 ? "and" : "or";
				new_group = len == 2;
				expect_term = 1;
				pos = t.end;
				continue;
			}
			if (t.type == T_WORD &&
			    ((len == 3 && !strncasecmp(p->s + t.start, "and", 3)) ||
			     (len == 2 && !strncasecmp(p->s + t.start, "or", 2))))
				return fail(p, t.start, "keywords are lowercase: write '%s'",
				            len == 3 ? "and" : "or");
			if (t.type == T_WORD)
				return fail(p, t.start, "expected 'and' or 'or' before '%s'",
				            shown(p->s + t.start, len, show));
			if (t.type == T_STRING)
				return fail(p, t.start,
				            "expected 'and' or 'or' before the quoted string");
			if (t.type == T_EQ || t.type == T_NE)
				return fail(p, t.start, "expected 'and' or 'or', found '%s'",
				            t.type == T_EQ ? "=" : "!=");
			return fail_char(p, t.start);
		}

		switch (t.type) {
		case T_END:
			if (!last_kw)
				return fail(p, t.start,
				            "empty selector: use '*' to select all hosts");
			return fail(p, t.start, "expected a term after '%s'", last_kw);
		case T_EQ:
		case T_NE:
			return fail(p, t.start, "expected a key before '%s'",
			            t.type == T_EQ ? "=" : "!=");
		case T_CHAR:
			return fail_char(p, t.start);
		case T_WORD:
		case T_STRING:
			break;
		}
		rc = lex(p, t.end, &next);
		if (rc < 0)
			return rc;
		if (next.type == T_EQ || next.type == T_NE) {
			rc = parse_pair(p, &t, &next, new_group, &pos);
			if (rc < 0)
				return rc;
		} else if (t.type == T_WORD && is_keyword(p->s + t.start, len)) {
			if (last_kw)
				return fail(p, t.start, "expected a term after '%s', found '%s'",
				            last_kw, len == 3 ? "and" : "or");
			return fail(p, t.start, "a selector cannot start with '%s'",
			            len == 3 ? "and" : "or");
		} else if (t.type == T_WORD && next.type == T_CHAR &&
		           strchr("!<>~", p->s[next.start])) {
			return fail(p, next.start, "expected '=' or '!=' after key '%s'",
			            shown(p->s + t.start, len, show));
		} else {
			word = tok_text(p, &t, &len);
			if (!word)
				return oom(p);
			if (len > SELECTOR_MAX_VALUE) {
				free(word);
				return fail(p, t.start,
				            "host name is %zu bytes long, the limit is %d", len,
				            SELECTOR_MAX_VALUE);
			}
			rc = add_term(p, &t, TERM_HOST, new_group, NULL, word);
			if (rc == 0 && t.type == T_WORD)
				rc = term_expand(p, &p->sel->terms[p->sel->n - 1], t.start);
			if (rc < 0)
				return rc;
			pos = t.end;
		}
		expect_term = 0;
		new_group = 0;
	}
}

int selector_parse(const char *text, selector_key_fn key_ok, void *arg, struct selector **out,
                   char *msg, size_t msglen)
{
	struct parser p = {text, key_ok, arg, msg, msglen, NULL};
	size_t len;
	int rc;

	if (msg && msglen)
		msg[0] = '\0';
	if (!out)
		return OUTPOST_E_BAD_ARGS;
	*out = NULL;
	if (!text) {
		p.s = "";
		return fail(&p, 0, "no selector given");
	}
	/* Bounded, so a huge input is refused without reading it all. */
	len = strnlen(text, SELECTOR_MAX_TEXT + 1);
	if (len > SELECTOR_MAX_TEXT) {
		if (msg && msglen)
			snprintf(msg, msglen, "at column %d: selector longer than %d bytes",
			         SELECTOR_MAX_TEXT + 1, SELECTOR_MAX_TEXT);
		return OUTPOST_E_BAD_ARGS;
	}
	p.sel = calloc(1, sizeof(*p.sel));
	if (!p.sel)
		return oom(&p);
	rc = parse(&p);
	if (rc < 0) {
		selector_free(p.sel);
		return rc;
	}
	if (msg && msglen)
		msg[0] = '\0';
	*out = p.sel;
	return 0;
}

/* The text of attribute key, or NULL when the host lacks it. tmp holds numbers. */
static const char *attr_text(const json_t *attrs, const char *key, char *tmp, size_t tmplen)
{
	const json_t *v;
	double d;

	if (!attrs || !json_is_object(attrs))
		return NULL;
	v = json_object_get(attrs, key);
	if (!v)
		return NULL;
	switch (json_typeof(v)) {
	case JSON_STRING:
		/* A value with an embedded NUL cannot be matched honestly; treat it as absent. */
		if (strlen(json_string_value(v)) != json_string_length(v))
			return NULL;
		return json_string_value(v);
	case JSON_INTEGER:
		snprintf(tmp, tmplen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return tmp;
	case JSON_REAL:
		/* The shortest text that reads back as the same number: 0.1, not 0.1000...01. */
		d = json_real_value(v);
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(tmp, tmplen, "%.*g", prec, d);
			if (strtod(tmp, NULL) == d)
				break;
		}
		return tmp;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	default:
		return NULL;
	}
}

/* Whether text matches the term's value: a glob, or any of its range expansions. */
static int value_match(const struct term *t, const char *text)
{
	if (!t->names)
		return fnmatch(t->value, text, 0) == 0;
	if (t->literal)
		return bsearch(&text, t->names, t->nnames, sizeof(*t->names), name_cmp) != NULL;
	for (size_t i = 0; i < t->nnames; i++)
		if (fnmatch(t->names[i], text, 0) == 0)
			return 1;
	return 0;
}

/* A bare word matches only the id the hub accepted: what a host reports about itself (its
 * hostname, facts) is matched only when a term names it, so a host cannot claim another's
 * name and receive its tasks. */
static int term_match(const struct term *t, const char *id, const json_t *attrs)
{
	char tmp[64];
	const char *v;

	if (t->kind == TERM_HOST) {
		if (strcmp(t->value, "*") == 0)
			return 1;
		return id && value_match(t, id);
	}
	v = attr_text(attrs, t->key, tmp, sizeof(tmp));
	if (t->kind == TERM_EQ)
		return v && value_match(t, v);
	return !v || !value_match(t, v);
}

int selector_match(const struct selector *s, const char *id, const json_t *attrs)
{
	int group_ok = 1;

	if (!s || s->n == 0)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct term *t = &s->terms[i];

		if (t->new_group && i > 0) {
			if (group_ok)
				return 1;
			group_ok = 1;
		}
		if (group_ok && !term_match(t, id, attrs))
			group_ok = 0;
	}
	return group_ok;
}

/* Appends v bare when it reads back as one word, else in double quotes. */
static int put_value(struct buf *b, const char *v)
{
	size_t len = strlen(v);
	int bare = len > 0 && !is_keyword(v, len);

	/* An unquoted '[' and digit would read back as a range. */
	for (size_t i = 0; bare && i < len; i++)
		bare = is_word_char((unsigned char)v[i]) && !(v[i] == '[' && is_digit(v[i + 1]));
	if (bare)
		return buf_append(b, v, len);
	if (buf_append(b, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if ((v[i] == '"' || v[i] == '\\') && buf_append(b, "\\", 1) < 0)
			return -1;
		if (buf_append(b, v + i, 1) < 0)
			return -1;
	}
	return buf_append(b, "\"", 1);
}

char *selector_format(const struct selector *s)
{
	struct buf b = BUF_INIT;

	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		const struct term *t = &s->terms[i];

		if (i > 0 && buf_puts(&b, t->new_group ? " or " : " and ") < 0)
			goto fail;
		if (t->kind != TERM_HOST &&
		    (buf_puts(&b, t->key) < 0 || buf_puts(&b, t->kind == TERM_EQ ? "=" : "!=") < 0))
			goto fail;
		if (t->names ? buf_puts(&b, t->value) < 0 : put_value(&b, t->value) < 0)
			goto fail;
	}
	return buf_steal(&b);
fail:
	buf_free(&b);
	return NULL;
}

void selector_free(struct selector *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->terms[i].key);
		free(s->terms[i].value);
		for (size_t j = 0; j < s->terms[i].nnames; j++)
			free(s->terms[i].names[j]);
		free(s->terms[i].names);
	}
	free(s);
}
