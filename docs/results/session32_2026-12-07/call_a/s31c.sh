#!/usr/bin/env bash
# Session 31, call C (carry ["build-carry/s31c", ".gpucall/s31c.sh"]): issue 17's H200 figures for main ac461a9, and
# nothing else: it exits at once on any other GPU. m/: main's attnlab and bench_decode_attention (sm_90a, stripped),
# input.txt for the HF export. 1. the step at B = 1 and 32, two rounds; 2. HF generate() (static + compile) at B = 1,
# then ours again; 3. the decode rows with cuDNN beside them, and split plans for MHA B = 1 (bf16, fp8) if time is left;
# 4. HF at B = 32, then ours again. NOHF=1: 1 and 3 only.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w31c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s31c.tgz.part" -C "$W" . && mv "$O/s31c.tgz.part" "$O/s31c.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
grep -q H200 "$W/gpu.txt" || { echo "not an H200: nothing to measure"; exit 3; }
tar xzf build-carry/s31c/bins.tgz || { echo "untar failed"; exit 1; }
show() { python3 -c "
import json, sys
for line in sys.stdin:
    try: o = json.loads(line)
    except Exception: continue
    if o.get('who') == 'ours': print(f\"B={o['B']:2d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:7.2f} us {o['frac_copy']:.3f} of copy\")"; }
gen() { timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do echo "== round $r"; gen --batches 1,32; done | tee "$W/step.txt"
if [ -z "${NOHF:-}" ]; then mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 140 )); [ "$T" -gt 200 ] && T=200; hf 1 $T 3
echo "== after HF B=1"; gen --batches 1 | tee -a "$W/step.txt"; fi; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
    else: print(json.dumps(o)[:120])
PY
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 > "$W/decode2.jsonl" 2>&1; show < "$W/decode2.jsonl"
if [ "$(left)" -gt 200 ] || { [ -n "${NOHF:-}" ] && [ "$(left)" -gt 40 ]; }; then
for t in "" "--blocks-per-sm 2" "--blocks-per-sm 4" "--min-split-rows 512" "--min-split-rows 1024" "--waves 2"; do
  echo "== tuning '$t'"; timeout 12 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 $t 2>&1 | show
done | tee "$W/sweep.txt"; fi
pack
if [ -z "${NOHF:-}" ]; then T=$(( $(left) - 15 )); [ "$T" -gt 160 ] && T=160; hf 32 $T 2
echo "== after HF B=32"; gen --batches 32 | tee -a "$W/step.txt"; fi
echo "total $((SECONDS - t0)) s"
