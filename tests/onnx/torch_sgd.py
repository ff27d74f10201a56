"""One SGD step of an imported PyTorch model, parcnn against PyTorch.
  python3 torch_sgd.py prepare MODEL DIR [N]
      MODEL (torchvision's or broadcast_add, through torch_export.build, or resnet_mini
      below) exported with TrainingMode.PRESERVE to DIR/model.onnx (3x32x32 input), and N
      (default 32) random training images (10 test images) as CIFAR-10 binary files in DIR/data
  python3 torch_sgd.py check MODEL DIR BEFORE AFTER LR MEAN STD
      PyTorch's gradients of the mean cross-entropy on those images (batch-norm batch
      statistics, input (pixel/255 - MEAN)/STD) against parcnn's, (BEFORE - AFTER) / LR of
      the weights in its safetensors files; prints the worst relative max-abs error over
      the parameter tensors and exits 1 above 1e-3.

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
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_export import build, export

MARGIN = 3e-5


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


def model_of(name):
    if name != "resnet_mini":
        return build(name)
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


def prepare(name, d, n, mean=0.5, std=0.25):
    export(model_of(name), torch.randn(1, 3, 32, 32), f"{d}/model.onnx", "preserve")
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


def check(name, d, before, after, lr, mean, std):
    model = model_of(name).train()
    seed, n = (int(v) for v in open(f"{d}/seed").read().split())
    x, y = images(n, seed)
    loss = F.cross_entropy(model(torch.from_numpy(normalized(x, mean, std))), torch.from_numpy(y))
    loss.backward()
    w0, w1 = read_safetensors(before), read_safetensors(after)
    worst, where = 0.0, ""
    for pname, p in model.named_parameters():
        module, _, kind = pname.rpartition(".")
        key = module.replace(".", "_") + "." + kind
        g_torch = p.grad.numpy().astype(np.float64)
        # parcnn's shape may differ: (C, 1, 1, 1) for an imported (C, 1, 1) scale
        g_parcnn = ((w0[key].astype(np.float64) - w1[key]) / lr).reshape(g_torch.shape)
        err = np.abs(g_parcnn - g_torch).max() / max(np.abs(g_torch).max(), 1e-30)
        if err > worst:
            worst, where = err, pname
    print(f"{name} one SGD step: gradients within {worst:.3g} of PyTorch's (worst: {where}; "
          f"tolerance 1e-3)")
    sys.exit(0 if worst <= 1e-3 else 1)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 32)
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]),
              float(sys.argv[7]), float(sys.argv[8]))
