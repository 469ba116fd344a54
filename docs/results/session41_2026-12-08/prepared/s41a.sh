#!/usr/bin/env bash
# Session 41, call A (prepared: no device was lent in session 41). Any card unless noted.
#   c/ = branch s41-softcap-fixed-max (cd47d66): the flash forward takes the soft-capping bound as every row's
#        maximum when cap <= 32 (no row maxima, no O rescale; general kind only, the plain kernels' machine code
#        is identical by scripts/device_code_diff.sh); m/ = main's build.
#   1. the flash tests on c/ (two new variants: softcap32_D128, the fixed maximum at its largest cap;
#      softcap50_alibi, the running maximum);
#   2. bench_flash_attention m/ vs c/ interleaved: soft-capping 30 on issue 14's five shapes, plain causal m/
#      before and after, soft-capping 50 (the unchanged path) on two shapes;
#   3. only on an H200: issue 17's headline with main (session 38's s38b.sh steps: HF generate() B = 1 and 32
#      beside bench-generate, the decode rows, cuDNN's decode);
#   4. Nsight Compute: the XU (tanh, exp2) and tensor pipes of the forward, plain vs soft-capping (m, c); the
#      int8 MHA decode kernel beside bf16's (memory, scheduler, warp states).
# Binaries (rebuild in a new checkout): main's attnlab, attn_gpu_tests, bench_decode_attention,
# bench_flash_attention stripped into build-carry/m, the branch's attn_gpu_tests and bench_flash_attention into
# build-carry/c; `tar cJf build-carry/m.txz -C build-carry/m .` (and c). Copy this file to .gpucall/ with
# ../shared/data/tinyshakespeare/input.txt as .gpucall/input.txt; carry
# ["build-carry/m.txz", "build-carry/c.txz", ".gpucall"]; run `LIM=530 bash .gpucall/s41a.sh` (timeout 600).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w41a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-530}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s41a.tgz.part" -C "$W" . && mv "$O/s41a.tgz.part" "$O/s41a.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
m=/tmp/bins/m; c=/tmp/bins/c; mkdir -p $m $c
tar xJf build-carry/m.txz -C $m && tar xJf build-carry/c.txz -C $c || { echo "untar failed"; exit 1; }

# 1. tests
timeout 150 $c/attn_gpu_tests --gtest_filter='*Flash*:*VsCpu*' > "$W/tests_c.log" 2>&1
echo "c tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_c.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_c.log" | head -10; pack

# 2. bench, m and c interleaved
X="--reps 20 --warmup-ms 300"
bench() { local vs=$1; shift; for v in $vs; do echo "== $v $*"; timeout 60 /tmp/bins/$v/bench_flash_attention $X "$@"; done >> "$W/bench.txt" 2>&1; }
bench "m"
bench "m c m c" --softcap 30
bench "m c m c" --softcap 50 --shape 1,12,12,16384,64 --shape 2,16,16,8192,128
bench "m"
echo "bench done ($((SECONDS - t0)) s)"; grep -E "^==|^ *[0-9]+,[0-9]" "$W/bench.txt" | cut -c1-120 | head -60; pack

# 3. issue 17's headline (H200 only), main's binaries
headline() {
  timeout 90 $m/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:Generate*:Decode*' > "$W/tests_gen.log" 2>&1
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
  local T=$(( $(left) - 80 )); [ "$T" -gt 150 ] && T=150; hf 1 $T 3
  { echo "== after HF B=1"; gen --kv-cache bf16 --batches 1; gen --kv-cache bf16 --batches 1; } | tee -a "$W/step.txt"; pack
  timeout 25 $m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 \
    --shape 1,32,8,128,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 > "$W/decode.jsonl" 2>&1
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
  T=$(( $(left) - 30 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
  { echo "== after HF B=32"; gen --kv-cache bf16 --batches 32; } | tee -a "$W/step.txt"; pack
}

# 4. Nsight Compute
ncu_pipes() { local tag=$1 bin=$2; shift 2; timeout 60 ncu --clock-control none -k regex:flash_fwd --launch-skip 2 --launch-count 1 \
  --metrics 'regex:sm__pipe_.*_cycles_active.avg.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*.avg.pct_of_peak_sustained_active,sm__inst_issued.avg.pct_of_peak_sustained_active,gpu__time_duration.sum' \
  $bin/bench_flash_attention --reps 2 --shape 1,12,12,16384,64 "$@" > "$W/ncu_fwd_$tag.txt" 2>&1
  echo "ncu $tag exit $?"; grep -E "duration|inst_issued|xu|gmma|fma|alu" "$W/ncu_fwd_$tag.txt" | head -12; }
ncu_dec() { local tag=$1 re=$2; shift 2; timeout 60 ncu --clock-control none -k regex:$re --launch-skip 5 --launch-count 1 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section Occupancy \
  $m/bench_decode_attention --reps 8 "$@" > "$W/ncu_dec_$tag.txt" 2>&1
  echo "ncu $tag exit $?"; grep -E "Duration|DRAM Throughput|Memory Throughput|Issued Warp Per|No Eligible|Active Warps Per|Warp Cycles Per Issued|Achieved Occupancy" "$W/ncu_dec_$tag.txt" | head -10; }
profiles() {
  [ "$(left)" -gt 120 ] && { ncu_pipes plain $m; ncu_pipes softcap_m $m --softcap 30; ncu_pipes softcap_c $c --softcap 30; pack; }
  [ "$(left)" -gt 80 ] && { ncu_dec int8 decode_mha_direct --shape 1,12,12,64,32768,int8; ncu_dec bf16 decode_split --shape 1,12,12,64,32768,bf16; pack; }
}
if grep -q H200 "$W/gpu.txt"; then headline; profiles; else echo "not an H200: no headline"; profiles; fi
echo "total $((SECONDS - t0)) s"
