"""Write ONNX files that parcnn import must refuse with one clear line: python3 make_bad.py DIR
Each is a small valid-protobuf graph with one problem, named by its file."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]


def raw_tensor(name, dims, nbytes):
    """A float initializer of shape dims holding nbytes of data (too few for the shape)."""
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = b"\0" * nbytes
    return t


def model(nodes, inits, shape=(None, 1, 8, 8), out_shape=(None, 4), opset=13, name="x", raw=None):
    dims = ["N" if d is None else d for d in shape]
    g = helper.make_graph(
        nodes, "bad",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N" if d is None else d for d in out_shape])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    for k, (dims, nbytes) in (raw or {}).items():
        g.initializer.append(raw_tensor(k, dims, nbytes))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


rng = np.random.default_rng(0)
w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
fc = rng.standard_normal((4, 4)).astype(np.float32)
head = [helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1)]


def conv(**attrs):
    return helper.make_node("Conv", ["x", "w"], ["c"], name="conv", **attrs)


def on_conv(node, inits, extra=()):
    """conv (4x8x8), then node (output "a", read by the head), with its constants."""
    tail = [helper.make_node("GlobalAveragePool", ["a"], ["p"], name="pool")] + head[1:]
    return model([conv(pads=[1, 1, 1, 1]), *extra, node] + tail, {"w": w, "fc": fc, **inits})


cases = {
    # broadcasting other than per channel: along H only, of a constant and of a computed tensor
    "add_const_h": on_conv(helper.make_node("Add", ["c", "b"], ["a"], name="add"),
                           {"b": np.ones((1, 1, 8, 1), np.float32)}),
    "add_bcast_h": on_conv(helper.make_node("Add", ["c", "h"], ["a"], name="add"),
                           {"w2": rng.standard_normal((4, 4, 8, 1)).astype(np.float32)},
                           [helper.make_node("Conv", ["c", "w2"], ["h"], name="convh")]),
    "mul_const_plane": on_conv(helper.make_node("Mul", ["c", "s"], ["a"], name="mul"),
                               {"s": np.ones((4, 8, 8), np.float32)}),
    "good": model([conv(pads=[1, 1, 1, 1])] + head, {"w": w, "fc": fc}),
    "unsupported_op": model([conv(), helper.make_node("LeakyRelu", ["c"], ["l"], name="leaky")]
                            + [helper.make_node("GlobalAveragePool", ["l"], ["p"], name="pool")]
                            + head[1:], {"w": w, "fc": fc}),
    "dilation": model([conv(dilations=[2, 1])] + head, {"w": w, "fc": fc}),
    "missing_init": model([conv()] + head, {"fc": fc}),
    "input_3d": model([conv()] + head, {"w": w, "fc": fc}, shape=(None, 8, 8)),
    "huge_dims": model([conv()] + head, {"w": w, "fc": fc}, shape=(None, 1, 100000, 100000)),
    "opset_7": model([conv()] + head, {"w": w, "fc": fc}, opset=7),
    "dynamic_hw": model([conv()] + head, {"w": w, "fc": fc}, shape=(None, 1, "H", "W")),
    "dynamic_c": model([conv()] + head, {"w": w, "fc": fc}, shape=(None, "C", 8, 8)),
    "input_5d": model([conv()] + head, {"w": w, "fc": fc}, shape=(None, 1, 1, 8, 8)),
    "storage_order": model([conv(), helper.make_node("MaxPool", ["c"], ["m"], name="mp",
                                                     kernel_shape=[2, 2], storage_order=1),
                            helper.make_node("GlobalAveragePool", ["m"], ["p"], name="pool")]
                           + head[1:], {"w": w, "fc": fc}),
    # a Reshape to a shape computed from the tensor's own (torch.onnx's dynamic flatten)
    "dynamic_reshape": model([conv(), head[0], helper.make_node("Shape", ["p"], ["s"], name="shape"),
                              helper.make_node("Reshape", ["p", "s"], ["f"], name="reshape"),
                              head[2]], {"w": w, "fc": fc}),
    "short_weight": model([conv()] + head, {"fc": fc}, raw={"w": ([4, 1, 3, 3], 40)}),
    "huge_weight": model([conv()] + head, {"fc": fc}, raw={"w": ([1 << 20, 1 << 20, 3, 3], 40)}),
}
for k, m in cases.items():
    onnx.save(m, f"{out}/{k}.onnx")
