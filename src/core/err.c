/* Error code table: one row per code, the wire name and the HTTP status. */
#include "err.h"

#include <string.h>

static const struct {
	int code;
	const char *name;
	unsigned status;
} err_table[] = {
    {OUTPOST_E_BAD_JSON, "bad_json", 400},
    {OUTPOST_E_BAD_ARGS, "bad_args", 400},
    {OUTPOST_E_UNKNOWN_PLUGIN, "unknown_plugin", 404},
    {OUTPOST_E_UNKNOWN_OP, "unknown_op", 404},
    {OUTPOST_E_TOO_LARGE, "too_large", 413},
    {OUTPOST_E_TIMEOUT, "timeout", 504},
    {OUTPOST_E_BUSY, "busy", 503},
    {OUTPOST_E_FORBIDDEN, "forbidden", 403},
    {OUTPOST_E_INTERNAL, "internal", 500},
    {OUTPOST_E_NOT_FOUND, "not_found", 404},
    {OUTPOST_E_CONFLICT, "conflict", 409},
    {OUTPOST_E_LOST, "lost", 409},
    {OUTPOST_E_UNAUTHORIZED, "unauthorized", 401},
    {OUTPOST_E_UNAVAILABLE, "unavailable", 503},
};

#define ERR_N (sizeof(err_table) / sizeof(err_table[0]))

const char *err_name(int code)
{
	for (size_t i = 0; i < ERR_N; i++)
		if (err_table[i].code == code)
			return err_table[i].name;
	return "internal";
}

unsigned err_http_status(int code)
{
	for (size_t i = 0; i < ERR_N; i++)
		if (err_table[i].code == code)
			return err_table[i].status;
	return 500;
}

int err_from_name(const char *name)
{
	for (size_t i = 0; name && i < ERR_N; i++)
		if (strcmp(err_table[i].name, name) == 0)
			return err_table[i].code;
	return OUTPOST_E_INTERNAL;
}
