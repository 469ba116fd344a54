#!/usr/bin/env bash
# Prepared in session 23 for the next (carry ["build-carry/s24b", ".gpucall/s24b.sh"]): main 53be2c3's binaries (f/:
# attnlab, bench_decode_attention, attn_gpu_tests; input.txt for the HF export) for sm_90a. Issue 17's whole acceptance on one card,
# meant for the H200 (the acceptance card; HF generate() has not run on it since session 13). Env LIM (s, default 540).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s24b.tgz.part" -C "$W" . && mv "$O/s24b.tgz.part" "$O/s24b.tgz"; }
trap pack EXIT
tar xzf build-carry/s24b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 0. main 53be2c3's generation tests (the review commits ec814e9, 53be2c3 have not run on a GPU)
timeout 120 f/attn_gpu_tests --gtest_filter='Generate*:*DecodeGreedy*:*Generator*' > "$W/gen_tests.txt" 2>&1; echo "tests rc=$? ($((SECONDS - t0)) s)"
tail -3 "$W/gen_tests.txt"
# 1. issue 17's decode rows beside PyTorch (cuDNN), L2 flushed
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
echo "decode ($((SECONDS - t0)) s)"; pack
# 2. the step and HF generate() in the same call (ours before and after HF)
ours() { f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached'; }
ours > "$W/ours_beside_hf.txt"
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
timeout $(( $(left) - 90 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
  --new 512 --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
ours >> "$W/ours_beside_hf.txt"
echo "hf ($((SECONDS - t0)) s)"; pack
# 3. the step's kernels at B = 1 and 32 (bench-generate --profile)
for b in 1 32; do
  timeout 40 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
    --batches $b --profile --out runs/p$b > "$W/profile_$b.txt" 2>&1; cp runs/p$b/decode_profile.md "$W/decode_profile_$b.md"
done
echo "total $((SECONDS - t0)) s"
