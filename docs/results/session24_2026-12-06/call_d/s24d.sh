#!/usr/bin/env bash
# Session 24, call D: f3/ = s24-pdl + the cluster merge of decode attention's splits (experiment: env
# ATTN_DECODE_CLUSTER / --cluster-splits = the largest cluster; unset = main's plan). build-carry/s24d. Env LIM.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w24d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s24d.tgz.part" -C "$W" . && mv "$O/s24d.tgz.part" "$O/s24d.tgz"; }
trap pack EXIT
tar xzf build-carry/s24d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the cluster test, then generation with clusters of 8 and 16
timeout 60 f3/attn_gpu_tests --gtest_filter='DecodeAttentionCluster*' > "$W/t_cluster.log" 2>&1
echo "cluster test exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_cluster.log" | tr '\n' ' ')"
for c in 8 16; do
  ATTN_DECODE_CLUSTER=$c timeout 90 f3/attn_gpu_tests --gtest_filter='Generate*:PrefixLm*' > "$W/t_gen_$c.log" 2>&1
  echo "gen tests cluster $c exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_gen_$c.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
done; pack
# 2. the kernel: no clusters / 8 / 16, L2 flushed
for c in 0 8 16; do
  timeout 40 f3/bench_decode_attention --cluster-splits $c --shape 1,12,12,64,640,bf16 --shape 2,12,12,64,640,bf16 \
    --shape 8,12,12,64,640,bf16 --shape 1,12,12,64,1024,bf16 --shape 1,16,16,128,640,bf16 2>&1 | grep '"us"' | \
    python3 -c "import sys,json; [print($c, d['B'],d['H'],d['D'],d['ctx'],d['us']) for d in map(json.loads,sys.stdin)]"
done > "$W/kernel.txt" 2>&1; cat "$W/kernel.txt"; echo "kernel ($((SECONDS - t0)) s)"; pack
# 3. the decode step: unset / 8 / 16, alternated twice
gen() { timeout 60 f3/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8 2>&1 | grep -E '^cached' | awk '{print $5, $10, $12, $14}'; }
for r in 1 2; do for c in "" 8 16; do echo "== $r cluster=$c"; ATTN_DECODE_CLUSTER=$c gen; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
ATTN_DECODE_CLUSTER=16 timeout 40 f3/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out runs/p1 > "$W/profile_1.txt" 2>&1; cp runs/p1/decode_profile.md "$W/decode_profile_1_c16.md"
# 4. the decode suite without clusters (the refactor of write_block_state)
timeout $(( $(left) - 10 )) f3/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/t_decode.log" 2>&1
echo "decode tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_decode.log" | tr '\n' ' ')"
echo "total $((SECONDS - t0)) s"
