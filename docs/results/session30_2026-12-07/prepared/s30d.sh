#!/usr/bin/env bash
# Session 30, call D (HF at batch 1 only; s30b without the tests, one round before HF; then `sample` timed, s/ = branch s30-fast-sampling) (carry ["build-carry/s30d", ".gpucall/s30d.sh"]), meant for the H200. sm_90a, stripped:
#   n/: main 6a91565 (attnlab, attn_gpu_tests, bench_decode_attention): run-ahead greedy steps + the long-cache plan rule;
#   m0/: main ee982d3 (attnlab, bench_decode_attention), the session's start; input.txt for the HF export.
# 1. n/'s generation, trace and decode tests; 2. the step at B = 1/8/32, m0 against n, two rounds; 3. HF generate()
# (static + compile) at B = 32 and 1, then m0 and n again; 4. issue 17's decode rows (n, and m0's MHA rows) + cuDNN.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w30d; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-400}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s30d.tgz.part" -C "$W" . && mv "$O/s30d.tgz.part" "$O/s30d.tgz"; }
trap pack EXIT
tar xzf build-carry/s30d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
: tests ran in call B
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for b in m0 n; do echo "== before HF $b"; gen $b/attnlab --batches 1,32; done | tee "$W/step.txt"
echo "step ($((SECONDS - t0)) s)"; pack
mkdir -p .deps/data && cp input.txt .deps/data/
n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
n/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 60 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
for b in n m0; do echo "== after HF $b"; gen $b/attnlab --batches 1; done | tee -a "$W/step.txt"; pack
for r in 1; do for b in n s; do t1=$(date +%s.%N); timeout 60 $b/attnlab sample --checkpoint runs/hf_g2 --prompt "To be, or not to be" \
  --sample.max_new_tokens=500 --sample.num_samples=1 --sample.temperature=0.8 --sample.top_k=200 > "$W/sample_$b$r.txt" 2>&1
  echo "sample $b round $r: exit $? $(python3 -c "import time; print(f'{time.time() - $t1:.2f}')") s for 500 tokens (top_k 200)"; done; done | tee "$W/sample.txt"; pack
R="--shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,bf16"
if [ "$(left)" -gt 50 ]; then
for r in 1 2; do for b in m0 n; do echo "== $b" >> "$W/mha.txt"; timeout 20 $b/bench_decode_attention $R >> "$W/mha.txt" 2>&1; done; done
timeout 30 n/bench_decode_attention --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 \
  --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 > "$W/decode.jsonl" 2>&1
python3 - "$W/mha.txt" "$W/decode.jsonl" <<'PY'
import json, sys
for f in sys.argv[1:]:
    who = "n"
    for line in open(f):
        if line.startswith("=="): who = line.strip()[3:]; continue
        try: o = json.loads(line)
        except Exception: continue
        if o.get("what") == "decode": print(f"{who:3s} B={o['B']:2d} H={o['H']:2d}/{o['Hkv']:2d} D={o['D']:3d} ctx={o['ctx']:5d} {o['cache']:5s} {o['us']:8.2f} us {o['frac_copy']:.3f} of copy")
        elif o.get("what") == "copy": print(f"{who:3s} copy {json.dumps(o)[:120]}")
PY
fi
if [ "$(left)" -gt 25 ]; then timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; fi
echo "total $((SECONDS - t0)) s"
