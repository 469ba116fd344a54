#!/usr/bin/env bash
# Prepared in session 20 for the next (carry ["build-carry/s20c", "build-carry/s21b", ".gpucall/s21a.sh"]; 46 MB with
# the tree): main 830a808's binaries (f/), the merged state measured on an H100 in session 20's call C; p/ = branch
# s20-mha-pair (tests + decode bench, never run): the 8-bit MHA decode kernel's softmax step over both slices of an
# iteration; p4/ = s20-mha-pair4 (the same, 4 blocks per SM at D = 64). This call is for the H200 that issues 14 and
# 17 name. Env: LIM (s, default 540).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s21a.tgz.part" -C "$W" . && mv "$O/s21a.tgz.part" "$O/s21a.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz && tar xzf build-carry/s21b/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
# 1. issue 14's seven rows beside cuDNN, two rounds (fwd and bwd TFLOP/s are columns 4 and 6)
WU="--warmup-ms 800"
for r in 1 2; do [ "$(left)" -ge 150 ] || break
  f/bench_flash_attention $WU --full --shape 2,16,16,8192,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "non-causal"}'
  f/bench_flash_attention $WU --shape 16,12,12,1024,64 --shape 4,12,12,4096,64 --shape 1,12,12,16384,64 --shape 8,16,16,2048,128 --shape 2,16,16,8192,128 --shape 4,32,8,4096,128 2>&1 | awk -v r=$r '$1 ~ /^[0-9]+,/ {print r, "ours", $0, "causal"}'
  python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ non-causal/"
  python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 16,12,1024,64 4,12,4096,64 1,12,16384,64 8,16,2048,128 2,16,8192,128 4,32,4096,128,8 2>&1 | grep "^cudnn" | sed "s/^/$r /; s/$/ causal/"
done | tee "$W/flash.txt"; echo "($((SECONDS - t0)) s)"; pack
# 2. issue 17's decode rows beside PyTorch, and the GPT-2 decode step
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 32,16,16,128,2048,int8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
timeout 40 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8,32 --out runs/g > "$W/generate.txt" 2>&1
echo "($((SECONDS - t0)) s)"; pack
# 3. s20-mha-pair: its decode tests, then against main on the 8-bit rows, rotated (merge if its tests pass and it wins
#    every row; D = 128's kernel changes by instruction order only). p4 = s20-mha-pair4: the same at 4 blocks per SM
#    for D = 64 (its tests run last, step 7, if time is left).
timeout 120 p/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_p.log" 2>&1; summary "p decode tests" $? "$W/tests_p.log"
PS="--shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,16,16,128,32768,fp8 --shape 8,16,16,128,4096,int8 --shape 1,12,12,64,640,int8"
for b in f p p4 p4 f p p f p4; do timeout 30 $b/bench_decode_attention $PS 2>/dev/null | grep '"decode"' \
  | python3 -c "import json,sys; [print('$b', d['B'],d['H'],d['D'],d['ctx'],d['cache'],d['us'],d['frac_copy']) for d in map(json.loads, sys.stdin)]"
done | tee "$W/decode_pair.txt"; pack
# 4. MHA B = 1 on the H200 (75% of copy there against 83% on the H100): more resident blocks or waves
#    (and MHA on the tensor-core kernel, whose cp.async ring keeps more bytes in flight than registers can)
#    The grouped rows ride along ((1,32,8,128) at 72.1% on the H200, target 75%; GQA 12/4).
for a in "" "--waves 1" "--waves 1.5" "--waves 2" "--blocks-per-sm 4" "--blocks-per-sm 6" "--mha-tensor-cores" "--mha-tensor-cores --mma-warps 8"; do [ "$(left)" -ge 60 ] || break
  echo "== $a"; timeout 30 f/bench_decode_attention $a --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,16,16,128,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,12,4,64,32768,bf16 2>&1 \
    | grep '"decode"' | python3 -c "import json,sys; [print(d['B'],d['H'],d['Hkv'],d['D'],d['cache'],d['us'],d['frac_copy']) for d in map(json.loads, sys.stdin)]"
done | tee "$W/decode_knobs.txt"; pack
# 5. the variants at T = 16384 D = 64 (softcap and ALiBi within 10% of causal, window 1024 >= 7x)
for m in "" "--softcap 30" "--alibi" "--window 1024"; do [ "$(left)" -ge 40 ] || break
  echo "$m: $(f/bench_flash_attention $WU $m --shape 1,12,12,16384,64 2>&1 | awk '$1 ~ /^[0-9]+,/ {print $2, $4, $6}')"
done | tee "$W/variants.txt"; pack
# 6. the flash and decode tests on this card
[ "$(left)" -ge 100 ] && { timeout $(( $(left) - 10 )) f/attn_gpu_tests --gtest_filter='*Flash*:Decode*:KVCache*' > "$W/tests.log" 2>&1; summary "f flash+decode tests" $? "$W/tests.log"; pack; }
[ "$(left)" -ge 70 ] && { timeout $(( $(left) - 5 )) p4/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_p4.log" 2>&1; summary "p4 decode tests" $? "$W/tests_p4.log"; pack; }
echo "total $((SECONDS - t0)) s"
