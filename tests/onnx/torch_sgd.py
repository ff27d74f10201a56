"""One SGD step of an imported PyTorch model, parcnn against PyTorch.
  python3 torch_sgd.py prepare MODEL DIR [N [no-dropout]]
      MODEL (torchvision's or broadcast_add, through torch_export.build, or resnet_mini
      below) exported with TrainingMode.PRESERVE to DIR/model.onnx (3x32x32 input), and N
      (default 32) random training images (10 test images) as CIFAR-10 binary files in DIR/data;
      no-dropout: dropout and stochastic-depth rates set to 0 (their random masks cannot be
      shared between the two sides), recorded in DIR for check and sensitivity
  python3 torch_sgd.py check MODEL DIR BEFORE AFTER LR MEAN STD
      PyTorch's gradients of the mean cross-entropy on those images (batch-norm batch
      statistics, input (pixel/255 - MEAN)/STD) against parcnn's, (BEFORE - AFTER) / LR of
      the weights in its safetensors files; prints the worst relative max-abs error over
      the parameter tensors and exits 1 above 1e-3.
  python3 torch_sgd.py sensitivity MODEL DIR MEAN STD EPS
      how far PyTorch's own gradients (as in check) move when its weights are multiplied by
      1 + EPS x standard normal noise: the worst relative max-abs change over the tensors.

The gradient of a ReLU network is not continuous: where a ReLU input or the gap between the
two largest cells of a max-pool window is within rounding of zero, a last-bit difference in
the forward pass flips which cells pass the gradient. On torchvision resnet18 at 32x32 with
32 random images, PyTorch's own gradients move by 1e-2 (relative max-abs) when its weights
are scaled by 1 + 1e-6 noise, and by 5e-2 with 3e-6 (1,500,000 ReLU inputs; the smallest
lies about 1e-6 of its channel's deviation from zero). Such a comparison tests only the
luck of the rounding. For resnet_mini and broadcast_add, prepare therefore draws the images from the first
of 200 seeds whose margin (the smallest |ReLU input| and max-pool top-two gap, relative
to the channel's standard deviation, in float64) is at least MARGIN: any kernel whose
forward error stays below it must then reproduce PyTorch's gradients to its rounding."""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_export import build, export

MARGIN = 3e-5
ZERO_GRADIENT = 1e-6


class Block(nn.Module):
    """torchvision's BasicBlock: 3x3 (stride 1 or 2) + BN + ReLU, 3x3 + BN, plus the input
    or its 1x1 stride-2 downsampling + BN, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.downsample is None else self.downsample(x)))


class ResNetMini(nn.Module):
    """resnet18's structure at a tenth of its width and a third of its depth: 7x7 stride-2
    stem, batch norm, ReLU, 3x3 stride-2 max pool, three basic blocks (16, 32, 64 channels;
    the last two stride 2 with 1x1 downsampling), global average pooling, dense."""

    def __init__(self, widths=(16, 32, 64), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = Block(widths[0], widths[0], 1)
        self.layer2 = Block(widths[0], widths[1], 2)
        self.layer3 = Block(widths[1], widths[2], 2)
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def model_of(name, dropout=True):
    if name != "resnet_mini":
        model = build(name)
        for m in model.modules():
            if not dropout and hasattr(m, "p") and type(m).__name__ in ("Dropout", "StochasticDepth"):
                m.p = 0.0
        return model
    torch.manual_seed(0)
    model = ResNetMini()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def normalized(x, mean, std, dtype=np.float32):
    return (x.astype(dtype) / dtype(255) - dtype(mean)) / dtype(std)


def margin(model, x):
    """The smallest |ReLU input| and max-pool top-two gap (of windows whose maximum is
    positive: below, ReLU stops the gradient anyway) of a training-mode forward on x,
    relative to the standard deviation of its channel over the batch."""
    worst = [np.inf]

    def relu_hook(_, inp):  # before the ReLU: torchvision's run in place
        z = inp[0]
        worst[0] = min(worst[0], (z.abs() / z.std(dim=(0, 2, 3), keepdim=True)).min().item())

    def pool_hook(m, inp, _):
        z = inp[0]
        n, c = z.shape[:2]
        cells = F.unfold(F.pad(z, [m.padding] * 4, value=-np.inf), m.kernel_size, stride=m.stride)
        top = cells.view(n, c, m.kernel_size ** 2, -1).topk(2, dim=2).values
        gap = (top[:, :, 0] - top[:, :, 1]) / z.std(dim=(0, 2, 3)).view(1, -1, 1)
        worst[0] = min(worst[0], gap[top[:, :, 0] > 0].min().item())

    hooks = [m.register_forward_pre_hook(relu_hook) for m in model.modules()
             if isinstance(m, nn.ReLU)]
    hooks += [m.register_forward_hook(pool_hook) for m in model.modules()
              if isinstance(m, nn.MaxPool2d)]
    with torch.no_grad():
        model.train()(x)
    for h in hooks:
        h.remove()
    return worst[0]


def image_seed(name, n, mean, std):
    """The seed of the training images: 1, or for the small models the first one whose margin
    is at least MARGIN."""
    if name not in ("resnet_mini", "broadcast_add"):
        return 1
    model = model_of(name).double()
    for seed in range(1, 201):
        if margin(model, torch.from_numpy(normalized(images(n, seed)[0], mean, std, np.float64))) >= MARGIN:
            return seed
    raise SystemExit(f"no seed up to 200 gives {n} images a margin of {MARGIN}")


def write_cifar(path, pixels, labels):
    with open(path, "wb") as f:
        for p, y in zip(pixels, labels):
            f.write(bytes([int(y)]) + p.tobytes())


def prepare(name, d, n, dropout=True, mean=0.5, std=0.25):
    if not dropout:
        open(f"{d}/no-dropout", "w").close()
    export(model_of(name, dropout), torch.randn(1, 3, 32, 32), f"{d}/model.onnx", "preserve")
    seed = image_seed(name, n, mean, std)
    with open(f"{d}/seed", "w") as f:
        f.write(f"{seed} {n}\n")
    x, y = images(n, seed)
    cuts = np.linspace(0, n, 6).astype(int)
    for i in range(5):
        write_cifar(f"{d}/data/data_batch_{i + 1}.bin", x[cuts[i]:cuts[i + 1]], y[cuts[i]:cuts[i + 1]])
    write_cifar(f"{d}/data/test_batch.bin", *images(10, 0))


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


def torch_gradients(name, d, mean, std, noise=0.0):
    """PyTorch's parameter gradients (float64 arrays by name) of the mean cross-entropy on the
    training images of DIR, its weights first multiplied by 1 + noise x N(0, 1) if noise."""
    model = model_of(name, not os.path.exists(f"{d}/no-dropout")).train()
    if noise:
        torch.manual_seed(12345)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1 + noise * torch.randn_like(p))
    seed, n = (int(v) for v in open(f"{d}/seed").read().split())
    x, y = images(n, seed)
    out = model(torch.from_numpy(normalized(x, mean, std)))
    out = getattr(out, "logits", out)  # googlenet's and inception_v3's aux outputs in training
    F.cross_entropy(out, torch.from_numpy(y)).backward()
    # parameters outside the exported graph (googlenet's aux classifiers) get no gradient
    return {k: p.grad.numpy().astype(np.float64) for k, p in model.named_parameters() if p.grad is not None}


def worst_difference(grads, reference):
    """The largest relative max-abs difference over the tensors and the tensor's name, leaving
    out the tensors whose reference gradient is below ZERO_GRADIENT of the model's largest:
    there it is rounding around an exact zero (a batch-norm bias followed, through
    convolutions and additions only, by batch norm on batch statistics, which subtracts it
    again). Those are returned apart: their names and their largest difference relative to
    the model's largest gradient."""
    largest = max(np.abs(g).max() for g in reference.values())
    worst, where, zero, zero_worst = 0.0, "", [], 0.0
    for k, g in reference.items():
        scale = np.abs(g).max()
        if scale < ZERO_GRADIENT * largest:
            zero.append(k)
            zero_worst = max(zero_worst, np.abs(grads[k] - g).max() / largest)
            continue
        err = np.abs(grads[k] - g).max() / max(scale, 1e-30)
        if err > worst:
            worst, where = err, k
    return worst, where, zero, zero_worst


def print_zero(zero, zero_worst):
    if zero:
        print(f"  {len(zero)} tensors left out, PyTorch's gradient below {ZERO_GRADIENT:g} of the largest "
              f"(zero in exact arithmetic; first {zero[0]}): differences within {zero_worst:.3g} of the largest gradient")


def parcnn_names(g_torch, weights):
    """PyTorch's parameter name -> parcnn's tensor name: the module path with _ for . where
    that names a tensor; otherwise (import shortens names longer than 31 characters, as
    densenet121's, and numbers repeats) by order, which both keep from the graph, checking
    the sizes."""
    names = {p: p.rpartition(".")[0].replace(".", "_") + "." + p.rpartition(".")[2] for p in g_torch}
    if all(k in weights for k in names.values()):
        return names
    keys = [k for k in weights if not k.rpartition(".")[2].startswith("running_")]
    if len(keys) != len(g_torch) or any(weights[k].size != g.size for k, g in zip(keys, g_torch.values())):
        raise SystemExit("parcnn's parameter tensors do not match PyTorch's by name or by order")
    return dict(zip(g_torch, keys))


def check(name, d, before, after, lr, mean, std):
    g_torch = torch_gradients(name, d, mean, std)
    w0, w1 = read_safetensors(before), read_safetensors(after)
    g_parcnn = {}
    for pname, key in parcnn_names(g_torch, w0).items():
        # parcnn's shape may differ: (C, 1, 1, 1) for an imported (C, 1, 1) scale
        g_parcnn[pname] = ((w0[key].astype(np.float64) - w1[key]) / lr).reshape(g_torch[pname].shape)
    worst, where, zero, zero_worst = worst_difference(g_parcnn, g_torch)
    print(f"{name} one SGD step: gradients within {worst:.3g} of PyTorch's (worst: {where}; "
          f"tolerance 1e-3)")
    print_zero(zero, zero_worst)
    sys.exit(0 if max(worst, zero_worst) <= 1e-3 else 1)


def sensitivity(name, d, mean, std, noise):
    worst, where, zero, zero_worst = worst_difference(torch_gradients(name, d, mean, std, noise),
                                                      torch_gradients(name, d, mean, std))
    print(f"{name} PyTorch's gradients under 1 + {noise:g} x N(0, 1) weight noise: moved by "
          f"{worst:.3g} (worst: {where})")
    print_zero(zero, zero_worst)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 32,
                sys.argv[5:6] != ["no-dropout"])
    elif sys.argv[1] == "sensitivity":
        sensitivity(sys.argv[2], sys.argv[3], *(float(v) for v in sys.argv[4:7]))
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]),
              float(sys.argv[7]), float(sys.argv[8]))
