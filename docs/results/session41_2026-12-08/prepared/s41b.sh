#!/usr/bin/env bash
# Session 41, call B (prepared: no device was lent in session 41).
# Only on an H200: issue 17's headline with main's build m/ (session 38's s38b.sh steps: generation tests, HF
# generate() B = 1 and 32 (static cache + torch.compile) beside bench-generate before and after, the decode rows,
# cuDNN's decode). Then on any card, with the time left: Nsight Compute on the flash forward (XU and tensor pipes,
# plain vs soft-capping 30: is the soft-capping forward bound by the special-function unit?) and on the int8 MHA
# decode kernel beside bf16's (issue 17's 0.6 row). On an H200 with time left, bench-generate's tables too. Before the
# Nsight Compute steps (session 42): plain / ALiBi / soft-capping 30 on issue 14's five shapes (variants.txt).
# Carry ["build-carry/m.txz", ".gpucall"] (.gpucall/input.txt = ../shared/data/tinyshakespeare/input.txt);
# run `LIM=540 bash .gpucall/s41b.sh`.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w41b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s41b.tgz.part" -C "$W" . && mv "$O/s41b.tgz.part" "$O/s41b.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
m=/tmp/bins/m; mkdir -p $m && tar xJf build-carry/m.txz -C $m || { echo "untar failed"; exit 1; }

headline() {
  timeout 90 $m/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:Generate*' > "$W/tests_gen.log" 2>&1
  echo "gen tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_gen.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  gen() { timeout 60 $m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
    --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
  { echo "== before HF"; gen --kv-cache bf16 --batches 1; gen --kv-cache bf16 --batches 1; gen --kv-cache bf16 --batches 32; } | tee "$W/step.txt"
  mkdir -p .deps/data && cp .gpucall/input.txt .deps/data/
  $m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  $m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
    --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
  local T=$(( $(left) - 150 )); [ "$T" -gt 150 ] && T=150; hf 1 $T 3
  { echo "== after HF B=1"; gen --kv-cache bf16 --batches 1; gen --kv-cache bf16 --batches 1; } | tee -a "$W/step.txt"; pack
  timeout 25 $m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 \
    --shape 1,32,8,128,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 > "$W/decode.jsonl" 2>&1
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
  # the B = 32 plan on this card (0.987x cuDNN in session 32; session 37's sweep ran only on an H100): 14 s (session 42)
  for f in "" "--blocks-per-sm 2" "--blocks-per-sm 4" "--waves 2" "--no-fit-waves" "--min-split-rows 1024" "--merge-bytes 0" "--mha-tensor-cores"; do
    echo "sweep B=32 [$f] $(timeout 15 $m/bench_decode_attention --shape 32,12,12,64,4096,bf16 $f 2>&1 | grep -o '"us": *[0-9.]*')"; done | tee "$W/sweep32.txt"
  T=$(( $(left) - 100 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
  { echo "== after HF B=32"; gen --kv-cache bf16 --batches 32; } | tee -a "$W/step.txt"; pack
}

ncu_pipes() { local tag=$1; shift; timeout 60 ncu --clock-control none -k regex:flash_fwd --launch-skip 2 --launch-count 1 \
  --metrics 'regex:sm__pipe_.*_cycles_active.avg.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*.avg.pct_of_peak_sustained_active,sm__inst_issued.avg.pct_of_peak_sustained_active,gpu__time_duration.sum' \
  $m/bench_flash_attention --reps 2 --shape 1,12,12,16384,64 "$@" > "$W/ncu_fwd_$tag.txt" 2>&1
  echo "ncu $tag exit $?"; grep -E "duration|inst_issued|xu|gmma|fma|alu" "$W/ncu_fwd_$tag.txt" | head -12; }
ncu_dec() { local tag=$1 re=$2; shift 2; timeout 60 ncu --clock-control none -k regex:$re --launch-skip 5 --launch-count 1 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section Occupancy \
  $m/bench_decode_attention --reps 8 "$@" > "$W/ncu_dec_$tag.txt" 2>&1
  echo "ncu $tag exit $?"; grep -E "Duration|DRAM Throughput|Memory Throughput|Issued Warp Per|No Eligible|Active Warps Per|Warp Cycles Per Issued|Achieved Occupancy" "$W/ncu_dec_$tag.txt" | head -10; }

if grep -q H200 "$W/gpu.txt"; then headline; else echo "not an H200: no headline"; fi
# issue 17's acceptance 4 on this card: bench-generate's tables (results.md / .csv, report.html), kernels a step
grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 150 ] && { mkdir -p "$W/gen_tables"; timeout 120 $m/attnlab bench-generate \
  -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --batches 1,8,32 --kv-cache bf16,int8 --out "$W/gen_tables" \
  > "$W/gen_tables/log.txt" 2>&1; echo "tables exit $? ($((SECONDS - t0)) s)"; pack; }
# issue 14's variants row on all five shapes (last measured at T = 16384 only; ALiBi was 1.13x at 16,12,12,1024,64 in
# session 14): main plain / ALiBi / soft-capping 30 interleaved, forward+backward ms (added in session 42)
variants() { for r in 1 2; do for v in "" "--alibi" "--softcap 30"; do echo "== m $v"; timeout 60 $m/bench_flash_attention \
  --reps 20 --warmup-ms 300 $v; done; done > "$W/variants.txt" 2>&1; grep -E "^==|^ *[0-9]+,[0-9]" "$W/variants.txt" | cut -c1-120; }
[ "$(left)" -gt 150 ] && { variants; pack; }
# where the short shapes' time goes (kernels of one call; session 42): the side passes (Dsum pre-pass, dQ convert)
# move B H T D bytes, as many at 16,12,12,1024,64 as at 1,12,12,16384,64 (61 us of its 3233 on the H100): an estimated
# 16% of the short call. Beside it ALiBi: its forward's and backward's shares of its overhead at the short shape.
[ "$(left)" -gt 110 ] && { for v in "" "--alibi"; do timeout 40 $m/bench_flash_attention --reps 10 --warmup-ms 300 --trace 5 \
  --shape 16,12,12,1024,64 --shape 8,16,16,2048,128 $v; done > "$W/trace_short.txt" 2>&1
  grep -E "^trace|flash_|on the GPU" "$W/trace_short.txt" | cut -c1-110; pack; }
[ "$(left)" -gt 70 ] && { ncu_pipes plain; ncu_pipes softcap --softcap 30; pack; }
[ "$(left)" -gt 50 ] && { ncu_dec int8 decode_mha_direct --shape 1,12,12,64,32768,int8; ncu_dec bf16 decode_split --shape 1,12,12,64,32768,bf16; pack; }
echo "total $((SECONDS - t0)) s"
