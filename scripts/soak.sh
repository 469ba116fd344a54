#!/usr/bin/env bash
# Fault soak on the CPU build (issue 19): trains a small model again and again while injecting
# random faults — kill -9 (often inside a checkpoint save: saves are every 3 steps and fsync
# dominates the time), SIGINT, SIGTERM, a file-size limit (ulimit -f) that makes a checkpoint
# write fail — and resumes after each until the run completes. Every completed run must end
# bit-equal (weights, AdamW moments, last logged loss) to one uninterrupted reference run, with
# no stray file (*.tmp, *.old) and every checkpoint passing `attnlab check`.
#
#   scripts/soak.sh [minutes] [attnlab binary]      (default 30 minutes, build-cpu/attnlab)
#
# Prints one line per fault and a summary with the number of faults injected; exits 1 at
# the first violation, naming it.
set -euo pipefail
MINUTES=${1:-30}
BIN=$(realpath "${2:-build-cpu/attnlab}")
[ -x "$BIN" ] || { echo "error: $BIN is not built (cmake --build build-cpu --target attnlab)"; exit 1; }
WORK=$(mktemp -d "${SOAK_TMP:-/var/tmp}/attnlab_soak.XXXXXX")
# Only this shell cleans up: a background child signalled before it execs the trainer runs the
# EXIT trap too (a SIGTERM at 0.00 s used to delete the soak's own folder).
trap '[ "$BASHPID" = "$$" ] && rm -rf "$WORK"' EXIT
cd "$WORK"

mkdir text
for i in $(seq 1 400); do echo "line $i: the quick brown fox jumps over the lazy dog $((i * 7919 % 1000))"; done > text/a.txt
ARGS=(-c /dev/null --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.block_size=32
      --training.batch_size=4 --training.eval_iters=2 --training.eval_interval=25 --training.max_iters=150
      --checkpoint.interval=3 --checkpoint.keep=2 --device.backend=cpu --device.threads=1
      --logging.plot=false --logging.progress=false --data.tokenizer=char --data.inputs='["text"]' --data.dir=data)

fail() { echo "soak: FAILED: $*"; exit 1; }
last_loss() { grep '"loss"' "$1/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/'; }
final_ckpt() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

"$BIN" train "${ARGS[@]}" --training.out_dir=ref > ref.log 2>&1 || { cat ref.log; fail "the reference run failed"; }
REF=$(final_ckpt ref)
REF_LOSS=$(last_loss ref)

faults=0; kills=0; ints=0; terms=0; limits=0; runs=0
deadline=$(( $(date +%s) + MINUTES * 60 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  rm -rf run
  while :; do  # one run, resumed after each fault until it completes
    resume=(); [ -f run/checkpoints/latest ] && resume=(--resume)
    fault=$(( RANDOM % 5 ))  # 0,1: kill -9; 2: SIGINT; 3: SIGTERM; 4: file-size limit
    delay=$(printf '0.%02d' $(( RANDOM % 100 )))
    if [ $fault -eq 4 ]; then
      set +e
      (ulimit -f $(( 20 + RANDOM % 80 )); exec "$BIN" train "${ARGS[@]}" --training.out_dir=run "${resume[@]}") > out.log 2>&1
      rc=$?
      set -e
      if [ $rc -ne 0 ]; then
        grep -q "^error: writing .* failed (disk full or file-size limit" out.log || { cat out.log; fail "file-size limit: no clear error (exit $rc)"; }
        [ "$(wc -l < out.log)" -ge 1 ]
        limits=$((limits + 1)); faults=$((faults + 1))
        echo "fault $faults: file-size limit -> $(grep '^error:' out.log | cut -c1-110)"
        continue
      fi
    else
      "$BIN" train "${ARGS[@]}" --training.out_dir=run "${resume[@]}" > out.log 2>&1 &
      pid=$!
      sleep "$delay"
      case $fault in 0|1) sig=KILL ;; 2) sig=INT ;; 3) sig=TERM ;; esac
      kill -s $sig $pid 2>/dev/null || true
      set +e; { wait $pid; } 2>/dev/null; rc=$?; set -e
      if ! { [ $rc -eq 0 ] && grep -q "^done: step 150" out.log; }; then
        # KILL: 137. INT/TERM: a checkpoint and exit 0, or (before the handlers are installed,
        # at start-up) the default action, 130/143: nothing was saved by that process yet.
        if [ $rc -eq 137 ] && [ $sig = KILL ]; then kills=$((kills + 1))
        elif [ $sig = INT ] && { [ $rc -eq 130 ] || { [ $rc -eq 0 ] && grep -q "^stopped at step" out.log; }; }; then ints=$((ints + 1))
        elif [ $sig = TERM ] && { [ $rc -eq 143 ] || { [ $rc -eq 0 ] && grep -q "^stopped at step" out.log; }; }; then terms=$((terms + 1))
        else cat out.log; fail "SIG$sig: unexpected exit $rc"
        fi
        faults=$((faults + 1))
        echo "fault $faults: SIG$sig after ${delay}s -> exit $rc $(grep -o '^stopped at step [0-9]*' out.log || true)"
        continue
      fi
    fi
    grep -q "^done: step 150" out.log || { cat out.log; fail "the run ended without finishing"; }
    break
  done
  runs=$((runs + 1))
  GOT=$(final_ckpt run)
  cmp -s "$REF/model.safetensors" "$GOT/model.safetensors" || fail "run $runs: weights differ from the uninterrupted run"
  cmp -s "$REF/optimizer.safetensors" "$GOT/optimizer.safetensors" || fail "run $runs: AdamW moments differ"
  [ "$(last_loss run)" = "$REF_LOSS" ] || fail "run $runs: last loss $(last_loss run), uninterrupted $REF_LOSS"
  stray=$(find run -name '*.tmp' -o -name '*.old')
  [ -z "$stray" ] || fail "run $runs: stray files: $stray"
  "$BIN" check run > check.log 2>&1 || { cat check.log; fail "run $runs: attnlab check"; }
  echo "run $runs complete: bit-equal to the uninterrupted run (loss $REF_LOSS), no stray files, checkpoints verified"
done
echo "soak: $faults faults injected in $MINUTES min ($kills kill -9, $ints SIGINT, $terms SIGTERM, $limits file-size limit)," \
     "$runs runs completed, each bit-equal to the uninterrupted run with no stray files"
