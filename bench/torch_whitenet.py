#!/usr/bin/python3
"""PyTorch reference for recipe cifar10: airbench94's network and training on image folders.

Trains whitenet (a frozen 2x2 patch-whitening conv with a bias trained for the first
epochs, three conv groups of 64/256/256 filters starting as the identity, batch norm
without a learned scale, GELU, logits scaled by 1/9) with airbench94's recipe
(Jordan 2024), written from its description: Nesterov SGD (momentum 0.85) on the summed
label-smoothed (0.2) cross-entropy, 64x the learning rate on batch-norm biases, decoupled
weight decay, a triangular schedule (0.2 -> 1 at 20% of the steps -> 0), lookahead every
5 steps with decay 0.95^5 * progress^3, alternating flips, reflect-padded 2-pixel
translations; evaluated with flip + 1-pixel-translate test-time augmentation.

Its use: to tell how much accuracy these images allow, against how much parcnn's recipe
reaches, on the same files. It reads the same folders parcnn's --data folder:DIR reads
(DIR/train/CLASS/*.jpg, DIR/test/CLASS/*.jpg) and prints one line per epoch.

  /usr/bin/python3 bench/torch_whitenet.py --data /tmp/cifar --epochs 9.9

Needs Debian's python3-torch and python3-pil (run with /usr/bin/python3).
"""

import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def read_split(folder):
    classes = sorted(os.listdir(folder))
    images, labels = [], []
    for label, name in enumerate(classes):
        sub = os.path.join(folder, name)
        for f in sorted(os.listdir(sub)):
            with Image.open(os.path.join(sub, f)) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return x, torch.tensor(labels), classes


class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def batch_norm(channels):
    bn = nn.BatchNorm2d(channels, momentum=0.6, eps=1e-12)
    bn.weight.requires_grad = False  # no learned scale
    return bn


def identity_conv(cin, cout):
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


def conv_group(cin, cout):
    return nn.Sequential(identity_conv(cin, cout), nn.MaxPool2d(2), batch_norm(cout), nn.GELU(),
                         identity_conv(cout, cout), batch_norm(cout), nn.GELU())


def make_net(widths, whiten_width=24):
    return nn.Sequential(nn.Conv2d(3, whiten_width, 2, padding=0, bias=True), nn.GELU(),
                         conv_group(whiten_width, widths[0]), conv_group(widths[0], widths[1]),
                         conv_group(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(widths[2], 10, bias=False), Mul(1 / 9))


def init_whitening(conv, x, eps=5e-4):
    """The filters: the eigenvectors of the 2x2 patches' covariance, scaled by
    1/sqrt(eigenvalue + eps), and their negatives."""
    c, k = x.shape[1], conv.kernel_size[0]
    patches = x.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c, k, k).flatten(1)
    cov = torch.cov(patches.double().T)
    values, vectors = torch.linalg.eigh(cov)
    scaled = (vectors.T / torch.sqrt(values + eps)[:, None]).float().reshape(-1, c, k, k)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([scaled, -scaled]))
    conv.weight.requires_grad = False


def translate(x, pad, gen):
    """Each image shifted by a random (dy, dx) in [-pad, pad]^2, reflect-padded."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for sy in range(2 * pad + 1):
        for sx in range(2 * pad + 1):
            m = (dy == sy) & (dx == sx)
            out[m] = padded[m, :, sy:sy + h, sx:sx + w]
    return out


def tta_logits(net, x):
    def flips(v):
        return 0.5 * (net(v) + net(v.flip(-1)))
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[2:]
    up_left, down_right = padded[:, :, :h, :w], padded[:, :, 2:, 2:]
    return 0.5 * flips(x) + 0.25 * flips(up_left) + 0.25 * flips(down_right)


def evaluate(net, x, y, tta):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            v = x[i:i + 1000]
            logits = tta_logits(net, v) if tta else net(v)
            correct += (logits.argmax(1) == y[i:i + 1000]).sum().item()
    net.train()
    return correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="DIR with train/CLASS and test/CLASS")
    p.add_argument("--epochs", type=float, default=9.9)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--widths", default="64,256,256")
    p.add_argument("--lr", type=float, default=11.5, help="per 1024 images, airbench's scale")
    p.add_argument("--weight-decay", type=float, default=0.0153)
    p.add_argument("--whiten-bias-epochs", type=float, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="train on the first N images (timing)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    x_train, y_train, classes = read_split(os.path.join(args.data, "train"))
    x_test, y_test, _ = read_split(os.path.join(args.data, "test"))
    mean, std = x_train.mean((0, 2, 3), keepdim=True), x_train.std((0, 2, 3), keepdim=True)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    print(f"read {len(x_train)} training and {len(x_test)} test images in {time.time() - t0:.1f} s",
          flush=True)

    net = make_net([int(w) for w in args.widths.split(",")]).to(memory_format=torch.channels_last)
    init_whitening(net[0], x_train[torch.randperm(len(x_train), generator=gen)[:5000]])

    momentum, batch = 0.85, args.batch
    steps_per_epoch = len(x_train) // batch
    total = math.ceil(args.epochs * steps_per_epoch)
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    lr, wd = args.lr / kilostep, args.weight_decay * batch / kilostep
    bias_lr = 64 * lr
    norm_biases = [m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    others = [q for q in net.parameters() if q.requires_grad and all(q is not b for b in norm_biases)]
    opt = torch.optim.SGD([dict(params=norm_biases, lr=bias_lr, weight_decay=wd / bias_lr),
                           dict(params=others, lr=lr, weight_decay=wd / lr)],
                          momentum=momentum, nesterov=True)
    base_lrs = [g["lr"] for g in opt.param_groups]
    peak = int(0.2 * total)

    def factor(step):
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return max(0.0, (total - step) / (total - peak))

    slow = {k: v.clone() for k, v in net.state_dict().items()}

    def lookahead(decay):
        with torch.no_grad():
            for k, v in net.state_dict().items():
                if v.dtype == torch.float:
                    slow[k].lerp_(v, 1 - decay)
                    v.copy_(slow[k])

    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum")
    whiten_bias_steps = math.ceil(args.whiten_bias_epochs * steps_per_epoch)
    step, epoch, train_s = 0, 0, 0.0
    flip_mask = torch.rand(len(x_train), generator=gen) < 0.5
    while step < total:
        t = time.time()
        # alternating flips: a random half in the first epoch, then every image the
        # opposite way from the epoch before
        flipped = flip_mask if epoch % 2 == 0 else ~flip_mask
        images = torch.where(flipped[:, None, None, None], x_train.flip(-1), x_train)
        images = translate(images, 2, gen)
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(steps_per_epoch):
            if step >= total:
                break
            idx = order[i * batch:(i + 1) * batch]
            xb = images[idx].contiguous(memory_format=torch.channels_last)
            if step == whiten_bias_steps:
                net[0].bias.requires_grad = False
            loss = loss_fn(net(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * factor(step)
            opt.step()
            step += 1
            if step % 5 == 0:
                lookahead(0.95 ** 5 * (step / total) ** 3)
        if step >= total:
            lookahead(1.0)
        train_s += time.time() - t
        epoch += 1
        acc = evaluate(net, x_test, y_test, tta=False)
        print(f"epoch {epoch} step {step}/{total} test_acc {acc:.4f} train_s {train_s:.1f} "
              f"images_per_s {step * batch / train_s:.0f}", flush=True)
    print(f"final test_acc_tta {evaluate(net, x_test, y_test, tta=True):.4f} train_s {train_s:.1f}")


if __name__ == "__main__":
    main()
