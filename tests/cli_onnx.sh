#!/usr/bin/env bash
# ONNX and .npy interchange (docs/interchange.md), against real producers and consumers:
# - every zoo model and tests/onnx/{elementwise,branches,windows}.cfg (briefly trained)
#   exported; Debian's onnx checker (full_check) accepts it; onnxruntime-node computes the
#   same logits as parcnn predict --npy-in within 1e-4;
#   import(export(m)) gives bit-identical logits; predict with the batch norms folded (its
#   default) and with --no-fold-bn agree within 1e-5;
# - torchvision resnet18 and mobilenet_v2 exported by torch.onnx.export (eval mode: batch
#   norm folded, and TrainingMode.PRESERVE: BatchNormalization kept), and mobilenet_v3_small,
#   squeezenet1_1 and googlenet (eval mode) import and give PyTorch's logits within 1e-4;
#   so does broadcast_net.py (Adds of per-channel constants and of computed (N, C, 1, 1)
#   tensors, a Mul + Add decomposed batch norm); parcnn's re-export of resnet18 and of
#   broadcast_net runs on onnxruntime;
# - an imported resnet18 trains: one SGD step's gradients within 1e-3 of PyTorch's (and a
#   resnet-like model's and broadcast_net's on every kernel set and convolution algorithm),
#   the same bytes on 1 and 2 workers (and for imported mobilenet_v2 and broadcast_net);
#   the fine-tuned resnet18 exported runs on onnxruntime and evaluates as its safetensors;
# - fuzz_onnx's seed graphs (every operator of the import table) on onnxruntime;
# - bad ONNX and .npy files: one clear line, exit 1 or 2.
# onnxruntime-node is installed once into the build tree (npm; ONNXRUNTIME_NODE_INSTALL=skip,
# the package bundles libonnxruntime.so).
# usage: cli_onnx.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
src=$2
py=/usr/bin/python3   # Debian's, with python3-onnx, -numpy, -torch, -torchvision
. "$(dirname "$0")/lib.sh"
# check NAME COMMAND...: the command succeeds (its output is shown on failure)
check() {
    local name=$1; shift
    if "$@" > "$tmp/out" 2>&1; then ok "$name: $(tail -n 1 "$tmp/out")"; else bad "$name"; cat "$tmp/out"; fi
}
# expect NAME STATUS PATTERN -- COMMAND...: exit status and one stderr line matching PATTERN

ort_dir=$PWD/onnx-node
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
    mkdir -p "$ort_dir"
    (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --silent \
        onnxruntime-node@1.31.1) || { echo "FAIL: npm install onnxruntime-node"; exit 1; }
fi
ort() { NODE_PATH="$ort_dir/node_modules" node "$src/tests/onnx/ort_run.js" "$@"; }
compare() { "$py" "$src/tests/onnx/compare.py" "$@"; }
# check_vs_ort MODEL.onnx X.npy NAME WHAT: import MODEL into $tmp/NAME, predict X, and check
# parcnn's logits against onnxruntime's on the same file
check_vs_ort() {
    "$parcnn" import "$1" --out "$tmp/$3" > /dev/null &&
    "$parcnn" predict --weights "$tmp/$3/model.safetensors" --npy-in "$2" --npy-out "$tmp/$3.npy" > /dev/null &&
    ort "$1" "$2" "$tmp/$3.ort.npy"
    check "$4" compare "$tmp/$3.npy" "$tmp/$3.ort.npy" 1e-4 "$3"
}

# ---- every zoo model: export, checker, onnxruntime, round trip
"$py" -c "import numpy as np; np.save('$tmp/x.npy', np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32))"
exports=()
for m in $("$parcnn" models | awk 'NR > 1 && $2 ~ /^[0-9]+$/ {print $1}') \
         "$src/tests/onnx/elementwise.cfg" "$src/tests/onnx/branches.cfg" \
         "$src/tests/onnx/windows.cfg"; do
    name=$(basename "$m" .cfg)
    d=$tmp/$name
    "$parcnn" train --model "$m" --limit 64 --eval-limit 32 --epochs 1 --batch 32 --no-progress \
        --out "$d" > "$tmp/train.log" 2>&1 || { bad "$name: train"; cat "$tmp/train.log"; continue; }
    "$parcnn" export --weights "$d/model.safetensors" --out "$d.onnx" > /dev/null &&
    "$parcnn" predict --weights "$d/model.safetensors" --npy-in "$tmp/x.npy" --npy-out "$d.parcnn.npy" > /dev/null &&
    ort "$d.onnx" "$tmp/x.npy" "$d.ort.npy" || { bad "$name: export or predict"; continue; }
    exports+=("$d.onnx")
    check "$name: onnxruntime vs parcnn" compare "$d.ort.npy" "$d.parcnn.npy" 1e-4 "$name"
    "$parcnn" import "$d.onnx" --out "$d-imported" > /dev/null &&
    "$parcnn" predict --weights "$d-imported/model.safetensors" --npy-in "$tmp/x.npy" --npy-out "$d.rt.npy" > /dev/null
    check "$name: import(export(m))" compare "$d.rt.npy" "$d.parcnn.npy" 0 "$name round trip"
done
check "onnx checker on every export" "$py" "$src/tests/onnx/check_model.py" "${exports[@]}"
check "predict --weights MODEL.onnx" "$parcnn" predict --weights "$tmp/resnet20.onnx" --npy-in "$tmp/x.npy" --npy-out "$tmp/direct.npy"
check "  same logits" compare "$tmp/direct.npy" "$tmp/resnet20.parcnn.npy" 0 "ONNX as --weights"
check "predict --no-fold-bn" "$parcnn" predict --weights "$tmp/resnet20/model.safetensors" --no-fold-bn --npy-in "$tmp/x.npy" --npy-out "$tmp/nofold.npy"
check "  batch norms folded or not: the same logits up to rounding" compare "$tmp/nofold.npy" "$tmp/resnet20.parcnn.npy" 1e-5 "--no-fold-bn"
check "inspect safetensors" "$parcnn" inspect "$tmp/resnet20/model.safetensors"
grep -q "^total: 269434 parameters" "$tmp/out" && ok "inspect counts resnet20's parameters" || bad "inspect total"
check "inspect ONNX" "$parcnn" inspect "$tmp/minixception.onnx"

# ---- PyTorch as the producer: torchvision resnet18 and mobilenet_v2 in both export modes,
# mobilenet_v3_small (squeeze-and-excitation, hardswish), squeezenet1_1 (concat; also at
# opset 9, where ceil mode is a MaxPool's larger end padding) and googlenet (pools in ceil
# mode) in eval mode, broadcast_net.py in both modes and at opsets 9 and 17
# (bench/onnx-torchvision.sh runs all of them both ways, and more)
for net in r18:resnet18:eval,preserve mv2:mobilenet_v2:eval,preserve mv3:mobilenet_v3_small:eval \
           sq:squeezenet1_1:eval,opset9 gn:googlenet:eval ba:broadcast_add:eval,preserve,opset9,opset17; do
    IFS=: read -r short model modes <<< "$net"
    p=$tmp/$short
    "$py" "$src/tests/onnx/torch_export.py" "$model" 64 "$p" ${modes//,/ } || bad "torch.onnx.export $model"
    for mode in ${modes//,/ }; do
        "$parcnn" import "$p-$mode.onnx" --out "$p-$mode" > /dev/null &&
        "$parcnn" predict --weights "$p-$mode/model.safetensors" --npy-in "$p.x.npy" --npy-out "$p-$mode.npy" > /dev/null
        check "$model ($mode export) vs PyTorch" compare "$p-$mode.npy" "$p.torch.npy" 1e-4 "$model $mode"
    done
done
"$parcnn" export --weights "$tmp/r18-preserve/model.safetensors" --out "$tmp/r18-re.onnx" > /dev/null &&
ort "$tmp/r18-re.onnx" "$tmp/r18.x.npy" "$tmp/r18-re.npy"
check "resnet18 re-exported, onnxruntime vs PyTorch" compare "$tmp/r18-re.npy" "$tmp/r18.torch.npy" 1e-4 "resnet18 re-export"
"$parcnn" export --weights "$tmp/ba-eval/model.safetensors" --out "$tmp/ba-re.onnx" > /dev/null &&
ort "$tmp/ba-re.onnx" "$tmp/ba.x.npy" "$tmp/ba-re.npy"
check "broadcast_add re-exported, onnxruntime vs PyTorch" compare "$tmp/ba-re.npy" "$tmp/ba.torch.npy" 1e-4 "broadcast_add re-export"

# Small graphs onnxruntime computes: Pad below opset 11 (pads and value as attributes) and
# Conv padded unequally (pads, auto_pad SAME_UPPER and SAME_LOWER)
"$py" "$src/tests/onnx/make_graphs.py" "$tmp"
check_vs_ort "$tmp/pad10.onnx" "$tmp/x.npy" pad10 "Pad with attributes (opset 10) vs onnxruntime"
check_vs_ort "$tmp/same.onnx" "$tmp/x.npy" same "Conv with unequal padding (pads, SAME_UPPER, SAME_LOWER) vs onnxruntime"

# fuzz_onnx's seeds (tests/fuzz/corpus/onnx: together every operator and pattern of the
# import table, e.g. MatMul + Add, Reshape, ReduceMean, GELU, weights in Constant nodes,
# batch norm's epsilon 1e-3) are valid models: the checker accepts them and onnxruntime
# computes parcnn's logits
check "onnx checker on fuzz_onnx's seeds" "$py" "$src/tests/onnx/check_model.py" "$src"/tests/fuzz/corpus/onnx/*.onnx
"$py" -c "import numpy as np; np.save('$tmp/x6.npy', np.random.default_rng(3).standard_normal((3, 2, 6, 6)).astype(np.float32))"
for f in "$src"/tests/fuzz/corpus/onnx/*.onnx; do
    n=$(basename "$f" .onnx)
    check_vs_ort "$f" "$tmp/x6.npy" "seed-$n" "fuzz seed $n: parcnn vs onnxruntime"
done

# ---- training an imported model: one SGD step's gradients against PyTorch's, and the same
# bytes on 1 and 2 workers. resnet18 at 32x32 on the oneDNN direct convolutions; a
# resnet-like model (torch_sgd.py resnet_mini: stride-2 and 1x1 downsampling convolutions,
# max pool, batch norm in training mode) on images whose ReLU inputs and max-pool gaps keep
# a margin from their kinks, on every kernel set and convolution algorithm. (resnet18's
# smallest ReLU input lies 7e-7 of its channel's deviation from zero: there any rounding
# difference flips ReLUs and moves its gradients by 1e-2, see torch_sgd.py.)
sgd_step() { # NAME DIR BATCH: prepare, import, one step with each of the remaining flags
    local name=$1 d=$2 n=$3; shift 3
    mkdir -p "$d/data"
    "$py" "$src/tests/onnx/torch_sgd.py" prepare "$name" "$d" "$n" || { bad "torch_sgd.py prepare $name"; return; }
    "$parcnn" import "$d/model.onnx" --out "$d/imported" --mean 0.5 --std 0.25 > /dev/null
    for kernels in "$@"; do
        "$parcnn" train --data "cifar10:$d/data" --model "$d/imported/model.safetensors" --epochs 1 \
            --batch "$n" --shard-size "$n" --workers 1 --optimizer sgd --momentum 0 --lr 1 \
            --schedule constant --no-progress $kernels --out "$d/run" --overwrite > /dev/null
        check "$name imported, one SGD step vs PyTorch ($kernels)" "$py" "$src/tests/onnx/torch_sgd.py" \
            check "$name" "$d" "$d/imported/model.safetensors" "$d/run/model.safetensors" 1 0.5 0.25
    done
}
sgd_step resnet18 "$tmp/sgd" 32 "--conv-algo direct"
sgd_step resnet_mini "$tmp/mini" 16 "--conv-algo direct" "--conv-algo auto" "--conv-algo winograd" "--kernels ref"
sgd_step broadcast_add "$tmp/bcast" 8 "--conv-algo direct" "--conv-algo auto" "--conv-algo winograd" "--kernels ref"
sgd=(--data "cifar10:$tmp/sgd/data" --model "$tmp/sgd/imported/model.safetensors" --epochs 1
     --batch 32 --optimizer sgd --momentum 0 --lr 1 --schedule constant --no-progress)
for w in 1 2; do
    "$parcnn" train "${sgd[@]}" --shard-size 16 --workers $w --out "$tmp/sgd/w$w" > /dev/null
done
check "imported model trains to the same bytes on 1 and 2 workers" cmp "$tmp/sgd/w1/model.safetensors" "$tmp/sgd/w2/model.safetensors"
# mobilenet_v2 (ReLU6 fused into batch norm, and into direct convolutions forward) likewise
mkdir -p "$tmp/mv2sgd/data"
"$py" "$src/tests/onnx/torch_sgd.py" prepare mobilenet_v2 "$tmp/mv2sgd" 32 &&
"$parcnn" import "$tmp/mv2sgd/model.onnx" --out "$tmp/mv2sgd/imported" > /dev/null || bad "mobilenet_v2 at 32x32: export or import"
for w in 1 2; do
    "$parcnn" train "${sgd[@]}" --model "$tmp/mv2sgd/imported/model.safetensors" --shard-size 16 \
        --workers $w --out "$tmp/mv2sgd/w$w" > /dev/null
done
check "imported mobilenet_v2 trains to the same bytes on 1 and 2 workers" cmp "$tmp/mv2sgd/w1/model.safetensors" "$tmp/mv2sgd/w2/model.safetensors"
# broadcast_net (per-channel constants as depthwise convolutions and biases, broadcast
# [add]s) likewise, 6 steps (at lr 1 it diverges within them)
for w in 1 2; do
    "$parcnn" train "${sgd[@]}" --data "cifar10:$tmp/bcast/data" --model "$tmp/bcast/imported/model.safetensors" \
        --epochs 3 --batch 4 --shard-size 2 --lr 0.1 --workers $w --out "$tmp/bcast/w$w" > "$tmp/bcast/w$w.log" 2>&1 ||
        { bad "broadcast_net training on $w workers"; cat "$tmp/bcast/w$w.log"; }
done
check "imported broadcast_net trains to the same bytes on 1 and 2 workers" cmp "$tmp/bcast/w1/model.safetensors" "$tmp/bcast/w2/model.safetensors"
# a fine-tuned imported model (resnet18 after its training above) exported: onnxruntime
# computes parcnn's logits; the onnx checker accepts it and the other re-exports
"$py" -c "import numpy as np; np.save('$tmp/x32.npy', np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32))"
"$parcnn" export --weights "$tmp/sgd/w1/model.safetensors" --out "$tmp/ft.onnx" > /dev/null &&
"$parcnn" predict --weights "$tmp/sgd/w1/model.safetensors" --npy-in "$tmp/x32.npy" --npy-out "$tmp/ft.parcnn.npy" > /dev/null &&
ort "$tmp/ft.onnx" "$tmp/x32.npy" "$tmp/ft.ort.npy"
check "fine-tuned imported resnet18 exported: onnxruntime vs parcnn" compare "$tmp/ft.ort.npy" "$tmp/ft.parcnn.npy" 1e-4 "fine-tuned resnet18"
"$parcnn" eval --weights "$tmp/ft.onnx" --data "cifar10:$tmp/sgd/data" --json > "$tmp/ft.eval.onnx" &&
"$parcnn" eval --weights "$tmp/sgd/w1/model.safetensors" --data "cifar10:$tmp/sgd/data" --json > "$tmp/ft.eval.st"
check "eval --weights MODEL.onnx: the results of its safetensors" cmp "$tmp/ft.eval.onnx" "$tmp/ft.eval.st"
check "onnx checker on the re-exports of imported models" "$py" "$src/tests/onnx/check_model.py" "$tmp/r18-re.onnx" "$tmp/ba-re.onnx" "$tmp/ft.onnx"
expect "train --model of another input size" 2 "--model .*r18-eval.onnx: takes 3x64x64 images of 10 classes, the data has 3x32x32" -- \
    "$parcnn" train "${sgd[@]}" --model "$tmp/r18-eval.onnx" --out "$tmp/sgd/bad"

# ---- bad input
"$py" "$src/tests/onnx/make_bad.py" "$tmp"
head -c 3000 "$tmp/resnet20.onnx" > "$tmp/trunc.onnx"
printf 'this is not a protobuf message at all \377\377\377\377' > "$tmp/corrupt.onnx"
: > "$tmp/empty.onnx"
expect "truncated ONNX" 1 "trunc.onnx: " -- "$parcnn" import "$tmp/trunc.onnx" --out "$tmp/o"
expect "corrupt ONNX" 1 "corrupt.onnx: not an ONNX model" -- "$parcnn" import "$tmp/corrupt.onnx" --out "$tmp/o"
expect "empty ONNX" 1 "empty.onnx: " -- "$parcnn" import "$tmp/empty.onnx" --out "$tmp/o"
expect "missing ONNX" 1 "nothere.onnx: cannot open" -- "$parcnn" import "$tmp/nothere.onnx" --out "$tmp/o"
expect "unsupported op" 1 "node leaky \(LeakyRelu\): operator LeakyRelu is not supported" -- "$parcnn" import "$tmp/unsupported_op.onnx" --out "$tmp/o"
expect "unsupported attribute" 1 "node conv \(Conv\): dilations must be two equal positive values" -- "$parcnn" import "$tmp/dilation.onnx" --out "$tmp/o"
expect "missing initializer" 1 "node conv \(Conv\): input w is neither an initializer" -- "$parcnn" import "$tmp/missing_init.onnx" --out "$tmp/o"
expect "3-D input" 1 "input x is not a 4-D float tensor" -- "$parcnn" import "$tmp/input_3d.onnx" --out "$tmp/o"
expect "huge input" 1 "input x of 1x100000x100000" -- "$parcnn" import "$tmp/huge_dims.onnx" --out "$tmp/o"
expect "old opset" 1 "opset 7 of the default domain" -- "$parcnn" import "$tmp/opset_7.onnx" --out "$tmp/o"
expect "symbolic height and width" 1 "dynamic_hw.onnx: input x: channels, height and width must be fixed" -- "$parcnn" import "$tmp/dynamic_hw.onnx" --out "$tmp/o"
expect "symbolic channels" 1 "dynamic_c.onnx: input x: channels, height and width must be fixed" -- "$parcnn" import "$tmp/dynamic_c.onnx" --out "$tmp/o"
expect "5-D input" 1 "input x is not a 4-D float tensor" -- "$parcnn" import "$tmp/input_5d.onnx" --out "$tmp/o"
expect "shape computed in the graph" 1 "node shape \(Shape\): operator Shape is not supported" -- "$parcnn" import "$tmp/dynamic_reshape.onnx" --out "$tmp/o"
expect "unsupported pool attribute" 1 "node mp \(MaxPool\): storage_order=1 is not supported" -- "$parcnn" import "$tmp/storage_order.onnx" --out "$tmp/o"
expect "weight shorter than its shape" 1 "node conv \(Conv\): tensor w holds 10 values, its shape says 36" -- "$parcnn" import "$tmp/short_weight.onnx" --out "$tmp/o"
# inputs fuzz_onnx found (tests/fuzz/regressions/onnx): a NULL strcmp, a NaN converted to
# an integer (undefined behaviour, which the ASan + UBSan build stops at), a segmentation
# fault on a node without outputs inside a GELU pattern
expect "fuzz finding: a node without op_type" 1 "no-op-type.onnx: node 4 .* has no op_type" -- "$parcnn" import "$src/tests/fuzz/regressions/onnx/no-op-type.onnx" --out "$tmp/o"
expect "fuzz finding: a node without outputs" 1 "no-output.onnx: node 9 \(gelu\) has no output" -- "$parcnn" import "$src/tests/fuzz/regressions/onnx/no-output.onnx" --out "$tmp/o"
expect "fuzz finding: a NaN Reshape shape" 1 "nan-shape.onnx: node rs \(Reshape\): tensor shape holds -?nan where an integer is expected" -- "$parcnn" import "$src/tests/fuzz/regressions/onnx/nan-shape.onnx" --out "$tmp/o"
expect "Add broadcasting a constant along H" 1 "node add \(Add\): constant b of shape \(1, 1, 8, 1\) with a tensor of shape \(N, 4, 8, 8\): only a scalar or a per-channel constant" -- "$parcnn" import "$tmp/add_const_h.onnx" --out "$tmp/o"
expect "Add broadcasting along H" 1 "node add \(Add\): inputs of shapes \(N, 4, 8, 8\) and \(N, 4, 1, 8\): only equal shapes or a per-channel \(N, C, 1, 1\) operand" -- "$parcnn" import "$tmp/add_bcast_h.onnx" --out "$tmp/o"
expect "Mul by a constant of a whole plane" 1 "node mul \(Mul\): constant s of shape \(4, 8, 8\) with a tensor of shape \(N, 4, 8, 8\)" -- "$parcnn" import "$tmp/mul_const_plane.onnx" --out "$tmp/o"
expect "weight of 2^40 values" 1 "node conv \(Conv\): weight w: expected" -- "$parcnn" import "$tmp/huge_weight.onnx" --out "$tmp/o"
expect "import without --out" 2 "--out DIR is required" -- "$parcnn" import "$tmp/good.onnx"
expect "import --mean count" 2 "--mean: 3 values for a 1-channel input" -- "$parcnn" import "$tmp/good.onnx" --out "$tmp/o" --mean 1,2,3
expect "export without --out" 2 "--out FILE is required" -- "$parcnn" export --weights "$tmp/x.npy"
expect "export of a non-model" 1 "x.npy: " -- "$parcnn" export --weights "$tmp/x.npy" --out "$tmp/o.onnx"
check "good small ONNX imports" "$parcnn" import "$tmp/good.onnx" --out "$tmp/good"
w=$tmp/resnet20/model.safetensors
"$py" - "$tmp" <<'PY'
import sys
import numpy as np
t = sys.argv[1]
np.save(f"{t}/f64.npy", np.zeros((1, 1, 28, 28)))
np.save(f"{t}/fortran.npy", np.asfortranarray(np.zeros((2, 1, 28, 28), np.float32)))
np.save(f"{t}/rank3.npy", np.zeros((1, 28, 28), np.float32))
np.save(f"{t}/rgb.npy", np.zeros((1, 3, 28, 28), np.float32))
np.save(f"{t}/small.npy", np.zeros((1, 1, 20, 20), np.float32))
b = open(f"{t}/rgb.npy", "rb").read()
open(f"{t}/trunc.npy", "wb").write(b[:-10])
open(f"{t}/long.npy", "wb").write(b + b"xxxx")
PY
npy() { "$parcnn" predict --weights "$w" --npy-in "$tmp/$1" --npy-out "$tmp/y.npy"; }
expect "npy float64" 1 "f64.npy: dtype '<f8', expected little-endian float32" -- npy f64.npy
expect "npy Fortran order" 1 "fortran.npy: array in Fortran order" -- npy fortran.npy
expect "npy 3-D" 1 "rank3.npy: expected a 4-D float32 array \(N, C, H, W\), got 3" -- npy rank3.npy
expect "npy wrong channels" 2 "takes \(N, 1, 28, 28\) inputs, the array is \(1, 3, 28, 28\)" -- npy rgb.npy
expect "npy truncated" 1 "trunc.npy: truncated" -- npy trunc.npy
expect "npy trailing bytes" 1 "long.npy: bytes after the" -- npy long.npy
expect "npy not npy" 1 "resnet20.onnx: not a .npy file" -- npy resnet20.onnx
expect "npy missing" 1 "nothere.npy: cannot open" -- npy nothere.npy
expect "--npy-in without --npy-out" 2 "needs --npy-out" -- "$parcnn" predict --weights "$w" --npy-in "$tmp/x.npy"
# a fully convolutional network takes any input size (resnet20: convolutions, gap, dense)
check "npy of another size (fully convolutional)" npy small.npy

finish
