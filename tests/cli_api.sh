#!/usr/bin/env bash
# The public C API as a user gets it: `cmake --install` into a temporary prefix, then
# examples/train_predict.c compiled against the installed header and library alone
# (pkg-config --cflags --libs parcnn) and run; its evaluation, predictions and saved
# model must equal what the command line gives for the same model.
# usage: cli_api.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
build=$(dirname "$parcnn")
. "$(dirname "$0")/lib.sh"

prefix=$tmp/prefix
if cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1 \
    && [ -f "$prefix/include/parcnn.h" ] && [ -x "$prefix/bin/parcnn" ] \
    && ls "$prefix"/lib*/libparcnn.a "$prefix"/lib*/pkgconfig/parcnn.pc > /dev/null 2>&1; then
    ok "cmake --install: header, library, pkg-config file and command"
else
    bad "cmake --install: $(cat "$tmp/install.log")"; finish
fi
export PKG_CONFIG_PATH=$(dirname "$(ls "$prefix"/lib*/pkgconfig/parcnn.pc)")
flags=$(pkg-config --cflags --libs parcnn) && [ "$(pkg-config --modversion parcnn)" = "$("$parcnn" --version | cut -d' ' -f2)" ] \
    && ok "pkg-config: version $(pkg-config --modversion parcnn)" || bad "pkg-config parcnn"
[ "$("$prefix/bin/parcnn" --version)" = "$("$parcnn" --version)" ] && ok "installed command runs" || bad "installed command"

# The header alone, strictly: no internal header, no warning.
printf '#include <parcnn.h>\nint main(void) { return parcnn_version()[0] == 0; }\n' > "$tmp/header.c"
cc -std=c99 -Wall -Wextra -Wpedantic -Werror "$tmp/header.c" $flags -o "$tmp/header" 2> "$tmp/cc.log" && "$tmp/header" \
    && ok "parcnn.h compiles alone as C99 without warnings" || bad "header: $(cat "$tmp/cc.log")"

cc -std=c11 -Wall -Wextra -Werror "$src/examples/train_predict.c" $flags -o "$tmp/train_predict" 2> "$tmp/cc.log" \
    && ok "examples/train_predict.c builds against the installed API" || { bad "example: $(cat "$tmp/cc.log")"; finish; }

# a 28x28 gray PNG (Python's standard library only)
python3 - "$tmp/img.png" <<'PY'
import struct, sys, zlib
w = h = 28
rows = b"".join(b"\0" + bytes((x * 9 + y * 5) % 256 if 6 < x < 22 else 0 for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
if "$tmp/train_predict" "$tmp/run" "$tmp/img.png" > "$tmp/example.out" 2> "$tmp/example.err"; then
    ok "train_predict runs"
else
    bad "train_predict: $(cat "$tmp/example.out" "$tmp/example.err")"; finish
fi
cat "$tmp/example.out"

acc=$(sed -n 's/^test set: 10000 samples, accuracy \([0-9.]*\),.*/\1/p' "$tmp/example.out")
python3 -c "import sys; sys.exit(0 if float('$acc' or 0) >= 0.65 else 1)" \
    && ok "the trained model: test accuracy $acc >= 0.65" || bad "test accuracy '$acc'"
cmp -s "$tmp/run/model.safetensors" "$tmp/run/api-model.safetensors" \
    && ok "parcnn_model_save writes the bytes of the run's model.safetensors" || bad "saved model differs"
cli_acc=$("$parcnn" eval --weights "$tmp/run/api-model.safetensors" --json \
    | python3 -c "import json, sys; print('%.4f' % json.load(sys.stdin)['accuracy'])")
[ "$cli_acc" = "$acc" ] && ok "parcnn_evaluate = parcnn eval ($acc)" || bad "evaluate $acc, eval $cli_acc"

# predictions: the top class and its probability, as `parcnn predict` prints them
"$parcnn" predict --weights "$tmp/run/model.safetensors" --top 1 0 1 2 > "$tmp/cli.txt" 2>&1
"$parcnn" predict --weights "$tmp/run/model.safetensors" --top 1 "$tmp/img.png" >> "$tmp/cli.txt" 2>&1
grep -E '^(sample|/)' "$tmp/example.out" | tr -s ' ' > "$tmp/api-top.txt"
tr -s ' ' < "$tmp/cli.txt" > "$tmp/cli-top.txt"
if [ "$(wc -l < "$tmp/api-top.txt")" = 4 ] && diff "$tmp/api-top.txt" "$tmp/cli-top.txt" > "$tmp/diff.txt"; then
    ok "parcnn_predict_sample and _file = parcnn predict (3 samples, 1 image file)"
else
    bad "predictions differ: $(cat "$tmp/diff.txt" "$tmp/api-top.txt")"
fi
finish
