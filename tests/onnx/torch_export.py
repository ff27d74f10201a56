"""Export a torchvision classifier (random weights, randomized batch-norm statistics) or
broadcast_net.py's network with torch.onnx.export and save PyTorch's own logits for a random
input:
  python3 torch_export.py MODEL SIZE OUT_PREFIX MODE...
MODE eval: eval-mode export (batch norm folded into the convolutions, Identity nodes);
MODE preserve: training=TrainingMode.PRESERVE of the eval-mode model (BatchNormalization
nodes kept); MODE opsetK: eval-mode export at opset K (otherwise 13). Writes OUT_PREFIX-MODE.onnx for each MODE, OUT_PREFIX.x.npy (2, 3, SIZE, SIZE)
and OUT_PREFIX.torch.npy (the logits)."""
import sys
import warnings

import numpy as np
import torch
import torchvision

from broadcast_net import broadcast_net


def build(name, seed=0):
    """The torchvision model `name` with 10 classes, random weights from `seed` and batch norm
    that is not the identity (so folding it or not matters), in eval mode; or
    broadcast_net.py's network for `broadcast_add`."""
    if name == "broadcast_add":
        return broadcast_net(seed)
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export(model, x, path, mode):
    """mode: eval or preserve at opset 13, or opsetK: eval at opset K."""
    opset = int(mode[5:]) if mode.startswith("opset") else 13
    training = {"preserve": torch.onnx.TrainingMode.PRESERVE}.get(mode, torch.onnx.TrainingMode.EVAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, path, opset_version=opset, training=training,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


if __name__ == "__main__":
    name, size, prefix, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    model = build(name)
    x = torch.randn(2, 3, size, size)
    for mode in modes:
        export(model, x, f"{prefix}-{mode}.onnx", mode)
    with torch.no_grad():
        np.save(prefix + ".torch.npy", model(x).numpy())
    np.save(prefix + ".x.npy", x.numpy())
