#!/usr/bin/env bash
# Everything the GPU machine is for, in one call (device time is scarce):
#   scripts/gpu_check.sh [tests] [bench] [flash] [shakespeare] [sanitize] [generate]   (default: tests bench flash)
# Uses a carried build in $BUILD (default build) when it has the binaries, else builds one.
# Writes logs and JSON under $OUT (default /tmp/attn_out) and prints a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/attn_out}; BUILD=${BUILD:-build}; mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(tests bench flash)
has() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
table=()
row() { table+=("$*"); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ ! -x "$BUILD/attnlab" ] || [ ! -x "$BUILD/attn_gpu_tests" ]; then
  echo "== building in $BUILD"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON \
        -DTOMLPP_INCLUDE="$PWD/.deps/include" > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -B2 -A8 error "$OUT/build.log"; exit 1; }
fi
A="$BUILD/attnlab"

if has tests; then
  echo "== GPU tests"
  "$BUILD/attn_gpu_tests" > "$OUT/gpu_tests.log" 2>&1; rc=$?
  grep -E -A3 "Failure" "$OUT/gpu_tests.log" > "$OUT/gpu_failures.log"; head -40 "$OUT/gpu_failures.log"
  row "gpu tests (exit $rc): $(grep -E '^\[  PASSED' "$OUT/gpu_tests.log" | head -1) $(grep -E '^\[  FAILED  \] [0-9]+' "$OUT/gpu_tests.log" | head -1)"
fi

if has bench; then
  echo "== GPT-2 124M step benchmark (B=16, T=1024, bf16)"
  for impl in naive flash; do
    $A bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --json "$OUT/ours_$impl.json" 2>&1 | tail -1 | tee -a "$OUT/bench.log"
  done
  for mode in "math 0" "math 1" "flash 0" "flash 1"; do
    set -- $mode
    python3 scripts/torch_gpt.py bench --sdpa $1 --compile $2 2>>"$OUT/torch_bench.err" | tee -a "$OUT/bench.log" | tail -1
  done
  row "$(python3 - "$OUT/bench.log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
out = ["GPT-2 124M B=16 T=1024 bf16 | tokens/s | ms/step | peak GiB"]
for r in rows:
    who = f"ours {r['attention']}" if r.get("backend") else f"torch {r['attention']}{' compile' if r.get('compile') else ' eager'}"
    out.append(f"  {who:24s} | {r['tokens_per_s']:9.0f} | {r['step_ms']:7.1f} | {r['peak_bytes']/2**30:6.2f}")
print("\n".join(out))
PY
)"
fi

if has shakespeare; then
  echo "== shakespeare_char (nanoGPT config, bf16): ours, then PyTorch"
  mkdir -p runs
  t0=$(date +%s.%N)
  $A train -c configs/shakespeare_char.toml \
     --data.inputs='[".deps/data/input.txt"]' --checkpoint.interval=0 2>&1 | tee "$OUT/ours_shakespeare.log" | grep -E "val loss|done|error"
  python3 -c "print(round($(date +%s.%N) - $t0, 1))" > "$OUT/ours_shakespeare.time"
  python3 scripts/torch_gpt.py shakespeare --data .deps/data/input.txt --sdpa ${TORCH_SDPA:-flash} --compile ${TORCH_COMPILE:-1} \
     2>&1 | tee "$OUT/torch_shakespeare.log" | tail -2
  row "shakespeare_char: ours $(grep -o 'val loss [0-9.]*' "$OUT/ours_shakespeare.log" | tail -1) in $(cat "$OUT/ours_shakespeare.time")s; torch $(tail -1 "$OUT/torch_shakespeare.log")"
fi

if has curves; then
  echo "== loss curves, naive vs flash (bf16, same seed and data)"
  for impl in naive flash; do
    $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --model.attn_dropout=0.0 \
      --attention.impl=\"$impl\" --training.max_iters=1000 --training.out_dir=\"runs/sc_$impl\" --checkpoint.interval=0 \
      --logging.progress=false > "$OUT/curve_sc_$impl.log" 2>&1
    $A train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --attention.impl=\"$impl\" \
      --training.max_iters=200 --training.eval_interval=100 --training.out_dir=\"runs/g2_$impl\" --checkpoint.interval=0 \
      > "$OUT/curve_g2_$impl.log" 2>&1
  done
  for run in sc g2; do
    row "$run val loss naive: $(grep -o 'val loss [0-9.]*' "$OUT/curve_${run}_naive.log" | cut -d' ' -f3 | tr '\n' ' ')"
    row "$run val loss flash: $(grep -o 'val loss [0-9.]*' "$OUT/curve_${run}_flash.log" | cut -d' ' -f3 | tr '\n' ' ')"
  done
fi

if has xdevice; then
  echo "== checkpoints across devices: train on the GPU (bf16, flash), eval and sample on GPU and CPU"
  $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --attention.impl=\"flash\" --model.attn_dropout=0.0 \
    --training.max_iters=300 --training.eval_interval=0 --training.out_dir=\"runs/xdev\" > "$OUT/xdevice.log" 2>&1
  for dev in cuda cpu; do
    $A eval --checkpoint runs/xdev --device.backend=$dev --training.eval_iters=4 --device.threads=8 2>&1 | tee -a "$OUT/xdevice.log"
    $A sample --checkpoint runs/xdev --device.backend=$dev --sample.num_samples=1 --sample.max_new_tokens=60 \
      --sample.temperature=0 2>/dev/null > "$OUT/sample_$dev.txt"
  done
  cmp -s "$OUT/sample_cuda.txt" "$OUT/sample_cpu.txt" && same=identical || same=different
  row "checkpoint GPU->CPU: $(grep -o 'val loss [0-9.]*' "$OUT/xdevice.log" | tr '\n' ' ') greedy samples $same"
  cat "$OUT/sample_cuda.txt" >> "$OUT/xdevice.log"; rm -f "$OUT"/sample_*.txt
fi

if has flash && [ -x "$BUILD/bench_flash_attention" ]; then
  echo "== attention kernels"
  "$BUILD/bench_flash_attention" ${FLASH_ARGS:-} 2>&1 | tee "$OUT/attention_bench.log"
  python3 scripts/bench_sdpa.py ${SDPA_ARGS:-} 2>&1 | tee -a "$OUT/attention_bench.log" | grep -E "^(flash|cudnn) "
fi

if has sanitize; then
  echo "== compute-sanitizer"
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 1 "$BUILD/attn_gpu_tests" --gtest_filter='Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv2_D64_*' \
      > "$OUT/sanitize_$tool.log" 2>&1; row "compute-sanitizer $tool: exit $? ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | tail -1))"
  done
fi

if has generate; then
  # Cached generation (issue 9): GPU tests, bench-generate at the acceptance shapes, the 8-bit cache's
  # effect on a trained model's val loss, HF transformers if scripts/hf_generate.py exists.
  # Files: generate.log, gen_bench/{results.md,cache_memory.svg,tokens_per_s.svg}.
  echo "== cached generation"
  HBM=3.35e12; grep -q H200 "$OUT/gpu.txt" && HBM=4.8e12  # bytes/s: the weight-read limit per decode step
  G="$OUT/generate.log"; GB=/tmp/attn_gen_bench; rm -rf "$GB" "$GB.sweep"; mkdir -p "$OUT/gen_bench"
  "$BUILD/attn_gpu_tests" --gtest_filter='Generate*' > /tmp/attn_gen_tests.log 2>&1; rc=$?
  grep -E "^(fp32|bf16) |Failure|^\[  (PASSED|FAILED)" -A2 /tmp/attn_gen_tests.log | head -80 | tee "$G"
  row "generate gpu tests (exit $rc): $(grep -E '^\[  PASSED' /tmp/attn_gen_tests.log | head -1) $(grep -E '^\[  FAILED  \] [0-9]+' /tmp/attn_gen_tests.log | head -1)"
  $A bench-generate -c configs/gpt2_124m.toml --batches 1,32 --prompt-lens 128 --new-tokens 512 \
     --kv-cache bf16,fp8,int8 --hbm-bytes-per-s $HBM --out "$GB" 2>&1 | tee -a "$G"
  # context-length x head-layout sweep for the plots (no baseline)
  $A bench-generate -c configs/gpt2_124m.toml --batches 8 --prompt-lens 64,256,768 --new-tokens 128 \
     --kv-heads 12,4,1 --kv-cache bf16,int8 --no-baseline --out "$GB.sweep" >> "$G" 2>&1
  cp "$GB/results.md" "$OUT/gen_bench/results.md"; cat "$GB.sweep/results.md" >> "$OUT/gen_bench/results.md"
  cp "$GB.sweep/cache_memory.svg" "$GB.sweep/tokens_per_s.svg" "$OUT/gen_bench/" 2>/dev/null
  HF=/tmp/attn_hf.jsonl; : > "$HF"
  if [ -f scripts/hf_generate.py ]; then
    python3 scripts/hf_generate.py > "$HF" 2>>"$G"; echo "hf_generate.py exit $?" >> "$G"; cat "$HF" >> "$G"
  fi
  row "$(python3 - "$GB/results.csv" "$HF" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
hf = {}
for l in open(sys.argv[2]):
    try: r = json.loads(l)
    except Exception: continue
    b = r.get("batch", r.get("batch_size")); tps = r.get("tokens_per_s", r.get("tokens_per_sec"))
    if b is not None and tps is not None: hf[int(b)] = float(tps)
out = ["generate GPT-2 124M prompt 128 +512 | mode cache B | tokens/s | ms/step | HF tok/s | ratio | cache MiB | peak GiB | of weight-read limit"]
for r in rows:
    b = int(r["batch"]); t = float(r["tokens_per_s"]); h = hf.get(b) if r["mode"] == "cached" else None
    out.append(f"  {r['mode']:8s} {r['cache']:4s} B={b:<3d} | {t:9.0f} | {float(r['ms_per_step']):7.3f} | "
               f"{(f'{h:8.0f}' if h else '       -')} | {(f'{t/h:5.2f}' if h else '    -')} | "
               f"{float(r['cache_bytes'])/2**20:8.1f} | {float(r['peak_bytes'])/2**30:6.2f} | {100*float(r['weight_limit_fraction']):5.1f}%")
print("\n".join(out))
PY
)"
  mkdir -p runs
  $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1500 \
     --training.eval_interval=0 --checkpoint.interval=0 --training.out_dir=\"runs/gen_sc\" --logging.progress=false \
     > /tmp/attn_gen_train.log 2>&1
  tail -2 /tmp/attn_gen_train.log >> "$G"
  $A eval --checkpoint runs/gen_sc --cached --kv-cache bf16,int8,fp8 --training.eval_iters=20 2>&1 | tee -a "$G"
  row "cached val loss (shakespeare_char 1500 steps, 20 batches): $(grep -o 'loss [0-9.]* cached ([a-z0-9]* KV cache[^:]*: [^,]*, [^ ]* vs bf16' "$G" | sed 's/ KV cache, teacher-forced decode)//' | tr '\n' ';')"
fi

echo; echo "================ summary ================"
printf '%s\n' "${table[@]}"
