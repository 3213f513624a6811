"""Persistence of a run: the SQLite database and the atomically rewritten summary.json.

Everything a trial produces is written in one transaction (`RunStorage.commit_trial`), so
after a crash the database holds every completed trial exactly once. A trial is stored as
running when it is dispatched (`start_trial`: its proposal, when and where), and that row is
removed in the transaction that commits it; a resumed run trains the running ones again. The controller's state after each trial (search space,
architecture, rule weights, LFI evidence, actions awaiting judgement) is stored with it, so
a resumed run continues from the last committed trial with the same state.

Each trial row holds the whole `TrialRecord` as JSON (`record`, read back with
`RunStorage.records()` / `read_records(log_folder)`); the other columns and tables repeat
parts of it for SQL queries. Every reader of a run (summary, trials.csv, the API, the
benchmark, the dashboard) goes through `records()`.

The database is opened in WAL mode so the dashboard can read it while the run writes.
This module imports no Keras: it stores what the records' to_dict() methods produce.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from sdt.core.errors import RunStateError
from sdt.run.controller import ControllerState, RunningTrial, TrialRecord

DATABASE_NAME = "run.sqlite"
SUMMARY_NAME = "summary.json"
SCHEMA_VERSION = 2   # 2: trials.record holds the whole TrialRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    key   TEXT PRIMARY KEY,       -- 'config', 'domain', 'initial_state', 'schema_version', 'final'
    value TEXT NOT NULL           -- JSON
);
CREATE TABLE IF NOT EXISTS trials (
    trial_index       INTEGER PRIMARY KEY,
    status            TEXT NOT NULL,     -- completed | pruned | diverged | failed
    objective         REAL NOT NULL,     -- what the optimiser was told (finite, penalty for failures)
    val_loss          REAL,
    val_accuracy      REAL,
    best_epoch        INTEGER,
    epochs_run        INTEGER,
    duration_seconds  REAL,              -- training time
    symbolic_seconds  REAL,              -- facts + LFI + diagnosis + choice + tuning
    parameter_count   INTEGER,
    model_path        TEXT,
    error             TEXT,
    params            TEXT NOT NULL,     -- JSON: hyper-parameters used
    architecture      TEXT NOT NULL,     -- JSON: Architecture used
    point             TEXT NOT NULL,     -- JSON: the point told to the optimiser (domain coordinates)
    history           TEXT NOT NULL,     -- JSON: per-epoch loss/accuracy/val_loss/val_accuracy (+ train_eval_*)
    improved          INTEGER,           -- 1 if this trial beat the best objective before it
    finished_at       REAL NOT NULL,     -- unix time
    record            TEXT NOT NULL      -- JSON: the whole TrialRecord (controller.TrialRecord.to_dict)
);
CREATE TABLE IF NOT EXISTS epochs (
    trial_index  INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL,
    PRIMARY KEY (trial_index, epoch)
);
CREATE TABLE IF NOT EXISTS diagnoses (
    trial_index  INTEGER NOT NULL,
    problem      TEXT NOT NULL,
    probability  REAL NOT NULL,
    explanation  TEXT NOT NULL,
    PRIMARY KEY (trial_index, problem)
);
CREATE TABLE IF NOT EXISTS candidate_actions (
    trial_index  INTEGER NOT NULL,
    action       TEXT NOT NULL,
    problem      TEXT NOT NULL,
    probability  REAL NOT NULL,
    PRIMARY KEY (trial_index, action, problem)
);
CREATE TABLE IF NOT EXISTS applied_actions (
    trial_index  INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    action       TEXT NOT NULL,
    problem      TEXT,
    description  TEXT NOT NULL,
    changes      TEXT NOT NULL,          -- JSON list of {target, before, after}
    PRIMARY KEY (trial_index, position)
);
CREATE TABLE IF NOT EXISTS rule_weights (
    trial_index  INTEGER NOT NULL,       -- weights in force for this trial's choice (after its LFI); -1 = initial
    action       TEXT NOT NULL,
    problem      TEXT NOT NULL,
    weight       REAL NOT NULL,
    PRIMARY KEY (trial_index, action, problem)
);
CREATE TABLE IF NOT EXISTS search_spaces (
    trial_index  INTEGER PRIMARY KEY,    -- space after this trial's actions; -1 = initial
    space        TEXT NOT NULL,          -- JSON SearchSpace
    architecture TEXT NOT NULL           -- JSON Architecture
);
CREATE TABLE IF NOT EXISTS controller_states (
    trial_index  INTEGER PRIMARY KEY,    -- state after this trial; -1 = initial
    state        TEXT NOT NULL           -- JSON, see controller.ControllerState
);
""" + """
CREATE TABLE IF NOT EXISTS running (
    trial_index  INTEGER PRIMARY KEY,    -- dispatched and not yet committed (removed by commit_trial)
    started_at   TEXT NOT NULL,          -- ISO 8601 UTC
    worker       TEXT,                   -- who trains it (host:pid), when known
    trial        TEXT NOT NULL           -- JSON: the RunningTrial (proposal and what it was proposed under)
);
"""
# Added after schema 2 was released: created when a writer opens a run that lacks it.
_RUNNING_SCHEMA = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS running"):]


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    # numpy scalars slip through from skopt; store them as plain numbers.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


TEMPORARY_SUFFIX = ".tmp"


def remove_leftover_temporaries(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that a process killed inside _replace_atomically left for the
    files `names` of `folder` (`<name>.<random>.tmp`); the removed paths. Called by the folder's
    owner only (sdt/run/lock.py), so no live writer's temporary is touched."""
    removed = []
    for name in names:
        for leftover in Path(folder).glob(f"{name}.*{TEMPORARY_SUFFIX}"):
            if leftover.is_file():
                leftover.unlink()
                removed.append(leftover)
    return removed


def _replace_atomically(path: Path, write: Callable[[TextIO], None], newline: str | None = None) -> None:
    """Write `path` through a temporary file and a rename: readers see the old or the new file, never half."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        # mkstemp makes the file readable by its owner only; the outputs are ordinary files that
        # a dashboard run by another user may read: the mode an open() would give, under the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "w", encoding="utf-8", newline=newline) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path`, replacing it atomically."""
    def write(stream: TextIO) -> None:
        json.dump(data, stream, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
        stream.write("\n")
    _replace_atomically(path, write)


def write_csv_atomically(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write `rows` as CSV (header `columns`, None as an empty cell), replacing `path` atomically."""
    import csv

    def write(stream: TextIO) -> None:
        writer = csv.DictWriter(stream, fieldnames=columns, restval="", extrasaction="raise")
        writer.writeheader()
        writer.writerows([{key: "" if value is None else value for key, value in row.items()} for row in rows])
    _replace_atomically(path, write, newline="")


class RunStorage:
    """The database of one run, in `<log_folder>/run.sqlite`."""

    def __init__(self, log_folder: Path, connection: sqlite3.Connection, read_only: bool = False):
        self.log_folder = Path(log_folder)
        self._connection = connection
        self.read_only = read_only

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, log_folder: Path, config: dict[str, Any], domain: dict[str, Any],
               initial_state: dict[str, Any], initial_space: dict[str, Any],
               initial_architecture: dict[str, Any], initial_weights: dict[str, Any]) -> "RunStorage":
        """Create the database of a new run (the folder must not hold one).

        It is built whole in a temporary file (`run.sqlite.<random>.tmp`) and renamed into place,
        so a failure on the way (a full disk) or a kill leaves no table-less run.sqlite that would
        block the folder: the temporary is removed on failure, and after a kill by the folder's
        next owner (remove_leftover_temporaries)."""
        log_folder = Path(log_folder)
        path = log_folder / DATABASE_NAME
        if path.exists():
            raise RunStateError(f"log folder '{log_folder}' already holds a run")
        handle, temporary = tempfile.mkstemp(prefix=DATABASE_NAME + ".", suffix=TEMPORARY_SUFFIX, dir=log_folder)
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(handle, 0o666 & ~umask)      # as sqlite3 would create it, not mkstemp's 0600
            os.close(handle)
            with closing(sqlite3.connect(temporary)) as connection:
                connection.execute("PRAGMA synchronous=FULL")
                with connection:
                    connection.executescript(_SCHEMA)
                with connection:
                    connection.executemany("INSERT INTO run (key, value) VALUES (?, ?)", [
                        ("schema_version", _json(SCHEMA_VERSION)), ("config", _json(config)),
                        ("domain", _json(domain)),
                    ])
                    cls._insert_space(connection, -1, initial_space, initial_architecture)
                    cls._insert_weights(connection, -1, initial_weights)
                    connection.execute("INSERT INTO controller_states (trial_index, state) VALUES (?, ?)",
                                       (-1, _json(initial_state)))
            os.replace(temporary, path)
        except BaseException:
            for leftover in (temporary, temporary + "-journal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
            raise
        return cls(log_folder, cls._connect(path))

    @classmethod
    def open(cls, log_folder: Path, read_only: bool = False, timeout: float = 30.0) -> "RunStorage":
        """Open the database of an existing run.

        `read_only` opens it with a read-only URI (the dashboard, the API's readers): nothing
        is ever written. `timeout`: seconds to wait for a lock held by a writer.
        """
        log_folder = Path(log_folder)
        path = log_folder / DATABASE_NAME
        if not path.is_file():
            raise RunStateError(f"log folder '{log_folder}' holds no run (no {DATABASE_NAME})")
        connection = cls._connect(path, read_only=read_only, timeout=timeout)
        try:
            version = connection.execute("SELECT value FROM run WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as err:
            connection.close()
            raise RunStateError(f"'{path}' is not a readable run database: {err}") from err
        stored_version = None if version is None else json.loads(version[0])
        if stored_version != SCHEMA_VERSION:
            connection.close()
            if isinstance(stored_version, int) and stored_version < SCHEMA_VERSION:
                raise RunStateError(
                    f"'{path}' was written by an older version of Symbolic DNN-Tuner (database schema "
                    f"{stored_version}; this version reads schema {SCHEMA_VERSION}, which stores each "
                    f"trial's whole record) and cannot be read or resumed: start a new run in another "
                    f"log folder, or pass --overwrite to replace it")
            raise RunStateError(f"'{path}' has an unknown database schema version {stored_version!r} "
                                f"(this version reads {SCHEMA_VERSION})")
        if not read_only:
            with connection:
                connection.executescript(_RUNNING_SCHEMA)
        return cls(log_folder, connection, read_only=read_only)

    @staticmethod
    def _connect(path: Path, read_only: bool = False, timeout: float = 30.0) -> sqlite3.Connection:
        if read_only:
            connection = sqlite3.connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True,
                                         timeout=timeout)
        else:
            connection = sqlite3.connect(path, timeout=timeout)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
        connection.row_factory = sqlite3.Row
        return connection

    def close(self) -> None:
        """Close the database. A writer leaves it in rollback-journal mode when no reader has it
        open: the run folder is then one self-contained run.sqlite, and a later read-only opener
        (the dashboard, --resume's first look, the API) finds no WAL to create -wal/-shm files for.
        The next writer switches WAL on again (_connect)."""
        try:
            if not self.read_only:
                self._connection.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass        # a reader still has it open: it stays in WAL mode, which is just as safe
        finally:
            self._connection.close()

    def __enter__(self) -> "RunStorage":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    @staticmethod
    def _insert_space(connection: sqlite3.Connection, trial_index: int,
                      space: dict[str, Any], architecture: dict[str, Any]) -> None:
        connection.execute(
            "INSERT INTO search_spaces (trial_index, space, architecture) VALUES (?, ?, ?)",
            (trial_index, _json(space), _json(architecture)))

    @staticmethod
    def _insert_weights(connection: sqlite3.Connection, trial_index: int, weights: dict[str, Any]) -> None:
        connection.executemany(
            "INSERT INTO rule_weights (trial_index, action, problem, weight) VALUES (?, ?, ?, ?)",
            [(trial_index, rule["action"], rule["problem"], float(rule["weight"])) for rule in weights["rules"]])

    def start_trial(self, running: RunningTrial) -> None:
        """Store a dispatched trial as running (replacing an earlier row of its index: a trial a
        killed run left running and this one trains again)."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO running (trial_index, started_at, worker, trial) VALUES (?, ?, ?, ?)",
                (running.index, running.started_at, running.worker, _json(running.to_dict())))

    def commit_trial(self, record: TrialRecord, state: ControllerState) -> None:
        """Store one finished trial (the whole record) and the controller state after it, and
        remove its running row, in one transaction: after a crash all are there or none."""
        trial = record.to_dict()
        state = state.to_dict()
        index = int(trial["index"])
        result = trial["result"]
        # Paths inside the run folder are stored relative to it, so that the folder can be moved.
        result["model_path"] = self._portable(result.get("model_path"))
        history = result.get("history") or {}
        connection = self._connection
        with connection:
            connection.execute(
                "INSERT INTO trials (trial_index, status, objective, val_loss, val_accuracy, best_epoch,"
                " epochs_run, duration_seconds, symbolic_seconds, parameter_count, model_path, error,"
                " params, architecture, point, history, improved, finished_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (index, result["status"], float(trial["objective"]), _finite_or_none(result.get("val_loss")),
                 _finite_or_none(result.get("val_accuracy")), result.get("best_epoch"),
                 result.get("epochs_run"), result.get("duration_seconds"), trial.get("symbolic_seconds"),
                 result.get("parameter_count"), result.get("model_path"), result.get("error"),
                 _json(trial["params"]), _json(trial["architecture"]), _json(trial["point"]),
                 _json(history), None if trial.get("improved") is None else int(trial["improved"]),
                 time.time(), _record_json(trial)))
            epochs = len(history.get("loss", []))
            connection.executemany(
                "INSERT INTO epochs (trial_index, epoch, loss, accuracy, val_loss, val_accuracy)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(index, epoch, *[_value_at(history, key, epoch)
                                  for key in ("loss", "accuracy", "val_loss", "val_accuracy")])
                 for epoch in range(epochs)])
            diagnosis = trial.get("diagnosis") or {}
            connection.executemany(
                "INSERT INTO diagnoses (trial_index, problem, probability, explanation) VALUES (?, ?, ?, ?)",
                [(index, p["name"], float(p["probability"]), p["explanation"]) for p in diagnosis.get("problems", [])])
            connection.executemany(
                "INSERT OR REPLACE INTO candidate_actions (trial_index, action, problem, probability)"
                " VALUES (?, ?, ?, ?)",
                [(index, a["name"], a["problem"], float(a["probability"])) for a in diagnosis.get("actions", [])])
            outcome = trial.get("outcome") or {}
            connection.executemany(
                "INSERT INTO applied_actions (trial_index, position, action, problem, description, changes)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(index, position, record["action"], record.get("problem"), record["description"],
                  _json(record["changes"])) for position, record in enumerate(outcome.get("applied", []))])
            if trial.get("rule_weights") is not None:
                self._insert_weights(connection, index, trial["rule_weights"])
            self._insert_space(connection, index, state["space"], state["architecture"])
            connection.execute("INSERT INTO controller_states (trial_index, state) VALUES (?, ?)",
                               (index, _json(state)))
            connection.execute("DELETE FROM running WHERE trial_index=?", (index,))

    def set_final(self, final: dict[str, Any]) -> None:
        """Record the end-of-run result (best trial and its test metrics)."""
        with self._connection:
            self._connection.execute("INSERT OR REPLACE INTO run (key, value) VALUES ('final', ?)", (_json(final),))

    # ------------------------------------------------------------------ reading
    def run_value(self, key: str) -> Any:
        row = self._connection.execute("SELECT value FROM run WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def trial_count(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def stored_trials(self) -> list["StoredTrial"]:
        """Every stored trial in index order: its whole record and when it was committed. A model
        path stored relative to the run folder comes back absolute, in the folder where the run is
        now."""
        trials = []
        for row in self._connection.execute("SELECT record, finished_at FROM trials ORDER BY trial_index"):
            data = json.loads(row["record"])
            result = data.get("result") or {}
            if result.get("model_path"):
                result["model_path"] = str(self.log_folder.resolve() / result["model_path"])
            trials.append(StoredTrial(TrialRecord.from_dict(data), float(row["finished_at"])))
        return trials

    def running_trials(self) -> list[RunningTrial]:
        """The trials dispatched and not committed, in index order (none in a database from
        before running trials were stored)."""
        try:
            rows = self._connection.execute("SELECT trial FROM running ORDER BY trial_index").fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return []
            raise
        return [RunningTrial.from_dict(json.loads(row[0])) for row in rows]

    def _portable(self, path: str | None) -> str | None:
        """`path` relative to the run folder (POSIX separators) when it lies inside it; else as given."""
        if not path:
            return path
        try:
            return Path(path).resolve().relative_to(self.log_folder.resolve()).as_posix()
        except ValueError:
            return str(path)

    def records(self) -> list[TrialRecord]:
        """Every stored trial's whole record, in index order."""
        return [trial.record for trial in self.stored_trials()]

    def committed_records(self) -> list[TrialRecord]:
        """Every stored trial's whole record in the order they were committed (the order a
        strategy was told them; index order unless trials ran in parallel)."""
        return [trial.record for trial in sorted(self.stored_trials(), key=lambda t: (t.finished_at, t.record.index))]

    def states(self) -> list[tuple[int, ControllerState]]:
        """(trial index, controller state after it) of every committed state, -1 = the initial one."""
        return [(int(row[0]), ControllerState.from_dict(json.loads(row[1]))) for row in self._connection.execute(
            "SELECT trial_index, state FROM controller_states ORDER BY trial_index")]

    def last_state(self) -> tuple[int, ControllerState]:
        """(trial index, controller state) of the newest committed state: after the trial committed
        last (trials running in parallel commit out of index order), -1 = the initial one."""
        row = self._connection.execute(
            "SELECT s.trial_index, s.state FROM controller_states s LEFT JOIN trials t USING (trial_index)"
            " ORDER BY COALESCE(t.finished_at, -1) DESC, s.trial_index DESC LIMIT 1").fetchone()
        return int(row[0]), ControllerState.from_dict(json.loads(row[1]))

    def integrity_ok(self) -> bool:
        return self._connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def check_resumable(self) -> dict[str, Any]:
        """The stored configuration, once the database has passed SQLite's integrity check and
        every stored trial, state and the configuration read back whole; RunStateError naming
        what is wrong otherwise (a resumed run must not build on a damaged or inconsistent one)."""
        path = self.log_folder / DATABASE_NAME
        try:
            if not self.integrity_ok():
                raise RunStateError(f"'{path}' fails SQLite's integrity check (a damaged file): it cannot be "
                                    "resumed safely; restore it from a copy, or start a new run")
            config = self.run_value("config")
            records = self.committed_records()
            running = self.running_trials()
            index, _ = self.last_state()
        except RunStateError:
            raise
        except (sqlite3.Error, ValueError, KeyError, TypeError, AttributeError) as err:
            raise RunStateError(f"'{path}' cannot be read back as a run ({type(err).__name__}: {err}): "
                                "it cannot be resumed") from None
        if not isinstance(config, dict):
            raise RunStateError(f"'{path}' holds no run configuration: it cannot be resumed")
        # Every index from 0 is a stored or a running trial (parallel trials commit out of order),
        # and the newest state is the one after the trial committed last.
        indices = sorted([r.index for r in records] + [r.index for r in running])
        last = records[-1].index if records else -1
        if indices != list(range(len(indices))) or index != last:
            raise RunStateError(f"'{path}' is inconsistent (trials {[r.index for r in records]}, running "
                                f"{[r.index for r in running]}, last state after trial {index}): it cannot be resumed")
        return config


@dataclass(frozen=True)
class StoredTrial:
    """One trial as stored: the whole record and the unix time it was committed."""

    record: TrialRecord
    finished_at: float


def read_records(log_folder: Path) -> list[TrialRecord]:
    """Every trial record of the run in `log_folder`, opened read-only (RunStateError if none)."""
    with RunStorage.open(log_folder, read_only=True) as storage:
        return storage.records()


def _record_json(trial: dict[str, Any]) -> str:
    # Diagnosis measures may be NaN or infinite (a diverged curve): kept as JSON's NaN/Infinity
    # tokens, which json.loads reads back, so the record round-trips exactly. Keys keep their
    # order (the parameters' order is the columns' order of trials.csv, before and after resume).
    return json.dumps(trial, allow_nan=True, default=_json_default)


def _value_at(history: dict[str, list], key: str, epoch: int) -> Any:
    values = history.get(key) or []
    return _finite_or_none(values[epoch]) if epoch < len(values) else None


def read_summary(log_folder: Path) -> dict[str, Any] | None:
    path = Path(log_folder) / SUMMARY_NAME
    if not path.exists():
        return None
    with closing(open(path, encoding="utf-8")) as stream:
        return json.load(stream)
