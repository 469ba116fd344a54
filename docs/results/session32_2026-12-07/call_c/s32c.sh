#!/usr/bin/env bash
# Session 32, call C (carry ["build-carry/s32c", ".gpucall/s32c.sh"]). sm_90a, stripped:
#   f/: branch s32-fused-mlp (attnlab, attn_gpu_tests): the decode step's MLP as one kernel (kern::gemv_mlp), its
#       output a fixed-point pending sum that the next GEMVs add; 62 kernels a step at B = 1;
#   p/: branch s32-fused-attn-proj (attnlab, attn_gpu_tests): f/ plus the attention projection in decode attention's
#       combine kernel (or a GEMV leaving its output pending), the MLP adding both sums; 50 kernels a step;
#   m/: main ac461a9 (attnlab); input.txt for the HF export.
# 1. p/'s GEMV, generation and trace tests (f/'s too if p/'s fail); 2. the step at B = 1 and 8, m / f / p alternated, three rounds;
# 3. f's and p's B = 1 profiles; 4. on an H200 only: HF generate() (static + compile) at B = 1, then all three again;
# 5. p/'s decode attention tests if time is left. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w32c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-480}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s32c.tgz.part" -C "$W" . && mv "$O/s32c.tgz.part" "$O/s32c.tgz"; }
trap pack EXIT
tar xzf build-carry/s32c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
tests() { local b=$1 f=$2 T=$3 n=$4; timeout $T $b/attn_gpu_tests --gtest_filter="$f" > "$W/$n.log" 2>&1
  echo "$n exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/$n.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/$n.log") ok ($((SECONDS - t0)) s)"
  grep -E '^\[  FAILED|SKIPPED \]|Failure|rel\] (fused|combine|output)' "$W/$n.log" | head -30; pack; }
tests p 'Gemv*:Generate*:*KernelTrace*:PrefixLm*' 150 tests_p
grep -q '^\[  PASSED' "$W/tests_p.log" && ! grep -q '^\[  FAILED' "$W/tests_p.log" || tests f 'Gemv*:GenerateGreedy*:GenerateGpu/*' 90 tests_f
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do for b in m f p; do echo "== round $r $b"; gen $b/attnlab --batches 1,8; done; done | tee "$W/step.txt"
echo "step ($((SECONDS - t0)) s)"; pack
for b in f p; do mkdir -p "$W/p1$b"; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline --batches 1 --profile --out "$W/p1$b" > "$W/p1$b/log.txt" 2>&1; echo "== profile B=1 $b"; cut -c1-150 "$W/p1$b/decode_profile.md" | tail -13; done; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 220 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 70 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  for b in m f p; do echo "== after HF $b"; gen $b/attnlab --batches 1; done | tee -a "$W/step.txt"; pack
fi
if [ "$(left)" -gt 40 ]; then tests p '*Decode*' $(( $(left) - 10 )) tests_p_decode; fi
echo "total $((SECONDS - t0)) s"
