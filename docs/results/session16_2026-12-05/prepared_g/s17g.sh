#!/usr/bin/env bash
# Session 16, call G (carry ["build-carry/s16m", "build-carry/s17r", ".gpucall"]): branch s16-stagea with the GEMV prologue's
# plain copy as its own loop again (r) beside main ed78b4d (m): the new tests, then bench-generate main / r in every mode,
# bf16 cache, alternated twice, and the profile of r's unfused step at B = 8.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17g; mkdir -p "$W"
mkdir -p m r && tar xzf build-carry/s16m/bins.tgz -C m && tar xzf build-carry/s17r/bins.tgz -C r || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
timeout 90 r/attn_gpu_tests --gtest_filter='Gemv*:DecodeAttentionProj*:DecodeAttentionQkv*:GenerateFused*:GenerateGpu*' > "$W/tests_r.log" 2>&1
echo "r tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_r.log" | tr '\n' ' ')"
gen() { local tag=$1 bin=$2; shift 2; echo "$tag $(env "$@" timeout 60 ./$bin/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do gen main m X=1; gen r_unfused r ATTN_DECODE_MLP_UNFUSED=1; gen r_mlp_only r ATTN_DECODE_PROJ_UNFUSED=1; gen r_qkv_gemv r ATTN_DECODE_QKV_UNFUSED=1; gen r_all r X=1; done | tee "$W/generate.txt"
timeout 60 ./r/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 8 --profile --out runs/pf > "$W/prof.log" 2>&1
grep -E "^\| [0-9]|step period" runs/pf/decode_profile.md | head -12 | tee "$W/profile.txt"
