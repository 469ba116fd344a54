#!/usr/bin/env bash
# Session 13, call A (carry ["build-carry/s13a", ".gpucall"]):
#   1. issue 17: what a dependent stage costs (bench_step_boundary): PDL kernels, plain graph, grid barrier
#   2. issue 14: Nsight Compute on the bf16 forward, plain causal against soft-capping, D=128 and D=64
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s13a.tgz.part" -C "$W" . && mv "$O/s13a.tgz.part" "$O/s13a.tgz"; }
trap pack EXIT
B=bins; mkdir -p "$B" && tar xzf build-carry/s13a/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
for E in "--empty" ""; do for rep in 1 2; do
  "$B/bench_step_boundary" --reps 100 --blocks 132,264,528,660 $E 2>&1
done; done | tee "$W/boundary.txt"
pack; echo "== boundary done ($((SECONDS - t0)) s)"
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
SEC="--section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section InstructionStats --section LaunchStats --section Occupancy --section SourceCounters"
for S in 1,16,16,16384,128 1,12,12,16384,64; do
  for X in "" "--softcap 30"; do
    tag=$(echo "fwd_${S}_${X:-plain}" | tr ', ' '_-' | tr -d '-')
    timeout 150 "$NCU" --clock-control none -k regex:flash_fwd_wg_kernel --launch-skip 2 --launch-count 1 $SEC \
      -o "$W/$tag" "$B/bench_flash_attention" --reps 1 --shape $S $X > "$W/$tag.log" 2>&1
    "$NCU" --import "$W/$tag.ncu-rep" --page details > "$W/$tag.txt" 2>&1
    "$NCU" --import "$W/$tag.ncu-rep" --page source --csv --print-source sass > "$W/${tag}_sass.csv" 2>/dev/null
    echo "$tag: $(grep -E 'Duration|Issue Slots Busy|No Eligible' "$W/$tag.txt" | head -4 | tr -s ' ' | tr '\n' ';')"
    pack
  done
done
echo "total $((SECONDS - t0)) s"
