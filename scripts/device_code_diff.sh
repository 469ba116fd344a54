#!/usr/bin/env bash
# Is a change to the kernels a pure refactor? Compiles kernels/*.cu (or the files named) at REV and
# in the working tree to sm_90a cubins and compares every kernel's machine code (.text section),
# byte for byte, anonymous-namespace names set aside (their mangled length says where they end:
# some carry a per-compile numeric suffix). No GPU needed: a change whose kernels all come out
# identical needs no device time to be trusted.
#   scripts/device_code_diff.sh [--explain] REV [kernels/x.cu ...]
# Prints "identical N" or "differs: kernel ..." per file; exits 1 if any kernel differs or is
# new or gone. --explain: for a file that differs, where, in its PTX (no disassembler here): the
# first lines of a diff with virtual register numbers and anonymous-namespace names masked. No
# lines there means the same instructions in the same order, numbered otherwise; ptxas can still
# allocate them otherwise, so the machine code differs all the same. (Splitting a kernel into
# __forceinline__ functions keeps the code when each function takes the kernel's own values: a
# parameter field read again inside, a value passed instead of a param load the compiler kept
# late, or a temporary array moved into a callee each changed it.)
set -euo pipefail
export LC_ALL=C
explain=0; [ "${1:-}" = --explain ] && { explain=1; shift; }
[ $# -ge 1 ] || { echo "usage: $0 [--explain] REV [kernels/x.cu ...]" >&2; exit 2; }
rev=$1; shift
root=$(git rev-parse --show-toplevel); cd "$root"
files=("$@"); [ ${#files[@]} -gt 0 ] || mapfile -t files < <(git ls-files 'kernels/*.cu')
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
tmp=$(mktemp -d); trap 'git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/old" "$rev" >/dev/null 2>&1 || { echo "error: cannot check out $rev" >&2; exit 2; }

# compile TREE FILE -cubin|-ptx OUT. The flags are the kernels' build flags from CMakeLists.txt
# (defines, includes, -O3, sm_90a) less the warnings and line info, which do not change the machine
# code; both trees are compiled alike, so what differs is the source alone.
compile() {
  (cd "$1" && "$NVCC" -DATTN_WITH_CUDA=1 -DEIGEN_NO_DEBUG -DFMT_HEADER_ONLY -DFMT_USE_CONSTEXPR=1 -DTOML_EXCEPTIONS=1 \
      -DTOML_HEADER_ONLY=1 -I"$1/src" -I"$1" -isystem=/usr/include/eigen3 -O3 -DNDEBUG -arch=sm_90a \
      --expt-relaxed-constexpr -diag-suppress=20208 -std=c++20 -x cu "$3" "$2" -o "$4")
}
# sections TREE FILE OUT: one line per kernel, "name<TAB>hex of its .text".
sections() {
  local cubin="$3.cubin"
  compile "$1" "$2" -cubin "$cubin" || return 1
  readelf -W -S "$cubin" 2>/dev/null | grep -o '\.text\.[^ ]*' | sort -u | while read -r s; do
    printf '%s\t%s\n' "$(perl -pe 's/(\d+)(_GLOBAL__N__.*)/"ANON" . substr($2, $1)/e' <<< "$s")" \
      "$(readelf -x "$s" "$cubin" 2>/dev/null | tail -n +3 | cut -c14-48 | tr -d ' \n')"
  done | sort > "$3"
}

# masked_ptx TREE FILE OUT: the PTX with register numbers, labels and anonymous-namespace hashes masked
masked_ptx() {
  compile "$1" "$2" -ptx "$3.ptx" 2>/dev/null || return 1
  grep -v -e 'has been demoted' -e '^[[:space:]]*\.reg ' "$3.ptx" | sed -E 's/%(rd|rs|r|fd|f|p|h|hh)[0-9]+/%\1/g;
    s/\$L__BB[0-9]+_[0-9]+/$L/g; s/_INTERNAL_[0-9a-f]+_[0-9]+_[A-Za-z0-9_]+_cu_[0-9a-f]+/_INTERNAL_/g;
    s/__N__[0-9a-f]+_[0-9]+_[A-Za-z0-9_]+_cu_[0-9a-f]+/__N__/g' > "$3"
}

status=0
for f in "${files[@]}"; do
  n=$(basename "$f" .cu)
  sections "$tmp/old" "$f" "$tmp/$n.old" || { echo "$f: does not compile at $rev"; status=1; continue; }
  sections "$root" "$f" "$tmp/$n.new" || { echo "$f: does not compile in the working tree"; status=1; continue; }
  if cmp -s "$tmp/$n.old" "$tmp/$n.new"; then
    echo "$f: identical $(wc -l < "$tmp/$n.new") kernels"
  else
    status=1
    echo "$f: differs:"
    join -t $'\t' -a1 -a2 -e MISSING -o 0,1.2,2.2 "$tmp/$n.old" "$tmp/$n.new" \
      | awk -F'\t' '$2 != $3 {print "  " ($2 == "MISSING" ? "new " : $3 == "MISSING" ? "gone " : "changed ") $1}'
    if [ $explain = 1 ] && masked_ptx "$tmp/old" "$f" "$tmp/$n.oldptx" && masked_ptx "$root" "$f" "$tmp/$n.newptx"; then
      diff "$tmp/$n.oldptx" "$tmp/$n.newptx" > "$tmp/$n.ptxdiff" || true
      echo "  PTX, registers masked: $(grep -c '^[<>]' "$tmp/$n.ptxdiff" || true) lines differ"
      head -30 "$tmp/$n.ptxdiff" | sed 's/^/    /'
    fi
  fi
done
exit $status
