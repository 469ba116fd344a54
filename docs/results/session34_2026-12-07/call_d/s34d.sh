#!/usr/bin/env bash
# Session 34, call D (carry ["build-carry/s34d", ".gpucall/s34d.sh"]). sm_90a, stripped, in bins.tgz:
#   m/ attnlab: main 36f32ba's step; x/ attnlab: branch s34-short-early (call B's short kernel, a softmax state a warp)
#   with knobs: ATTN_EXP_GEMV_CARVEOUT=P / ATTN_EXP_SHORT_CARVEOUT=P set the GEMVs' / the short kernel's preferred
#   shared-memory carveout to P% (default: none / 100). On the H100, 85% is the 196 KB configuration (L1 60 KB), 100% 228.
# 1. the step at B = 1, 8 for m and five x settings, two rounds; 2. B = 1, 8 profiles of G=85 S=85.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34d.tgz.part" -C "$W" . && mv "$O/s34d.tgz.part" "$O/s34d.tgz"; }
trap pack EXIT
tar xzf build-carry/s34d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-120; }
for r in 1 2; do
  echo "== round $r m"; gen m --batches 1,8
  echo "== round $r x"; gen x --batches 1,8
  for gs in "100 100" "85 85" "85 100" "- 85" "100 85"; do set -- $gs
    echo "== round $r x G=$1 S=$2"
    ( [ "$1" != - ] && export ATTN_EXP_GEMV_CARVEOUT=$1; export ATTN_EXP_SHORT_CARVEOUT=$2; gen x --batches 1,8 )
  done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p85"; ATTN_EXP_GEMV_CARVEOUT=85 ATTN_EXP_SHORT_CARVEOUT=85 timeout 60 x/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --profile --out "$W/p85" > "$W/p85/log.txt" 2>&1; rm -f "$W/p85/report.html" "$W/p85/env.json"
grep -E "^\| [0-9]|on the GPU|step period" "$W/p85/decode_profile.md" | cut -c1-150
echo "total $((SECONDS - t0)) s"
