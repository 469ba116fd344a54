#!/usr/bin/env bash
# Session 34, call A (carry ["build-carry/s34a", ".gpucall/s34a.sh"]). sm_90a, stripped, in bins.tgz: l/ attnlab,
# attn_gpu_tests (branch s34-lm-head-l2: GeneratorOptions::lm_head_in_l2, bench-generate --lm-head-l2, off by default,
# so l without it is main's step), bench_decode_attention (main 36f32ba). input.txt for the HF export.
# 1. tests (generation, GEMV, short-cache decode, trace); 2. the step at B = 1 and 8, off / on, three rounds
# alternated; 3. B = 1 profiles off / on (the LM head's row); 4. compute-sanitizer memcheck and racecheck on the
# short-cache decode kernel; 5. on an H200 only: HF at B = 1, ours off / on again, issue 17's decode rows with cuDNN,
# HF at B = 32 and ours again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34a.tgz.part" -C "$W" . && mv "$O/s34a.tgz.part" "$O/s34a.tgz"; }
trap pack EXIT
tar xzf build-carry/s34a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 130 l/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:*KernelTrace*:Generate*:DecodeAttentionShort*:*cap640*:*cap400*:DecodeAttentionGraph*:DecodeAttentionAppend*' \
  > "$W/tests_l.log" 2>&1
echo "l tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_l.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_l.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_l.log" | head -20; pack
gen() { timeout 60 l/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do
  for v in "--no-lm-head-l2" "--lm-head-l2"; do echo "== round $r $v"; gen --batches 1,8 $v; done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
for v in off on; do
  f=--no-lm-head-l2; [ $v = on ] && f=--lm-head-l2
  mkdir -p "$W/p1$v"; timeout 60 l/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
    --no-baseline --batches 1 $f --profile --out "$W/p1$v" > "$W/p1$v/log.txt" 2>&1; rm -f "$W/p1$v/report.html"
  echo "== profile $v"; cut -c1-150 "$W/p1$v/decode_profile.md" | tail -13
done; echo "profiles ($((SECONDS - t0)) s)"; pack
CS=/usr/local/cuda/bin/compute-sanitizer; [ -x $CS ] || CS=$(command -v compute-sanitizer)
if [ -n "$CS" ]; then for tool in memcheck racecheck; do
  timeout 60 $CS --tool $tool --error-exitcode 9 l/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:GenerateGreedy.LmHeadInL2*' > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED' "$W/san_$tool.log" | tr '\n' ' ' | cut -c1-200) ($((SECONDS - t0)) s)"
done; else echo "no compute-sanitizer"; fi; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  l/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  l/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
    --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
  T=$(( $(left) - 100 )); [ "$T" -gt 200 ] && T=200; hf 1 $T 3
  for v in "--no-lm-head-l2" "--lm-head-l2" "--no-lm-head-l2" "--lm-head-l2"; do echo "== after HF B=1 $v"; gen --batches 1 $v; done | tee -a "$W/step.txt"; pack
  timeout 25 l/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
    --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
  python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
PY
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
  T=$(( $(left) - 20 )); [ "$T" -gt 160 ] && T=160; hf 32 $T 2
  for v in "--no-lm-head-l2" "--lm-head-l2"; do echo "== after HF B=32 $v"; gen --batches 32 $v; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
