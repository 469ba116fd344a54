#!/usr/bin/env bash
# Prepared in session 26 for the next (carry ["build-carry/s27a", ".gpucall/s27a.sh"], ~29 MB with the tree): f/ main's
# binaries (build them from the checkout: session 26 ended at cbaf68a) for sm_90a (attnlab, bench_decode_attention, attn_gpu_tests; input.txt for the HF export). Issue 17's
# whole acceptance on one card, meant for the H200 (HF generate() has not run on it since session 13). Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w27a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-580}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s27a.tgz.part" -C "$W" . && mv "$O/s27a.tgz.part" "$O/s27a.tgz"; }
trap pack EXIT
for t in s27a; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. quick tests: the append, generation, the GEMVs, the layernorm kernels
timeout 90 f/attn_gpu_tests --gtest_filter='DecodeAttentionAppend*:Generate*:PrefixLm*:Gemv*:Kernels*' > "$W/t_quick.log" 2>&1
echo "quick tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_quick.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 1b. the two long 8-bit MHA cases (added in session 26, not yet run against main's kernel), default and forced warps
timeout 100 f/attn_gpu_tests --gtest_filter='*cap32768_L_32768_77*:*int8_actbf16_H12_Hkv12_D64_cap32768*' > "$W/t_long8.log" 2>&1
echo "long 8-bit MHA tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_long8.log" | tr '\n' ' ')"; pack
# 2. issue 17's decode rows, beside PyTorch (cuDNN), L2 flushed
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
echo "decode ($((SECONDS - t0)) s)"; pack
# 3. the step and HF generate() in the same call: ours before and after HF
gen() { timeout 60 $1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached'; }
{ echo "== before HF"; gen f; } > "$W/ours_beside_hf.txt"
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
timeout 300 python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
  --new 512 --timeout 200 2>>"$W/hf.log" | tee "$W/hf_generate.json"
{ echo "== after HF"; gen f; } >> "$W/ours_beside_hf.txt"
echo "hf ($((SECONDS - t0)) s)"; pack
# 4. the step's kernels at B = 1 and 32
for b in 1 32; do
  timeout 40 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches $b --profile --out runs/p$b > "$W/profile_$b.txt" 2>&1; cp runs/p$b/decode_profile.md "$W/decode_profile_$b.md"
done
echo "total $((SECONDS - t0)) s"
