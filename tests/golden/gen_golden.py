#!/usr/bin/python3
"""Generate the PyTorch golden fixtures for tests/test_golden.c.

Run from anywhere with Debian's python3-torch (the interpreter at /usr/bin/python3):

    /usr/bin/python3 tests/golden/gen_golden.py

For each zoo model (models/<name>.cfg) this builds the PyTorch equivalent described by
the model file (an independent interpreter of the model-file format written against
docs/model-format.md and src/nn/model.h, using stock torch.nn modules), runs one training
forward/backward on a random batch, then 3 Adam steps and 3 SGD steps on that same batch
from the initial state, and writes tests/golden/<name>.safetensors.

Tensor names follow parcnn's pc_model_param_info: a layer is called by its name= key or
"layers.<section index>"; a [sepconv] section is "<name>.depthwise" + "<name>.pointwise".

The output is deterministic (fixed seeds, one thread, float32).
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CLASSES = 10
STEPS = 3
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
SGD = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
SMOOTHING = 0.1

# model, input (C, H, W), batch
CASES = [
    ("simple-cnn", (1, 8, 8), 6),
    ("minixception", (1, 28, 28), 8),
    ("resnet20", (3, 16, 16), 6),
    ("layers", (3, 12, 12), 6),   # tests/golden/layers.cfg: the layers of imported networks
    ("windows", (3, 15, 15), 4),  # tests/golden/windows.cfg: dilation, ceil mode, padding counted
]


def pool_out(n, size, stride, pad, ceil_mode):
    """nn.MaxPool2d's output size (PyTorch's pooling_output_shape)."""
    e = n + 2 * pad - size
    o = (-(-e // stride) if ceil_mode else e // stride) + 1
    if ceil_mode and (o - 1) * stride >= n + pad:
        o -= 1
    return o

# element-wise layers: section -> function of the input
def hardsigmoid(keys):
    if "alpha" not in keys and "beta" not in keys:
        return F.hardsigmoid  # PyTorch's: alpha 1/6, beta 1/2
    alpha, beta = float(keys.get("alpha", 1 / 6)), float(keys.get("beta", 0.5))
    return lambda x: torch.clamp(alpha * x + beta, 0.0, 1.0)


ELEMENTWISE = {
    "hardswish": lambda keys: F.hardswish,
    "hardsigmoid": hardsigmoid,
    "sigmoid": lambda keys: torch.sigmoid,
    "silu": lambda keys: F.silu,
    "relu6": lambda keys: F.relu6,
    "clip": lambda keys: lambda x: F.hardtanh(x, float(keys.get("min", "-inf")),
                                              float(keys.get("max", "inf"))),
}


# ------------------------------------------------------------ model files

def parse_sections(text):
    """[(kind, {key: value}), ...] in file order."""
    sections = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for tok in line.split():
            if tok.startswith("["):
                assert tok.endswith("]"), tok
                sections.append((tok[1:-1], {}))
            else:
                key, value = tok.split("=", 1)
                sections[-1][1][key] = value
    return sections


class Graph(nn.Module):
    """A model file as a PyTorch module: nodes in order, each reading earlier nodes."""

    def __init__(self, text, in_shape, classes, drop_dropout):
        super().__init__()
        self.mods = nn.ModuleDict()   # keys: our layer names with '.' -> '__'
        self.nodes = []               # (kind, our name or None, inputs, act, extra)
        self.params = []              # (our tensor name, tensor) in layer order
        shapes = [tuple(in_shape)]    # node 0 is the input
        section_last = {}
        sections = parse_sections(text)
        first = 0
        if sections and sections[0][0] == "net":
            first = 1
            section_last[0] = 0

        def ival(keys, key, default):
            v = keys.get(key)
            if v is None:
                return default
            return classes if v == "classes" else int(v)

        for si in range(first, len(sections)):
            kind, keys = sections[si]
            n_in = 2 if kind in ("add", "mul") else 1
            refs = keys.get("from", "-1").split(",")
            assert len(refs) == n_in or (kind == "concat" and len(refs) >= 2), (kind, keys)
            inputs = []
            for r in refs:
                if r == "input":
                    inputs.append(0)
                    continue
                try:
                    rel = int(r)
                except ValueError:
                    idx = max(i for i, nd in enumerate(self.nodes) if nd[1] == r) + 1
                else:
                    assert rel < 0
                    idx = 0 if si + rel < 0 else section_last[si + rel]
                inputs.append(idx)
            name = keys.get("name", "layers.%d" % si)
            act = keys.get("activation", "linear")
            assert act in ("relu", "linear", "none")
            relu = act == "relu"
            c, h, w = shapes[inputs[0]]

            def pair(key, default):
                """A window key: "K" or "KHxKW" as (height, width)."""
                v = keys.get(key)
                if v is None:
                    return default if isinstance(default, tuple) else (default, default)
                hw = [int(t) for t in v.split("x")]
                return (hw[0], hw[-1])

            def add_conv(lname, ins, in_c, hh, ww, filters, size, stride, pad, groups, bias, relu_,
                         dil=1):
                size, stride, pad = (t if isinstance(t, tuple) else (t, t)
                                     for t in (size, stride, pad))
                mod = nn.Conv2d(in_c, filters, size, stride, pad, dilation=dil, groups=groups,
                                bias=bool(bias))
                self.mods[lname.replace(".", "__")] = mod
                self.params.append((lname + ".weight", mod.weight))
                if bias:
                    self.params.append((lname + ".bias", mod.bias))
                self.nodes.append(("module", lname, ins, relu_, None))
                oh = (hh + 2 * pad[0] - (size[0] - 1) * dil - 1) // stride[0] + 1
                ow = (ww + 2 * pad[1] - (size[1] - 1) * dil - 1) // stride[1] + 1
                return (filters, oh, ow)

            if kind in ("conv", "sepconv"):
                filters = ival(keys, "filters", 0)
                size = pair("size", 3)
                stride = pair("stride", 1)
                pad = pair("pad", 0)
                bias = ival(keys, "bias", 1)
                dil = ival(keys, "dilation", 1)
                if kind == "conv":
                    groups = ival(keys, "groups", 1)
                    shapes.append(add_conv(name, inputs, c, h, w, filters, size, stride, pad,
                                           groups, bias, relu, dil))
                else:
                    # depthwise size x size (groups = channels, no bias), then pointwise 1x1
                    dw = add_conv(name + ".depthwise", inputs, c, h, w, c, size, stride, pad,
                                  c, 0, False, dil)
                    shapes.append(dw)
                    shapes.append(add_conv(name + ".pointwise", [len(shapes) - 1], c, dw[1],
                                           dw[2], filters, 1, 1, 0, 1, bias, relu))
            elif kind == "dense":
                units = ival(keys, "units", 0)
                bias = ival(keys, "bias", 1)
                mod = nn.Linear(c * h * w, units, bias=bool(bias))
                self.mods[name.replace(".", "__")] = mod
                self.params.append((name + ".weight", mod.weight))
                if bias:
                    self.params.append((name + ".bias", mod.bias))
                self.nodes.append(("dense", name, inputs, relu, None))
                shapes.append((units, 1, 1))
            elif kind == "batchnorm":
                eps = float(keys.get("eps", 1e-5))
                momentum = float(keys.get("momentum", 0.1))
                mod = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
                self.mods[name.replace(".", "__")] = mod
                self.params.append((name + ".weight", mod.weight))
                self.params.append((name + ".bias", mod.bias))
                self.params.append((name + ".running_mean", mod.running_mean))
                self.params.append((name + ".running_var", mod.running_var))
                self.nodes.append(("module", name, inputs, relu, None))
                shapes.append((c, h, w))
            elif kind in ("maxpool", "avgpool"):
                size = pair("size", 2)
                stride = pair("stride", size)
                pad = pair("pad", 0)
                ceil = bool(ival(keys, "ceil_mode", 0))
                if kind == "maxpool":
                    mod = nn.MaxPool2d(size, stride, pad, ceil_mode=ceil)
                else:
                    mod = nn.AvgPool2d(size, stride, pad, ceil_mode=ceil,
                                       count_include_pad=bool(ival(keys, "count_include_pad", 0)))
                self.nodes.append(("fn", name, inputs, relu, mod))
                shapes.append((c, pool_out(h, size[0], stride[0], pad[0], ceil),
                               pool_out(w, size[1], stride[1], pad[1], ceil)))
            elif kind == "gap":
                self.nodes.append(("gap", name, inputs, relu, None))
                shapes.append((c, 1, 1))
            elif kind == "flatten":
                self.nodes.append(("flatten", name, inputs, relu, None))
                shapes.append((c * h * w, 1, 1))
            elif kind == "relu":
                self.nodes.append(("identity", name, inputs, True, None))
                shapes.append((c, h, w))
            elif kind in ELEMENTWISE:
                self.nodes.append(("fn", name, inputs, relu, ELEMENTWISE[kind](keys)))
                shapes.append((c, h, w))
            elif kind == "pad":
                t, bt = ival(keys, "top", 0), ival(keys, "bottom", 0)
                lf, rt = ival(keys, "left", 0), ival(keys, "right", 0)
                v = float(keys.get("value", 0))
                self.nodes.append(("fn", name, inputs, relu,
                                   lambda x, p=(lf, rt, t, bt), v=v: F.pad(x, p, value=v)))
                shapes.append((c, h + t + bt, w + lf + rt))
            elif kind == "dropout":
                rate = float(keys.get("rate", 0.5))
                if drop_dropout:
                    rate = 0.0
                self.nodes.append(("dropout", name, inputs, relu, rate))
                shapes.append((c, h, w))
            elif kind == "mul":
                self.nodes.append(("mul", name, inputs, relu, None))
                shapes.append((c, h, w))
            elif kind == "concat":
                self.nodes.append(("concat", name, inputs, relu, None))
                shapes.append((sum(shapes[i][0] for i in inputs), h, w))
            elif kind == "add" and shapes[inputs[1]] == (c, 1, 1) and (h, w) != (1, 1):
                self.nodes.append(("add", name, inputs, relu, 0))  # per-channel broadcast
                shapes.append((c, h, w))
            elif kind == "add":
                cb, hb, wb = shapes[inputs[1]]
                assert cb <= c and hb % h == 0 and hb // h == wb // w, (shapes[inputs[1]], (c, h, w))
                self.nodes.append(("add", name, inputs, relu, hb // h))
                shapes.append((c, h, w))
            else:
                raise ValueError("unknown layer type [%s]" % kind)
            section_last[si] = len(shapes) - 1
        self.shapes = shapes
        assert shapes[-1] == (classes, 1, 1), shapes[-1]

    def forward(self, x):
        outs = [x]
        for kind, name, inputs, relu, extra in self.nodes:
            a = outs[inputs[0]]
            if kind in ("module", "dense"):
                mod = self.mods[name.replace(".", "__")]
                y = mod(torch.flatten(a, 1) if kind == "dense" else a)
                if kind == "dense":
                    y = y.reshape(y.shape[0], -1, 1, 1)
            elif kind == "fn":
                y = extra(a)
            elif kind == "gap":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif kind == "flatten":
                y = a.reshape(a.shape[0], -1, 1, 1)
            elif kind == "identity":
                y = a
            elif kind == "dropout":
                y = F.dropout(a, extra, self.training) if extra > 0 else a
            elif kind == "mul":
                y = a * outs[inputs[1]]  # (N,C,1,1) broadcasts over the plane
            elif kind == "concat":
                y = torch.cat([outs[i] for i in inputs], dim=1)
            elif kind == "add":
                # ResNet option A: b subsampled by the stride, zero-padded at the END of C
                b = outs[inputs[1]]
                stride = extra  # 0: b (N,C,1,1) broadcasts
                if stride > 1:
                    b = b[:, :, ::stride, ::stride]
                if b.shape[1] < a.shape[1]:
                    b = F.pad(b, (0, 0, 0, 0, 0, a.shape[1] - b.shape[1]))
                y = a + b
            else:
                raise AssertionError(kind)
            if relu:
                y = F.relu(y)
            outs.append(y)
        return outs[-1].reshape(x.shape[0], -1)


# ------------------------------------------------------------ safetensors

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor float32 or int32), written in that order."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dtype = "F32"
        elif t.dtype == torch.int32:
            dtype = "I32"
        else:
            raise TypeError("%s: %s" % (name, t.dtype))
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ------------------------------------------------------------ generation

def snapshot(model):
    return [(name, t.detach().clone()) for name, t in model.params]


def restore(model, snap):
    with torch.no_grad():
        for (name, t), (sname, s) in zip(model.params, snap):
            assert name == sname
            t.copy_(s)


def train_steps(model, x, y, opt_cls, opt_kw):
    model.train()
    params = [p for p in model.parameters()]
    opt = opt_cls(params, **opt_kw)
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return snapshot(model)


def generate(name, in_shape, batch, seed):
    torch.manual_seed(seed)
    path = os.path.join(ROOT, "models", name + ".cfg")
    if not os.path.exists(path):
        path = os.path.join(HERE, name + ".cfg")
    with open(path) as f:
        text = f.read()
    model = Graph(text, in_shape, CLASSES, drop_dropout=True)
    # Random BN affine parameters and running statistics, so they are all tested.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(batch, *in_shape)
    labels = torch.randint(0, CLASSES, (batch,))
    init = snapshot(model)

    # forward + backward of the mean cross-entropy (training mode: batch statistics)
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss_smooth = F.cross_entropy(logits.detach(), labels, label_smoothing=SMOOTHING)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = [("grad." + n, t.grad.detach().clone()) for n, t in model.params
             if isinstance(t, nn.Parameter)]
    assert len(grads) == len(list(model.parameters()))

    restore(model, init)
    adam = train_steps(model, x, labels, torch.optim.Adam, ADAM)
    restore(model, init)
    sgd = train_steps(model, x, labels, torch.optim.SGD, SGD)

    tensors = list(init)
    tensors += [("input", x), ("labels", labels.to(torch.int32)), ("logits", logits.detach()),
                ("loss", loss.detach().reshape(1)), ("loss_smooth", loss_smooth.reshape(1))]
    tensors += grads
    tensors += [("adam." + n, t) for n, t in adam]
    tensors += [("sgd." + n, t) for n, t in sgd]
    meta = {
        "generator": "tests/golden/gen_golden.py",
        "torch": torch.__version__,
        "model": name,
        "seed": str(seed),
        "steps": str(STEPS),
        "adam": "lr=%g betas=%g,%g eps=%g weight_decay=%g" % (
            ADAM["lr"], ADAM["betas"][0], ADAM["betas"][1], ADAM["eps"], ADAM["weight_decay"]),
        "sgd": "lr=%g momentum=%g nesterov=1 weight_decay=%g" % (
            SGD["lr"], SGD["momentum"], SGD["weight_decay"]),
        "label_smoothing": "%g" % SMOOTHING,
        "dropout": "disabled (rate=0)",
    }
    path = os.path.join(HERE, name + ".safetensors")
    write_safetensors(path, tensors, meta)
    n_params = sum(p.numel() for p in model.parameters())
    print("%s: %d parameters, loss %.6f, %d bytes -> %s" % (
        name, n_params, loss.item(), os.path.getsize(path), os.path.relpath(path, ROOT)))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    only = set(sys.argv[1:])
    for i, (name, in_shape, batch) in enumerate(CASES):
        if only and name not in only:
            continue
        generate(name, in_shape, batch, seed=1000 + i)


if __name__ == "__main__":
    main()
