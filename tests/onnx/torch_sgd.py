"""One SGD step of an imported PyTorch model, parcnn against PyTorch.
  python3 torch_sgd.py prepare MODEL DIR   torchvision MODEL (torch_export.build) exported
      with TrainingMode.PRESERVE to DIR/model.onnx (3x32x32 input), and 32 random training
      images (10 test images) as CIFAR-10 binary files in DIR/data
  python3 torch_sgd.py check MODEL DIR BEFORE AFTER LR MEAN STD
      PyTorch's gradients of the mean cross-entropy on those 32 images (batch-norm batch
      statistics, input (pixel/255 - MEAN)/STD) against parcnn's, (BEFORE - AFTER) / LR of
      the weights in its safetensors files; prints the worst relative max-abs error over
      the parameter tensors and exits 1 above 1e-3."""
import json
import struct
import sys

import numpy as np
import torch

from torch_export import build, export


def images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def write_cifar(path, pixels, labels):
    with open(path, "wb") as f:
        for p, y in zip(pixels, labels):
            f.write(bytes([int(y)]) + p.tobytes())


def prepare(name, d):
    export(build(name), torch.randn(1, 3, 32, 32), f"{d}/model.onnx", "preserve")
    x, y = images(32, 1)
    cuts = [0, 8, 14, 20, 26, 32]
    for i in range(5):
        write_cifar(f"{d}/data/data_batch_{i + 1}.bin", x[cuts[i]:cuts[i + 1]], y[cuts[i]:cuts[i + 1]])
    write_cifar(f"{d}/data/test_batch.bin", *images(10, 2))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], np.float32).reshape(v["shape"])
    return out


def check(name, d, before, after, lr, mean, std):
    model = build(name).train()
    x, y = images(32, 1)
    mean = np.float32(mean)
    std = np.float32(std)
    xf = (x.astype(np.float32) / np.float32(255) - mean) / std
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xf)), torch.from_numpy(y))
    loss.backward()
    w0, w1 = read_safetensors(before), read_safetensors(after)
    worst, where = 0.0, ""
    for pname, p in model.named_parameters():
        module, _, kind = pname.rpartition(".")
        key = module.replace(".", "_") + "." + kind
        g_parcnn = (w0[key].astype(np.float64) - w1[key]) / lr
        g_torch = p.grad.numpy().astype(np.float64)
        err = np.abs(g_parcnn - g_torch).max() / max(np.abs(g_torch).max(), 1e-30)
        if err > worst:
            worst, where = err, pname
    print(f"{name} one SGD step: gradients within {worst:.3g} of PyTorch's (worst: {where}; "
          f"tolerance 1e-3)")
    sys.exit(0 if worst <= 1e-3 else 1)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]),
              float(sys.argv[7]), float(sys.argv[8]))
