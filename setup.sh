#!/usr/bin/env bash
# One command from a fresh machine to a trained model: installs what is missing, builds,
# prepares the default dataset (Debian's `fortunes` corpus, a few MB of English text),
# trains the small GPT of configs/default.toml (on the GPU when one is present, else on
# the CPU), and prints a few samples from it.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install_deps.sh
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  build=build; cuda=AUTO          # a GPU: build the CUDA backend too
else
  build=build-cpu; cuda=OFF       # no GPU: the CPU build is all the default run needs
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=$cuda >/dev/null
cmake --build "$build" -j"$(nproc)" --target attnlab
"$build/attnlab" train -c configs/default.toml "$@"
"$build/attnlab" sample --checkpoint runs/default --sample.num_samples=3 --sample.max_new_tokens=120
