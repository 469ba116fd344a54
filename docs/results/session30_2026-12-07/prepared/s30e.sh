#!/usr/bin/env bash
# Session 30, call E (carry ["build-carry/s30d", ".gpucall/s30e.sh"]): the last ~250 s of device time, no HF.
# m0/: main ee982d3; n/: main 6a91565 (run-ahead + long-cache plan); s/: main + s30-fast-sampling (attnlab).
# 1. the step at B = 1/32, m0 and n, twice; 2. issue 17's MHA B = 1 row, m0 and n; 3. `sample` 500 tokens, n against s.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w30e; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s30e.tgz.part" -C "$W" . && mv "$O/s30e.tgz.part" "$O/s30e.tgz"; }
trap pack EXIT
tar xzf build-carry/s30d/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
gen() { local b=$1; shift; timeout 40 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do for b in m0 n; do echo "== round $r $b"; gen $b/attnlab --batches 1,32; done; done | tee "$W/step.txt"; pack
for b in m0 n m0 n; do timeout 20 $b/bench_decode_attention --shape 1,12,12,64,32768,bf16 2>&1 | grep -E '"decode"' | python3 -c "import json,sys; [print('$b', o['us'], 'us', o['frac_copy'], 'of copy') for o in map(json.loads, sys.stdin)]"; done | tee "$W/mha.txt"; pack
mkdir -p .deps/data && cp input.txt .deps/data/
n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/s\" --logging.progress=false > "$W/train.log" 2>&1
for b in n s n s; do t1=$(date +%s.%N); timeout 40 $b/attnlab sample --checkpoint runs/s --prompt "To be, or not to be" \
  --sample.max_new_tokens=500 --sample.num_samples=1 --sample.temperature=0.8 --sample.top_k=200 > "$W/sample_$b.txt" 2>&1
  echo "sample $b: exit $? $(python3 -c "import time; print(f'{time.time() - $t1:.2f}')") s for 500 tokens (top_k 200)"; done | tee "$W/sample.txt"
echo "total $((SECONDS - t0)) s"
