#!/usr/bin/env bash
# s9a.sh's bench loop only (its first run lost the loop to set -u). Same carry.
set -uo pipefail
O=${OUT:-/tmp/out}; mkdir -p "$O"
for v in s9b s9 s8; do mkdir -p ${v}bins && tar xzf build-carry/$v/bins.tgz -C ${v}bins || { echo "untar $v failed"; exit 1; }; done
t0=$SECONDS
bench() { timeout 45 "$1"/attnlab bench -c configs/$2.toml --attention.impl=\"flash\" --device.precision=\"$3\" ${4:-} 2>&1; }
for rep in 1 2; do for C in gpt2_124m gpt2_350m; do for V in "s9b fp8" "s9 fp8" "s8 fp8" "s9b bf16"; do set -- $V
  [ $((SECONDS-t0)) -gt 300 ] && { echo "out of time"; break 3; }
  echo "$C $2 $1 rep $rep: $(bench ${1}bins $C $2 | grep -E '^bench:|error') ($((SECONDS-t0)) s)"
done; done; done | tee "$O/bench.txt"
