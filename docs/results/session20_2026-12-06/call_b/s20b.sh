#!/usr/bin/env bash
# Session 20, call B (carry ["build-carry/s20b", ".gpucall/s20b.sh"]). Env: LIM (s, default 480).
# Issue 14: m = main, b2 = s19-br80 (80-row backward query tiles for full and causal at D = 128; its
#   flash tests passed in call A), b4 = s20-br80-full 269613a (80 rows for the full kind only).
# Issue 17: m = main, w = s20-decode 764a87a (interleaved MHA splits + wave_filling_splits);
#   w --no-fit-waves = the interleave alone (s18-inter-only).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w20b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-480}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s20b.tgz.part" -C "$W" . && mv "$O/s20b.tgz.part" "$O/s20b.tgz"; }
trap pack EXIT
tar xzf build-carry/s20b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
# 1. w's decode and generation tests
timeout 150 w/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:Generate*' > "$W/tests_w.log" 2>&1; summary "w decode+generate tests" $? "$W/tests_w.log"; pack
# 2. flash A/B, three rounds, order rotated
WU="--warmup-ms 600"
flash_one() {
  $1/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk -v b=$1 -v r=$2 '$1 ~ /^[0-9]+,/ {print r, b, $0, "non-causal"}'
  $1/bench_flash_attention $WU --shape 8,16,16,2048,128 --shape 2,16,16,8192,128 --shape 4,32,8,4096,128 --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 2>&1 | awk -v b=$1 -v r=$2 '$1 ~ /^[0-9]+,/ {print r, b, $0, "causal"}'
}
r=0; for order in "m b2 b4" "b2 b4 m" "b4 m b2"; do r=$((r+1)); [ "$(left)" -ge 150 ] || break
  for b in $order; do flash_one $b $r; done | tee -a "$W/flash.txt"; echo "== round $r ($((SECONDS - t0)) s)"; pack; done
# 3. decode: m, w, w --no-fit-waves (v), rotated
SH=""; for s in 32,16,16,128,2048,int8 32,16,16,128,2048,fp8 32,16,16,128,2048,bf16 32,8,8,128,2048,fp8 32,8,8,128,2048,bf16 \
  32,12,12,64,4096,bf16 32,12,12,64,4096,int8 64,12,12,64,1024,bf16 64,12,12,64,1024,fp8 48,32,8,128,2048,bf16 \
  8,16,16,128,4096,int8 8,16,16,128,4096,fp8 1,16,16,128,32768,bf16 1,16,16,128,32768,int8 1,12,12,64,32768,fp8 \
  1,12,12,64,32768,bf16 1,12,12,64,640,bf16; do SH="$SH --shape $s"; done
decode_one() {  # name binary args...
  local n=$1 b=$2; shift 2
  timeout 40 $b/bench_decode_attention "$@" $SH 2>>"$W/err.txt" | python3 -c "
import json,sys
for l in sys.stdin:
  if not l.startswith('{'): continue
  d=json.loads(l)
  if d.get('what')=='decode': print('$n', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d.get('us'),d.get('read_us'),d.get('frac_copy'))
"
}
for rep in 1 2 3; do [ "$(left)" -ge 60 ] || break
  decode_one m m; decode_one w w; decode_one v w --no-fit-waves
done | tee -a "$W/decode.txt" | wc -l; pack
# 4. explicit splits on the two B = 32 tail shapes (blocks per SM X -> splits floor(132 X / blocks))
for X in 8 12 16 24; do [ "$(left)" -ge 30 ] || break
  timeout 30 w/bench_decode_attention --blocks-per-sm $X --shape 32,16,16,128,2048,int8 --shape 32,16,16,128,2048,bf16 2>>"$W/err.txt" | grep '"decode"' | sed "s/^/X$X s512 /"
done | tee -a "$W/splits.txt"
for X in 2 4 6 8 12; do [ "$(left)" -ge 30 ] || break
  timeout 30 w/bench_decode_attention --blocks-per-sm $X --shape 32,8,8,128,2048,fp8 --shape 32,8,8,128,2048,bf16 2>>"$W/err.txt" | grep '"decode"' | sed "s/^/X$X s256 /"
done | tee -a "$W/splits.txt" | wc -l; pack
# 5. b4's flash tests
[ "$(left)" -ge 45 ] && { timeout $(( $(left) - 5 )) b4/attn_gpu_tests --gtest_filter='*Flash*' > "$W/tests_b4.log" 2>&1; summary "b4 flash tests" $? "$W/tests_b4.log"; pack; }
echo "total $((SECONDS - t0)) s"
