#!/usr/bin/env bash
# Session 34, call G (carry ["build-carry/s34g", ".gpucall/s34g.sh"]). sm_90a, stripped, in bins.tgz:
#   c/ attnlab, attn_gpu_tests, bench_decode_attention: call F's s34-carveout-main, the code merged to main (5dc990c,
#      comments aside); t/ attnlab: branch s34-short-trace, main with the short kernel's phases timed by clock64 (tid 0,
#      summed over blocks; bench-generate prints the means after the warm-up and the timed steps). input.txt.
# 1. t: the phases at B = 1, 2, 8 (and B = 8 with the GEMVs off the carveout); 2. on an H200 only: c's step at B = 1,
# 32, HF at B = 1 and c again, issue 17's decode rows with cuDNN, HF at B = 32 and c again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34g; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34g.tgz.part" -C "$W" . && mv "$O/s34g.tgz.part" "$O/s34g.tgz"; }
trap pack EXIT
tar xzf build-carry/s34g/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error|short trace' | sed -E 's/ +/ /g' | cut -c1-220; }
{ echo "== t B=1,2,8"; gen t --batches 1,2,8; echo "== t B=8 GEMVs off the carveout"; gen t --batches 8 --gemv-carveout-from 9
  echo "== t B=1 short (prompt 128 + 64)"; timeout 60 t/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 64 \
    --kv-cache bf16 --no-baseline --batches 1 2>&1 | grep -E '^cached|short trace' | cut -c1-220; } | tee "$W/trace.txt"; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 250 ]; then
  for r in 1 2; do echo "== round $r c"; gen c --batches 1,32; done | tee "$W/step.txt"
  mkdir -p .deps/data && cp input.txt .deps/data/
  c/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  c/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
    --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
  T=$(( $(left) - 160 )); [ "$T" -gt 200 ] && T=200; hf 1 $T 3
  for r in 1 2; do echo "== after HF B=1 c"; gen c --batches 1; done | tee -a "$W/step.txt"; pack
  timeout 25 c/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
    --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode_rows.jsonl" 2>&1
  python3 - "$W/decode_rows.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
PY
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
  T=$(( $(left) - 20 )); [ "$T" -gt 160 ] && T=160; hf 32 $T 2
  echo "== after HF B=32 c"; gen c --batches 32 | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
