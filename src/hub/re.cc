// The C face of RE2 for the hub's label matchers: see re.h. Exceptions never cross into C
// (RE2 reports errors through ok(); new is nothrow).
#include "re.h"

#include <outpost/plugin.h>
#include <re2/re2.h>

#include <cstdio>
#include <new>

// Bounds what one pattern may cost to compile and hold (RE2's default is 8 MiB): a matcher's
// pattern is at most 1 KiB, and a query has at most 16 of them.
static const int64_t RE_MAX_MEM = 1 << 20;

struct re {
	RE2 *re2;
};

extern "C" int re_compile(const char *pattern, struct re **out, char *msg, size_t msglen)
{
	RE2::Options opt;
	struct re *r;

	*out = nullptr;
	opt.set_log_errors(false);
	opt.set_max_mem(RE_MAX_MEM);
	r = new (std::nothrow) struct re;
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->re2 = new (std::nothrow) RE2(pattern, opt);
	if (!r->re2) {
		delete r;
		return OUTPOST_E_INTERNAL;
	}
	if (!r->re2->ok()) {
		std::snprintf(msg, msglen, "%s", r->re2->error().c_str());
		re_free(r);
		return OUTPOST_E_BAD_ARGS;
	}
	*out = r;
	return 0;
}

extern "C" int re_match(const struct re *r, const char *s)
{
	return RE2::FullMatch(s, *r->re2) ? 1 : 0;
}

extern "C" void re_free(struct re *r)
{
	if (!r)
		return;
	delete r->re2;
	delete r;
}
