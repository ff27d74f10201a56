"""Fixtures of tests/cli_transfer.sh: torchvision's resnet18 (random weights, 10 classes,
3x32x32) as ONNX with ImageNet normalization in metadata_props (and its state_dict, r18.pt),
and small image folders:
  imgs/train|test/CLASS: 3 classes, sizes 40..70 px of various aspect ratios, JPEG and PNG
  sq/train|test/CLASS:   37x37 PNGs (37 = round(32 / 0.875): the crop is exact, so the
                         test can feed PyTorch the same tensors parcnn sees)
usage: make_fixtures.py DIR"""
import json
import os
import sys

import numpy as np
import onnx
import torch
import torchvision
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(7)
torch.manual_seed(0)

model = torchvision.models.resnet18(num_classes=10).eval()
with torch.no_grad():  # batch-norm statistics that are not the identity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
torch.save(model.state_dict(), os.path.join(out, "r18.pt"))
path = os.path.join(out, "r18.onnx")
torch.onnx.export(model, torch.randn(1, 3, 32, 32), path, opset_version=13,
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
m = onnx.load(path)
for key, value in (("mean", [0.485, 0.456, 0.406]), ("std", [0.229, 0.224, 0.225])):
    entry = m.metadata_props.add()
    entry.key, entry.value = key, json.dumps(value)
onnx.save(m, path)


def image(cls, h, w):
    img = rng.integers(0, 110, size=(h, w, 3)).astype(np.uint8)
    img[..., cls] += 120
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y:y + h // 3, x:x + w // 3, (cls + 1) % 3] = 250
    return Image.fromarray(img)


for folder, sizes in (("imgs", None), ("sq", 37)):
    for part, n in (("train", 16), ("test", 6)):
        for cls, name in enumerate(["c0", "c1", "c2"]):
            d = os.path.join(out, folder, part, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                h = sizes or int(rng.integers(40, 70))
                w = sizes or int(rng.integers(40, 70))
                ext = "png" if (i % 2 or sizes) else "jpg"
                image(cls, h, w).save(os.path.join(d, f"{i:02d}.{ext}"))
