#!/usr/bin/env bash
# Session 5, call 10: Nsight Compute on the forward, plain causal against the general kind with the
# same mask (window = T) and with ALiBi, 1,12,12,16384,64: instructions, stalls, top SASS lines.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p final && tar xzf build-carry/final/bins.tgz -C final
i=0
for f in "" "--window 16384" "--alibi"; do
  i=$((i+1))
  timeout 80 ncu --clock-control none --section SpeedOfLight --section InstructionStats --section WarpStateStats \
    --section SchedulerStats --section SourceCounters -k regex:flash_fwd --launch-skip 3 --launch-count 1 \
    final/bench_flash_attention --reps 2 --shape 1,12,12,16384,64 $f > $W/ncu_fwd_$i.txt 2>&1
  echo "== '$f' rc=$?"
  grep -E "Duration|Executed Instructions  |Issued Warp Per|No Eligible|Warp Cycles Per Issued|Stall" $W/ncu_fwd_$i.txt | head -12
done
tar czf "$O/w.tgz" -C "$W" .
