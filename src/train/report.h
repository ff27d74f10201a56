/* The per-run report: DIR/report.svg, two small charts of the test accuracy of every
 * epoch line in DIR/metrics.jsonl (so a resumed run shows all its parts), against
 * wall-clock seconds (the epochs' seconds summed) and against epochs (the line's step
 * over the steps per epoch, so an epoch cut short by --max-steps sits where it ended). */
#ifndef PC_REPORT_H
#define PC_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

/* Read DIR/metrics.jsonl, write DIR/report.svg (via a temporary, renamed); `title` heads
 * the page (XML-escaped). */
pc_status pc_report_write(const char *dir, const char *title, int64_t steps_per_epoch);

/* Write len bytes to path through path.tmp, synced and renamed, so that a failed write
 * never leaves a partial file or damages the previous one. */
pc_status pc_write_file_atomic(const char *path, const void *data, size_t len);

#endif
