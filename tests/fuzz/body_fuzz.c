/* The agent's request bodies: what POST /v1/<plugin>/<op> does with its bytes before a handler
 * sees them. wire_parse (depth limit, duplicates), api_body_check (args, id, timeout_ms), then
 * the dispatcher's checks: the call id and wire_check_args against every op of every built-in
 * plugin. Also holds wire_scan_object (the agent's spool check) to wire_parse: an object the
 * parser takes must pass the scan. */
#include "fuzz.h"

#include "agent/agent_impl.h"
#include "core/wire.h"
#include "plugins/builtin.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char msg[256];
	json_t *body = NULL, *args;
	const char *id;

	if (wire_parse(text, size, WIRE_MAX_DEPTH_DEFAULT, &body, msg, sizeof(msg)) < 0) {
		FUZZ_CHECK(body == NULL && msg[0]);
		return 0;
	}
	if (json_is_object(body))
		FUZZ_CHECK(wire_scan_object(text, size, WIRE_MAX_DEPTH_DEFAULT, "args") >= 0);
	if (api_body_check(body, msg, sizeof(msg)) < 0) {
		FUZZ_CHECK(msg[0]);
		goto out;
	}
	id = json_string_value(json_object_get(body, "id"));
	if (id && wire_id_ok(id))
		FUZZ_CHECK(strlen(id) >= 1 && strlen(id) <= 128);
	args = json_object_get(body, "args");
	if (!args)
		goto out;
	for (size_t i = 0; builtin_plugins[i]; i++)
		for (const struct outpost_op *op = builtin_plugins[i]->ops; op->name; op++) {
			msg[0] = '\0';
			if (wire_check_args(op->args, args, msg, sizeof(msg)) < 0)
				FUZZ_CHECK(msg[0]);
		}
	/* What the handlers will do with the args: print them back. */
	free(wire_dump(args));
out:
	json_decref(body);
	return 0;
}
