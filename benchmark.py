"""Benchmark: Symbolic DNN-Tuner against plain BO, random search and Optuna TPE on equal budgets.

Every strategy runs through the same tuner (same trainer, same initial space, same budget) once
per seed, then the results are summarised:

  <output>/results.md      the table (medians and min-max over seeds) and the checks
  <output>/best_so_far.png best-so-far validation accuracy against the trial index
  <output>/trials.csv      raw per-trial results of every run
  <output>/runs/<strategy>_seed<seed>/   each run's own log folder

  python3 benchmark.py --quick                 # 13.9 minutes measured on 2 CPU cores
  python3 benchmark.py --dataset fashion_mnist --seeds 0,1,2 --max-evals 20 --epochs 15

Finished runs are kept in the output folder: started again with the same options, the benchmark
reuses them and runs only what is missing.

`--checks` adds the measurements the tuner is held to: resident memory after 30 trainings vs
after 3, and one fixed configuration trained by the tuner vs a bare `model.fit` of the same model.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_DIR))

from sdt.neural import backend  # noqa: E402

backend.prepare_environment()   # before anything imports TensorFlow

from sdt.core.errors import TunerError  # noqa: E402
from sdt.run.storage import RunStorage  # noqa: E402

DEFAULT_STRATEGIES = ("sdt", "bo", "random", "tpe")
QUICK = {"seeds": "0,1", "max_evals": 5, "epochs": 4, "initial_points": 3}
FULL = {"seeds": "0,1,2", "max_evals": 20, "epochs": 15, "initial_points": 5}
FIXED_PARAMS = {"unit_c1": 32, "dr1_2": 0.15, "unit_c2": 96, "unit_d": 384, "dr_f": 0.25,
                "learning_rate": 1e-3, "batch_size": 64, "optimizer": "Adam", "activation": "relu"}


# --------------------------------------------------------------------------------------------
# Running the strategies
# --------------------------------------------------------------------------------------------

def finished_run(folder: Path, timing_file: Path, config) -> tuple[float, float, dict[str, Any]] | None:
    """(start time, wall seconds, summary) of a finished run of `config` in `folder`, else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        stored = RunStorage.open(folder, read_only=True)
    except (OSError, ValueError, TunerError):
        return None
    with stored:
        same = stored.run_value("config") == json.loads(json.dumps(config.__dict__))
        trials = stored.stored_trials()
        final = stored.run_value("final")
    if not same or len(trials) != config.max_evals or final is None:
        return None
    if timing_file.exists():
        timing = json.loads(timing_file.read_text())
        return timing["started"], timing["wall_seconds"], summary
    # Finished before timings were kept: from the first training's start to the last one's end.
    started = trials[0].finished_at - trials[0].record.result.duration_seconds
    return started, trials[-1].finished_at - started, summary


def run_strategy(strategy: str, seed: int, args, output: Path) -> list[dict[str, Any]]:
    """One tuning run; returns its trials as flat rows."""
    from sdt.cli.console import ConsoleObserver
    from sdt.run import exports
    from sdt.run import loop as tuner
    folder = output / "runs" / f"{strategy}_seed{seed}"
    timing_file = folder.parent / f"{strategy}_seed{seed}.json"
    config = tuner.RunConfig(dataset=args.dataset, max_evals=args.max_evals, epochs=args.epochs, seed=seed,
                             strategy=strategy, initial_points=args.initial_points)
    finished = finished_run(folder, timing_file, config)
    if finished is not None:
        # A finished run of the same configuration (an interrupted benchmark started again): reuse it.
        started, wall, summary = finished
    else:
        started = time.time()
        with open(folder.parent / f"{strategy}_seed{seed}.log", "w") as log_stream:
            summary = tuner.run(config, folder, overwrite=True, observer=ConsoleObserver(log_stream))
        wall = time.time() - started
        timing_file.write_text(json.dumps({"config": config.__dict__, "started": started, "wall_seconds": wall}))
    rows = []
    previous_end = started
    with RunStorage.open(folder, read_only=True) as storage:
        stored_trials = storage.stored_trials()
    for trial in stored_trials:
        record = trial.record
        fields = exports.record_fields(record)
        iteration = trial.finished_at - previous_end
        previous_end = trial.finished_at
        rows.append({
            "strategy": strategy, "seed": seed, "index": record.index, "status": fields["status"],
            "objective": record.objective, "val_loss": fields["val_loss"],
            "val_accuracy": fields["val_accuracy"], "epochs_run": fields["epochs_run"],
            "training_seconds": fields["duration_seconds"], "symbolic_seconds": record.symbolic_seconds,
            "iteration_seconds": iteration,
            "problems": ";".join(fields["problems"]),
            "actions": ";".join(fields["actions"]),
            "test_accuracy": (summary["best"] or {}).get("test_accuracy")
            if summary["best"] and summary["best"]["index"] == record.index else None,
            "run_wall_seconds": wall,
        })
    return rows


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

def best_so_far(values: list[float | None]) -> list[float]:
    best, out = float("-inf"), []
    for value in values:
        if value is not None:
            best = max(best, value)
        out.append(best if best != float("-inf") else float("nan"))
    return out


def median_range(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "n/a"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def runs_of(rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault((row["strategy"], row["seed"]), []).append(row)
    for trials in runs.values():
        trials.sort(key=lambda r: r["index"])
    return runs


def summarise(rows: list[dict[str, Any]], strategies: list[str]) -> list[dict[str, str]]:
    """One table row per strategy."""
    runs = runs_of(rows)
    seeds = sorted({seed for _, seed in runs})
    table = []
    for strategy in strategies:
        mine = {seed: runs[(strategy, seed)] for seed in seeds if (strategy, seed) in runs}
        if not mine:
            continue
        best_accuracy = [max((t["val_accuracy"] or 0.0) for t in trials) for trials in mine.values()]
        best_loss = [min((t["val_loss"] for t in trials if t["val_loss"] is not None), default=None)
                     for trials in mine.values()]
        test_accuracy = [next((t["test_accuracy"] for t in trials if t["test_accuracy"] is not None), None)
                         for trials in mine.values()]
        # Trainings needed to reach plain BO's final best validation accuracy (same seed).
        needed = []
        for seed, trials in mine.items():
            if ("bo", seed) not in runs:
                continue
            target = max((t["val_accuracy"] or 0.0) for t in runs[("bo", seed)])
            curve = best_so_far([t["val_accuracy"] for t in trials])
            reached = next((i + 1 for i, value in enumerate(curve) if value >= target), None)
            needed.append(reached)
        symbolic = [t["symbolic_seconds"] for trials in mine.values() for t in trials if t["symbolic_seconds"]]
        shares = [t["symbolic_seconds"] / t["iteration_seconds"] for trials in mine.values() for t in trials
                  if t["symbolic_seconds"] and t["iteration_seconds"] > 0]
        wall = [trials[0]["run_wall_seconds"] for trials in mine.values()]
        reached_text = (", ".join("not reached" if n is None else str(n) for n in needed) if needed else "n/a")
        table.append({
            "strategy": strategy,
            "best val_accuracy": median_range(best_accuracy),
            "best val_loss": median_range(best_loss),
            "test accuracy of best": median_range(test_accuracy),
            "trainings to reach BO's best (per seed)": reached_text,
            "total wall time": f"{sum(wall) / 60:.1f} min ({len(wall)} runs)",
            "symbolic step, median": f"{statistics.median(symbolic) * 1000:.0f} ms" if symbolic else "n/a",
            "symbolic share of iteration": f"{statistics.median(shares) * 100:.2f} %" if shares else "n/a",
        })
    return table


def markdown_table(table: list[dict[str, str]]) -> str:
    if not table:
        return "(no results)\n"
    headers = list(table[0])
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(row[h] for h in headers) + " |" for row in table]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], strategies: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    runs = runs_of(rows)
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for strategy in strategies:
        curves = [best_so_far([t["val_accuracy"] for t in trials])
                  for (name, _), trials in sorted(runs.items()) if name == strategy]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        matrix = np.array([c[:length] for c in curves], dtype=float)
        x = np.arange(1, length + 1)
        median = np.nanmedian(matrix, axis=0)
        axes.plot(x, median, marker="o", label=f"{strategy} (median of {len(curves)})")
        axes.fill_between(x, np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0), alpha=0.15)
    axes.set_xlabel("trial")
    axes.set_ylabel("best-so-far validation accuracy")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# Checks: memory across trainings, the tuner's training overhead
# --------------------------------------------------------------------------------------------

def memory_check(trainings: int = 30) -> dict[str, float]:
    """Resident memory after 3 and after `trainings` tiny trainings in one process."""
    import psutil
    from sdt.data import datasets
    from sdt.neural import network as neural_network
    from sdt.core.records import Architecture
    dataset = datasets.load_dataset("digits", seed=0)
    params = {**FIXED_PARAMS, "unit_c1": 8, "unit_c2": 8, "unit_d": 16}
    process = psutil.Process()
    rss = {}
    for index in range(1, trainings + 1):
        neural_network.train(params, Architecture(), dataset, epochs=1, seed=index, tensorboard_dir=None,
                             model_path=None, early_stopping_patience=None)
        gc.collect()
        if index in (3, trainings):
            rss[index] = process.memory_info().rss / 2**20
    return {"rss_after_3_mb": rss[3], f"rss_after_{trainings}_mb": rss[trainings],
            "growth_percent": (rss[trainings] - rss[3]) / rss[3] * 100}


def overhead_check(dataset_name: str, epochs: int = 2, repetitions: int = 3) -> dict[str, float]:
    """One fixed configuration: the tuner's train() against a bare model.fit on the same arrays."""
    import keras
    from sdt.data import datasets
    from sdt.neural import network as neural_network
    from sdt.core.records import Architecture
    dataset = datasets.load_dataset(dataset_name, seed=0)
    tuner_times, bare_times = [], []
    for repetition in range(repetitions):
        started = time.perf_counter()
        neural_network.train(FIXED_PARAMS, Architecture(), dataset, epochs=epochs, seed=repetition,
                             tensorboard_dir=None, model_path=None, early_stopping_patience=None)
        tuner_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        keras.backend.clear_session()
        keras.utils.set_random_seed(repetition)
        model = neural_network.build_model(FIXED_PARAMS, Architecture(), dataset.input_shape, dataset.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=FIXED_PARAMS["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(dataset.x_train, dataset.y_train, batch_size=FIXED_PARAMS["batch_size"], epochs=epochs,
                  validation_data=(dataset.x_val, dataset.y_val), verbose=0)
        bare_times.append(time.perf_counter() - started)
    tuner_median, bare_median = statistics.median(tuner_times), statistics.median(bare_times)
    return {"tuner_train_seconds": tuner_median, "bare_fit_seconds": bare_median,
            "overhead_percent": (tuner_median - bare_median) / bare_median * 100}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"small budget: seeds {QUICK['seeds']}, {QUICK['max_evals']} trials of "
                             f"{QUICK['epochs']} epochs, plus the checks")
    parser.add_argument("--dataset", default="fashion_mnist_small")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                        help="comma-separated (default: sdt,bo,random,tpe; tpe needs Optuna)")
    parser.add_argument("--seeds", default=None, help=f"comma-separated seeds (default {FULL['seeds']})")
    parser.add_argument("--max-evals", type=int, default=None, help=f"trainings per run (default {FULL['max_evals']})")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per training (default {FULL['epochs']})")
    parser.add_argument("--initial-points", type=int, default=None)
    parser.add_argument("--checks", action="store_true", help="also run the memory and overhead checks")
    parser.add_argument("--output-dir", default="benchmark_results")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.seeds = [int(s) for s in (args.seeds or preset["seeds"]).split(",")]
    args.max_evals = args.max_evals or preset["max_evals"]
    args.epochs = args.epochs or preset["epochs"]
    args.initial_points = args.initial_points or preset["initial_points"]
    args.strategies = [s for s in args.strategies.split(",") if s]
    args.checks = args.checks or args.quick
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output_dir).resolve()
    (output / "runs").mkdir(parents=True, exist_ok=True)
    if "tpe" in args.strategies:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("Optuna is not installed (pip install -r requirements-optuna.txt): skipping tpe", file=sys.stderr)
            args.strategies.remove("tpe")
    started = time.time()
    rows: list[dict[str, Any]] = []
    total = len(args.strategies) * len(args.seeds)
    try:
        for number, (seed, strategy) in enumerate(
                ((seed, strategy) for seed in args.seeds for strategy in args.strategies), start=1):
            print(f"[{number}/{total}] {strategy}, seed {seed}: {args.max_evals} trainings of up to "
                  f"{args.epochs} epochs on {args.dataset} ...", flush=True)
            run_rows = run_strategy(strategy, seed, args, output)
            rows += run_rows
            best = max((r["val_accuracy"] or 0.0) for r in run_rows)
            print(f"    best val_accuracy {best:.4f} in {run_rows[0]['run_wall_seconds'] / 60:.1f} min", flush=True)
    except TunerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    write_csv(rows, output / "trials.csv")
    title = (f"{args.dataset}: {args.max_evals} trainings x {args.epochs} epochs, "
             f"seeds {','.join(map(str, args.seeds))}")
    plot(rows, args.strategies, output / "best_so_far.png", title)
    report = [f"# Benchmark: {title}", "",
              f"Command: `python3 benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
              markdown_table(summarise(rows, args.strategies))]
    if args.checks:
        print("checks: memory over 30 trainings, tuner vs bare model.fit ...", flush=True)
        memory = memory_check()
        overhead = overhead_check(args.dataset)
        report += ["## Checks", "",
                   f"- resident memory after 3 trainings {memory['rss_after_3_mb']:.0f} MiB, after 30 "
                   f"{memory['rss_after_30_mb']:.0f} MiB: growth {memory['growth_percent']:+.1f} % (bar: within 10 %)",
                   f"- one fixed configuration, 2 epochs: tuner's train() {overhead['tuner_train_seconds']:.1f} s, "
                   f"bare model.fit {overhead['bare_fit_seconds']:.1f} s: overhead {overhead['overhead_percent']:+.1f} % "
                   f"(bar: within 10 %)", ""]
        (output / "checks.json").write_text(json.dumps({"memory": memory, "overhead": overhead}, indent=2))
    report.append(f"Total benchmark time: {(time.time() - started) / 60:.1f} min.\n")
    (output / "results.md").write_text("\n".join(report))
    print("\n".join(report))
    print(f"written: {output / 'results.md'}, {output / 'best_so_far.png'}, {output / 'trials.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
