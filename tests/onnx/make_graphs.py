"""Write small valid ONNX graphs that parcnn must import and compute as onnxruntime does:
python3 make_graphs.py DIR. Each reads a (N, 1, 28, 28) input and ends in a pooled
10-class head; the file names say what each tests."""
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

out = sys.argv[1]
rng = np.random.default_rng(0)


def weights(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def write(name, body, inits, opset, ir_version):
    """body: nodes from input x to output c (4 channels); the head pools and classifies."""
    head = [helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fc", "b"], ["y"], name="fc", transB=1)]
    inits = {**inits, "fc": weights(10, 4), "b": np.zeros(10, np.float32)}
    g = helper.make_graph(
        body + head, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    save(m, f"{out}/{name}.onnx")


# Pad below opset 11: pads and value as attributes (densenet121's transitions at opset 9)
write("pad10", [
    helper.make_node("Pad", ["x"], ["p"], name="pad", pads=[0, 0, 1, 2, 0, 0, 2, 1], value=0.5),
    helper.make_node("Conv", ["p", "w"], ["c"], name="conv")],
    {"w": weights(4, 1, 3, 3)}, opset=10, ir_version=5)

# Conv padded unequally before and after: pads [0, 0, 1, 1] at stride 2, auto_pad SAME_UPPER
# at stride 2 and SAME_LOWER with an even kernel (tf2onnx's TensorFlow "same")
write("same", [
    helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", strides=[2, 2], pads=[0, 0, 1, 1]),
    helper.make_node("Conv", ["c1", "w2"], ["c2"], name="c2", strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("Conv", ["c2", "w3"], ["c"], name="c3", auto_pad="SAME_LOWER")],
    {"w1": weights(4, 1, 3, 3), "w2": weights(4, 4, 3, 3), "w3": weights(4, 4, 2, 2)},
    opset=13, ir_version=8)
