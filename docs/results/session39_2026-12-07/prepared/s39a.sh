#!/usr/bin/env bash
# Session 39, call A (prepared, not run: no device was lent in session 39): session 38's s38b with one more part.
# m/ = main 03f1780's build (the same kernels as 7e8fc73 and as main 60ef163: device_code_diff identical), t/ = main
# 7e8fc73's attn_gpu_tests. Any card: main's generation / GEMV tests, then the decode fixed-cost sweep (B = 1, context
# 640 .. 32768, bf16 / int8 / fp8 MHA and bf16 GQA / MQA: fit us = a + b bytes per kernel and for the plain read; issue
# 17's 8-bit B = 1 ratio). Only on an H200: HF generate() B = 1 and 32 (static cache + torch.compile) beside ours
# before and after; the decode rows and cuDNN; the B = 1 step's profile.
# Carry ["build-carry/s38b", ".gpucall/s39a.sh"]. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w39a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-500}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s39a.tgz.part" -C "$W" . && mv "$O/s39a.tgz.part" "$O/s39a.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s38b/bins.tgz || { echo "untar failed"; exit 1; }
# Any card: main 7e8fc73's generation and GEMV tests (GenerateGreedy.GemvCarveoutChangesNoValue's inline form has not run on a GPU).
timeout 90 t/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:Generate*' > "$W/tests_t.log" 2>&1
echo "t tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_t.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_t.log" | head -10; pack
# Any card: where the decode kernels' time goes. Per shape the kernel (us), a plain read of its bytes (read_us) and the
# bulk-copy read (read_bulk_us), L2 flushed; fitted afterwards by docs/results/session39_2026-12-07/prepared/fit_sweep.py.
sw=(); for c in 640 2048 8192 32768; do for d in bf16 int8 fp8; do sw+=(--shape 1,12,12,64,$c,$d); done
  sw+=(--shape 1,12,4,64,$c,bf16 --shape 1,12,1,64,$c,bf16); done
timeout 60 m/bench_decode_attention "${sw[@]}" > "$W/sweep.jsonl" 2>&1; echo "sweep exit $? ($((SECONDS - t0)) s)"; pack
grep -q H200 "$W/gpu.txt" || { echo "not an H200: no headline"; exit 0; }
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
{ echo "== before HF"; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 32; } | tee "$W/step.txt"
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 70 )); [ "$T" -gt 150 ] && T=150; hf 1 $T 3
{ echo "== after HF B=1"; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 1; } | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 \
  --shape 1,32,8,128,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 > "$W/decode.jsonl" 2>&1
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
T=$(( $(left) - 30 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
{ echo "== after HF B=32"; gen m --kv-cache bf16 --batches 32; } | tee -a "$W/step.txt"; pack
[ "$(left)" -gt 25 ] && { mkdir -p "$W/p1m"; timeout 20 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --no-baseline --batches 1 --kv-cache bf16 --profile --out "$W/p1m" > "$W/p1m/log.txt" 2>&1; }
echo "total $((SECONDS - t0)) s"
