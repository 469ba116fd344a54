#!/usr/bin/env bash
# Session 23, call E: branch s23-step 718b659 (f4/: attnlab, GPU tests, decode bench; build-carry/s23e) against
# main 30ccbac (f/attnlab; build-carry/s23main). Env LIM (default 400).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w23e; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s23e.tgz.part" -C "$W" . && mv "$O/s23e.tgz.part" "$O/s23e.tgz"; }
trap pack EXIT
for t in s23main s23e; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
row() { python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
# 1. the new 8-warp rule: default against forced 4 and 8, (B,32,8,128) at 496, 993 and 1986 rows per SM
R=""; for s in 1,8192 1,16384 4,4096 1,32768; do for d in bf16 fp8 int8; do R="$R --shape ${s%,*},32,8,128,${s#*,},$d"; done; done
for r in 1 2; do for k in default 4 8; do a=""; [ $k != default ] && a="--mma-warps $k"
  echo "== $r $k"; timeout 40 f4/bench_decode_attention $a $R 2>/dev/null | grep '"decode"' | row; done; done > "$W/warps.txt"
echo "warps ($((SECONDS - t0)) s)"; pack
# 2. the decode step, main against the branch, alternated twice
gen() { timeout 60 "$@" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached' | awk '{print $5, $10, $12, $14}'; }
for r in 1 2; do for b in f f4; do echo "== $r $b"; gen $b/attnlab; done; done > "$W/step.txt" 2>&1
cat "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
# 3. tests: the default decode plan (every case), the graphs, generation
timeout $(( $(left) - 10 )) f4/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*:DecodeAttentionGraph*:DecodeAttentionMerge*:DecodeAttentionDefaultStream*:DecodeAttentionEightWarpsGraph*:Generate*:Gemv*:KVCache*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
echo "total $((SECONDS - t0)) s"
