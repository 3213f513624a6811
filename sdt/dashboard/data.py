"""Read-only loading of a run into the JSON-able dict kept in the dashboard's store.

The run is read through the package's storage reader (sdt/run/storage.py `RunStorage`, opened
read-only per refresh and closed again; nothing is ever written): the trial records whole, and
the controller states for the search space and rule weights before the first trial. A database
being written by a live run may be locked or half-created: `refresh` then keeps the last good
data and marks it stale instead of raising.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from sdt.core.errors import RunStateError
from sdt.core.vocabulary import TrialStatus
from sdt.run.live import read_running
from sdt.run.storage import DATABASE_NAME, RunStorage

START_COMMAND = "python3 main.py --log-folder {folder}"
READ_TIMEOUT_SECONDS = 1.0          # a refresh waits this long for a writer's lock, then keeps the last data

STATUS_MISSING = "missing"          # no folder or no run.sqlite
STATUS_EMPTY = "empty"              # a database without completed trials yet
STATUS_OK = "ok"

HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def trial_row(record) -> dict[str, Any]:
    """The trial-level fields the pages read, from one TrialRecord."""
    result = record.result
    return {"trial_index": record.index, "status": result.status, "objective": record.objective,
            "val_loss": _finite(result.val_loss), "val_accuracy": _finite(result.val_accuracy),
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "duration_seconds": result.duration_seconds, "parameter_count": result.parameter_count,
            "model_path": result.model_path, "error": result.error, "params": dict(record.params),
            "architecture": record.architecture.to_dict(), "improved": record.improved,
            "stop_reason": result.stop_reason, "stop_epoch": result.stop_epoch,
            "stop_explanation": result.stop_explanation, "started_at": record.started_at,
            "finished_at": record.finished_at, "worker": record.worker}


def epoch_rows(record) -> list[dict[str, Any]]:
    history = record.result.history or {}
    epochs = len(history.get("loss") or [])
    return [{"trial_index": record.index, "epoch": epoch,
             **{key: _finite(float(history[key][epoch])) if epoch < len(history.get(key) or []) else None
                for key in HISTORY_COLUMNS}}
            for epoch in range(epochs)]


def running_training(folder: Path, stored: set[int]) -> dict[str, Any] | None:
    """The training in progress (sdt/run/live.py) with its epochs as rows like epoch_rows', or None
    (no training in progress, or the file of a trial that is stored already)."""
    running = read_running(folder)
    if running is None or running["trial_index"] in stored:
        return None
    history = running["history"]
    count = max((len(values) for values in history.values() if isinstance(values, list)), default=0)
    rows = [{"trial_index": running["trial_index"], "epoch": epoch,
             **{key: _live_value(history.get(key), epoch) for key in HISTORY_COLUMNS}} for epoch in range(count)]
    return {"trial_index": running["trial_index"], "epoch": running.get("epoch"), "epochs": running.get("epochs"),
            "rows": rows}


def _live_value(values, epoch: int) -> float | None:
    if not isinstance(values, list) or epoch >= len(values) or not isinstance(values[epoch], (int, float)):
        return None
    return _finite(float(values[epoch]))


def weight_rows(trial_index: int, weights) -> list[dict[str, Any]]:
    return [{"trial_index": trial_index, "action": action, "problem": problem, "weight": weight}
            for (action, problem), weight in sorted(weights.items())]


def load_run(log_folder: str | Path) -> dict[str, Any]:
    """Everything the pages draw, as plain JSON-able data.

    Raises RunStateError / sqlite3.OperationalError / DatabaseError when the run cannot be read now.
    """
    folder = Path(log_folder)
    base = {"log_folder": str(folder), "loaded_at": time.time(), "stale": False, "error": None}
    if not (folder / DATABASE_NAME).is_file():
        return {**base, "status": STATUS_MISSING}
    with RunStorage.open(folder, read_only=True, timeout=READ_TIMEOUT_SECONDS) as storage:
        config = storage.run_value("config") or {}
        final = storage.run_value("final")
        records = storage.records()
        states = storage.states()
        in_progress = [{"trial_index": r.index, "started_at": r.started_at, "worker": r.worker,
                        "params": dict(r.params)} for r in storage.running_trials()]
    trials = [trial_row(record) for record in records]
    epochs = [row for record in records for row in epoch_rows(record)]
    diagnoses = [{"trial_index": record.index, "problem": finding.name, "probability": finding.probability,
                  "explanation": finding.explanation}
                 for record in records if record.diagnosis is not None
                 for finding in sorted(record.diagnosis.problems, key=lambda f: f.name)]
    applied = [{"trial_index": record.index, "position": position, "action": action.action,
                "problem": action.problem, "description": action.description,
                "changes": [change.to_dict() for change in action.changes]}
               for record in records if record.outcome is not None
               for position, action in enumerate(record.outcome.applied)]
    candidates = [{"trial_index": record.index, "action": candidate.name, "problem": candidate.problem,
                   "probability": candidate.probability}
                  for record in records if record.diagnosis is not None for candidate in record.diagnosis.actions]
    proposals = [{"trial_index": record.index, **record.decision.to_dict()}
                 for record in records if record.decision is not None]
    initial_weights = [weight_rows(index, state.rule_weights) for index, state in states if index == -1]
    weights = [row for rows in initial_weights for row in rows] + [
        row for record in records if record.rule_weights is not None
        for row in weight_rows(record.index, record.rule_weights)]
    spaces = [{"trial_index": index, "space": state.space.to_dict(), "architecture": state.architecture.to_dict()}
              for index, state in states]
    best_model = folder / "best_model.keras"
    return {**base, "status": STATUS_OK if trials else STATUS_EMPTY,
            "config": config, "final": final, "running": running_training(folder, {r.index for r in records}),
            "in_progress": in_progress,
            "trials": trials, "epochs": epochs, "diagnoses": diagnoses, "applied_actions": applied,
            "proposals": proposals, "candidate_actions": candidates,
            "rule_weights": weights, "search_spaces": spaces,
            "best_model_path": str(best_model) if best_model.is_file() else None}


def refresh(log_folder: str | Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """`load_run`, or on a read error the previous data marked stale (or an error record if none)."""
    try:
        return load_run(log_folder)
    except (RunStateError, sqlite3.OperationalError, sqlite3.DatabaseError, json.JSONDecodeError) as err:
        message = f"{type(err).__name__}: {err}"
        if previous and previous.get("status") in (STATUS_OK, STATUS_EMPTY):
            return {**previous, "stale": True, "error": message}
        return {"log_folder": str(log_folder), "status": STATUS_EMPTY, "stale": True, "error": message,
                "loaded_at": time.time(), "config": {}, "final": None, "trials": [], "epochs": [],
                "diagnoses": [], "applied_actions": [], "rule_weights": [], "search_spaces": [],
                "best_model_path": None}


def same_data(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two loads hold the same run data (ignoring load time), so the pages need no redraw."""
    if a is None or b is None:
        return False
    strip = lambda d: {k: v for k, v in d.items() if k != "loaded_at"}  # noqa: E731
    return strip(a) == strip(b)


def has_trials(store: dict[str, Any] | None) -> bool:
    return bool(store) and store.get("status") == STATUS_OK and bool(store.get("trials"))


def no_run_message(store: dict[str, Any] | None, log_folder: str | Path | None = None) -> str:
    """What to tell the user when there is nothing to draw yet ('' when there is)."""
    folder = (store or {}).get("log_folder") or str(log_folder or "./log_folder")
    status = (store or {}).get("status", STATUS_MISSING)
    command = START_COMMAND.format(folder=folder)
    if status == STATUS_MISSING:
        return (f"No run found in log folder '{folder}' (no {DATABASE_NAME}). "
                f"Start a run with: {command}")
    if status == STATUS_EMPTY or not (store or {}).get("trials"):
        extra = f" (database not readable yet: {store['error']})" if (store or {}).get("error") else ""
        return (f"The run in '{folder}' has no completed trial yet{extra}; this page refreshes by itself. "
                f"To start a run: {command}")
    return ""


def objective_name(store: dict[str, Any]) -> str:
    return (store.get("config") or {}).get("objective") or "val_loss"


def objective_label(store: dict[str, Any]) -> str:
    """The objective as the pages label it: val_loss, or -val_accuracy (the optimiser minimises both)."""
    return "-val_accuracy" if objective_name(store) == "val_accuracy" else objective_name(store)


def best_trial(store: dict[str, Any]) -> dict[str, Any] | None:
    """The best trial as the run reports it: the lowest objective among completed and pruned
    trainings, a completed one before a pruned one on a tie, then the earliest (sdt/run/loop.py)."""
    scored = [t for t in (store or {}).get("trials", []) if t["status"] in TrialStatus.SCORED]
    return min(scored, key=lambda t: (t["objective"], t["status"] == TrialStatus.PRUNED, t["trial_index"]),
               default=None)


def latest_trial(store: dict[str, Any]) -> int | None:
    trials = store.get("trials") or []
    return trials[-1]["trial_index"] if trials else None
