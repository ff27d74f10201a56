/* The interchange subcommands (tools/interchange.c): export, import, inspect, and the
 * .npy path of predict. Each returns the exit status. */
#ifndef PC_INTERCHANGE_H
#define PC_INTERCHANGE_H

#include "nn/exec.h"

int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* predict --npy-in X.npy --npy-out Y.npy: the logits of a float32 (N, C, H, W) array fed
 * to the network as it is. */
int predict_npy(const char *weights, const pc_exec_options *exec, int fold_bn, const char *in_path,
                const char *out_path);

#endif
