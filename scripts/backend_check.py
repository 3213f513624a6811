"""Per Keras backend: one fixed configuration's epoch time through the tuner against a bare
`model.fit` of the same model, on whatever device the backend sees (issue 15).

    python3 scripts/backend_check.py                       # every installed backend, 4 epochs
    python3 scripts/backend_check.py --backends jax --epochs 3 --examples 2000

Each backend runs in its own process (Keras takes its backend at import). The tuner's epoch is
`sdt.neural.network.train` (the seeded input pipeline of sdt/neural/backend.py, the training-subset
evaluation after each epoch, TensorBoard logs, early stopping off); the bare one is `model.fit` of
the same network and optimiser on the NumPy arrays. Epoch times are medians over the epochs after
the first (the first includes tracing or compiling). One JSON line per backend on stdout, then a
Markdown table.

With `--repeats R` the measurement runs R times, in turn with the tuner's training first and the
bare one first, each time in a new process; the row gives the medians of the epoch times and of
the R ratios, and the ratios themselves (run-to-run noise on a shared machine is about as large as
the 10 % the issue allows, so one run can neither meet nor miss the bar).

With `--side-by-side N`, N tuner trainings of the same configuration also run at once, each in its
own process, as N tuner workers sharing one GPU would (`--workers N`): the row adds their summed
throughput (training images per second in the epochs after the first, while all N run) against one
training alone. Where the backend sees no GPU the trainings share the CPU, and the row says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("tensorflow", "jax", "torch")
# A fixed configuration of the paper's space (the middle of its ranges).
PARAMS = {"unit_c1": 32, "dr1_2": 0.2, "unit_c2": 64, "unit_d": 256, "dr_f": 0.3, "learning_rate": 1e-3,
          "batch_size": 64, "optimizer": "Adam", "activation": "relu"}


def load(backend_name: str, examples: int | None, dataset_name: str):
    """Keras on `backend_name` (set before Keras is imported) and the dataset, cut to `examples`."""
    sys.path.insert(0, str(REPO))
    from sdt.neural import backend
    backend.prepare_environment(backend_name)
    from sdt.data.datasets import load_dataset

    dataset = load_dataset(dataset_name, seed=0)
    if examples:
        from dataclasses import replace
        dataset = replace(dataset, x_train=dataset.x_train[:examples], y_train=dataset.y_train[:examples])
    return dataset


def epoch_timer():
    """A Keras callback that records each epoch's wall time (seconds) in its `times`."""
    import keras

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []
            self.ends: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.started)
            self.ends.append(time.time())

    return EpochTimes()


def tuner_training(dataset, epochs: int):
    """One training of the fixed configuration through the tuner; its epoch timer."""
    from sdt.core.records import Architecture
    from sdt.neural import network

    tuner_times = epoch_timer()
    with tempfile.TemporaryDirectory() as folder:
        result = network.train(PARAMS, Architecture(), dataset, epochs=epochs, seed=0,
                               tensorboard_dir=Path(folder) / "logs", model_path=Path(folder) / "model.keras",
                               early_stopping_patience=None, extra_callbacks=[tuner_times])
    assert result.status == "completed", result.error
    return tuner_times


def measure_one_of_many(backend_name: str, epochs: int, examples: int | None, dataset_name: str) -> dict:
    """In this process, one of the side-by-side trainings: its epochs' start and end times."""
    dataset = load(backend_name, examples, dataset_name)
    times = tuner_training(dataset, epochs)
    return {"examples": len(dataset.x_train), "epoch_ends": times.ends, "epoch_seconds": times.times}


def bare_training(dataset, epochs: int):
    """One `model.fit` of the same network and optimiser on the NumPy arrays; its epoch timer."""
    import keras
    import numpy as np
    from sdt.core.records import Architecture
    from sdt.neural import network

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = network.build_model(PARAMS, Architecture(), dataset.input_shape, dataset.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=PARAMS["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    bare_times = epoch_timer()
    model.fit(np.asarray(dataset.x_train, dtype=np.float32), np.asarray(dataset.y_train),
              batch_size=PARAMS["batch_size"], epochs=epochs, verbose=0, callbacks=[bare_times],
              validation_data=(np.asarray(dataset.x_val, dtype=np.float32), np.asarray(dataset.y_val)))
    return bare_times


def measure(backend_name: str, epochs: int, examples: int | None, dataset_name: str,
            bare_first: bool = False) -> dict:
    """In this process, on `backend_name` (set before Keras is imported): both epoch times."""
    dataset = load(backend_name, examples, dataset_name)
    from sdt.neural import backend

    if bare_first:
        bare_times = bare_training(dataset, epochs)
        tuner_times = tuner_training(dataset, epochs)
    else:
        tuner_times = tuner_training(dataset, epochs)
        bare_times = bare_training(dataset, epochs)
    tuner_epoch = statistics.median(tuner_times.times[1:] or tuner_times.times)
    bare_epoch = statistics.median(bare_times.times[1:] or bare_times.times)
    return {"backend": backend_name, "device": backend.device_summary(), "examples": len(dataset.x_train),
            "epochs": epochs, "tuner_epoch_seconds": tuner_epoch, "bare_epoch_seconds": bare_epoch,
            "ratio": tuner_epoch / bare_epoch, "tuner_first_epoch_seconds": tuner_times.times[0],
            "bare_first_epoch_seconds": bare_times.times[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=None,
                        help="comma-separated backends (default: every installed one of tensorflow, jax, torch)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training (default 4)")
    parser.add_argument("--examples", type=int, default=None, help="training examples used (default: all)")
    parser.add_argument("--dataset", default="fashion_mnist_small", help="dataset (default fashion_mnist_small)")
    parser.add_argument("--side-by-side", type=int, default=0, metavar="N",
                        help="also run N tuner trainings at once and measure their summed throughput (default: no)")
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="measure R times, alternating which training runs first; medians (default 1)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)     # the per-backend child process
    parser.add_argument("--bare-first", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-of-many", default=None, help=argparse.SUPPRESS)   # a side-by-side child
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch, which compiles, is not counted)")
    if args.side_by_side < 0 or args.side_by_side == 1:
        parser.error("--side-by-side must be 0 (off) or at least 2")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.one:
        print(json.dumps(measure(args.one, args.epochs, args.examples, args.dataset, args.bare_first)))
        return 0
    if args.one_of_many:
        print(json.dumps(measure_one_of_many(args.one_of_many, args.epochs, args.examples, args.dataset)))
        return 0
    names = args.backends.split(",") if args.backends else [
        name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--one", name, "--epochs", str(args.epochs), "--dataset", args.dataset]
        if args.examples:
            command += ["--examples", str(args.examples)]
        runs = []
        for repeat in range(args.repeats):
            first = "the bare fit" if repeat % 2 else "the tuner"
            print(f"{name}: measuring ({repeat + 1} of {args.repeats}, {first} first) ...", file=sys.stderr, flush=True)
            child = subprocess.run(command + (["--bare-first"] if repeat % 2 else []), capture_output=True,
                                   text=True, env={**os.environ, "KERAS_BACKEND": name})
            if child.returncode != 0:
                print(f"error: {name}: {child.stderr.strip().splitlines()[-1] if child.stderr.strip() else 'failed'}",
                      file=sys.stderr)
                return 1
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        row = dict(runs[0])
        if args.repeats > 1:
            for key in ("tuner_epoch_seconds", "bare_epoch_seconds", "ratio",
                        "tuner_first_epoch_seconds", "bare_first_epoch_seconds"):
                row[key] = statistics.median(run[key] for run in runs)
        row.update(repeats=args.repeats, ratios=[run["ratio"] for run in runs])
        if args.side_by_side:
            print(f"{name}: {args.side_by_side} trainings side by side ...", file=sys.stderr, flush=True)
            side = side_by_side(name, args.side_by_side, command[:2] + ["--one-of-many", name] + command[4:])
            if side is None:
                return 1
            alone = row["examples"] / row["tuner_epoch_seconds"]
            row.update(side_by_side=args.side_by_side, alone_images_per_second=alone,
                       side_by_side_images_per_second=side, side_by_side_gain=side / alone)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| backend | device | examples | tuner epoch | bare model.fit epoch | tuner / bare | ratio of each run | "
          "first epochs (tuner, bare) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['backend']} | {row['device']} | {row['examples']} | {row['tuner_epoch_seconds']:.2f} s | "
              f"{row['bare_epoch_seconds']:.2f} s | {row['ratio']:.2f} | "
              f"{', '.join(f'{ratio:.2f}' for ratio in row['ratios'])} | {row['tuner_first_epoch_seconds']:.1f} s, "
              f"{row['bare_first_epoch_seconds']:.1f} s |")
    if args.side_by_side:
        print("\n| backend | device | trainings at once | images/s, one alone | images/s, all together | gain |")
        print("| --- | --- | --- | --- | --- | --- |")
        for row in rows:
            shared = "" if " on GPU" in row["device"] else " (no GPU: they share the CPU)"
            print(f"| {row['backend']} | {row['device']}{shared} | {row['side_by_side']} | "
                  f"{row['alone_images_per_second']:.0f} | {row['side_by_side_images_per_second']:.0f} | "
                  f"{row['side_by_side_gain']:.2f} |")
    return 0


def side_by_side(name: str, count: int, command: list[str]) -> float | None:
    """Run `count` tuner trainings at once; their summed images per second while all of them ran.

    Each child reports when each of its epochs ended. The window is from the last child's first
    epoch end (every compilation is over) to the first child's last epoch end (all still running);
    each child's throughput in it is its examples per epoch over its epochs that ended inside it.
    """
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "KERAS_BACKEND": name}) for _ in range(count)]
    reports = []
    for child in children:
        stdout, stderr = child.communicate()
        if child.returncode != 0:
            print(f"error: {name}: side by side: {stderr.strip().splitlines()[-1] if stderr.strip() else 'failed'}",
                  file=sys.stderr)
            return None
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    start = max(report["epoch_ends"][0] for report in reports)
    end = min(report["epoch_ends"][-1] for report in reports)
    total = 0.0
    for report in reports:
        inside = [seconds for ended, seconds in zip(report["epoch_ends"][1:], report["epoch_seconds"][1:])
                  if start < ended <= end]
        epochs = inside or report["epoch_seconds"][1:]     # no overlap at all: its own steady epochs
        total += report["examples"] / statistics.median(epochs)
    return total


if __name__ == "__main__":
    sys.exit(main())
