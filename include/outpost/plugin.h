/* The Outpost plugin contract: everything a plugin may see of the agent.
 * Built-in and shared-object plugins use this header; executable plugins speak the same
 * contract as JSON on stdin/stdout (docs/plugins.md). */
#ifndef OUTPOST_PLUGIN_H
#define OUTPOST_PLUGIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct below or a function's meaning changes. A shared-object plugin built
 * against another ABI is refused at load time. */
#define OUTPOST_PLUGIN_ABI 1

/* Stable error codes. Every failure that reaches a caller carries exactly one of these, as the
 * string in the error envelope: {"ok":false,"error":{"code":"bad_args","message":"..."}}. */
enum outpost_err {
	OUTPOST_OK = 0,
	OUTPOST_E_BAD_JSON = -1,       /* body is not valid JSON, or too deep       400 */
	OUTPOST_E_BAD_ARGS = -2,       /* an argument is missing, mistyped, out of range 400 */
	OUTPOST_E_UNKNOWN_PLUGIN = -3, /* no such plugin                            404 */
	OUTPOST_E_UNKNOWN_OP = -4,     /* the plugin has no such op                 404 */
	OUTPOST_E_TOO_LARGE = -5,      /* body, file or output over its limit       413 */
	OUTPOST_E_TIMEOUT = -6,        /* passed its deadline                       504 */
	OUTPOST_E_BUSY = -7,           /* too many calls in flight, retry later     503 */
	OUTPOST_E_FORBIDDEN = -8,      /* not allowed: path outside roots, user     403 */
	OUTPOST_E_INTERNAL = -9,       /* a bug or a system failure; see the log    500 */
	OUTPOST_E_NOT_FOUND = -10,     /* the named object does not exist           404 */
	OUTPOST_E_CONFLICT = -11,      /* state forbids it (exists, changed)        409 */
	OUTPOST_E_LOST = -12,          /* the agent died while running it: outcome unknown 409 */
	OUTPOST_E_UNAUTHORIZED = -13,  /* missing or bad credentials                401 */
	OUTPOST_E_UNAVAILABLE = -14,   /* plugin disabled or dependency down        503 */
};

/* Argument types, for the description shown by GET /v1/plugins and for validation. */
enum outpost_arg_type {
	OUTPOST_ARG_STRING = 1,
	OUTPOST_ARG_INT,
	OUTPOST_ARG_BOOL,
	OUTPOST_ARG_ARRAY, /* of strings unless the handler says otherwise */
	OUTPOST_ARG_OBJECT,
	OUTPOST_ARG_NUMBER,
};

struct outpost_arg {
	const char *name;
	enum outpost_arg_type type;
	int required;
	const char *help;
};

struct outpost_call;       /* one call in flight; borrowed by the handler for its duration */
struct outpost_plugin_ctx; /* the agent's side of one loaded plugin; valid from init to fini */

/* A handler runs on a worker thread. It reads args (borrowed, already checked against the op's
 * argument table: required present, types right, no unknown names), and on success stores a new
 * reference in *result (NULL means JSON null) and returns 0. On failure it returns a negative
 * outpost_err, after outpost_call_error() has set the message. It should watch
 * outpost_call_deadline(); past it the caller has already been told "timeout". */
typedef int (*outpost_op_fn)(struct outpost_call *call, json_t *args, json_t **result);

enum outpost_op_flags {
	OUTPOST_OP_MUTATING = 1 << 0, /* changes the host: journaled by id in the ledger */
	/* Cheap and never blocks (no I/O, no locks held long): runs inline on the agent's loop
	 * thread instead of a worker, saving the hand-off. Ignored for mutating ops. */
	OUTPOST_OP_INLINE = 1 << 1,
};

struct outpost_op {
	const char *name;
	outpost_op_fn fn;
	const struct outpost_arg *args; /* terminated by an entry with name == NULL */
	unsigned flags;
	const char *help;
};

/* Resident work. Timer and watch callbacks run on the agent's event loop thread: they must not
 * block; hand long work to a thread of your own or keep it short. */
typedef void (*outpost_timer_fn)(struct outpost_plugin_ctx *pc, void *arg);
typedef void (*outpost_watch_fn)(struct outpost_plugin_ctx *pc, void *arg, const char *path,
                                 uint32_t mask, const char *name);
/* events: what epoll reported (EPOLLIN, EPOLLERR, ...). */
typedef void (*outpost_fd_fn)(struct outpost_plugin_ctx *pc, void *arg, int fd, uint32_t events);

struct outpost_plugin {
	int abi; /* OUTPOST_PLUGIN_ABI */
	const char *name;
	const char *version;
	/* Called once at start, in table order. Returns 0, or a negative outpost_err after logging
	 * why: the plugin is then disabled and the others go on. *state is passed back to every
	 * handler through outpost_call_state(). */
	int (*init)(struct outpost_plugin_ctx *pc, void **state);
	void (*fini)(void *state);    /* may be NULL */
	const struct outpost_op *ops; /* terminated by an entry with name == NULL */
};

/* Shared-object plugins export this symbol. */
#define OUTPOST_PLUGIN_ENTRY "outpost_plugin_entry"
typedef const struct outpost_plugin *(*outpost_plugin_entry_fn)(void);

/* ---- What a call may ask of the agent (valid during the handler) ---- */
enum outpost_log_level {
	OUTPOST_LOG_ERROR = 0,
	OUTPOST_LOG_WARN,
	OUTPOST_LOG_INFO,
	OUTPOST_LOG_DEBUG
};

void *outpost_call_state(struct outpost_call *call);
/* Absolute deadline on CLOCK_MONOTONIC, in milliseconds. */
int64_t outpost_call_deadline(struct outpost_call *call);
/* Nonzero once the agent is stopping and has waited its grace period for this call: a long
 * handler should end now and return what it has (its result is still recorded). */
int outpost_call_abandoned(struct outpost_call *call);
/* The plugin's config section (borrowed, never NULL: an empty object when none). A reload
 * swaps it between calls, never during one. */
json_t *outpost_call_config(struct outpost_call *call);
/* Sets the message of the error the handler is about to return; returns code for chaining. */
int outpost_call_error(struct outpost_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void outpost_call_log(struct outpost_call *call, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Optional, for a handler that runs a child process: child_started when the child runs (its
 * exec succeeded), from the handler's thread; child_cpu with the child's CPU time once it
 * ended. The agent then times starting the child apart from the command itself (its task
 * phases "spawn" and "command", docs/metrics.md); without them the handler is all "command". */
void outpost_call_child_started(struct outpost_call *call);
void outpost_call_child_cpu(struct outpost_call *call, int64_t cpu_ns);

/* ---- What init and resident work may ask of the agent ---- */
void outpost_log(struct outpost_plugin_ctx *pc, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Borrowed; valid until the next reload. Read it in init or from a timer. */
json_t *outpost_plugin_config(struct outpost_plugin_ctx *pc);
/* The agent's state directory, for plugins that keep files of their own. */
const char *outpost_plugin_state_dir(struct outpost_plugin_ctx *pc);
/* Persistent key/value state, in the agent's SQLite database, private to the plugin.
 * get stores a new reference in *value or returns OUTPOST_E_NOT_FOUND. Thread-safe. */
int outpost_state_get(struct outpost_plugin_ctx *pc, const char *key, json_t **value);
int outpost_state_put(struct outpost_plugin_ctx *pc, const char *key, json_t *value);
int outpost_state_del(struct outpost_plugin_ctx *pc, const char *key);
/* A timer every interval_ms (first run after interval_ms); returns an id > 0 or < 0. */
int outpost_timer_add(struct outpost_plugin_ctx *pc, int64_t interval_ms, outpost_timer_fn fn,
                      void *arg);
void outpost_timer_del(struct outpost_plugin_ctx *pc, int id);
/* An inotify watch on path with mask (IN_*); returns an id > 0 or < 0. */
int outpost_watch_add(struct outpost_plugin_ctx *pc, const char *path, uint32_t mask,
                      outpost_watch_fn fn, void *arg);
void outpost_watch_del(struct outpost_plugin_ctx *pc, int id);
/* Watches fd (the plugin's own, non-blocking) for events (EPOLLIN...) on the agent's loop;
 * fn runs on the loop thread and must not block. Returns an id > 0 or < 0. The plugin still
 * owns fd: it calls outpost_fd_del (or lets fini come, after which the agent has removed it
 * from the loop) before closing it. Added after ABI 1 shipped: new functions change no struct,
 * so OUTPOST_PLUGIN_ABI stays 1 (a plugin that calls them needs an agent that has them). */
int outpost_fd_add(struct outpost_plugin_ctx *pc, int fd, uint32_t events, outpost_fd_fn fn,
                   void *arg);
void outpost_fd_del(struct outpost_plugin_ctx *pc, int id); /* safe inside its own callback */

/* Hands one batch (borrowed JSON object) to the agent core for the hub. The core stores it
 * durably in the agent's spool (SQLite, the agent's database; bounded: past
 * hub.spool_max_bytes the oldest batches are dropped and counted) and the link delivers
 * batches in order, at least once, after a hub restart, agent restart or network cut.
 * stream: "metrics" (plugins/metrics' batches) or "events": {"events": [{"kind", "severity",
 * "ts", "message", "data"}, ...]}, the format of docs/protocol.md ("Events"), checked here
 * (OUTPOST_E_BAD_ARGS and a line in the log when it is wrong). Both streams share the spool,
 * its order and its bound. The core adds "seq": the batch must not have one.
 * Returns 0; OUTPOST_E_UNAVAILABLE when the agent has no hub (nothing stored; the plugin keeps
 * its local values only); OUTPOST_E_BAD_ARGS (another stream, not an object, a "seq");
 * OUTPOST_E_TOO_LARGE (over 3 MiB of JSON, or more than the spool holds); another negative
 * code. Any thread: on the loop thread the batch is stored before the call returns; from
 * another thread it is serialized there and stored at the loop's next turn (0 then means
 * handed over; a failure to store is logged). Added after ABI 1 shipped, like outpost_fd_add. */
int outpost_publish(struct outpost_plugin_ctx *pc, const char *stream, const json_t *batch);
/* The same batch as text: len bytes (borrowed; no NUL needed) of one JSON object in UTF-8,
 * without "seq". For a plugin that writes its batch straight into a buffer it keeps, which
 * costs a fraction of building a tree: the core checks the text with a scan that builds
 * nothing (OUTPOST_E_BAD_ARGS when it is not such an object, or has "seq") and stores it as
 * it is. Same answers and threads as outpost_publish. Added after ABI 1 shipped, like
 * outpost_fd_add. */
int outpost_publish_text(struct outpost_plugin_ctx *pc, const char *stream, const char *text,
                         size_t len);

#ifdef __cplusplus
}
#endif
#endif
