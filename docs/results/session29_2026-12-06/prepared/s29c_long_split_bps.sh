#!/usr/bin/env bash
# Session 29, call C (carry ["build-carry/s29c", ".gpucall/s29c.sh"]). f/: branch s29-long-split-bps (attnlab,
# attn_gpu_tests, bench_decode_attention); m/: main (bench_decode_attention, attnlab); sm_90a, stripped.
# The branch plans the bf16 CUDA-core MHA decode kernel at 3 blocks per SM where a split of the full-wave plan would
# hold >= 256 rows (call B: --blocks-per-sm 3 gained 1-2% on long caches, lost 2.5% at B = 8 ctx 640, which the rule
# leaves alone). 1. the branch's bf16 decode and generation tests; 2. MHA rows, main against the branch, alternated;
# 3. cuDNN on issue 17's two MHA rows; 4. the step at B = 1 / 8 / 32, main and branch. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w29c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-200}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s29c.tgz.part" -C "$W" . && mv "$O/s29c.tgz.part" "$O/s29c.tgz"; }
trap pack EXIT
tar xzf build-carry/s29c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
S=""; for s in 1,12,12,64,32768 1,12,12,64,16384 1,12,12,64,4096 1,12,12,64,640 2,12,12,64,8192 4,12,12,64,4096 \
  8,12,12,64,4096 8,12,12,64,640 16,12,12,64,2048 32,12,12,64,4096 32,12,12,64,640 1,16,16,128,32768 4,32,32,128,4096; do S="$S --shape $s,bf16"; done
for r in 1 2 3; do for b in m f; do echo "== $b" >> "$W/mha.txt"; timeout 30 $b/bench_decode_attention --reps 40 $S >> "$W/mha.txt" 2>&1; done; done
python3 - "$W/mha.txt" <<'PY'
import json, sys, collections
who = ""; t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("=="): who = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode": t[(o['B'], o['H'], o['D'], o['ctx'])].append((who, o['us'], o['frac_copy']))
for k, v in t.items():
    m = [u for w, u, f in v if w == "m"]; f = [u for w, u, f in v if w == "f"]
    print(f"B={k[0]:2d} H={k[1]:2d} D={k[2]:3d} ctx={k[3]:5d}  main {' '.join(f'{u:7.2f}' for u in m)}  branch {' '.join(f'{u:7.2f}' for u in f)}  ratio {min(f)/min(m):.3f}")
PY
echo "bench ($((SECONDS - t0)) s)"; pack
timeout $(( $(left) - 70 > 30 ? $(left) - 70 : 30 )) f/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*bf16_act*:DecodeAttentionCudaCores*:DecodeAttentionMerge*:DecodeAttentionAppend*:DecodeAttentionGraph*:DecodeAttentionDefaultStream*:Generate*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED' "$W/tests.log" | head; pack
if [ "$(left)" -gt 40 ]; then timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; fi
if [ "$(left)" -gt 25 ]; then for b in m f; do echo "== $b"; timeout 20 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1,8,32 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-110; done | tee "$W/step.txt"; fi
echo "total $((SECONDS - t0)) s"
