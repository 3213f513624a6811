"""Symbolic DNN-Tuner: tune a Keras CNN with Bayesian optimisation and probabilistic tuning rules.

Each iteration the optimiser proposes hyper-parameters, the network is trained, ProbLog
diagnoses the training curves (overfitting, underfitting, increasing or fluctuating loss, a
learning rate too low or too high) and the most probable tuning actions edit the search
space or the network. With --prune (the default of the symbolic strategies) the same
diagnosis file is asked after every epoch whether the training can still succeed, and a
training stuck at chance, diverged or overshot for good is stopped (status pruned).
Everything is written to the log folder as it happens.

  python3 main.py                                   # default run on the embedded Fashion-MNIST subset
  python3 main.py --dataset digits --max-evals 5 --epochs 5
  python3 main.py --dataset digits --epoch-budget 60 --epochs 10   # as many trainings as 60 epochs allow
  python3 main.py --resume --log-folder log_folder  # continue an interrupted run
  python3 main.py --diagnose history.json           # diagnose a saved Keras history, no training
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sdt.neural import backend

# The backend's start-up settings (quiet TensorFlow logs...), before anything imports TensorFlow.
backend.prepare_environment()

from sdt.core.errors import TunerError  # noqa: E402  (after the environment is set)
from sdt.strategies.registry import STRATEGIES, all_options as all_strategy_options
from sdt.core.user_code import is_spec, normalise_spec
from sdt.run.loop import (
    DEFAULT_DATASET, DEFAULT_EARLY_STOPPING_PATIENCE, DEFAULT_EPOCHS, DEFAULT_GUIDANCE, DEFAULT_INITIAL_POINTS,
    DEFAULT_MAX_EVALS, RunConfig, check_timeout, check_workers, default_max_evals, resolve_path, run,
)
from sdt.core.vocabulary import VAL_ACCURACY, VAL_LOSS
from sdt.space.preference import GUIDANCES
from sdt.cli.console import ConsoleObserver
from sdt.core.arguments import ArgumentParser

DEFAULT_LOG_FOLDER = "log_folder"


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="fashion_mnist_small (default, embedded), fashion_mnist, mnist, cifar10, cifar100, "
                             "digits, a .npz file (x_train, y_train, x_test, y_test), an image folder "
                             "(one sub-folder per class) or a function module:function returning "
                             "(x_train, x_test, y_train, y_test, num_classes)")
    parser.add_argument("--max-evals", type=int, default=None,
                        help=f"number of trainings (default {DEFAULT_MAX_EVALS}, or with --epoch-budget as many "
                             f"as its epochs; with --resume, a new total budget)")
    parser.add_argument("--epoch-budget", type=int, default=None, metavar="N",
                        help="end the run once its trainings have trained N epochs in all (pruned ones "
                             "included); the training that crosses N still finishes. With --max-evals, "
                             "whichever comes first; with --resume, a new total (default: no epoch budget)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall time for this call: once a training ends past it, no further training "
                             "starts (the run stays resumable; not stored with the run; default: none)")
    parser.add_argument("--backend", default=None, choices=tuple(backend.BACKEND_MODULES),
                        help="the Keras backend training runs on: tensorflow, jax (pip install "
                             "\"symbolic-dnn-tuner[jax]\") or torch (\"symbolic-dnn-tuner[torch]\"); not stored "
                             "with the run (default: KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="trainings run at once: 1 trains one after the other in this process; more run "
                             "on a local Ray instance started for the run (pip install \"symbolic-dnn-tuner[ray]\"); "
                             "not stored with the run (default 1)")
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                        help="join the Ray cluster there (or 'auto': the one this machine belongs to) instead "
                             "of starting one; the log folder must be on a file system every node sees "
                             "(default: none)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="N",
                        help="CPUs each training asks Ray for (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="N",
                        help="GPUs each training asks Ray for; 1 gives each training its own GPU (default 0)")
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                        help="stop a training after any epoch when the stop rules of the diagnosis file say "
                             "it cannot succeed (stuck at chance, diverged, overshot for good); it is recorded "
                             "as pruned, with the reason (default: on for sdt and random-sdt, off for the "
                             "baselines)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"maximum epochs per training; early stopping may end sooner (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    parser.add_argument("--log-folder", default=DEFAULT_LOG_FOLDER,
                        help=f"where the run is written (default ./{DEFAULT_LOG_FOLDER})")
    parser.add_argument("--objective", default=None, choices=(VAL_LOSS, VAL_ACCURACY),
                        help="what the optimiser minimises: val_loss or val_accuracy (maximised); default "
                             "val_loss, and val_accuracy for --strategy meta-lr (the poster's)")
    parser.add_argument("--search-space", dest="search_space", metavar="FILE",
                        help="JSON search-space file (default: the paper's space, Listing 3)")
    parser.add_argument("--model", metavar="MODULE:FUNCTION", default=None,
                        help="your own Keras model: module:function or path/to/file.py:function, called as "
                             "function(params, architecture, input_shape, num_classes) (README, "
                             "'Your own model'; default: the paper's CNN)")
    parser.add_argument("--strategy", default="sdt", choices=STRATEGIES,
                        help="; ".join(f"{name}: {entry.description}" for name, entry in STRATEGIES.items()))
    parser.add_argument("--guidance", default=DEFAULT_GUIDANCE, choices=GUIDANCES,
                        help="how the tuning actions guide a symbolic strategy: prior (the edit's region "
                             "weights the optimiser's choice, fading with the trainings after it; the whole space "
                             "stays reachable), local (as prior, but an action on the run's best training prefers that "
                             "training with the edit: its neighbourhood) or edit (the paper's: the action cuts the "
                             "search space) "
                             f"(default {DEFAULT_GUIDANCE})")
    parser.add_argument("--initial-points", type=int, default=DEFAULT_INITIAL_POINTS,
                        help=f"random trials before the Gaussian process guides the search "
                             f"(default {DEFAULT_INITIAL_POINTS})")
    parser.add_argument("--patience", type=int, default=DEFAULT_EARLY_STOPPING_PATIENCE,
                        help=f"early-stopping patience in epochs, 0 = off (default {DEFAULT_EARLY_STOPPING_PATIENCE})")
    for option in all_strategy_options().values():   # declared on the strategies (sdt/strategies/*.py)
        parser.add_argument(option.flag, dest=option.name, type=option.type, default=None,
                            help=f"{option.help} (default {option.shown_default or option.default})")
    parser.add_argument("--resume", action="store_true", help="continue the run in --log-folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run in --log-folder and start a new one")
    parser.add_argument("--verbose", action="store_true", help="show Keras' per-epoch progress bars")
    parser.add_argument("--diagnose", metavar="HISTORY.json",
                        help="diagnose a saved Keras History.history JSON, print JSON and exit (no training)")
    parser.add_argument("--diagnosis", metavar="FILE", default=None,
                        help="ProbLog diagnosis program to use instead of the shipped diagnosis.pl")
    parser.add_argument("--rules", metavar="FILE", default=None,
                        help="ProbLog tuning rules to use instead of the shipped tuning_rules.pl")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.diagnose:
        from sdt.cli.diagnose import run_diagnose
        return run_diagnose(args.diagnose, diagnosis_path=args.diagnosis, rules_path=args.rules)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.resume and args.overwrite:
        print("error: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    dataset = args.dataset
    if os.path.exists(dataset):   # a path: store it absolute so --resume works from anywhere
        dataset = str(Path(dataset).resolve())
    elif is_spec(dataset):        # module:function; a file path in it made absolute likewise
        dataset = normalise_spec(dataset)
    max_evals = default_max_evals(args.epoch_budget, DEFAULT_MAX_EVALS) if args.max_evals is None else args.max_evals
    config = RunConfig(
        dataset=dataset, max_evals=max_evals, epochs=args.epochs, seed=args.seed,
        objective=args.objective, strategy=args.strategy, search_space_path=resolve_path(args.search_space),
        diagnosis_path=resolve_path(args.diagnosis), rules_path=resolve_path(args.rules),
        initial_points=args.initial_points, early_stopping_patience=args.patience, guidance=args.guidance,
        prune=args.prune, epoch_budget=args.epoch_budget,
        strategy_options={name: getattr(args, name) for name in all_strategy_options()
                          if getattr(args, name) is not None},
        model=normalise_spec(args.model) if is_spec(args.model) else args.model)
    try:
        backend.prepare_environment(args.backend)
        config.validate()
        check_timeout(args.timeout)
        check_workers(args.workers, args.cpus_per_trial, args.gpus_per_trial)
        run(config, Path(args.log_folder), resume=args.resume, overwrite=args.overwrite,
            verbose=1 if args.verbose else 0, observer=ConsoleObserver(), resume_budget=args.max_evals,
            resume_epoch_budget=args.epoch_budget, timeout=args.timeout, workers=args.workers,
            ray_address=args.ray_address, cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial)
    except TunerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: completed trials are saved; continue with --resume --log-folder {args.log_folder}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
