/* The built-in `vm` plugin: virtual machines through libvirt (list, define from a template,
 * start, shutdown, destroy, undefine, set vCPUs and memory, snapshots). docs/plugins/vm.md is
 * the operator's side.
 *
 * Every op is idempotent by state: it says whether it changed anything ("changed") and asking
 * for a state the VM is already in is a success. The plugin keeps one connection, opened at the
 * first call (init never blocks on libvirt, so a host without it starts and answers
 * `unavailable`), reopened when it died or the configured URI changed. libvirt calls block:
 * they run on the dispatcher's worker threads like every op; the connection is thread-safe and
 * each call holds its own reference to it.
 *
 * libvirt is loaded with dlopen at the first call, not linked: the agent runs on every host and
 * libvirt brings ~50 libraries (curl, libxml2, ...; ~9 MB PSS) the agent keeps out of its memory,
 * and a host without libvirt0 must still start the agent. Only the headers are needed to build. */
#include "plugins/builtin.h"
#include "core/buf.h"
#include "core/clk.h"

#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VM_DEFAULT_URI "qemu:///system"
#define VM_MAX_NAME 64
#define VM_MAX_PATH 4095
#define VM_MAX_VCPUS 4096
#define VM_MAX_MEMORY_MIB (16LL << 20) /* 16 TiB */
/* Kept between a forced shutdown and the call's deadline, so the answer still gets out. */
#define VM_MARGIN_MS 1000
#define VM_POLL_MS 100

/* The libvirt functions the plugin calls, resolved from libvirt.so.0 by vm_libvirt_load. */
/* clang-format off */
#define VM_LIBVIRT_FNS(X) \
	X(virInitialize) X(virSetErrorFunc) X(virGetLastError) X(virConnectOpen) \
	X(virConnectClose) X(virConnectIsAlive) X(virConnectRef) X(virConnectListAllDomains) \
	X(virDomainGetInfo) X(virDomainGetUUIDString) X(virDomainListAllSnapshots) X(virDomainSnapshotGetName) \
	X(virDomainSnapshotFree) X(virDomainGetName) X(virDomainIsPersistent) X(virDomainFree) \
	X(virDomainLookupByName) X(virDomainGetVcpusFlags) X(virDomainDefineXML) X(virDomainIsActive) \
	X(virDomainCreate) X(virDomainDestroy) X(virDomainShutdown) X(virDomainUndefineFlags) \
	X(virDomainSetVcpusFlags) X(virDomainSetMemoryFlags) X(virDomainSnapshotLookupByName) X(virDomainRevertToSnapshot) \
	X(virDomainSnapshotCreateXML)
/* clang-format on */

#define VM_FN_FIELD(f) __typeof__(&f) f;
/* Process-wide, like the library it points into: loaded once (vm_lv_once), never unloaded
 * (libvirt keeps threads and atexit state of its own), read-only after loading. */
static struct {
	VM_LIBVIRT_FNS(VM_FN_FIELD)
} vm_lv;
static pthread_once_t vm_lv_once = PTHREAD_ONCE_INIT;
static char vm_lv_error[256]; /* empty when loaded */

static void vm_quiet(void *data, virErrorPtr err);

static void vm_libvirt_load(void)
{
	void *h = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(vm_lv_error, sizeof vm_lv_error, "libvirt is not installed (libvirt0): %s",
		         dlerror());
		return;
	}
#define VM_FN_LOAD(f)                                                                              \
	if (!(*(void **)&vm_lv.f = dlsym(h, #f))) {                                                \
		snprintf(vm_lv_error, sizeof vm_lv_error, "libvirt.so.0 has no %s", #f);           \
		return;                                                                            \
	}
	VM_LIBVIRT_FNS(VM_FN_LOAD)
#undef VM_FN_LOAD
	if (vm_lv.virInitialize() < 0) {
		snprintf(vm_lv_error, sizeof vm_lv_error, "libvirt failed to initialize");
		return;
	}
	/* libvirt prints every error on stderr unless told otherwise; the plugin reports them. */
	vm_lv.virSetErrorFunc(NULL, vm_quiet);
}

/* Loads libvirt once; NULL when it is there, else why not. */
static const char *vm_libvirt(void)
{
	pthread_once(&vm_lv_once, vm_libvirt_load);
	return vm_lv_error[0] ? vm_lv_error : NULL;
}

struct vm_conf {
	const char *uri;         /* borrowed from the config */
	const char *domain_type; /* <domain type=...>: kvm, qemu, test */
	int64_t shutdown_timeout_ms;
};

struct vm_state {
	pthread_mutex_t conn_lock; /* guards conn and uri */
	virConnectPtr conn;        /* NULL until the first call, or after it died */
	char *uri;                 /* what conn was opened with */
};

/* Reads the config section; unknown keys are refused, like exec's limits. Returns 0 or -1 with
 * msg set. */
static int vm_conf_load(json_t *conf, struct vm_conf *c, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	c->uri = VM_DEFAULT_URI;
	c->domain_type = "kvm";
	c->shutdown_timeout_ms = 60000;
	json_object_foreach(conf, key, v)
	{
		if (!strcmp(key, "uri") || !strcmp(key, "domain_type")) {
			const char *s = json_string_value(v);
			if (!s || !*s || strlen(s) > 1024) {
				snprintf(msg, msglen, "config: %s must be a non-empty string", key);
				return -1;
			}
			*(key[0] == 'u' ? &c->uri : &c->domain_type) = s;
		} else if (!strcmp(key, "shutdown_timeout_ms")) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 86400000) {
				snprintf(msg, msglen,
				         "config: shutdown_timeout_ms must be 0 to 86400000");
				return -1;
			}
			c->shutdown_timeout_ms = json_integer_value(v);
		} else {
			snprintf(msg, msglen,
			         "config: unknown key '%s' (uri, domain_type, "
			         "shutdown_timeout_ms)",
			         key);
			return -1;
		}
	}
	return 0;
}

static void vm_quiet(void *data, virErrorPtr err)
{
	(void)data;
	(void)err;
}

static int vm_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct vm_conf c;
	char msg[256];

	if (vm_conf_load(outpost_plugin_config(pc), &c, msg, sizeof msg) < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s", msg);
		return OUTPOST_E_BAD_ARGS;
	}
	struct vm_state *st = calloc(1, sizeof *st);
	if (!st)
		return OUTPOST_E_INTERNAL;
	pthread_mutex_init(&st->conn_lock, NULL);
	*state = st;
	return 0;
}

static void vm_fini(void *state)
{
	struct vm_state *st = state;

	if (!st)
		return;
	if (st->conn)
		vm_lv.virConnectClose(st->conn);
	free(st->uri);
	pthread_mutex_destroy(&st->conn_lock);
	free(st);
}

/* The message of libvirt's last error on this thread, or what. */
static const char *vm_errmsg(const char *what)
{
	virErrorPtr e = vm_lv.virGetLastError();
	return e && e->message ? e->message : what;
}

/* Maps libvirt's last error to an outpost error on call. */
static int vm_fail(struct outpost_call *call, const char *op, const char *name)
{
	virErrorPtr e = vm_lv.virGetLastError();
	int code = OUTPOST_E_INTERNAL;

	if (e) {
		switch (e->code) {
		case VIR_ERR_NO_DOMAIN:
		case VIR_ERR_NO_DOMAIN_SNAPSHOT:
		case VIR_ERR_NO_NETWORK:
		case VIR_ERR_NO_STORAGE_VOL:
			code = OUTPOST_E_NOT_FOUND;
			break;
		case VIR_ERR_OPERATION_INVALID:
		case VIR_ERR_OPERATION_FAILED:
			code = OUTPOST_E_CONFLICT;
			break;
		case VIR_ERR_INVALID_ARG:
		case VIR_ERR_XML_ERROR:
		case VIR_ERR_XML_DETAIL:
		case VIR_ERR_CONFIG_UNSUPPORTED:
		case VIR_ERR_OPERATION_UNSUPPORTED:
		case VIR_ERR_NO_SUPPORT:
			code = OUTPOST_E_BAD_ARGS;
			break;
		case VIR_ERR_NO_CONNECT:
		case VIR_ERR_SYSTEM_ERROR:
		case VIR_ERR_RPC:
		case VIR_ERR_AUTH_FAILED:
		case VIR_ERR_AUTH_UNAVAILABLE:
			code = OUTPOST_E_UNAVAILABLE;
			break;
		default:
			break;
		}
	}
	return outpost_call_error(call, code, "vm.%s %s: %s", op, name ? name : "",
	                          vm_errmsg("libvirt failed without a message"));
}

/* A new reference to the plugin's connection for this call (the caller closes it), opening or
 * reopening it when needed. NULL after the error is set (unavailable, libvirt's message). */
static virConnectPtr vm_conn(struct outpost_call *call, struct vm_conf *c)
{
	struct vm_state *st = outpost_call_state(call);
	virConnectPtr conn = NULL;
	const char *why;
	char msg[256];

	if (vm_conf_load(outpost_call_config(call), c, msg, sizeof msg) < 0) {
		outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "vm: %s", msg);
		return NULL;
	}
	if ((why = vm_libvirt())) {
		outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "vm: %s", why);
		return NULL;
	}
	pthread_mutex_lock(&st->conn_lock);
	if (st->conn && (strcmp(st->uri, c->uri) || vm_lv.virConnectIsAlive(st->conn) != 1)) {
		vm_lv.virConnectClose(st->conn);
		st->conn = NULL;
	}
	if (!st->conn) {
		char *uri = strdup(c->uri);
		if (!uri) {
			outpost_call_error(call, OUTPOST_E_INTERNAL, "vm: out of memory");
			goto out;
		}
		st->conn = vm_lv.virConnectOpen(c->uri);
		if (!st->conn) {
			outpost_call_error(call, OUTPOST_E_UNAVAILABLE,
			                   "vm: cannot connect to %s: %s", c->uri,
			                   vm_errmsg("no message"));
			free(uri);
			goto out;
		}
		free(st->uri);
		st->uri = uri;
	}
	if (vm_lv.virConnectRef(st->conn) == 0)
		conn = st->conn;
	else
		outpost_call_error(call, OUTPOST_E_INTERNAL, "vm: %s", vm_errmsg("connection ref"));
out:
	pthread_mutex_unlock(&st->conn_lock);
	return conn;
}

/* Names of VMs, snapshots and networks: 1 to 64 of A-Z a-z 0-9 _ . - not starting with . or -
 * (safe in XML and in a path, which is where libvirt keeps them). */
static int vm_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > VM_MAX_NAME || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Checks args[key] (when present, or required) as a name; returns it, or NULL after the error. */
static const char *vm_arg_name(struct outpost_call *call, json_t *args, const char *key)
{
	const char *s = json_string_value(json_object_get(args, key));

	if (!s || !vm_name_ok(s)) {
		outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                   "%s: 1 to %d of A-Z a-z 0-9 _ . - (not starting with . or -)",
		                   key, VM_MAX_NAME);
		return NULL;
	}
	return s;
}

/* args[key] as an integer in [min, max], or def when absent; -1 after the error. */
static int64_t vm_arg_int(struct outpost_call *call, json_t *args, const char *key, int64_t min,
                          int64_t max, int64_t def)
{
	json_t *v = json_object_get(args, key);

	if (!v)
		return def;
	int64_t n = json_integer_value(v);
	if (n < min || n > max) {
		outpost_call_error(call, OUTPOST_E_BAD_ARGS, "%s: %lld to %lld", key,
		                   (long long)min, (long long)max);
		return -1;
	}
	return n;
}

static const char *vm_state_name(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		return "running";
	case VIR_DOMAIN_BLOCKED:
		return "blocked";
	case VIR_DOMAIN_PAUSED:
		return "paused";
	case VIR_DOMAIN_SHUTDOWN:
		return "shutting_down";
	case VIR_DOMAIN_SHUTOFF:
		return "shutoff";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	case VIR_DOMAIN_PMSUSPENDED:
		return "suspended";
	default:
		return "unknown";
	}
}

/* One VM as list shows it; NULL after the error. */
static json_t *vm_describe(struct outpost_call *call, virDomainPtr dom)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	virDomainInfo info;
	virDomainSnapshotPtr *snaps = NULL;
	json_t *names, *vm;
	int n;

	if (vm_lv.virDomainGetInfo(dom, &info) < 0 || vm_lv.virDomainGetUUIDString(dom, uuid) < 0) {
		vm_fail(call, "list", vm_lv.virDomainGetName(dom));
		return NULL;
	}
	names = json_array();
	n = vm_lv.virDomainListAllSnapshots(dom, &snaps, 0);
	for (int i = 0; i < n; i++) {
		json_array_append_new(names, json_string(vm_lv.virDomainSnapshotGetName(snaps[i])));
		vm_lv.virDomainSnapshotFree(snaps[i]);
	}
	free(snaps);
	vm = json_pack(
	    "{s:s, s:s, s:s, s:i, s:I, s:I, s:b, s:o}", "name", vm_lv.virDomainGetName(dom), "uuid",
	    uuid, "state", vm_state_name(info.state), "vcpus", (int)info.nrVirtCpu, "memory_mib",
	    (json_int_t)(info.memory / 1024), "max_memory_mib", (json_int_t)(info.maxMem / 1024),
	    "persistent", vm_lv.virDomainIsPersistent(dom) == 1, "snapshots", names);
	if (!vm)
		outpost_call_error(call, OUTPOST_E_INTERNAL, "vm.list: out of memory");
	return vm;
}

/* A VM as the host's facts show it: name, state, vCPUs, memory. */
static json_t *vm_brief(struct outpost_call *call, virDomainPtr dom)
{
	virDomainInfo info;

	if (vm_lv.virDomainGetInfo(dom, &info) < 0) {
		vm_fail(call, "facts", vm_lv.virDomainGetName(dom));
		return NULL;
	}
	return json_pack("{s:s, s:s, s:i, s:I}", "name", vm_lv.virDomainGetName(dom), "state",
	                 vm_state_name(info.state), "vcpus", (int)info.nrVirtCpu, "memory_mib",
	                 (json_int_t)(info.memory / 1024));
}

/* Every VM through one of the two views: {"vms": [...]} (list) or {"domains": [...]} (facts). */
static int vm_each(struct outpost_call *call, const char *op, const char *key,
                   json_t *(*view)(struct outpost_call *, virDomainPtr), json_t **result)
{
	struct vm_conf c;
	virConnectPtr conn = vm_conn(call, &c);
	virDomainPtr *doms = NULL;
	json_t *vms = NULL;
	int n, rc = 0;

	if (!conn)
		return OUTPOST_E_UNAVAILABLE;
	n = vm_lv.virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		rc = vm_fail(call, op, NULL);
		goto out;
	}
	vms = json_array();
	for (int i = 0; i < n; i++) {
		json_t *vm = rc == 0 ? view(call, doms[i]) : NULL;
		if (!vm && rc == 0)
			rc = OUTPOST_E_INTERNAL;
		if (vm)
			json_array_append_new(vms, vm);
		vm_lv.virDomainFree(doms[i]);
	}
	if (rc == 0)
		*result = json_pack("{s:O}", key, vms);
out:
	json_decref(vms);
	free(doms);
	vm_lv.virConnectClose(conn);
	return rc;
}

static int vm_list(struct outpost_call *call, json_t *args, json_t **result)
{
	return vm_each(call, "list", "vms", vm_describe, result);
}

static int vm_facts(struct outpost_call *call, json_t *args, json_t **result)
{
	return vm_each(call, "facts", "domains", vm_brief, result);
}

/* Appends s with XML's five special characters escaped. */
static int vm_xml_put(struct buf *b, const char *s)
{
	for (; *s; s++) {
		const char *e = *s == '&'    ? "&amp;"
		                : *s == '<'  ? "&lt;"
		                : *s == '>'  ? "&gt;"
		                : *s == '\'' ? "&apos;"
		                : *s == '"'  ? "&quot;"
		                             : NULL;
		if (e ? buf_puts(b, e) : buf_append(b, s, 1))
			return -1;
	}
	return 0;
}

/* The domain XML of the template. Every string is checked or escaped by the caller's rules;
 * disk and network are optional. Caller frees; NULL when memory runs out. */
static char *vm_template(const struct vm_conf *c, const char *name, int64_t vcpus,
                         int64_t memory_mib, const char *disk, const char *format,
                         const char *network)
{
	struct buf b = BUF_INIT;
	int err = 0;

	err |= buf_puts(&b, "<domain type='");
	err |= vm_xml_put(&b, c->domain_type);
	err |= buf_puts(&b, "'><name>");
	err |= vm_xml_put(&b, name);
	err |= buf_printf(&b,
	                  "</name><memory unit='MiB'>%lld</memory>"
	                  "<vcpu>%lld</vcpu><os><type>hvm</type></os><devices>",
	                  (long long)memory_mib, (long long)vcpus);
	if (disk) {
		err |= buf_printf(&b,
		                  "<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
		                  "<source file='",
		                  format);
		err |= vm_xml_put(&b, disk);
		err |= buf_puts(&b, "'/><target dev='vda' bus='virtio'/></disk>");
	}
	if (network) {
		err |= buf_puts(&b, "<interface type='network'><source network='");
		err |= vm_xml_put(&b, network);
		err |= buf_puts(&b, "'/><model type='virtio'/></interface>");
	}
	err |= buf_puts(&b, "</devices></domain>");
	if (err) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static int vm_path_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > VM_MAX_PATH || s[0] != '/')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* The answer of an op on one VM: {"name", "changed", "state"} plus what the op adds. */
static json_t *vm_answer(virDomainPtr dom, const char *name, int changed)
{
	virDomainInfo info;
	const char *state = dom && vm_lv.virDomainGetInfo(dom, &info) == 0
	                        ? vm_state_name(info.state)
	                    : dom ? "unknown"
	                          : "undefined";
	return json_pack("{s:s, s:b, s:s}", "name", name, "changed", changed, "state", state);
}

static int vm_define(struct outpost_call *call, json_t *args, json_t **result)
{
	const char *name = vm_arg_name(call, args, "name"), *disk, *format, *network = NULL;
	int64_t vcpus, mem;
	virConnectPtr conn = NULL;
	virDomainPtr dom = NULL;
	char *xml = NULL;
	struct vm_conf c;
	int rc = OUTPOST_E_BAD_ARGS;

	if (!name)
		return rc;
	if ((vcpus = vm_arg_int(call, args, "vcpus", 1, VM_MAX_VCPUS, -1)) < 0 ||
	    (mem = vm_arg_int(call, args, "memory_mib", 1, VM_MAX_MEMORY_MIB, -1)) < 0)
		return rc;
	disk = json_string_value(json_object_get(args, "disk"));
	if (disk && !vm_path_ok(disk))
		return outpost_call_error(call, rc,
		                          "disk: an absolute path of at most %d bytes, "
		                          "no control characters",
		                          VM_MAX_PATH);
	format = json_string_value(json_object_get(args, "disk_format"));
	if (!format)
		format = "qcow2";
	if (strcmp(format, "qcow2") && strcmp(format, "raw"))
		return outpost_call_error(call, rc, "disk_format: qcow2 or raw");
	if (json_object_get(args, "network") && !(network = vm_arg_name(call, args, "network")))
		return rc;

	if (!(conn = vm_conn(call, &c)))
		return OUTPOST_E_UNAVAILABLE;
	dom = vm_lv.virDomainLookupByName(conn, name);
	if (dom) {
		/* Defined already (by an earlier call): the same VM is success, another is refused
		 * rather than silently left as it was. */
		virDomainInfo info;
		if (vm_lv.virDomainGetInfo(dom, &info) < 0) {
			rc = vm_fail(call, "define", name);
			goto out;
		}
		int64_t have_mem = (int64_t)(info.maxMem / 1024);
		if (vm_lv.virDomainIsPersistent(dom) != 1 || have_mem != mem ||
		    vm_lv.virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_CONFIG |
		                                          VIR_DOMAIN_VCPU_MAXIMUM) != vcpus) {
			rc = outpost_call_error(
			    call, OUTPOST_E_CONFLICT,
			    "vm.define %s: a VM of that name exists with other vCPUs "
			    "or memory (or is not persistent); change it with vm.set",
			    name);
			goto out;
		}
		*result = vm_answer(dom, name, 0);
		rc = 0;
		goto out;
	}
	if (!(xml = vm_template(&c, name, vcpus, mem, disk, format, network))) {
		rc = outpost_call_error(call, OUTPOST_E_INTERNAL, "vm.define: out of memory");
		goto out;
	}
	if (!(dom = vm_lv.virDomainDefineXML(conn, xml))) {
		rc = vm_fail(call, "define", name);
		goto out;
	}
	*result = vm_answer(dom, name, 1);
	rc = 0;
out:
	free(xml);
	if (dom)
		vm_lv.virDomainFree(dom);
	vm_lv.virConnectClose(conn);
	return rc;
}

/* ---- Ops on one existing VM: one table (vm_dom_ops), one way in (vm_on_domain) ---- */

/* What an op on one VM has: the call, the checked name, the config, the connection and the
 * domain (vm_on_domain opens and frees them). */
struct vm_dom {
	struct outpost_call *call;
	json_t *args;
	const char *op, *name;
	struct vm_conf c;
	virConnectPtr conn;
	virDomainPtr dom;
};

static int vm_do_start(struct vm_dom *d, json_t **result)
{
	int active;

	if ((active = vm_lv.virDomainIsActive(d->dom)) < 0 ||
	    (!active && vm_lv.virDomainCreate(d->dom) < 0))
		return vm_fail(d->call, d->op, d->name);
	*result = vm_answer(d->dom, d->name, !active);
	return 0;
}

static int vm_do_destroy(struct vm_dom *d, json_t **result)
{
	int active;

	if ((active = vm_lv.virDomainIsActive(d->dom)) < 0 ||
	    (active && vm_lv.virDomainDestroy(d->dom) < 0))
		return vm_fail(d->call, d->op, d->name);
	*result = vm_answer(d->dom, d->name, active);
	return 0;
}

/* Asks the guest to shut down (ACPI), waits up to timeout_ms, then pulls the plug. The wait
 * also ends VM_MARGIN_MS before the call's deadline, so the answer is never lost. */
static int vm_do_shutdown(struct vm_dom *d, json_t **result)
{
	int64_t timeout =
	    vm_arg_int(d->call, d->args, "timeout_ms", 0, 86400000, d->c.shutdown_timeout_ms);
	int active, forced = 0;

	if (timeout < 0)
		return OUTPOST_E_BAD_ARGS;
	if ((active = vm_lv.virDomainIsActive(d->dom)) < 0)
		return vm_fail(d->call, d->op, d->name);
	if (active) {
		int64_t end = clk_mono_ms() + timeout,
		        last = outpost_call_deadline(d->call) - VM_MARGIN_MS;
		if (end > last)
			end = last;
		if (vm_lv.virDomainShutdown(d->dom) < 0)
			return vm_fail(d->call, d->op, d->name);
		while (vm_lv.virDomainIsActive(d->dom) == 1 && clk_mono_ms() < end &&
		       !outpost_call_abandoned(d->call)) {
			struct timespec ts = {0, VM_POLL_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (vm_lv.virDomainIsActive(d->dom) == 1) {
			/* It may have stopped in between: gone is what was asked. */
			if (vm_lv.virDomainDestroy(d->dom) < 0 &&
			    vm_lv.virDomainIsActive(d->dom) == 1)
				return vm_fail(d->call, d->op, d->name);
			forced = 1;
		}
	}
	*result = vm_answer(d->dom, d->name, active);
	json_object_set_new(*result, "forced", json_boolean(forced));
	return 0;
}

static int vm_do_undefine(struct vm_dom *d, json_t **result)
{
	if (vm_lv.virDomainIsActive(d->dom) == 1)
		return outpost_call_error(d->call, OUTPOST_E_CONFLICT,
		                          "vm.undefine %s: the VM is running; shut it down or "
		                          "destroy it first",
		                          d->name);
	if (vm_lv.virDomainUndefineFlags(d->dom, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
	                                             VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) < 0)
		return vm_fail(d->call, d->op, d->name);
	*result = vm_answer(NULL, d->name, 1);
	return 0;
}

/* Sets the vCPUs of the definition, and of the running VM too when it runs. 0 or -1 (libvirt
 * said why). */
static int vm_set_vcpus(struct vm_dom *d, int64_t vcpus, int active, int *changed)
{
	unsigned cfg = VIR_DOMAIN_AFFECT_CONFIG;
	int max = vm_lv.virDomainGetVcpusFlags(d->dom, cfg | VIR_DOMAIN_VCPU_MAXIMUM);
	int cur = vm_lv.virDomainGetVcpusFlags(d->dom, cfg);

	if (max < 0 || cur < 0)
		return -1;
	/* The maximum first when raising (libvirt refuses a count above it), last when lowering
	 * (it refuses a maximum below the count). */
	if (vcpus > max &&
	    vm_lv.virDomainSetVcpusFlags(d->dom, vcpus, cfg | VIR_DOMAIN_VCPU_MAXIMUM) < 0)
		return -1;
	if (vcpus != cur && vm_lv.virDomainSetVcpusFlags(d->dom, vcpus, cfg) < 0)
		return -1;
	if (vcpus < max &&
	    vm_lv.virDomainSetVcpusFlags(d->dom, vcpus, cfg | VIR_DOMAIN_VCPU_MAXIMUM) < 0)
		return -1;
	*changed |= vcpus != max || vcpus != cur;
	if (active) {
		int live = vm_lv.virDomainGetVcpusFlags(d->dom, VIR_DOMAIN_AFFECT_LIVE);
		if (live < 0 || (live != vcpus && vm_lv.virDomainSetVcpusFlags(
		                                      d->dom, vcpus, VIR_DOMAIN_AFFECT_LIVE) < 0))
			return -1;
		*changed |= live != vcpus;
	}
	return 0;
}

/* The same for memory. */
static int vm_set_memory(struct vm_dom *d, int64_t mem, int active, int *changed)
{
	unsigned cfg = VIR_DOMAIN_AFFECT_CONFIG;
	unsigned long kib = (unsigned long)mem * 1024;
	virDomainInfo info;

	if (vm_lv.virDomainGetInfo(d->dom, &info) < 0)
		return -1;
	if (active) {
		/* Live first: the definition's numbers are not readable apart while running. */
		if (info.memory != kib &&
		    vm_lv.virDomainSetMemoryFlags(d->dom, kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
			return -1;
		*changed |= info.memory != kib;
		if (vm_lv.virDomainSetMemoryFlags(d->dom, kib, cfg | VIR_DOMAIN_MEM_MAXIMUM) < 0 ||
		    vm_lv.virDomainSetMemoryFlags(d->dom, kib, cfg) < 0)
			return -1;
	} else if (info.maxMem != kib || info.memory != kib) {
		if ((kib > info.maxMem && vm_lv.virDomainSetMemoryFlags(
		                              d->dom, kib, cfg | VIR_DOMAIN_MEM_MAXIMUM) < 0) ||
		    vm_lv.virDomainSetMemoryFlags(d->dom, kib, cfg) < 0 ||
		    (kib < info.maxMem &&
		     vm_lv.virDomainSetMemoryFlags(d->dom, kib, cfg | VIR_DOMAIN_MEM_MAXIMUM) < 0))
			return -1;
		*changed = 1;
	}
	return 0;
}

/* Sets the vCPUs and memory of the definition, and of the running VM too when it runs (libvirt
 * refuses a live value past the VM's maximum: conflict, the definition changed all the same and
 * applies at the next start). */
static int vm_do_set(struct vm_dom *d, json_t **result)
{
	int64_t vcpus = vm_arg_int(d->call, d->args, "vcpus", 1, VM_MAX_VCPUS, 0);
	int64_t mem = vm_arg_int(d->call, d->args, "memory_mib", 1, VM_MAX_MEMORY_MIB, 0);
	int changed = 0, active;

	if (vcpus < 0 || mem < 0)
		return OUTPOST_E_BAD_ARGS;
	if (!vcpus && !mem)
		return outpost_call_error(d->call, OUTPOST_E_BAD_ARGS,
		                          "vm.set: give vcpus, memory_mib or both");
	active = vm_lv.virDomainIsActive(d->dom) == 1;
	if ((vcpus && vm_set_vcpus(d, vcpus, active, &changed) < 0) ||
	    (mem && vm_set_memory(d, mem, active, &changed) < 0))
		return vm_fail(d->call, d->op, d->name);
	*result = vm_answer(d->dom, d->name, changed);
	return 0;
}

/* The snapshot ops: create makes it unless it exists (changed false), revert returns the VM to
 * it (always changed: the state after is the snapshot's, whatever it was). */
static int vm_snapshot(struct vm_dom *d, json_t **result, int revert)
{
	const char *sname = vm_arg_name(d->call, d->args, "snapshot");
	virDomainSnapshotPtr snap;
	int rc = 0, changed = 0;

	if (!sname)
		return OUTPOST_E_BAD_ARGS;
	snap = vm_lv.virDomainSnapshotLookupByName(d->dom, sname, 0);
	if (revert) {
		if (!snap || vm_lv.virDomainRevertToSnapshot(snap, 0) < 0)
			rc = vm_fail(d->call, d->op, d->name);
		changed = 1;
	} else if (!snap) {
		char *xml = NULL;
		if (asprintf(&xml, "<domainsnapshot><name>%s</name></domainsnapshot>", sname) < 0)
			return outpost_call_error(d->call, OUTPOST_E_INTERNAL, "vm: out of memory");
		snap = vm_lv.virDomainSnapshotCreateXML(d->dom, xml, 0);
		free(xml);
		if (!snap)
			rc = vm_fail(d->call, d->op, d->name);
		changed = 1;
	}
	if (rc == 0) {
		*result = vm_answer(d->dom, d->name, changed);
		json_object_set_new(*result, "snapshot", json_string(sname));
	}
	if (snap)
		vm_lv.virDomainSnapshotFree(snap);
	return rc;
}

static int vm_do_snapshot_create(struct vm_dom *d, json_t **result)
{
	return vm_snapshot(d, result, 0);
}

static int vm_do_snapshot_revert(struct vm_dom *d, json_t **result)
{
	return vm_snapshot(d, result, 1);
}

static const struct vm_dom_op {
	const char *op;
	int (*fn)(struct vm_dom *d, json_t **result);
	int gone_ok; /* no such VM is what was asked: answered unchanged */
} vm_dom_ops[] = {
    {"start", vm_do_start, 0},
    {"destroy", vm_do_destroy, 0},
    {"shutdown", vm_do_shutdown, 0},
    {"undefine", vm_do_undefine, 1},
    {"set", vm_do_set, 0},
    {"snapshot_create", vm_do_snapshot_create, 0},
    {"snapshot_revert", vm_do_snapshot_revert, 0},
};

/* The way into every row of vm_dom_ops: the name checked, the connection, the domain, the
 * row's body, everything freed. */
static int vm_on_domain(struct outpost_call *call, json_t *args, json_t **result, const char *op)
{
	const struct vm_dom_op *row = vm_dom_ops;
	struct vm_dom d = {.call = call, .args = args, .op = op};
	int rc;

	while (strcmp(row->op, op) != 0)
		row++;
	if (!(d.name = vm_arg_name(call, args, "name")))
		return OUTPOST_E_BAD_ARGS;
	if (!(d.conn = vm_conn(call, &d.c)))
		return OUTPOST_E_UNAVAILABLE;
	if (!(d.dom = vm_lv.virDomainLookupByName(d.conn, d.name))) {
		rc = vm_fail(call, op, d.name);
		if (rc == OUTPOST_E_NOT_FOUND && row->gone_ok) {
			*result = vm_answer(NULL, d.name, 0);
			rc = 0;
		}
	} else {
		rc = row->fn(&d, result);
		vm_lv.virDomainFree(d.dom);
	}
	vm_lv.virConnectClose(d.conn);
	return rc;
}

/* The handlers the op table names, one per row of vm_dom_ops. */
#define VM_ON_DOMAIN(op)                                                                           \
	static int vm_##op(struct outpost_call *call, json_t *args, json_t **result)               \
	{                                                                                          \
		return vm_on_domain(call, args, result, #op);                                      \
	}
VM_ON_DOMAIN(start)
VM_ON_DOMAIN(destroy)
VM_ON_DOMAIN(shutdown)
VM_ON_DOMAIN(undefine)
VM_ON_DOMAIN(set)
VM_ON_DOMAIN(snapshot_create)
VM_ON_DOMAIN(snapshot_revert)

#define VM_ARG_NAME                                                                                \
	{                                                                                          \
		"name", OUTPOST_ARG_STRING, 1, "the VM's name"                                     \
	}
#define VM_ARGS_END                                                                                \
	{                                                                                          \
		NULL, 0, 0, NULL                                                                   \
	}

static const struct outpost_arg no_args[] = {VM_ARGS_END};
static const struct outpost_arg name_args[] = {VM_ARG_NAME, VM_ARGS_END};
static const struct outpost_arg define_args[] = {
    VM_ARG_NAME,
    {"vcpus", OUTPOST_ARG_INT, 1, "virtual CPUs, 1 to 4096"},
    {"memory_mib", OUTPOST_ARG_INT, 1, "memory in MiB"},
    {"disk", OUTPOST_ARG_STRING, 0, "absolute path of the disk image (vda, virtio)"},
    {"disk_format", OUTPOST_ARG_STRING, 0, "qcow2 (default) or raw"},
    {"network", OUTPOST_ARG_STRING, 0, "libvirt network of its one NIC (virtio)"},
    VM_ARGS_END,
};
static const struct outpost_arg shutdown_args[] = {
    VM_ARG_NAME,
    {"timeout_ms", OUTPOST_ARG_INT, 0,
     "how long the guest gets to shut down before it is forced off (config default)"},
    VM_ARGS_END,
};
static const struct outpost_arg set_args[] = {
    VM_ARG_NAME,
    {"vcpus", OUTPOST_ARG_INT, 0, "virtual CPUs"},
    {"memory_mib", OUTPOST_ARG_INT, 0, "memory in MiB"},
    VM_ARGS_END,
};
static const struct outpost_arg snapshot_args[] = {
    VM_ARG_NAME,
    {"snapshot", OUTPOST_ARG_STRING, 1, "the snapshot's name"},
    VM_ARGS_END,
};

static const struct outpost_op vm_ops[] = {
    {"list", vm_list, no_args, 0, "the VMs: name, uuid, state, vcpus, memory, snapshots"},
    {"facts", vm_facts, no_args, 0,
     "the VMs as the host's facts show them: name, state, vcpus, memory_mib"},
    {"define", vm_define, define_args, OUTPOST_OP_MUTATING,
     "defines a VM from the template; the same again is unchanged"},
    {"start", vm_start, name_args, OUTPOST_OP_MUTATING, "starts a VM (running: unchanged)"},
    {"shutdown", vm_shutdown, shutdown_args, OUTPOST_OP_MUTATING,
     "shuts a VM down gracefully, forced off after timeout_ms"},
    {"destroy", vm_destroy, name_args, OUTPOST_OP_MUTATING, "forces a VM off at once"},
    {"undefine", vm_undefine, name_args, OUTPOST_OP_MUTATING,
     "removes a stopped VM's definition (gone already: unchanged)"},
    {"set", vm_set, set_args, OUTPOST_OP_MUTATING, "sets a VM's vCPUs and memory"},
    {"snapshot_create", vm_snapshot_create, snapshot_args, OUTPOST_OP_MUTATING,
     "takes a named snapshot (exists: unchanged)"},
    {"snapshot_revert", vm_snapshot_revert, snapshot_args, OUTPOST_OP_MUTATING,
     "returns a VM to a snapshot"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_vm = {
    OUTPOST_PLUGIN_ABI, "vm", "1.0", vm_init, vm_fini, vm_ops,
};
