#!/usr/bin/env bash
# Session 12, call A, on main (binaries built here for sm_90a, carried in build-carry/main12).
#   CAP=<seconds> bash .gpucall/s12a.sh
# carry ["build-carry/main12", ".gpucall"]. Sections in order of value; one that would not end
# within CAP is skipped and says so.
#   1. the whole GPU suite (main's fp8 and tracer refactors have not run on a GPU yet)
#   2. issue 21, acceptance 2: 1000 steps bf16 vs fp8, same seed: 6-layer shakespeare BPE, GPT-2 124M
#   3. issue 21, acceptance 1: the step, bf16 vs fp8, 124M and 350M, alternated twice
#   4. issue 21, acceptance 3: ablate, attention grid x [bf16, fp8]
#   5. issue 17: bench-generate --profile at B=1 (every kernel of the decode step)
#   6. issue 14: window sweep at T=16384 D=64, and the variants at D=128
#   7. issue 14: ours against cuDNN on its table's shapes
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"; CAP=${CAP:-560}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
fits() { [ "$(left)" -ge "$1" ] && return 0; echo "== skipped $2 (needs $1 s, $(left) left)" | tee -a "$O/skipped.txt"; return 1; }
stamp() { echo "== $1 done ($((SECONDS - t0)) s)"; }
B=bins; mkdir -p "$B" && tar xzf build-carry/main12/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$PWD/$B/lib:${LD_LIBRARY_PATH:-}"
cat build-carry/main12/COMMIT
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$O/gpu.txt"
A="$B/attnlab"; D=build-carry/main12/data

# 1. the suite
if fits 200 suite; then
  timeout 200 "$B/attn_gpu_tests" > "$O/suite.log" 2>&1; echo "suite exit $?"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$O/suite.log" | head -20; tail -3 "$O/suite.log"
  gzip -f "$O/suite.log"; stamp suite
fi

# 2. quality, 1000 steps each (commands of gpu_check.sh fp8quality)
quality() {  # quality RUN PRECISION
  if [ "$1" = qsh ]; then
    timeout 120 "$A" train -c configs/shakespeare_char.toml --attention.impl=\"flash\" --data.inputs="[\"$D/input.txt\"]" \
      --data.tokenizer=\"bpe\" --data.vocab_size=4096 --data.dir=runs/data/shakespeare_bpe4096 \
      --training.max_iters=1000 --schedule.decay_iters=1000 --training.eval_interval=100 --training.eval_iters=50 \
      --training.log_interval=10 --checkpoint.interval=0 --device.precision=\"$2\" --training.out_dir=runs/qsh_$2
  else
    timeout 150 "$A" train -c configs/gpt2_124m.toml --attention.impl=\"flash\" --data.inputs="[\"$D/fortunes\"]" \
      --data.dir=runs/data/fortunes_bpe2048 --data.vocab_size=2048 --training.max_iters=1000 \
      --training.eval_interval=100 --training.eval_iters=20 --training.log_interval=10 --checkpoint.interval=0 \
      --device.precision=\"$2\" --training.out_dir=runs/q124_$2
  fi > "$O/$1_$2.log" 2>&1 || tail -3 "$O/$1_$2.log"
  cp runs/$1_$2/metrics.jsonl "$O/$1_$2.jsonl" 2>/dev/null; cp runs/$1_$2/*.png "$O/" 2>/dev/null
  stamp "$1 $2"
}
if fits 60 qsh; then quality qsh bf16; quality qsh fp8; fi
if fits 110 q124; then quality q124 bf16; quality q124 fp8; fi
python3 .gpucall/s12_quality.py "$O" 2>&1 | tee "$O/quality.txt"

# 3. the step, alternated twice
if fits 100 bench; then
  for rep in 1 2; do for C in gpt2_124m gpt2_350m; do for P in bf16 fp8; do
    echo "$C $P rep $rep: $(timeout 45 "$A" bench -c configs/$C.toml --attention.impl=\"flash\" --device.precision=\"$P\" 2>&1 | grep -E '^bench:|error')"
  done; done; done | tee "$O/bench.txt"; stamp bench
fi

# 4. ablate: attention grid x [bf16, fp8]
if fits 150 ablate; then
  timeout 200 "$A" ablate -c configs/gpt2_124m.toml --grid configs/grid_attention_fp8.toml --out runs/ablate_fp8 > "$O/ablate.log" 2>&1
  echo "ablate exit $?"; tail -25 "$O/ablate.log"; mkdir -p "$O/ablate_fp8"; cp -r runs/ablate_fp8/. "$O/ablate_fp8/" 2>/dev/null
  stamp ablate
fi

# 5. the decode step's kernels
if fits 40 profile; then
  timeout 60 "$A" bench-generate -c configs/gpt2_124m.toml --batches 1 --no-baseline --profile > "$O/gen_profile.log" 2>&1
  echo "profile exit $?"; tail -40 "$O/gen_profile.log"; stamp profile
fi

# 6. issue 14's bounds: the window's per-tile fixed cost, and the variants at D=128
if fits 40 window; then
  for W in 128 256 512 1024 2048 4096 8192; do
    timeout 20 "$B/bench_flash_attention" --reps 10 --shape 1,12,12,16384,64 --window $W 2>&1 | awk -v w=$W '$1 == "1,12,12,16384,64" {print "window", w, $0}'
  done | tee "$O/flash_bounds.txt"
  timeout 20 "$B/bench_flash_attention" --reps 10 --shape 1,12,12,16384,64 2>&1 | awk '$1 == "1,12,12,16384,64" {print "causal", $0}' | tee -a "$O/flash_bounds.txt"
  stamp window
fi
if fits 40 d128; then
  for V in "" "--alibi" "--softcap 30" "--alibi --softcap 30"; do
    for S in 1,12,12,16384,64 1,16,16,16384,128; do
      timeout 20 "$B/bench_flash_attention" --warmup-ms 500 --reps 10 --shape $S $V 2>&1 | awk -v v="${V:-plain}" -v s=$S '$1 == s {print v, $0}'
    done
  done | tee -a "$O/flash_bounds.txt"; stamp d128
fi
# 7. issue 14's table: ours and cuDNN, the five shapes, non-causal and GQA (gpu_check.sh flash)
if fits 110 flash; then
  BUILD=$B OUT="$O/flash" timeout 150 bash scripts/gpu_check.sh flash > "$O/flash.log" 2>&1; tail -30 "$O/flash.log"; stamp flash
fi
echo "total $((SECONDS - t0)) s"
