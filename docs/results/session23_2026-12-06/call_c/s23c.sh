#!/usr/bin/env bash
# Session 23, call C: branch s23-step (+ the s23-exp env knob) against main 30ccbac.
# f/ = main's binaries (build-carry/s23a), f2/ = the branch's (build-carry/s23c). Env LIM (s, default 540).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s23c.tgz.part" -C "$W" . && mv "$O/s23c.tgz.part" "$O/s23c.tgz"; }
trap pack EXIT
tar xzf build-carry/s23a/bins.tgz && tar xzf build-carry/s23c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the branch's generation tests
timeout 240 f2/attn_gpu_tests --gtest_filter='Generate*:Gemv*:PrefixLm*:KVCache*:DecodeAttentionGraph*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 2. the step, main against branch, and the branch with the decode merge / split knobs, alternated twice
gen() { timeout 60 "$@" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached' | awk '{print $5, $10, $12}'; }
for r in 1 2; do
  echo "== $r main"; gen f/attnlab
  echo "== $r branch"; gen f2/attnlab
  echo "== $r branch merge-in-kernel"; ATTNLAB_EXP_DECODE="merge=1048576" gen f2/attnlab
  echo "== $r branch minrows=128"; ATTNLAB_EXP_DECODE="minrows=128" gen f2/attnlab
  echo "== $r branch bps=4"; ATTNLAB_EXP_DECODE="bps=4" gen f2/attnlab
done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
# 3. the branch's profile at B = 32 and B = 1
for b in 1 32; do
  timeout 60 f2/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches $b --profile --out runs/p$b > "$W/profile_$b.txt" 2>&1; cp runs/p$b/decode_profile.md "$W/decode_profile_$b.md"
done
echo "profile ($((SECONDS - t0)) s)"; pack
# 4. HF generate() beside ours, when time is left
if [ "$(left)" -ge 230 ]; then
  mkdir -p .deps/data && cp f/input.txt .deps/data/
  f2/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  f2/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  f2/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches 1,32 2>&1 | grep -E '^cached' > "$W/ours_beside_hf.txt"
  timeout $(( $(left) - 20 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
    --new 512 --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  f2/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches 1,32 2>&1 | grep -E '^cached' >> "$W/ours_beside_hf.txt"
fi
echo "total $((SECONDS - t0)) s"
