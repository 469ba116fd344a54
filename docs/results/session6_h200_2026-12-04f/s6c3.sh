#!/usr/bin/env bash
# Session 6, call 3: v3 (819d87f + the no-ALiBi shift constant) flash tests; D=128 softcap beside
# mh; and why one shape's backward measures 2.66 ms alone but 2.96 ms as the last of five shapes:
# SM clock, power and temperature sampled every 50 ms through each run (nvidia-smi).
set -uo pipefail
O=${OUT:-/tmp/out}; W=/tmp/w; mkdir -p "$W" "$O"
mkdir -p v3 mh && tar xzf build-carry/v3/bins.tgz -C v3 && tar xzf build-carry/mh/bins.tgz -C mh
t0=$SECONDS
v3/attn_gpu_tests --gtest_filter='Flash*:*BackendVsCpu*:*VsCpu*' > $W/tests_v3.log 2>&1; echo "v3 flash tests rc=$? ($((SECONDS-t0)) s)"
grep -E "^\[  PASSED|^\[  FAILED" $W/tests_v3.log | head; grep -B2 -A6 "Failure" $W/tests_v3.log | head -30
for who in mh v3 mh v3; do
  for f in "" "--alibi" "--softcap 30"; do
    echo "$who D128 $f: $($who/bench_flash_attention --reps 10 --shape 2,16,16,8192,128 $f 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $2, $4, $6}')"
  done
done | tee $W/d128.txt
# clocks: a sampler through each run, its lines stamped with the run's name
sample() { nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader -lms 50 > "$W/clk_$1.csv" 2>&1 & echo $!; }
summ() { python3 - "$W/clk_$1.csv" "$1" <<'PY'
import sys
rows=[l.strip().split(", ") for l in open(sys.argv[1]) if l.count(",")>=4]
clk=[int(r[1].split()[0]) for r in rows]; pw=[float(r[2].split()[0]) for r in rows]
busy=[(c,p,r[4]) for c,p,r in zip(clk,pw,rows) if p>200]
if busy:
  cs=[b[0] for b in busy]; ps=[b[1] for b in busy]
  last=busy[-max(1,len(busy)//5):]
  print(f"{sys.argv[2]}: {len(busy)} busy samples, SM MHz min {min(cs)} median {sorted(cs)[len(cs)//2]} max {max(cs)}; last fifth median {sorted(b[0] for b in last)[len(last)//2]} MHz; power median {sorted(ps)[len(ps)//2]:.0f} W max {max(ps):.0f}; reasons {sorted(set(b[2] for b in busy))}")
else: print(sys.argv[2], "no busy samples", len(rows))
PY
}
run() { local name=$1; shift; local pid; pid=$(sample $name); sleep 0.3; "$@" > $W/run_$name.log 2>&1; kill $pid; wait $pid 2>/dev/null; summ $name; grep -E "^[0-9]+,|^cudnn" $W/run_$name.log; }
run five v3/bench_flash_attention
sleep 5
run single v3/bench_flash_attention --shape 2,16,16,8192,128
sleep 5
run long v3/bench_flash_attention --reps 200 --shape 2,16,16,8192,128
sleep 5
run cudnn python3 scripts/bench_sdpa.py --backends cudnn --shapes 2,16,8192,128
run cudnn_long python3 scripts/bench_sdpa.py --backends cudnn --reps 200 --shapes 2,16,8192,128
tar czf "$O/w.tgz" -C "$W" .
