#!/usr/bin/env bash
# Everything the GPU machine is for, in one call (device time is scarce):
#   scripts/gpu_check.sh [tests] [bench] [flash] [shakespeare] [sanitize] [decode]   (default: tests bench flash)
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

if has decode; then
  echo "== decode attention over a KV cache: tests, then ours vs PyTorch SDPA (L2 flushed by a read, GB/s of cache read)"
  "$BUILD/attn_gpu_tests" --gtest_filter='Decode*:KVCache*' > "$OUT/decode_tests.log" 2>&1; rc=$?
  grep -E -A3 "Failure" "$OUT/decode_tests.log" | head -30
  row "decode tests (exit $rc): $(grep -E '^\[  PASSED' "$OUT/decode_tests.log" | head -1) $(grep -E '^\[  FAILED  \] [0-9]+' "$OUT/decode_tests.log" | head -1)"
  [ -x "$BUILD/bench_decode_attention" ] || cmake --build "$BUILD" -j"$(nproc)" --target bench_decode_attention > "$OUT/build_decode.log" 2>&1
  "$BUILD/bench_decode_attention" ${DECODE_ARGS:-} > "$OUT/decode_bench.jsonl" 2> "$OUT/decode_bench.err"
  python3 scripts/bench_decode_sdpa.py >> "$OUT/decode_bench.jsonl" 2>> "$OUT/decode_bench.err"
  tail -3 "$OUT/decode_bench.err"
  row "$(python3 - "$OUT/decode_bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
dec = [r for r in rows if r.get("what") == "decode"]
out = ["decode B,H,Hkv,D,ctx,cache | ours GB/s (% copy) | torch best GB/s (% copy)"]
for r in (r for r in dec if r["who"] == "ours"):
    key = (r["B"], r["H"], r["Hkv"], r["D"], r["ctx"], r["cache"])
    ours = f"{r['gbps']:7.0f} ({100 * r['frac_copy']:4.1f}%)" if "gbps" in r else "error: " + r.get("error", "?")
    peers = [p for p in dec if p["who"] != "ours" and "gbps" in p
             and (p["B"], p["H"], p["Hkv"], p["D"], p["ctx"], p["cache"]) == key]
    best = max(peers, key=lambda p: p["gbps"], default=None)
    torch = f"{best['gbps']:7.0f} ({100 * best['frac_copy']:4.1f}%) {best['who']}" if best else "-"
    out.append(f"  {','.join(map(str, key)):26s} | {ours} | {torch}")
print("\n".join(out))
PY
)"
fi

echo; echo "================ summary ================"
printf '%s\n' "${table[@]}"
