#!/usr/bin/env bash
# Session 32, call D, prepared and not run (carry ["build-carry/s32d", ".gpucall/s32d.sh"]). sm_90a, stripped:
#   l/: branch s32-lm-head-l2 (attnlab, attn_gpu_tests): GeneratorOptions::lm_head_in_l2 (bench-generate --lm-head-l2),
#       the decode step's LM head GEMV launched with an L2 access policy window over wte in the device's persisting
#       set-aside, so that part of wte stays in L2 from step to step; off by default;
#   m/: main d9fc26a (attnlab; the kernels of ac461a9); input.txt for the HF export.
# 1. l/'s generation, GEMV and trace tests; 2. the step at B = 1 and 8: m, l, l --lm-head-l2, three rounds alternated;
# 3. l --lm-head-l2's B = 1 profile (the LM head's row); 4. on an H200 only: HF generate() (static + compile) at B = 1,
# then all three again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w32d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s32d.tgz.part" -C "$W" . && mv "$O/s32d.tgz.part" "$O/s32d.tgz"; }
trap pack EXIT
tar xzf build-carry/s32d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 120 l/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:*KernelTrace*:GenerateGpu/*' > "$W/tests_l.log" 2>&1
echo "l tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_l.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_l.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_l.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do
  echo "== round $r m"; gen m/attnlab --batches 1,8
  echo "== round $r l"; gen l/attnlab --batches 1,8
  echo "== round $r l --lm-head-l2"; gen l/attnlab --batches 1,8 --lm-head-l2
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1l2"; timeout 60 l/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --lm-head-l2 --profile --out "$W/p1l2" > "$W/p1l2/log.txt" 2>&1; rm -f "$W/p1l2/report.html"
cut -c1-150 "$W/p1l2/decode_profile.md" | tail -13; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 220 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  for b in "m/attnlab" "l/attnlab" "l/attnlab --lm-head-l2"; do echo "== after HF $b"; gen $b --batches 1; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
