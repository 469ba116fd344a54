#!/usr/bin/env bash
# Session 36, call C (carry ["build-carry/s36b", ".gpucall/s36c.sh"]), the short form of s36b.sh for the device time
# left: m/ = main 167e37d (attnlab, bench_decode_attention), w/ = branch s36-ln-one-pass (the GEMV layernorm's
# statistics in one pass). Any GPU: w's tests, then m / w at B = 1, 8, two rounds. On an H200 only: HF generate()
# (static + compile) at B = 1, ours m / w after it, issue 17's decode rows and cuDNN. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w36c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-300}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s36c.tgz.part" -C "$W" . && mv "$O/s36c.tgz.part" "$O/s36c.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s36b/bins.tgz || { echo "untar failed"; exit 1; }
timeout 60 w/attn_gpu_tests --gtest_filter='Gemv*:GenerateGreedy*:Generate*' > "$W/tests_w.log" 2>&1
echo "w tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_w.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|Failure' "$W/tests_w.log" | head -10
gen() { local b=$1; shift; timeout 40 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do for v in m w; do echo "== round $r $v"; gen $v --batches 1,8; done; done | tee "$W/step.txt"; pack
echo "steps done ($((SECONDS - t0)) s)"
grep -q H200 "$W/gpu.txt" || { echo "not an H200: no headline"; exit 0; }
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 75 )); [ "$T" -gt 170 ] && T=170; echo "HF B=1 gets $T s"
[ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
  --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"
for v in m w; do echo "== after HF B=1 $v"; gen $v --batches 1; done | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
PY
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150
echo "total $((SECONDS - t0)) s"
