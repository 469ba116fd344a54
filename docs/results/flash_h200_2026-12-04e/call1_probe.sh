#!/usr/bin/env bash
# Session 5, call 1: GPU tests on HEAD + the ALiBi j-i as FADD (no per-element I2F); the variants
# head vs new; the five shapes, non-causal, GQA beside cuDNN; ncu of the D=128 backward at T=2048 vs 8192.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p new head && tar xzf build-carry/alibi/bins.tgz -C new && tar xzf build-carry/head/bins.tgz -C head
t() { echo "[$SECONDS s] $*"; }
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader
t tests
new/attn_gpu_tests > $W/tests.log 2>&1; echo "rc=$?"
grep -E "^\[  PASSED|^\[  FAILED|Failure|SKIPPED \]" $W/tests.log | head -30
t variants
V=1,12,12,16384,64
for who in head new head new; do
  for f in "" "--alibi" "--softcap 30" "--alibi --softcap 30" "--window 1024"; do
    echo "$who $f: $($who/bench_flash_attention --reps 10 --shape $V $f 2>&1 | awk '$1 ~ /,/')"
  done
done | tee $W/variants.txt
for f in "" "--alibi" "--softcap 30"; do
  echo "new D128 $f: $(new/bench_flash_attention --reps 10 --shape 2,16,16,8192,128 $f 2>&1 | awk '$1 ~ /,/')"
done | tee -a $W/variants.txt
t shapes
new/bench_flash_attention 2>&1 | tee $W/five.txt
new/bench_flash_attention --full --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/' | tee -a $W/five.txt
new/bench_flash_attention --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/' | tee -a $W/five.txt
python3 scripts/bench_sdpa.py --backends cudnn 2>&1 | tee $W/sdpa.txt
python3 scripts/bench_sdpa.py --backends cudnn --full --shapes 2,16,8192,128 2>&1 | tail -1 | tee -a $W/sdpa.txt
t ncu
for s in 8,16,16,2048,128 2,16,16,8192,128 4,12,12,4096,64; do
  timeout 60 ncu --clock-control none -k regex:"flash_bwd|flash_fwd" --metrics gpu__time_duration.sum --launch-skip 8 --launch-count 8 \
    new/bench_flash_attention --reps 2 --shape $s > $W/ncu_dur_$s.txt 2>&1
  echo "== $s"; grep -E "flash_|gpu__time_duration" $W/ncu_dur_$s.txt | sed 's/(attn::[^)]*)//' | head -16
done
for s in 8,16,16,2048,128 2,16,16,8192,128; do
  timeout 90 ncu --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
    --section SchedulerStats --section Occupancy -k regex:flash_bwd_sm90 --launch-skip 2 --launch-count 1 \
    new/bench_flash_attention --reps 2 --shape $s > $W/ncu_sec_$s.txt 2>&1
  echo "== $s rc=$?"; grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Issued Warp Per|No Eligible|Warp Cycles Per Issued|Executed Ipc A|Tensor|Stall" $W/ncu_sec_$s.txt | head -20
done
t done
tar czf "$O/w.tgz" -C "$W" .
