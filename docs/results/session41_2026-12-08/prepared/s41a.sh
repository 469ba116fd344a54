#!/usr/bin/env bash
# Session 41, call A (prepared: no device was lent in session 41). Any card. Four branches against main (m/):
#   q/ = s41-fwd-q-ring: the flash forward's Q in a ring of two buffers (a persistent block's next Q lands while its
#        tile runs: the window, short T); every forward kernel changes;
#   p/ = s41-bwd-pdl: the backward's pre-pass, main pass and dQ convert chained by programmatic dependent launch;
#   c/ = s41-softcap-fixed-max: the forward takes the soft-capping bound as every row's maximum when cap <= 32
#        (general kind only);
#   d/ = s41-mha-direct-early: the 8-bit MHA decode kernel loads its first slices before the lengths[b] read and its
#        wait, early loads at L2 (.cg) in both MHA kernels; new test DecodeAttentionBehindLateWriter.
# A branch replaces main only if it wins on every shape it touches (q, p: issue 14's five shapes and the window).
# Steps by priority (LIM guards the later ones): tests of d, q, p, c; bench_flash_attention m/q/p interleaved on the
# five shapes and the window 1024; m/c with soft-capping 30; bench_decode_attention m/d on issue 17's MHA rows;
# the int8-cache step m/d; then m/q/p non-causal, short and GQA; m/c soft-capping 50.
# Binaries (rebuild in a new checkout): main's attnlab, attn_gpu_tests, bench_decode_attention,
# bench_flash_attention stripped into build-carry/m; each branch's attn_gpu_tests and bench_flash_attention (d: its
# attn_gpu_tests, bench_decode_attention, attnlab) into build-carry/<letter>; `tar cJf build-carry/X.txz -C
# build-carry/X .`. Copy this file to .gpucall/; carry ["build-carry/m.txz", "build-carry/q.txz",
# "build-carry/p.txz", "build-carry/c.txz", "build-carry/d.txz", ".gpucall"]; run `LIM=560 bash .gpucall/s41a.sh`.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w41a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s41a.tgz.part" -C "$W" . && mv "$O/s41a.tgz.part" "$O/s41a.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
B=/tmp/bins; for v in m q p c d; do mkdir -p $B/$v && tar xJf build-carry/$v.txz -C $B/$v || { echo "untar $v failed"; exit 1; }; done
tests() { local v=$1 f=$2 lim=$3; timeout $lim $B/$v/attn_gpu_tests --gtest_filter="$f" > "$W/tests_$v.log" 2>&1
  echo "$v tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_$v.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  grep -E '^\[  FAILED|Failure' "$W/tests_$v.log" | head -8; pack; }
tests d '*BehindLateWriter*:DecodeAttentionAppend*:DecodeAttentionGraph*:Decode/DecodeAttention.*/int8*:Decode/DecodeAttention.*/fp8*:Decode/DecodeAttention.*/bf16*Hkv12*:Decode/DecodeAttention.*/bf16_actbf16_H4_Hkv4*:GenerateGreedy*' 100
tests q 'FlashAttentionPersistent*:*FlashAttention*:FlashVariants*' 90
tests p '*FlashAttention*:FlashVariants*:*TrainStepGraph*flash*' 120
tests c 'FlashVariants*' 60

X="--reps 20 --warmup-ms 300"
fbench() { local vs=$1; shift; for v in $vs; do echo "== $v $*"; timeout 60 $B/$v/bench_flash_attention $X "$@"; done >> "$W/flash.txt" 2>&1; }
show() { grep -E "^==|^ *[0-9]+,[0-9]" "$W/flash.txt" | cut -c1-120 | tail -n "$1"; }
fbench "m q p m q p"; show 36
fbench "m q p m q p" --shape 1,12,12,16384,64 --window 1024; show 12
fbench "m c m c" --softcap 30; show 24
echo "flash bench ($((SECONDS - t0)) s)"; pack

shapes=(--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,int8 --shape 1,12,12,64,32768,fp8 --shape 32,12,12,64,4096,bf16
  --shape 32,12,12,64,4096,int8 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,int8)
[ "$(left)" -gt 100 ] && { for v in m d m d; do echo "== $v"; timeout 40 $B/$v/bench_decode_attention "${shapes[@]}"; done > "$W/decode.txt" 2>&1
echo "decode bench done ($((SECONDS - t0)) s)"; python3 - "$W/decode.txt" <<'PY'
import json, sys
who = None; rows = {}
for line in open(sys.argv[1]):
    if line.startswith("=="): who = line.split()[1]; continue
    if not line.startswith("{"): continue
    r = json.loads(line)
    if r.get("what") != "decode" or "us" not in r: continue
    k = f"{r['B']},{r['H']},{r['Hkv']},{r['D']},{r['ctx']},{r['cache']}"
    rows.setdefault(k, {}).setdefault(who, []).append(r["us"])
for k, v in rows.items(): print(f"{k:26s}", "  ".join(f"{w} {' / '.join(f'{x:.2f}' for x in xs)}" for w, xs in v.items()))
PY
pack; }
gen() { timeout 40 $B/$1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --no-baseline \
  --kv-cache int8 --batches 1,8 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
[ "$(left)" -gt 90 ] && { for v in m d m d; do echo "== $v int8 step"; gen $v; done | tee "$W/step_int8.txt"; pack; }
[ "$(left)" -gt 60 ] && { fbench "m q p m q p" --full --shape 2,16,16,8192,128 --shape 8,12,12,1024,64; show 18; pack; }
[ "$(left)" -gt 40 ] && { fbench "m q p m q p" --shape 4,32,8,4096,128; show 12; pack; }
[ "$(left)" -gt 30 ] && { fbench "m c m c" --softcap 50 --shape 1,12,12,16384,64 --shape 2,16,16,8192,128; show 12; }
echo "total $((SECONDS - t0)) s"
