#!/usr/bin/env bash
# --tensorboard DIR: the event files decode, with an independent reader (Python standard
# library: TFRecord framing with masked CRC32C, protocol-buffer varints and fields), to
# the numbers of metrics.jsonl; the batch scalars average to the epoch's train loss.
# usage: cli_tensorboard.sh PARCNN SOURCE_DIR
set -u
parcnn=$1
. "$(dirname "$0")/lib.sh"

"$parcnn" train --limit 1024 --eval-limit 1000 --epochs 2 --workers 2 --no-progress --tensorboard "$tmp/tb" \
    --tensorboard-every 1 --out "$tmp/run" > "$tmp/train.log" 2>&1 || bad "train --tensorboard: $(tail -3 "$tmp/train.log")"
/usr/bin/python3 - "$tmp/tb" "$tmp/run/metrics.jsonl" "$tmp/run/eval.json" <<'PY' && ok "event files decode to metrics.jsonl's numbers" || bad "event files"
import glob, json, struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def records(data):
    pos = 0
    while pos < len(data):
        head = data[pos:pos + 8]
        (n,), (c,) = struct.unpack("<Q", head), struct.unpack("<I", data[pos + 8:pos + 12])
        assert c == masked(crc32c(head)), "length CRC"
        body = data[pos + 12:pos + 12 + n]
        (d,) = struct.unpack("<I", data[pos + 12 + n:pos + 16 + n])
        assert len(body) == n and d == masked(crc32c(body)), "data CRC"
        yield body
        pos += 16 + n

def varint(b, i):
    v = s = 0
    while True:
        v |= (b[i] & 127) << s
        s += 7
        i += 1
        if b[i - 1] < 128:
            return v, i

def fields(b):
    i = 0
    while i < len(b):
        k, i = varint(b, i)
        f, w = k >> 3, k & 7
        if w == 0: v, i = varint(b, i)
        elif w == 1: v, i = b[i:i + 8], i + 8
        elif w == 5: v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else: raise ValueError("wire type %d" % w)
        yield f, v

files = glob.glob(sys.argv[1] + "/events.out.tfevents.*")
assert len(files) == 1, files
events = []
for body in records(open(files[0], "rb").read()):
    e = {"tags": {}}
    for f, v in fields(body):
        if f == 1: e["wall_time"] = struct.unpack("<d", v)[0]
        elif f == 2: e["step"] = v
        elif f == 3: e["file_version"] = v.decode()
        elif f == 5:
            for f2, value in fields(v):
                assert f2 == 1
                kv = dict(fields(value))
                e["tags"][kv[1].decode()] = struct.unpack("<f", kv[2])[0]
    events.append(e)
assert events[0]["file_version"] == "brain.Event:2" and events[0]["wall_time"] > 1.6e9
times = [e["wall_time"] for e in events]
assert times == sorted(times)
scalars = {}
for e in events[1:]:
    for tag, v in e["tags"].items():
        scalars.setdefault(tag, []).append((e["step"], v))
lines = [json.loads(l) for l in open(sys.argv[2])]
close = lambda a, b, tol: abs(a - b) <= tol * max(1, abs(b))
pairs = {"epoch/train_loss": "train_loss", "epoch/train_accuracy": "train_acc", "epoch/test_loss": "val_loss",
         "epoch/test_accuracy": "val_acc", "epoch/lr": "lr"}
for tag, key in pairs.items():
    assert [s for s, _ in scalars[tag]] == [l["step"] for l in lines], (tag, scalars[tag])
    for (s, v), l in zip(scalars[tag], lines):
        assert close(v, l[key], 2e-6), (tag, v, l[key])
for (s, v), l in zip(scalars["epoch/images_per_second"], lines):
    assert close(v, l["images_per_second"], 1e-3), (v, l["images_per_second"])
steps = [s for s, _ in scalars["batch/loss"]]
assert steps == list(range(1, 17)), steps
for epoch, l in enumerate(lines):  # the epoch's train loss is the mean of its batches'
    batch = [v for s, v in scalars["batch/loss"] if epoch * 8 < s <= (epoch + 1) * 8]
    assert close(sum(batch) / 8, l["train_loss"], 2e-6), (batch, l["train_loss"])
ev = json.load(open(sys.argv[3]))
assert scalars["final/test_accuracy"] == [(16, scalars["final/test_accuracy"][0][1])]
assert close(scalars["final/test_accuracy"][0][1], ev["accuracy"], 1e-7)
print("%d events, tags: %s" % (len(events), ", ".join(sorted(scalars))))
PY

# --resume adds a file; --tensorboard-every 0 writes only the epoch and final scalars
"$parcnn" train --limit 1024 --eval-limit 1000 --epochs 3 --workers 1 --no-progress --tensorboard "$tmp/tb" \
    --tensorboard-every 0 --out "$tmp/run" --resume > "$tmp/resume.log" 2>&1 || bad "resume: $(tail -3 "$tmp/resume.log")"
[ "$(ls "$tmp/tb" | wc -l)" = 2 ] && ok "a resumed run adds an event file" || bad "resume: $(ls "$tmp/tb")"
touch "$tmp/file"
"$parcnn" train --limit 256 --epochs 1 --no-progress --tensorboard "$tmp/file/tb" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "file/tb" "$tmp/err" && ok "--tensorboard under a file: exit 1 naming it" || bad "--tensorboard under a file: $rc $(cat "$tmp/err")"
"$parcnn" train --tensorboard-every -1 > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "tensorboard-every" "$tmp/err" && ok "--tensorboard-every -1: usage error" || bad "--tensorboard-every -1: $rc"
finish
