/* Label regexes for metric queries: RE2's syntax and its guarantee of matching in time linear
 * in the input (no back-references, no catastrophic backtracking), fully anchored as
 * Prometheus anchors them. A C face on the C++ library (re.cc); loop thread or any thread. */
#ifndef OUTPOST_HUB_RE_H
#define OUTPOST_HUB_RE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct re;

/* Compiles pattern (RE2 syntax) to match whole strings. 0, or OUTPOST_E_BAD_ARGS with RE2's
 * reason in msg (a pattern that does not parse, or whose program would need more than the
 * memory bound), or OUTPOST_E_INTERNAL (out of memory). */
int re_compile(const char *pattern, struct re **out, char *msg, size_t msglen);
/* 1 when all of s matches, else 0. */
int re_match(const struct re *r, const char *s);
void re_free(struct re *r); /* NULL ok */

#ifdef __cplusplus
}
#endif

#endif
