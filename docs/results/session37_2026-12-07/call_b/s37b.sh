#!/usr/bin/env bash
# Session 37 call B: issue 17's headline on main 03f1780 (m/ = 22add1a's build; same kernels), on any GPU (the card is
# in gpu.txt; only an H200's figures count for acceptance). Carry ["build-carry/s37b", ".gpucall/s37b.sh"].
# 1. ours B = 1 and 32 before HF; 2. HF generate() (static + compile) B = 1, best of 3; ours after it; 3. the decode rows,
# a B = 32 plan sweep, cuDNN; 4. the B = 1 profile; 5. HF at B = 32 if time allows. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w37b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-520}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s37b.tgz.part" -C "$W" . && mv "$O/s37b.tgz.part" "$O/s37b.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s37b/bins.tgz || { echo "untar failed"; exit 1; }
gen() { timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
{ echo "== before HF"; gen --batches 1; gen --batches 1; gen --batches 32; } | tee "$W/step.txt"
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 170 )); [ "$T" -gt 180 ] && T=180; hf 1 $T 3
{ echo "== after HF B=1"; gen --batches 1; gen --batches 1; } | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
PY
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
for f in "" "--blocks-per-sm 2" "--blocks-per-sm 3" "--blocks-per-sm 4" "--waves 2" "--no-fit-waves" "--min-split-rows 512" "--min-split-rows 1024" "--min-split-rows 2048"; do
  echo "sweep B=32 [$f] $(timeout 15 m/bench_decode_attention --shape 32,12,12,64,4096,bf16 $f 2>&1 | grep -o '"us": *[0-9.]*')"; done | tee "$W/sweep32.txt"
mkdir -p "$W/p1m"; timeout 40 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1m" > "$W/p1m/log.txt" 2>&1; rm -f "$W/p1m/report.html" "$W/p1m/env.json" "$W/p1m/results."*
grep -E "^\| [0-9]|on the GPU|step period" "$W/p1m/decode_profile.md" | cut -c1-150; pack
T=$(( $(left) - 20 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
{ echo "== after HF B=32"; gen --batches 32; } | tee -a "$W/step.txt"
echo "total $((SECONDS - t0)) s"
