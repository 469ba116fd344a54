#!/usr/bin/env bash
# Prepared in session 8: issue 21's acceptance 2 again on s7integ's fp8 (the GELU now cast from the
# fc's fp32-converted output without a bf16 rounding, the fused layernorm casts, the kept x^T...):
# 1000 steps in bf16 and in fp8, same seed, flash, val loss every 100 steps, as scripts/gpu_check.sh
# fp8quality (the commands are its own, split in two calls: the sixth session needed two).
#   MODEL=124m: GPT-2 124M on default.toml's data (fortunes, BPE 2048)        ~one call
#   MODEL=sh:   the 6-layer shakespeare_char model on shakespeare BPE 4096     ~one call
# Carry ["build-carry/s7", "build-carry/qdata", ".gpucall"]. Logs and metrics into $OUT; afterwards
# `python3 scripts/plot.py loss --run q124_bf16.jsonl bf16 --run q124_fp8.jsonl fp8` here.
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
B=s9dbins; mkdir -p "$B" && tar xzf build-carry/s9d/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
cat build-carry/s9d/COMMIT 2>/dev/null
A="$B/attnlab"; t0=$SECONDS
for P in bf16 fp8; do
  if [ "${MODEL:-124m}" = 124m ]; then
    run=q124
    timeout 280 "$A" train -c configs/gpt2_124m.toml --attention.impl=\"flash\" --data.inputs='["build-carry/qdata/fortunes"]' \
      --data.dir=runs/data/fortunes_bpe2048 --data.vocab_size=2048 --training.max_iters=1000 \
      --training.eval_interval=100 --training.eval_iters=20 --training.log_interval=10 --checkpoint.interval=0 \
      --device.precision=\"$P\" --training.out_dir=runs/q124_$P > "$O/q124_$P.log" 2>&1 || tail -3 "$O/q124_$P.log"
  else
    run=qsh
    timeout 280 "$A" train -c configs/shakespeare_char.toml --attention.impl=\"flash\" --data.inputs='["build-carry/qdata/input.txt"]' \
      --data.tokenizer=\"bpe\" --data.vocab_size=4096 --data.dir=runs/data/shakespeare_bpe4096 \
      --training.max_iters=1000 --schedule.decay_iters=1000 --training.eval_interval=100 --training.eval_iters=50 \
      --training.log_interval=10 --checkpoint.interval=0 --device.precision=\"$P\" --training.out_dir=runs/qsh_$P \
      > "$O/qsh_$P.log" 2>&1 || tail -3 "$O/qsh_$P.log"
  fi
  cp runs/${run}_$P/metrics.jsonl "$O/${run}_$P.jsonl" 2>/dev/null
  echo "$run $P done ($((SECONDS-t0)) s)"
done
python3 - "$O" "$run" <<'PY'
import json, sys
out, run = sys.argv[1], sys.argv[2]
val = {}
for p in ("bf16", "fp8"):
    val[p] = {d["step"]: d["val_loss"] for d in map(json.loads, open(f"{out}/{run}_{p}.jsonl")) if "val_loss" in d}
rows = [(s, val["bf16"][s], val["fp8"][s]) for s in sorted(val["bf16"]) if s in val["fp8"]]
for s, b, f in rows: print(f"{run} step {s}: bf16 {b:.4f} fp8 {f:.4f} ({100 * abs(f - b) / b:.2f}%)")
print(f"{run}: largest difference {max(100 * abs(f - b) / b for s, b, f in rows):.2f}% (acceptance: <= 1.5% at every eval)")
PY
echo "fp8 log lines with nan, inf or skipped: $(grep -ciwE "nan|inf|skipped" "$O"/${run}_fp8.log)"
echo "total $((SECONDS-t0)) s"
