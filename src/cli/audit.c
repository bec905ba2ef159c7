/* outpost audit: the hub's audit log, newest first. */
#include "cli.h"
#include "output.h"

#include <stdlib.h>

/* The entry's time, under the names a store may give it. */
static int64_t audit_time(const json_t *e)
{
	static const char *const keys[] = {"at_ms", "time_ms", "created_ms"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_is_integer(json_object_get(e, keys[i])))
			return json_integer_value(json_object_get(e, keys[i]));
	return 0;
}

static int audit_row(const json_t *e, const void *arg, struct buf *scratch, const char **cells)
{
	const json_t *d = json_object_get(e, "detail");

	if (out_time(&scratch[0], audit_time(e)) < 0)
		return -1;
	if (d && !json_is_null(d)) {
		char *detail = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
		int rc = detail ? buf_puts(&scratch[1], detail) : -1;
		free(detail);
		if (rc < 0)
			return -1;
	}
	cells[0] = scratch[0].data;
	cells[1] = json_string_value(json_object_get(e, "actor"));
	cells[2] = json_string_value(json_object_get(e, "action"));
	cells[3] = json_string_value(json_object_get(e, "target"));
	cells[4] = scratch[1].data;
	return 0;
}

int audit_ls(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"};

	return cli_list_limit(c, argc, argv, "/api/v1/audit", 5, head, audit_row);
}
