/* Man pages from --help text: see manpage.h. */
#include "manpage.h"

#include <ctype.h>
#include <string.h>

/* Writes n bytes of s escaped for roff; at_line_start: s begins a line of the page. */
static void manpage_escape(FILE *f, const char *s, size_t n, int at_line_start)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (at_line_start && (ch == '.' || ch == '\''))
			fputs("\\&", f);
		at_line_start = 0;
		if (ch == '\\')
			fputs("\\e", f);
		else if (ch == '-')
			fputs("\\-", f);
		else
			fputc(ch, f);
		if (ch == '\n')
			at_line_start = 1;
	}
}

void manpage_head(FILE *f, const char *name, const char *section, const char *summary)
{
	fprintf(f, ".TH %s %s \"\" \"outpost %s\" \"Outpost\"\n.SH NAME\n", name, section,
	        OUTPOST_VERSION);
	manpage_escape(f, name, strlen(name), 1);
	fputs(" \\- ", f);
	manpage_escape(f, summary, strlen(summary), 0);
	fputc('\n', f);
}

void manpage_section(FILE *f, const char *macro, const char *title)
{
	fprintf(f, ".%s \"", macro);
	manpage_escape(f, title, strlen(title), 0);
	fputs("\"\n", f);
}

void manpage_line(FILE *f, const char *text)
{
	manpage_escape(f, text, strlen(text), 1);
	fputc('\n', f);
}

void manpage_text(FILE *f, const char *text)
{
	const char *p = text;

	fputs(".PP\n", f);
	while (*p) {
		size_t n = strcspn(p, "\n");
		manpage_escape(f, p, n, 1);
		fputc('\n', f);
		p += n;
		if (*p == '\n' && *++p)
			fputs(".br\n", f);
	}
}

/* One line of help layout: its term and description (either may be empty). Returns 1 for a
 * new entry (two spaces, then the term), 0 for a continuation (deeper), -1 for other text. */
static int manpage_split(const char *line, size_t len, size_t *term_len, const char **desc,
                         size_t *desc_len)
{
	size_t i = 0, t;

	while (i < len && line[i] == ' ')
		i++;
	if (i == len)
		return -1;
	if (i != 2) {
		*term_len = 0;
		*desc = line + i;
		*desc_len = len - i;
		return i > 2 ? 0 : -1;
	}
	/* The term ends at two spaces in a row (or the end of the line). */
	for (t = 2; t < len && !(line[t] == ' ' && t + 1 < len && line[t + 1] == ' '); t++)
		;
	*term_len = t - 2;
	while (t < len && line[t] == ' ')
		t++;
	*desc = line + t;
	*desc_len = len - t;
	return 1;
}

void manpage_options(FILE *f, const char *help)
{
	const char *p = help;

	while (*p) {
		size_t len = strcspn(p, "\n"), term_len = 0, desc_len = 0;
		const char *desc = NULL;
		int kind = manpage_split(p, len, &term_len, &desc, &desc_len);

		if (kind == 1) {
			fputs(".TP\n\\fB", f);
			manpage_escape(f, p + 2, term_len, 0);
			fputs("\\fR\n", f);
		} else if (kind < 0 && desc_len) {
			fputs(".PP\n", f);
		}
		if (desc_len) {
			manpage_escape(f, desc, desc_len, 1);
			fputc('\n', f);
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

void manpage_option_names(const char *help, char *out, size_t outlen)
{
	const char *p = help;
	size_t used = strlen(out);

	while (*p) {
		size_t len = strcspn(p, "\n"), term_len = 0, desc_len = 0;
		const char *desc = NULL;

		if (manpage_split(p, len, &term_len, &desc, &desc_len) == 1) {
			/* Words of the term that start with '-': "-t, --target SELECTOR". */
			for (size_t i = 2; i < 2 + term_len;) {
				size_t w = i;
				while (w < 2 + term_len && p[w] != ' ' && p[w] != ',' &&
				       p[w] != '|')
					w++;
				if (p[i] == '-' && w - i > 1 &&
				    isalnum((unsigned char)p[i + 1 + (p[i + 1] == '-')]) &&
				    used + (w - i) + 2 <= outlen) {
					memcpy(out + used, p + i, w - i);
					used += w - i;
					out[used++] = ' ';
					out[used] = '\0';
				}
				i = w + 1;
			}
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}
