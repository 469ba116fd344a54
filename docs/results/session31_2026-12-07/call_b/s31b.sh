#!/usr/bin/env bash
# Session 31, call B (carry ["build-carry/s31b", ".gpucall/s31b.sh"]), meant for the H200. sm_90a, stripped:
#   m/: main ac461a9 (attnlab, attn_gpu_tests, bench_decode_attention): the shared argmax key, never run on a GPU before;
#   f/: branch s30-merge-in-proj merged with main (1ccc8b9): at B <= 8 the projection GEMV merges decode attention's
#       split partials in its prologue and the combine kernel goes (74 -> 62 kernels at B = 1); input.txt for the HF export.
# 1. m/'s GEMV + generation tests, f/'s GEMV, generation, trace and decode tests; 2. the step at B = 1/8/32, m against f,
# three rounds alternated; 3. HF generate() (static + compile) at B = 1, then m and f again; 4. f/'s B = 1 profile;
# 5. issue 17's decode rows (m) + cuDNN; 6. HF at B = 32 if time is left.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w31b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s31b.tgz.part" -C "$W" . && mv "$O/s31b.tgz.part" "$O/s31b.tgz"; }
trap pack EXIT
tar xzf build-carry/s31b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
grep -q H200 "$W/gpu.txt" || { NOHF=1; LIM=330; echo "not an H200: no HF, LIM $LIM"; }
tests() { local b=$1 f=$2 t=$3; timeout $t $b/attn_gpu_tests --gtest_filter="$f" > "$W/tests_$b.log" 2>&1
  echo "tests $b exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_$b.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_$b.log") ok ($((SECONDS - t0)) s)"
  grep -E '^\[  FAILED' "$W/tests_$b.log" | head -10; }
tests m 'Gemv*:Generate*' 90
tests f 'Gemv*:Generate*:*KernelTrace*:PrefixLm*:Decode/DecodeAttention.*bf16_act*:DecodeAttentionMerge*:DecodeAttentionGraph*:DecodeAttentionDefaultStream*' 150
pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do for b in m f; do echo "== round $r $b"; gen $b/attnlab --batches 1,8,32; done; done | tee "$W/step.txt"
echo "step ($((SECONDS - t0)) s)"; pack
if [ -z "${NOHF:-}" ]; then mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 170 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi; fi
for b in f m; do echo "== after HF $b"; gen $b/attnlab --batches 1; done | tee -a "$W/step.txt"; pack
mkdir -p "$W/p1f"; timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1f" > "$W/p1f/log.txt" 2>&1; rm -f "$W/p1f/report.html"
sed -n 3,12p "$W/p1f/decode_profile.md" | cut -c1-140; pack
if [ "$(left)" -gt 45 ]; then
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
fi
if [ "$(left)" -gt 25 ]; then timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; fi
if [ "$(left)" -gt 60 ]; then S8="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8"
for t in "" "--blocks-per-sm 2" "--blocks-per-sm 3" "--blocks-per-sm 4" "--blocks-per-sm 6" "--min-split-rows 512" "--min-split-rows 1024" "--waves 2"; do
  echo "== tuning '$t'"; timeout 15 m/bench_decode_attention $S8 $t 2>&1 | python3 -c "
import json, sys
for line in sys.stdin:
    try: o = json.loads(line)
    except Exception: continue
    if 'B' in o: print(f\"{o['cache']:5s} {o['us']:7.2f} us {o['frac_copy']:.3f} read {o['read_us']}\")"; done | tee "$W/sweep8.txt"; fi
T=$(( $(left) - 10 )); [ "$T" -gt 150 ] && T=150
if [ "$T" -gt 80 ] && [ -z "${NOHF:-}" ]; then echo "HF B=32 gets $T s"; timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; fi
echo "total $((SECONDS - t0)) s"
