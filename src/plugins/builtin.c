/* The built-in plugins, in init order. */
#include "builtin.h"

const struct outpost_plugin *const builtin_plugins[] = {
    &outpost_plugin_sys,       &outpost_plugin_exec,
    &outpost_plugin_file,      &outpost_plugin_metrics,
    &outpost_plugin_security,  &outpost_plugin_cleanup,
    &outpost_plugin_guard,     &outpost_plugin_vm,
    &outpost_plugin_supervise, NULL,
};
