#!/usr/bin/env bash
# Prepared in session 22 for the next (carry ["build-carry/s23a", ".gpucall/s23a.sh"]; ~31 MB with the tree): main
# be28f27's binaries (f/: GPU tests, attnlab, the flash and decode benches) and tinyshakespeare (f/input.txt), for
# sm_90a. Env: LIM (s, default 540). Steps in order of worth; each is skipped when too little time is left.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s23a.tgz.part" -C "$W" . && mv "$O/s23a.tgz.part" "$O/s23a.tgz"; }
trap pack EXIT
tar xzf build-carry/s23a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
row() { python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
# 1. issue 17's rows beside PyTorch (cuDNN), and the GPT-2 decode step
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 --out runs/g > "$W/generate.txt" 2>&1
echo "decode ($((SECONDS - t0)) s)"; pack
# 2. where 8 warps start to pay at D = 128 (session 22 measured 248 and 1986 cache rows per SM, nothing between):
#    forced 4 against forced 8, alternated twice
R=""; for s in 1,8192 1,16384 2,8192 4,4096 2,4096 16,1024; do b=${s%,*}; c=${s#*,}
  for d in bf16 fp8 int8; do R="$R --shape $b,32,8,128,$c,$d"; done; done
for r in 1 2; do for k in 4 8; do echo "== $r $k"; timeout 40 f/bench_decode_attention --mma-warps $k $R 2>/dev/null | grep '"decode"' | row; done; done > "$W/warps.txt"
echo "warps ($((SECONDS - t0)) s)"; pack
# 3. MHA bf16 at B = 32 (the H200 had it at 0.989x cuDNN in session 22) and B = 1: split plans, alternated twice
M="--shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,fp8"
for r in 1 2; do for k in "" "--blocks-per-sm 4" "--blocks-per-sm 6" "--blocks-per-sm 8" "--waves 2" "--no-fit-waves" "--min-split-rows 1024" "--mha-tensor-cores"; do
  echo "== $r $k"; timeout 30 f/bench_decode_attention $k $M 2>/dev/null | grep '"decode"' | row; done; done > "$W/mha_plans.txt"
echo "plans ($((SECONDS - t0)) s)"; pack
# 4. the decode tests (the 32/8 fp8 case at 32768, which takes 8 warps by default, is new and has not run)
timeout 150 f/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests.log" 2>&1
echo "decode tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 5. issue 17 acceptance 3: HF transformers' generate() beside ours, GPT-2 124M shape, bf16, prompt 128 + 512
if [ "$(left)" -ge 200 ]; then
  mkdir -p .deps/data && cp f/input.txt .deps/data/
  f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  timeout $(( $(left) - 20 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
    --new 512 --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
echo "total $((SECONDS - t0)) s"
