#!/bin/bash
# Call 1 (fourth session): main's GPU tests, the precision grid (issue 20), the fp8 branch's speed, a decode-step trace.
export ATTN_PYTHON=$(command -v python3) NCCL_NVLS_ENABLE=0
O=$OUT; R=$O/r; mkdir -p $R; date
cmake -S . -B build-main -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DTOMLPP_INCLUDE=$PWD/.deps/include > $R/cmake.log 2>&1 || tail -20 $R/cmake.log
cmake --build build-main -j16 --target attnlab attn_gpu_tests > $R/build.log 2>&1 || grep -m6 -A10 error $R/build.log
date
( cd .wt_fp8 && cmake -S . -B ../build-fp8 -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DTOMLPP_INCLUDE=$PWD/.deps/include > $R/cmake_fp8.log 2>&1 && nice cmake --build ../build-fp8 -j10 --target attnlab > $R/build_fp8.log 2>&1 || grep -m6 -A10 error $R/build_fp8.log ) &
FP8PID=$!
B=build-main
timeout 200 $B/attn_gpu_tests > $R/tests.log 2>&1; echo "tests rc=$?"
grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]+|^\[==========\] [0-9]+ tests' $R/tests.log; grep -E "^\[  FAILED  \].*ms\)" $R/tests.log | head -20
grep -E -B1 -A5 "Failure" $R/tests.log | head -30
date; wait $FP8PID; date
echo "== fp8 branch: bf16 vs fp8 at 124M and 350M"
F=build-fp8/attnlab
for cfg in gpt2_124m gpt2_350m; do for p in bf16 fp8; do
  $F bench -c .wt_fp8/configs/$cfg.toml --attention.impl=\"flash\" --device.precision=\"$p\" --json $R/fp8_${cfg}_$p.json > $R/fp8_${cfg}_$p.log 2>&1 || tail -2 $R/fp8_${cfg}_$p.log
  tail -1 $R/fp8_${cfg}_$p.log; done; done
$F bench -c .wt_fp8/configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"fp8\" --profile > $R/fp8_124m_profile.log 2>&1; grep -A22 -i "profile\|kernel\|op " $R/fp8_124m_profile.log | head -30
$F bench -c .wt_fp8/configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"bf16\" --profile > $R/bf16_124m_profile.log 2>&1
date; echo "== precision grid (issue 20)"
timeout 330 $B/attnlab ablate -c configs/gpt2_124m.toml --grid configs/grid_precision.toml --out runs/ablate_precision > $R/ablate.log 2>&1; echo "ablate rc=$?"
cat runs/ablate_precision/results.md; cp -r runs/ablate_precision $R/ 2>/dev/null
date; echo "== decode step trace (nsys, batch 1)"
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys 2>/dev/null | head -1); echo "nsys=$NSYS"
if [ -n "$NSYS" ]; then timeout 90 $NSYS profile -o $R/gen1 --force-overwrite true -t cuda $B/attnlab bench-generate -c configs/gpt2_124m.toml --batches 1 --prompt-lens 128 --new-tokens 64 --kv-cache bf16 --no-baseline --out /tmp/gb1 > $R/nsys_gen.log 2>&1
  timeout 60 $NSYS stats -r cuda_gpu_kern_sum -f csv -o $R/gen1 $R/gen1.nsys-rep > /dev/null 2>&1; ls $R; head -40 $R/gen1_cuda_gpu_kern_sum.csv 2>/dev/null | cut -c1-200; rm -f $R/gen1.nsys-rep $R/gen1.sqlite; fi
date; tar czf $O/r.tgz -C $O r
