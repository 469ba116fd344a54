#!/usr/bin/env bash
# Issue 18, acceptance 3: `attnlab prepare` of a generated corpus of GB gigabytes peaks below
# 1 GB of RSS, and its shards equal those of a small run on a prefix of the same inputs.
#   scripts/prepare_memory_check.sh ATTNLAB GB [WORK_DIR]   (GPT-2 vocabulary: $GPT2_VOCAB or ../shared/data/gpt2;
#                                                            KEEP_CORPUS=1 reuses WORK_DIR's corpus)
# The corpus: tinyshakespeare windows of 4 KB with perturbed words (random case, digits,
# non-ASCII letters and spaces), one JSON document per line, in files of 1 GB.
set -euo pipefail
A=$1; GB=$2; W=${3:-/tmp/attn_prepmem}
V=${GPT2_VOCAB:-../shared/data/gpt2}; [ -f "$V/encoder.json" ] || V=/work/shared/data/gpt2
TS=${TINYSHAKESPEARE:-../shared/data/tinyshakespeare/input.txt}; [ -f "$TS" ] || TS=/work/shared/data/tinyshakespeare/input.txt
if [ -n "${KEEP_CORPUS:-}" ] && [ -d "$W/in" ]; then rm -rf "$W/full" "$W/small"; else
rm -rf "$W"; mkdir -p "$W/in" "$W/prefix"
/usr/bin/python3 - "$TS" "$W/in" "$GB" <<'PY'
import json, random, sys
base = open(sys.argv[1], encoding="utf-8").read()
out, gb = sys.argv[2], float(sys.argv[3])
extra = ["ё", "日本", "١٢", "\u00a0", "１２", "—", "🙂", "é"]
rng = random.Random(18)
target, written, part, f = gb * 1e9, 0, 0, None
while written < target:
    if f is None or f.tell() > 1e9:
        if f: f.close()
        f = open(f"{out}/part_{part:03d}.jsonl", "w", encoding="utf-8"); part += 1
    s = rng.randrange(0, len(base) - 4096)
    words = base[s:s + 4096].split(" ")
    for _ in range(8):
        k = rng.randrange(len(words))
        words[k] = rng.choice([words[k].upper(), words[k] + str(rng.randrange(1000)), words[k] + rng.choice(extra)])
    line = json.dumps({"text": " ".join(words)}, ensure_ascii=False) + "\n"
    f.write(line); written += len(line.encode())
f.close()
PY
fi
head -n 20000 "$W/in/part_000.jsonl" > "$W/prefix/part_000.jsonl"
echo "corpus: $(du -sh "$W/in" | cut -f1) in $(ls "$W/in" | wc -l) files"
/usr/bin/time -v "$A" prepare --tokenizer gpt2 --gpt2-vocab "$V" --input "$W/in" --out "$W/full" \
  --shard-tokens 10000000 > "$W/full.log" 2> "$W/full.time"
grep -E "documents|wrote" "$W/full.log"
grep -E "Maximum resident|Elapsed" "$W/full.time"
"$A" prepare --tokenizer gpt2 --gpt2-vocab "$V" --input "$W/prefix" --out "$W/small" --shard-tokens 10000000 > "$W/small.log"
same=0; differ=0
for s in "$W"/small/train_*.bin "$W"/small/val_*.bin; do
  b=$(basename "$s"); last=$(ls "$W/small/${b%%_*}"_*.bin | tail -1)
  [ "$s" = "$last" ] && continue   # the prefix run's last shard of a split is partial
  if cmp -s "$s" "$W/full/$b"; then same=$((same + 1)); else differ=$((differ + 1)); echo "DIFFERS: $b"; fi
done
echo "prefix run: $same full shards equal to the big run's, $differ differ"
[ "$differ" = 0 ]
