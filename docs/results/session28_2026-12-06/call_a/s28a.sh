#!/usr/bin/env bash
# Session 28, call A (carry ["build-carry/s28a", ".gpucall/s28a.sh"]): m/ main's attnlab at 7d86da8 (ce83862's code);
# f/ branch s28-early-dependents: attnlab, bench_decode_attention, attn_gpu_tests, input.txt; sm_90a, stripped.
# 1. the branch's decode-path tests (its default: ATTN_EXP_EARLY=2); 2. the decode step, main against the branch's three
# trigger modes and its in-kernel merge (ATTN_EXP_MERGE_BYTES), alternated; 3. profiles; 4. HF generate() (static + compile) beside main and the branch; 5. issue 17's
# decode rows. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w28a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s28a.tgz.part" -C "$W" . && mv "$O/s28a.tgz.part" "$O/s28a.tgz"; }
trap pack EXIT
tar xzf build-carry/s28a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 f/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*:Kernels*:Matmul*' > "$W/tests.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED' "$W/tests.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen m/attnlab --batches 1,8
    for e in 0 1 2; do echo "== round $r branch early=$e"; ATTN_EXP_EARLY=$e gen f/attnlab --batches 1,8; done
    echo "== round $r branch early=2 merged in the split kernel"; ATTN_EXP_MERGE_BYTES=1000000 gen f/attnlab --batches 1,8; } >> "$W/step.txt"
done
{ echo "== B=32 main"; gen m/attnlab --batches 32; echo "== B=32 branch"; gen f/attnlab --batches 32; } >> "$W/step.txt"
sed -E 's/ +/ /g' "$W/step.txt" | cut -c1-160; echo "step ($((SECONDS - t0)) s)"; pack
for e in 0 2; do mkdir -p "$W/prof$e"; ATTN_EXP_EARLY=$e timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1 --profile --out "$W/prof$e" > "$W/prof$e/log.txt" 2>&1; done
echo "profiles ($((SECONDS - t0)) s)"; pack
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 120 )); echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
{ echo "== after HF, main"; gen m/attnlab --batches 1,32; echo "== after HF, branch"; gen f/attnlab --batches 1,32; } >> "$W/step.txt"
tail -6 "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-160; pack
if [ "$(left)" -gt 40 ]; then
timeout $(( $(left) / 2 )) f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
timeout $(( $(left) / 2 )) python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
fi
echo "total $((SECONDS - t0)) s"
