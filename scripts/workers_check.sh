#!/usr/bin/env bash
# Run from the repository root: bash scripts/workers_check.sh [OUTPUT_FOLDER]   (issue 16, docs/benchmarks.md)
# --workers 1 against --workers 2 on digits: same seed, budget and epochs; wall time and best accuracy.
set -e
out=${1:-workers_check}
mkdir -p "$out"
for seed in 0 1 2; do
  for workers in 1 2; do
    folder="$out/w${workers}_seed${seed}"
    start=$(date +%s.%N)
    python3 main.py --dataset digits --max-evals 8 --epochs 6 --initial-points 3 --seed "$seed" \
        --workers "$workers" --log-folder "$folder" --overwrite > "$folder.log" 2>&1
    end=$(date +%s.%N)
    python3 - "$folder" "$workers" "$seed" "$start" "$end" <<'PY'
import json, sys
folder, workers, seed, start, end = sys.argv[1:]
summary = json.load(open(f"{folder}/summary.json"))
best = max(t["val_accuracy"] or 0 for t in summary["trials"])
training = sum(t["training_seconds"] or 0 for t in summary["trials"])
print(f"workers {workers} seed {seed}: wall {float(end) - float(start):.1f} s, training time summed "
      f"{training:.1f} s, best val_accuracy {best:.4f}, test {summary['best']['test_accuracy']:.4f}")
PY
  done
done
