/* A validation set held out of a training set that has a test set of its own (--val-split
 * on Fashion-MNIST, CIFAR, idx data or an image folder with test/): per class, the class's
 * samples (in dataset order) are permuted with pc_stream{pc_rand64(seed, PC_RNG_SPLIT,
 * class, 1, 0)} and the first round(n x fraction) of them (at least 1 and at most n - 1
 * when n >= 2, none when n == 1) move to the validation set, as the folder split of
 * data/folder.h does with files. Both parts keep the dataset order. */
#ifndef PC_HOLDOUT_H
#define PC_HOLDOUT_H

#include "data/dataset.h"

/* Move the held-out samples of d into *val (a dataset of its own: pixels, labels, class
 * names). Only for datasets in memory (d->pixels): one decoded on demand or a feature
 * dataset is a usage error. */
pc_status pc_dataset_hold_out(pc_dataset *d, double fraction, uint64_t seed, pc_dataset *val);

#endif
