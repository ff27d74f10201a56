/* TensorBoard event files: what `tensorboard --logdir DIR` (and torch's SummaryWriter,
 * tf.summary) read and write. A file is a sequence of TFRecords (little-endian uint64
 * length, masked CRC32C of the length, the data, masked CRC32C of the data), each an
 * `Event` protocol buffer: first one with file_version "brain.Event:2", then events
 * with wall_time, step and a `Summary` of (tag, simple_value) scalars. The protocol
 * buffers are encoded here by hand (a few fields of tensorflow/core/util/event.proto
 * and summary.proto). */
#ifndef PC_TENSORBOARD_H
#define PC_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

typedef struct pc_tb_writer pc_tb_writer;

/* Create dir (and parents) and a new file events.out.tfevents.SECONDS.HOST.PID in it;
 * a resumed run adds a file, TensorBoard reads them all. */
pc_status pc_tb_open(const char *dir, pc_tb_writer **out);
/* One event at `step`: the n scalars tags[i] = values[i]; written through (flushed),
 * so a live TensorBoard sees it at once. */
pc_status pc_tb_scalars(pc_tb_writer *w, int64_t step, const char *const *tags,
                        const float *values, int n);
void pc_tb_close(pc_tb_writer *w);

/* CRC-32C (Castagnoli) of n bytes, and TFRecord's masked form of a CRC. */
uint32_t pc_crc32c(const void *data, size_t n);
uint32_t pc_crc32c_mask(uint32_t crc);

#endif
