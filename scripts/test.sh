#!/usr/bin/env bash
# Builds everything (the CUDA backend too, when nvcc is present; compiler warnings are errors:
# ATTN_WERROR) and runs every test, the layer include check among them.
# GPU tests report themselves SKIPPED on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
