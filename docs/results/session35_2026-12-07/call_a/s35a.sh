#!/usr/bin/env bash
# Prepared in session 34, not run (carry ["build-carry/s35a", ".gpucall/s35a.sh"]; copy this file to .gpucall/s35a.sh).
# Build both sm_90a, stripped, into build-carry/s35a/bins.tgz with input.txt:
#   m/ attnlab, bench_decode_attention: main;
#   x/ attnlab, attn_gpu_tests, bench_decode_attention: branch s34-short-cluster (the short-cache kernel's heads shared
#      by clusters of up to 4 blocks, --short-cluster N; the GEMVs at the attention's carveout at any batch when it is at
#      most 45%, --gemv-carveout-from 9 turns that off).
# Why (session 34, call G): at B = 1 the short kernel spends 3.1 us after its PDL wait on 12 SMs, 1.4 of them scoring
# up to 640 rows, and its 183 KB blocks start late, beside nothing. Four blocks a head quarter both, and their ~59 KB
# blocks fit a carveout the GEMVs can share with 192 KB of L1 left (at 60 KB of L1 the GEMVs lost 13% at B = 1).
# Order (session 35, the device scarce): tests, step, sanitizers, decode alone, profile, HF; each stage only if LIM leaves room.
# 1. x's tests and the sanitizers on the clusters; 2. decode alone, m / x / x --short-cluster 1; 3. the step at
# B = 1, 2, 4, 8: m / x / x --gemv-carveout-from 9 / x --short-cluster 1, three rounds; 4. x's B = 1 profile;
# 5. on an H200 only: HF at B = 1, m / x again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w35a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s35a.tgz.part" -C "$W" . && mv "$O/s35a.tgz.part" "$O/s35a.tgz"; }
trap pack EXIT
tar xzf build-carry/s35a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 120 x/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:*cap640*:*cap400*:DecodeAttentionGraph*:GenerateGreedy*:Generate*:*KernelTrace*' \
  > "$W/tests_x.log" 2>&1
echo "x tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_x.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_x.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_x.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-120; }
for r in 1 2 3; do for v in "m" "x" "x --short-cluster 2" "x --gemv-carveout-from 9" "x --short-cluster 1"; do set -- $v; echo "== round $r $v"; gen $1 --batches 1,2,4,8 "${@:2}"; done; done \
  | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
if [ "$(left)" -gt 120 ]; then
CS=/usr/local/cuda/bin/compute-sanitizer; [ -x $CS ] || CS=$(command -v compute-sanitizer)
if [ -n "$CS" ]; then for tool in memcheck racecheck synccheck; do
  timeout 50 $CS --tool $tool --error-exitcode 9 x/attn_gpu_tests --gtest_filter='DecodeAttentionShort*' > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED' "$W/san_$tool.log" | tr '\n' ' ' | cut -c1-200) ($((SECONDS - t0)) s)"
done; fi; pack
else echo "skipped (left $(left) s)"; fi
if [ "$(left)" -gt 60 ]; then
S="--shape 1,12,12,64,640,bf16 --shape 1,12,12,64,128,bf16 --shape 8,12,12,64,640,bf16 --shape 1,12,12,64,1024,bf16 --shape 4,16,16,128,400,bf16 --shape 1,12,12,64,2048,bf16"
for r in 1 2; do for v in "m" "x" "x --short-cluster 2" "x --short-cluster 1"; do set -- $v; echo "== round $r decode $v"
  timeout 40 $1/bench_decode_attention $S --reps 100 "${@:2}" 2>&1 | tee -a "$W/decode_$1.jsonl" | grep '"decode"' | sed -E \
  's/.*"B": ([0-9]+), "H": ([0-9]+), "Hkv": ([0-9]+), "D": ([0-9]+), "ctx": ([0-9]+).*"us": ([0-9.]+).*"frac_copy": ([0-9.]+), "read_us": ([0-9.]+).*/B=\1 H=\2 D=\4 ctx=\5 us=\6 read_us=\8/'; done; done | tee "$W/decode.txt"; pack
else echo "skipped (left $(left) s)"; fi
if [ "$(left)" -gt 40 ]; then
mkdir -p "$W/p1x"; timeout 60 x/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1x" > "$W/p1x/log.txt" 2>&1; rm -f "$W/p1x/report.html" "$W/p1x/env.json"
grep -E "^\| [0-9]|on the GPU|step period" "$W/p1x/decode_profile.md" | cut -c1-150; pack
else echo "skipped (left $(left) s)"; fi
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 50 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 --new 512 \
    --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
  for v in m x m x; do echo "== after HF B=1 $v"; gen $v --batches 1; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
