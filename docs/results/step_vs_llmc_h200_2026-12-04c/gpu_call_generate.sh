#!/usr/bin/env bash
# Session call 6 (no code change since call 5): compute-sanitizer on T=77 / T=1025 GQA and the
# combined variants (issue 14, acceptance 1); bench-generate beside HF transformers (issue 17).
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O; mkdir -p "$W"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
mkdir -p build && tar xzf build-carry/bins.tgz -C build
A=build/attnlab
t() { echo "[$SECONDS s] $*"; }
t "compute-sanitizer"
filt='Cases/FlashAttention.MatchesFloat64Reference/T77_H4_Hkv2_D64_causal:Cases/FlashAttention.MatchesFloat64Reference/T1025_H4_Hkv2_D64_causal:Cases/FlashAttention.MatchesFloat64Reference/T1025_H4_Hkv1_D128_full:FlashVariants/FlashVariants.MatchesFloat64Reference/window_alibi_softcap*:FlashVariants/FlashVariants.MatchesFloat64Reference/everything*'
for tool in racecheck; do
  timeout 100 compute-sanitizer --tool $tool --error-exitcode 1 build/attn_gpu_tests --gtest_filter="$filt" > "$W/san_$tool.log" 2>&1
  echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_$tool.log" | tail -1) | $(grep -c '^\[       OK' "$W/san_$tool.log") ok: $(grep '^\[       OK' "$W/san_$tool.log" | sed 's/.*Reference.//; s/ (.*//' | tr '\n' ' ')"
done
t "bench-generate"
timeout 60 $A bench-generate -c configs/gpt2_124m.toml --batches 1,32 --kv-cache bf16 --no-baseline --out /tmp/gen > "$W/gen.log" 2>&1
grep -vE "^\s*$" "$W/gen.log" | tail -12
t "HF transformers generate"
$A train -c configs/gpt2_124m.toml --data.inputs='[".qdata/shakespeare.txt"]' --training.max_iters=1 \
  --training.eval_interval=0 --training.eval_iters=1 --training.out_dir=\"runs/hf_g2\" --logging.progress=false > "$W/hf.log" 2>&1
$A export-hf runs/hf_g2 runs/hf_g2_export >> "$W/hf.log" 2>&1
timeout 190 python3 scripts/hf_generate.py generate --hf runs/hf_g2_export --vocab 50257 --batch 1 32 --prompt 128 --new 512 \
  --modes static eager --repeats 1 --timeout 100 2>>"$W/hf.log" | tee "$W/hf_generate.json"
t "done"
