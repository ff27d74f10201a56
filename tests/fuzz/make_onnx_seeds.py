"""Write the seed corpus of fuzz_onnx (tests/fuzz/corpus/onnx): tiny ONNX graphs (1 to 4
channels, 6x6 inputs) that parcnn imports, together using every operator and pattern of the
import table in docs/interchange.md. Run with Debian's python3-onnx:
    /usr/bin/python3 tests/fuzz/make_onnx_seeds.py tests/fuzz/corpus/onnx"""
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

out = sys.argv[1]
rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def graph(name, nodes, inits, in_shape=("N", 2, 6, 6), classes=3, opset=13, meta=None):
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if meta:
        helper.set_model_props(m, meta)
    save(m, f"{out}/{name}.onnx")


def n(op, ins, outs, **attrs):
    return helper.make_node(op, ins, [outs], name=outs, **attrs)


def head(x, c, classes=3):
    """GlobalAveragePool, Flatten, Gemm: (N, c, h, w) to the logits."""
    return ([n("GlobalAveragePool", [x], "gp"), n("Flatten", ["gp"], "fl", axis=1),
             n("Gemm", ["fl", "fc.weight", "fc.bias"], "y", transB=1)],
            {"fc.weight": f32(classes, c), "fc.bias": f32(classes)})


# conv (dilated, grouped, padded) + batch norm + relu + pools in ceil mode
h, hi = head("ap", 4)
graph("conv_bn_pool", [
    n("Conv", ["x", "c1.weight", "c1.bias"], "c1", pads=[2, 2, 2, 2], dilations=[2, 2]),
    n("BatchNormalization", ["c1", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
      "bn", epsilon=1e-3),
    n("Relu", ["bn"], "r"),
    n("MaxPool", ["r"], "mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    n("Conv", ["mp", "c2.weight"], "c2", group=2, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    n("AveragePool", ["c2"], "ap", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
      count_include_pad=1)] + h,
    {"c1.weight": f32(4, 2, 3, 3), "c1.bias": f32(4), "bn.weight": f32(4), "bn.bias": f32(4),
     "bn.running_mean": f32(4), "bn.running_var": np.abs(f32(4)) + 0.5, "c2.weight": f32(4, 2, 3, 3),
     **hi}, meta={"mean": "[0.5,0.5]", "std": "[0.25,0.25]", "classes": '["a","b","c"]'})

# element-wise kinds, squeeze-and-excitation, add, pad, concat, dropout
h, hi = head("cat", 8)
graph("elementwise", [
    n("Conv", ["x", "c.weight"], "c", kernel_shape=[1, 1]),
    n("HardSwish", ["c"], "hs"),
    n("Clip", ["hs", "lo", "hi"], "cl"),
    n("Sigmoid", ["cl"], "sg"),
    n("Mul", ["cl", "sg"], "silu"),
    n("GlobalAveragePool", ["silu"], "se0"),
    n("Conv", ["se0", "se.weight"], "se1", kernel_shape=[1, 1]),
    n("HardSigmoid", ["se1"], "se2", alpha=0.2, beta=0.5),
    n("Mul", ["silu", "se2"], "sem"),
    n("Add", ["sem", "c"], "add"),
    n("Pad", ["add", "pads", "zero"], "pad", mode="constant"),
    n("Conv", ["pad", "c2.weight"], "c2", kernel_shape=[2, 2], strides=[2, 2]),
    n("Dropout", ["c2"], "dr"),
    n("MaxPool", ["add"], "mp", kernel_shape=[2, 2], strides=[2, 2]),
    n("Concat", ["dr", "mp"], "cat", axis=1)] + h,
    {"c.weight": f32(4, 2, 1, 1), "lo": np.float32(-1), "hi": np.float32(6),
     "se.weight": f32(4, 4, 1, 1), "pads": np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64),
     "zero": np.float32(0), "c2.weight": f32(4, 4, 2, 2), **hi}, opset=14)  # HardSwish: 14

# GELU pattern after Gemm, MatMul + Add, ReduceMean, Reshape, Identity, Constant
gelu = [n("Div", ["g1", "sqrt2"], "gd"), n("Erf", ["gd"], "ge"), n("Add", ["ge", "one"], "ga"),
        n("Mul", ["g1", "ga"], "gm"), n("Mul", ["gm", "half"], "gelu")]
graph("dense", [
    n("ReduceMean", ["x"], "rm", axes=[2, 3], keepdims=1),
    n("Reshape", ["rm", "shape"], "rs"),
    helper.make_node("Constant", [], ["w1"], name="w1",
                     value=numpy_helper.from_array(f32(2, 5), "w1")),
    n("MatMul", ["rs", "w1"], "mm"), n("Add", ["mm", "b1"], "g1")] + gelu + [
    n("Identity", ["gelu"], "id"),
    n("Gemm", ["id", "w2", "b2"], "y", transB=1)],
    {"shape": np.array([0, -1], np.int64), "b1": f32(5), "sqrt2": np.float32(2 ** 0.5),
     "one": np.float32(1), "half": np.float32(0.5), "w2": f32(3, 5), "b2": f32(3)})

# Adds and Muls that broadcast: a bias-less Conv + Add of a (1, C, 1, 1) constant (its bias),
# Mul + Add of (C, 1, 1) constants after a Relu (a 1x1 depthwise conv), a scalar Add, and
# Adds of computed (N, C, H, W) and (N, C, 1, 1) tensors in both orders
h, hi = head("sc", 4)
graph("broadcast", [
    n("Conv", ["x", "c.weight"], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    n("Add", ["c", "c.bias"], "cb"),
    n("Relu", ["cb"], "r"),
    n("Mul", ["r", "aff.weight"], "am"),
    n("Add", ["am", "aff.bias"], "aa"),
    n("GlobalAveragePool", ["aa"], "g"),
    n("Conv", ["g", "gate.weight"], "gc", kernel_shape=[1, 1]),
    n("Add", ["aa", "gc"], "b1"),
    n("Add", ["gc", "b1"], "b2"),
    n("Add", ["b2", "quarter"], "sc")] + h,
    {"c.weight": f32(4, 2, 3, 3), "c.bias": f32(1, 4, 1, 1), "aff.weight": f32(4, 1, 1),
     "aff.bias": f32(4, 1, 1), "gate.weight": f32(4, 4, 1, 1), "quarter": np.float32(0.25), **hi})
