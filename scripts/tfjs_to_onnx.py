"""Convert a TensorFlow.js layers-model (a Keras functional model: model.json + weight
shards) to an ONNX graph that parcnn imports, with the Keras layer names kept.

usage: python3 tfjs_to_onnx.py MODEL_DIR OUT.onnx [--mean M,M,M --std S,S,S]
       [--classes A,B,...] [--name NAME] [--doc TEXT]

- NCHW: the graph's input is (N, C, H, W) float32, already normalized; convolution
  kernels are transposed from Keras' (kh, kw, in, out) to ONNX's (out, in, kh, kw).
- Weights are dequantized as TF.js does (uint8/uint16: q * scale + min, computed in double
  and rounded to float32), so the ONNX model holds exactly the numbers TF.js computes with.
- Batch normalization stays a BatchNormalization node (epsilon and momentum kept), so the
  model can be fine-tuned; ZeroPadding2D and an asymmetric 'same' become a Pad node;
  ReLU with max_value 6 (ReLU6) is Clip(0, 6).
- Node names are the Keras layer names; initializers are named LAYER.weight, LAYER.bias,
  LAYER.running_mean, LAYER.running_var (parcnn names its layers after them).
- The last layer's softmax is left out: the graph outputs the logits.
- mean/std (the per-channel normalization (pixel / 255 - mean) / std the model expects)
  and the class names go into metadata_props, where parcnn import reads them.
Needs Debian's python3-onnx and python3-numpy only.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class ConvertError(Exception):
    pass


def read_weights(model_dir, manifest):
    """{name: float32 array} from the shards, dequantized as TF.js' io.decodeWeights."""
    out = {}
    for group in manifest:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = spec.get("quantization")
            if spec.get("dtype", "float32") != "float32":
                raise ConvertError(f"weight {spec['name']}: dtype {spec['dtype']} is not supported")
            if q:
                qtype = {"uint8": np.uint8, "uint16": np.uint16}.get(q.get("dtype"))
                if qtype is None or "min" not in q or "scale" not in q:
                    raise ConvertError(f"weight {spec['name']}: quantization {q} is not supported "
                                       "(uint8/uint16 with min and scale are)")
                nbytes = count * np.dtype(qtype).itemsize
                raw = np.frombuffer(data, qtype, count, offset).astype(np.float64)
                values = (raw * q["scale"] + q["min"]).astype(np.float32)
            else:
                nbytes = count * 4
                values = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
            if offset + nbytes > len(data):
                raise ConvertError(f"weight {spec['name']}: beyond the end of the shards")
            offset += nbytes
            out[spec["name"]] = values.reshape(shape)
    return out


class Graph:
    """The ONNX graph being built: nodes, initializers, and per Keras tensor its name and
    (C, H, W) shape."""

    def __init__(self, weights):
        self.weights = weights
        self.nodes, self.inits = [], []
        self.shapes = {}

    def weight(self, layer, var):
        for key in (f"{layer}/{var}", f"{layer}/{layer}/{var}"):
            if key in self.weights:
                return self.weights[key]
        raise ConvertError(f"layer {layer}: weight {layer}/{var} is missing from the shards")

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def node(self, op, inputs, name, shape, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.shapes[name] = shape
        return name


def same_pads(size, kernel, stride):
    """TensorFlow's 'same': (before, after) padding of one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_node(g, x, name, top, bottom, left, right):
    c, h, w = g.shapes[x]
    pads = g.init(f"{name}.pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
    return g.node("Pad", [x, pads], name, (c, h + top + bottom, w + left + right), mode="constant")


def activation(g, x, name, kind, last):
    """A Keras activation= on a layer's output (softmax only on the last layer: dropped)."""
    if kind in ("linear", None):
        return x
    if kind == "relu":
        return g.node("Relu", [x], f"{name}_relu", g.shapes[x])
    if kind == "relu6":
        return clip6(g, x, f"{name}_relu6")
    if kind == "softmax" and last:
        return x
    raise ConvertError(f"layer {name}: activation {kind} is not supported")


def clip6(g, x, name):
    lo = g.init(f"{name}.min", np.array(0, np.float32))
    hi = g.init(f"{name}.max", np.array(6, np.float32))
    return g.node("Clip", [x, lo, hi], name, g.shapes[x])


def conv(g, layer, x, depthwise):
    cfg, name = layer["config"], layer["name"]
    c, h, w = g.shapes[x]
    kh, kw = cfg["kernel_size"]
    sh, sw = cfg["strides"]
    if cfg.get("dilation_rate", [1, 1]) != [1, 1]:
        raise ConvertError(f"layer {name}: dilation is not supported")
    if depthwise:
        k = g.weight(name, "depthwise_kernel")  # (kh, kw, in, multiplier)
        mult = k.shape[3]
        kernel = k.reshape(kh, kw, c * mult).transpose(2, 0, 1)[:, None]
        groups, filters = c, c * mult
    else:
        k = g.weight(name, "kernel")  # (kh, kw, in, out)
        kernel = k.transpose(3, 2, 0, 1)
        groups, filters = 1, k.shape[3]
    pads = [0, 0, 0, 0]
    if cfg["padding"] == "same":
        (t, b), (l, r) = same_pads(h, kh, sh), same_pads(w, kw, sw)
        if (t, l) == (b, r):
            pads = [t, l, b, r]
        else:  # asymmetric: an explicit Pad first, as Keras' ZeroPadding2D
            x = pad_node(g, x, f"{name}_pad", t, b, l, r)
            c, h, w = g.shapes[x]
    elif cfg["padding"] != "valid":
        raise ConvertError(f"layer {name}: padding {cfg['padding']} is not supported")
    inputs = [x, g.init(f"{name}.weight", kernel)]
    if cfg.get("use_bias"):
        inputs.append(g.init(f"{name}.bias", g.weight(name, "bias")))
    oh = (h + pads[0] + pads[2] - kh) // sh + 1
    ow = (w + pads[1] + pads[3] - kw) // sw + 1
    y = g.node("Conv", inputs, name, (filters, oh, ow), kernel_shape=[kh, kw], strides=[sh, sw],
               pads=pads, group=groups)
    return y


def batchnorm(g, layer, x):
    cfg, name = layer["config"], layer["name"]
    c = g.shapes[x][0]
    if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
        raise ConvertError(f"layer {name}: batch norm over axis {cfg['axis']} is not supported")
    gamma = g.weight(name, "gamma") if cfg.get("scale", True) else np.ones(c, np.float32)
    beta = g.weight(name, "beta") if cfg.get("center", True) else np.zeros(c, np.float32)
    inputs = [x, g.init(f"{name}.weight", gamma), g.init(f"{name}.bias", beta),
              g.init(f"{name}.running_mean", g.weight(name, "moving_mean")),
              g.init(f"{name}.running_var", g.weight(name, "moving_variance"))]
    return g.node("BatchNormalization", inputs, name, g.shapes[x],
                  epsilon=float(cfg["epsilon"]), momentum=float(cfg.get("momentum", 0.99)))


def relu(g, layer, x):
    cfg, name = layer["config"], layer["name"]
    if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
        raise ConvertError(f"layer {name}: ReLU with a negative slope or threshold is not supported")
    if cfg.get("max_value") is None:
        return g.node("Relu", [x], name, g.shapes[x])
    if float(cfg["max_value"]) != 6:
        raise ConvertError(f"layer {name}: ReLU max_value {cfg['max_value']} (only 6) is not supported")
    return clip6(g, x, name)


def pool(g, layer, x, op):
    cfg, name = layer["config"], layer["name"]
    c, h, w = g.shapes[x]
    kh, kw = cfg["pool_size"]
    sh, sw = cfg.get("strides") or cfg["pool_size"]
    if cfg["padding"] != "valid":
        raise ConvertError(f"layer {name}: pooling with padding {cfg['padding']} is not supported")
    return g.node(op, [x], name, (c, (h - kh) // sh + 1, (w - kw) // sw + 1),
                  kernel_shape=[kh, kw], strides=[sh, sw])


def flatten(g, layer, x):
    c, h, w = g.shapes[x]
    if (h, w) != (1, 1):  # Keras flattens NHWC: the order differs from NCHW's unless 1x1
        raise ConvertError(f"layer {layer['name']}: Flatten of a {h}x{w} map (only 1x1) is not supported")
    return g.node("Flatten", [x], layer["name"], (c, 1, 1), axis=1)


def dense(g, layer, x, last):
    cfg, name = layer["config"], layer["name"]
    kernel = g.weight(name, "kernel")  # (in, out)
    inputs = [x, g.init(f"{name}.weight", kernel.T)]
    if cfg.get("use_bias", True):
        inputs.append(g.init(f"{name}.bias", g.weight(name, "bias")))
    y = g.node("Gemm", inputs, name, (kernel.shape[1], 1, 1), transB=1)
    return activation(g, y, name, cfg.get("activation"), last)


def convert_layer(g, layer, inputs, last):
    kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
    x = inputs[0]
    if kind == "ZeroPadding2D":
        (t, b), (l, r) = cfg["padding"]
        return pad_node(g, x, name, t, b, l, r)
    if kind in ("Conv2D", "DepthwiseConv2D"):
        y = conv(g, layer, x, kind == "DepthwiseConv2D")
        return activation(g, y, name, cfg.get("activation"), last)
    if kind == "BatchNormalization":
        return batchnorm(g, layer, x)
    if kind == "ReLU":
        return relu(g, layer, x)
    if kind == "Activation":
        return activation(g, x, name, cfg["activation"], last)
    if kind == "Add":
        return g.node("Add", inputs, name, g.shapes[x]) if len(inputs) == 2 else \
            fail(f"layer {name}: Add of {len(inputs)} inputs (only 2) is not supported")
    if kind in ("AveragePooling2D", "MaxPooling2D"):
        return pool(g, layer, x, "AveragePool" if kind[0] == "A" else "MaxPool")
    if kind == "GlobalAveragePooling2D":
        y = g.node("GlobalAveragePool", [x], f"{name}_pool", (g.shapes[x][0], 1, 1))
        return g.node("Flatten", [y], name, g.shapes[y], axis=1)
    if kind == "Flatten":
        return flatten(g, layer, x)
    if kind == "Dense":
        return dense(g, layer, x, last)
    if kind == "Dropout":
        ratio = g.init(f"{name}.ratio", np.array(cfg["rate"], np.float32))
        return g.node("Dropout", [x, ratio], name, g.shapes[x])
    raise ConvertError(f"layer {name}: Keras layer {kind} is not supported")


def fail(msg):
    raise ConvertError(msg)


def convert(model_dir, opts):
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    topo = spec["modelTopology"]
    config = topo.get("model_config", topo)
    if config.get("class_name") not in ("Model", "Functional"):
        raise ConvertError(f"{model_dir}/model.json: a {config.get('class_name')} model; only "
                           "Keras functional models (Model) are supported")
    layers = config["config"]["layers"]
    g = Graph(read_weights(model_dir, spec["weightsManifest"]))
    first = layers[0]
    if first["class_name"] != "InputLayer":
        raise ConvertError("the first layer is not an InputLayer")
    _, h, w, c = first["config"]["batch_input_shape"]
    g.shapes[first["name"]] = (c, h, w)
    tensor = {first["name"]: first["name"]}
    for i, layer in enumerate(layers[1:], 1):
        if len(layer["inbound_nodes"]) != 1:
            raise ConvertError(f"layer {layer['name']}: shared layers are not supported")
        inputs = [tensor[n[0]] for n in layer["inbound_nodes"][0]]
        tensor[layer["name"]] = convert_layer(g, layer, inputs, i == len(layers) - 1)
    out_name = config["config"]["output_layers"][0][0]
    out = tensor[out_name]
    graph = helper.make_graph(
        g.nodes, opts.name, [helper.make_tensor_value_info(first["name"], TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", g.shapes[out][0]])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="parcnn scripts/tfjs_to_onnx.py", ir_version=8)
    model.doc_string = opts.doc or ""
    meta = {"model_name": opts.name, "input_shape": f"{c},{h},{w}"}
    if opts.mean:
        meta["mean"] = json.dumps([float(v) for v in opts.mean.split(",")])
        meta["std"] = json.dumps([float(v) for v in opts.std.split(",")])
        meta["normalization"] = "input = (pixel / 255 - mean[c]) / std[c], channels R, G, B"
    if opts.classes:
        meta["classes"] = json.dumps(opts.classes.split(","))
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--mean")
    ap.add_argument("--std")
    ap.add_argument("--classes")
    ap.add_argument("--name", default="model")
    ap.add_argument("--doc")
    opts = ap.parse_args()
    if bool(opts.mean) != bool(opts.std):
        ap.error("--mean and --std go together")
    try:
        model = convert(opts.model_dir, opts)
    except (ConvertError, OSError, KeyError, ValueError) as e:
        print(f"tfjs_to_onnx: {opts.model_dir}: {e}", file=sys.stderr)
        sys.exit(1)
    onnx.save(model, opts.out)
    print(f"tfjs_to_onnx: wrote {opts.out} ({len(model.graph.node)} nodes)")


if __name__ == "__main__":
    main()
