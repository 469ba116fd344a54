#!/bin/bash
# Final call: the integration tree (.wt_final): build, all GPU tests, then figures in priority order.
export ATTN_PYTHON=$(command -v python3) NCCL_NVLS_ENABLE=0
O=$OUT; R=$O/r; mkdir -p $R
cd .wt_final
cmake -S . -B ../build-final -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON -DTOMLPP_INCLUDE=$PWD/.deps/include > $R/cmake.log 2>&1 || tail -20 $R/cmake.log
cmake --build ../build-final -j16 --target attnlab attn_gpu_tests bench_flash_attention bench_decode_attention > $R/build.log 2>&1 || grep -m6 -A10 error $R/build.log
B=../build-final; date
timeout 150 $B/attn_gpu_tests > $R/tests.log 2>&1; echo "tests rc=$?"
grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]+|^\[==========\] [0-9]+ tests' $R/tests.log; grep -E "^\[  FAILED  \].*ms\)" $R/tests.log | head -20
grep -E -B1 -A5 "Failure" $R/tests.log | head -40
date; echo "== flash bf16 (causal)"; $B/bench_flash_attention --reps 10 2>&1 | tee $R/flash.log | tail -6
echo "== step"; for a in "flash true" "flash false"; do set -- $a
  $B/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"$1\" --device.cuda_graph=$2 --json $R/step_$1_$2.json > $R/step_$1_$2.log 2>&1 || tail -2 $R/step_$1_$2.log
  tail -1 $R/step_$1_$2.log; done
echo "== llm.c cuDNN (same call)"; (cd ../.llmc && LLMC_ONLY=cudnn STEPS=30 LLMC_LOGDIR=$R timeout 60 bash run.sh > $R/llmc.log 2>&1); grep -E "SUMMARY" $R/llmc.log | tail -2
echo "== decode (tensor-core | CUDA-core kernel, same build)"; S=""
for x in 1,12,12,64,32768,bf16 32,12,12,64,4096,bf16 1,12,12,64,32768,fp8 32,12,12,64,4096,fp8 1,12,12,64,32768,int8 32,12,12,64,4096,int8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,32,8,128,32768,int8 1,12,1,64,32768,bf16 1,12,1,64,32768,fp8; do S="$S --shape $x"; done
$B/bench_decode_attention --reps 10 $S > $R/decode.jsonl 2>&1; $B/bench_decode_attention --reps 10 --cuda-cores $S > $R/decode_cc.jsonl 2>&1
python3 - $R <<'PY'
import json, sys
def rows(p): return {(d["B"],d["H"],d["Hkv"],d["D"],d["ctx"],d["cache"]): d for d in (json.loads(l) for l in open(p) if l.startswith("{")) if "us" in d}
a, c = rows(sys.argv[1] + "/decode.jsonl"), rows(sys.argv[1] + "/decode_cc.jsonl")
for k, d in a.items(): print(*k, "tc %.2f us %.1f%% | cc %s" % (d["us"], 100 * d["frac_copy"], "%.2f us" % c[k]["us"] if k in c else "-"))
PY
echo "== fp32 / tf32 flash, torch fp32 efficient"; for p in fp32 tf32; do $B/bench_flash_attention --precision $p --reps 5 2>&1 | tail -3; done
timeout 60 python3 scripts/bench_sdpa.py --dtype fp32 --backends efficient --shapes 16,12,1024,64 2,12,8192,64 2>&1 | tail -4
echo "== GPT-2 124M fp32 / tf32 (flash)"; for p in fp32 tf32; do $B/attnlab bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.precision=\"$p\" --json $R/step_$p.json > $R/step_$p.log 2>&1 || tail -2 $R/step_$p.log; tail -1 $R/step_$p.log; done
date; echo "== torch: fp32 efficient, bf16 cudnn"
timeout 60 python3 scripts/bench_sdpa.py --backends cudnn 2>&1 | grep -E "^cudnn|B,H" | tail -6
date
cd .. && tar czf $O/r.tgz -C $O r
