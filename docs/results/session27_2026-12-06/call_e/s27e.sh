#!/usr/bin/env bash
# Session 27, call E (carry ["build-carry/s27e", ".gpucall/s27e.sh"]): f/ main's binaries at 10986ce (c_proj's split-K
# summed by the layernorm merged): attnlab, bench_decode_attention, attn_gpu_tests, input.txt; sm_90a.
# 1. tests; 2. the decode step, B = 1, 16, 32; 3. HF generate() (static + compile) and ours after it; 4. issue 17's
# decode rows beside PyTorch in what time is left. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w27e; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-380}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s27e.tgz.part" -C "$W" . && mv "$O/s27e.tgz.part" "$O/s27e.tgz"; }
trap pack EXIT
tar xzf build-carry/s27e/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
if [ "${TESTS:-1}" = 1 ]; then  # (TESTS=0: the code is call D's branch, tested there)
timeout 100 f/attn_gpu_tests --gtest_filter='Matmul*:Kernels*:Generate*:Gemv*:DecodeAttentionAppend*' > "$W/t_main.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_main.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
fi
gen() { timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
{ echo "== before HF"; gen --batches ${BATCHES:-1,16,32}; } > "$W/step.txt"
echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 25 )); echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
{ echo "== after HF"; gen --batches 1,32; } >> "$W/step.txt"
sed -E 's/ +/ /g' "$W/step.txt" | cut -c1-150; pack
if [ "$(left)" -gt 40 ]; then
timeout $(( $(left) / 2 )) f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
timeout $(( $(left) / 2 )) python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
fi
echo "total $((SECONDS - t0)) s"
