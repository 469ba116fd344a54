#!/usr/bin/env bash
# Prepared in session 37 (its call D, never run: no device time left). Copy to .gpucall/s37d.sh. Carry ["build-carry/s37d", ".gpucall/s37d.sh"]: m/ = main 03f1780's build (22add1a, same kernels);
# l/ = branch s37-mha-lazy (its kernel commits, built from ae7b28d): the split kernels' running max (and the 8-bit V-scale reference) lag: 8-bit MHA and grouped
# kernels one warp vote a step instead of shuffle reductions and a rescale; the CUDA-core kernel a lane's own test.
# Any GPU: 0. l's decode and cache tests; 1. bench_decode_attention m / l alternated, two rounds; 2. the int8-cache
# step m / l; 3. bench-generate's tables and plots with main (issue 17, acceptance 4). On an H200 also issue 17's headline with m: HF generate() B = 1 and 32 beside ours, cuDNN. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w37d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-500}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s37d.tgz.part" -C "$W" . && mv "$O/s37d.tgz.part" "$O/s37d.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s37d/bins.tgz || { echo "untar failed"; exit 1; }
timeout 120 l/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_l.log" 2>&1
echo "l tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$W/tests_l.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_l.log" | head -10
SH="--shape 1,12,12,64,32768,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 \
 --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,int8 --shape 8,12,12,64,4096,int8"
for r in 1 2; do for v in m l; do
  timeout 60 $v/bench_decode_attention $SH > "$W/bench_${v}_$r.jsonl" 2>&1
  python3 - "$W/bench_${v}_$r.jsonl" "$v" "$r" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"{sys.argv[2]} r{sys.argv[3]} {o['B']},{o['H']},{o['Hkv']},{o['D']},{o['ctx']},{o['cache']} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']}")
PY
done; done | tee "$W/bench.txt"; pack
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-130; }
for r in 1; do for v in m l; do echo "== int8 step $v"; gen $v --kv-cache int8 --batches 1,8; done; done | tee "$W/step_int8.txt"; pack
# issue 17's acceptance 4 (tables and plots regenerated, with the kernels a step) on main, on whatever card this is
mkdir -p "$W/gen_tables"; timeout 150 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --batches 1,8,32 --kv-cache bf16,int8 --out "$W/gen_tables" > "$W/gen_tables/log.txt" 2>&1; echo "tables exit $? ($((SECONDS - t0)) s)"; pack
grep -q H200 "$W/gpu.txt" || { echo "not an H200: no headline ($((SECONDS - t0)) s)"; exit 0; }
{ echo "== before HF"; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 32; } | tee "$W/step.txt"
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 200 )); [ "$T" -gt 180 ] && T=180; hf 1 $T 3
{ echo "== after HF B=1"; gen m --kv-cache bf16 --batches 1; gen m --kv-cache bf16 --batches 1; } | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 \
  --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
T=$(( $(left) - 20 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
{ echo "== after HF B=32"; gen m --kv-cache bf16 --batches 32; } | tee -a "$W/step.txt"
echo "total $((SECONDS - t0)) s"
