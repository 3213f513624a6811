"""Read-only loading of a run's database into the JSON-able dict kept in the dashboard's store.

The database is opened per refresh with a read-only URI and closed again; nothing is ever
written. A database being written by a live run may be locked or half-created: `refresh`
then keeps the last good data and marks it stale instead of raising.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

DATABASE_NAME = "run.sqlite"       # sdt.storage.DATABASE_NAME (not imported: the dashboard stays light)
START_COMMAND = "python3 main.py --log-folder {folder}"

STATUS_MISSING = "missing"          # no folder or no run.sqlite
STATUS_EMPTY = "empty"              # a database without completed trials yet
STATUS_OK = "ok"


def _decode(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def load_run(log_folder: str | Path) -> dict[str, Any]:
    """Everything the pages draw, as plain JSON-able data.

    Raises sqlite3.OperationalError / DatabaseError when the database cannot be read now.
    """
    folder = Path(log_folder)
    path = folder / DATABASE_NAME
    base = {"log_folder": str(folder), "loaded_at": time.time(), "stale": False, "error": None}
    if not path.is_file():
        return {**base, "status": STATUS_MISSING}
    uri = f"file:{path.resolve().as_posix()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as connection:
        connection.row_factory = sqlite3.Row
        rows = lambda sql: [dict(r) for r in connection.execute(sql)]  # noqa: E731
        run = {r["key"]: _decode(r["value"]) for r in rows("SELECT key, value FROM run")}
        trials = []
        for row in rows("SELECT trial_index, status, objective, val_loss, val_accuracy, best_epoch, epochs_run,"
                        " duration_seconds, parameter_count, model_path, error, params, architecture, improved"
                        " FROM trials ORDER BY trial_index"):
            row["params"] = _decode(row["params"])
            row["architecture"] = _decode(row["architecture"])
            row["improved"] = None if row["improved"] is None else bool(row["improved"])
            trials.append(row)
        epochs = rows("SELECT trial_index, epoch, loss, accuracy, val_loss, val_accuracy FROM epochs"
                      " ORDER BY trial_index, epoch")
        diagnoses = rows("SELECT trial_index, problem, probability, explanation FROM diagnoses"
                         " ORDER BY trial_index, problem")
        applied = rows("SELECT trial_index, position, action, problem, description, changes FROM applied_actions"
                       " ORDER BY trial_index, position")
        for row in applied:
            row["changes"] = _decode(row["changes"])
        weights = rows("SELECT trial_index, action, problem, weight FROM rule_weights"
                       " ORDER BY trial_index, action, problem")
        spaces = [{"trial_index": r["trial_index"], "space": _decode(r["space"]),
                   "architecture": _decode(r["architecture"])}
                  for r in rows("SELECT trial_index, space, architecture FROM search_spaces ORDER BY trial_index")]
    best_model = folder / "best_model.keras"
    return {**base, "status": STATUS_OK if trials else STATUS_EMPTY,
            "config": run.get("config") or {}, "final": run.get("final"),
            "trials": trials, "epochs": epochs, "diagnoses": diagnoses, "applied_actions": applied,
            "rule_weights": weights, "search_spaces": spaces,
            "best_model_path": str(best_model) if best_model.is_file() else None}


def refresh(log_folder: str | Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """`load_run`, or on a read error the previous data marked stale (or an error record if none)."""
    try:
        return load_run(log_folder)
    except (sqlite3.OperationalError, sqlite3.DatabaseError, json.JSONDecodeError) as err:
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


def latest_trial(store: dict[str, Any]) -> int | None:
    trials = store.get("trials") or []
    return trials[-1]["trial_index"] if trials else None
