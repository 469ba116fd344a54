#!/bin/bash
# Last call (session 4, after the machine was taken back mid-call): main only. Build, all GPU tests, the step beside llm.c.
export ATTN_PYTHON=$(command -v python3) NCCL_NVLS_ENABLE=0
O=$OUT; R=$O/r; mkdir -p $R; LIMIT=${LIMIT:-270}; git log --oneline -1 2>/dev/null
left() { echo $((LIMIT - SECONDS)); }
say() { echo "[$(date +%T) t=${SECONDS}s] $*"; }
cmake -S . -B build-main -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DTOMLPP_INCLUDE=$PWD/.deps/include > $R/cmake.log 2>&1 || tail -20 $R/cmake.log
cmake --build build-main -j16 --target attnlab attn_gpu_tests > $R/build.log 2>&1 || { grep -m8 -A10 "error" $R/build.log | head -60; }
B=build-main; say built
timeout $(( $(left) - 60 < 120 ? $(left) - 60 : 120 )) $B/attn_gpu_tests > $R/tests.log 2>&1; say "tests rc=$?"
grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]+|^\[==========\] [0-9]+ tests|autotune\]' $R/tests.log; grep -E "^\[  FAILED  \].*ms\)" $R/tests.log | head; grep -E -B1 -A5 "Failure" $R/tests.log | head -30; tail -1 $R/tests.log | cut -c1-150
for impl in flash naive; do [ $(left) -gt 15 ] || break; timeout 25 $B/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --json $R/step_$impl.json > $R/step_$impl.log 2>&1; tail -1 $R/step_$impl.log; done
[ $(left) -gt 25 ] && { (cd .llmc && STEPS=30 LLMC_LOGDIR=$R timeout $(( $(left) - 5 )) bash run.sh > $R/llmc.log 2>&1); grep -E "SUMMARY" $R/llmc.log | tail -4; }
say done; tar czf $O/r.tgz -C $O r
