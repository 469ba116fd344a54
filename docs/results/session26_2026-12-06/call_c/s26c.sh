#!/usr/bin/env bash
# Session 26 call C (carry ["build-carry/s26a", "build-carry/s26b", ".gpucall/s26c.sh"]): one call for both
#  - g/ = branch s26-mha-ring (685f2c9): the MHA decode kernels through a per-lane cp.async ring (--mha-ring 2/3/4)
#    against main's (--mha-ring 0), tests then two rotated rounds;
#  - f/ = main aa252af: issue 17's rows, HF generate() beside ours, the step's profile (s26a.sh's steps).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w26c; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-560}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s26c.tgz.part" -C "$W" . && mv "$O/s26c.tgz.part" "$O/s26c.tgz"; }
trap pack EXIT
for t in s26a s26b; do tar xzf build-carry/$t/bins.tgz || { echo "untar $t failed"; exit 1; }; done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
# 1. the ring's correctness: 2/3/4 stages on every MHA case of bf16 activations, graph replay, the decode suite
timeout 120 g/attn_gpu_tests --gtest_filter='*MhaRing*:Decode/DecodeAttention.*:DecodeAttentionGraph*' > "$W/t_ring.log" 2>&1
echo "ring tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \]' "$W/t_ring.log" | head -12 | tr '\n' ' ') ($((SECONDS - t0)) s)"; pack
SH="--shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 --shape 1,12,12,64,32768,bf16 --shape 32,12,12,64,4096,fp8 \
 --shape 32,12,12,64,4096,int8 --shape 32,12,12,64,4096,bf16 --shape 1,16,16,128,32768,fp8 --shape 1,16,16,128,32768,bf16 \
 --shape 1,12,12,64,640,fp8 --shape 1,12,12,64,640,bf16 --shape 8,12,12,64,4096,int8"
ring_round() {
  for s in 0 2 3 4; do timeout 40 g/bench_decode_attention --reps 30 --mha-ring $s $SH > "$W/ring${s}_r$1.jsonl" 2>&1; done
  echo "ring round $1 ($((SECONDS - t0)) s)"; pack
}
ring_round 1
# 2. issue 17's decode rows (main), beside PyTorch's cuDNN
timeout 60 f/bench_decode_attention --shape 1,12,12,64,32768,bf16 --shape 1,12,12,64,32768,fp8 --shape 1,12,12,64,32768,int8 \
  --shape 32,12,12,64,4096,bf16 --shape 32,12,12,64,4096,fp8 --shape 32,12,12,64,4096,int8 --shape 1,12,4,64,32768,bf16 \
  --shape 1,12,1,64,32768,bf16 --shape 1,32,8,128,32768,bf16 --shape 1,32,8,128,32768,fp8 --shape 1,32,8,128,32768,int8 > "$W/decode.jsonl" 2>&1
timeout 60 python3 scripts/bench_decode_sdpa.py --shape 1,12,64,32768 --shape 32,12,64,4096 > "$W/decode_sdpa.txt" 2>&1
echo "decode ($((SECONDS - t0)) s)"; pack
ring_round 2
# 3. the step and HF generate() in the same call: ours before and after HF
gen() { timeout 60 $1/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline \
  --batches 1,8,32 2>&1 | grep -E '^cached'; }
{ echo "== before HF"; gen f; } > "$W/ours_beside_hf.txt"
mkdir -p .deps/data && cp f/input.txt .deps/data/
f/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
f/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
timeout $(( $(left) > 200 ? 200 : $(left) - 20 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 \
  --new 512 --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
{ echo "== after HF"; gen f; } >> "$W/ours_beside_hf.txt"
echo "hf ($((SECONDS - t0)) s)"; pack
python3 - "$W" <<'PY'
import json, sys, glob, os, collections
W = sys.argv[1]; rows = collections.defaultdict(dict)
for f in sorted(glob.glob(os.path.join(W, "ring*_r*.jsonl"))):
    tag = os.path.basename(f)[:-6]
    for line in open(f):
        try: d = json.loads(line)
        except Exception: continue
        if d.get("what") != "decode": continue
        key = "%s,%s,%s,%s,%s,%s" % (d.get("B"), d.get("H"), d.get("Hkv"), d.get("D"), d.get("ctx"), d.get("cache"))
        rows[key][tag] = d.get("us")
tags = sorted({t for r in rows.values() for t in r})
print("shape".ljust(26) + "".join(t.rjust(10) for t in tags))
for k, r in rows.items(): print(k.ljust(26) + "".join(("%.2f" % r[t] if t in r else "-").rjust(10) for t in tags))
PY
# 4. the step's kernels at B = 1 (if time is left)
[ "$(left)" -gt 45 ] && timeout 40 f/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline --batches 1 --profile --out runs/p1 > "$W/profile_1.txt" 2>&1 && cp runs/p1/decode_profile.md "$W/decode_profile_1.md"
echo "total $((SECONDS - t0)) s"
