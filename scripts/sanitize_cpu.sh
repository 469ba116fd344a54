#!/usr/bin/env bash
# The CPU suite under AddressSanitizer and UndefinedBehaviorSanitizer: a CPU-only build
# (ATTN_CUDA=OFF) in build-asan/, every undefined-behaviour report fatal, then attn_tests (the CLI
# tests run that build's attnlab). Not part of CI: the instrumented build takes about 17 minutes on
# 2 cores. Run it after changes to host code that handles memory, files or untrusted input.
#   scripts/sanitize_cpu.sh [gtest filter]
# Exits non-zero on a failed test or the first sanitizer report (its stack is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-asan -G Ninja -DATTN_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j"$(nproc)" --target attn_tests attnlab
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build-asan/attn_tests --gtest_brief=1 \
  --gtest_filter="${1:-*}"
