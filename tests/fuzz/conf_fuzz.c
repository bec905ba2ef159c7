/* The config parser (src/core/conf.c: JSON with comments) and the daemons' checks on what it
 * returns: the text as an agent's and as a hub's config file, over their defaults. */
#include "fuzz.h"

#include "agent/agent.h"
#include "core/conf.h"
#include "hub/hub.h"

#include <string.h>

static void check_as(json_t *defaults, const json_t *file,
                     int (*check)(const json_t *, char *, size_t))
{
	char msg[512] = "";

	FUZZ_CHECK(defaults != NULL);
	if (json_is_object(file) && conf_merge(defaults, file) == 0 &&
	    check(defaults, msg, sizeof(msg)) < 0)
		FUZZ_CHECK(msg[0]);
	json_decref(defaults);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[512] = "";
	json_t *conf = NULL;

	if (size > CONF_MAX_BYTES)
		return 0;
	if (conf_parse((const char *)data, size, "fuzz.conf", &conf, msg, sizeof(msg)) < 0) {
		FUZZ_CHECK(conf == NULL && strncmp(msg, "fuzz.conf", 9) == 0);
		return 0;
	}
	FUZZ_CHECK(conf != NULL);
	check_as(agent_conf_defaults(), conf, agent_conf_check);
	check_as(hub_conf_defaults(), conf, hub_conf_check);
	json_decref(conf);
	return 0;
}
