#!/usr/bin/env bash
# Install what parcnn needs from Debian (only what is missing), then configure and
# build into build/ (and build-asan/ with --asan). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libdnnl-dev libopenmpi-dev openmpi-bin zlib1g-dev
          libjpeg-dev libpng-dev libcjson-dev dataset-fashion-mnist python3 procps time
          libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx python3-numpy
          python3-torch python3-torchvision python3-pil nodejs clang libclang-rt-14-dev lld python3-sklearn chromium
          slurm-wlm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm > /dev/null || missing+=(npm) # tests/cli_onnx.sh installs onnxruntime-node
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j "$jobs" >> build.log 2>&1 || { cat build.log; exit 1; }
if [ "${1:-}" = "--asan" ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARCNN_SANITIZE=ON >> build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build build-asan -j "$jobs" >> build.log 2>&1 || { cat build.log; exit 1; }
fi
rm -f build.log
