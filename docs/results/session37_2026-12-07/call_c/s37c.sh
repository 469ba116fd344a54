#!/usr/bin/env bash
# Session 37 call C. Carry ["build-carry/s37c", ".gpucall/s37c.sh"]: m/ = main 03f1780's attnlab (22add1a's build, same
# code) and bench_decode_attention; p/ = branch s37-kv-prefetch (c88fc15): each layer's short-cache attention brings the
# next layer's cache rows into L2 (bench-generate --no-kv-prefetch turns it off in the same binary).
# Any GPU: 0. p's generation and GEMV tests; 1. m / p / p --no-kv-prefetch at B = 1, 2, 4, 8, three rounds; 2. p's B = 1
# profile. On an H200 also: 3. HF generate() B = 1 (static + compile) beside m and p; 4. the decode rows and cuDNN.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w37c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-500}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s37c.tgz.part" -C "$W" . && mv "$O/s37c.tgz.part" "$O/s37c.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s37c/bins.tgz || { echo "untar failed"; exit 1; }
timeout 100 p/attn_gpu_tests --gtest_filter='Gemv*:GenerateGreedy*:Generate*:KVCache*' > "$W/tests_p.log" 2>&1
echo "p tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_p.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_p.log" | head -10
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-130; }
for r in 1 2 3; do
  echo "== round $r m"; gen m --batches 1,2,4,8
  echo "== round $r p"; gen p --batches 1,2,4,8
  echo "== round $r p --no-kv-prefetch"; gen p --batches 1,2,4,8 --no-kv-prefetch
done | tee "$W/step.txt"; pack
mkdir -p "$W/p1p"; timeout 40 p/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1p" > "$W/p1p/log.txt" 2>&1; rm -f "$W/p1p/report.html" "$W/p1p/env.json" "$W/p1p/results."*
grep -E "^\| [0-9]|on the GPU|step period" "$W/p1p/decode_profile.md" | cut -c1-150; pack
grep -q H200 "$W/gpu.txt" || { echo "not an H200: no headline ($((SECONDS - t0)) s)"; exit 0; }
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 80 )); [ "$T" -gt 180 ] && T=180; echo "HF B=1 gets $T s"
[ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
  --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
for r in 1 2; do for v in m p; do echo "== after HF $v"; gen $v --batches 1,32; done; done | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150
echo "total $((SECONDS - t0)) s"
