#!/usr/bin/env bash
# The main job: set up, build, and train the default model (simple-cnn) on the
# default dataset (Fashion-MNIST from Debian's dataset-fashion-mnist) with the
# default settings, writing runs/default/ (a second run replaces the first: this is the
# demonstration job; use `build/parcnn train --out DIR` for runs you keep). Extra arguments
# go to `parcnn train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec build/parcnn train --out runs/default --overwrite "$@"
