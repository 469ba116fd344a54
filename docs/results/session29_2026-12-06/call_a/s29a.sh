#!/usr/bin/env bash
# Session 29, call A (carry ["build-carry/s29a", ".gpucall/s29a.sh"]). f/: branch s28-kv-prefetch (attnlab, attn_gpu_tests,
# bench_decode_attention, input.txt); m/: main at c4c4302 (attnlab, attn_gpu_tests); sm_90a, stripped.
# At B > 8 (the cuBLASLt step) the branch prefetches each layer's cache rows into L2 from a side stream
# (kv_cache_prefetch_l2, cp.async.bulk.prefetch.L2), forked after the previous layer's attention and joined before this
# layer's. ATTN_EXP_KV_PREFETCH = percent of each sequence's rows (0: off).
# 1. tests: the branch's with the prefetch on; main's split-K tests (c4c4302's split_k_cuts, first GPU run);
# 2. B = 16/32 step, main against prefetch 0/25/50/75/100%, two rounds; 3. profiles;
# 4. HF generate() (static + compile) at B = 32 and 1 beside main and the branch; 5. B = 32 attention knobs; 6. issue 17's
# decode rows + cuDNN (4, 5 and 6 as time allows: env LIM, s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w29a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s29a.tgz.part" -C "$W" . && mv "$O/s29a.tgz.part" "$O/s29a.tgz"; }
trap pack EXIT
tar xzf build-carry/s29a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
ATTN_EXP_KV_PREFETCH=50 timeout 120 f/attn_gpu_tests --gtest_filter='KVCachePrefetch*:Generate*:PrefixLm*' > "$W/tests.log" 2>&1
echo "branch tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
timeout 90 m/attn_gpu_tests --gtest_filter='Matmul*:Kernels*SplitK*' > "$W/tests_main.log" 2>&1
echo "main split-K tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_main.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -hE '^\[  FAILED' "$W/tests.log" "$W/tests_main.log" | head -20; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error'; }
for r in 1 2; do
  { echo "== round $r main"; gen m/attnlab --batches 16,32
    for p in 0 25 50 75 100; do echo "== round $r branch prefetch $p%"; ATTN_EXP_KV_PREFETCH=$p gen f/attnlab --batches 16,32; done; } >> "$W/step.txt"
done
sed -E 's/ +/ /g' "$W/step.txt" | cut -c1-120; echo "step ($((SECONDS - t0)) s)"; pack
for p in 0 50; do mkdir -p "$W/p$p"; ATTN_EXP_KV_PREFETCH=$p timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 \
  --new-tokens 512 --kv-cache bf16 --no-baseline --batches 32 --profile --out "$W/p$p" > "$W/p$p/log.txt" 2>&1; done
for p in 0 50; do echo "== prefetch $p%"; sed -n 5,16p "$W/p$p/decode_profile.md" | cut -c1-140; done; pack
mkdir -p .deps/data && cp f/input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
{ echo "== after HF, main"; gen m/attnlab --batches 1,32
  for p in 0 50 100; do echo "== after HF, branch prefetch $p%"; ATTN_EXP_KV_PREFETCH=$p gen f/attnlab --batches 32; done; } >> "$W/step.txt"
sed -n '/after HF/,$p' "$W/step.txt" | sed -E 's/ +/ /g' | cut -c1-160; pack
if [ "$(left)" -gt 90 ]; then
S="--shape 32,12,12,64,640,bf16 --shape 32,12,12,64,1024,bf16 --shape 16,12,12,64,640,bf16"
for k in "" "--blocks-per-sm 8" "--blocks-per-sm 10" "--blocks-per-sm 15" "--mha-tensor-cores" "--cuda-cores"; do
  echo "== knobs '$k'" >> "$W/knobs.txt"; timeout 30 f/bench_decode_attention $S $k >> "$W/knobs.txt" 2>&1
done
python3 - "$W/knobs.txt" <<'PY'
import json, sys
knob = ""
for line in open(sys.argv[1]):
    if line.startswith("=="): knob = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode": print(f"{knob:30s} B={o['B']:2d} ctx={o['ctx']:5d} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy")
PY
echo "knobs ($((SECONDS - t0)) s)"; pack
fi
if [ "$(left)" -gt 40 ]; then
timeout $(( $(left) / 2 )) f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
timeout $(( $(left) / 2 )) python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
fi
echo "total $((SECONDS - t0)) s"
