/* Tests for src/plugins/vm.c: every op through the plugin harness against libvirt's test driver
 * (test:///default: in-process, no hypervisor; it starts with one running VM, "test"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "plugins/builtin.h"

#include <stdio.h>
#include <string.h>

#define TEST_CONF "{\"uri\": \"test:///default\", \"domain_type\": \"test\"}"
#define WEB "{\"name\": \"web\", \"vcpus\": 2, \"memory_mib\": 512, \"disk\": \"/var/lib/x.qcow2\"}"

static int setup(void **state)
{
	*state = plugtest_new(&outpost_plugin_vm, TEST_CONF);
	return 0;
}

static int teardown(void **state)
{
	plugtest_free(*state);
	return 0;
}

/* Calls op; it must succeed. Caller frees. */
static json_t *ok(struct plugtest *t, const char *op, const char *args)
{
	const char *err;
	json_t *res;
	int rc = plugtest_call(t, op, args, &res, &err);

	if (rc != 0)
		fail_msg("vm.%s %s failed (%d): %s", op, args, rc, err);
	assert_true(json_is_object(res));
	return res;
}

/* Calls op; it must fail with code and a message holding want. */
static void err(struct plugtest *t, const char *op, const char *args, int code, const char *want)
{
	const char *msg;
	json_t *res;
	int rc = plugtest_call(t, op, args, &res, &msg);

	if (rc != code || !strstr(msg, want))
		fail_msg("vm.%s %s: got %d '%s', want %d '%s'", op, args, rc, msg, code, want);
	assert_null(res);
}

/* Calls op; it must succeed with "changed" as want. */
static void changed(struct plugtest *t, const char *op, const char *args, int want)
{
	json_t *r = ok(t, op, args);
	if (json_is_true(json_object_get(r, "changed")) != want)
		fail_msg("vm.%s %s: changed %s, want %d", op, args, json_dumps(r, JSON_COMPACT),
		         want);
	json_decref(r);
}

/* The VM of that name in vm.list (new reference), or NULL. */
static json_t *find(struct plugtest *t, const char *name)
{
	json_t *r = ok(t, "list", "{}"), *vm, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(r, "vms"), i,
	                   vm) if (!strcmp(json_string_value(json_object_get(vm, "name")), name))
	    found = json_incref(vm);
	json_decref(r);
	return found;
}

static const char *state_of(struct plugtest *t, const char *name)
{
	static char s[32];
	json_t *vm = find(t, name);

	if (!vm)
		return "absent";
	snprintf(s, sizeof s, "%s", json_string_value(json_object_get(vm, "state")));
	json_decref(vm);
	return s;
}

static json_int_t int_of(struct plugtest *t, const char *name, const char *key)
{
	json_t *vm = find(t, name);
	assert_non_null(vm);
	json_int_t v = json_integer_value(json_object_get(vm, key));
	json_decref(vm);
	return v;
}

static void test_list_shows_the_drivers_vm(void **state)
{
	assert_string_equal(state_of(*state, "test"), "running");
	assert_true(int_of(*state, "test", "vcpus") >= 1);
}

static void test_define_twice_makes_one_vm(void **state)
{
	struct plugtest *t = *state;
	json_t *r = ok(t, "list", "{}");
	size_t before = json_array_size(json_object_get(r, "vms"));
	json_decref(r);

	changed(t, "define", WEB, 1);
	changed(t, "define", WEB, 0);
	r = ok(t, "list", "{}");
	assert_int_equal(json_array_size(json_object_get(r, "vms")), before + 1);
	json_decref(r);
	assert_string_equal(state_of(t, "web"), "shutoff");
	assert_int_equal(int_of(t, "web", "vcpus"), 2);
	assert_int_equal(int_of(t, "web", "memory_mib"), 512);
	err(t, "define", "{\"name\": \"web\", \"vcpus\": 4, \"memory_mib\": 512}",
	    OUTPOST_E_CONFLICT, "vm.set");
}

static void test_life_cycle_is_idempotent(void **state)
{
	struct plugtest *t = *state;

	changed(t, "define", WEB, 1);
	changed(t, "start", "{\"name\": \"web\"}", 1);
	assert_string_equal(state_of(t, "web"), "running");
	changed(t, "start", "{\"name\": \"web\"}", 0);
	err(t, "undefine", "{\"name\": \"web\"}", OUTPOST_E_CONFLICT, "running");

	json_t *r = ok(t, "shutdown", "{\"name\": \"web\", \"timeout_ms\": 2000}");
	assert_true(json_is_true(json_object_get(r, "changed")));
	assert_true(json_is_false(json_object_get(r, "forced")));
	assert_string_equal(json_string_value(json_object_get(r, "state")), "shutoff");
	json_decref(r);
	changed(t, "shutdown", "{\"name\": \"web\"}", 0);

	changed(t, "start", "{\"name\": \"web\"}", 1);
	changed(t, "destroy", "{\"name\": \"web\"}", 1);
	assert_string_equal(state_of(t, "web"), "shutoff");
	changed(t, "destroy", "{\"name\": \"web\"}", 0);

	changed(t, "undefine", "{\"name\": \"web\"}", 1);
	assert_string_equal(state_of(t, "web"), "absent");
	changed(t, "undefine", "{\"name\": \"web\"}", 0);
}

static void test_set_changes_vcpus_and_memory(void **state)
{
	struct plugtest *t = *state;

	changed(t, "define", WEB, 1);
	changed(t, "set", "{\"name\": \"web\", \"vcpus\": 4, \"memory_mib\": 1024}", 1);
	assert_int_equal(int_of(t, "web", "vcpus"), 4);
	assert_int_equal(int_of(t, "web", "memory_mib"), 1024);
	changed(t, "set", "{\"name\": \"web\", \"vcpus\": 4, \"memory_mib\": 1024}", 0);
	changed(t, "set", "{\"name\": \"web\", \"vcpus\": 1, \"memory_mib\": 256}", 1);
	assert_int_equal(int_of(t, "web", "vcpus"), 1);
	assert_int_equal(int_of(t, "web", "memory_mib"), 256);
	/* The define of the VM as it is now is the same VM again. */
	changed(t, "define", "{\"name\": \"web\", \"vcpus\": 1, \"memory_mib\": 256}", 0);
	err(t, "set", "{\"name\": \"web\"}", OUTPOST_E_BAD_ARGS, "give vcpus");
}

static void test_snapshot_create_and_revert(void **state)
{
	struct plugtest *t = *state;

	changed(t, "define", WEB, 1);
	changed(t, "snapshot_create", "{\"name\": \"web\", \"snapshot\": \"clean\"}", 1);
	changed(t, "snapshot_create", "{\"name\": \"web\", \"snapshot\": \"clean\"}", 0);
	json_t *vm = find(t, "web");
	json_t *snaps = json_object_get(vm, "snapshots");
	assert_int_equal(json_array_size(snaps), 1);
	assert_string_equal(json_string_value(json_array_get(snaps, 0)), "clean");
	json_decref(vm);

	/* Taken while shut off: reverting a running VM to it stops the VM. */
	changed(t, "start", "{\"name\": \"web\"}", 1);
	changed(t, "snapshot_revert", "{\"name\": \"web\", \"snapshot\": \"clean\"}", 1);
	assert_string_equal(state_of(t, "web"), "shutoff");
	err(t, "snapshot_revert", "{\"name\": \"web\", \"snapshot\": \"none\"}",
	    OUTPOST_E_NOT_FOUND, "none");
	changed(t, "undefine", "{\"name\": \"web\"}", 1);
}

static void test_unknown_vm_is_not_found(void **state)
{
	struct plugtest *t = *state;
	static const char *calls[][2] = {
	    {"start", "{\"name\": \"nosuch\"}"},
	    {"shutdown", "{\"name\": \"nosuch\"}"},
	    {"destroy", "{\"name\": \"nosuch\"}"},
	    {"set", "{\"name\": \"nosuch\", \"vcpus\": 1}"},
	    {"snapshot_create", "{\"name\": \"nosuch\", \"snapshot\": \"s\"}"},
	    {"snapshot_revert", "{\"name\": \"nosuch\", \"snapshot\": \"s\"}"},
	};

	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		err(t, calls[i][0], calls[i][1], OUTPOST_E_NOT_FOUND, "nosuch");
}

static void test_bad_args_get_the_envelope(void **state)
{
	struct plugtest *t = *state;

	err(t, "define", "{\"name\": \"a b\", \"vcpus\": 1, \"memory_mib\": 1}", OUTPOST_E_BAD_ARGS,
	    "name:");
	err(t, "define", "{\"name\": \"-x\", \"vcpus\": 1, \"memory_mib\": 1}", OUTPOST_E_BAD_ARGS,
	    "name:");
	err(t, "define", "{\"name\": \"x\", \"vcpus\": 0, \"memory_mib\": 1}", OUTPOST_E_BAD_ARGS,
	    "vcpus:");
	err(t, "define", "{\"name\": \"x\", \"vcpus\": 1, \"memory_mib\": -5}", OUTPOST_E_BAD_ARGS,
	    "memory_mib:");
	err(t, "define",
	    "{\"name\": \"x\", \"vcpus\": 1, \"memory_mib\": 1, \"disk\": \"rel.img\"}",
	    OUTPOST_E_BAD_ARGS, "disk:");
	err(t, "define", "{\"name\": \"x\", \"vcpus\": 1, \"memory_mib\": 1, \"disk\": \"/a\\nb\"}",
	    OUTPOST_E_BAD_ARGS, "disk:");
	err(t, "define",
	    "{\"name\": \"x\", \"vcpus\": 1, \"memory_mib\": 1, \"disk_format\": \"vmdk\"}",
	    OUTPOST_E_BAD_ARGS, "disk_format");
	err(t, "define", "{\"name\": \"x\", \"vcpus\": 1, \"memory_mib\": 1, \"network\": \"a'b\"}",
	    OUTPOST_E_BAD_ARGS, "network:");
	err(t, "define", "{\"name\": \"x\", \"vcpus\": \"2\", \"memory_mib\": 1}",
	    OUTPOST_E_BAD_ARGS, "vcpus");
	err(t, "start", "{}", OUTPOST_E_BAD_ARGS, "name");
	err(t, "shutdown", "{\"name\": \"test\", \"timeout_ms\": -1}", OUTPOST_E_BAD_ARGS,
	    "timeout_ms:");
	err(t, "snapshot_create", "{\"name\": \"test\", \"snapshot\": \"../x\"}",
	    OUTPOST_E_BAD_ARGS, "snapshot:");
	assert_string_equal(state_of(t, "x"), "absent");
}

static void test_unopenable_uri_is_unavailable(void **state)
{
	char conf[512];
	struct plugtest *t = plugtest_new(&outpost_plugin_vm, NULL);

	snprintf(conf, sizeof conf, "{\"uri\": \"test://%s/missing.xml\"}", plugtest_dir(t));
	plugtest_free(t);
	t = plugtest_new(&outpost_plugin_vm, conf);
	err(t, "list", "{}", OUTPOST_E_UNAVAILABLE, "cannot connect to test://");
	err(t, "start", "{\"name\": \"test\"}", OUTPOST_E_UNAVAILABLE, "missing.xml");
	/* Arguments are checked before the connection. */
	err(t, "start", "{\"name\": \"\"}", OUTPOST_E_BAD_ARGS, "name:");
	plugtest_free(t);
}

static void test_init_refuses_bad_config(void **state)
{
	static const char *bad[] = {
	    "{\"uri\": 5}",
	    "{\"uri\": \"\"}",
	    "{\"shutdown_timeout_ms\": -1}",
	    "{\"url\": \"test:///default\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct plugtest *t = plugtest_new_any(&outpost_plugin_vm, bad[i]);
		assert_int_not_equal(plugtest_init_rc(t), 0);
		plugtest_free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_list_shows_the_drivers_vm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_define_twice_makes_one_vm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_life_cycle_is_idempotent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_changes_vcpus_and_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_create_and_revert, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_vm_is_not_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_args_get_the_envelope, setup, teardown),
	    cmocka_unit_test(test_unopenable_uri_is_unavailable),
	    cmocka_unit_test(test_init_refuses_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
