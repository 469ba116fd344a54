#!/usr/bin/env bash
# Session 33, call G (carry ["build-carry/s33g", ".gpucall/s33g.sh"]). sm_90a, stripped, in bins.tgz: n/ attnlab,
# attn_gpu_tests, bench_decode_attention of the working tree: decode attention for short caches as one block a
# (sequence, head) holding the whole head in shared memory (kernels/decode_attention_short.cuh), no combine pass;
# --no-short-heads: the split kernels as on main. input.txt.
# 1. decode attention, generation and GEMV tests; 2. bench_decode_attention at the step's shapes, short heads on / off;
# 3. the step at B = 1, 8: on / off, three rounds alternated; 4. the B = 1 profile; 5. on an H200 only: HF at B = 1,
# then the step on / off again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w33g; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s33g.tgz.part" -C "$W" . && mv "$O/s33g.tgz.part" "$O/s33g.tgz"; }
trap pack EXIT
tar xzf build-carry/s33g/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 n/attn_gpu_tests --gtest_filter='*DecodeAttention*:GenerateGreedy*:Gemv*:*KernelTrace*:GenerateGpu/*:Generate*' \
  > "$W/tests_n.log" 2>&1
echo "n tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_n.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_n.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_n.log" | head -20; pack
S="--shape 1,12,12,64,640,bf16 --shape 8,12,12,64,640,bf16 --shape 1,12,12,64,1024,bf16 --shape 4,16,16,128,400,bf16"
for r in 1 2; do
  for f in "" "--no-short-heads"; do echo "== round $r decode $f"
    timeout 60 n/bench_decode_attention $S --reps 100 $f 2>&1 | tee -a "$W/decode.jsonl" | grep '"decode"' | sed -E \
      's/.*"B": ([0-9]+), "H": ([0-9]+), "Hkv": ([0-9]+), "D": ([0-9]+), "ctx": ([0-9]+).*"us": ([0-9.]+).*"frac_copy": ([0-9.]+), "read_us": ([0-9.]+).*/B=\1 H=\2 Hkv=\3 D=\4 ctx=\5 us=\6 of_copy=\7 read_us=\8/'
  done
done | tee "$W/decode.txt"; pack
gen() { timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do
  for v in "--no-short-heads" "--short-heads"; do echo "== round $r $v"; gen --batches 1,8 $v; done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1"; timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1" > "$W/p1/log.txt" 2>&1; rm -f "$W/p1/report.html" "$W/p1/"*.png
cut -c1-150 "$W/p1/decode_profile.md" | tail -13; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 150 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  n/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 40 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  for v in "--no-short-heads" "--short-heads" "--no-short-heads" "--short-heads"; do echo "== after HF $v"; gen --batches 1 $v; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
