"""Kill and resume, reproducibility, a moved run folder.

The kill tests run real (tiny) runs on the digits dataset in subprocesses that SIGKILL themselves
at a chosen point (tests/fault_driver.py), then resume through the real CLI. Same seed on CPU
gives the same run, so a resumed run must equal an uninterrupted reference run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sdt.run.storage import RunStorage

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
