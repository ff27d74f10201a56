/* The per-run report: DIR/report.svg, two small charts of the test accuracy of every
 * epoch line in DIR/metrics.jsonl (so a resumed run shows all its parts), against
 * wall-clock seconds (the epochs' seconds summed) and against epochs (the line's step
 * over the steps per epoch, so an epoch cut short by --max-steps sits where it ended). */
#ifndef PC_REPORT_H
#define PC_REPORT_H

#include <stdint.h>

#include "core/common.h"

/* Read DIR/metrics.jsonl, write DIR/report.svg (via a temporary, renamed); `title` heads
 * the page (XML-escaped). */
pc_status pc_report_write(const char *dir, const char *title, int64_t steps_per_epoch);

#endif
