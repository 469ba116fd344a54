#!/usr/bin/env bash
# Session 13, call B (carry ["build-carry/s13b", "build-carry/main12", ".gpucall"]), CAP seconds:
#   1. GPU tests of the decode path on the new binaries (gemv ring, attention's pre-wait loads, trace names)
#   2. bench-generate B=1,8,32, old (main12 = a5ab50c) and new alternated twice; new --profile (B=1)
#   3. decode attention standalone, old and new
#   4. MUFU variants' throughput and their SASS (issue 14, soft-capping)
#   5. HF generate() beside ours (issue 17, acceptance 3), if time is left
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-500}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
fits() { [ "$(left)" -ge "$1" ] && return 0; echo "== skipped $2 (needs $1 s, $(left) left)" | tee -a "$W/skipped.txt"; return 1; }
pack() { tar czf "$O/s13b.tgz.part" -C "$W" . && mv "$O/s13b.tgz.part" "$O/s13b.tgz"; }
stamp() { echo "== $1 done ($((SECONDS - t0)) s)"; pack; }
trap pack EXIT
N=new; OLD=old; mkdir -p $N $OLD && tar xzf build-carry/s13b/bins.tgz -C $N && tar xzf build-carry/main12/bins.tgz -C $OLD || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$W/gpu.txt"
$N/attn_gpu_tests --gtest_filter='Gemv*:Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*' > "$W/tests.log" 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests.log" | head -20; stamp tests
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline"
for rep in 1 2; do for who in $OLD $N; do
  echo "-- $who rep $rep"; timeout 120 $who/attnlab $GEN --batches 1,8,32 --out runs/gen_$who 2>&1 | grep -E "cached|error"
done; done | tee "$W/generate.txt"; stamp generate
timeout 120 $N/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/gen_prof > "$W/gen_profile.log" 2>&1
cat runs/gen_prof/decode_profile.md >> "$W/gen_profile.log" 2>/dev/null; grep -E "^\|" "$W/gen_profile.log" | head -30; stamp profile
if fits 60 decode; then
  for who in $OLD $N; do echo "-- $who"; $who/bench_decode_attention --reps 40 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 \
    --shape 1,12,12,64,32768,fp8 --shape 32,12,12,64,4096,fp8 --shape 1,12,12,64,32768,int8 --shape 1,12,12,64,640,bf16 2>&1 | grep -E "decode|error"; done \
    | tee "$W/decode.txt" | grep -o '"B": [0-9]*.*"ctx": [0-9]*\|"cache": "[a-z0-9]*"\|"us": [0-9.]*' | paste - - - ; stamp decode
fi
.gpucall/mufu/mufu | tee "$W/mufu.txt"
command -v cuobjdump >/dev/null || PATH=$PATH:/usr/local/cuda/bin
cuobjdump -sass .gpucall/mufu/mufu | grep -E "Function|MUFU|HADD2|HMUL2|PRMT|F2F" > "$W/mufu_sass.txt" 2>&1; head -40 "$W/mufu_sass.txt"; stamp mufu
if fits 170 hf; then
  D=build-carry/main12/data; mkdir -p .deps/data && cp "$D/input.txt" .deps/data/
  $N/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  $N/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  timeout 60 $N/attnlab $GEN --batches 1,32 --out runs/gen_hf 2>&1 | tee "$W/bench_generate_hf.log" | grep -E "cached|error"
  cp runs/gen_hf/results.csv runs/gen_hf/results.md "$W/" 2>/dev/null; pack
  timeout $(( $(left) - 10 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 --new 512 \
    --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  stamp hf
fi
echo "total $((SECONDS - t0)) s"
