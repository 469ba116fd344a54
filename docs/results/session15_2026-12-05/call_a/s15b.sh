#!/usr/bin/env bash
# Prepared in session 14 for the next one (carry ["build-carry/s15b", "build-carry/s14c", ".gpucall"]; runs after
# s15a.sh in the same call): branch s15-decode-cluster, the decode split kernel's splits merged in a thread-block
# cluster (ATTN_DECODE_CLUSTER=1) against main ab70729 (s14c): 1. decode and generator GPU tests with the cluster
# merge on; 2. bench-generate B=1,8: main / cluster on / off, alternated twice; 3. the profile with it on.
set -uo pipefail
O=${OUT:-/tmp/out}; W=$O/wb; mkdir -p "$W"; t0=$SECONDS
pack() { tar czf "$O/s15b.tgz.part" -C "$W" . && mv "$O/s15b.tgz.part" "$O/s15b.tgz"; }
trap pack EXIT
mkdir -p cb cm && tar xzf build-carry/s15b/bins.tgz -C cb && tar xzf build-carry/s15m/bins.tgz -C cm || { echo "untar failed"; exit 1; }
ATTN_DECODE_CLUSTER=1 timeout 120 cb/attn_gpu_tests --gtest_filter='Decode*:Generate*:KVCache*:PrefixLm*' > "$W/tests_cluster.log" 2>&1; echo "tests (cluster) exit $?"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|Failure" "$W/tests_cluster.log" | head -20; pack
GEN="bench-generate -c configs/gpt2_124m.toml --prompt-lens 128 --new-tokens 512 --kv-cache bf16 --no-baseline --batches 1,8"
run() { local tag=$1; shift; echo "$tag $(env "$@" timeout 60 ./$BIN $GEN --out runs/g 2>&1 | grep -E 'cached|error' | grep -o '[0-9.]* ms/step\|error.*' | tr '\n' ' ')"; }
for rep in 1 2; do
  BIN=cm/attnlab run main X=1
  BIN=cb/attnlab run cluster ATTN_DECODE_CLUSTER=1
  BIN=cb/attnlab run off X=1
done | tee "$W/ab.txt"; pack
ATTN_DECODE_CLUSTER=1 timeout 60 ./cb/attnlab $GEN --batches 1 --new-tokens 128 --profile --out runs/pc > "$W/prof.log" 2>&1
grep -E "^\| [0-9]|step period" runs/pc/decode_profile.md | head -11 | tee "$W/profile.txt"; pack
echo "total $((SECONDS - t0)) s"
