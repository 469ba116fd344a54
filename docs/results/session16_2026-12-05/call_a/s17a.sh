#!/usr/bin/env bash
# Prepared in session 16 for the next one (carry ["build-carry/s17p", ".gpucall"]; any card):
#   p = branch s16-stagea 72fd3f1 (main ed78b4d + the fused MLP kernel + the output projection and, with a bf16 cache, the
#       qkv projection inside decode attention: 2 kernels a layer; ATTN_DECODE_QKV_UNFUSED=1: 3 (qkv GEMV);
#       ATTN_DECODE_PROJ_UNFUSED=1: 4 (only the MLP fused); ATTN_DECODE_MLP_UNFUSED=1: main's 5)
# 1. the new tests (Gemv*, DecodeAttentionProj*, DecodeAttentionQkv*, generator, kernel trace), then the generator tests
#    with the qkv GEMV;
# 2. bench-generate all fused / qkv GEMV / MLP only / unfused (bf16 cache), all / unfused (int8), alternated twice;
# 3. the decode tests (main ed78b4d's decode code never ran on a GPU; the cluster path is new);
# 4. the decode-step profile, fused; 5. memcheck + racecheck of the new tests.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w17a; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s17a.tgz.part" -C "$W" . && mv "$O/s17a.tgz.part" "$O/s17a.tgz"; }
trap pack EXIT
mkdir -p p && tar xzf build-carry/s17p/bins.tgz -C p || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
timeout 150 p/attn_gpu_tests --gtest_filter='Gemv*:DecodeAttentionProj*:DecodeAttentionQkv*:Generate*:KernelTrace*' > "$W/tests_new.log" 2>&1; summary "new tests" $? "$W/tests_new.log"
grep -E "\[rel\].*(mlp|branch|projection|appended|in front)|fused step" "$W/tests_new.log" | head -30; pack
ATTN_DECODE_QKV_UNFUSED=1 timeout 100 p/attn_gpu_tests --gtest_filter='Generate*:KernelTrace*' > "$W/tests_qkv_gemv.log" 2>&1; summary "generator tests, qkv GEMV" $? "$W/tests_qkv_gemv.log"
pack  # (the MLP-only mode is what the GQA generator tests take)
gen() { local tag=$1 kv=$2; shift 2; echo "$tag $kv $(env "$@" timeout 60 ./p/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache $kv --no-baseline --batches 1,8 --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
# (int8: decode attention is the direct-fragment kernel, no cluster, so "all" is the MLP-only step there)
for rep in 1 2; do gen all bf16 X=1; gen qkv_gemv bf16 ATTN_DECODE_QKV_UNFUSED=1; gen mlp_only bf16 ATTN_DECODE_PROJ_UNFUSED=1; gen unfused bf16 ATTN_DECODE_MLP_UNFUSED=1
  gen all int8 X=1; gen unfused int8 ATTN_DECODE_MLP_UNFUSED=1; done | tee "$W/generate.txt"; pack
timeout 150 p/attn_gpu_tests --gtest_filter='Decode*:KVCache*:PrefixLm*:-DecodeAttentionProj*:DecodeAttentionQkv*' > "$W/tests_decode.log" 2>&1; summary "decode tests" $? "$W/tests_decode.log"; pack
timeout 60 ./p/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 128 --kv-cache bf16 --no-baseline --batches 1 --profile --out runs/pf > "$W/prof.log" 2>&1
grep -E "^\| [0-9]|step period" runs/pf/decode_profile.md | head -11 | tee "$W/profile.txt"; pack
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do timeout 100 $CS --tool $tool --error-exitcode 1 p/attn_gpu_tests --gtest_filter='Gemv.Fused*:DecodeAttentionProj*:DecodeAttentionQkv*' > "$W/san_$tool.log" 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_$tool.log" | head -1)"; done; pack
echo "total $((SECONDS - t0)) s"
