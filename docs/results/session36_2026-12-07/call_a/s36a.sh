#!/usr/bin/env bash
# Session 36, call A (carry ["build-carry/s36a", ".gpucall/s36a.sh"]). m/: main f9fe3a6 (attnlab, bench_decode_attention);
# y/: branch s35-lm-no-ahead rebased on it (attnlab, attn_gpu_tests): the LM head without its "tile after next into L2".
# z/: branch s36-ln-warp-rows (y + the GEMV's layernorm prologue a warp a row in registers, one barrier after the wait).
# Any GPU: y's and z's GEMV and generation tests, then 3 rounds of m / y / z at B = 1, 2, 4, 8. On an H200 only, issue 17's headline as
# session 34's s34i.sh (HF generate() static + compile at B = 1 and 32, ours m and y around it, the decode rows, cuDNN).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w36a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s36a.tgz.part" -C "$W" . && mv "$O/s36a.tgz.part" "$O/s36a.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
tar xzf build-carry/s36a/bins.tgz || { echo "untar failed"; exit 1; }
for v in y z; do
  timeout 90 $v/attn_gpu_tests --gtest_filter='Gemv*:GenerateGreedy*:Generate*' > "$W/tests_$v.log" 2>&1
  echo "$v tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_$v.log" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  grep -E '^\[  FAILED|Failure' "$W/tests_$v.log" | head -10
done
gen() { local b=$1; shift; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do for v in m y z; do echo "== round $r $v"; gen $v --batches 1,2,4,8; done; done | tee "$W/step.txt"; pack
echo "steps done ($((SECONDS - t0)) s)"
for v in y z; do mkdir -p "$W/p1$v"; timeout 60 $v/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out "$W/p1$v" > "$W/p1$v/log.txt" 2>&1; rm -f "$W/p1$v/report.html" "$W/p1$v/env.json"
  echo "== profile $v"; grep -E "^\| [0-9]|on the GPU|step period" "$W/p1$v/decode_profile.md" | cut -c1-150; done; pack
grep -q H200 "$W/gpu.txt" || { echo "not an H200: the headline is not measured"; exit 0; }
for v in m y z; do echo "== $v B=32"; gen $v --batches 32; done | tee -a "$W/step.txt"
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 150 )); [ "$T" -gt 180 ] && T=180; hf 1 $T 3
for r in 1 2; do for v in m y z; do echo "== after HF B=1 $v"; gen $v --batches 1; done; done | tee -a "$W/step.txt"; pack
timeout 25 m/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/decode.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: o = json.loads(line)
    except Exception: continue
    if "B" in o: print(f"B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy, read {o['read_us']} us")
PY
for f in "" "--blocks-per-sm 2" "--blocks-per-sm 4" "--waves 2" "--no-fit-waves" "--min-split-rows 1024" "--min-split-rows 2048"; do
  echo "sweep B=32 [$f] $(timeout 15 m/bench_decode_attention --shape 32,12,12,64,4096,bf16 $f 2>&1 | grep -o '"us": *[0-9.]*')"; done | tee "$W/sweep32.txt"
timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; pack
T=$(( $(left) - 20 )); [ "$T" -gt 150 ] && T=150; hf 32 $T 2
for v in m y z; do echo "== after HF B=32 $v"; gen $v --batches 32; done | tee -a "$W/step.txt"
echo "total $((SECONDS - t0)) s"
