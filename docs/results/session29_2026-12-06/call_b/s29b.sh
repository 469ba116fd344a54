#!/usr/bin/env bash
# Session 29, call B (carry ["build-carry/s29b", ".gpucall/s29b.sh"]). m/: main at c4c4302 (bench_decode_attention,
# attnlab), sm_90a, stripped. Call A (H200) had B = 32 ctx 4096 MHA bf16 at 0.989x cuDNN (96.58 against 95.49 us, a
# plain read of the same bytes 92.42) and B = 1 ctx 32768 at 78.3% of copy (30.30 us, plain read 26.18): ~4 us above a
# plain read in both. 1. the plan's knobs on both rows, default first and last; 2. cuDNN on both, twice; 3. the decode
# step's profile at B = 1 and the step at B = 1 / 8 / 32. The B = 1 step's attention (ctx 640: 10 splits + the
# combine kernel, ~4.3 us a layer on the H100) is also measured with fewer splits (--min-split-rows). Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w29b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-300}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s29b.tgz.part" -C "$W" . && mv "$O/s29b.tgz.part" "$O/s29b.tgz"; }
trap pack EXIT
tar xzf build-carry/s29b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
S="--shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,640,bf16"
for k in "" "--min-split-rows 4096" "--min-split-rows 128" "--min-split-rows 320" "--merge-bytes 0" "--merge-bytes 100000000" "--blocks-per-sm 2" "--blocks-per-sm 3" \
         "--blocks-per-sm 4" "--blocks-per-sm 6" "--blocks-per-sm 8" "--blocks-per-sm 12" "--blocks-per-sm 16" "--waves 1" \
         "--waves 2" "--waves 3" "--no-fit-waves" "--cuda-cores" "--mha-tensor-cores" ""; do
  [ "$(left)" -gt 120 ] || break
  echo "== knobs '$k'" >> "$W/knobs.txt"; timeout 30 m/bench_decode_attention --reps 30 $S $k >> "$W/knobs.txt" 2>&1
done
python3 - "$W/knobs.txt" <<'PY'
import json, sys
knob = ""
for line in open(sys.argv[1]):
    if line.startswith("=="): knob = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode":
        print(f"{knob:32s} B={o['B']:2d} ctx={o['ctx']:5d} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy (read {o['read_us']:.2f})")
PY
echo "knobs ($((SECONDS - t0)) s)"; pack
for r in 1 2; do timeout 60 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa$r.txt" 2>&1; done
grep -h cudnn "$W"/sdpa*.txt | cut -c1-200; echo "sdpa ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1"; timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1" > "$W/p1/log.txt" 2>&1
sed -n 5,16p "$W/p1/decode_profile.md" | cut -c1-150
timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-170 | tee "$W/step.txt"
echo "total $((SECONDS - t0)) s"
