#!/usr/bin/env bash
# Session 34, call K (trimmed I) (carry ["build-carry/s34k", ".gpucall/s34k.sh"]): issue 17's H200 figures for main 464c94d, and
# nothing else: it exits at once on any other GPU. m/: main's attnlab (call F's c/, the code of 464c94d), input.txt.
# 1. the step at B = 1; 2. HF generate() (static + compile) at B = 1, then ours again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w34k; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-240}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s34k.tgz.part" -C "$W" . && mv "$O/s34k.tgz.part" "$O/s34k.tgz"; }
trap pack EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
grep -q H200 "$W/gpu.txt" || { echo "not an H200: nothing to measure"; exit 3; }
tar xzf build-carry/s34k/bins.tgz || { echo "untar failed"; exit 1; }
gen() { timeout 60 m/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do echo "== round $r"; gen --batches 1; done | tee "$W/step.txt"; pack
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
hf() { local b=$1 T=$2 R=$3; echo "HF B=$b gets $T s"; [ "$T" -gt 60 ] && timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export \
  --vocab 50257 --batch $b --prompt 128 --new 512 --modes static --repeats $R --timeout $((T - 5)) 2>>"$W/hf.log" | tee -a "$W/hf_generate.json"; }
T=$(( $(left) - 40 )); [ "$T" -gt 180 ] && T=180; hf 1 $T 2
for r in 1 2; do echo "== after HF B=1"; gen --batches 1; done | tee -a "$W/step.txt"; pack
echo "total $((SECONDS - t0)) s"
