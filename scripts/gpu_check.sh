#!/usr/bin/env bash
# Everything the GPU machine is for, in one call (device time is scarce):
#   scripts/gpu_check.sh [tests] [bench] [curves] [flash] [shakespeare] [xdevice] [sanitize] [variants] [decode]
#                        [speed] [generate] [hf] [ddp] [llmc] [report] [gpt2tok] [prefix] [loss] [fwdsanitize]
#                        [graphstep] [tf32] [fp32flash] [flashdropout] [shakespeareflash] [fp8quality]
#                        [sanitize14] [windowsweep] [flashtrace] [boundary] [decodesweep]
#                        (default: tests bench flash)
# Uses a carried build in $BUILD (default build) when it has the binaries, else builds one.
# $BASE (optional): an older build's folder, benchmarked beside it (before/after) in the llmc, flash
# and decode steps, and trained beside it in the loss step.
# The GPU machine has no libutf8proc-dev: carry .deps/include/utf8proc.h and
# .deps/lib/libutf8proc.a (copies of this machine's), as toml++ under .deps/include;
# step gpt2tok reads GPT-2's vocabulary from $GPT2_VOCAB, .deps/data/gpt2 or ../shared/data/gpt2.
# Writes logs and JSON under $OUT (default /tmp/attn_out) and prints a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/attn_out}; BUILD=${BUILD:-build}; mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(tests bench flash)
has() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
table=()
row() { table+=("$*"); }
# gpu_tests NAME FILTER: the GPU tests FILTER matches, logged to $OUT/NAME_tests.log; prints their
# failures and adds the row "NAME tests (exit RC): [  PASSED  ] ... [  FAILED  ] ...".
gpu_tests() {
  local log="$OUT/$1_tests.log" rc
  "$BUILD/attn_gpu_tests" --gtest_filter="$2" > "$log" 2>&1; rc=$?
  grep -E -A3 "Failure" "$log" | head -40
  row "$1 tests (exit $rc): $(grep -E '^\[  PASSED' "$log" | head -1) $(grep -E '^\[  FAILED  \] [0-9]+' "$log" | head -1)"
  return $rc
}
# sanitizer_row LABEL LOG TOOL FILTER [LIMIT]: compute-sanitizer TOOL on the GPU tests FILTER matches
# (stopped after LIMIT seconds; 0 or none: no limit), logged to $OUT/LOG; adds the row
# "LABEL: exit RC (its error or hazard summary) N ok" (N tests passed: 0 means nothing was checked).
sanitizer_row() {
  local log="$OUT/$2" rc
  timeout "${5:-0}" compute-sanitizer --tool "$3" --error-exitcode 1 "$BUILD/attn_gpu_tests" --gtest_filter="$4" > "$log" 2>&1; rc=$?
  row "$1: exit $rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)) $(grep -cE '^\[       OK' "$log") ok"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ ! -x "$BUILD/attnlab" ] || [ ! -x "$BUILD/attn_gpu_tests" ]; then
  echo "== building in $BUILD"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_CUDA=ON \
        -DTOMLPP_INCLUDE="$PWD/.deps/include" > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -B2 -A8 error "$OUT/build.log"; exit 1; }
fi
A="$BUILD/attnlab"

if has tests; then
  echo "== GPU tests"
  gpu_tests gpu '*'
fi

if has graphstep; then
  # The training step captured in a CUDA graph (device.cuda_graph): bit-exact against the separate
  # calls, and the tests of everything the capture touched (kernels, backend, generator's graph).
  echo "== captured training step: tests"
  gpu_tests graphstep '*TrainStepGraph*:Kernels*:TokenBuckets*:*Backend*:*VsCpu*:Generate*:Decode*:DataParallelCuda*'
fi

if has bench; then
  echo "== GPT-2 124M step benchmark (B=16, T=1024, bf16)"
  for impl in naive flash; do
    $A bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --json "$OUT/ours_$impl.json" 2>&1 | tail -1 | tee -a "$OUT/bench.log"
  done
  for mode in "math 0" "math 1" "flash 0" "flash 1"; do
    set -- $mode
    python3 scripts/torch_gpt.py bench --sdpa $1 --compile $2 2>>"$OUT/torch_bench.err" | tee -a "$OUT/bench.log" | tail -1
  done
  row "$(python3 - "$OUT/bench.log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
out = ["GPT-2 124M B=16 T=1024 bf16 | tokens/s | ms/step | peak GiB"]
for r in rows:
    who = f"ours {r['attention']}" if r.get("backend") else f"torch {r['attention']}{' compile' if r.get('compile') else ' eager'}"
    out.append(f"  {who:24s} | {r['tokens_per_s']:9.0f} | {r['step_ms']:7.1f} | {r['peak_bytes']/2**30:6.2f}")
print("\n".join(out))
PY
)"
fi

if has llmc; then
  # Issue 16: our GPT-2 124M step (B=16, T=1024, bf16) beside llm.c's train_gpt2cu (cuDNN and its
  # own attention) and torch.compile + cuDNN SDPA, all in this call; per-op profile of ours; with
  # NCU=1 also Nsight Compute's per-kernel durations of ours and of llm.c (2 steps each).
  echo "== GPT-2 124M step beside llm.c (B=16, T=1024, bf16)"
  LLMC=${LLMC:-.llmc}   # a writable copy of ../shared/anchors/llmc (carried)
  # mem_during NAME CMD...: CMD, with the largest nvidia-smi memory.used (MiB, sampled every 50 ms)
  # while it ran in $OUT/mem_NAME.txt: device memory measured the same way for us and for llm.c
  mem_during() {
    local name=$1; shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$OUT/mem_$name.samples" 2>/dev/null &
    local pid=$! rc
    "$@"; rc=$?
    kill $pid 2>/dev/null; wait $pid 2>/dev/null
    sort -n "$OUT/mem_$name.samples" | tail -1 > "$OUT/mem_$name.txt"
    return $rc
  }
  # The timed runs replay the captured step (device.cuda_graph, the default); --profile times each
  # call and so runs them uncaptured: its per-op table comes from a run of its own.
  for impl in flash naive; do
    mem_during "$impl" $A bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --json "$OUT/step_$impl.json" \
      > "$OUT/step_$impl.log" 2>&1 || tail -3 "$OUT/step_$impl.log"
    $A bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --profile --json "$OUT/step_${impl}_profile.json" \
      > "$OUT/step_${impl}_profile.log" 2>&1 || tail -3 "$OUT/step_${impl}_profile.log"
    if [ "$impl" = flash ]; then  # the same binary without the graph: what the capture gains
      $A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --device.cuda_graph=false \
        --json "$OUT/step_flash_calls.json" > "$OUT/step_flash_calls.log" 2>&1 || tail -3 "$OUT/step_flash_calls.log"
    fi
    if [ -n "${BASE:-}" ] && [ -x "$BASE/attnlab" ]; then
      "$BASE/attnlab" bench -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --json "$OUT/step_base_$impl.json" \
        > "$OUT/step_base_$impl.log" 2>&1 || tail -3 "$OUT/step_base_$impl.log"
    fi
  done
  python3 scripts/torch_gpt.py bench --sdpa cudnn --compile 1 2>>"$OUT/torch_llmc.err" | tail -1 > "$OUT/step_torch.json"
  if [ -f "$LLMC/run.sh" ]; then
    for only in cudnn nocudnn; do  # one at a time, so that each has its own memory figure
      mem_during "llmc_$only" env LLMC_ONLY=$only LLMC_LOGDIR="$OUT" bash "$LLMC/run.sh" > "$OUT/llmc_$only.log" 2>&1 \
        || echo "llm.c ($only) failed (see llmc_$only.log)"
    done
  else
    echo "no llm.c copy at $LLMC (cp -r ../shared/anchors/llmc .llmc and carry it)"
  fi
  if [ "${NCU:-0}" = 1 ] && command -v ncu >/dev/null; then
    ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel \
      $A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --warmup 1 --steps 1 > "$OUT/ncu_ours.txt" 2>&1
    ld=$(grep -m1 '^LD_LIBRARY_PATH=' "$OUT/llmc_cudnn.log" | cut -d= -f2-)
    (cd "$LLMC" && mkdir -p ncu_id && LD_LIBRARY_PATH="$ld" ncu --clock-control none --metrics gpu__time_duration.sum \
      --print-summary per-kernel ./train_gpt2cu -i data/train.bin -j data/val.bin -e d12 -b 16 -t 1024 -d 16384 -x 2 \
      -v 1000000 -m 1 -s 0 -h 0 -n 0 -y 0 -pi fs -pf ncu_id -pn 1 -pr 0) > "$OUT/ncu_llmc.txt" 2>&1
    for who in ours llmc; do python3 scripts/ncu_summary.py "$OUT/ncu_$who.txt" --top 40 > "$OUT/ncu_${who}_table.txt"; done
  fi
  row "$(python3 - "$OUT" <<'PY'
import json, os, re, sys
d = sys.argv[1]
def load(name):  # a JSON file (bench --json), or the last JSON line of a log (torch_gpt.py)
    try:
        text = open(os.path.join(d, name)).read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        lines = [l for l in text.splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
def llmc(label):
    try:
        # the mean of steps 11-40 (the first ten include llm.c's warm-up)
        m = re.findall(r"steps (\d+)-\d+: mean ([\d.]+) ms/step = (\d+) tok/s", open(os.path.join(d, f"llmc_{label}_summary.txt")).read())
        m = [x for x in m if x[0] == "11"] or m
        return (float(m[-1][1]), float(m[-1][2])) if m else None
    except OSError:
        return None
ref = llmc("cudnn")
def device_mib(name):  # the largest nvidia-smi memory.used while that run ran (mem_during)
    try:
        return open(os.path.join(d, f"mem_{name}.txt")).read().strip() or "-"
    except OSError:
        return "-"
out = ["GPT-2 124M B=16 T=1024 bf16 | ms/step | tokens/s | peak GiB | device MiB | vs llm.c cuDNN"]
def line(who, ms, tps, peak, mib="-"):
    ratio = f"{tps / ref[1]:.3f}" if ref else "-"
    out.append(f"  {who:28s} | {ms:7.2f} | {tps:9.0f} | {peak:8s} | {mib:>6s} | {ratio}")
for label, who in (("cudnn", "llm.c (cuDNN attention)"), ("nocudnn", "llm.c (own attention)")):
    r = llmc(label)
    if r: line(who, r[0], r[1], "-", device_mib(f"llmc_{label}"))
mem_of = {"step_flash.json": "flash", "step_naive.json": "naive"}
for name, who in (("step_flash.json", "attnlab flash"), ("step_flash_calls.json", "attnlab flash, no graph"),
                  ("step_naive.json", "attnlab naive"),
                  ("step_base_flash.json", "attnlab flash (BASE)"), ("step_base_naive.json", "attnlab naive (BASE)"),
                  ("step_torch.json", "torch.compile + cuDNN SDPA")):
    r = load(name)
    if r and "tokens_per_s" in r:
        line(who, r["step_ms"], r["tokens_per_s"], f"{r['peak_bytes'] / 2**30:.2f}", device_mib(mem_of.get(name, "")))
print("\n".join(out))
PY
)"
fi

if has speed; then
  echo "== step speed: ours (flash, --profile) vs torch.compile + flash SDPA, GPT-2 124M bf16, same call"
  for shape in "1024 16" "4096 4"; do
    set -- $shape
    $A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" --training.seq_len=$1 --training.batch_size=$2 \
      --model.block_size=$1 --profile --json "$OUT/speed_ours_T$1.json" > "$OUT/speed_ours_T$1.log" 2>&1 \
      || tail -3 "$OUT/speed_ours_T$1.log"
    python3 scripts/torch_gpt.py bench --sdpa flash --compile 1 --batch $2 --seq $1 2>>"$OUT/speed_torch.err" \
      | tail -1 > "$OUT/speed_torch_T$1.json"
  done
  row "$(python3 - "$OUT" <<'PY'
import json, os, sys
out = ["speed (bf16 flash) | ours tok/s GiB | torch.compile+flash tok/s GiB | ours/torch | top of our profile (ms)"]
for T, B in ((1024, 16), (4096, 4)):
    try:
        o = json.load(open(os.path.join(sys.argv[1], f"speed_ours_T{T}.json")))
        t = json.loads(open(os.path.join(sys.argv[1], f"speed_torch_T{T}.json")).read() or "{}")
        cats = sorted(o["profile"]["categories"].items(), key=lambda kv: -kv[1]["ms"])[:4]
        top = " ".join(f"{k}={v['ms']:.1f}" for k, v in cats)
        tt = t.get("tokens_per_s", float("nan"))
        out.append(f"  T={T} B={B} | {o['tokens_per_s']:7.0f} {o['peak_bytes']/2**30:5.2f} | "
                   f"{tt:7.0f} {t.get('peak_bytes', 0)/2**30:5.2f} | {o['tokens_per_s']/tt:5.3f} | "
                   f"step={o['profile']['step_ms']:.1f} {top}")
    except Exception as e:
        out.append(f"  T={T} B={B} | missing result ({e})")
print("\n".join(out))
PY
)"
fi

if has shakespeare; then
  echo "== shakespeare_char (nanoGPT config, bf16): ours, then PyTorch"
  mkdir -p runs
  t0=$(date +%s.%N)
  $A train -c configs/shakespeare_char.toml \
     --data.inputs='[".deps/data/input.txt"]' --checkpoint.interval=0 2>&1 | tee "$OUT/ours_shakespeare.log" | grep -E "val loss|done|error"
  python3 -c "print(round($(date +%s.%N) - $t0, 1))" > "$OUT/ours_shakespeare.time"
  python3 scripts/torch_gpt.py shakespeare --data .deps/data/input.txt --sdpa ${TORCH_SDPA:-flash} --compile ${TORCH_COMPILE:-1} \
     2>&1 | tee "$OUT/torch_shakespeare.log" | tail -2
  row "shakespeare_char: ours $(grep -o 'val loss [0-9.]*' "$OUT/ours_shakespeare.log" | tail -1) in $(cat "$OUT/ours_shakespeare.time")s; torch $(tail -1 "$OUT/torch_shakespeare.log")"
fi

if has flashdropout; then
  # Attention dropout inside the flash kernels: the kernels against float64 with the same mask,
  # the whole model against the CPU, the captured step, and the registry's acceptance.
  echo "== flash attention dropout: tests"
  gpu_tests flashdropout '*FlashDropout*:*VsCpu*:FlashVariantsBackendVsCpu*:*TrainStepGraph*:CudaAttentionOptions*'
fi

if has shakespeareflash; then
  # nanoGPT's shakespeare_char (attention dropout 0.2) with flash attention, beside naive: the best
  # val loss of each, the mean of the logged training tokens/s (metrics.jsonl) and the wall time.
  echo "== shakespeare_char with attention dropout 0.2: flash, then naive"
  for impl in flash naive; do
    $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --attention.impl=\"$impl\" \
      --checkpoint.interval=0 --training.out_dir=\"runs/scdrop_$impl\" --logging.progress=false > "$OUT/scdrop_$impl.log" 2>&1
    best=$(grep -o 'val loss [0-9.]*' "$OUT/scdrop_$impl.log" | awk '{print $3}' | sort -g | head -1)
    cp "runs/scdrop_$impl/metrics.jsonl" "$OUT/scdrop_$impl.jsonl" 2>/dev/null
    tps=$(python3 -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
t = [x["tokens_per_s"] for x in r if "tokens_per_s" in x]
print(round(sum(t) / len(t)) if t else "?")' "$OUT/scdrop_$impl.jsonl" 2>/dev/null)
    row "shakespeare_char, attention dropout 0.2, $impl: best val loss ${best:-none}, mean ${tps:-?} tok/s; $(grep -o '[0-9.]*s total' "$OUT/scdrop_$impl.log")"
  done
fi

if has curves; then
  echo "== loss curves, naive vs flash (bf16, same seed and data)"
  for impl in naive flash; do
    $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --model.attn_dropout=0.0 \
      --attention.impl=\"$impl\" --training.max_iters=1000 --training.out_dir=\"runs/sc_$impl\" --checkpoint.interval=0 \
      --logging.progress=false > "$OUT/curve_sc_$impl.log" 2>&1
    $A train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --attention.impl=\"$impl\" \
      --training.max_iters=200 --training.eval_interval=100 --training.out_dir=\"runs/g2_$impl\" --checkpoint.interval=0 \
      > "$OUT/curve_g2_$impl.log" 2>&1
  done
  for run in sc g2; do
    row "$run val loss naive: $(grep -o 'val loss [0-9.]*' "$OUT/curve_${run}_naive.log" | cut -d' ' -f3 | tr '\n' ' ')"
    row "$run val loss flash: $(grep -o 'val loss [0-9.]*' "$OUT/curve_${run}_flash.log" | cut -d' ' -f3 | tr '\n' ' ')"
  done
fi

if has xdevice; then
  echo "== checkpoints across devices: train on the GPU (bf16, flash), eval and sample on GPU and CPU"
  $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --attention.impl=\"flash\" --model.attn_dropout=0.0 \
    --training.max_iters=300 --training.eval_interval=0 --training.out_dir=\"runs/xdev\" > "$OUT/xdevice.log" 2>&1
  for dev in cuda cpu; do
    $A eval --checkpoint runs/xdev --device.backend=$dev --training.eval_iters=4 --device.threads=8 2>&1 | tee -a "$OUT/xdevice.log"
    $A sample --checkpoint runs/xdev --device.backend=$dev --sample.num_samples=1 --sample.max_new_tokens=60 \
      --sample.temperature=0 2>/dev/null > "$OUT/sample_$dev.txt"
  done
  cmp -s "$OUT/sample_cuda.txt" "$OUT/sample_cpu.txt" && same=identical || same=different
  row "checkpoint GPU->CPU: $(grep -o 'val loss [0-9.]*' "$OUT/xdevice.log" | tr '\n' ' ') greedy samples $same"
  cat "$OUT/sample_cuda.txt" >> "$OUT/xdevice.log"; rm -f "$OUT"/sample_*.txt
fi

if has flash && [ -x "$BUILD/bench_flash_attention" ]; then
  echo "== attention kernels"
  # Every series after WU ms of warm-up, ours and PyTorch's alike: the H200 lowers its clock at
  # its 700 W limit within about a second at head dim 128, so unwarmed series compare a cool GPU
  # with a throttled one (docs/RESULTS.md, session 6).
  WU="--warmup-ms ${FLASH_WARMUP_MS:-1500}"
  "$BUILD/bench_flash_attention" $WU ${FLASH_ARGS:-} 2>&1 | tee "$OUT/attention_bench.log"
  if [ -n "${BASE:-}" ] && [ -x "$BASE/bench_flash_attention" ]; then  # old kernels, same call
    "$BASE/bench_flash_attention" $WU ${FLASH_ARGS:-} > "$OUT/attention_bench_base.log" 2>&1
    row "flash f+b ms, new | base ($BASE):
$(paste -d'|' <(awk 'NF > 6 && $1 ~ /,/ {print $1, $6}' "$OUT/attention_bench.log") \
               <(awk 'NF > 6 && $1 ~ /,/ {print $6}' "$OUT/attention_bench_base.log"))"
  fi
  python3 scripts/bench_sdpa.py $WU ${SDPA_ARGS:-} 2>&1 | tee -a "$OUT/attention_bench.log" | grep -E "^(flash|cudnn) "
  # Issue 14's other rows: non-causal (2,16,8192,128) and GQA (4,32,8,4096,128; PyTorch enable_gqa).
  if [ -z "${FLASH_ARGS:-}" ]; then
    "$BUILD/bench_flash_attention" $WU --full --shape 2,16,16,8192,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D" {print $0, "non-causal"}' \
      | tee -a "$OUT/attention_bench.log"
    "$BUILD/bench_flash_attention" $WU --shape 4,32,8,4096,128 2>&1 | awk '$1 ~ /,/ && $1 != "B,H,Hkv,T,D"' | tee -a "$OUT/attention_bench.log"
    python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed 's/$/ non-causal/' \
      | tee -a "$OUT/attention_bench.log"
    python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 4,32,4096,128,8 2>&1 | grep "^cudnn" | tee -a "$OUT/attention_bench.log"
  fi
fi

if has variants; then
  echo "== flash masks and score modifications: tests, then T=16384 causal vs window 1024"
  # FlashVariants*: masks and modifications; *BackendVsCpu*: whole model; *FlashAttention*: the
  # unmasked kernels, whose loop bounds and masks this work rewrote.
  # CudaAttentionOptions*: flash accepts the masks and attention dropout, naive refuses the masks.
  gpu_tests variants 'FlashVariants*:*BackendVsCpu*:*FlashAttention*:CudaAttentionOptions*'
  vb="$BUILD/bench_flash_attention --det --reps 10 --shape 1,12,12,16384,64"
  $vb > "$OUT/variants_bench.log" 2>&1; $vb --window 1024 >> "$OUT/variants_bench.log" 2>&1; cat "$OUT/variants_bench.log"
  # columns of a shape row: name fwd TF bwd TF f+b TF MB det-bwd TF
  read -r fb_c det_c fb_w det_w <<< "$(awk '$1 == "1,12,12,16384,64" {printf "%s %s ", $6, $9}' "$OUT/variants_bench.log")"
  row "variants: T=16384 f+b causal ${fb_c:-?} ms, window 1024 ${fb_w:-?} ms, speedup $(python3 -c "print(f'{$fb_c/$fb_w:.1f}x')" 2>/dev/null || echo ?) (det bwd ${det_c:-?} vs ${det_w:-?} ms)"
fi

if has windowsweep; then
  # Issue 14's window target, as a bound: f+b at T=16384 D=64 for windows 128 ... 8192 and causal, then
  # the fit f+b = a + b x (mean key blocks per 128-row query tile) over the windows. Printed: the
  # measured causal / window-1024 ratio, and the most it could be with a = 0 (causal / (b x 8.72)).
  echo "== window sweep at 1,12,12,16384,64"
  for w in 128 256 512 1024 2048 4096 8192 0; do
    "$BUILD/bench_flash_attention" --reps 10 --shape 1,12,12,16384,64 $([ $w -gt 0 ] && echo --window $w) 2>&1 \
      | awk -v w=$w '$1 == "1,12,12,16384,64" {print w, $2, $4, $6}'
  done | tee "$OUT/window_sweep.txt"
  row "$(python3 - "$OUT/window_sweep.txt" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 4]
tiles = 16384 // 128
blocks = lambda w: sum(min(i + 1, int(w) // 128 + 1) for i in range(tiles)) / tiles  # window w > 0
win = [(blocks(r[0]), r[3]) for r in rows if r[0] > 0]
causal = [r[3] for r in rows if r[0] == 0]
if len(win) < 2 or not causal:
    print("window sweep: too few rows (see window_sweep.txt)"); sys.exit()
n = len(win); mx = sum(x for x, _ in win) / n; my = sum(y for _, y in win) / n
b = sum((x - mx) * (y - my) for x, y in win) / sum((x - mx) ** 2 for x, _ in win); a = my - b * mx
w1024 = dict((r[0], r[3]) for r in rows).get(1024.0)
print(f"window sweep: f+b = {a:.4f} ms + {b:.5f} ms x blocks/tile; causal {causal[0]:.3f} ms / window 1024 "
      f"{w1024} ms = {causal[0] / w1024:.2f}x; with no fixed cost at most {causal[0] / (b * blocks(1024)):.2f}x")
PY
)"
fi

if has flashtrace; then
  # Where one forward+backward call's time goes, kernel by kernel (bench_flash_attention --trace: the CUPTI
  # kernel trace), on issue 14's open rows: T=16384 D=64 causal, window 1024 and soft-capping 30, and T=4096.
  echo "== flash kernel traces"
  for args in "1,12,12,16384,64" "1,12,12,16384,64 --window 1024" "1,12,12,16384,64 --softcap 30" "4,12,12,4096,64"; do
    read -r shape extra <<< "$args"
    "$BUILD/bench_flash_attention" --reps 10 --warmup-ms 300 --trace 5 --shape $shape $extra 2>&1
  done | tee "$OUT/flash_trace.txt"
  row "flashtrace: $(grep -c '^trace of' "$OUT/flash_trace.txt") traces, $(grep -c 'trace of .*error' "$OUT/flash_trace.txt") errors (flash_trace.txt)"
fi

if has decodesweep; then
  # Issue 17: each decode kernel's time as a fixed part plus a part per byte, beside a plain read of the same bytes
  # (B = 1, contexts 640 .. 32768; bf16 / int8 / fp8 MHA, bf16 GQA 12/4 and MQA 12/1), fitted by
  # scripts/fit_decode_sweep.py: where a kernel loses to the read, at its start and end or per byte.
  echo "== decode sweep: fixed and per-byte cost against a plain read"
  [ -x "$BUILD/bench_decode_attention" ] || cmake --build "$BUILD" -j"$(nproc)" --target bench_decode_attention > "$OUT/build_decode.log" 2>&1
  sweep=(); for c in 640 2048 8192 32768; do
    for d in bf16 int8 fp8; do sweep+=(--shape 1,12,12,64,$c,$d); done
    sweep+=(--shape 1,12,4,64,$c,bf16 --shape 1,12,1,64,$c,bf16)
  done
  "$BUILD/bench_decode_attention" "${sweep[@]}" > "$OUT/decode_sweep.jsonl" 2> "$OUT/decode_sweep.err"
  python3 scripts/fit_decode_sweep.py "$OUT/decode_sweep.jsonl" | tee "$OUT/decode_sweep_fit.md"
  row "decodesweep: $(grep -c '^| [0-9]' "$OUT/decode_sweep_fit.md") fitted kinds (decode_sweep_fit.md)"
fi

if has prefix; then
  echo "== attention variants as plug-ins (issue 15): prefix-LM vs float64, the registry's refusals, GPT-2 124M causal vs prefix-LM"
  # FlashVariants*: every variant incl. prefix_lm* (fwd+bwd, bf16/fp32, det); PrefixLm*: flash prefill + decode
  # kernel vs float64 recompute; the rest: the kernels and paths the variant refactor touched.
  gpu_tests prefix 'FlashVariants*:PrefixLm*:CudaAttentionOptions*:BackendErrors*:*BackendVsCpu*:*FlashAttention*:Generate*:Decode*'
  : > "$OUT/prefix_bench.log"
  for extra in "" "--attention.prefix_lm=true --attention.prefix_len=512"; do
    $A bench -c configs/gpt2_124m.toml --attention.impl=\"flash\" $extra 2>&1 | tail -1 | tee -a "$OUT/prefix_bench.log"
  done
  row "prefix-LM bench causal | prefix-LM 512: $(paste -sd'|' "$OUT/prefix_bench.log")"
fi

if has sanitize; then
  echo "== compute-sanitizer"
  for tool in memcheck racecheck; do
    sanitizer_row "compute-sanitizer $tool" "sanitize_$tool.log" $tool 'Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv2_D64_*'
  done
fi

if has fwdsanitize; then
  # The TMA / mbarrier / ping-pong forward (issue 14): memory, shared-memory races and barrier
  # use, on T=77 and T=1025 with GQA/MQA and window + ALiBi + softcap (backward runs too).
  echo "== compute-sanitizer on the flash forward"
  filter='Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv1_D128_causal:Cases/FlashAttention.MatchesFloat64Reference/T1025_H4_Hkv2_D64_full:FlashVariants/FlashVariants.MatchesFloat64Reference/window_alibi_softcap'
  for tool in memcheck racecheck synccheck; do
    sanitizer_row "fwd compute-sanitizer $tool" "fwdsanitize_$tool.log" $tool "$filter"
  done
fi

if has sanitize14; then
  # Issue 14, acceptance 1: memcheck and racecheck on T=77 and T=1025 with GQA and window +
  # soft-capping, forward and backward (each test runs the bf16, deterministic, fp32 and tf32
  # kernels), one process per test and tool so that a slow one loses only itself.
  echo "== compute-sanitizer, window + softcap with GQA"
  for t in window_softcap_T77 window_softcap_T77_D128 window_alibi_softcap window_softcap_D128; do
    for tool in memcheck racecheck; do
      sanitizer_row "compute-sanitizer $tool $t" "san_${t}_$tool.log" $tool \
        "FlashVariants/FlashVariants.MatchesFloat64Reference/$t" "${SANITIZE_TIMEOUT:-150}"
    done
  done
fi

if has decode; then
  echo "== decode attention over a KV cache: tests, then ours vs PyTorch SDPA (L2 flushed by a read, GB/s of cache read)"
  gpu_tests decode 'Decode*:KVCache*'
  [ -x "$BUILD/bench_decode_attention" ] || cmake --build "$BUILD" -j"$(nproc)" --target bench_decode_attention > "$OUT/build_decode.log" 2>&1
  # every shape of issue 17 (MHA, GQA, MQA; bf16, fp8, int8), passed to both binaries so that
  # the base (whose default list may be shorter) times the same rows
  DECODE_SHAPES=""
  for s in 1,12,12,64,32768,bf16 32,12,12,64,4096,bf16 1,12,12,64,32768,fp8 32,12,12,64,4096,fp8 \
           1,12,12,64,32768,int8 32,12,12,64,4096,int8 1,12,4,64,32768,bf16 32,12,4,64,4096,bf16 \
           1,12,4,64,32768,int8 1,32,8,128,32768,bf16 1,32,8,128,32768,fp8 1,32,8,128,32768,int8 \
           1,12,1,64,32768,bf16 1,12,1,64,32768,fp8; do DECODE_SHAPES="$DECODE_SHAPES --shape $s"; done
  DECODE_ARGS=${DECODE_ARGS:-$DECODE_SHAPES}
  decode_table() {  # us of two bench outputs, row by row: decode_table NEW OTHER
    python3 - "$1" "$2" <<'PY'
import json, sys
def rows(p):
    return {(d["B"], d["H"], d["Hkv"], d["D"], d["ctx"], d["cache"]): d["us"] for d in
            (json.loads(l) for l in open(p) if l.startswith("{")) if d.get("who") == "ours" and "us" in d}
new, base = rows(sys.argv[1]), rows(sys.argv[2])
print("\n".join(f"  {','.join(map(str, k))}: {new[k]:.2f} | {base[k]:.2f} (other/new {base[k] / new[k]:.3f})"
                for k in new if k in base))
PY
  }
  "$BUILD/bench_decode_attention" $DECODE_ARGS > "$OUT/decode_bench.jsonl" 2> "$OUT/decode_bench.err"
  # the CUDA-core split kernel of the same build (fp32 activations use it), same call
  "$BUILD/bench_decode_attention" $DECODE_ARGS --cuda-cores > "$OUT/decode_bench_cuda_cores.jsonl" 2>> "$OUT/decode_bench.err" &&
    row "decode us, tensor cores | cuda cores (same build):
$(decode_table "$OUT/decode_bench.jsonl" "$OUT/decode_bench_cuda_cores.jsonl")"
  if [ -n "${BASE:-}" ] && [ -x "$BASE/bench_decode_attention" ]; then  # old kernel, same call
    "$BASE/bench_decode_attention" $DECODE_ARGS > "$OUT/decode_bench_base.jsonl" 2>> "$OUT/decode_bench.err"
    row "decode us, new | base ($BASE):
$(decode_table "$OUT/decode_bench.jsonl" "$OUT/decode_bench_base.jsonl")"
  fi
  python3 scripts/bench_decode_sdpa.py >> "$OUT/decode_bench.jsonl" 2>> "$OUT/decode_bench.err"
  tail -3 "$OUT/decode_bench.err"
  row "$(python3 - "$OUT/decode_bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
dec = [r for r in rows if r.get("what") == "decode"]
# (each process measures its own copy bandwidth; the time ratio compares the same bytes directly)
out = ["decode B,H,Hkv,D,ctx,cache | ours us, GB/s (% of copy) | read floor us | torch best us, GB/s (% of its copy) | torch us / ours us"]
for r in (r for r in dec if r["who"] == "ours"):
    key = (r["B"], r["H"], r["Hkv"], r["D"], r["ctx"], r["cache"])
    ours = f"{r['us']:7.2f} {r['gbps']:5.0f} ({100 * r['frac_copy']:4.1f}%)" if "gbps" in r else "error: " + r.get("error", "?")
    peers = [p for p in dec if p["who"] != "ours" and "gbps" in p
             and (p["B"], p["H"], p["Hkv"], p["D"], p["ctx"], p["cache"]) == key]
    best = max(peers, key=lambda p: p["gbps"], default=None)
    torch = f"{best['us']:7.2f} {best['gbps']:5.0f} ({100 * best['frac_copy']:4.1f}%) {best['who']}" if best else "-"
    ratio = f"{best['us'] / r['us']:.3f}" if best and "us" in r else "-"
    floor = f"{r['read_us']:7.2f}" if "read_us" in r else "-"  # a plain read of the same bytes, same timing
    out.append(f"  {','.join(map(str, key)):26s} | {ours} | {floor} | {torch} | {ratio}")
print("\n".join(out))
PY
)"
fi

if has boundary; then
  # What a dependent stage of the decode step costs: a chain of PDL launches, plain graph launches,
  # or grid barriers inside one persistent kernel (tests/gpu/bench_step_boundary.cu), empty and
  # with a dependent L2 read; us per stage at 132..660 blocks.
  echo "== decode-step stage boundaries"
  [ -x "$BUILD/bench_step_boundary" ] || cmake --build "$BUILD" -j"$(nproc)" --target bench_step_boundary > "$OUT/build_boundary.log" 2>&1
  { "$BUILD/bench_step_boundary" --empty; "$BUILD/bench_step_boundary"; } > "$OUT/boundary.jsonl" 2>&1
  row "$(python3 - "$OUT/boundary.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
modes = ["pdl", "graph", "persistent_grouped", "persistent_flat"]
out = ["stage boundary us (empty / with an L2 read) | " + " | ".join(modes)]
for b in sorted({r["blocks"] for r in rows}):
    cell = lambda m, e: next((f"{r['us_per_stage']:.2f}" for r in rows if r["blocks"] == b and r["mode"] == m and r["empty"] == e), "-")
    out.append(f"  {b:4d} blocks | " + " | ".join(f"{cell(m, True)} / {cell(m, False)}" for m in modes))
print("\n".join(out))
PY
)"
fi

if has loss; then
  # Issue 16, acceptance 2: 200 steps of GPT-2 124M on shakespeare BPE, same seed, flash and naive,
  # this build beside $BASE (an older build); train loss step by step and val loss every 50 steps.
  echo "== 200-step loss curves, new vs base"
  LOSS_INPUT=${LOSS_INPUT:-.deps/data/input.txt}
  for impl in flash naive; do for who in new base; do
    bin=$A; [ $who = base ] && bin="${BASE:-}/attnlab"; [ -x "$bin" ] || continue
    "$bin" train -c configs/gpt2_124m.toml --attention.impl=\"$impl\" --training.max_iters=200 \
      --training.eval_interval=50 --training.log_interval=1 --data.inputs="[\"$LOSS_INPUT\"]" \
      --data.dir=runs/data/loss_$who --training.out_dir=runs/loss_${impl}_$who > "$OUT/loss_${impl}_$who.log" 2>&1 \
      || tail -3 "$OUT/loss_${impl}_$who.log"
    cp runs/loss_${impl}_$who/metrics.jsonl "$OUT/loss_${impl}_$who.jsonl" 2>/dev/null
  done; done
  row "$(python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    path = f"{out}/loss_{name}.jsonl"
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []
lines = ["200-step loss, new vs base | max rel train-loss diff (step) | val losses new / base"]
for impl in ("flash", "naive"):
    a, b = load(impl + "_new"), load(impl + "_base")
    la = {d["step"]: d["loss"] for d in a if "loss" in d}; lb = {d["step"]: d["loss"] for d in b if "loss" in d}
    common = sorted(set(la) & set(lb))
    if not common: lines.append(f"  {impl}: no pair of runs"); continue
    rel, step = max((abs(la[s] - lb[s]) / lb[s], s) for s in common)
    val = lambda m: " ".join(f"{d['val_loss']:.4f}" for d in m if "val_loss" in d)
    lines.append(f"  {impl}: {rel:.4f} ({step}) | {val(a)} / {val(b)}")
print("\n".join(lines))
PY
)"
fi

if has hf; then
  echo "== HF GPT2 export: loss parity in fp32 (issue 9, acceptance 5) and HF generate() speed in bf16"
  $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --device.precision=\"fp32\" \
    --training.max_iters=200 --training.eval_interval=0 --training.out_dir=\"runs/hf_sc\" --checkpoint.interval=0 \
    --logging.progress=false > "$OUT/hf.log" 2>&1
  $A export-hf runs/hf_sc runs/hf_sc_export >> "$OUT/hf.log" 2>&1
  val=runs/data/shakespeare_char/val_000.bin
  $A loss --checkpoint runs/hf_sc --tokens $val --batch 8 --seq 256 --device.precision=\"fp32\" \
    > "$OUT/hf_loss_ours.json" 2>>"$OUT/hf.log"
  python3 scripts/hf_generate.py loss --hf runs/hf_sc_export --tokens $val --batch 8 --seq 256 \
    --ours "$OUT/hf_loss_ours.json" 2>>"$OUT/hf.log" | tee "$OUT/hf_loss.json"
  row "hf loss (shakespeare_char 200 steps, fp32, 8x256 val tokens): $(python3 - "$OUT/hf_loss.json" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
r = json.loads(lines[-1]) if lines else {"error": "no output (see hf.log)"}
if "rel_diff" in r:
    print("ours %.6f hf %.6f rel %.2e (transformers %s)" % (r["ours"], r["loss"], r["rel_diff"], r["transformers"]))
else:
    print(r.get("skipped") or r.get("error") or r)
PY
)"
  $A train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false \
    >> "$OUT/hf.log" 2>&1
  $A export-hf runs/hf_g2 runs/hf_g2_export >> "$OUT/hf.log" 2>&1
  python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 --new 512 \
    2>>"$OUT/hf.log" | tee "$OUT/hf_generate.json"
  row "$(python3 - "$OUT/hf_generate.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
out = ["HF GPT2 124M-shaped generate, bf16, prompt 128, 512 new | tokens/s | ms/token | peak GiB"]
for r in rows:
    if "tokens_per_s" in r:
        out.append(f"  {r['who']:18s} batch {r['batch']:3d} | {r['tokens_per_s']:9.0f} | {r['ms_per_token']:7.2f} | {r['peak_bytes']/2**30:6.2f}")
    else:
        out.append(f"  {r.get('who', '')} batch {r.get('batch', '')}: {r.get('skipped') or r.get('error')}")
print("\n".join(out) if rows else "HF generate: no output (see hf.log)")
PY
)"
fi

if has ddp; then
  # (a) same model as 1 GPU: fp32 and bf16, 50 steps, global batch 2 x 8 x 1024 either way;
  # (b) scaling: bf16 flash B=16 T=1024 per GPU, tokens/s on 1 and DDP_GPUS GPUs (steps 41-60),
  #     optimizer memory per GPU with/without ZeRO-1, exposed communication share (--profile).
  echo "== data-parallel (ddp): correctness on ${DDP_GPUS:=2} GPUs vs 1, then scaling"
  # The tinyshakespeare BPE has 4096 tokens: padding the vocabulary to 50304 (GPT-2's padded
  # size) gives the model GPT-2 124M's parameter count, so all-reduce volume and the LM head match.
  D="--model.vocab_pad_to=50304 --data.inputs=[\".deps/data/input.txt\"] --checkpoint.interval=0 --training.eval_interval=0 --training.eval_iters=1 --checkpoint.keep=1"
  C="--device.precision=\"fp32\" --attention.impl=\"naive\" --training.batch_size=8 --training.max_iters=50 --training.log_interval=1 --logging.progress=false"
  if [ -z "${DDP_SCALING_ONLY:-}" ]; then  # DDP_SCALING_ONLY=1: skip (a)
  $A train -c configs/gpt2_124m.toml $D $C --training.grad_accum=$DDP_GPUS --training.out_dir=\"runs/ddp_fp32_1\" >> "$OUT/ddp.log" 2>&1 || echo "ddp fp32 1-GPU run failed (exit $?)"
  for z in 0 1; do
    $A train -c configs/gpt2_124m.toml $D $C --nproc $DDP_GPUS --distributed.zero=$z --training.out_dir=\"runs/ddp_fp32_z$z\" >> "$OUT/ddp.log" 2>&1 || echo "ddp fp32 z$z run failed (exit $?)"
  done
  # the same pair in bf16 (flash): the curves must agree within bf16 noise
  CB="--device.precision=\"bf16\" --attention.impl=\"flash\" --training.batch_size=8 --training.max_iters=50 --training.log_interval=1 --logging.progress=false"
  $A train -c configs/gpt2_124m.toml $D $CB --training.grad_accum=$DDP_GPUS --training.out_dir=\"runs/ddp_bf16c_1\" >> "$OUT/ddp.log" 2>&1 || echo "ddp bf16 1-GPU run failed (exit $?)"
  for z in 0 1; do
    $A train -c configs/gpt2_124m.toml $D $CB --nproc $DDP_GPUS --distributed.zero=$z --training.out_dir=\"runs/ddp_bf16c_z$z\" >> "$OUT/ddp.log" 2>&1 || echo "ddp bf16 z$z run failed (exit $?)"
  done
  fi
  # tokens/s of steps 41-60 (the last log window), without --profile (its per-call events
  # change the overlap being measured); then one profiled run per mode for the comm share.
  # DDP_SWEEP="label:ENV=V[,ENV=V]:--override ..." adds all-reduce variants (e.g. NCCL_MAX_CTAS).
  S="--device.precision=\"bf16\" --attention.impl=\"flash\" --training.batch_size=16 --training.max_iters=60 --training.log_interval=20"
  scaling_runs=(ddp_bf16_1)
  $A train -c configs/gpt2_124m.toml $D $S --training.out_dir=\"runs/ddp_bf16_1\" >> "$OUT/ddp.log" 2>&1 || echo "ddp bf16 1-GPU run failed (exit $?)"
  for z in 0 1; do
    $A train -c configs/gpt2_124m.toml $D $S --nproc $DDP_GPUS --distributed.zero=$z --training.out_dir=\"runs/ddp_bf16_z$z\" >> "$OUT/ddp.log" 2>&1 || echo "ddp bf16 z$z run failed (exit $?)"
    scaling_runs+=(ddp_bf16_z$z)
  done
  for v in ${DDP_SWEEP:-}; do
    IFS=: read -r label envs over <<< "$v"
    env ${envs//,/ } $A train -c configs/gpt2_124m.toml $D $S --nproc $DDP_GPUS ${over:-} --training.out_dir=\"runs/ddp_bf16_$label\" >> "$OUT/ddp.log" 2>&1 || echo "ddp bf16 $label run failed (exit $?)"
    scaling_runs+=(ddp_bf16_$label)
  done
  $A train -c configs/gpt2_124m.toml $D $S --training.out_dir=\"runs/ddp_bf16_1_again\" >> "$OUT/ddp.log" 2>&1; scaling_runs+=(ddp_bf16_1_again)
  for z in 0 1; do
    $A train -c configs/gpt2_124m.toml $D $S --profile --nproc $DDP_GPUS --distributed.zero=$z --training.out_dir=\"runs/ddp_bf16_prof_z$z\" >> "$OUT/ddp.log" 2>&1
  done
  grep -E "^error|rank [0-9]+ of" "$OUT/ddp.log" | head -5
  row "$(python3 - "$DDP_GPUS" "${scaling_runs[@]}" <<'PY'
import json, sys
W = int(sys.argv[1]); runs = sys.argv[2:]
def lines(run):
    try: return [json.loads(l) for l in open(f"runs/{run}/metrics.jsonl")]
    except OSError: return []
def losses(run): return [r["loss"] for r in lines(run) if "loss" in r]
def last(run, key):
    v = [r[key] for r in lines(run) if key in r]
    return v[-1] if v else float("nan")
def prof(run, cat):
    try: return json.load(open(f"runs/{run}/profile.json"))["categories"][cat]["share"]
    except (OSError, KeyError): return float("nan")
out = []
# bf16's own noise on this run: how far the 1-GPU bf16 curve is from the 1-GPU fp32 curve (same data)
f32, b16 = losses("ddp_fp32_1"), losses("ddp_bf16c_1")
noise = max((abs(a - b) for a, b in zip(f32, b16)), default=float("nan"))
out.append(f"bf16 noise floor: max |loss bf16 - loss fp32| on 1 GPU over {min(len(f32), len(b16))} steps = {noise:.3g}")
for prec, target in (("fp32", "<= 1e-3"), ("bf16c", "<= the bf16 noise floor")):
    ref = losses(f"ddp_{prec}_1")
    out.append(f"ddp {prec} 50 steps, max |dloss| vs 1 GPU (target {target}; {len(ref)} ref steps):")
    for z in (0, 1):
        got = losses(f"ddp_{prec}_z{z}")
        d = max((abs(a - b) for a, b in zip(ref, got)), default=float("nan")) if len(got) == len(ref) else float("nan")
        out.append(f"  {W} GPUs zero={z}: {d:.3g} ({len(got)} steps; final loss {got[-1] if got else 'n/a'} vs {ref[-1] if ref else 'n/a'})")
one = last("ddp_bf16_1", "tokens_per_s")
out.append(f"ddp bf16 flash B=16 T=1024, steps 41-60 | tokens/s total | per GPU | x first 1-GPU run (target >= {0.95*W:.1f}) | optimizer MiB/GPU")
for run in runs:
    n = 1 if run.startswith("ddp_bf16_1") else W
    t = last(run, "tokens_per_s")
    opt = last(run, "mem_optimizer_bytes") / 2**20
    out.append(f"  {run:22s} {n} GPU | {t:10.0f} | {t/n:9.0f} | {t/one:5.2f}x | {opt:8.1f}")
for z in (0, 1):
    out.append(f"  profiled zero={z}: communication {100*prof(f'ddp_bf16_prof_z{z}', 'communication'):.1f}% of the step, "
               f"outside the timed calls {100*prof(f'ddp_bf16_prof_z{z}', 'other'):.1f}% (other)")
print("\n".join(out))
PY
)"
fi

if has generate; then
  # Cached generation (issue 9): GPU tests, bench-generate at the acceptance shapes, the 8-bit cache's
  # effect on a trained model's val loss, HF transformers if scripts/hf_generate.py exists.
  # Files: generate.log, gen_bench/{results.md,decode_profile.md/.json,cache_memory.png,tokens_per_s.png,report.html}.
  echo "== cached generation"
  G="$OUT/generate.log"; GB=/tmp/attn_gen_bench; rm -rf "$GB" "$GB.sweep" "$GB.profile"; mkdir -p "$OUT/gen_bench"
  "$BUILD/attn_gpu_tests" --gtest_filter='Generate*' > /tmp/attn_gen_tests.log 2>&1; rc=$?
  grep -E "^(fp32|bf16) |Failure|^\[  (PASSED|FAILED)" -A2 /tmp/attn_gen_tests.log | head -80 | tee "$G"
  row "generate gpu tests (exit $rc): $(grep -E '^\[  PASSED' /tmp/attn_gen_tests.log | head -1) $(grep -E '^\[  FAILED  \] [0-9]+' /tmp/attn_gen_tests.log | head -1)"
  $A bench-generate -c configs/gpt2_124m.toml --batches 1,32 --prompt-lens 128 --new-tokens 512 \
     --kv-cache bf16,fp8,int8 --out "$GB" 2>&1 | tee -a "$G"  # weight-read limit: the device's peak
  # every kernel of the decode step (CUPTI), apart, so that a tracing failure costs only this table
  $A bench-generate -c configs/gpt2_124m.toml --batches 1,32 --prompt-lens 128 --new-tokens 128 --kv-cache bf16,int8 \
     --no-baseline --profile --out "$GB.profile" > /tmp/attn_gen_profile.log 2>&1 \
    && cp "$GB.profile/decode_profile.md" "$GB.profile/decode_profile.json" "$OUT/gen_bench/" \
    || row "decode profile failed: $(grep -m1 'error' /tmp/attn_gen_profile.log)"
  # context-length x head-layout sweep for the plots (no baseline); GEN_QUICK=1 skips it and the 8-bit val loss
  [ -z "${GEN_QUICK:-}" ] && $A bench-generate -c configs/gpt2_124m.toml --batches 8 --prompt-lens 64,256,768 --new-tokens 128 \
     --kv-heads 12,4,1 --kv-cache bf16,int8 --no-baseline --out "$GB.sweep" >> "$G" 2>&1
  cp "$GB/results.md" "$OUT/gen_bench/results.md"; cat "$GB.sweep/results.md" >> "$OUT/gen_bench/results.md"
  cp "$GB.sweep/cache_memory.png" "$GB.sweep/tokens_per_s.png" "$GB.sweep/report.html" "$OUT/gen_bench/" 2>/dev/null
  # HF transformers rows: the `hf` step (run it in the same call, before this one) writes them.
  HF="$OUT/hf_generate.json"; [ -f "$HF" ] || : > "$HF"
  row "$(python3 - "$GB/results.csv" "$HF" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
hf = {}  # batch -> HF's fastest mode: (tokens/s, peak bytes, who)
for l in open(sys.argv[2]):
    try: r = json.loads(l)
    except Exception: continue
    b = r.get("batch"); tps = r.get("tokens_per_s")
    if b is not None and tps is not None and tps > hf.get(int(b), (0,))[0]:
        hf[int(b)] = (float(tps), float(r.get("peak_bytes", 0)), r.get("who", "hf"))
out = ["generate GPT-2 124M prompt 128 +512 (tokens/s of the whole call, prefill included, as HF's) | mode cache B | "
       "tokens/s | decode ms/step | HF best tok/s | ratio | peak GiB ours / HF best | cache MiB | of weight-read limit"]
for r in rows:
    b = int(r["batch"]); t = float(r.get("call_tokens_per_s") or r["tokens_per_s"])
    h = hf.get(b) if r["mode"] == "cached" else None
    hs = f"{h[0]:8.0f} | {t/h[0]:5.2f} | {float(r['peak_bytes'])/2**30:5.3f} / {h[1]/2**30:5.3f} ({h[2]})" if h else "       - |     - | " + f"{float(r['peak_bytes'])/2**30:5.3f}"
    out.append(f"  {r['mode']:8s} {r['cache']:4s} B={b:<3d} | {t:9.0f} | {float(r['ms_per_step']):7.3f} | {hs} | "
               f"{float(r['cache_bytes'])/2**20:8.1f} | {100*float(r['weight_limit_fraction']):5.1f}%")
print("\n".join(out))
PY
)"
  if [ -z "${GEN_QUICK:-}" ]; then
  mkdir -p runs
  $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1500 \
     --training.eval_interval=0 --checkpoint.interval=0 --training.out_dir=\"runs/gen_sc\" --logging.progress=false \
     > /tmp/attn_gen_train.log 2>&1
  tail -2 /tmp/attn_gen_train.log >> "$G"
  $A eval --checkpoint runs/gen_sc --cached --kv-cache bf16,int8,fp8 --training.eval_iters=20 2>&1 | tee -a "$G"
  row "cached val loss (shakespeare_char 1500 steps, 20 batches): $(grep -o 'loss [0-9.]* cached ([a-z0-9]* KV cache[^:]*: [^,]*, [^ ]* vs bf16' "$G" | sed 's/ KV cache, teacher-forced decode)//' | tr '\n' ';')"
  fi
fi

if has fp8quality; then
  # Issue 21, acceptance 2: 1000 steps in bf16 and in fp8, same seed, flash attention: GPT-2 124M on
  # default.toml's data (the fortunes text, BPE 2048; $FORTUNES, carry a copy) and the 6-layer
  # shakespeare_char model on shakespeare BPE 4096. Val loss every 100 steps; plot with
  # `scripts/plot.py loss --run q124_bf16.jsonl bf16 --run q124_fp8.jsonl fp8`.
  echo "== fp8 vs bf16 training quality, 1000 steps each"
  FORTUNES=${FORTUNES:-/usr/share/games/fortunes}
  for P in bf16 fp8; do
    $A train -c configs/gpt2_124m.toml --attention.impl=\"flash\" --data.inputs="[\"$FORTUNES\"]" \
      --data.dir=runs/data/fortunes_bpe2048 --data.vocab_size=2048 --training.max_iters=1000 \
      --training.eval_interval=100 --training.eval_iters=20 --training.log_interval=10 --checkpoint.interval=0 \
      --device.precision=\"$P\" --training.out_dir=runs/q124_$P > "$OUT/q124_$P.log" 2>&1 || tail -3 "$OUT/q124_$P.log"
    $A train -c configs/shakespeare_char.toml --attention.impl=\"flash\" --data.inputs='[".deps/data/input.txt"]' \
      --data.tokenizer=\"bpe\" --data.vocab_size=4096 --data.dir=runs/data/shakespeare_bpe4096 \
      --training.max_iters=1000 --schedule.decay_iters=1000 --training.eval_interval=100 --training.eval_iters=50 \
      --training.log_interval=10 --checkpoint.interval=0 --device.precision=\"$P\" --training.out_dir=runs/qsh_$P \
      > "$OUT/qsh_$P.log" 2>&1 || tail -3 "$OUT/qsh_$P.log"
    cp runs/q124_$P/metrics.jsonl "$OUT/q124_$P.jsonl"; cp runs/qsh_$P/metrics.jsonl "$OUT/qsh_$P.jsonl"
  done
  row "$(python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
lines = ["fp8 vs bf16, 1000 steps | largest val-loss difference (step) | final val bf16 / fp8"]
for run in ("q124", "qsh"):
    val = {}
    for p in ("bf16", "fp8"):
        val[p] = {d["step"]: d["val_loss"] for d in map(json.loads, open(f"{out}/{run}_{p}.jsonl")) if "val_loss" in d}
    diff, step = max((abs(val["fp8"][s] - val["bf16"][s]) / val["bf16"][s], s) for s in val["bf16"] if s in val["fp8"])
    last = max(val["bf16"])
    lines.append(f"  {run}: {100 * diff:.2f}% ({step}) | {val['bf16'][last]:.4f} / {val['fp8'][last]:.4f}")
print("\n".join(lines))
PY
)"
fi

if has report; then
  # Issue 22: the figures and the page of a small GPU ablation (GPT-2 124M shapes, bf16, 16384 tokens
  # per batch, naive / flash / flash+window1024 at 1024..8192 tokens, 5 timed steps) and the loss
  # curves of two short shakespeare_char runs (naive vs flash, same seed) in one figure (attnlab plot).
  # Files: report/{results.csv,results.md,env.json,throughput.png,memory.png,pareto.png,report.html,
  # loss_naive_vs_flash.png, runs/{naive,flash}/{config.toml,metrics.jsonl}}: commit them under
  # docs/results/. Where this machine's python3 has no matplotlib the row says so; then run
  # `attnlab report DIR` and `attnlab plot DIR/runs/naive DIR/runs/flash --out ...` on the returned folder.
  echo "== report: small attention ablation and naive-vs-flash loss curves, figures and report.html"
  R="$OUT/report"; rm -rf "$R"; mkdir -p "$R/runs" runs
  cat > /tmp/attn_report_grid.toml <<'TOML'
tokens_per_batch = 16384
steps = 5
warmup = 2
[grid]
training.seq_len = [1024, 2048, 4096, 8192]
device.precision = "bf16"
device.backend = "cuda"
[[variant]]
name = "naive"
attention.impl = "naive"
[[variant]]
name = "flash"
attention.impl = "flash"
[[variant]]
name = "flash+window1024"
attention.impl = "flash"
attention.sliding_window = 1024
TOML
  $A ablate -c configs/gpt2_124m.toml --grid /tmp/attn_report_grid.toml --out "$R" > "$OUT/report.log" 2>&1
  for impl in naive flash; do
    $A train -c configs/shakespeare_char.toml --data.inputs='[".deps/data/input.txt"]' --model.attn_dropout=0.0 \
      --attention.impl=\"$impl\" --training.max_iters=600 --training.eval_interval=50 --training.eval_iters=20 \
      --training.out_dir=\"runs/report_$impl\" --checkpoint.interval=0 --logging.progress=false >> "$OUT/report.log" 2>&1
    mkdir -p "$R/runs/$impl"; cp "runs/report_$impl/config.toml" "runs/report_$impl/metrics.jsonl" "$R/runs/$impl/"
  done
  $A plot "$R/runs/naive" "$R/runs/flash" --out "$R/loss_naive_vs_flash.png" >> "$OUT/report.log" 2>&1
  row "report: $(grep -c ',ok,' "$R/results.csv" 2>/dev/null) ablation cells ok; files: $(cd "$R" && ls *.png report.html 2>/dev/null | tr '\n' ' ')$(grep -h -m1 -E '^(warning|error)' "$OUT/report.log")"
fi

if has gpt2tok; then
  echo "== GPT-2 tokenizer: ids vs HF GPT2TokenizerFast/GPT2Tokenizer, prepare --tokenizer gpt2 vs encode_batch (MB/s)"
  V=""; for d in "${GPT2_VOCAB:-}" .deps/data/gpt2 shared/data/gpt2 ../shared/data/gpt2; do
    [ -n "$d" ] && [ -f "$d/encoder.json" ] && { V=$d; break; }; done
  TS=""; for f in .deps/data/input.txt shared/data/tinyshakespeare/input.txt ../shared/data/tinyshakespeare/input.txt; do
    [ -f "$f" ] && { TS=$f; break; }; done
  if [ -z "$V" ]; then
    row "gpt2tok: skipped (no encoder.json + vocab.bpe in \$GPT2_VOCAB, .deps/data/gpt2 or ../shared/data/gpt2)"
  else
    python3 scripts/compare_gpt2_tokenizer.py --attnlab "$A" --vocab "$V" --tinyshakespeare "$TS" \
      --work /tmp/attn_gpt2tok --mb ${GPT2TOK_MB:-300} 2>"$OUT/gpt2tok.err" | tee "$OUT/gpt2tok.jsonl"
    row "$(python3 - "$OUT/gpt2tok.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
out = ["gpt2 tokenizer vs HF | file | tokens | equal fast/slow | decode exact"]
for r in rows:
    if r.get("check") == "ids":
        out.append(f"  {r['file']:22s} | {r['tokens']:7d} | {r['equal_fast']}/{r['equal_slow']} | {r['decode_exact']}")
    elif r.get("check") == "speed":
        out.append(f"  speed {r['mb']} MB, {r['cores']} cores: prepare {r['ours_prepare_mb_s']} MB/s vs HF encode_batch "
                   f"{r['hf_encode_batch_mb_s']} MB/s (x{r['ratio']}); tokens {r['tokens_ours']} vs {r['tokens_hf']}")
    else:
        out.append(f"  {r}")
print("\n".join(out) if rows else "gpt2tok: no output (see gpt2tok.err)")
PY
)"
    # Fine-tuning from an HF GPT2 directory (random 124M weights, GPT-2's vocabulary files):
    # the imported model's fp32 loss beside HF's on the same tokens, a few steps of --init-from, a sample.
    python3 - "$V" runs/hf_rand <<'PY' >> "$OUT/gpt2tok.log" 2>&1
import shutil, sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[2], safe_serialization=True)
shutil.copy(f"{sys.argv[1]}/encoder.json", f"{sys.argv[2]}/vocab.json")
shutil.copy(f"{sys.argv[1]}/vocab.bpe", f"{sys.argv[2]}/merges.txt")
PY
    $A prepare --tokenizer gpt2 --gpt2-vocab "$V" --input "$TS" --out runs/data/ts_gpt2 >> "$OUT/gpt2tok.log" 2>&1
    $A train -c configs/gpt2_124m.toml --init-from runs/hf_rand --data.dir=\"runs/data/ts_gpt2\" --device.precision=\"fp32\" \
      --model.dropout=0.0 --training.max_iters=10 --training.eval_interval=0 --training.log_interval=1 \
      --checkpoint.interval=0 --training.out_dir=\"runs/ft_rand\" > "$OUT/gpt2tok_train.log" 2>&1
    $A loss --checkpoint runs/ft_rand/init_from --tokens runs/data/ts_gpt2/val_000.bin --batch 4 --seq 1024 \
      --device.precision=\"fp32\" > "$OUT/gpt2tok_loss_ours.json" 2>>"$OUT/gpt2tok.log"
    python3 scripts/hf_generate.py loss --hf runs/hf_rand --tokens runs/data/ts_gpt2/val_000.bin --batch 4 --seq 1024 \
      --ours "$OUT/gpt2tok_loss_ours.json" 2>>"$OUT/gpt2tok.log" | tee "$OUT/gpt2tok_loss.json"
    $A sample --checkpoint runs/ft_rand --prompt "To be, or not to be" --sample.max_new_tokens=12 \
      --sample.num_samples=1 > "$OUT/gpt2tok_sample.txt" 2>>"$OUT/gpt2tok.log"
    row "gpt2 init-from (random HF GPT2 124M, fp32): $(python3 -c "
import json,sys
r=json.loads(open('$OUT/gpt2tok_loss.json').read().strip().splitlines()[-1]) if open('$OUT/gpt2tok_loss.json').read().strip() else {}
print('ours %.6f hf %.6f rel %.2e' % (r['ours'], r['loss'], r['rel_diff']) if 'rel_diff' in r else 'no loss (see gpt2tok.log)')
" 2>&1); train: $(grep -E '^step +1/' "$OUT/gpt2tok_train.log" | head -1 | cut -c1-40) .. $(grep -E '^step +10/' "$OUT/gpt2tok_train.log" | head -1 | cut -c1-40); sample ok: $(grep -c 'To be, or not to be' "$OUT/gpt2tok_sample.txt")"
  fi
fi

if has tf32; then
  # Issue 20: device.precision = "tf32" (fp32 storage, TF32 tensor-core matmuls). Its GPU test
  # (a tf32 step within the TF32 bound of the fp32 CPU backend, fp32 tighter), then the precision
  # grid: GPT-2 124M shapes in fp32 / tf32 / bf16 x naive / flash at T 1024 and 4096, beside
  # PyTorch eager fp32 with TF32 off and on (configs/grid_precision.toml): one table.
  echo "== tf32: GPU test, the precision grid beside PyTorch eager"
  "$BUILD/attn_gpu_tests" --gtest_filter='*Tf32*' > "$OUT/tf32_test.log" 2>&1; rc=$?
  row "tf32 gpu test (exit $rc): $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]+' "$OUT/tf32_test.log" | head -1); $(grep -E 'whole gradient' "$OUT/tf32_test.log" | awk '{print $2, $3, $6}' | paste -sd';' -)"
  rm -rf "$OUT/ablate_precision"
  $A ablate -c configs/gpt2_124m.toml --grid configs/grid_precision.toml --out "$OUT/ablate_precision" \
    > "$OUT/ablate_precision.log" 2>&1 || tail -3 "$OUT/ablate_precision.log"
  row "$(cat "$OUT/ablate_precision/results.md" 2>/dev/null || echo "precision grid failed: see ablate_precision.log")"
fi

if has fp32flash; then
  # Issue 20, acceptance 2: our fp32 flash attention (3xTF32 tensor cores) and its tf32 mode
  # (1xTF32) beside PyTorch's fp32 memory-efficient SDPA (TF32 off), causal fwd+bwd, same call.
  # Tests first: the flash kernels vs float64 (fp32, fp32 deterministic, tf32 bounds), the
  # variants, the tf32 step and the TF32 matmuls.
  echo "== fp32 flash attention vs PyTorch fp32 memory-efficient SDPA (causal fwd+bwd)"
  gpu_tests fp32flash '*FlashAttention*:FlashVariants*:*Tf32*'
  # worst relative error per path over every case: [flash] / [variants] lines of the tests
  awk '/^\[(flash|variants)\]/ { tag = ($1 == "[flash]") ? $2 : $3; if (tag !~ /^(fp32|tf32)/) next;
       for (i = 1; i < NF; ++i) if ($i ~ /^(O|lse|dQ|dK|dV)$/ && $(i+1) + 0 > w[tag, $i]) w[tag, $i] = $(i+1) + 0; seen[tag] = 1 }
       END { for (t in seen) printf "worst %-9s O %.2e lse %.2e dQ %.2e dK %.2e dV %.2e\n", t, w[t,"O"], w[t,"lse"], w[t,"dQ"], w[t,"dK"], w[t,"dV"] }' \
    "$OUT/fp32flash_tests.log" | sort | tee "$OUT/fp32flash_errors.txt"
  for prec in fp32 tf32; do
    "$BUILD/bench_flash_attention" --precision $prec --det 2>&1 | tee "$OUT/fp32flash_$prec.log"
  done
  python3 scripts/bench_sdpa.py --dtype fp32 --backends efficient --shapes 16,12,1024,64 2,12,8192,64 2>&1 \
    | tee "$OUT/fp32flash_torch.log"
  row "fp32flash: $(cat "$OUT/fp32flash_errors.txt")
$(python3 - "$OUT" <<'PY'
import os, sys
d = sys.argv[1]
def fb(name, key_col, ms_col):  # {shape "B,H,T,D": f+b ms}
    out = {}
    try:
        for line in open(os.path.join(d, name)):
            f = line.split()
            if len(f) > ms_col and "," in f[key_col]:
                parts = f[key_col].split(",")
                if len(parts) == 5: parts = parts[:2] + parts[3:]  # ours: B,H,Hkv,T,D
                try: out[",".join(parts)] = float(f[ms_col])
                except ValueError: pass
    except OSError:
        pass
    return out
ours, tf32, torch = fb("fp32flash_fp32.log", 0, 5), fb("fp32flash_tf32.log", 0, 5), fb("fp32flash_torch.log", 1, 6)
rows = ["causal fwd+bwd ms | ours fp32 (3xTF32) | ours tf32 (1xTF32) | torch fp32 efficient | torch/ours fp32 | torch/ours tf32"]
for k in ("16,12,1024,64", "2,12,8192,64"):
    o, t, p = ours.get(k, float("nan")), tf32.get(k, float("nan")), torch.get(k, float("nan"))
    rows.append(f"  {k:14s} | {o:8.3f} | {t:8.3f} | {p:8.3f} | {p / o:5.2f}x | {p / t:5.2f}x")
print("\n".join(rows))
PY
)"
fi

echo; echo "================ summary ================"
printf '%s\n' "${table[@]}"
