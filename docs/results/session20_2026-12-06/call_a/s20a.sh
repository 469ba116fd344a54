#!/usr/bin/env bash
# Prepared in session 19 for the next (carry ["build-carry/s19e", "build-carry/s18g", "build-carry/s18m", ".gpucall/s20a.sh"]; 54 MB with the tree).
# Session 19 got no device machine (every start failed); this is the call it could not run. Env: LIM (s, default 560), TESTS.
# Issue 14: m/ = main's bench_flash_attention; b2/ = branch s19-br80 3464557 (tests + bench): the backward's query tiles of
#   80 rows for the plain kinds at D = 128 (dQ^T = K^T dS, dS stored query-major by stmatrix .trans), the plain mask as
#   one compare (D = 64's causal and full kernels change by that alone). Merge it if it wins every row; else keep main.
#   b3/ = branch s19-br80-pad 9d421f9 (bench only): the same with its dQ tile padded, reduced a row per bulk op.
# Issue 17: m = main, n = s18-interleave c42f39d (tests + bench), v = s18-inter-only a4f2d5f (bench only); step 7 sweeps
#   the grouped-head kernel's warps and blocks per SM with main's bench.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w20a; mkdir -p "$W" n m; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s20a.tgz.part" -C "$W" . && mv "$O/s20a.tgz.part" "$O/s20a.tgz"; }
trap pack EXIT
tar xzf build-carry/s19e/bins.tgz && tar xzf build-carry/s18g/bins.tgz -C n && tar xzf build-carry/s18m/bins.tgz -C m \
  || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
timeout 100 b2/attn_gpu_tests --gtest_filter="${TESTS:-*Flash*}" > "$W/tests_flash.log" 2>&1; summary "b2 flash tests" $? "$W/tests_flash.log"; pack
WU="--warmup-ms 800"
flash_round() {
  for B in m b2 b3; do
    $B/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk -v b=$B '$1 ~ /^[0-9]+,/ {print b, $0, "non-causal"}'
    $B/bench_flash_attention $WU --shape 8,16,16,2048,128 --shape 2,16,16,8192,128 --shape 4,32,8,4096,128 --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 2>&1 | awk -v b=$B '$1 ~ /^[0-9]+,/ {print b, $0, "causal"}'
  done
  python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed 's/$/ non-causal/'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 16,12,1024,64 4,12,4096,64 1,12,16384,64 2>&1 | grep "^cudnn" | sed 's/$/ causal/'
  echo "== flash round $1 done ($((SECONDS - t0)) s)"
}
SH=""; for s in 1,12,12,64,32768,bf16 1,12,12,64,32768,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,bf16 32,12,12,64,4096,fp8 \
  32,12,12,64,4096,int8 1,16,16,128,32768,bf16 1,16,16,128,32768,fp8 1,16,16,128,32768,int8 8,16,16,128,4096,int8 8,16,16,128,4096,fp8 \
  32,8,8,128,2048,fp8 32,16,16,128,2048,int8 1,12,4,64,32768,bf16 1,32,8,128,32768,fp8 1,12,12,64,640,bf16 1,12,12,64,640,int8; do SH="$SH --shape $s"; done
decode_round() {
  for b in "$@"; do timeout 40 $b/bench_decode_attention $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$b', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('frac_copy'))
"; done
}
flash_round 1 | tee -a "$W/flash128.txt"; pack
decode_round m n v | tee -a "$W/decode.txt" | wc -l; pack
[ "$(left)" -ge 120 ] && { flash_round 2 | tee -a "$W/flash128.txt"; pack; }
[ "$(left)" -ge 100 ] && { decode_round n v m v m n | tee -a "$W/decode.txt" | wc -l; pack; }
[ "$(left)" -ge 100 ] && { timeout $(( $(left) - 30 )) n/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:Generate*' > "$W/tests_n.log" 2>&1; summary "n decode+generate tests" $? "$W/tests_n.log"; pack; }
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for t in T77_H4_Hkv2_D128_full T77_H4_Hkv2_D128_causal T1025_H4_Hkv2_D128_full; do for tool in memcheck racecheck; do
  [ "$(left)" -ge 50 ] || { echo "skipped $tool $t"; continue; }
  timeout $(( $(left) - 20 )) $CS --tool $tool b2/attn_gpu_tests --gtest_filter="Cases/FlashAttention.MatchesFloat64Reference/$t" > "$W/san_${t}_$tool.log" 2>&1
  echo "$tool $t exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_${t}_$tool.log" | head -1) $(grep -cE '^\[       OK' "$W/san_${t}_$tool.log") ok"
done; done | tee "$W/sanitize.txt"; pack
for b in m n m n; do for c in bf16 int8; do
  [ "$(left)" -ge 20 ] || continue
  echo "$b $c $(timeout 15 ./$b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $c --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -o '[0-9.]* ms/step' | tr '\n' ' ')"
done; done | tee "$W/generate.txt"; pack
# 7. if time is left: the grouped-head (tensor-core) kernel at 4 / 8 warps and 1 / 2 blocks per SM, main's bench, on
#    issue 17's grouped rows ((32,8,128) is at 72.1% of copy, target 75%).
GS="--shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 1,12,4,64,32768,bf16 --shape 32,12,4,64,4096,bf16"
for rep in 1 2; do for w in 4 8; do for bps in 0 1 2; do
  [ "$(left)" -ge 15 ] || continue
  a="--mma-warps $w"; [ $bps -gt 0 ] && a="$a --blocks-per-sm $bps"
  timeout 12 m/bench_decode_attention $GS $a 2>/dev/null | python3 -c "
import json,sys
for l in sys.stdin:
  if l.startswith('{'):
    d=json.loads(l)
    if d.get('what')=='decode': print('w$w bps$bps', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('frac_copy'))
"
done; done; done | tee "$W/grouped_sweep.txt"; pack
echo "total $((SECONDS - t0)) s"
