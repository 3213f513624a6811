"""Reliability: kill and resume, diverging and failing trainings, bad input, reproducibility, a live dashboard.

The kill tests run real (tiny) runs on the digits dataset in subprocesses that SIGKILL themselves
at a chosen point (tests/fault_driver.py), then resume through the real CLI. Same seed on CPU
gives the same run, so a resumed run must equal an uninterrupted reference run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sdt.run import loop as tuner
from sdt.run.storage import RunStorage
from tests.fake_training import FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "fault_driver.py"
MAX_EVALS = 3

pytestmark = pytest.mark.slow


def drive(folder: Path, kill_point: str, trial: int = 0, seed: int = 0, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), str(folder), kill_point, str(trial),
                           "--max-evals", str(MAX_EVALS), "--seed", str(seed), *options],
                          capture_output=True, text=True, timeout=600)


def stored_run(folder: Path) -> dict:
    """What a run's database holds, in comparable form."""
    with RunStorage.open(folder, read_only=True) as storage:
        assert storage.integrity_ok()
        records = storage.records()
        connection = storage._connection
        weights = [tuple(r) for r in connection.execute(
            "SELECT trial_index, action, problem, weight FROM rule_weights ORDER BY 1, 2, 3")]
        spaces = [r[0] for r in connection.execute("SELECT space FROM search_spaces ORDER BY trial_index")]
        return {
            "indices": [r.index for r in records],
            "params": [r.params for r in records],
            "val_loss": [r.result.val_loss for r in records],
            "statuses": [(r.result.status, r.result.epochs_run, r.result.stop_reason) for r in records],
            "problems": [r.diagnosis.problem_names() if r.diagnosis else () for r in records],
            "actions": [r.outcome.applied_actions if r.outcome else () for r in records],
            "diagnoses": [r.diagnosis for r in records],
            "weights": weights,
            "spaces": spaces,
            "last_state": storage.last_state(),
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An uninterrupted run with seed 0."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    result = drive(folder, "none")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((folder / "summary.json").read_text())
    return {**stored_run(folder), "folder": folder, "test_accuracy": summary["best"]["test_accuracy"]}


class SummaryWatcher(threading.Thread):
    """Parses summary.json over and over while a run writes it; records any failed parse."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.path = folder / "summary.json"
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                time.sleep(0.005)
                continue
            try:
                json.loads(text)
                self.reads += 1
            except json.JSONDecodeError as err:
                self.errors.append(str(err))


@pytest.mark.parametrize("kill_point, trial", [("training", 1), ("symbolic", 1), ("db_write", 1)])
def test_kill_and_resume_loses_nothing(tmp_path, reference, kill_point, trial):
    folder = tmp_path / "run"
    watcher = SummaryWatcher(folder)
    watcher.start()
    try:
        killed = drive(folder, kill_point, trial)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        interrupted = stored_run(folder)
        # Only the trials completed before the kill are stored; the killed one left nothing.
        assert interrupted["indices"] == list(range(trial))
        assert interrupted["last_state"][0] == trial - 1

        resumed = subprocess.run([sys.executable, str(REPO / "main.py"), "--resume", "--log-folder", str(folder)],
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    finally:
        watcher.stop.set()
        watcher.join()
    assert watcher.errors == [] and watcher.reads > 0          # summary.json always parsed

    final = stored_run(folder)
    assert final["indices"] == list(range(MAX_EVALS))            # every trial exactly once
    # Same seed, same state restored: the resumed run is the uninterrupted one, including the rule
    # weights and search spaces after each trial (those of the last completed trial carried over).
    for key in ("params", "val_loss", "problems", "actions", "weights", "spaces"):
        assert final[key] == reference[key], key
    summary = json.loads((folder / "summary.json").read_text())
    assert [t["index"] for t in summary["trials"]] == list(range(MAX_EVALS))
    assert summary["best"]["test_accuracy"] is not None


def test_kill_and_resume_of_a_run_whose_trainings_are_pruned_loses_nothing(tmp_path):
    """Issue 14: a run whose every training is stopped by the diagnosis (stuck at chance), killed
    inside the diagnosis of a pruned training (after the stop, before it is stored), resumes into
    the uninterrupted run: the same pruned trials, stopped at the same epoch for the same reason.
    (A kill during a training is the same resume path: test_kill_and_resume_loses_nothing.)"""
    from tests.test_pruning import STUCK_STOP_EPOCH, write_space
    space = str(write_space(tmp_path / "space.json"))
    options = ("--epochs", "8", "--search-space", space)
    reference_folder = tmp_path / "reference"
    assert drive(reference_folder, "none", 0, 0, *options).returncode == 0
    expected = stored_run(reference_folder)
    assert [status for status, _, _ in expected["statuses"]] == ["pruned"] * MAX_EVALS
    assert all(epochs <= STUCK_STOP_EPOCH for _, epochs, _ in expected["statuses"])
    for kill_point in ("symbolic",):
        folder = tmp_path / kill_point
        killed = drive(folder, kill_point, 1, 0, *options)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert stored_run(folder)["indices"] == [0]                 # the pruned trial 0, nothing of trial 1
        resumed = subprocess.run([sys.executable, str(REPO / "main.py"), "--resume", "--log-folder", str(folder)],
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        final = stored_run(folder)
        for key in ("indices", "params", "val_loss", "statuses", "problems", "actions", "weights", "spaces"):
            assert final[key] == expected[key], (kill_point, key)
        summary = json.loads((folder / "summary.json").read_text())
        assert [t["status"] for t in summary["trials"]] == ["pruned"] * MAX_EVALS
        assert summary["epochs_spent"] == sum(epochs for _, epochs, _ in expected["statuses"])


def test_a_moved_run_folder_resumes_with_its_own_models(tmp_path, reference):
    """Issue 17, item 4: model paths are stored relative to the run folder, so a moved folder
    finds its own models (and never another run's at the old place)."""
    import shutil
    original, moved = tmp_path / "original", tmp_path / "elsewhere" / "moved"
    shutil.copytree(reference["folder"], original)
    moved.parent.mkdir()
    original.rename(moved)
    with RunStorage.open(moved, read_only=True) as storage:
        paths = [Path(r.result.model_path) for r in storage.records()]
    assert all(path.is_relative_to(moved) and path.is_file() for path in paths), paths
    resumed = subprocess.run([sys.executable, str(REPO / "main.py"), "--resume", "--log-folder", str(moved)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "nothing left to train" in resumed.stdout
    summary = json.loads((moved / "summary.json").read_text())
    assert summary["best"]["test_accuracy"] == reference["test_accuracy"]
    assert (moved / "best_model.keras").is_file()


def test_same_seed_same_run_different_seed_different_run(tmp_path, reference):
    again = drive(tmp_path / "again", "none")
    other = drive(tmp_path / "other", "none", seed=1)
    assert again.returncode == 0 and other.returncode == 0
    same = stored_run(tmp_path / "again")
    for key in ("params", "val_loss", "problems", "actions"):
        assert same[key] == reference[key], key
    assert stored_run(tmp_path / "other")["params"] != reference["params"]


def write_space(path: Path, learning_rate: tuple[float, float], optimizers=("SGD",)) -> Path:
    space = {"dimensions": [
        {"name": "unit_c1", "type": "integer", "low": 8, "high": 16},
        {"name": "dr1_2", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "unit_c2", "type": "integer", "low": 8, "high": 16},
        {"name": "unit_d", "type": "integer", "low": 16, "high": 32},
        {"name": "dr_f", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "learning_rate", "type": "real", "low": learning_rate[0], "high": learning_rate[1],
         "prior": "log-uniform", "domain": [1e-5, 1e6]},
        {"name": "batch_size", "type": "integer", "low": 32, "high": 64},
        {"name": "optimizer", "type": "categorical", "categories": list(optimizers)},
        {"name": "activation", "type": "categorical", "categories": ["relu"]},
    ]}
    path.write_text(json.dumps(space))
    return path


def test_diverging_training_is_recorded_penalised_diagnosed_and_the_run_goes_on(tmp_path):
    space = write_space(tmp_path / "space.json", (1e5, 1e6))
    config = tuner.RunConfig(dataset="digits", max_evals=2, epochs=2, seed=0, initial_points=1,
                             search_space_path=str(space))
    summary = tuner.run(config, tmp_path / "run")
    assert [t["status"] for t in summary["trials"]] == ["diverged", "diverged"]   # the run went on
    for trial in summary["trials"]:
        assert np.isfinite(trial["objective"]) and trial["objective"] < 1e3      # a usable penalty, not 1e10
        assert "high_lr" in trial["problems"]
    assert "decr_lr" in summary["trials"][0]["actions"]


def test_failing_training_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf
    original_fit = keras.Model.fit
    calls = {"n": 0}

    def fit(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:       # the first training runs out of memory
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor (simulated)")
        return original_fit(self, *args, **kwargs)
    monkeypatch.setattr(keras.Model, "fit", fit)
    config = tuner.RunConfig(dataset="digits", max_evals=2, epochs=1, seed=0, initial_points=1)
    summary = tuner.run(config, tmp_path / "run")
    assert [t["status"] for t in summary["trials"]] == ["failed", "completed"]
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        failed = storage.records()[0].result
        assert "ResourceExhaustedError" in failed.error and "simulated" in failed.error


# --------------------------------------------------------------------------------------------
# Bad input: one error line, non-zero exit, an existing run untouched
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("existing") / "run"
    tuner.run(tuner.RunConfig(dataset="digits", max_evals=2, epochs=1, seed=0, initial_points=1), folder,
              make_train=fake_factory(FakeTrainer()))
    return folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (extra CLI arguments, text the error line must contain)."""
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    wrong_keys = tmp / "wrong_keys.npz"
    np.savez(wrong_keys, images=np.zeros((4, 8, 8)), labels=np.zeros(4))
    empty_folder = tmp / "empty_images"
    empty_folder.mkdir()
    spaces = {
        "unknown_type": {"name": "unit_c1", "type": "float", "low": 1, "high": 2},
        "low_above_high": {"name": "unit_c1", "type": "integer", "low": 64, "high": 16},
        "empty_categories": {"name": "optimizer", "type": "categorical", "categories": []},
    }
    for name, entry in spaces.items():
        (tmp / f"{name}.json").write_text(json.dumps({"dimensions": [entry]}))
    (tmp / "bad_rules.pl").write_text("t(0.5)::action(reg_l2, overfitting) :- problem(overfitting\n")
    (tmp / "bad_diagnosis.pl").write_text("problem(overfitting) :- .\n")
    return {
        "unknown dataset": (["--dataset", "no_such_dataset"], "no_such_dataset"),
        "missing npz": (["--dataset", str(tmp / "absent.npz")], "absent.npz"),
        "corrupt npz": (["--dataset", str(corrupt)], "corrupt.npz"),
        "npz wrong keys": (["--dataset", str(wrong_keys)], "x_train"),
        "empty image folder": (["--dataset", str(empty_folder)], "empty_images"),
        "space unknown type": (["--search-space", str(tmp / "unknown_type.json")], "unknown type 'float'"),
        "space low > high": (["--search-space", str(tmp / "low_above_high.json")], "must not exceed high"),
        "space empty categories": (["--search-space", str(tmp / "empty_categories.json")], "categories must not be empty"),
        "malformed rules": (["--rules", str(tmp / "bad_rules.pl")], "bad_rules.pl"),
        "malformed diagnosis": (["--diagnosis", str(tmp / "bad_diagnosis.pl")], "bad_diagnosis.pl"),
        "max-evals 0": (["--max-evals", "0"], "--max-evals must be >= 1"),
        "epochs -1": (["--epochs", "-1"], "--epochs must be >= 1"),
    }


def test_bad_input_gives_one_error_line_and_leaves_the_run_untouched(tmp_path, existing_run):
    before = snapshot(existing_run)
    for name, (arguments, expected) in bad_inputs(tmp_path).items():
        # --overwrite: even a run that was asked to be replaced survives bad input.
        result = subprocess.run([sys.executable, str(REPO / "main.py"), "--overwrite", "--log-folder",
                                 str(existing_run), *arguments], capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, result.stderr)
        assert snapshot(existing_run) == before, name


def test_log_folder_problems_give_one_error_line(tmp_path, existing_run):
    def cli(*arguments):
        return subprocess.run([sys.executable, str(REPO / "main.py"), *arguments],
                              capture_output=True, text=True, timeout=120)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    result = cli("--log-folder", str(a_file))
    assert result.returncode == 2 and "is a file" in result.stderr and a_file.read_text() == "not a folder"

    result = cli("--resume", "--log-folder", str(tmp_path / "nothing_here"))
    assert result.returncode == 2 and "holds no run" in result.stderr

    # A read-only log folder: a read-only file system as root (root ignores permission bits).
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
                                 capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("cannot mount a read-only file system here")
    else:
        read_only.chmod(0o555)
    try:
        result = cli("--dataset", "digits", "--log-folder", str(read_only / "run"))
        assert result.returncode == 2 and "not writable" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(read_only)])
        else:
            read_only.chmod(0o755)


# --------------------------------------------------------------------------------------------
# The dashboard while a run writes
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dashboard_serves_a_live_run(tmp_path):
    from sdt.dashboard import data
    folder = tmp_path / "run"
    port = free_port()
    # The server logs every request on stderr: to a file, never to a pipe nobody reads (a full
    # pipe blocks the server after a few hundred requests).
    dashboard_log = (tmp_path / "dashboard.log").open("w")
    dashboard = subprocess.Popen([sys.executable, str(REPO / "dashboard" / "launcher.py"), "--log-folder",
                                  str(folder), "--port", str(port)], stdout=subprocess.DEVNULL,
                                 stderr=dashboard_log, text=True)
    run = subprocess.Popen([sys.executable, str(DRIVER), str(folder), "none", "0", "--max-evals", "4"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300   # generous: a loaded machine starts Dash slowly
        while True:       # wait for the dashboard to listen
            try:
                urllib.request.urlopen(base + "/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.3)
        statuses, lags = [], []
        store = None
        committed_at: dict[int, int] = {}   # trial -> the round in which the database first had it
        for round_index in range(400):      # bounded: at most 400 rounds of requests
            for page in ("/", "/metrics", "/hyperparameters", "/weights", "/decisions", "/architecture",
                         "/_dash-layout", "/_dash-dependencies"):
                with urllib.request.urlopen(base + page, timeout=60) as response:   # training shares the cores
                    statuses.append(response.status)
            # What the dashboard's loader callback does every few seconds, against the live database.
            store = data.refresh(folder, store)
            if (folder / "run.sqlite").exists():
                with sqlite3.connect(f"file:{folder / 'run.sqlite'}?mode=ro", uri=True, timeout=5) as db:
                    count = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                if count and count - 1 not in committed_at:
                    committed_at[count - 1] = round_index
                shown = data.latest_trial(store) if data.has_trials(store) else None
                if shown is not None and shown in committed_at and shown not in dict(lags):
                    lags.append((shown, round_index - committed_at[shown]))
            if run.poll() is not None and len(lags) >= 4:
                break
            time.sleep(0.25)
        assert run.wait(timeout=300) == 0
        assert statuses and set(statuses) == {200}
        assert [index for index, _ in lags] == [0, 1, 2, 3]
        assert max(lag for _, lag in lags) <= 1   # shown by the first refresh after the round that saw it committed
    finally:
        for process in (run, dashboard):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        dashboard_log.close()
