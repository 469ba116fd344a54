#!/usr/bin/env bash
# Session 21, call B (carry ["build-carry/s20c", ".gpucall/s21b.sh"]): where MQA and GQA decode at B = 1 lose
# against their read floor (H100: MQA 15.5 us against 6.3, GQA 21.3 against 14.2). Nsight Compute per kernel
# (split kernel and combine pass separately), then the plan knobs on those rows.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s21b.tgz.part" -C "$W" . && mv "$O/s21b.tgz.part" "$O/s21b.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the knobs on the grouped rows (µs, read floor)
G="--shape 1,12,1,64,32768,bf16 --shape 1,12,1,64,32768,fp8 --shape 1,12,4,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 32,12,1,64,4096,bf16"
for k in "" "--merge-bytes 100000000" "--merge-bytes 0" "--blocks-per-sm 0.5" "--blocks-per-sm 0.25" "--blocks-per-sm 2" \
         "--mma-warps 8" "--min-split-rows 512" "--mma-warps 8 --blocks-per-sm 0.5" ""; do
  echo "== $k"; timeout 40 f/bench_decode_attention $k $G 2>&1 | grep '"decode"' \
    | python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us'],d['frac_copy']) for d in map(json.loads, sys.stdin)]"
done | tee "$W/knobs.txt"; pack
# 2. Nsight Compute: both kernels of one call (the first warm-up skipped)
i=0
for s in 1,12,1,64,32768,bf16 1,12,4,64,32768,bf16 1,12,1,64,32768,fp8 1,12,12,64,32768,bf16; do
  i=$((i+1)); [ "$(left)" -ge 60 ] || break
  timeout 100 ncu --clock-control none --cache-control all --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --section SourceCounters \
    -k regex:decode_ --launch-skip 2 --launch-count 2 f/bench_decode_attention --shape $s --reps 1 > "$W/ncu_$i.txt" 2>&1
  echo "$s rc=$? ($((SECONDS - t0)) s)"; grep -E "decode_|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issued Warp Per|No Eligible|Grid Size|Block Size" "$W/ncu_$i.txt" | head -30
done; pack
# 3. nsys-like timeline of one call with the default plan: the two kernels' start/end in one trace
if command -v nsys >/dev/null; then
  timeout 60 nsys profile -o "$W/mqa" --force-overwrite true f/bench_decode_attention --shape 1,12,1,64,32768,bf16 --reps 5 > /dev/null 2>&1
  timeout 60 nsys stats -r cuda_gpu_trace "$W/mqa.nsys-rep" 2>/dev/null | grep -E "decode_|read_kv" | tail -12 > "$W/mqa_trace.txt"; rm -f "$W"/mqa.nsys-rep "$W"/mqa.sqlite
  cat "$W/mqa_trace.txt"
fi
echo "total $((SECONDS - t0)) s"
