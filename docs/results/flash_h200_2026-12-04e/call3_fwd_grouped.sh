#!/usr/bin/env bash
# Session 5, call 3: the forward persistent (query-block rank slowest over all heads) vs one block
# per tile in groups of about a wave of heads (ATTN_FWD_GROUPED=1); flash tests in both modes.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p new && tar xzf build-carry/fg/bins.tgz -C new
t() { echo "[$SECONDS s] $*"; }
t tests
ATTN_FWD_GROUPED=1 new/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*' > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests.log | head -30
t shapes
for g in 0 1 0 1; do
  echo "== grouped=$g"
  export ATTN_FWD_GROUPED=$g
  new/bench_flash_attention 2>&1 | awk '$1 ~ /,/'
  new/bench_flash_attention --full --shape 2,16,16,8192,128 --shape 16,12,12,1024,64 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "full"}'
  new/bench_flash_attention --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "gqa"}'
  new/bench_flash_attention --shape 1,12,12,16384,64 --window 1024 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "window1024"}'
done | tee $W/shapes.txt
t done
tar czf "$O/w.tgz" -C "$W" .
