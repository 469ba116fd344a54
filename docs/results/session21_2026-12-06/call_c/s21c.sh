#!/usr/bin/env bash
# Session 21, call C (carry ["build-carry/s20c", "build-carry/s21c", ".gpucall/s21c.sh"]): f = main 830a808's binaries;
# m = branch s21-merge (the splits' partial states folded in batches of 8 whose loads are in flight together; bench only);
# me = s21-epilogue = m + the tensor-core kernel's O rows stored without bank conflicts; mp = me + s21-pair64 (the 8-bit
# MHA kernel's one softmax step over both slices at D = 64; D = 128 machine code as main's), if present. Tests, the rows
# rotated, the plan knobs on the grouped rows, ncu stall reasons, the decode step.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w21c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-540}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s21c.tgz.part" -C "$W" . && mv "$O/s21c.tgz.part" "$O/s21c.tgz"; }
trap pack EXIT
tar xzf build-carry/s20c/bins.tgz || { echo "untar failed"; exit 1; }
for t in build-carry/s21c/*.tgz; do tar xzf "$t" || { echo "untar $t failed"; exit 1; }; done
LAST=me; [ -x mp/bench_decode_attention ] && LAST=mp
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
summary() { echo "$1 exit $2 $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$3" | tr '\n' ' ')"; grep -E "^\[  FAILED  \] [A-Z]|Failure$" "$3" | head -8; }
# 1. tests: the decode, cache, generation and trace suites of the candidate(s)
DT='Decode*:KVCache*:Generate*:PrefixLm*:KernelTrace*'
timeout 150 $LAST/attn_gpu_tests --gtest_filter="$DT" > "$W/tests_$LAST.log" 2>&1; summary "$LAST tests" $? "$W/tests_$LAST.log"
if [ "$LAST" != me ]; then timeout 90 me/attn_gpu_tests --gtest_filter='Decode*:KVCache*' > "$W/tests_me.log" 2>&1; summary "me decode tests" $? "$W/tests_me.log"; fi
echo "($((SECONDS - t0)) s)"; pack
# 2. the rows, rotated (µs; read floor)
R="--shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 32,12,12,64,4096,bf16
   --shape 32,12,12,64,4096,fp8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8 --shape 1,12,1,64,32768,bf16
   --shape 1,12,1,64,32768,fp8 --shape 1,32,8,128,32768,bf16 --shape 32,12,4,64,4096,bf16 --shape 32,12,1,64,4096,bf16
   --shape 1,16,16,128,32768,fp8 --shape 1,12,12,64,640,bf16 --shape 32,16,16,128,2048,int8 --shape 8,16,16,128,4096,int8"
row() { python3 -c "import json,sys; [print('$1', d['B'],d['H'],d['Hkv'],d['D'],d['ctx'],d['cache'],d['us'],d['read_us']) for d in map(json.loads, sys.stdin)]"; }
ORDER="f m me me m f m f me"; [ "$LAST" = mp ] && ORDER="f m me mp mp me m f me f m mp"
for b in $ORDER; do timeout 40 $b/bench_decode_attention $R 2>/dev/null | grep '"decode"' | row $b; done | tee "$W/rows.txt"
echo "($((SECONDS - t0)) s)"; pack
# 3. the plan knobs on me's grouped rows (the merge is cheaper now: more splits may pay)
G="--shape 1,12,1,64,32768,bf16 --shape 1,12,1,64,32768,fp8 --shape 1,12,4,64,32768,bf16 --shape 1,12,4,64,32768,int8
   --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 32,12,4,64,4096,bf16 --shape 32,12,1,64,4096,bf16"
for k in "" "--blocks-per-sm 1.5" "--blocks-per-sm 2" "--blocks-per-sm 3" "--mma-warps 8" "--mma-warps 8 --blocks-per-sm 2" "--merge-bytes 0" "--merge-bytes 1000000000" ""; do
  [ "$(left)" -ge 200 ] || break
  echo "== $k"; timeout 40 me/bench_decode_attention $k $G 2>/dev/null | grep '"decode"' | row me
done | tee "$W/knobs.txt"; pack
# 4. the decode step (GPT-2 124M, bf16 cache), alternated
for b in f $LAST f $LAST; do [ "$(left)" -ge 150 ] || break
  timeout 40 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8 --out runs/g_$b 2>&1 | grep -E "^cached" | sed "s/^/$b /"
done | tee "$W/generate.txt"; pack
# 5. Nsight Compute: me's combine on MQA (was 9.6 us under ncu) and the stall reasons of the grouped split kernel
i=0
for s in 1,12,1,64,32768,bf16 1,12,4,64,32768,bf16; do i=$((i+1)); [ "$(left)" -ge 60 ] || break
  timeout 100 ncu --clock-control none --cache-control all --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
    --page raw -k regex:decode_ --launch-skip 2 --launch-count 2 me/bench_decode_attention --shape $s --reps 1 > "$W/ncu_$i.txt" 2>&1
  echo "$s rc=$? ($((SECONDS - t0)) s)"; grep -E "decode_|gpu__time_duration.sum|issue_stalled.*per_issue_active" "$W/ncu_$i.txt" | sort -k3 -g | tail -14
done; pack
# 6. the rest of the candidate's GPU tests, if time is left
if [ "$(left)" -ge 100 ]; then timeout $(( $(left) - 20 )) $LAST/attn_gpu_tests --gtest_filter="-$DT:Flash*:Cases/Flash*:FlashVariants/*" > "$W/tests_rest.log" 2>&1; summary "$LAST other tests" $? "$W/tests_rest.log"; fi
echo "total $((SECONDS - t0)) s"
