/* What the CLI shows people: a task's per-host outcomes, progress and summary lines, tables,
 * times. Every function appends text to a buf (the caller writes it), so the formats are
 * unit-tested. Text from hosts and from the hub is shown with control characters escaped
 * (ESC as ^[), so command output cannot drive the operator's terminal. */
#ifndef OUTPOST_CLI_OUTPUT_H
#define OUTPOST_CLI_OUTPUT_H

#include "core/buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define OUT_INDENT "    " /* a host's stdout, result lines */
#define OUT_STDERR "  ! " /* a host's stderr */
#define OUT_MAX_LISTED 20 /* hosts named in the summary's "not ok" line */
#define OUT_ONE_LINE 96   /* a result whose compact JSON is longer is shown indented */

/* One line of text from elsewhere: control characters as ^X, newlines too. */
int out_text(struct buf *b, const char *s);
/* Multi-line text, each line after prefix and ending in '\n'; tabs kept, a final newline does
 * not make an empty line, "\r\n" counts as one line end. */
int out_lines(struct buf *b, const char *text, const char *prefix);

/* Per-host states: ok | failed | timeout | lost | refused | expired | cancelled are final. */
int out_state_final(const char *state);
/* Final and not ok: the host counts against the exit status. */
int out_state_bad(const char *state);

/* A task's counts, from its "counts" and "total". */
struct out_counts {
	int64_t total, done, ok, bad, pending; /* pending: queued + sent + running */
};
void out_counts(const json_t *task, struct out_counts *c);

/* One host's outcome (a row of task.hosts): a header line "id: state, details (time)", then
 * its output or result indented. How the result reads depends on plugin.op: exec.run shows
 * exit code and stdout/stderr, file.put whether it changed, anything else its JSON. */
int out_host(struct buf *b, const char *plugin, const char *op, const json_t *host);

/* Host ids in node-set notation, as ClusterShell and pdsh users write them: ids that differ
 * only in their last number fold into brackets with ranges, padding kept
 * ("web01 web02 web03 web07 db1" -> "db1,web[01-03,07]"). */
int out_nodeset(struct buf *b, const json_t *ids);
/* `run --group`: final outcomes (rows of task.hosts) that read the same apart from their host
 * and times are shown once, after the hosts that had them in node-set notation and their
 * count, as clush -b does; the largest group first. */
int out_groups(struct buf *b, const char *plugin, const char *op, const json_t *hosts);

/* "37/1000 done, 2 failed" (no newline). */
int out_progress(struct buf *b, const struct out_counts *c);
/* The end of a run: "task ID: N hosts, N ok, N failed, ... in 12.3s" and a line naming up to
 * OUT_MAX_LISTED hosts that were not ok (bad_ids: array of strings). elapsed_ms < 0: not shown. */
int out_summary(struct buf *b, const json_t *task, const json_t *bad_ids, int64_t elapsed_ms);
/* The head of `tasks show`: id, target, op, args, state, times, counts. */
int out_task_head(struct buf *b, const json_t *task);

/* "850ms", "12.3s", "4m05s", "2h10m", "3d4h". */
int out_duration(struct buf *b, int64_t ms);
/* Local time "2024-11-25 14:03:12"; "-" for 0. */
int out_time(struct buf *b, int64_t ms);
/* "12s ago", "3m ago", "5h ago", "2d ago"; "never" for 0. */
int out_age(struct buf *b, int64_t now_ms, int64_t ms);
/* Labels as "k=v,k2=v2" ("-" when none). */
int out_labels(struct buf *b, const json_t *labels);
/* A JSON value flattened to "prefix.key: value" lines (facts), each after indent. */
int out_flat(struct buf *b, const char *indent, const char *prefix, const json_t *v);

/* A table: a header row and rows of cells, columns padded to their widest cell. */
struct out_table;
struct out_table *out_table_new(size_t ncols, const char *const *header);
/* Copies the cells (ncols of them; NULL shows as "-"), escaping control characters. */
int out_table_add(struct out_table *t, const char *const *cells);
int out_table_render(const struct out_table *t, struct buf *b);
void out_table_free(struct out_table *t);

/* A list command's row: fills cells[0..ncols) for one item of the list. A cell may point into
 * item, into scratch[0..OUT_ROW_BUFS) (new for each row, so one left unwritten is NULL), or be
 * NULL (shown as "-"). arg is the caller's. 0, or -1 (out of memory). */
#define OUT_ROW_BUFS 8
typedef int (*out_row_fn)(const json_t *item, const void *arg, struct buf *scratch,
                          const char **cells);
/* The table of a JSON array, a row per item (row); rendered onto b. */
int out_table_rows(struct buf *b, size_t ncols, const char *const *header, const json_t *list,
                   out_row_fn row, const void *arg);

#endif
