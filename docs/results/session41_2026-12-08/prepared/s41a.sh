#!/usr/bin/env bash
# Session 41, call A (prepared: no device was lent in session 41). Any card. Two branches against main:
#   c/ = branch s41-softcap-fixed-max: the flash forward takes the soft-capping bound as every row's maximum
#        when cap <= 32 (no row maxima, no O rescale; general kind only; the plain kernels' machine code is
#        identical by scripts/device_code_diff.sh);
#   d/ = branch s41-mha-direct-early: the 8-bit MHA decode kernel loads its first slices before the lengths[b]
#        read and its wait (as the CUDA-core kernel does), early loads at L2 (.cg) in both kernels; new test
#        DecodeAttentionBehindLateWriter;
#   q/ = branch s41-fwd-q-ring: the flash forward's Q in a ring of two buffers, so that a persistent block's next
#        tile's Q lands while its tile runs (short tiles: the window, T <= ~2048); every forward kernel changes;
#   m/ = main's build.
# 1. tests: d/ decode, cache, generation, GEMV (the new late-writer test); c/ and q/ flash (c: two new
#    variants; q: the persistent test at 336 tiles, up to three a block);
# 2. bench_flash_attention, interleaved: m/ vs q/ on issue 14's five shapes, the window 1024, non-causal and GQA
#    (q replaces main only if it wins on every one); m/ vs c/ with soft-capping 30 on the five shapes and 50 (the
#    unchanged running-maximum path) on two;
# 3. bench_decode_attention m/ vs d/ interleaved on issue 17's rows (8-bit MHA B = 1 and 32 the target, bf16 MHA
#    for the CUDA-core kernel's .cg early loads); bench-generate's int8-cache step B = 1 and 8, m/ vs d/.
# Binaries (rebuild in a new checkout): main's attnlab, attn_gpu_tests, bench_decode_attention,
# bench_flash_attention stripped into build-carry/m; the c branch's attn_gpu_tests, bench_flash_attention into
# build-carry/c (and the q branch's into build-carry/q); the d branch's attn_gpu_tests, bench_decode_attention,
# attnlab into build-carry/d; then
# `tar cJf build-carry/X.txz -C build-carry/X .`. Copy this file to .gpucall/; carry
# ["build-carry/m.txz", "build-carry/c.txz", "build-carry/d.txz", "build-carry/q.txz", ".gpucall"]; run `LIM=540 bash .gpucall/s41a.sh`.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w41a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s41a.tgz.part" -C "$W" . && mv "$O/s41a.tgz.part" "$O/s41a.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
B=/tmp/bins; for v in m c d q; do mkdir -p $B/$v && tar xJf build-carry/$v.txz -C $B/$v || { echo "untar $v failed"; exit 1; }; done
tests() { local v=$1 f=$2 lim=$3; timeout $lim $B/$v/attn_gpu_tests --gtest_filter="$f" > "$W/tests_$v.log" 2>&1
  echo "$v tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_$v.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  grep -E '^\[  FAILED|Failure' "$W/tests_$v.log" | head -10; pack; }
tests d 'Decode*:KVCache*:Generate*:Gemv*' 150
tests q '*Flash*:*VsCpu*' 150
tests c '*Flash*:*VsCpu*' 150

X="--reps 20 --warmup-ms 300"
fbench() { local vs=$1; shift; for v in $vs; do echo "== $v $*"; timeout 60 $B/$v/bench_flash_attention $X "$@"; done >> "$W/flash.txt" 2>&1; }
fbench "m q m q"
fbench "m q m q" --shape 1,12,12,16384,64 --window 1024
fbench "m q m q" --full --shape 2,16,16,8192,128 --shape 8,12,12,1024,64
fbench "m q m q" --shape 4,32,8,4096,128
fbench "m c m c" --softcap 30
[ "$(left)" -gt 200 ] && fbench "m c m c" --softcap 50 --shape 1,12,12,16384,64 --shape 2,16,16,8192,128
echo "flash bench done ($((SECONDS - t0)) s)"; grep -E "^==|^ *[0-9]+,[0-9]" "$W/flash.txt" | cut -c1-120 | head -60; pack

shapes=(--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,int8 --shape 1,12,12,64,32768,fp8 --shape 32,12,12,64,4096,bf16
  --shape 32,12,12,64,4096,int8 --shape 32,12,12,64,4096,fp8 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,int8 --shape 8,12,12,64,4096,int8)
for v in m d m d; do echo "== $v"; timeout 40 $B/$v/bench_decode_attention "${shapes[@]}"; done > "$W/decode.txt" 2>&1
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
pack
gen() { timeout 60 $B/$1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --no-baseline \
  --kv-cache int8 --batches 1,8 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
[ "$(left)" -gt 100 ] && for v in m d m d; do echo "== $v int8 step"; gen $v; done | tee "$W/step_int8.txt"
echo "total $((SECONDS - t0)) s"
