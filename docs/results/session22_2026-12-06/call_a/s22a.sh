#!/usr/bin/env bash
# Prepared in session 21 for the next (carry ["build-carry/s22a", ".gpucall/s22a.sh"]; ~30 MB with the tree): main
# a8d6128's binaries (f/: GPU tests, flash and decode benches, attnlab), built for sm_90a. Meant for the H200 the issues
# name; on an H100 the ratios still hold. Env: LIM (s, default 540).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w22a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s22a.tgz.part" -C "$W" . && mv "$O/s22a.tgz.part" "$O/s22a.tgz"; }
trap pack EXIT
tar xzf build-carry/s22a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
# 1. issue 17's rows beside PyTorch (cuDNN), and the GPT-2 decode step
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,32,8,128,32768,fp8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
timeout 60 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8,32 --out runs/g > "$W/generate.txt" 2>&1
# 1b. 4 or 8 warps for the grouped kernel, alternated (session 21: 8 won D = 128 8-bit and B = 32, lost B = 1 D = 64)
G="--shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16
   --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 --shape 32,12,4,64,4096,bf16 --shape 32,12,1,64,4096,bf16
   --shape 8,32,8,128,4096,fp8 --shape 1,12,4,64,640,bf16"
for k in "" "--mma-warps 8" "" "--mma-warps 8"; do
  echo "== $k"; timeout 30 f/bench_decode_attention $k $G 2>/dev/null | grep '"decode"' \
    | python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"
done > "$W/warps.txt"
echo "($((SECONDS - t0)) s)"; pack
# 2. issue 14's seven rows beside cuDNN, two rounds (fwd and bwd TFLOP/s are columns 4 and 6)
WU="--warmup-ms 800"
for r in 1 2; do [ "$(left)" -ge 250 ] || break
  f/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "non-causal"}'
  f/bench_flash_attention $WU --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 --shape 8,16,16,2048,128 --shape 2,16,16,8192,128 --shape 4,32,8,4096,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "causal"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ non-causal/"
  python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 16,12,1024,64 4,12,4096,64 1,12,16384,64 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ causal/"
done | tee "$W/flash.txt"; echo "($((SECONDS - t0)) s)"; pack
# 3. where the grouped tensor-core kernel (GQA 12/4) and the CUDA-core MHA kernel stall at B = 1, per SASS instruction
#    (Nsight Compute source page): for the design of two independent slices a warp (session 21: one warp a scheduler,
#    ~5 cycles an instruction, "wait" and long-scoreboard stalls)
i=0
for s in 1,12,4,64,32768,bf16 1,12,12,64,32768,bf16; do i=$((i+1)); [ "$(left)" -ge 150 ] || break
  timeout 120 ncu --clock-control none --cache-control all --section SourceCounters --section WarpStateStats \
    --page source --print-source sass --csv -k regex:decode_mma_kernel\|decode_split_kernel --launch-skip 1 --launch-count 1 \
    f/bench_decode_attention --shape $s --reps 1 > "$W/src_$i.csv" 2>"$W/src_$i.err"
  echo "$s rc=$? $(wc -l < "$W/src_$i.csv") lines ($((SECONDS - t0)) s)"
done; pack
# 4. the whole GPU suite of main (the merged tree as one; session 21 ran its decode and other non-flash suites only)
[ "$(left)" -ge 120 ] && { timeout $(( $(left) - 10 )) f/attn_gpu_tests > "$W/tests.log" 2>&1; summary "f all GPU tests" $? "$W/tests.log"; }
echo "total $((SECONDS - t0)) s"
