#!/bin/bash
# dstep GPU call: tests of the decode path, then bench-generate before (attnlab_base) and after.
cd "$(dirname "$0")/.."
H=/tmp/h_dstep
mkdir -p $H
for b in attnlab attnlab_base attn_gpu_tests; do
  xz -dc .h_dstep/$b.xz > $H/$b 2>/dev/null || python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" .h_dstep/$b.xz > $H/$b
  chmod +x $H/$b
done
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $OUT/summary.txt
for bin in attnlab_base attnlab; do
  timeout 40 $H/$bin bench-generate -c configs/gpt2_124m.toml --batches 1,8,32 --kv-cache bf16 --no-baseline \
    --out /tmp/b_$bin > $OUT/bench_$bin.log 2>&1
  echo "$bin rc=$?" | tee -a $OUT/summary.txt
  grep -E "ms/step" $OUT/bench_$bin.log | sed 's/  peak.*//' | tee -a $OUT/summary.txt
  cp /tmp/b_$bin/results.md $OUT/results_$bin.md 2>/dev/null
done
timeout 95 $H/attn_gpu_tests --gtest_filter="${FILTER:-Gemv*:Generate*:PrefixLmGpu*:Decode*:KVCache*}" > $OUT/tests.log 2>&1
echo "tests rc=$?" | tee -a $OUT/summary.txt
grep -E "^\[  (PASSED|FAILED)|^\[  FAILED|tests from .* ran|rel\] .*lm head|Failure" $OUT/tests.log | head -40 | tee -a $OUT/summary.txt
# per-kernel times of the first (launched, uncaptured) decode steps, isolated (ncu serializes)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU" | tee -a $OUT/summary.txt
timeout 45 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-count 450 \
  $H/attnlab bench-generate -c configs/gpt2_124m.toml --batches 1 --prompt-lens 16 --new-tokens 4 --kv-cache bf16 \
  --no-baseline > $OUT/ncu.csv 2>&1
echo "ncu rc=$?" | tee -a $OUT/summary.txt
