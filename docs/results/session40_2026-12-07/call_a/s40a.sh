#!/usr/bin/env bash
# Session 40, call A: session 39's two prepared calls in one. First s39b.sh (any card, ~60 s: bench_flash_attention
# --trace on issue 14's open rows), then s39a.sh (the decode fixed-cost sweep, then s38b.sh: generation / GEMV tests
# on any card, issue 17's headline on an H200 only).
# Carry ["build-carry/s38b", "build-carry/s39b", ".gpucall/s40a.sh", ".gpucall/s39a.sh", ".gpucall/s39b.sh", ".gpucall/s38b.sh"].
set -uo pipefail
t0=$SECONDS
bash .gpucall/s39b.sh
LIM=$(( ${LIM:-520} - (SECONDS - t0) )) bash .gpucall/s39a.sh
echo "s40a total $((SECONDS - t0)) s"
