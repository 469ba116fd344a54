#!/usr/bin/env bash
# Session 33, call F (carry ["build-carry/s33f", ".gpucall/s33f.sh"]). sm_90a, stripped, in bins.tgz: n/ attnlab +
# attn_gpu_tests of main's final code of session 33 (a prompt length's prefill replayed as a CUDA graph after its first
# call; --no-prefill-graph: launched kernel by kernel); input.txt.
# 1. the generation and GEMV tests; 2. bench-generate at B = 1, 8, 32, prefill graph on / off, two rounds alternated;
# 3. on an H200 only: HF generate() (static + compile) at B = 1 and 32; then both variants again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w33f; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-380}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s33f.tgz.part" -C "$W" . && mv "$O/s33f.tgz.part" "$O/s33f.tgz"; }
trap pack EXIT
tar xzf build-carry/s33f/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 120 n/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:*KernelTrace*:GenerateGpu/*:Generate*' > "$W/tests_n.log" 2>&1
echo "n tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_n.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_n.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_n.log" | head -20; pack
gen() { timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do
  for v in "--no-prefill-graph" "--prefill-graph"; do echo "== round $r $v"; gen --batches 1,8,32 $v; done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
grep -q H200 "$W/gpu.txt" || { echo "not an H200: no HF"; exit 0; }
mkdir -p .deps/data && cp input.txt .deps/data/
n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
n/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 40 )); [ "$T" -gt 240 ] && T=240; echo "HF gets $T s"
timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
  --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
for v in "--no-prefill-graph" "--prefill-graph" "--no-prefill-graph" "--prefill-graph"; do
  echo "== after HF $v"; gen --batches 1,32 $v; done | tee -a "$W/step.txt"
echo "total $((SECONDS - t0)) s"
