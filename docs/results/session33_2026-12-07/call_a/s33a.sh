#!/usr/bin/env bash
# Session 33, call A (carry ["build-carry/s33a", ".gpucall/s33a.sh"]). sm_90a, stripped, in bins.tgz:
#   n/: attnlab + attn_gpu_tests of the working tree: chained decode steps (each LM head GEMV starts the next
#       step, a run of 16 steps replayed as one graph); --no-chain gives the step as on main; input.txt.
# 1. n's generation, GEMV and trace tests; 2. the step at B = 1, 8, 32: n --no-chain / n, three rounds
# alternated; 3. n's B = 1 profile; 4. on an H200 only: HF generate() (static + compile) at B = 1 and 32,
# then both again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w33a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s33a.tgz.part" -C "$W" . && mv "$O/s33a.tgz.part" "$O/s33a.tgz"; }
trap pack EXIT
tar xzf build-carry/s33a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 n/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:*KernelTrace*:GenerateGpu/*:Generate*' > "$W/tests_n.log" 2>&1
echo "n tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_n.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_n.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_n.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do
  echo "== round $r n --no-chain"; gen n/attnlab --batches 1,8,32 --no-chain
  echo "== round $r n"; gen n/attnlab --batches 1,8,32
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1"; timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1" > "$W/p1/log.txt" 2>&1; rm -f "$W/p1/report.html" "$W/p1/"*.png
cut -c1-150 "$W/p1/decode_profile.md" | tail -14; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  n/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 50 )); [ "$T" -gt 220 ] && T=220; echo "HF gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
    --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  for f in "--no-chain" "--chain-steps"; do echo "== after HF n $f"; gen n/attnlab --batches 1,32 $f; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
