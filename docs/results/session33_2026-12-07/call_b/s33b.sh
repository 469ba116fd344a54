#!/usr/bin/env bash
# Session 33, call B (carry ["build-carry/s33b", ".gpucall/s33b.sh"]). sm_90a, stripped, in bins.tgz: n/ attnlab +
# attn_gpu_tests of the working tree, with GeneratorOptions::chain (bench-generate --chain N) as an experiment knob:
#   0 each step alone (main's step; its start kernel now on PDL), 1 runs of 16 as one graph, each LM head starting
#   the next step, 2 one graph, a start kernel a step (PDL), 3 as 1 with the LM head letting the next kernel launch
#   only at its end; and --no-prefill-graph. input.txt.
# 1. tests; 2. the step at B = 1, 8: chain 0..3 and chain 0 --no-prefill-graph, three rounds alternated;
# 3. B = 1 profiles of chain 0, 1, 2; 4. on an H200 only: HF generate() (static + compile) at B = 1, then the
# variants again. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w33b; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-300}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s33b.tgz.part" -C "$W" . && mv "$O/s33b.tgz.part" "$O/s33b.tgz"; }
trap pack EXIT
tar xzf build-carry/s33b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader | tee "$W/gpu.txt"
timeout 100 n/attn_gpu_tests --gtest_filter='GenerateGreedy*:Gemv*:*KernelTrace*' > "$W/tests_n.log" 2>&1
echo "n tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_n.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_n.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]|Failure' "$W/tests_n.log" | head -20; pack
gen() { timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2 3; do
  for v in "--chain 0" "--chain 1" "--chain 2" "--chain 3" "--chain 0 --no-prefill-graph"; do
    echo "== round $r $v"; gen --batches 1,8 $v; done
done | tee "$W/step.txt"; echo "step ($((SECONDS - t0)) s)"; pack
for c in 0 1 2; do
  mkdir -p "$W/p1c$c"; timeout 60 n/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
    --kv-cache bf16 --no-baseline --batches 1 --chain $c --profile --out "$W/p1c$c" > "$W/p1c$c/log.txt" 2>&1
  rm -f "$W/p1c$c/report.html" "$W/p1c$c/"*.png "$W/p1c$c/results."*
  echo "== profile chain $c"; cut -c1-150 "$W/p1c$c/decode_profile.md" | tail -14
done; pack
if grep -q H200 "$W/gpu.txt" && [ "$(left)" -gt 150 ]; then
  mkdir -p .deps/data && cp input.txt .deps/data/
  n/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  n/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  T=$(( $(left) - 40 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 --prompt 128 \
    --new 512 --modes static --repeats 3 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  for v in "--chain 0" "--chain 1" "--chain 2" "--chain 3"; do echo "== after HF $v"; gen --batches 1 $v; done | tee -a "$W/step.txt"
fi
echo "total $((SECONDS - t0)) s"
