#!/usr/bin/env bash
# Session 34, call F (carry ["build-carry/s34f", ".gpucall/s34f.sh"]). sm_90a, stripped, in bins.tgz:
#   m/ attnlab, bench_decode_attention: main 36f32ba; p/ attnlab, bench_decode_attention: call E's s34-carveout (the
#   short kernel with a softmax state a warp); c/ attnlab, attn_gpu_tests, bench_decode_attention: branch
#   s34-carveout-main, main's short kernel with the same carveout machinery (the short kernel at the smallest carveout
#   that holds it; the GEMVs at it from B = 8). input.txt.
# 1. c's tests; 2. the step at B = 1, 2, 4, 8: m / c / p, two rounds; 3. decode alone at the step's shapes m / c / p;
# 4. on an H200 only: HF at B = 1, m / c again, issue 17's decode rows. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34f; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34f.tgz.part" -C "$W" . && mv "$O/s34f.tgz.part" "$O/s34f.tgz"; }
trap pack EXIT
tar xzf build-carry/s34f/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 c/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:DecodeAttentionShort*:*cap640*:*cap400*:DecodeAttentionGraph*:Generate*:*KernelTrace*' \
  > "$W/tests_c.log" 2>&1
echo "c tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_c.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_c.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_c.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-120; }
for r in 1 2; do
  echo "== round $r m"; gen m --batches 1,2,4,8
  echo "== round $r c"; gen c --batches 1,2,4,8
  echo "== round $r p"; gen p --batches 1,2,4,8 --gemv-carveout-from 8
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
S="--shape 1,12,12,64,640,bf16 --shape 1,12,12,64,128,bf16 --shape 8,12,12,64,640,bf16 --shape 4,16,16,128,400,bf16"
for v in m c p; do echo "== decode $v"; timeout 40 $v/bench_decode_attention $S --reps 100 2>&1 | tee -a "$W/decode_$v.jsonl" | grep '"decode"' | sed -E \
  's/.*"B": ([0-9]+), "H": ([0-9]+), "Hkv": ([0-9]+), "D": ([0-9]+), "ctx": ([0-9]+).*"us": ([0-9.]+).*"frac_copy": ([0-9.]+), "read_us": ([0-9.]+).*/B=\1 H=\2 D=\4 ctx=\5 us=\6 read_us=\8/'; done | tee "$W/decode.txt"; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 --new 512 \
    --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
  for v in m c m c; do echo "== after HF B=1 $v"; gen $v --batches 1; done | tee -a "$W/step.txt"; pack
  timeout 25 c/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
    --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode_rows.jsonl" 2>&1
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150
fi
echo "total $((SECONDS - t0)) s"
