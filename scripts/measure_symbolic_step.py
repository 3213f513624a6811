"""Measure the time of one full symbolic step on a synthetic 100-epoch history.

One step is what the controller runs after each training: the history's facts and the
ProbLog diagnosis (SymbolicBlock.diagnose), LFI of the rule weights on ~20 observations
(learn_weights) and the choice of actions (choose_actions). The block itself is built
once, outside the timing, as the controller does. Prints the median and quartiles in ms,
for the whole step and for each part.

    python3 scripts/measure_symbolic_step.py [--repetitions N] [--observations M]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdt.symbolic.rule_learning import Observation, learn_weights  # noqa: E402
from sdt.symbolic.block import SymbolicBlock, choose_actions  # noqa: E402


def synthetic_history(epochs: int, rng: np.random.Generator) -> dict[str, list[float]]:
    """A noisy, converging, slightly overfitting 10-class training."""
    t = np.arange(epochs)
    loss = 0.15 + 1.8 * np.exp(-t / 12) + rng.normal(0, 0.01, epochs)
    accuracy = np.clip(0.97 - 0.65 * np.exp(-t / 12) + rng.normal(0, 0.003, epochs), 0, 1)
    val_loss = 0.45 + 1.5 * np.exp(-t / 10) + 0.004 * t + rng.normal(0, 0.02, epochs)
    val_accuracy = np.clip(0.85 - 0.5 * np.exp(-t / 10) + rng.normal(0, 0.005, epochs), 0, 1)
    return {"loss": loss.tolist(), "accuracy": accuracy.tolist(),
            "val_loss": val_loss.tolist(), "val_accuracy": val_accuracy.tolist()}


def quartiles_ms(samples: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(samples, n=4)
    return q1 * 1000, median * 1000, q3 * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--observations", type=int, default=20,
                        help="LFI observations per step (default 20)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the history (default 100)")
    args = parser.parse_args(argv)
    if args.repetitions < 2 or args.observations < 0 or args.epochs < 1:
        print("error: --repetitions must be >= 2, --observations >= 0, --epochs >= 1",
              file=sys.stderr)
        return 2

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    block = SymbolicBlock()
    build_seconds = time.perf_counter() - start
    initial = block.initial_weights()
    keys = list(initial)
    history = synthetic_history(args.epochs, rng)
    observations = [Observation(*keys[int(rng.integers(len(keys)))],
                                improved=bool(rng.random() < 0.5))
                    for _ in range(args.observations)]

    # One untimed warm-up step (imports, first compilations).
    weights = learn_weights(initial, observations)
    choose_actions(block.diagnose(history, 10, weights), set(), rng)

    totals, diagnose_times, learn_times, choose_times = [], [], [], []
    for _ in range(args.repetitions):
        t0 = time.perf_counter()
        weights = learn_weights(initial, observations)
        t1 = time.perf_counter()
        diagnosis = block.diagnose(history, 10, weights)
        t2 = time.perf_counter()
        choose_actions(diagnosis, set(), rng)
        t3 = time.perf_counter()
        learn_times.append(t1 - t0)
        diagnose_times.append(t2 - t1)
        choose_times.append(t3 - t2)
        totals.append(t3 - t0)

    print(f"symbolic step: {args.epochs}-epoch history, {args.observations} LFI observations, "
          f"{args.repetitions} repetitions (SymbolicBlock built once in "
          f"{build_seconds * 1000:.1f} ms); problems found: {', '.join(diagnosis.problem_names()) or 'none'}")
    for label, samples in (("full step", totals), ("diagnose (facts + ProbLog)", diagnose_times),
                           ("learn_weights (LFI)", learn_times), ("choose_actions", choose_times)):
        q1, median, q3 = quartiles_ms(samples)
        print(f"  {label:<28} median {median:8.2f} ms   quartiles {q1:8.2f} - {q3:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
