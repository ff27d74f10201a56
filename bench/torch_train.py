#!/usr/bin/python3
"""PyTorch reference trainer for parcnn throughput comparisons.

Trains one of parcnn's zoo models (simple-cnn, minixception and resnet20 written out here,
the others built from their model text by torch_predict.py's generic builder, frozen
parameters frozen) with Adam and softmax cross-entropy and measures training throughput: forward, backward and optimizer
step on batches indexed out of an in-memory float tensor with shuffled indices.
Data loading and normalization happen before the clock starts.

Modes:
  --mode threads --threads T   one process, torch.set_num_threads(T)
  --mode ddp --procs P         P processes (torch.multiprocessing.spawn), gloo backend on
                               127.0.0.1, 1 intra-op thread each, DistributedDataParallel,
                               per-process batch = global batch / P; reports the GLOBAL rate
  --autocast bf16              forward and loss under torch.autocast('cpu', bfloat16)

Data: --data fashion-mnist reads /usr/share/datasets/fashion-mnist (1x28x28, normalized
per channel with the training-set mean and std); --data cifar10:DIR reads CIFAR-10 binary
files (DIR/data_batch_{1..5}.bin, 3x32x32, normalized the same way), the format parcnn's
--data cifar10:DIR reads, so both can train on the very same images; --data random draws
N(0,1) images of --input CxHxW (the default for any input shape other than 1x28x28).

--describe prints the model's parameter count and its training FLOPs per image, counted
as `parcnn models` counts them ("train MFLOP"), and exits without training: 2 per
multiply-add of every Conv2d and Linear, forward + backward-data + backward-weights, except
that a layer whose input needs no gradient (the images) has no backward-data. Benchmarks
compare both with parcnn's to make sure the two frameworks train the same network.

BLAS (--blas): Debian's torch 1.13 is built with BLAS_INFO=generic and takes sgemm (the
dense layers) from whatever libblas.so.3 the system alternatives select; on this machine
that is netlib's reference BLAS, single-threaded and about 5x slower on simple-cnn than
OpenBLAS.  "openblas" re-executes this script with LD_LIBRARY_PATH pointing at Debian's
OpenBLAS, unpacked (not installed: nothing on the system changes) into a scratch
directory ($PARCNN_BENCH_CACHE, default $TMPDIR/parcnn-bench-openblas):
  1. libopenblas0-openmp, from /var/cache/apt/archives or `apt-get download`: it shares
     torch's OpenMP thread pool (as MKL does in the official wheels);
     OPENBLAS_NUM_THREADS = the intra-op threads;
  2. failing that libopenblas0-pthread, with OPENBLAS_NUM_THREADS=1 (its own threads
     fight torch's spinning OpenMP threads: measured slower than 1 with 2 threads).
"system" uses the installed libblas.so.3; "auto" (default) is openblas when it can be
had, otherwise system.  Convolutions run in torch's oneDNN either way.

Output ends with four machine-readable lines:
  blas=<paths of the libblas/libopenblas mapped into the process>
  openblas_num_threads=<OPENBLAS_NUM_THREADS>
  images_per_second=<float>
  peak_rss_kb=<int>  (peak resident memory; DDP: of the training processes, summed)
(with --describe: params=<int> and train_flops_per_image=<int>)

Needs Debian's torch: run with /usr/bin/python3 (the pyenv python3 has no torch).
"""

import argparse
import glob
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


# ----------------------------------------------------- arguments and BLAS

def parse_input(s):
    try:
        dims = tuple(int(v) for v in s.lower().split("x"))
        assert len(dims) == 3 and all(d > 0 for d in dims)
        return dims
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError("expected CxHxW, e.g. 1x28x28")


def parse_data(s):
    if s in ("fashion-mnist", "random") or (s.startswith("cifar10:") and len(s) > 8):
        return s
    raise argparse.ArgumentTypeError("expected fashion-mnist, cifar10:DIR or random")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("threads", "ddp"), default="threads")
    p.add_argument("--threads", type=int, default=1, help="threads mode: intra-op threads")
    p.add_argument("--procs", type=int, default=2, help="ddp mode: processes")
    p.add_argument("--model", default="simple-cnn",
                   help="simple-cnn, minixception, resnet20 (written out here), or any other "
                   "zoo model, built from `parcnn models --print NAME` by torch_predict.py")
    p.add_argument("--parcnn", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "build", "parcnn"), help="for the other zoo models' text")
    p.add_argument("--input", type=parse_input, default=(1, 28, 28), help="CxHxW")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--data", type=parse_data, default=None,
                   help="fashion-mnist, cifar10:DIR or random (default: fashion-mnist for "
                   "1x28x28, else random)")
    p.add_argument("--random-n", type=int, default=10000, help="images of random data")
    p.add_argument("--batch", type=int, default=128, help="GLOBAL batch size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=200, help="timed steps")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--blas", choices=("auto", "openblas", "system"), default="auto",
                   help="BLAS for torch's sgemm (see above; default auto)")
    p.add_argument("--autocast", choices=("none", "bf16"), default="none",
                   help="bf16: forward and loss under torch.autocast('cpu', bfloat16)")
    p.add_argument("--describe", action="store_true",
                   help="print parameters and training FLOPs per image, do not train")
    return p


def note(msg):
    print("torch_train.py: " + msg, file=sys.stderr, flush=True)


def openblas_dir():
    """(directory holding Debian's OpenBLAS libblas.so.3, "openmp" or "pthread"),
    unpacked on demand into a scratch cache; (None, None) if neither can be had."""
    cache = os.environ.get("PARCNN_BENCH_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                 "parcnn-bench-openblas")

    def unpacked(variant):
        found = sorted(glob.glob(os.path.join(cache, "*", "usr", "lib", "*",
                                              "openblas-" + variant, "libblas.so.3")))
        return os.path.dirname(found[-1]) if found else None

    def unpack(variant):
        pkg = "libopenblas0-" + variant
        debs = sorted(glob.glob("/var/cache/apt/archives/%s_*.deb" % pkg))
        failed = os.path.join(cache, pkg + ".download-failed")
        if not debs and os.path.exists(failed):
            return None
        tmp = None
        try:
            os.makedirs(cache, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=cache, prefix=".unpack-")
            if not debs:
                note("fetching %s with apt-get download (unpacked, not installed)" % pkg)
                r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=tmp, timeout=120,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                debs = sorted(glob.glob(os.path.join(tmp, pkg + "_*.deb")))
                if r.returncode != 0 or not debs:
                    open(failed, "w").close()
                    note("apt-get download %s failed" % pkg)
                    return None
            root = os.path.join(tmp, "root")
            subprocess.run(["dpkg-deb", "-x", debs[-1], root], check=True, timeout=120)
            try:
                os.rename(root, os.path.join(cache, os.path.basename(debs[-1])[:-4]))
            except OSError:
                pass  # another process unpacked it first
        except (OSError, subprocess.SubprocessError) as e:
            note("cannot unpack %s: %s" % (pkg, e))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        return unpacked(variant)

    for variant in ("openmp", "pthread"):
        libdir = unpacked(variant) or unpack(variant)
        if libdir:
            return libdir, variant
    return None, None


def setup_blas(args):
    """Pick the BLAS before torch is loaded; may re-execute this script."""
    threads = args.threads if args.mode == "threads" else 1
    if os.environ.get("PARCNN_BENCH_BLAS_SET") == "1":
        return  # re-executed, or a DDP child: the environment is already set
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    if args.blas == "system":
        return
    libdir, variant = openblas_dir()
    if libdir is None:
        if args.blas == "openblas":
            sys.exit("torch_train.py: --blas openblas: OpenBLAS is not available")
        note("OpenBLAS not available; torch uses the system libblas.so.3")
        return
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"]
                                       if env.get("LD_LIBRARY_PATH") else "")
    env["OPENBLAS_NUM_THREADS"] = str(threads) if variant == "openmp" else "1"
    env["PARCNN_BENCH_BLAS_SET"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def mapped_blas():
    """Paths of the BLAS libraries mapped into this process."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path)
            if path.startswith("/") and (name.startswith("libblas") or
                                         name.startswith("libopenblas")):
                paths.add(path)
    return ",".join(sorted(paths)) or "unknown"


if __name__ == "__main__":
    ARGS = build_parser().parse_args()
    if not ARGS.describe:
        setup_blas(ARGS)

import numpy as np  # noqa: E402  (after the BLAS choice)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


# ------------------------------------------------------------------ models

class SimpleCNN(nn.Module):
    """models/simple-cnn.cfg: conv5x5x32 p2 + ReLU, maxpool 2, conv5x5x64 p2 + ReLU,
    maxpool 2, flatten, dense 1024 + ReLU, dropout 0.4, dense classes."""

    def __init__(self, c, h, w, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), 1024)
        self.drop = nn.Dropout(0.4)
        self.fc2 = nn.Linear(1024, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        return self.fc2(x)


class SepConv(nn.Module):
    """[sepconv]: depthwise size x size then pointwise 1x1 (no bias in minixception)."""

    def __init__(self, cin, cout, size=3, pad=1, bias=False):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, size, padding=pad, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.short = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.short_bn = nn.BatchNorm2d(cout)
        self.sep1 = SepConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout)
        self.sep2 = SepConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        s = self.short_bn(self.short(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(y, 3, stride=2, padding=1)
        return y + s


class MiniXception(nn.Module):
    """models/minixception.cfg (mini_XCEPTION, Arriaga et al. 2017)."""

    def __init__(self, c, h, w, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        widths = [8, 16, 32, 64, 128]
        self.modules_ = nn.Sequential(*[XceptionModule(widths[i], widths[i + 1])
                                        for i in range(4)])
        self.exit = nn.Conv2d(128, classes, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.modules_(x)
        x = self.exit(x)
        return x.mean(dim=(2, 3))


class BasicBlock(nn.Module):
    """ResNet basic block with option-A shortcut (subsample + zero-pad channels)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = cout - cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x
        if self.stride != 1:
            s = s[:, :, ::self.stride, ::self.stride]
        if self.pad:
            s = F.pad(s, (0, 0, 0, 0, 0, self.pad))
        return F.relu(y + s)


class ResNet20(nn.Module):
    """models/resnet20.cfg (He et al. 2016, CIFAR ResNet n=3, option A)."""

    def __init__(self, c, h, w, classes):
        super().__init__()
        self.conv = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


MODELS = {"simple-cnn": SimpleCNN, "minixception": MiniXception, "resnet20": ResNet20}


# -------------------------------------------------------------------- data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_cifar10(folder):
    """The training images (N, 3, 32, 32) uint8 and labels of a CIFAR-10 binary folder."""
    recs = []
    for i in range(1, 6):
        path = os.path.join(folder, "data_batch_%d.bin" % i)
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % 3073:
            sys.exit("torch_train.py: %s: not CIFAR-10 records of 3073 bytes" % path)
        recs.append(raw.reshape(-1, 3073))
    recs = np.concatenate(recs)
    if recs[:, 0].max() >= 10:
        sys.exit("torch_train.py: %s: a label is out of range [0, 10)" % folder)
    return recs[:, 1:].reshape(-1, 3, 32, 32), recs[:, 0]


def load_data(args):
    """Training images as a normalized float32 NCHW tensor and int64 labels."""
    c, h, w = args.input
    if args.data == "fashion-mnist" or args.data.startswith("cifar10:"):
        shape = (1, 28, 28) if args.data == "fashion-mnist" else (3, 32, 32)
        if (c, h, w) != shape:
            sys.exit("torch_train.py: %s is %s; use --data random for --input %s"
                     % (args.data, "x".join(map(str, shape)), "x".join(map(str, args.input))))
        if args.data == "fashion-mnist":
            x = read_idx(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))
            y = read_idx(os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz"))
        else:
            x, y = read_cifar10(args.data[len("cifar10:"):])
        x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, *shape)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        x = ((x - mean) / std).contiguous()
        y = torch.from_numpy(y.astype(np.int64))
        if args.classes != 10:
            sys.exit("torch_train.py: %s has 10 classes" % args.data)
    else:
        g = torch.Generator().manual_seed(args.seed)
        n = args.random_n
        x = torch.randn(n, c, h, w, generator=g)
        y = torch.randint(0, args.classes, (n,), generator=g)
    return x, y


# ---------------------------------------------------------------- training

def batch_indices(n, batch, steps, seed):
    """Global batches of shuffled indices, one fresh permutation per pass over the data."""
    g = torch.Generator().manual_seed(seed)
    out, perm, pos = [], torch.randperm(n, generator=g), 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        out.append(perm[pos:pos + batch])
        pos += batch
    return out


def train(model, x, y, batches, warmup, lr, barrier=None, autocast=False):
    """Run len(batches) steps; return seconds spent on the ones after the warm-up.
    autocast: forward and loss under torch.autocast('cpu', bfloat16), PyTorch's mixed
    precision on the CPU (parameters, gradients and the optimizer stay fp32)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lossf = nn.CrossEntropyLoss()
    model.train()
    t0 = None
    for i, idx in enumerate(batches):
        if i == warmup:
            if barrier:
                barrier()
            t0 = time.perf_counter()
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError("loss is not finite at step %d" % i)
    if barrier:
        barrier()
    return time.perf_counter() - t0, float(loss)


def make_model(args):
    torch.manual_seed(args.seed)
    c, h, w = args.input
    if args.model in MODELS:
        return MODELS[args.model](c, h, w, args.classes)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_predict import Net  # the generic builder: any parcnn model file
    text = subprocess.run([args.parcnn, "models", "--print", args.model], check=True,
                          capture_output=True, text=True).stdout
    return Net(text, c, h, w, args.classes, logits=True)


def train_flops_per_image(model, c, h, w):
    """Conv and dense training FLOPs per image as `parcnn models` counts them (see above)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            macs = out[0].numel() * (mod.in_channels // mod.groups) * kh * kw
        else:
            macs = mod.in_features * mod.out_features
        # forward, backward data where the input needs a gradient, backward weights
        # unless the weight is frozen
        total += 2 * macs * (1 + inp[0].requires_grad + mod.weight.requires_grad)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(torch.zeros(2, c, h, w))  # 2 images: batch norm needs more than one value
    for handle in handles:
        handle.remove()
    return total


def run_threads(args):
    torch.set_num_threads(args.threads)
    x, y = load_data(args)
    model = make_model(args)
    batches = batch_indices(len(x), args.batch, args.warmup + args.steps, args.seed)
    secs, loss = train(model, x, y, batches, args.warmup, args.lr,
                       autocast=args.autocast == "bf16")
    return args.steps * args.batch / secs, secs, loss


def ddp_worker(rank, args, port, queue):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.procs)
    try:
        x, y = load_data(args)
        model = DDP(make_model(args))  # DDP broadcasts rank 0's parameters
        local = args.batch // args.procs
        batches = [idx[rank * local:(rank + 1) * local]
                   for idx in batch_indices(len(x), args.batch, args.warmup + args.steps,
                                            args.seed)]
        secs, loss = train(model, x, y, batches, args.warmup, args.lr, barrier=dist.barrier,
                           autocast=args.autocast == "bf16")
        if rank == 0:
            queue.put(("result", args.steps * args.batch / secs, secs, loss))
        queue.put(("rss", peak_rss_kb()))
    finally:
        dist.destroy_process_group()


def peak_rss_kb():
    """This process's peak resident set size in KB (Linux's ru_maxrss)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(args):
    import torch.multiprocessing as mp
    if args.batch % args.procs:
        sys.exit("torch_train.py: --batch %d is not divisible by --procs %d"
                 % (args.batch, args.procs))
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(ddp_worker, args=(args, free_port(), queue), nprocs=args.procs, join=True)
    result, rss = None, 0
    for _ in range(args.procs + 1):
        msg = queue.get()
        if msg[0] == "result":
            result = msg[1:]
        else:
            rss += msg[1]
    return result + (rss,)


def main():
    args = ARGS
    if args.data is None:
        args.data = "fashion-mnist" if args.input == (1, 28, 28) else "random"
    if min(args.steps, args.batch, args.threads, args.procs, args.classes) < 1 or args.warmup < 0:
        sys.exit("torch_train.py: need --steps, --batch, --threads, --procs, --classes >= 1 "
                 "and --warmup >= 0")

    if args.describe:
        model = make_model(args)
        print("params=%d" % sum(p.numel() for p in model.parameters()))
        print("train_flops_per_image=%d" % train_flops_per_image(model, *args.input))
        return
    if args.mode == "threads":
        ips, secs, loss = run_threads(args)
        rss = peak_rss_kb()
        how = "%d thread(s)" % args.threads
    else:
        ips, secs, loss, rss = run_ddp(args)
        how = "ddp %d process(es) x 1 thread, %d per process" % (args.procs,
                                                                 args.batch // args.procs)
    if args.autocast == "bf16":
        how += ", autocast bf16"
    print("torch %s: %s %s, %s data, batch %d, %s; %d steps in %.2f s (after %d warm-up), "
          "last loss %.4f" % (torch.__version__, args.model, "x".join(map(str, args.input)),
                              args.data, args.batch, how, args.steps, secs, args.warmup, loss))
    print("blas=%s" % mapped_blas())
    print("openblas_num_threads=%s" % os.environ.get("OPENBLAS_NUM_THREADS", ""))
    print("images_per_second=%.1f" % ips)
    print("peak_rss_kb=%d" % rss)  # DDP: the training processes' peaks summed


if __name__ == "__main__":
    main()
