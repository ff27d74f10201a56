#!/usr/bin/env bash
# One SGD step of the torchvision classifiers imported from PyTorch, parcnn's gradients against
# PyTorch's (tests/onnx/torch_sgd.py: PRESERVE export, 3x32x32 random CIFAR-format images,
# batch-norm batch statistics, lr 1, gradients recovered from the weights before and after,
# relative max-abs over the parameter tensors; dropout and stochastic depth at rate 0, since
# their random masks cannot be shared), with --conv-algo direct and --conv-algo auto, and how
# far PyTorch's own gradients move when its weights are multiplied by 1 + 1e-6 x N(0, 1): a
# difference of that size is a ReLU or max-pool kink flipped by rounding, not a kernel error.
# Prints one row per model; docs/interchange.md records the results. The gradient tests of
# resnet18, resnet_mini and broadcast_net run in tests/cli_onnx.sh.
#
# usage: bench/onnx-grad.sh
#   MODELS="..."  torchvision models (default: the seven below)
#   BATCH=n       training images, one step (default 8)
#   NOISE=eps     relative weight noise of the PyTorch sensitivity column (default 1e-6)
#   PARCNN=path   parcnn binary (default build/parcnn)
set -u
cd "$(dirname "$0")/.."
parcnn=${PARCNN:-build/parcnn}
batch=${BATCH:-8}
noise=${NOISE:-1e-6}
read -r -a models <<< "${MODELS:-resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0 squeezenet1_1 googlenet densenet121}"
py=/usr/bin/python3
sgd=tests/onnx/torch_sgd.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "X (P)" from check's or sensitivity's output: the worst error and its parameter tensor, and
# "+N zero: Z" for the N tensors whose gradient is zero in exact arithmetic, Z their largest
# difference relative to the model's largest gradient (or the last line of what failed)
figure() {
    local out
    out=$(cat)
    sed -n 's/.*\(within\|by\) \([0-9.e+-]*\) .*(worst: \([^;)]*\).*/\2 (\3)/p' <<< "$out" | grep . ||
        { echo "failed: $(tail -n 1 <<< "$out" | cut -c1-60)"; return; }
    sed -n 's/^ *\([0-9]*\) tensors left out.*within \([0-9.e+-]*\) of the largest.*/+\1 zero: \2/p' <<< "$out"
}
printf "%-20s %-6s %-52s %-52s %s\n" model batch "direct" "auto" "PyTorch under $noise noise"
for m in "${models[@]}"; do
    d=$tmp/$m
    mkdir -p "$d/data"
    if ! "$py" "$sgd" prepare "$m" "$d" "$batch" no-dropout > /dev/null 2> "$tmp/log" ||
       ! "$parcnn" import "$d/model.onnx" --out "$d/imported" --mean 0.5 --std 0.25 > /dev/null 2> "$tmp/log"; then
        printf "%-20s %-6s export or import failed: %s\n" "$m" "$batch" "$(tail -n 1 "$tmp/log" | cut -c1-160)"
        continue
    fi
    cols=()
    for algo in direct auto; do
        if "$parcnn" train --data "cifar10:$d/data" --model "$d/imported/model.safetensors" --epochs 1 \
               --batch "$batch" --shard-size "$batch" --workers 1 --optimizer sgd --momentum 0 --lr 1 \
               --schedule constant --no-progress --conv-algo "$algo" --out "$d/$algo" --overwrite \
               > /dev/null 2> "$tmp/log"; then
            cols+=("$("$py" "$sgd" check "$m" "$d" "$d/imported/model.safetensors" "$d/$algo/model.safetensors" \
                       1 0.5 0.25 2>&1 | figure | paste -sd ' ')")
        else
            cols+=("train failed: $(tail -n 1 "$tmp/log" | cut -c1-60)")
        fi
    done
    printf "%-20s %-6s %-52s %-52s %s\n" "$m" "$batch" "${cols[0]}" "${cols[1]}" \
        "$("$py" "$sgd" sensitivity "$m" "$d" 0.5 0.25 "$noise" 2>&1 | figure | paste -sd ' ')"
done
