/* The table of built-in plugins, in init order. Adding a plugin: its own file (listed in
 * meson.build), its extern here and one line in builtin.c's table. */
#ifndef OUTPOST_PLUGINS_BUILTIN_H
#define OUTPOST_PLUGINS_BUILTIN_H

#include <outpost/plugin.h>

extern const struct outpost_plugin outpost_plugin_sys;
extern const struct outpost_plugin outpost_plugin_exec;
extern const struct outpost_plugin outpost_plugin_file;
extern const struct outpost_plugin outpost_plugin_security;
extern const struct outpost_plugin outpost_plugin_metrics;
extern const struct outpost_plugin outpost_plugin_cleanup;
extern const struct outpost_plugin outpost_plugin_guard;
extern const struct outpost_plugin outpost_plugin_vm;
extern const struct outpost_plugin outpost_plugin_supervise;

/* NULL-terminated. */
extern const struct outpost_plugin *const builtin_plugins[];

#endif
