#!/usr/bin/env bash
# Session 34, call I (carry ["build-carry/s34i", ".gpucall/s34i.sh"]): issue 17's H200 figures for main 464c94d, and
# nothing else: it exits at once on any other GPU. m/: main's attnlab and bench_decode_attention (call F's c/, the code
# of 464c94d), input.txt. 1. the step at B = 1, 8, 32; 2. HF generate() (static + compile) at B = 1, then ours again;
# 3. the decode rows with cuDNN; 4. HF at B = 32, then ours again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34i; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-420}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34i.tgz.part" -C "$W" . && mv "$O/s34i.tgz.part" "$O/s34i.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
grep -q H200 "$W/gpu.txt" || { echo "not an H200: nothing to measure"; exit 3; }
tar xzf build-carry/s34i/bins.tgz || { echo "untar failed"; exit 1; }
gen() { timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do echo "== round $r"; gen --batches 1,8,32; done | tee "$W/step.txt"; pack
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 150 )); [ "$T" -gt 180 ] && T=180; hf 1 $T 3
for r in 1 2; do echo "== after HF B=1"; gen --batches 1; done | tee -a "$W/step.txt"; pack
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
T=$(( $(left) - 15 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
echo "== after HF B=32"; gen --batches 32 | tee -a "$W/step.txt"
echo "total $((SECONDS - t0)) s"
