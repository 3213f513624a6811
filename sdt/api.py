"""The Python API for notebooks and scripts: `tune(...)` runs a tuning run, returns a `TuningResult`.

    from sdt import tune
    result = tune(dataset="digits", model="examples/mlp.py:build_mlp",
                  search_space="examples/mlp_space.json", max_evals=5, epochs=5, log_folder="mlp_run")
    result.best_params, result.test_accuracy
    pandas.DataFrame(result.to_rows())          # one row per trial, the columns of trials.csv

`tune` runs the same loop as `main.py` (sdt/run/loop.run) with the same outputs in `log_folder`;
it prints nothing unless `verbose=True` (the command line's per-trial lines); `observer=` a
RunObserver (sdt/run/observer.py) follows the run. Bad input raises a `TunerError` subclass
(sdt/core/errors.py) before any training.
`TuningResult.from_log_folder(folder)` reads the result of a run already on disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from sdt.core.errors import ConfigurationError
from sdt.core.records import Architecture, Decision

SEARCH_SPACE_FILE = "search_space.json"   # where a space given as a dict or SearchSpace is kept
DEFAULT_MAX_EVALS = 10                     # tune()'s trial budget when neither it nor an epoch budget is given


@dataclass(frozen=True)
class TrialSummary:
    """One finished training, as stored (numbers None where the training had none)."""

    index: int
    status: str
    objective: float
    val_loss: float | None
    val_accuracy: float | None
    epochs_run: int | None
    duration_seconds: float | None
    params: Mapping[str, Any]
    architecture: Architecture
    problems: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    error: str | None = None
    model_path: str | None = None
    # A pruned training (status "pruned"): why the stop rules ended it, and after which epoch.
    stop_reason: str | None = None
    stop_explanation: str | None = None
    stop_epoch: int | None = None
    # Why the strategy proposed it (sdt/core/records.py Decision: strategy, summary, facts).
    decision: Decision | None = None
    # When it started and finished (ISO 8601, UTC) and which process ran it (`host:pid`).
    started_at: str | None = None
    finished_at: str | None = None
    worker: str | None = None

    def to_row(self) -> dict[str, Any]:
        """A flat dict: the columns of trials.csv (param_<name>, arch_<field>, ';'-joined lists)."""
        from sdt.run.exports import flat_row, proposal_text
        return flat_row({
            "index": self.index, "status": self.status, "objective": self.objective,
            "val_loss": self.val_loss, "val_accuracy": self.val_accuracy, "epochs_run": self.epochs_run,
            "duration_seconds": self.duration_seconds, "started_at": self.started_at,
            "finished_at": self.finished_at, "worker": self.worker, "params": dict(self.params),
            "architecture": self.architecture.to_dict(), "problems": list(self.problems),
            "actions": list(self.actions), "stop": self.stop_explanation, "error": self.error,
            "proposal": proposal_text(self.decision)})


@dataclass(frozen=True)
class TuningResult:
    """What a run found: the best trial (lowest objective among completed and pruned ones; a pruned
    one only when it beats every other) and every trial."""

    best_params: Mapping[str, Any] | None
    best_architecture: Architecture | None
    best_model_path: Path | None           # best_model.keras, None when no trial completed
    best_val_loss: float | None
    best_val_accuracy: float | None
    test_accuracy: float | None            # of the best model, on the test set (used only for this)
    trials: tuple[TrialSummary, ...] = field(default_factory=tuple)
    log_folder: Path | None = None

    @property
    def epochs_spent(self) -> int:
        """The epochs the run's trainings trained in all (what --epoch-budget counts)."""
        return sum(trial.epochs_run or 0 for trial in self.trials)

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per trial, every row with the same keys: `pandas.DataFrame(result.to_rows())`."""
        from sdt.run.exports import table
        return table(trial.to_row() for trial in self.trials)[1]

    @classmethod
    def from_log_folder(cls, log_folder: str | os.PathLike[str]) -> "TuningResult":
        """The result of the run stored in `log_folder` (finished or not)."""
        from sdt.run.loop import best_record
        from sdt.run.storage import RunStorage

        folder = Path(log_folder).expanduser().resolve()
        with RunStorage.open(folder, read_only=True) as storage:
            records = storage.records()
            final = storage.run_value("final") or {}
        trials = tuple(_trial_summary(record) for record in records)
        best = best_record(records)
        if best is None:
            return cls(None, None, None, None, None, None, trials, folder)
        trial = trials[records.index(best)]
        tested = final.get("index") == trial.index
        model = folder / "best_model.keras"
        return cls(best_params=dict(trial.params), best_architecture=trial.architecture,
                   best_model_path=model if tested and model.exists() else None,
                   best_val_loss=trial.val_loss, best_val_accuracy=trial.val_accuracy,
                   test_accuracy=final.get("test_accuracy") if tested else None,
                   trials=trials, log_folder=folder)


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _trial_summary(record) -> TrialSummary:
    """A stored TrialRecord as the API's flat summary."""
    from sdt.run.exports import actions_of, problems_of
    result = record.result
    return TrialSummary(
        index=record.index, status=result.status, objective=float(record.objective),
        val_loss=_finite(result.val_loss), val_accuracy=_finite(result.val_accuracy),
        epochs_run=result.epochs_run, duration_seconds=result.duration_seconds,
        params=dict(record.params), architecture=record.architecture,
        problems=tuple(problems_of(record)), actions=tuple(actions_of(record)),
        error=result.error, model_path=result.model_path, stop_reason=result.stop_reason,
        stop_explanation=result.stop_explanation, stop_epoch=result.stop_epoch, decision=record.decision,
        started_at=record.started_at, finished_at=record.finished_at, worker=record.worker)


def tune(dataset: str | os.PathLike[str] = "fashion_mnist_small",
         search_space: Any = None,
         model: str | Callable[..., Any] | None = None,
         max_evals: int | None = None, epochs: int = 10, seed: int = 0,
         log_folder: str | os.PathLike[str] = "log_folder",
         strategy: str = "sdt", objective: str | None = None,
         resume: bool = False, overwrite: bool = False, verbose: bool = False, observer: Any = None,
         timeout: float | None = None, backend: str | None = None, workers: int = 1, ray_address: str | None = None,
         cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, **options: Any) -> TuningResult:
    """Run (or resume) a tuning run and return its result; the outputs are those of main.py.

    dataset       a registered name, an .npz file, an image folder or `module:function`
                  (README, "Datasets").
    search_space  None (the paper's space), a JSON file path, a dict in the JSON format or a
                  SearchSpace; a dict/SearchSpace is saved as <log_folder>/search_space.json so
                  the run can be resumed.
    model         None (the built-in CNN), `module:function` / `path/file.py:function`, or the
                  function itself (README, "Your own model"); on resume pass the function again
                  if it is not importable under its module:qualname.
    max_evals     the number of trainings (default 10, or with epoch_budget= as many as its
                  epochs); with resume=True, a new total budget (None: the stored one).
    objective     "val_loss" or "val_accuracy" (maximised); None: the strategy's own (val_accuracy
                  for meta-lr, as the poster; val_loss for the others).
    verbose       print the command line's per-trial lines on stdout (when no observer is given).
    timeout       seconds of wall time for this call: once a training ends past it, no further
                  training starts (None: no limit; not stored with the run).
    backend       the Keras backend: "tensorflow", "jax" or "torch" (None: KERAS_BACKEND, else
                  tensorflow); refused when Keras already runs on another in this process.
    workers       trainings run at once (more than 1: on Ray, `pip install "symbolic-dnn-tuner[ray]"`);
                  ray_address joins a running Ray cluster ("auto" or "host:port"), cpus_per_trial
                  and gpus_per_trial are what each training asks Ray for (README, "Trials in
                  parallel"). Not stored with the run.
    observer      a RunObserver (sdt/run/observer.py) told of the start, each trial and the end;
                  None: silent unless verbose. `sdt.cli.console.ConsoleObserver(stream)` prints the
                  command line's lines to `stream`.
    options       any other RunConfig field (initial_points, early_stopping_patience, prune
                  (True/False; default: on for sdt and random-sdt), epoch_budget (end the run
                  once its trainings trained that many epochs; with resume=True a new total),
                  strategy options...).
    """
    from sdt.neural import backend as backends
    backends.prepare_environment(backend)   # before Keras is first imported
    from sdt.run import loop as tuner
    from sdt.space.search_space import SearchSpace
    from sdt.run.storage import write_json_atomically
    from sdt.core.user_code import is_spec, normalise_spec, spec_of
    if observer is None and verbose:
        from sdt.cli.console import ConsoleObserver   # the API sits above the command line
        observer = ConsoleObserver()
    from sdt.strategies.registry import all_options as all_strategy_options

    known = {f.name for f in fields(tuner.RunConfig)} | set(all_strategy_options())
    reserved = {"dataset", "search_space_path", "model", "max_evals", "epochs", "seed", "strategy", "objective",
                "strategy_options"}
    unknown = sorted(set(options) - (known - reserved))
    if unknown:
        raise ConfigurationError(f"tune() got unknown option(s) {unknown}; expected keyword arguments "
                                 f"from {', '.join(sorted(known - reserved))}")
    strategy_options = {name: options.pop(name) for name in list(options) if name in all_strategy_options()}
    folder = Path(log_folder).expanduser().resolve()

    dataset = os.fspath(dataset)
    if os.path.exists(dataset):
        dataset = str(Path(dataset).resolve())
    elif is_spec(dataset):
        dataset = normalise_spec(dataset)

    model_builder = None
    if callable(model):
        model_builder, model_spec = model, spec_of(model)
    elif isinstance(model, str):
        model_spec = normalise_spec(model) if is_spec(model) else model   # bad specs: error in prepare
    elif model is None:
        model_spec = None
    else:
        raise ConfigurationError(f"model must be None, 'module:function' or a function, got {model!r}")

    space_path = None
    space_data = None
    if isinstance(search_space, SearchSpace):
        space_data = search_space.to_dict()
    elif isinstance(search_space, Mapping):
        space_data = SearchSpace.from_dict(dict(search_space), source="search_space").to_dict()
    elif isinstance(search_space, (str, os.PathLike)):
        space_path = tuner.resolve_path(os.fspath(search_space))
    elif search_space is not None:
        raise ConfigurationError(f"search_space must be None, a file path, a dict or a SearchSpace, "
                                 f"got {type(search_space).__name__}")

    requested_max_evals = max_evals
    if max_evals is None:
        max_evals = tuner.default_max_evals(options.get("epoch_budget"), DEFAULT_MAX_EVALS)
    config = tuner.RunConfig(dataset=dataset, max_evals=max_evals, epochs=epochs, seed=seed,
                             objective=objective, strategy=strategy, search_space_path=space_path,
                             model=model_spec, strategy_options=strategy_options, **options)
    config.validate()
    tuner.check_timeout(timeout)
    tuner.check_workers(workers, cpus_per_trial, gpus_per_trial)
    if space_data is not None and not resume:
        tuner.check_log_folder(folder, resume, overwrite)   # refuse before writing anything
        folder.mkdir(parents=True, exist_ok=True)
        space_file = folder / SEARCH_SPACE_FILE
        write_json_atomically(space_file, space_data)
        config = replace(config, search_space_path=str(space_file))
    tuner.run(config, folder, resume=resume, overwrite=overwrite, verbose=0, observer=observer,
              resume_budget=requested_max_evals if resume else None, model_builder=model_builder,
              resume_epoch_budget=config.epoch_budget if resume else None, timeout=timeout,
              workers=workers, ray_address=ray_address, cpus_per_trial=cpus_per_trial,
              gpus_per_trial=gpus_per_trial)
    return TuningResult.from_log_folder(folder)
