#!/usr/bin/env bash
# Session 24, call E: f/ main 53be2c3 (build-carry/s24b2), f2/ s24-pdl 9e773fe (build-carry/s24c2), f4/ + the K/V
# append inside decode attention (DecodeParams::append_at) + prefill passes of 4096 rows (build-carry/s24e). Env LIM.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24e; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s24e.tgz.part" -C "$W" . && mv "$O/s24e.tgz.part" "$O/s24e.tgz"; }
trap pack EXIT
for t in s24b2 s24c2 s24e; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the append test, then generation
timeout 60 f4/attn_gpu_tests --gtest_filter='DecodeAttentionAppend*' > "$W/t_append.log" 2>&1
echo "append test exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_append.log" | tr '\n' ' ')"
timeout 90 f4/attn_gpu_tests --gtest_filter='Generate*:PrefixLm*:Gemv*' > "$W/t_gen.log" 2>&1
echo "gen tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_gen.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
# 2. the decode step: main, PDL, PDL + append (+ prefill 4096), alternated twice
gen() { timeout 60 $1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached' | awk '{for (i = 1; i < NF; ++i) if ($i == "peak") pk = $(i + 1); print $4, "prefill", $8, "step", $10, $12, $14, "peak", pk}'; }
for r in 1 2; do for b in f f2 f4; do echo "== $r $b"; gen $b; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
# 3. the kernel rows of issue 17 (bench: no append), main against f4
for r in 1 2; do for b in f f4; do
  timeout 40 $b/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,640,bf16 \
    --shape 1,12,12,64,640,bf16 2>&1 | grep '"us"' | python3 -c "import sys,json; [print('$r $b', d['B'],d['ctx'],d['us']) for d in map(json.loads,sys.stdin)]"
done; done > "$W/kernel.txt" 2>&1; cat "$W/kernel.txt"; echo "kernel ($((SECONDS - t0)) s)"; pack
# 4. f4's B = 32 step profile, then the decode suite
timeout 40 f4/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 32 --profile --out runs/p32 > "$W/profile_32.txt" 2>&1; cp runs/p32/decode_profile.md "$W/decode_profile_32.md"
timeout $(( $(left) - 10 )) f4/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/t_decode.log" 2>&1
echo "decode tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_decode.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
