#!/usr/bin/env bash
# Session 27, call B (carry ["build-carry/s27b", ".gpucall/s27b.sh"]): f/ main's binaries (7a6d87e: attnlab,
# bench_decode_attention, attn_gpu_tests, input.txt), g/ branch s27-gemv32's (attnlab, attn_gpu_tests), sm_90a.
# 1. the branch's GEMV / generation tests; 2. the decode step, main against the branch at B = 1, 8, 16, 32, two rounds;
# 3. the branch's step profile at B = 32; 4. main's two long 8-bit MHA decode tests; 5. HF generate() (static +
# compile) beside both. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w27b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-570}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s27b.tgz.part" -C "$W" . && mv "$O/s27b.tgz.part" "$O/s27b.tgz"; }
trap pack EXIT
tar xzf build-carry/s27b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the branch's tests
timeout 150 g/attn_gpu_tests --gtest_filter='Gemv*:Generate*:PrefixLm*:DecodeAttentionAppend*:Kernels*' > "$W/t_branch.log" 2>&1
echo "branch tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_branch.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 2. the decode step (GPT-2 124M, bf16 cache, prompt 128 + 512), main / branch / branch with the cuBLASLt step above 8
gen() { local bin=$1; shift; timeout 90 $bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen f --batches 1,8,16,32
    echo "== round $r branch"; gen g --batches 1,8,16,32
    echo "== round $r branch --gemv-max-batch 8"; gen g --batches 16,32 --gemv-max-batch 8; } >> "$W/step.txt"
  echo "step round $r ($((SECONDS - t0)) s)"; pack
done
grep -E "==|B=" "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-140
# 3. the branch's step, kernel by kernel
for b in 32 16; do
  timeout 60 g/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches $b --profile --out runs/g$b > "$W/profile_g$b.txt" 2>&1; cp runs/g$b/decode_profile.md "$W/decode_profile_g$b.md"
done
echo "profiles ($((SECONDS - t0)) s)"; pack
# 4. main's two long 8-bit MHA cases (added in session 26, not yet run against main's kernel)
timeout 100 f/attn_gpu_tests --gtest_filter='*cap32768_L_32768_77*:*int8_actbf16_H12_Hkv12_D64_cap32768*' > "$W/t_long8.log" 2>&1
echo "long 8-bit MHA tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_long8.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 5. HF generate() (static cache + torch.compile, its best) beside ours, in what time is left
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 50 )); echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
{ echo "== after HF main"; gen f --batches 1,32; echo "== after HF branch"; gen g --batches 1,32; } >> "$W/step.txt"
tail -4 "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-140
echo "total $((SECONDS - t0)) s"
