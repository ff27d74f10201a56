#!/usr/bin/python3
"""PyTorch's side of bench/onnx-speed: a torchvision classifier (tests/onnx/torch_export.py's
build: random weights, 10 classes) at batch B, 3xSxS, on T intra-op threads.

  torch_onnx_speed.py export MODEL SIZE PREFIX
      writes PREFIX-eval.onnx (batch norm folded, for inference) and PREFIX-preserve.onnx
      (BatchNormalization kept, for fine-tuning) with torch.onnx.export
  torch_onnx_speed.py forward|step MODEL SIZE --batch B --threads T --reps R
      forward: inference-mode forward pass, each of eager NCHW, eager channels_last and
      TorchScript (trace, freeze, optimize_for_inference); step: one fine-tuning step
      (training-mode forward, cross-entropy, backward, SGD with momentum), eager NCHW and
      channels_last. Each variant: 2 untimed runs, then R timed; its median. Prints one
      line per variant and `best: IPS images/s (VARIANT)`.

Needs Debian's torch: run with /usr/bin/python3 (OPENBLAS_NUM_THREADS=T)."""
import argparse
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "onnx"))
from torch_export import build, export  # noqa: E402


def timed(fn, reps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_variants(net, x):
    xl = x.contiguous(memory_format=torch.channels_last)
    yield "eager NCHW", lambda: net(x)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
    yield "torchscript frozen", lambda: frozen(x)
    net.to(memory_format=torch.channels_last)
    yield "eager channels_last", lambda: net(xl)


def step_variants(net, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step(inp):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(inp), y).backward()
        opt.step()

    yield "eager NCHW", lambda: step(x)
    net.to(memory_format=torch.channels_last)
    xl = x.contiguous(memory_format=torch.channels_last)
    yield "eager channels_last", lambda: step(xl)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["export", "forward", "step"])
    p.add_argument("model")
    p.add_argument("size", type=int)
    p.add_argument("prefix", nargs="?")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    net = build(a.model)
    if a.what == "export":
        for mode in ("eval", "preserve"):
            export(net, torch.randn(1, 3, a.size, a.size), f"{a.prefix}-{mode}.onnx", mode)
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = torch.randn(a.batch, 3, a.size, a.size)
    best = None
    if a.what == "forward":
        net.eval()
        with torch.inference_mode():
            runs = [(name, timed(fn, a.reps)) for name, fn in forward_variants(net, x)]
    else:
        net.train()
        y = torch.randint(0, 10, (a.batch,))
        runs = [(name, timed(fn, a.reps)) for name, fn in step_variants(net, x, y)]
    for name, sec in runs:
        print(f"{name}: {1e3 * sec:.1f} ms, {a.batch / sec:.2f} images/s")
        if best is None or sec < best[1]:
            best = (name, sec)
    print(f"best: {a.batch / best[1]:.2f} images/s ({best[0]})")


if __name__ == "__main__":
    main()
