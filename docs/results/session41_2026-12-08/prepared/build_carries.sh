#!/usr/bin/env bash
# Builds the binaries that session 41's prepared calls carry (s41a.sh, s41b.sh), from the branches, on this machine
# (no GPU needed; sm_90a). Run from the repository root of a checkout of main:
#   bash docs/results/session41_2026-12-08/prepared/build_carries.sh
# Each branch (made again from patches/<branch>.patch, on main, where the checkout lacks it) is built in its own
# worktree (../wt-<letter>) sharing one ccache, so after main's full build (~9 min
# on 2 cores) a branch costs its changed files and the links (~2 min). Writes build-carry/<letter>.txz and copies the
# two call scripts, with GPT-2's tinyshakespeare text, into .gpucall/.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
here=docs/results/session41_2026-12-08/prepared
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache} CCACHE_BASEDIR=$(dirname "$root")
declare -A branch=([m]=main [q]=s41-fwd-q-ring [p]=s41-bwd-pdl [c]=s41-softcap-fixed-max [d]=s41-mha-direct-early)
declare -A targets=([m]="attnlab attn_gpu_tests bench_decode_attention bench_flash_attention"
  [q]="attn_gpu_tests bench_flash_attention" [p]="attn_gpu_tests bench_flash_attention"
  [c]="attn_gpu_tests bench_flash_attention" [d]="attn_gpu_tests bench_decode_attention attnlab")
for v in m q p c d; do
  # the branch's worktree if one has it checked out, else a new one at ../wt-<letter>
  src=$(git worktree list --porcelain | awk -v b="refs/heads/${branch[$v]}" '$1 == "worktree" {w = $2} $1 == "branch" && $2 == b {print w}')
  # (branches do not survive into a new checkout: then the branch is made again from its patch, on main)
  if [ -z "$src" ]; then
    src=$(dirname "$root")/wt-$v
    if git rev-parse -q --verify "refs/heads/${branch[$v]}" > /dev/null; then git worktree add -q "$src" "${branch[$v]}"
    else git worktree add -q -b "${branch[$v]}" "$src" main && git -C "$src" am -q "$root/$here/patches/${branch[$v]}.patch"; fi
  fi
  echo "== $v (${branch[$v]}) in $src"
  cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTN_WERROR=ON > /dev/null
  ninja -C "$src/build" ${targets[$v]} > "/tmp/build_$v.log" 2>&1 || { tail -20 "/tmp/build_$v.log"; exit 1; }
  rm -rf "build-carry/$v"; mkdir -p "build-carry/$v"
  for t in ${targets[$v]}; do cp "$src/build/$t" "build-carry/$v/"; done
  strip build-carry/$v/*
  tar cJf "build-carry/$v.txz" -C "build-carry/$v" .
done
mkdir -p .gpucall
cp $here/s41a.sh $here/s41b.sh .gpucall/
cp ../shared/data/tinyshakespeare/input.txt .gpucall/input.txt
ls -la build-carry/*.txz .gpucall
