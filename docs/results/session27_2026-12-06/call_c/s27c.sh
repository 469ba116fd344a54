#!/usr/bin/env bash
# Session 27, call C (carry ["build-carry/s27c", ".gpucall/s27c.sh"]): f/ main's binaries (7a6d87e: attnlab,
# attn_gpu_tests, input.txt), h/ branch s27-fcproj-fold's (attnlab, attn_gpu_tests), sm_90a.
# 1. the branch's tests (matmul, kernels, generation); 2. the decode step, main against the branch (c_proj's split-K
# partials summed by the layernorm after it: default 6 slices, and 1 (off), 4, 8) at B = 1, 16, 32, two rounds;
# 3. the branch's step profile at B = 32; 4. HF generate() (static + compile) beside both. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w27c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-570}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s27c.tgz.part" -C "$W" . && mv "$O/s27c.tgz.part" "$O/s27c.tgz"; }
trap pack EXIT
tar xzf build-carry/s27c/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the branch's tests
timeout 180 h/attn_gpu_tests --gtest_filter='Matmul*:Kernels*:Generate*:PrefixLm*:Gemv*:DecodeAttentionAppend*' > "$W/t_branch.log" 2>&1
echo "branch tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/t_branch.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E "^\[  FAILED|Failure" "$W/t_branch.log" | head -5; pack
# 2. the decode step (GPT-2 124M, bf16 cache, prompt 128 + 512)
gen() { local bin=$1; shift; timeout 90 $bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen f --batches 1,16,32
    echo "== round $r branch"; gen h --batches 1,16,32
    for s in 1 4 8; do echo "== round $r branch --fc-proj-splits $s"; gen h --batches 16,32 --fc-proj-splits $s; done; } >> "$W/step.txt"
  echo "step round $r ($((SECONDS - t0)) s)"; pack
done
grep -E "==|B=" "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-120
# 3. the branch's step, kernel by kernel
timeout 60 h/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 32 --profile --out runs/h32 > "$W/profile_h32.txt" 2>&1; cp runs/h32/decode_profile.md "$W/decode_profile_h32.md"
echo "profile ($((SECONDS - t0)) s)"; pack
# 4. HF generate() (static cache + torch.compile, its best) beside ours, in what time is left
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 50 )); echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
{ echo "== after HF main"; gen f --batches 1,32; echo "== after HF branch"; gen h --batches 1,32; } >> "$W/step.txt"
tail -4 "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-120
echo "total $((SECONDS - t0)) s"
