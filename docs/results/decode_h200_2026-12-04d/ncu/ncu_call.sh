#!/usr/bin/env bash
# Session 4, call 6: Nsight Compute sections of the decode kernels on the shapes that fall short.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p new && tar xzf build-carry/b3/bins.tgz -C new
t() { echo "[$SECONDS s] $*"; }
i=0
for s in 32,12,4,64,4096,bf16 32,12,12,64,4096,fp8 1,12,12,64,32768,bf16 1,32,8,128,32768,bf16 32,12,12,64,4096,bf16; do
  i=$((i+1))
  timeout 150 ncu --clock-control none --cache-control all --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --section SourceCounters \
    -k regex:decode_ --launch-skip 3 --launch-count 1 new/bench_decode_attention --shape $s --reps 1 > $W/ncu_$i.txt 2>&1
  t "$s rc=$?"; grep -E "decode_|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issued Warp Per|No Eligible" $W/ncu_$i.txt | head -14
done
tar czf "$O/w.tgz" -C "$W" .
