#!/usr/bin/env bash
# Session 34, call B (carry ["build-carry/s34b", ".gpucall/s34b.sh"]). sm_90a, stripped, in bins.tgz:
#   m/ attnlab, bench_decode_attention: main 36f32ba's step and decode kernels (call A's l/ binaries, whose default is main);
#   w/ attnlab, attn_gpu_tests, bench_decode_attention: branch s34-short-warps, the short-cache decode kernel with a
#      softmax state a warp (one __syncthreads before the merge, none for the max and the sum); input.txt.
# 1. w's tests; 2. bench_decode_attention at the step's shapes, m / w, two rounds alternated; 3. the step at B = 1, 8,
# m / w, three rounds; 4. w's B = 1 profile; 5. compute-sanitizer on w's short kernel; 6. on an H200 only: HF at B = 1,
# m / w again, issue 17's decode rows. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34b.tgz.part" -C "$W" . && mv "$O/s34b.tgz.part" "$O/s34b.tgz"; }
trap pack EXIT
tar xzf build-carry/s34b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 120 w/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:*cap640*:*cap400*:DecodeAttentionGraph*:GenerateGreedy*:Generate*:*KernelTrace*' \
  > "$W/tests_w.log" 2>&1
echo "w tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_w.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_w.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure|rel err|worst' "$W/tests_w.log" | grep -i "cap640\|cap400\|FAIL\|SKIP" | head -20; pack
S="--shape 1,12,12,64,640,bf16 --shape 1,12,12,64,128,bf16 --shape 8,12,12,64,640,bf16 --shape 1,12,12,64,1024,bf16 --shape 4,16,16,128,400,bf16"
for r in 1 2; do
  for v in m w; do
    echo "== round $r decode $v"
    timeout 60 $v/bench_decode_attention $S --reps 100 2>&1 | tee -a "$W/decode_$v.jsonl" | grep '"decode"' | sed -E \
      's/.*"B": ([0-9]+), "H": ([0-9]+), "Hkv": ([0-9]+), "D": ([0-9]+), "ctx": ([0-9]+).*"us": ([0-9.]+).*"frac_copy": ([0-9.]+), "read_us": ([0-9.]+).*/B=\1 H=\2 Hkv=\3 D=\4 ctx=\5 us=\6 of_copy=\7 read_us=\8/'
  done
done | tee "$W/decode.txt"; pack
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do for v in m w; do echo "== round $r $v"; gen $v --batches 1,8; done; done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p "$W/p1w"; timeout 60 w/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1w" > "$W/p1w/log.txt" 2>&1; rm -f "$W/p1w/report.html" "$W/p1w/env.json"
cut -c1-150 "$W/p1w/decode_profile.md" | tail -13; pack
CS=/usr/local/cuda/bin/compute-sanitizer; [ -x $CS ] || CS=$(command -v compute-sanitizer)
if [ -n "$CS" ]; then for tool in memcheck racecheck synccheck; do
  timeout 60 $CS --tool $tool --error-exitcode 9 w/attn_gpu_tests --gtest_filter='DecodeAttentionShort*:*cap640*:*cap400*' > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED' "$W/san_$tool.log" | tr '\n' ' ' | cut -c1-200) ($((SECONDS - t0)) s)"
done; fi; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 200 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  w/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  w/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF B=1 gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 --new 512 \
    --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
  for v in m w m w; do echo "== after HF B=1 $v"; gen $v --batches 1; done | tee -a "$W/step.txt"; pack
  timeout 25 w/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
    --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode_rows.jsonl" 2>&1
  timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150
fi
echo "total $((SECONDS - t0)) s"
