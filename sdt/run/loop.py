"""The tuning run: checks the inputs, then loops ask -> controller -> tell -> persist to the budget.

`run(config, log_folder)` is the Python API behind `main.py` (which only parses the command
line). The strategy decides what to try (sdt/strategies/), the controller runs one iteration
(sdt/run/controller.py), the neural block trains (sdt/neural/network.py, imported only here and
only when a run starts) and the storage persists every trial with the run state (sdt/run/storage.py).
The loop keeps the run's trial records in memory (read once on resume) and rebuilds
summary.json and trials.csv from them. It prints nothing: progress goes to a RunObserver
(sdt/run/observer.py); the command line's wording is sdt/cli/console.py.

Pruning (issue 14): with `RunConfig.prune` resolved on (`RunConfig.pruning`: by default for the
strategies the symbolic block tunes), the trainer gets `RunContext.should_stop`, which asks the
stop rules of the diagnosis file after every epoch; a stopped training comes back `pruned` and
is a trial like any other. Budgets: the run ends after `max_evals` trainings or, with
`epoch_budget`, once the epochs trained by all its trainings (pruned ones included) reach the
epoch budget, whichever comes first; the training that crosses the epoch budget still finishes.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdt.run import exports
from sdt.run.live import RUNNING_NAME, LiveTraining
from sdt.run.lock import FolderLock
from sdt.run.workers import WORKER, InProcessWorkers, RayWorkers
from sdt.strategies import registry as strategies
from sdt.core.errors import ConfigurationError, RunStateError
from sdt.core.vocabulary import VAL_ACCURACY, VAL_LOSS, TrialStatus
from sdt.space.preference import (
    BEFORE_TRAINING, EDIT, GUIDANCES, LOCAL, START, check_guidance, describe_avoided_rates, describe_start,
)

DEFAULT_DATASET = "fashion_mnist_small"
DEFAULT_MAX_EVALS = 8
DEFAULT_EPOCHS = 10
DEFAULT_INITIAL_POINTS = 4
DEFAULT_EARLY_STOPPING_PATIENCE = 4
# How the tuning actions guide a symbolic strategy (sdt/space/preference.py): `local`, the mode
# that measured best on Fashion-MNIST 3k over five seeds (docs/benchmarks.md, issue 13).
DEFAULT_GUIDANCE = LOCAL
# A run stops after this many failed trainings in a row (each failure is recorded first).
MAX_CONSECUTIVE_FAILURES = 3
# Files and folders a run writes; --overwrite removes exactly these, and only from a folder that
# holds a run (its database); a folder with any of them but no run is refused.
RUN_OUTPUTS = ("run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "summary.json", "best_model.keras",
               "trials", "logs", "trials.csv", RUNNING_NAME)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; stored in the database so --resume needs no options."""

    dataset: str = DEFAULT_DATASET
    max_evals: int = DEFAULT_MAX_EVALS
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    # val_loss or val_accuracy; None (the default) is resolved on construction to the strategy's own
    # (`Strategy.default_objective`: val_accuracy for meta-lr, as the poster, val_loss otherwise).
    objective: str | None = None
    strategy: str = "sdt"
    search_space_path: str | None = None
    diagnosis_path: str | None = None
    rules_path: str | None = None
    initial_points: int = DEFAULT_INITIAL_POINTS
    early_stopping_patience: int = DEFAULT_EARLY_STOPPING_PATIENCE
    validation_fraction: float = 0.1
    # A user's model `module:function` (README, "Your own model"); None = the built-in CNN.
    model: str | None = None
    # How the tuning actions guide a symbolic strategy: LOCAL, PRIOR or EDIT (the paper's).
    guidance: str = DEFAULT_GUIDANCE
    # The options the strategies declare (sdt/strategies/*.py, `options`), by name; a strategy
    # reads its own, defaults fill in the rest.
    strategy_options: dict[str, Any] = field(default_factory=dict)
    # Stop trainings that cannot succeed after each epoch (issue 14): True, False, or None for
    # the strategy's default (`pruning`, the one place it is resolved).
    prune: bool | None = None
    # End the run once the trainings have trained this many epochs in all (None: no such limit).
    epoch_budget: int | None = None

    def __post_init__(self) -> None:
        if self.objective is None and self.strategy in strategies.STRATEGIES:
            object.__setattr__(self, "objective", strategies.default_objective(self.strategy))

    @property
    def pruning(self) -> bool:
        """Whether trainings are pruned: `prune`, or by default for the strategies the symbolic
        block tunes (sdt, random-sdt), whose diagnosis is the point; the baselines run every
        training to its end unless asked."""
        return strategies.tunes_network(self.strategy) if self.prune is None else bool(self.prune)

    def validate(self) -> None:
        # The epoch budget first: without --max-evals the command line derives the trial budget
        # from it (default_max_evals), so a bad epoch budget must be what the error names.
        if self.epoch_budget is not None and (isinstance(self.epoch_budget, bool)
                                              or not isinstance(self.epoch_budget, int) or self.epoch_budget < 1):
            raise ConfigurationError(f"--epoch-budget must be a whole number >= 1, got {self.epoch_budget!r}")
        if self.prune is not None and not isinstance(self.prune, bool):
            raise ConfigurationError(f"prune must be True, False or None (the strategy's default), got {self.prune!r}")
        if self.max_evals < 1:
            raise ConfigurationError(f"--max-evals must be >= 1, got {self.max_evals}")
        if self.epochs < 1:
            raise ConfigurationError(f"--epochs must be >= 1, got {self.epochs}")
        if self.seed < 0:
            raise ConfigurationError(f"--seed must be >= 0, got {self.seed}")
        strategies.entry(self.strategy)        # an unknown strategy is named before the objective it decides
        if self.objective not in (VAL_LOSS, VAL_ACCURACY):
            raise ConfigurationError(f"--objective must be {VAL_LOSS} or {VAL_ACCURACY}, got {self.objective!r}")
        strategies.check_options(self.strategy, self.strategy_options)   # the strategy's name too
        if self.initial_points < 1:
            raise ConfigurationError(f"--initial-points must be >= 1, got {self.initial_points}")
        check_guidance(self.guidance)
        if self.early_stopping_patience < 0:
            raise ConfigurationError(f"--patience must be >= 0, got {self.early_stopping_patience}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f for f in cls.__dataclass_fields__}
        # Runs stored before guidance existed edited the space; before pruning, never pruned.
        data = {"guidance": EDIT, "prune": False, **data}
        return cls(**{k: v for k, v in data.items() if k in known})


def default_max_evals(epoch_budget: int | None, default: int) -> int:
    """The trial budget when none is given: `default`, or with an epoch budget that many trainings,
    which never ends a run first (every training trains at least one epoch)."""
    return default if epoch_budget is None else epoch_budget


def resumed_config(stored: RunConfig, max_evals: int | None = None,
                   epoch_budget: int | None = None) -> RunConfig:
    """The stored configuration with the budgets a resume may raise: `max_evals` (a new total of
    trainings) and `epoch_budget` (a new total of epochs); None keeps the stored one. A new epoch
    budget alone raises the trial budget along when the stored one could never end the run first
    (it was at least the stored epoch budget: what default_max_evals gives)."""
    changes: dict[str, Any] = {}
    if epoch_budget is not None:
        changes["epoch_budget"] = epoch_budget
        if max_evals is None and stored.epoch_budget is not None and stored.max_evals >= stored.epoch_budget:
            changes["max_evals"] = max(stored.max_evals, epoch_budget)
    if max_evals is not None:
        changes["max_evals"] = max_evals
    return replace(stored, **changes)


def epochs_spent(records) -> int:
    """The epochs trained by the run's trainings so far (pruned, diverged and failed ones included)."""
    return sum(int(record.result.epochs_run or 0) for record in records)


def trial_seed(seed: int, index: int) -> int:
    """The Keras seed of trial `index`: distinct per trial, fixed by the run seed."""
    return (seed * 100_003 + index) % (2**31 - 1)


# ---------------------------------------------------------------------------------------
# Run set-up
# ---------------------------------------------------------------------------------------

@dataclass
class RunContext:
    """What a run needs once its inputs have been checked (nothing here is mutated per trial)."""

    config: RunConfig
    log_folder: Path
    dataset: Any
    symbolic: Any
    initial_space: Any
    domain: Any
    limits: Any
    model_builder: Any = None                       # a user's model function; None = the built-in CNN
    unsupported_actions: frozenset = frozenset()    # architecture actions that model does not take
    # With pruning on: history so far -> (reason, explanation) to stop the training, or None
    # (make_stop_check); handed to the trainer. None: never stop a training early.
    should_stop: Callable[[dict[str, list[float]]], tuple[str, str] | None] | None = None
    # (trial index, epoch from 1, epochs, that epoch's numbers) after every epoch: the observer's
    # on_epoch (progress shown during a training); None: nobody is told.
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None


def make_stop_check(symbolic, num_classes: int, epoch_budget: int | None = None
                    ) -> Callable[[dict[str, list[float]]], tuple[str, str] | None]:
    """The plain callable the trainer asks after each epoch: the symbolic block's stop rules
    (`SymbolicBlock.stop_reason`) on the history so far, and the epochs a training may run
    (`epoch_budget`, the run's --epochs), as (reason, explanation) or None.
    The neural block never imports the symbolic one; it gets this."""
    def should_stop(history: dict[str, list[float]]) -> tuple[str, str] | None:
        decision = symbolic.stop_reason(history, num_classes, epoch_budget=epoch_budget)
        return None if decision is None else (decision.reason, decision.explanation)
    return should_stop


def resolve_path(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def resolve_model(config: RunConfig, model_builder=None) -> tuple[Any, frozenset]:
    """The user's model function (None: the built-in CNN) and the architecture actions it does
    not declare in its `supports` attribute. `model_builder` (a callable) wins over config.model."""
    from sdt.core.user_code import load_callable, unsupported_actions
    if model_builder is None and config.model:
        model_builder = load_callable(config.model, option="--model")
    if model_builder is not None and not callable(model_builder):
        raise ConfigurationError(f"model must be a function or 'module:function', got {model_builder!r}")
    return model_builder, unsupported_actions(model_builder, config.model or "")


def prepare(config: RunConfig, log_folder: Path, model_builder=None) -> RunContext:
    """Load and check every input; touches nothing on disk. Raises TunerError on bad input.

    `model_builder`: a user's model function given as a callable (the API); else config.model."""
    config.validate()
    from sdt.data.datasets import load_dataset
    from sdt.space.domain import Domain
    from sdt.core.records import MAX_EXTRA_DENSE_LAYERS
    from sdt.space.search_space import NETWORK_PARAMETERS, all_potential_dimensions, default_search_space, load_search_space
    from sdt.symbolic.block import SymbolicBlock
    from sdt.actions import ArchitectureLimits

    symbolic = SymbolicBlock(diagnosis_path=config.diagnosis_path, rules_path=config.rules_path)
    model_builder, unsupported = resolve_model(config, model_builder)
    if config.search_space_path:
        space = load_search_space(config.search_space_path)
        if model_builder is None:   # a user's model reads the names it chooses
            space.require(NETWORK_PARAMETERS, source=f"search space '{config.search_space_path}'")
    else:
        space = None
    dataset = load_dataset(config.dataset, seed=config.seed, validation_fraction=config.validation_fraction)
    if space is None:
        space = default_search_space(training_size=len(dataset.y_train))
    from sdt.neural import backend
    backend.check_installed()       # KERAS_BACKEND / --backend names an engine that is installed
    backend.import_quietly()        # Keras' start-up chatter would bury a refusal's one error line
    from sdt.neural import network as neural_network
    # Every value the space can reach is one a training accepts, checked now rather than when a
    # training first draws it (by then the run folder is written).
    neural_network.check_values(reachable_values(space), builds_network=model_builder is None)
    # A model that cannot grow gets no room for it: no width dimensions for layers it never adds.
    limits = ArchitectureLimits(
        max_extra_conv_blocks=(0 if "new_conv_layer" in unsupported
                               else neural_network.max_extra_conv_blocks(dataset.input_shape)),
        max_extra_dense_layers=0 if "new_fc_layer" in unsupported else MAX_EXTRA_DENSE_LAYERS)
    if strategies.uses_full_domain(config.strategy):
        domain = Domain(all_potential_dimensions(space, limits.max_extra_conv_blocks, limits.max_extra_dense_layers),
                        limits.max_extra_conv_blocks, limits.max_extra_dense_layers)
    else:
        # The other baselines never change the network: their domain is the initial space alone.
        domain = Domain(space, 0, 0)
    should_stop = None
    if config.pruning:
        if not symbolic.has_stop_rules:
            log.warning("pruning is on but the diagnosis file %s has no stop rules (stop_training/1): "
                        "no training will be stopped early", symbolic.diagnosis_path)
        should_stop = make_stop_check(symbolic, dataset.num_classes, epoch_budget=config.epochs)
    return RunContext(config, log_folder, dataset, symbolic, space, domain, limits, model_builder, unsupported,
                      should_stop)


def check_workers(workers: int, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """--workers: a whole number >= 1; --cpus-per-trial > 0; --gpus-per-trial >= 0."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigurationError(f"--workers must be a whole number >= 1, got {workers!r}")
    for flag, value, minimum_ok in (("--cpus-per-trial", cpus_per_trial, lambda v: v > 0),
                                    ("--gpus-per-trial", gpus_per_trial, lambda v: v >= 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not minimum_ok(value):
            raise ConfigurationError(f"{flag} must be a number {'> 0' if flag.startswith('--cpus') else '>= 0'}, "
                                     f"got {value!r}")


def check_timeout(timeout: float | None) -> None:
    """--timeout: None or a number of seconds > 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise ConfigurationError(f"--timeout must be a number of seconds > 0, got {timeout!r}")


def reachable_values(space) -> dict[str, tuple]:
    """Per dimension of `space`, the values a trial can reach: numeric bounds and domain limits,
    every category the run may use."""
    from sdt.space.search_space import CATEGORICAL
    return {d.name: tuple(d.domain_categories) if d.kind == CATEGORICAL
            else (d.low, d.high, d.domain_low, d.domain_high) for d in space}


def check_log_folder(log_folder: Path, resume: bool, overwrite: bool) -> None:
    """Refuse unusable folders before anything is written."""
    from sdt.run.storage import DATABASE_NAME
    if log_folder.exists() and not log_folder.is_dir():
        raise RunStateError(f"log folder '{log_folder}' is a file, not a folder")
    holds_run = (log_folder / DATABASE_NAME).exists()
    if resume and not holds_run:
        raise RunStateError(f"--resume: log folder '{log_folder}' holds no run to resume")
    if not resume and holds_run and not overwrite:
        raise RunStateError(f"log folder '{log_folder}' already holds a run: pass --resume to continue "
                            "it or --overwrite to start over")
    if not holds_run and log_folder.is_dir():
        # Files a run would write, but no run of this tool: someone else's, never written over or
        # deleted (--overwrite removes the outputs of a run, and only of a run).
        others = [name for name in RUN_OUTPUTS if (log_folder / name).exists()]
        if others:
            raise RunStateError(f"log folder '{log_folder}' holds {', '.join(others)} but no run of this tool "
                                f"({DATABASE_NAME}): choose another --log-folder, or move them away")
    existing = log_folder if log_folder.exists() else next(
        (p for p in log_folder.parents if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunStateError(f"log folder '{log_folder}' is not writable")


def remove_run_outputs(log_folder: Path) -> None:
    for name in RUN_OUTPUTS:
        path = log_folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------

def make_trainer(context: RunContext, verbose: int):
    """The training callable for the controller: neural block + per-trial output paths."""
    from sdt.neural import network as neural_network
    # Deterministic ops and seeded Keras: the same --seed gives the same run on CPU.
    neural_network.configure_determinism(context.config.seed)

    def train(params: dict[str, Any], architecture, index: int):
        trial_dir = context.log_folder / "trials" / f"trial_{index:04d}"
        tensorboard_dir = context.log_folder / "logs" / f"trial_{index:04d}"
        for leftover in (trial_dir, tensorboard_dir):   # from a run killed during this trial
            if leftover.exists():
                shutil.rmtree(leftover)
        trial_dir.mkdir(parents=True)
        result = neural_network.train(
            params, architecture, context.dataset, epochs=context.config.epochs,
            seed=trial_seed(context.config.seed, index), tensorboard_dir=tensorboard_dir,
            model_path=trial_dir / "model.keras",
            early_stopping_patience=context.config.early_stopping_patience or None, verbose=verbose,
            model_builder=context.model_builder, should_stop=context.should_stop,
            on_epoch=None if context.on_epoch is None else functools.partial(context.on_epoch, index))
        exports.export_trial_to_tensorboard(tensorboard_dir.parent, index, context.domain, params,
                                            architecture, result)
        return result
    return train


def worker_trainer(config: RunConfig, log_folder: Path, verbose: int, make_train=None, model_builder=None):
    """The training callable of a Ray worker (sdt/run/workers.py), built in the worker's process:
    the run's inputs loaded and checked there (`prepare`), then the Keras trainer or `make_train`'s."""
    context = prepare(config, log_folder, model_builder)
    return (make_train or make_trainer)(context, verbose)


def make_strategy(context: RunContext):
    config = context.config

    def random_weight_losses(params, architecture, seed: int):
        """The neural block's training-free estimate on this run's data and model (evolution's MRS)."""
        from sdt.neural import network as neural_network
        return neural_network.random_weight_losses(params, architecture, context.dataset, seed=seed,
                                                   model_builder=context.model_builder)
    return strategies.make_strategy(config.strategy, context.domain, config.initial_points, config.strategy_options,
                                    budget=config.max_evals, unsupported_actions=context.unsupported_actions,
                                    random_weight_losses=random_weight_losses)


def utc_now() -> str:
    """Now, as ISO 8601 in UTC to the millisecond (`2026-11-30T06:40:12.345+00:00`)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def summary_trial(record) -> dict[str, Any]:
    """One trial as summary.json lists it; `stop` is None unless the stop rules ended it."""
    result = record.result
    stop = None if result.stop_reason is None else {
        "reason": result.stop_reason, "epoch": result.stop_epoch, "explanation": result.stop_explanation}
    return {"index": record.index, "params": dict(record.params),
            "architecture": record.architecture.to_dict(),
            "val_loss": _finite_or_none(result.val_loss), "val_accuracy": _finite_or_none(result.val_accuracy),
            "objective": record.objective, "status": result.status, "epochs_run": result.epochs_run,
            "training_seconds": result.duration_seconds, "symbolic_seconds": record.symbolic_seconds,
            "started_at": record.started_at, "finished_at": record.finished_at, "worker": record.worker,
            "stop": stop, "problems": exports.problems_of(record), "actions": exports.actions_of(record),
            "proposal": None if record.decision is None else record.decision.to_dict()}


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def build_summary(records, config: RunConfig, final: dict[str, Any] | None) -> dict[str, Any]:
    """summary.json, rebuilt from the run's trial records (the same records the database holds)."""
    trials = [summary_trial(record) for record in records]
    best = best_trial(trials)
    best_summary = None
    if best is not None:
        best_summary = {"index": best["index"], "val_loss": best["val_loss"],
                        "val_accuracy": best["val_accuracy"], "params": best["params"],
                        "architecture": best["architecture"], "test_accuracy": None}
        if final and final.get("index") == best["index"]:
            best_summary["test_accuracy"] = final.get("test_accuracy")
            best_summary["test_loss"] = final.get("test_loss")
    return {"strategy": config.strategy, "seed": config.seed, "dataset": config.dataset,
            "objective": config.objective, "max_evals": config.max_evals, "epochs": config.epochs,
            "prune": config.pruning, "epoch_budget": config.epoch_budget, "epochs_spent": epochs_spent(records),
            "trials": trials, "best": best_summary}


def _best_key(objective: float, status: str, index: int) -> tuple[float, bool, int]:
    """Lowest objective first; on a tie a completed training before a pruned one, then the earliest."""
    return objective, status == TrialStatus.PRUNED, index


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [t for t in trials if t["status"] in TrialStatus.SCORED]
    if not scored:
        return None
    return min(scored, key=lambda t: _best_key(t["objective"], t["status"], t["index"]))


def best_record(records):
    """The best trial: the lowest objective among completed and pruned trainings (their metrics are
    those of the best epoch they ran). A pruned training is best only when it beats every other:
    on a tie a completed one wins, then the earliest. None when no training has metrics."""
    scored = [r for r in records if r.result.status in TrialStatus.SCORED]
    return min(scored, key=lambda r: _best_key(r.objective, r.result.status, r.index)) if scored else None


def run(config: RunConfig, log_folder: Path, resume: bool = False, overwrite: bool = False,
        verbose: int = 0, observer=None, resume_budget: int | None = None,
        make_train=None, model_builder=None, resume_epoch_budget: int | None = None,
        timeout: float | None = None, workers: int = 1, ray_address: str | None = None,
        cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0) -> dict[str, Any]:
    """Run (or resume) a tuning run to its budget; returns the summary dict.

    `workers`: trainings run at once (sdt/run/workers.py): 1 trains in this process, one after
    the other; more run on Ray, started for the run or joined at `ray_address` ("auto" or
    "host:port", which also uses Ray with one worker), each training asking Ray for
    `cpus_per_trial` CPUs and `gpus_per_trial` GPUs. Not stored with the run: a resume may use
    other workers.

    `timeout`: seconds of wall time for this call (not stored with the run, like Optuna's): once
    a training ends past it, no further training starts; the run can be resumed for more.

    `model_builder`: a user's model function as a callable (else config.model, else the CNN).
    `observer`: a RunObserver (sdt/run/observer.py) told of the start, each trial and the end;
    None runs silently (the command line passes sdt/cli/console.ConsoleObserver).

    On resume the stored configuration is used; only the budgets may be raised (`resume_budget`:
    trainings, `resume_epoch_budget`: epochs, see resumed_config), and the epochs already spent
    are recomputed from the stored trials.
    `make_train(context, verbose)` returns the training callable (default: the Keras trainer).
    """
    from sdt.run.controller import Controller, Objective, RunningTrial
    from sdt.run.observer import EpochProgress, RunObserver, RunStart, TrialProgress
    from sdt.run.storage import (
        DATABASE_NAME, SUMMARY_NAME, RunStorage, remove_leftover_temporaries, write_json_atomically,
    )

    observer = RunObserver() if observer is None else observer
    check_timeout(timeout)
    check_workers(workers, cpus_per_trial, gpus_per_trial)
    log_folder = Path(log_folder).expanduser().resolve()
    check_log_folder(log_folder, resume, overwrite)
    FolderLock.check_free(log_folder)       # before the slow checks; the lock itself is taken below
    if resume:
        with RunStorage.open(log_folder, read_only=True) as stored:
            stored = stored.check_resumable()
        try:
            stored_config = RunConfig.from_dict(stored)
        except (TypeError, ValueError) as err:
            raise RunStateError(f"log folder '{log_folder}': the stored run configuration cannot be read "
                                f"({err}): it cannot be resumed") from None
        # Only the budgets may change on resume; everything else is the stored run's.
        config = resumed_config(stored_config, resume_budget or None, resume_epoch_budget)
    context = prepare(config, log_folder, model_builder)
    live = LiveTraining(log_folder)

    def tell_epoch(trial: int, epoch: int, epochs: int, numbers: dict[str, float]) -> None:
        observer.on_epoch(EpochProgress(trial=trial, epoch=epoch, epochs=epochs, numbers=numbers))
        live.epoch(trial, epoch, epochs, numbers)
    context = replace(context, on_epoch=tell_epoch)
    train = (make_train or make_trainer)(context, verbose)
    controller = Controller(train, context.symbolic,
                            Objective(config.objective, context.dataset.num_classes), context.limits,
                            tune=strategies.tunes_network(config.strategy),
                            unsupported_actions=context.unsupported_actions, guidance=config.guidance)
    strategy = make_strategy(context)

    # The workers start before anything is written: a cluster that cannot be reached, or a worker
    # that cannot load the run's inputs, is refused with the folder untouched.
    pool = InProcessWorkers(train)
    if workers > 1 or ray_address is not None:
        pool = RayWorkers(functools.partial(worker_trainer, config, log_folder, verbose, make_train, model_builder),
                          workers, ray_address, cpus_per_trial, gpus_per_trial)
    # One owner per folder: from here on this process writes (or deletes) in the log folder.
    try:
        lock = FolderLock.acquire(log_folder)
    except BaseException:
        pool.close()
        raise
    try:
        check_log_folder(log_folder, resume, overwrite)     # again: another run may have got there first
        remove_leftover_temporaries(log_folder, (DATABASE_NAME, SUMMARY_NAME, exports.TRIALS_CSV_NAME, RUNNING_NAME))
        live.clear()                                         # a killed run's training in progress
        if resume:
            storage = RunStorage.open(log_folder)
            committed = storage.committed_records()      # read once; each new trial is added below
            for record in committed:                     # in the order the strategy was told them
                strategy.tell(record.params, record.architecture, record.objective, record.decision)
            records = sorted(committed, key=lambda r: r.index)
            _, state = storage.last_state()
            # Trials a killed run left running are trained again, as they were proposed.
            interrupted = storage.running_trials()
            start = len(records) + len(interrupted)
        else:
            if overwrite:
                remove_run_outputs(log_folder)
            log_folder.mkdir(parents=True, exist_ok=True)
            state = controller.initial_state(context.initial_space)
            storage = RunStorage.create(
                log_folder, config=asdict(config), domain=context.domain.to_dict(), initial_state=state.to_dict(),
                initial_space=state.space.to_dict(), initial_architecture=state.architecture.to_dict(),
                initial_weights=state.rule_weights.to_dict())
            records = []
            interrupted = []
            start = 0
        if isinstance(pool, RayWorkers):
            observer.on_workers(pool.size, ray_address)
        from sdt.neural import backend
        device = (backend.device_summary() if not isinstance(pool, RayWorkers) else
                  f"{backend.active()} on Ray workers ({cpus_per_trial:g} CPU and {gpus_per_trial:g} GPU per training)")
        observer.on_start(RunStart(log_folder=log_folder, dataset_summary=context.dataset.summary(), device=device,
                                   first_trial=min([start] + [r.index for r in interrupted]),
                                   max_evals=config.max_evals, resumed=resume,
                                   avoided_from_start=() if resume else tuple(
                                       describe_avoided_rates(p) for p in state.preferences
                                       if p.trial == BEFORE_TRAINING and p.avoid),
                                   starts_near=None if resume else next(
                                       (describe_start(p) for p in state.preferences if p.action == START), None)))
        summary_path = log_folder / SUMMARY_NAME
        write_json_atomically(summary_path, build_summary(records, config, None))
        exports.write_trials_csv(log_folder, records)

        started = time.monotonic()
        consecutive_failures = 0
        spent = epochs_spent(records)        # on resume: what the stored trials trained
        session_epochs = 0
        in_flight: dict[int, Any] = {}       # index -> RunningTrial, dispatched and not finished
        next_index = start
        stopping = False                     # no further trial is dispatched; those running finish

        def dispatch(running) -> None:
            running = replace(running, worker=pool.submit(running))
            storage.start_trial(running)
            in_flight[running.index] = running

        try:
            for running in interrupted:
                dispatch(running)
            while True:
                while not stopping and pool.free() > 0 and next_index < config.max_evals:
                    if config.epoch_budget is not None and spent >= config.epoch_budget:
                        observer.on_epoch_budget_spent(spent, config.epoch_budget, next_index)
                        stopping = True
                        break
                    if strategy.finished:
                        observer.on_strategy_stopped(config.strategy, next_index)
                        stopping = True
                        break
                    started_at = utc_now()
                    pending = [(r.params, r.architecture) for r in in_flight.values()]
                    rng = np.random.default_rng([config.seed, next_index, 0])
                    proposal = strategy.ask(state, rng, pending) if pending else strategy.ask(state, rng)
                    controller.check_proposal(state, proposal.architecture)
                    dispatch(RunningTrial(next_index, dict(proposal.params), proposal.architecture,
                                          proposal.decision, controller.proposed_under(state, len(records)),
                                          started_at))
                    next_index += 1
                if not in_flight:
                    break
                finished, result, worker = pool.next_finished()
                running = in_flight.pop(finished.index)
                record, state = controller.analyse(
                    running.index, running.params, running.architecture, result, state,
                    np.random.default_rng([config.seed, running.index, 1]), running.proposed_under)
                record = replace(record, point=tuple(context.domain.encode(record.params, record.architecture)),
                                 decision=running.decision, started_at=running.started_at, finished_at=utc_now(),
                                 worker=worker, proposed_under=running.proposed_under)
                strategy.tell(record.params, record.architecture, record.objective, record.decision)
                storage.commit_trial(record, state)
                live.clear()
                records.append(record)
                records.sort(key=lambda r: r.index)
                spent += record.result.epochs_run
                session_epochs += record.result.epochs_run
                write_json_atomically(summary_path, build_summary(records, config, None))
                exports.write_trials_csv(log_folder, records)
                done = len(records) - (start - len(interrupted))
                observer.on_trial(record, TrialProgress(
                    max_evals=config.max_evals, best_objective=state.best_objective,
                    elapsed_seconds=time.monotonic() - started, trials_done=done,
                    trials_remaining=config.max_evals - len(records), epochs_spent=spent,
                    epoch_budget=config.epoch_budget, epochs_done=session_epochs))
                elapsed = time.monotonic() - started
                if (not stopping and timeout is not None and elapsed >= timeout
                        and len(records) + len(in_flight) < config.max_evals):
                    observer.on_timeout(elapsed, timeout, done)
                    stopping = True
                consecutive_failures = consecutive_failures + 1 if record.result.status == TrialStatus.FAILED else 0
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RunStateError(
                        f"{consecutive_failures} trainings failed in a row (last: {record.result.error}); "
                        f"the run is saved: fix the cause and continue with --resume --log-folder {log_folder}")
            final = finish(records, storage, context, observer)
            summary = build_summary(records, config, final)
            write_json_atomically(summary_path, summary)
            return summary
        finally:
            storage.close()
    except (OSError, sqlite3.OperationalError) as err:
        # The run's own files could not be written or read (a full disk, a quota, a folder made
        # read-only): everything committed before is kept; say so in one line.
        saved = (log_folder / DATABASE_NAME).is_file()
        then = (f"the trainings finished before are saved: fix the cause and continue with --resume --log-folder "
                f"{log_folder}" if saved else "nothing was saved: fix the cause and run the command again")
        raise RunStateError(f"writing the run in '{log_folder}' failed ({_os_error_text(err)}); {then}") from err
    finally:
        pool.close()
        lock.release()


def _os_error_text(err: BaseException) -> str:
    """An OSError as `strerror: 'path'` (no errno digits), anything else as its message."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: '{err.filename}'" if err.filename else err.strerror
    return str(err)


def finish(records, storage, context: RunContext, observer) -> dict[str, Any] | None:
    """Evaluate the best model once on the test set and copy it to best_model.keras."""
    from sdt.run.observer import RunEnd
    best = best_record(records)
    model_path = None if best is None else best.result.model_path
    if model_path is None or not Path(model_path).exists():
        observer.on_finish(RunEnd(best=best, final=None, best_model_path=None))
        return None
    from sdt.neural import network as neural_network
    metrics = neural_network.evaluate(model_path, context.dataset.x_test, context.dataset.y_test)
    best_model_path = context.log_folder / "best_model.keras"
    shutil.copyfile(model_path, best_model_path)
    final = {"index": best.index, "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"]}
    storage.set_final(final)
    observer.on_finish(RunEnd(best=best, final=final, best_model_path=best_model_path))
    return final
