#!/usr/bin/env bash
# Session 5, call 2: the backward's blocks grouped by heads (L2) vs head (alibi build); flash tests;
# the general kind's own cost (one document / a window of T); cuDNN in the same call.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p new head && tar xzf build-carry/swz/bins.tgz -C new && tar xzf build-carry/head/bins.tgz -C head
t() { echo "[$SECONDS s] $*"; }
t tests
new/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:TrainStep*:VsCpu*:Kernels*' > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure" $W/tests.log | head -30
t shapes
for who in head new head new; do
  echo "== $who"
  $who/bench_flash_attention 2>&1 | awk '$1 ~ /,/'
  $who/bench_flash_attention --full --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/'
  $who/bench_flash_attention --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/'
done | tee $W/shapes.txt
python3 scripts/bench_sdpa.py --backends cudnn 2>&1 | tee $W/sdpa.txt
python3 scripts/bench_sdpa.py --backends cudnn --full --shapes 2,16,8192,128 2>&1 | tail -1 | tee -a $W/sdpa.txt
t general
V=1,12,12,16384,64
for f in "" "--doc-len 16384" "--window 16384" "--alibi" "--window 1024"; do
  echo "new $f: $(new/bench_flash_attention --reps 10 --shape $V $f 2>&1 | awk '$1 ~ /,/')"
done | tee $W/general.txt
t ncu
for s in 8,16,16,2048,128 2,16,16,8192,128; do
  timeout 60 ncu --clock-control none -k regex:"flash_bwd_sm90" --section SpeedOfLight --section SchedulerStats --launch-skip 2 --launch-count 1 \
    new/bench_flash_attention --reps 2 --shape $s > $W/ncu_$s.txt 2>&1
  echo "== $s"; grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|L2 Cache Throughput|Issued Warp Per" $W/ncu_$s.txt | head -8
done
t done
tar czf "$O/w.tgz" -C "$W" .
