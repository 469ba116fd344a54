"""Issue 21, acceptance 2: val losses of bf16 and fp8 at every eval, the largest difference, NaN/inf/skips."""
import json, math, os, sys
out = sys.argv[1]
for run in ("qsh", "q124"):
    val, bad = {}, 0
    for p in ("bf16", "fp8"):
        path = f"{out}/{run}_{p}.jsonl"
        if not os.path.exists(path):
            print(f"{run} {p}: no metrics"); break
        rows = [json.loads(l) for l in open(path)]
        val[p] = {d["step"]: d["val_loss"] for d in rows if "val_loss" in d}
        bad += sum(1 for d in rows for k in ("loss", "val_loss", "grad_norm") if k in d and not math.isfinite(d[k]))
        bad += sum(1 for d in rows if d.get("skipped"))
    if len(val) < 2: continue
    steps = [s for s in sorted(val["bf16"]) if s in val["fp8"]]
    for s in steps:
        b, f = val["bf16"][s], val["fp8"][s]
        print(f"{run} step {s}: bf16 {b:.4f} fp8 {f:.4f} ({100 * abs(f - b) / b:.2f}%)")
    worst = max(100 * abs(val["fp8"][s] - val["bf16"][s]) / val["bf16"][s] for s in steps)
    print(f"{run}: {len(steps)} evals, largest difference {worst:.2f}% (acceptance <= 1.5%), non-finite or skipped: {bad}")
