#!/usr/bin/env bash
# Session 6, call 4: (1) branch fp8cast (helper's cast kernels): fp8 tests and the 124M step;
# (2) issue 14's table in the power-limited steady state: ours (v4 = 819d87f + kShifted) and
# cuDNN SDPA shape by shape, each series after 1500 ms of warm-up, SM clock sampled.
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
OUT=$O bash .gpucall/fp8cast.sh 2>&1 | grep -vE "^\[       OK" | grep -E "rc=|PASSED|FAILED|Failure|fp8 cast|bias grad|bench: |^matmul|^fp8_cast|^step|Expected|Which is|actual" | head -60
mkdir -p v4 && tar xzf build-carry/v4/bins.tgz -C v4
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv,noheader -lms 100 > $W/clk.csv 2>&1 & SPID=$!
WU=1500
for sh in "16,12,12,1024,64 full=" "4,12,12,4096,64 full=" "1,12,12,16384,64 full=" "8,16,16,2048,128 full=" \
          "2,16,16,8192,128 full=" "2,16,16,8192,128 full=1" "4,32,8,4096,128 full="; do
  set -- $sh; s=$1; full=${2#full=}
  IFS=, read -r B H Hkv T D <<< "$s"
  fl=""; [ -n "$full" ] && fl="--full"
  o=$(v4/bench_flash_attention --warmup-ms $WU $fl --shape $s 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')
  sd="$B,$H,$T,$D"; [ "$Hkv" != "$H" ] && sd="$sd,$Hkv"
  c=$(python3 scripts/bench_sdpa.py --backends cudnn --warmup-ms $WU $fl --shapes $sd 2>&1 | awk '$1 == "cudnn" {print $3, $5, $7}')
  echo "$s ${full:+non-causal} | ours f b fb: $o | cudnn: $c"
done | tee $W/steady.txt
kill $SPID
python3 - $W/clk.csv <<'PY'
import sys
rows=[l.strip().split(", ") for l in open(sys.argv[1]) if l.count(",")>=2]
c=[int(r[1].split()[0]) for r in rows if float(r[2].split()[0])>300]
print("busy samples", len(c), "SM MHz median", sorted(c)[len(c)//2] if c else "-", "min", min(c) if c else "-")
PY
tar czf "$O/w.tgz" -C "$W" .
