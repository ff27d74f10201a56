/* Training settings as text: every rank of an MPI job must be started with the same ones,
 * and a checkpoint records those that must not change on --resume. */
#ifndef PC_SETTINGS_H
#define PC_SETTINGS_H

#include <stddef.h>

#include "train/train.h"

/* Every flag of pc_train_flags (so every flag added later too) with its value in c, as
 * space-separated NAME=VALUE words in the table's order (values may hold spaces: a word
 * without '=' continues the previous value); the progress bar (rank 0's only) left out. */
void pc_train_settings_format(const pc_train_config *c, char *buf, size_t size);

/* Compare two settings strings key by key and describe every key whose values differ as
 * "key: LABEL_A has X, LABEL_B has Y" ("none" for a key one side lacks), joined by "; ". */
void pc_settings_diff(const char *a, const char *label_a, const char *b, const char *label_b,
                      char *diff, size_t size);

#endif
