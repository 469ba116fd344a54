#!/usr/bin/env bash
# Session 30, call A (carry ["build-carry/s30a", ".gpucall/s30a.sh"]). sm_90a, stripped:
#   r/: branch s30-runahead (attnlab, attn_gpu_tests): greedy decode steps run ahead (decode_greedy_steps: the argmax
#       feeds the next step on the device; bench-generate and generate_cached decode runs of 16, one host wait a run);
#   l/: branch s29-long-split-bps (attnlab, attn_gpu_tests, bench_decode_attention): 3 blocks per SM for long bf16 MHA
#       caches; m/: main ee982d3 (attnlab, bench_decode_attention); input.txt for the HF export.
# 1. r/'s generation and trace tests; 2. the step at B = 1/8/32, main against run-ahead, two rounds; 3. run-ahead's B = 1
# profile; 4. HF generate() (static + compile) at B = 32 and 1, then main and run-ahead again; 5. call C of session 29:
# MHA rows main against l/, three rounds; l/'s decode tests; cuDNN on issue 17's two MHA rows; l/'s step. Env LIM (s).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w30a; mkdir -p "$W"; t0=$SECONDS
LIM=${LIM:-480}; left() { echo $((LIM - (SECONDS - t0))); }
pack() { tar czf "$O/s30a.tgz.part" -C "$W" . && mv "$O/s30a.tgz.part" "$O/s30a.tgz"; }
trap pack EXIT
tar xzf build-carry/s30a/bins.tgz || { echo "untar failed"; exit 1; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"
timeout 150 r/attn_gpu_tests --gtest_filter='Generate*:*KernelTrace*:PrefixLm*' > "$W/tests_r.log" 2>&1
echo "run-ahead tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_r.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_r.log") ok ($((SECONDS - t0)) s)"
grep -E '^\[  FAILED|SKIPPED \]' "$W/tests_r.log" | head; pack
gen() { local b=$1; shift; timeout 60 "$b" bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
  --no-baseline "$@" 2>&1 | grep -E '^cached|error' | sed -E 's/ +/ /g' | cut -c1-150; }
for r in 1 2; do for b in m r; do echo "== round $r $b"; gen $b/attnlab --batches 1,8,32; done; done | tee "$W/step.txt"
echo "step ($((SECONDS - t0)) s)"; pack
for b in m r; do mkdir -p "$W/p1$b"; timeout 60 $b/attnlab bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 \
  --kv-cache bf16 --no-baseline --batches 1 --profile --out "$W/p1$b" > "$W/p1$b/log.txt" 2>&1; echo "== profile B=1 $b"; tail -4 "$W/p1$b/decode_profile.md" | cut -c1-120; done; pack
mkdir -p .deps/data && cp input.txt .deps/data/
m/attnlab train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
m/attnlab export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
T=$(( $(left) - 150 )); [ "$T" -gt 200 ] && T=200; echo "HF gets $T s"
if [ "$T" -gt 60 ]; then
  timeout $T python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 32 1 --prompt 128 \
    --new 512 --modes static --repeats 1 --timeout $((T - 5)) 2>>"$W/hf.log" | tee "$W/hf_generate.json"
fi
for b in m r; do echo "== after HF $b"; gen $b/attnlab --batches 1,32; done | tee -a "$W/step.txt"; pack
echo "== s29c ($((SECONDS - t0)) s)"
S=""; for s in 1,12,12,64,32768 1,12,12,64,16384 1,12,12,64,4096 1,12,12,64,640 2,12,12,64,8192 4,12,12,64,4096 \
  8,12,12,64,4096 8,12,12,64,640 16,12,12,64,2048 32,12,12,64,4096 32,12,12,64,640 1,16,16,128,32768 4,32,32,128,4096; do S="$S --shape $s,bf16"; done
for r in 1 2 3; do for b in m l; do echo "== $b" >> "$W/mha.txt"; timeout 30 $b/bench_decode_attention --reps 40 $S >> "$W/mha.txt" 2>&1; done; done
python3 - "$W/mha.txt" <<'PY'
import json, sys, collections
who = ""; t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("=="): who = line.strip()[3:]; continue
    try: o = json.loads(line)
    except Exception: continue
    if o.get("what") == "decode": t[(o['B'], o['H'], o['D'], o['ctx'])].append((who, o['us'], o['frac_copy']))
for k, v in t.items():
    m = [u for w, u, f in v if w == "m"]; f = [u for w, u, f in v if w == "l"]
    print(f"B={k[0]:2d} H={k[1]:2d} D={k[2]:3d} ctx={k[3]:5d}  main {' '.join(f'{u:7.2f}' for u in m)}  branch {' '.join(f'{u:7.2f}' for u in f)}  ratio {min(f)/min(m):.3f}  frac {max(x for w,u,x in v if w=='l'):.3f}")
PY
pack
if [ "$(left)" -gt 60 ]; then timeout $(( $(left) - 40 )) l/attn_gpu_tests --gtest_filter='Decode/DecodeAttention.*bf16_act*:DecodeAttentionCudaCores*:DecodeAttentionMerge*:DecodeAttentionAppend*:DecodeAttentionGraph*:DecodeAttentionDefaultStream*:Generate*' > "$W/tests_l.log" 2>&1
echo "l tests exit $? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' "$W/tests_l.log" | tr '\n' ' ') $(grep -c '^\[       OK' "$W/tests_l.log") ok ($((SECONDS - t0)) s)"; grep -E '^\[  FAILED' "$W/tests_l.log" | head; pack; fi
if [ "$(left)" -gt 35 ]; then timeout 30 python3 scripts/bench_decode_sdpa.py --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/sdpa.txt" 2>&1; grep -h cudnn "$W/sdpa.txt" | cut -c1-150; fi
if [ "$(left)" -gt 15 ]; then echo "== l"; gen l/attnlab --batches 1,8,32 | tee -a "$W/step.txt"; fi
echo "total $((SECONDS - t0)) s"
