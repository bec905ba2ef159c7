/* Man pages in roff, written from the same text the programs print for --help, so the two
 * cannot disagree: `outpost --help-man`, `outpost-agent --help-man`, `outpost-hub --help-man`
 * (meson builds them into the packages' man pages). */
#ifndef OUTPOST_MANPAGE_H
#define OUTPOST_MANPAGE_H

#include <stdio.h>

/* .TH and the NAME section: "name \- summary". */
void manpage_head(FILE *f, const char *name, const char *section, const char *summary);
/* A section heading (.SH) or subsection (.SS). */
void manpage_section(FILE *f, const char *macro, const char *title);
/* Plain text as one paragraph, roff's special characters escaped; "\n" breaks the line. */
void manpage_text(FILE *f, const char *text);
/* One line of text, escaped, with no paragraph break before it. */
void manpage_line(FILE *f, const char *text);
/* Options in --help layout, each "  TERM  description" with continuation lines indented
 * deeper, as tagged paragraphs (.TP, the term in bold). A line with no description is a
 * term alone. */
void manpage_options(FILE *f, const char *help);

/* The option names ("-t", "--target") in the terms of help text in --help layout, each
 * followed by a space, appended to out (size outlen, always terminated). */
void manpage_option_names(const char *help, char *out, size_t outlen);

#endif
