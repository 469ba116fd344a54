#!/usr/bin/env bash
# Session 34, call H (carry ["build-carry/s34h", ".gpucall/s34h.sh"]). sm_90a, stripped, in bins.tgz:
#   m/ attnlab, bench_decode_attention: main 464c94d's code (call F's c/); s/ attnlab, attn_gpu_tests,
#   bench_decode_attention: branch s34-short-scores, the short kernel's scores by 8 threads a row (q in registers,
#   shuffles) instead of a thread a row reading all of q from shared memory. input.txt.
# 1. s's tests; 2. compute-sanitizer on s's short kernel; 3. decode alone at the step's shapes m / s, two rounds;
# 4. the step at B = 1, 2, 8 m / s, three rounds; 5. s's B = 1 profile; 6. on an H200 only: HF at B = 1, m / s again.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34h; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34h.tgz.part" -C "$W" . && mv "$O/s34h.tgz.part" "$O/s34h.tgz"; }
trap pack EXIT
tar xzf build-carry/s34h/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 s/attn_gpu_tests --gtest_filter='GenerateGreedy*:DecodeAttentionShort*:*cap640*:*cap400*:DecodeAttentionGraph*:Generate*:*KernelTrace*' \
  > "$W/tests_s.log" 2>&1
echo "s tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_s.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_s.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_s.log" | head -20; pack
CS=/usr/local/cuda/bin/compute-sanitizer; [ -x $CS ] || CS=$(command -v compute-sanitizer)
if [ -n "$CS" ]; then for tool in memcheck racecheck synccheck; do
  timeout 40 $CS --tool $tool --error-exitcode 9 s/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:*cap640*:*cap400*' > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED' "$W/san_$tool.log" | tr '\n' ' ' | cut -c1-200) ($((SECONDS - t0)) s)"
done; fi; pack
S="--shape 1,12,12,64,640,bf16 --shape 1,12,12,64,128,bf16 --shape 8,12,12,64,640,bf16 --shape 1,12,12,64,1024,bf16 --shape 4,16,16,128,400,bf16"
for r in 1 2; do for v in m s; do echo "== round $r decode $v"; timeout 40 $v/bench_decode_attention $S --reps 100 2>&1 | tee -a "$W/decode_$v.jsonl" | grep '"decode"' | sed -E \
  's/.*"B": ([0-9]+), "H": ([0-9]+), "Hkv": ([0-9]+), "D": ([0-9]+), "ctx": ([0-9]+).*"us": ([0-9.]+).*"frac_copy": ([0-9.]+), "read_us": ([0-9.]+).*/B=\1 H=\2 D=\4 ctx=\5 us=\6 read_us=\8/'; done; done | tee "$W/decode.txt"; pack
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-120; }
for r in 1 2 3; do for v in m s; do echo "== round $r $v"; gen $v --batches 1,2,8; done; done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1s"; timeout 60 s/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1s" > "$W/p1s/log.txt" 2>&1; rm -f "$W/p1s/report.html" "$W/p1s/env.json"
grep -E "^\| [0-9]|on the GPU|step period" "$W/p1s/decode_profile.md" | cut -c1-150; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 50 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 --new 512 \
    --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
  for v in m s m s; do echo "== after HF B=1 $v"; gen $v --batches 1; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
