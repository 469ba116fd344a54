#!/usr/bin/env bash
# Session 26 call D (carry ["build-carry/s26a", "build-carry/s26d", ".gpucall/s26d.sh"]): f/ = main aa252af, h/ = branch
# s26-mha4 (85a9230: the 8-bit MHA direct kernel at 4 blocks per SM for D = 64). Tests, then main / mha4 / mha4 with the
# plan's 3 blocks per SM, rotated, L2 flushed.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w26d; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s26d.tgz.part" -C "$W" . && mv "$O/s26d.tgz.part" "$O/s26d.tgz"; }
trap pack EXIT
for t in s26a s26d; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 70 h/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*8_actbf16_H4_Hkv4_*:Decode/DecodeAttention.*8_actbf16_H12_Hkv12_*:DecodeAttentionGraph.*:DecodeAttentionAppend*' > "$W/t_mha4.log" 2>&1
echo "tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \]' "$W/t_mha4.log" | head -12 | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
SH="--shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,fp8 \
 --shape 32,12,12,64,4096,int8 --shape 32,12,12,64,4096,bf16 --shape 8,12,12,64,4096,int8 --shape 1,12,12,64,4096,fp8 \
 --shape 1,12,12,64,640,fp8"
for round in 1 2; do
  timeout 40 f/bench_decode_attention --reps 30 $SH > "$W/main_r$round.jsonl" 2>&1
  timeout 40 h/bench_decode_attention --reps 30 $SH > "$W/mha4_r$round.jsonl" 2>&1
  timeout 40 h/bench_decode_attention --reps 30 --blocks-per-sm 3 $SH > "$W/mha4bps3_r$round.jsonl" 2>&1
  echo "round $round ($((SECONDS - t0)) s)"; pack
done
python3 - "$W" <<'PY'
import json, sys, glob, os, collections
W = sys.argv[1]; rows = collections.defaultdict(dict)
for f in sorted(glob.glob(os.path.join(W, "*_r*.jsonl"))):
    tag = os.path.basename(f)[:-6]
    for line in open(f):
        try: d = json.loads(line)
        except Exception: continue
        if d.get("what") != "decode": continue
        key = "%s,%s,%s,%s,%s,%s" % (d.get("B"), d.get("H"), d.get("Hkv"), d.get("D"), d.get("ctx"), d.get("cache"))
        rows[key][tag] = d.get("us")
tags = sorted({t for r in rows.values() for t in r})
print("shape".ljust(24) + "".join(t.rjust(12) for t in tags))
for k, r in rows.items(): print(k.ljust(24) + "".join(("%.2f" % r[t] if t in r else "-").rjust(12) for t in tags))
PY
echo "total $((SECONDS - t0)) s"
