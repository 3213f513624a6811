"""Runs a real tuning run and SIGKILLs its own process at a chosen point (for the reliability tests).

    python3 tests/fault_driver.py LOG_FOLDER KILL_POINT TRIAL [--resume] [--max-evals N] [--epochs E]
                                  [--search-space FILE]

KILL_POINT is `training` (after the first epoch of trial TRIAL), `symbolic` (inside the diagnosis
of trial TRIAL), `db_write` (inside the database transaction that stores trial TRIAL) or `none`.
The faults are injected by patching from here, so the tuner itself carries no test hooks.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_folder")
    parser.add_argument("kill_point", choices=("training", "symbolic", "db_write", "none"))
    parser.add_argument("trial", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--max-evals", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-space", default=None, help="a search-space file (default: the paper's)")
    args = parser.parse_args()

    from sdt.neural import backend
    backend.prepare_environment()   # what the command line does before TensorFlow is imported

    import keras
    from sdt.neural import network as neural_network
    from sdt.run import storage
    from sdt.symbolic import block as symbolic
    from sdt.run import loop as tuner

    if args.kill_point == "training":
        original_train = neural_network.train

        class KillAfterFirstEpoch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                die()

        def train(*positional, **keywords):
            if Path(keywords["model_path"]).parent.name == f"trial_{args.trial:04d}":
                keywords["extra_callbacks"] = [KillAfterFirstEpoch()]
            return original_train(*positional, **keywords)
        neural_network.train = train

    elif args.kill_point == "symbolic":
        original_diagnose = symbolic.SymbolicBlock.diagnose
        calls = {"n": 0}

        def diagnose(self, *positional, **keywords):
            if calls["n"] == args.trial:
                die()
            calls["n"] += 1
            return original_diagnose(self, *positional, **keywords)
        symbolic.SymbolicBlock.diagnose = diagnose

    elif args.kill_point == "db_write":
        original_insert_space = storage.RunStorage._insert_space

        def insert_space(connection, trial_index, space, architecture):
            # Called inside commit_trial's transaction, after the trial's other rows.
            if trial_index == args.trial:
                die()
            return original_insert_space(connection, trial_index, space, architecture)
        storage.RunStorage._insert_space = staticmethod(insert_space)

    config = tuner.RunConfig(dataset="digits", max_evals=args.max_evals, epochs=args.epochs,
                             seed=args.seed, initial_points=2, search_space_path=args.search_space)
    tuner.run(config, Path(args.log_folder), resume=args.resume,
              resume_budget=args.max_evals if args.resume else None)


if __name__ == "__main__":
    main()
