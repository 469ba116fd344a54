#!/usr/bin/env bash
# Prepared in session 28, NOT RUN (no device time left). Branch s28-kv-prefetch: at B > 8 (the cuBLASLt step) each
# layer's cache rows are prefetched into L2 from a side stream (kv_cache_prefetch_l2, cp.async.bulk.prefetch.L2),
# forked after the previous layer's attention and joined before this layer's. The projections and layernorms around
# attention are latency-bound at B = 32 (DRAM mostly idle, ~25 us a layer), while attention reads 62 MB a layer at
# ~87% of copy (23.7 us, 43% of the step). ATTN_EXP_KV_PREFETCH = percent of each sequence's rows (0: off).
# Then the B = 32 attention shape against the plan's knobs (prepared/s28c_not_run.sh, folded in here).
# Carry: build attnlab, attn_gpu_tests and bench_decode_attention on the branch, main's attnlab as m/; strip; pack f/ and m/ into
# build-carry/s29a/bins.tgz (in /work/main: the session's checkout is what a call sends); copy this to
# .gpucall/s29a.sh; carry ["build-carry/s29a", ".gpucall/s29a.sh"].
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w29a; mkdir -p "$W"; t0=$SECONDS
tar xzf build-carry/s29a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
ATTN_EXP_KV_PREFETCH=50 timeout 120 f/attn_gpu_tests --gtest_filter='KVCachePrefetch*:Generate*:PrefixLm*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen m/attnlab --batches 16,32
    for p in 0 25 50 75 100; do echo "== round $r branch prefetch $p%"; ATTN_EXP_KV_PREFETCH=$p gen f/attnlab --batches 16,32; done; } >> "$W/step.txt"
done
sed -E 's/ +/ /g' "$W/step.txt" | cut -c1-120; echo "step ($((SECONDS - t0)) s)"
for p in 0 50; do mkdir -p p/$p; ATTN_EXP_KV_PREFETCH=$p timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 32 --profile --out p/$p > p/$p/log.txt 2>&1; done
tar czf "$W/profiles.tgz" p/*/decode_profile.md p/*/log.txt
for p in 0 50; do echo "== prefetch $p%"; sed -n 5,16p p/$p/decode_profile.md | cut -c1-140; done
S="--shape 32,12,12,64,640,bf16 --shape 32,12,12,64,1024,bf16 --shape 16,12,12,64,640,bf16"
for r in 1 2; do
  for k in "" "--blocks-per-sm 8" "--blocks-per-sm 10" "--blocks-per-sm 15" "--mha-tensor-cores" "--cuda-cores"; do
    echo "== round $r knobs '$k'" >> "$W/decode.txt"; timeout 30 f/bench_decode_attention $S $k >> "$W/decode.txt" 2>&1
  done
done
python3 - "$W/decode.txt" <<'PY'
import json, sys
knob = ""
for line in open(sys.argv[1]):
    if line.startswith("=="): knob = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode": print(f"{knob:40s} B={o['B']:2d} ctx={o['ctx']:5d} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy")
PY
echo "total $((SECONDS - t0)) s"
