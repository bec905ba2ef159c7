/* An example shared-object plugin. Build it against include/outpost/plugin.h, drop the .so in
 * the agent's plugin_dir (owned by root, not group/world-writable), and restart the agent:
 *   cc -shared -fPIC -o hello.so hello_so.c $(pkg-config --cflags jansson) -I/path/to/include
 * Call it: curl -d '{"args":{"who":"ops"}}' http://127.0.0.1:7070/v1/hello/greet */
#include <outpost/plugin.h>
#include <stdio.h>
#include <string.h>

static int hello_init(struct outpost_plugin_ctx *pc, void **state)
{
	json_t *greeting = json_object_get(outpost_plugin_config(pc), "greeting");
	*state = NULL;
	outpost_log(pc, OUTPOST_LOG_INFO, "hello plugin ready (greeting: %s)",
	            json_is_string(greeting) ? json_string_value(greeting) : "hello");
	return 0;
}

static int hello_greet(struct outpost_call *call, json_t *args, json_t **result)
{
	const char *who = json_string_value(json_object_get(args, "who"));
	json_t *g = json_object_get(outpost_call_config(call), "greeting");
	char text[256];

	if (strlen(who) > 100)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS, "who: at most 100 bytes");
	snprintf(text, sizeof(text), "%s, %s", json_is_string(g) ? json_string_value(g) : "hello",
	         who);
	*result = json_pack("{s:s}", "greeting", text);
	return *result ? 0 : OUTPOST_E_INTERNAL;
}

static const struct outpost_arg greet_args[] = {
    {"who", OUTPOST_ARG_STRING, 1, "whom to greet"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op hello_ops[] = {
    {"greet", hello_greet, greet_args, 0, "returns a greeting"},
    {NULL, NULL, NULL, 0, NULL},
};

static const struct outpost_plugin hello_plugin = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "hello",
    .version = "1.0",
    .init = hello_init,
    .fini = NULL,
    .ops = hello_ops,
};

const struct outpost_plugin *outpost_plugin_entry(void);
const struct outpost_plugin *outpost_plugin_entry(void)
{
	return &hello_plugin;
}
