"""Exports of a run for other tools: `trials.csv` (one row per trial) and TensorBoard HParams.

`trials.csv` is rebuilt after every trial from the run's trial records (kept in memory by the
loop, read once from the database on resume), like summary.json, and replaced atomically
(sdt/run/storage.write_csv_atomically). Its columns:

  index, status, objective, val_loss, val_accuracy, epochs_run, duration_seconds,
  param_<name>...        one per hyper-parameter any trial had (empty where a trial lacked it),
  arch_<field>...        the Architecture the trial trained (extra_conv_blocks, extra_dense_layers,
                         l2, batch_norm, augmentation),
  problems, actions      the diagnosed problems / applied actions, ';'-joined,
  stop                   why the stop rules ended a pruned training: its reason and explanation
                         ("stuck_at_chance: 3 epochs in a row at chance level ..."), empty otherwise,
  error                  why a failed training failed.

The same rows are what `TuningResult.to_rows()` returns (sdt/api.py).

The HParams writers put, in each trial's TensorBoard folder `logs/trial_NNNN`, the trial's
hyper-parameters and architecture (`hp.hparams`) and its val_loss / val_accuracy scalars, and
once in `logs/` the experiment (`hp.hparams_config`: every hyper-parameter of the run's domain
and the two metrics), so TensorBoard's HParams dashboard lists every trial. They decide what is
written; the writing itself is the backend's (sdt/neural/backend.py), which imports TensorFlow
only when called: only the Keras trainer calls them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable

from sdt.core.records import ARCHITECTURE_FEATURES, COUNT, Architecture
from sdt.run.controller import TrialRecord
from sdt.core.vocabulary import VAL_ACCURACY, VAL_LOSS
from sdt.neural import backend

TRIALS_CSV_NAME = "trials.csv"
FIXED_COLUMNS = ("index", "status", "objective", "val_loss", "val_accuracy", "epochs_run", "duration_seconds",
                 "started_at", "finished_at", "worker")
ARCHITECTURE_FIELDS = tuple(field.name for field in dataclasses.fields(Architecture))
TRAILING_COLUMNS = ("proposal", "problems", "actions", "stop", "error")
PARAM_PREFIX = "param_"
ARCHITECTURE_PREFIX = "arch_"
LIST_SEPARATOR = ";"


# ---------------------------------------------------------------------------------------
# trials.csv and TuningResult.to_rows()
# ---------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Plain Python value (numpy scalars from skopt become int/float/str); NaN becomes None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flat_row(trial: dict[str, Any]) -> dict[str, Any]:
    """One trial as a flat dict; `trial` has the keys of FIXED_COLUMNS plus params,
    architecture, problems, actions and (optionally) proposal, stop and error."""
    row = {column: _plain(trial.get(column)) for column in FIXED_COLUMNS}
    for name, value in trial["params"].items():
        row[PARAM_PREFIX + name] = _plain(value)
    architecture = Architecture.from_dict(trial.get("architecture") or {}).to_dict()
    for name in ARCHITECTURE_FIELDS:
        row[ARCHITECTURE_PREFIX + name] = architecture[name]
    row["proposal"] = trial.get("proposal")
    row["problems"] = LIST_SEPARATOR.join(trial.get("problems") or [])
    row["actions"] = LIST_SEPARATOR.join(trial.get("actions") or [])
    row["stop"] = trial.get("stop")
    row["error"] = trial.get("error")
    return row


def table(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns (parameters in order of first appearance) and rows filled with None where absent."""
    rows = list(rows)
    params: list[str] = []
    for row in rows:
        params += [key for key in row if key.startswith(PARAM_PREFIX) and key not in params]
    columns = [*FIXED_COLUMNS, *params, *(ARCHITECTURE_PREFIX + f for f in ARCHITECTURE_FIELDS),
               *TRAILING_COLUMNS]
    return columns, [{column: row.get(column) for column in columns} for row in rows]


def problems_of(record: TrialRecord) -> list[str]:
    """The problems diagnosed in a trial, by name."""
    return sorted(record.diagnosis.problem_names()) if record.diagnosis is not None else []


def actions_of(record: TrialRecord) -> list[str]:
    """The actions applied after a trial, in the order they were applied."""
    return list(record.outcome.applied_actions) if record.outcome is not None else []


def proposal_text(decision) -> str | None:
    """A trial's Decision in one cell: `<strategy>: <summary>` (None when it has none)."""
    return None if decision is None else f"{decision.strategy}: {decision.summary}"


def record_fields(record: TrialRecord) -> dict[str, Any]:
    """One trial record as the dict flat_row reads (index, metrics, params, problems, ...)."""
    result = record.result
    return {"index": record.index, "status": result.status, "objective": record.objective,
            "val_loss": _plain(result.val_loss), "val_accuracy": _plain(result.val_accuracy),
            "epochs_run": result.epochs_run, "duration_seconds": result.duration_seconds,
            "started_at": record.started_at, "finished_at": record.finished_at, "worker": record.worker,
            "params": dict(record.params), "architecture": record.architecture.to_dict(),
            "problems": problems_of(record), "actions": actions_of(record), "stop": result.stop_explanation,
            "proposal": proposal_text(record.decision),
            "error": result.error, "model_path": result.model_path}


def write_trials_csv(log_folder: Path, records: Iterable[TrialRecord]) -> Path:
    """Rewrite `<log_folder>/trials.csv` from the run's trial records, atomically."""
    from sdt.run.storage import write_csv_atomically
    columns, rows = table(flat_row(record_fields(record)) for record in records)
    path = Path(log_folder) / TRIALS_CSV_NAME
    write_csv_atomically(path, columns, rows)
    return path


# ---------------------------------------------------------------------------------------
# TensorBoard HParams (written by the backend: call only while training)
# ---------------------------------------------------------------------------------------

HPARAMS_METRICS = {VAL_LOSS: "validation loss (best epoch)",
                   VAL_ACCURACY: "validation accuracy (best epoch)"}


def _hparam_value(value: Any) -> bool | int | float | str:
    value = _plain(value)
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def hparam_specs(domain) -> list[backend.HParamSpec]:
    """The experiment's hyper-parameters: every one of `domain` and the architecture's fields."""
    from sdt.space.search_space import CATEGORICAL, INTEGER

    spec = backend.HParamSpec
    specs = []
    for dimension in domain.hyper_parameters:
        if dimension.kind == CATEGORICAL:
            specs.append(spec(dimension.name, choices=tuple(dimension.domain_categories)))
        else:
            specs.append(spec(dimension.name, low=dimension.domain_low, high=dimension.domain_high,
                              integer=dimension.kind == INTEGER))
    for feature in ARCHITECTURE_FEATURES:
        if feature.kind == COUNT:
            specs.append(spec(feature.name, low=0, high=domain.limit(feature), integer=True))
        else:
            specs.append(spec(feature.name, choices=(False, True)))
    return specs


def write_hparams_config(logs_dir: Path, domain) -> bool:
    """Write the experiment (every hyper-parameter of `domain` and the metrics) into `logs_dir`,
    once: returns False without writing when the folder already holds an event file."""
    if backend.has_summaries(logs_dir):
        return False
    backend.write_hparams_config(Path(logs_dir), hparam_specs(domain), HPARAMS_METRICS)
    return True


def write_trial_hparams(trial_logs_dir: Path, trial_id: str, params: dict[str, Any],
                        architecture: Architecture, result) -> None:
    """Write one trial's hyper-parameters, architecture and metrics into its TensorBoard folder;
    a metric the training did not produce (failed, diverged) is left out, not invented."""
    values = {name: _hparam_value(value) for name, value in params.items()}
    values.update({name: _hparam_value(value) for name, value in architecture.to_dict().items()})
    metrics = {metric: float(value)
               for metric, value in ((VAL_LOSS, result.val_loss), (VAL_ACCURACY, result.val_accuracy))
               if value is not None and math.isfinite(value)}
    backend.write_trial_hparams(Path(trial_logs_dir), trial_id, values, metrics,
                                step=int(result.best_epoch or 0))


def export_trial_to_tensorboard(logs_dir: Path, index: int, domain, params: dict[str, Any],
                                architecture: Architecture, result) -> None:
    """The experiment config (once) and trial `index`'s HParams summaries under `logs_dir`.

    An export must never cost a training: a failure here is logged and the run goes on.
    """
    import logging
    try:
        write_hparams_config(logs_dir, domain)
        write_trial_hparams(Path(logs_dir) / f"trial_{index:04d}", f"trial_{index:04d}", params,
                            architecture, result)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not write the TensorBoard HParams of trial %d",
                                            index, exc_info=True)
