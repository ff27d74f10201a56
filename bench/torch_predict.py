#!/usr/bin/python3
"""PyTorch's inference speed on a parcnn model, the peer of `parcnn bench predict`.

Builds the network of any parcnn model file in torch (a zoo model's text comes from
`parcnn models --print NAME`; a trained *.safetensors file carries its own, and its weights
are loaded by their PyTorch-style names), then times the forward pass and softmax at each
batch size in inference mode, every variant that may be fastest:
  fp32: eager (NCHW), eager channels_last, TorchScript frozen + optimize_for_inference
  bf16: torch.autocast("cpu", torch.bfloat16) eager, and channels_last
each on the whole batch and, for batches above 8, in passes of 8 images (as parcnn bench
predict also tries), on --threads intra-op threads (torch.set_num_threads; run with OPENBLAS_NUM_THREADS equal
to it: Debian's torch takes its dense layers from the system BLAS). Prints a table, and one
line per batch size:  best batch B: MS ms, IPS images/s (VARIANT)
--describe prints params=<int> (to check that both sides build the same network) and
exits.

Needs Debian's torch: run with /usr/bin/python3.
"""

import argparse
import json
import math
import struct
import subprocess
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------- model files

def parse_sections(text):
    """[(kind, {key: value}), ...] of a parcnn model file."""
    sections = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        for word in line.split():
            if word.startswith("[") and word.endswith("]"):
                sections.append((word[1:-1], {}))
            else:
                key, value = word.split("=", 1)
                sections[-1][1][key] = value
    return sections


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


class ShortcutAdd(nn.Module):
    """a + b; b subsampled by the stride and zero-padded in channels (at the end) where it is
    larger in space and has fewer channels (parcnn's [add], ResNet option A)."""

    def forward(self, a, b):
        if b.shape[2] != a.shape[2]:
            stride = b.shape[2] // a.shape[2]
            b = b[:, :, ::stride, ::stride]
        if b.shape[1] != a.shape[1]:
            b = F.pad(b, (0, 0, 0, 0, 0, a.shape[1] - b.shape[1]))  # zero channels at the end
        return a + b


class AddThen(ShortcutAdd):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, a, b):
        return self.act(super().forward(a, b))


def activation(keys):
    act = keys.get("activation")
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU}.get(act, lambda: None)()


class Net(nn.Module):
    """A parcnn model file as a graph of torch modules; parameters carry parcnn's names."""

    def __init__(self, text, c, h, w, classes, logits=False):
        super().__init__()
        self.logits = logits  # forward gives the logits (training), not the probabilities
        self.nodes = []  # (module name, input section indices; -1 is the image)
        self.layers = nn.ModuleDict()
        shapes, names = [], {}
        for k, (kind, keys) in enumerate(parse_sections(text)):
            def ref(r):
                if r.lstrip("-").isdigit():
                    return k + int(r) if k + int(r) >= 0 else -1
                return names[r]
            inputs = [ref(r) for r in keys.get("from", "-1").split(",")]
            if kind == "net":
                inputs = [-1]
            ic, ih, iw = (c, h, w) if inputs[0] < 0 else shapes[inputs[0]]
            name = keys.get("name", "layers.%d" % k)
            names[name] = k
            module, shape = self.build(kind, keys, (ic, ih, iw), classes)
            self.nodes.append((name, inputs))
            self.layers[name.replace(".", "_")] = module
            shapes.append(shape)

    @staticmethod
    def build(kind, keys, shape, classes):
        ic, ih, iw = shape
        num = lambda key, d: int(keys.get(key, d))
        act = activation(keys)
        if kind in ("conv", "sepconv"):
            size, stride, pad = num("size", 3), num("stride", 1), num("pad", 0)
            f = keys.get("filters")
            filters = classes if f == "classes" else int(f) if f else 2 * ic * size * size
            bias = num("bias", 1) == 1
            if kind == "conv":
                mods = [nn.Conv2d(ic, filters, size, stride, pad, groups=num("groups", 1), bias=bias)]
            else:
                mods = [nn.Conv2d(ic, ic, size, stride, pad, groups=ic, bias=False),
                        nn.Conv2d(ic, filters, 1, bias=bias)]
            oh, ow = (ih + 2 * pad - size) // stride + 1, (iw + 2 * pad - size) // stride + 1
            shape = (filters, oh, ow)
        elif kind == "dense":
            u = keys["units"]
            units = classes if u == "classes" else int(u)
            mods = [nn.Flatten(), nn.Linear(ic * ih * iw, units, bias=num("bias", 1) == 1)]
            if float(keys.get("scale", 1)) != 1:
                mods.append(Scale(float(keys["scale"])))
            shape = (units, 1, 1)
        elif kind == "batchnorm":
            mods = [nn.BatchNorm2d(ic, eps=float(keys.get("eps", 1e-5)))]
        elif kind in ("maxpool", "avgpool"):
            size = num("size", 2)
            stride, pad = num("stride", size), num("pad", 0)
            mods = [nn.MaxPool2d(size, stride, pad) if kind == "maxpool"
                    else nn.AvgPool2d(size, stride, pad, count_include_pad=False)]
            shape = (ic, (ih + 2 * pad - size) // stride + 1, (iw + 2 * pad - size) // stride + 1)
        elif kind == "gap":
            mods = [nn.AdaptiveAvgPool2d(1)]
            shape = (ic, 1, 1)
        elif kind == "flatten":
            mods = [nn.Flatten(), nn.Unflatten(1, (ic * ih * iw, 1, 1))]
            shape = (ic * ih * iw, 1, 1)
        elif kind == "dropout":  # the identity in inference
            mods = [nn.Dropout(float(keys.get("rate", 0.5)))]
        elif kind in ("relu", "net"):
            mods = [nn.ReLU() if kind == "relu" else nn.Identity()]
        elif kind == "add":
            mods = [ShortcutAdd()]
        else:
            raise ValueError("torch_predict.py: no torch equivalent of [%s]" % kind)
        trainable = keys.get("trainable", "all")  # frozen parameters get no gradient
        for m in mods:
            for field, part in (("weight", "weight"), ("bias", "bias")):
                if getattr(m, field, None) is not None and trainable not in ("all", part):
                    getattr(m, field).requires_grad_(False)
        if act is not None and kind != "add":
            mods.append(act)
        elif act is not None:  # [add] takes two inputs: its activation is a step of its own
            mods = [AddThen(act)]
        return (mods[0] if len(mods) == 1 else nn.Sequential(*mods)), shape

    def forward(self, x):
        outs = []
        for name, inputs in self.nodes:
            args = [x if i < 0 else outs[i] for i in inputs]
            outs.append(self.layers[name.replace(".", "_")](*args))
        return outs[-1].flatten(1) if self.logits else F.softmax(outs[-1].flatten(1), dim=1)

    def load_parcnn_tensors(self, tensors):
        """Weights saved by parcnn (PyTorch-style names: NAME.weight, NAME.depthwise.weight)."""
        for key, value in tensors.items():
            layer, field = key.rsplit(".", 1)
            sub = None
            if layer.endswith(".depthwise") or layer.endswith(".pointwise"):
                layer, part = layer.rsplit(".", 1)
                sub = 0 if part == "depthwise" else 1
            mod = self.layers[layer.replace(".", "_")]
            if isinstance(mod, nn.Sequential):
                mod = mod[sub] if sub is not None else next(
                    m for m in mod if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)))
            getattr(mod, field).data.copy_(value.reshape(getattr(mod, field).shape))


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    tensors = {}
    for key, v in head.items():
        if v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        tensors[key] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32)
    return meta, tensors


# ---------------------------------------------------------------- timing

def in_passes(fn, chunk):
    """fn run on the batch in passes of `chunk` images, the outputs concatenated."""
    return lambda x: torch.cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def variants(net, c, h, w, batch, bf16, chunk):
    """(name, callable(x), input, channels_last) for each way torch may run the net;
    chunk < batch: each of them running the batch in passes of chunk images."""
    if chunk < batch:
        return [(name + ", passes of %d" % chunk, in_passes(fn, chunk),
                 torch.randn(batch, c, h, w).contiguous(
                     memory_format=torch.channels_last if cl else torch.contiguous_format), cl)
                for name, fn, _, cl in variants(net, c, h, w, chunk, bf16, chunk)]
    x = torch.randn(batch, c, h, w)
    xl = x.contiguous(memory_format=torch.channels_last)
    if bf16:
        def run(inp):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(inp)
        return [("eager autocast bf16", run, x, False),
                ("channels_last autocast bf16", run, xl, True)]
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
    return [("eager", net, x, False), ("torchscript frozen", frozen, x, False),
            ("channels_last", net, xl, True)]


CHUNK = 8  # the pass size parcnn bench predict also tries


def median_seconds(fn, x, reps, warmup=3):
    times = []
    with torch.inference_mode():
        for r in range(warmup + reps):
            t0 = time.perf_counter()
            fn(x)
            if r >= warmup:
                times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] if reps % 2 else (times[reps // 2 - 1] + times[reps // 2]) / 2


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="zoo name, model file or *.safetensors")
    p.add_argument("--input", default="1x28x28", help="CxHxW (not for *.safetensors)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", default="1,64")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--parcnn", default="build/parcnn", help="for the zoo models' text")
    p.add_argument("--describe", action="store_true")
    a = p.parse_args()
    torch.manual_seed(1)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shapes are fixed
    c, h, w = (int(v) for v in a.input.split("x"))
    classes, tensors = a.classes, None
    if a.model.endswith(".safetensors"):
        meta, tensors = read_safetensors(a.model)
        text = meta["model"]
        c, h, w = (int(v) for v in meta["input_shape"].split(","))
        classes = len(json.loads(meta["classes"]))
    elif "/" in a.model or a.model.endswith(".cfg"):
        text = open(a.model).read()
    else:
        text = subprocess.run([a.parcnn, "models", "--print", a.model], check=True,
                              capture_output=True, text=True).stdout
    net = Net(text, c, h, w, classes)
    if tensors is not None:
        net.load_parcnn_tensors(tensors)
    net.eval()
    if a.describe:
        print("params=%d" % sum(t.numel() for t in net.parameters()))
        return
    torch.set_num_threads(a.threads)
    print("torch %s, %s, input %dx%dx%d, %s, %d thread(s)" % (torch.__version__, a.model, c, h, w,
                                                            a.precision, a.threads))
    print("%6s %-44s %10s %10s" % ("batch", "variant", "ms/batch", "images/s"))
    for batch in (int(b) for b in a.batch.split(",")):
        best = (math.inf, "")
        chunks = [batch] + ([CHUNK] if batch > CHUNK and batch % CHUNK == 0 else [])
        for name, fn, x, channels_last in [v for chunk in chunks for v in
                                           variants(net, c, h, w, batch, a.precision == "bf16",
                                                    chunk)]:
            if channels_last:
                net.to(memory_format=torch.channels_last)
            s = median_seconds(fn, x, a.reps)
            net.to(memory_format=torch.contiguous_format)
            print("%6d %-44s %10.3f %10.0f" % (batch, name, s * 1e3, batch / s), flush=True)
            best = min(best, (s, name))
        print("best batch %d: %.3f ms, %.0f images/s (%s)" % (batch, best[0] * 1e3,
                                                             batch / best[0], best[1]))


if __name__ == "__main__":
    sys.exit(main())
