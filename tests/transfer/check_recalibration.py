"""Batch-norm recalibration against PyTorch: the running statistics parcnn's
--bn-recalibrate N wrote (every batch norm frozen afterwards, so the saved model holds
them) must be those of torchvision's resnet18 in training mode on the same N images in
shards of SHARD, pooled over all N images (mean of the shard means; variance of all the
values, unbiased).
usage: check_recalibration.py FIXTURES MODEL.safetensors N SHARD"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

fx, model_path, n, shard = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
raw = open(model_path, "rb").read()
head_len = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + head_len])
def tensor(name):
    a, b = head[name]["data_offsets"]
    return np.frombuffer(raw[8 + head_len + a:8 + head_len + b], dtype="<f4")
names = [k[:-len(".running_mean")] for k in head if k.endswith(".running_mean")]
names.sort(key=lambda k: head[k + ".running_mean"]["data_offsets"][0])  # model order

# the first n training images in parcnn's order: round-robin over the classes
root = os.path.join(fx, "sq", "train")
classes = sorted(os.listdir(root))
files = [sorted(os.listdir(os.path.join(root, c))) for c in classes]
order = [os.path.join(root, classes[k], files[k][i])
         for i in range(max(map(len, files))) for k in range(len(classes)) if i < len(files[k])]
mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32).view(3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32).view(3, 1, 1)
def load(path):  # 37x37 -> the central 32x32, normalized as parcnn does in float32
    x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    return (x[:, 2:34, 2:34].float() / 255.0 - mean) / std
x = torch.stack([load(p) for p in order[:n]])

model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(torch.load(os.path.join(fx, "r18.pt")))
model.train()
bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
assert len(bns) == len(names), (len(bns), len(names))
stats = {id(m): [] for m in bns}
def hook(module, inputs, output):
    v = inputs[0].double()
    stats[id(module)].append((v.mean((0, 2, 3)), v.var((0, 2, 3), unbiased=False), v[0, 0].numel()))
for m in bns:
    m.register_forward_hook(hook)
with torch.no_grad():
    for s in range(0, n - n % shard, shard):
        model(x[s:s + shard])
worst = 0.0
for m, name in zip(bns, names):
    rec = stats[id(m)]
    means = torch.stack([r[0] for r in rec])
    second = torch.stack([r[1] + r[0] ** 2 for r in rec])
    count = len(rec) * shard * rec[0][2]
    mu = means.mean(0)
    var = (second.mean(0) - mu ** 2) * count / (count - 1)
    for got, want in ((tensor(name + ".running_mean"), mu), (tensor(name + ".running_var"), var)):
        want = want.numpy()
        err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
        worst = max(worst, err)
print(f"{len(bns)} batch norms, max relative error {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
