#!/usr/bin/env bash
# parcnn's ONNX import against PyTorch on the torchvision classifiers (random weights and
# batch-norm statistics, 10 classes): each exported by torch.onnx.export in eval mode
# (batch norm folded) and with TrainingMode.PRESERVE (BatchNormalization kept), imported
# by parcnn, and its logits on a random (2, 3, SIZE, SIZE) input compared with PyTorch's
# (relative max-abs error), then exported again by parcnn and run on onnxruntime-node.
# Prints one table row per model and mode; docs/interchange.md records the results. The
# quick subset runs in tests/cli_onnx.sh.
#
# usage: bench/onnx-torchvision.sh [MODEL...]   (default: the eight below)
#   PARCNN=path   parcnn binary (default build/parcnn)
#   SIZE=n        input height and width (default 64; inception_v3, which needs 75 or
#                 more, runs at 80 when SIZE is smaller)
#   ORT=dir       a folder with node_modules/onnxruntime-node (default build/onnx-node, where
#                 tests/cli_onnx.sh installs it)
#   MODES="..."   export modes of tests/onnx/torch_export.py (default "eval preserve";
#                 "opset9 opset17": eval mode at torch.onnx's oldest and newest opsets)
set -u
cd "$(dirname "$0")/.."
parcnn=${PARCNN:-build/parcnn}
size=${SIZE:-64}
read -r -a modes <<< "${MODES:-eval preserve}"
ort_dir=${ORT:-build/onnx-node}
py=/usr/bin/python3
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0
                                   squeezenet1_1 googlenet densenet121 inception_v3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
err() { "$py" tests/onnx/compare.py "$1" "$2" 1 x | sed -n 's/.*error \([^ ]*\) .*/\1/p'; }
printf "%-20s %-9s %-14s %-14s %s\n" model export "parcnn-torch" "ort-torch" "note"
for m in "${models[@]}"; do
    s=$size
    [ "$m" = inception_v3 ] && [ "$s" -lt 75 ] && s=80
    "$py" tests/onnx/torch_export.py "$m" "$s" "$tmp/$m" "${modes[@]}" 2> "$tmp/log" ||
        { printf "%-20s %-9s torch.onnx.export failed: %s\n" "$m" - "$(tail -n 1 "$tmp/log")"; continue; }
    for mode in "${modes[@]}"; do
        p=$tmp/$m-$mode
        if ! "$parcnn" import "$p.onnx" --out "$p" > /dev/null 2> "$tmp/err"; then
            printf "%-20s %-9s %-14s %-14s %s\n" "$m" "$mode" - - "$(cut -c1-160 "$tmp/err")"
            continue
        fi
        "$parcnn" predict --weights "$p/model.safetensors" --npy-in "$tmp/$m.x.npy" --npy-out "$p.npy" > /dev/null
        "$parcnn" export --weights "$p/model.safetensors" --out "$p-re.onnx" > /dev/null &&
        NODE_PATH="$ort_dir/node_modules" node tests/onnx/ort_run.js "$p-re.onnx" "$tmp/$m.x.npy" "$p-ort.npy"
        printf "%-20s %-9s %-14s %-14s %s\n" "$m" "$mode" "$(err "$p.npy" "$tmp/$m.torch.npy")" \
            "$(err "$p-ort.npy" "$tmp/$m.torch.npy")" "$("$parcnn" inspect "$p/model.safetensors" | sed -n 's/^total: \([0-9]*\) parameters.*/\1/p') parameters"
    done
done
