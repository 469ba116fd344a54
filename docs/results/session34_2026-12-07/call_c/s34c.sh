#!/usr/bin/env bash
# Session 34, call C (carry ["build-carry/s34c", ".gpucall/s34c.sh"]). sm_90a, stripped, in bins.tgz:
#   m/ attnlab: main 36f32ba's step (call A's l/, default); x/ attnlab, attn_gpu_tests: branch s34-short-early, the
#   short-cache kernel with a softmax state a warp (call B's w) and an experiment knob: ATTN_EXP_GEMV_CARVEOUT=1 asks
#   the GEMVs for the whole L1 as shared memory (the short kernel's 171 KB block may then start beside them).
# 1. the step at B = 1, 8: m / x / x+knob, three rounds alternated; 2. B = 1 profiles x and x+knob; 3. x's tests with
# the knob; 4. on an H200 only: HF at B = 1, the three again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34c.tgz.part" -C "$W" . && mv "$O/s34c.tgz.part" "$O/s34c.tgz"; }
trap pack EXIT
tar xzf build-carry/s34c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
run3() { echo "== $1 m"; gen m "${@:2}"; echo "== $1 x"; gen x "${@:2}"; echo "== $1 x+carveout"; ATTN_EXP_GEMV_CARVEOUT=1 gen x "${@:2}"; }
for r in 1 2 3; do run3 "round $r" --batches 1,8; done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
for v in x xc; do
  mkdir -p "$W/p1$v"; [ $v = xc ] && export ATTN_EXP_GEMV_CARVEOUT=1
  timeout 60 x/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
    --no-baseline --batches 1,8 --profile --out "$W/p1$v" > "$W/p1$v/log.txt" 2>&1; rm -f "$W/p1$v/report.html" "$W/p1$v/env.json"
  echo "== profile $v"; grep -E "^\| [0-9]|on the GPU|step period" "$W/p1$v/decode_profile.md" | cut -c1-150
done; unset ATTN_EXP_GEMV_CARVEOUT; pack
ATTN_EXP_GEMV_CARVEOUT=1 timeout 100 x/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:*cap640*:*cap400*:GenerateGreedy*:Gemv*' > "$W/tests_xc.log" 2>&1
echo "xc tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_xc.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 --new 512 \
    --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
  run3 "after HF" --batches 1 | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
