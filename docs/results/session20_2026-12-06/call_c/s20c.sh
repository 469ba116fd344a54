#!/usr/bin/env bash
# Session 20, call C (carry ["build-carry/s20c", ".gpucall/s20c.sh"]): main after the merges (f = 830a808), whole.
# Env: LIM (s, default 500).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w20c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-500}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s20c.tgz.part" -C "$W" . && mv "$O/s20c.tgz.part" "$O/s20c.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
# 1. every GPU test
timeout 280 f/attn_gpu_tests > "$W/tests_f.log" 2>&1; summary "f all GPU tests" $? "$W/tests_f.log"; echo "($((SECONDS - t0)) s)"; pack
# 2. issue 14's rows beside cuDNN, two rounds
WU="--warmup-ms 600"
for r in 1 2; do [ "$(left)" -ge 120 ] || break
  f/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "non-causal"}'
  f/bench_flash_attention $WU --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 --shape 8,16,16,2048,128 --shape 2,16,16,8192,128 --shape 4,32,8,4096,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "causal"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ non-causal/"
  python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 16,12,1024,64 4,12,4096,64 1,12,16384,64 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ causal/"
done | tee "$W/flash.txt"; echo "($((SECONDS - t0)) s)"; pack
# 3. issue 17's decode rows beside cuDNN
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 32,8,8,128,2048,bf16 --shape 32,16,16,128,2048,int8 > "$W/decode.jsonl" 2>&1
[ "$(left)" -ge 60 ] && timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
echo "($((SECONDS - t0)) s)"; pack
# 4. the GPT-2 decode step
[ "$(left)" -ge 40 ] && timeout 40 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8,32 --out runs/g > "$W/generate.txt" 2>&1
# 5. sanitizers on the causal D = 128 kernel (64 rows, the new mask) and the full one at T = 1025
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for t in T1025_H4_Hkv2_D128_causal T77_H4_Hkv2_D128_full; do for tool in memcheck racecheck; do
  [ "$(left)" -ge 40 ] || { echo "skipped $tool $t"; continue; }
  timeout $(( $(left) - 20 )) $CS --tool $tool f/attn_gpu_tests --gtest_filter="Cases/FlashAttention.MatchesFloat64Reference/$t" > "$W/san_${t}_$tool.log" 2>&1
  echo "$tool $t exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_${t}_$tool.log" | head -1) $(grep -cE '^\[       OK' "$W/san_${t}_$tool.log") ok"
done; done | tee "$W/sanitize.txt"; pack
echo "total $((SECONDS - t0)) s"
