# Prepared in the twelfth session. Only its first section ran (on an H100, with CAP=95, at the very end); the decode and variant lines in h100_call/ ran by hand on that warm machine.
#!/usr/bin/env bash
# Session 12, call C (carry ["build-carry/main12", ".gpucall"]), CAP seconds, sections in order:
#   1. the kernel-trace test, fixed (a5ab50c)
#   2. issue 14: ours against cuDNN on non-causal (2,16,8192,128) and GQA (4,32,8,4096,128), twice
#   3. issue 17, acceptance 3: HF generate() (eager and static cache + torch.compile) against our
#      bench-generate, GPT-2 124M shape, bf16, prompt 128 + 512 new, B = 1 and 32, same call
#   4. issue 14: variants in pairs (plain, then the kind), 1500 ms warm-up each
#   5. issue 17: decode attention at the decode step's short context, by split plan
# Everything into $OUT/s12c.tgz (one file: the tool returns at most a few files).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/w; mkdir -p "$W"; CAP=${CAP:-400}; t0=$SECONDS
left() { echo $((CAP - (SECONDS - t0))); }
fits() { [ "$(left)" -ge "$1" ] && return 0; echo "== skipped $2 (needs $1 s, $(left) left)" | tee -a "$W/skipped.txt"; return 1; }
pack() { tar czf "$O/s12c.tgz.part" -C "$W" . && mv "$O/s12c.tgz.part" "$O/s12c.tgz"; }
stamp() { echo "== $1 done ($((SECONDS - t0)) s)"; pack; }
trap pack EXIT
B=bins; mkdir -p "$B" && tar xzf build-carry/main12/bins.tgz -C "$B" || { echo "untar failed"; exit 1; }
A="$B/attnlab"; D=build-carry/main12/data
cat build-carry/main12/COMMIT; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$W/gpu.txt"
"$B/attn_gpu_tests" --gtest_filter='KernelTrace*' > "$W/trace_tests.log" 2>&1; echo "trace tests exit $?"; tail -3 "$W/trace_tests.log"
WU="--warmup-ms 1500"
if fits 70 nc_gqa; then
  for rep in 1 2; do
    "$B/bench_flash_attention" $WU --full --shape 2,16,16,8192,128 2>&1 | awk '$1 == "2,16,16,8192,128" {print "ours", $0, "non-causal"}'
    python3 scripts/bench_sdpa.py $WU --backends cudnn --full --shapes 2,16,8192,128 2>&1 | grep "^cudnn" | sed 's/$/ non-causal/'
    "$B/bench_flash_attention" $WU --shape 4,32,8,4096,128 2>&1 | awk '$1 == "4,32,8,4096,128" {print "ours", $0, "gqa"}'
    python3 scripts/bench_sdpa.py $WU --backends cudnn --shapes 4,32,4096,128,8 2>&1 | grep "^cudnn" | sed 's/$/ gqa/'
  done | tee "$W/flash_nc_gqa.txt"; stamp "non-causal and GQA"
fi
if fits 40 decode; then
  for T in "" "--min-split-rows 128" "--min-split-rows 256" "--min-split-rows 640" "--blocks-per-sm 1" "--blocks-per-sm 2" "--merge-bytes 0"; do
    echo "tuning: ${T:-default}"
    "$B/bench_decode_attention" --reps 100 $T --shape 1,12,12,64,640,bf16 --shape 1,12,12,64,4096,bf16 --shape 32,12,12,64,640,bf16 \
      --shape 32,12,12,64,4096,bf16 --shape 1,12,12,64,32768,bf16 2>&1 | grep -E "decode|error"
  done > "$W/decode_short.txt"
  python3 scripts/bench_decode_sdpa.py --reps 100 --shape 32,12,64,4096 --shape 1,12,64,32768 > "$W/decode_cudnn.txt" 2>&1; tail -4 "$W/decode_cudnn.txt"; grep -o '"B": [0-9]*.*"ctx": [0-9]*\|"pipeline": "[^"]*"\|"us": [0-9.]*' "$W/decode_short.txt" | paste - - - | head -40; stamp decode
fi
if fits 150 generate; then
  mkdir -p .deps/data && cp "$D/input.txt" .deps/data/
  "$A" train -c configs/gpt2_124m.toml --data.inputs='[".deps/data/input.txt"]' --training.max_iters=1 \
    --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
  "$A" export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
  timeout 60 "$A" bench-generate -c configs/gpt2_124m.toml --batches 1,32 --prompt-lens 128 --new-tokens 512 --kv-cache bf16 \
    --no-baseline --out runs/gen 2>&1 | tee "$W/bench_generate.log" | grep -E "cached|error"
  cp runs/gen/results.csv runs/gen/results.md "$W/" 2>/dev/null; pack
  timeout $(( $(left) - 10 )) python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 --new 512 \
    --timeout 150 2>>"$W/hf.log" | tee "$W/hf_generate.json"
  stamp generate
fi
if fits 70 variants; then
  for S in 1,12,12,16384,64 1,16,16,16384,128; do
    for V in "--alibi" "--softcap 30"; do for rep in 1 2; do
      for X in "" "$V"; do
        "$B/bench_flash_attention" $WU --reps 20 --shape $S $X 2>&1 | awk -v v="${X:-plain}" -v s=$S '$1 == s {print v, $0}'
      done
    done; done
  done | tee "$W/variants.txt"; stamp variants
fi
echo "total $((SECONDS - t0)) s"
