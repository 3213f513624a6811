"""Reliability: diverging and failing trainings, bad input, a live dashboard. (Kill and resume,
reproducibility and moved run folders: tests/test_kill_resume.py.)
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
import subprocess
import sys
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

pytestmark = pytest.mark.slow


def write_space(path: Path, learning_rate: tuple[float, float], optimizers=("SGD",), highest_rate: float = 1e6) -> Path:
    space = {"dimensions": [
        {"name": "unit_c1", "type": "integer", "low": 8, "high": 16},
        {"name": "dr1_2", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "unit_c2", "type": "integer", "low": 8, "high": 16},
        {"name": "unit_d", "type": "integer", "low": 16, "high": 32},
        {"name": "dr_f", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "learning_rate", "type": "real", "low": learning_rate[0], "high": learning_rate[1],
         "prior": "log-uniform", "domain": [1e-5, highest_rate]},
        {"name": "batch_size", "type": "integer", "low": 32, "high": 64},
        {"name": "optimizer", "type": "categorical", "categories": list(optimizers)},
        {"name": "activation", "type": "categorical", "categories": ["relu"]},
    ]}
    path.write_text(json.dumps(space))
    return path


def test_diverging_training_is_recorded_penalised_diagnosed_and_the_run_goes_on(tmp_path):
    # Rates of 1e10 and more overflow float32 within the first epoch on every machine; at 1e5..1e6
    # the loss may explode and come back finite (1e26, then 3e5, with oneDNN's kernels).
    space = write_space(tmp_path / "space.json", (1e10, 1e12), highest_rate=1e13)
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
        # Bounded by the run: rounds go on until it has finished and its four trials were shown
        # (a loaded machine trains slowly; a run that never finishes fails after 20 minutes).
        deadline = time.monotonic() + 1200
        for round_index in itertools.count():
            assert time.monotonic() < deadline, f"the run did not finish, or its trials were not all shown: {lags}"
            for page in ("/", "/metrics", "/hyperparameters", "/weights", "/decisions", "/architecture",
                         "/_dash-layout", "/_dash-dependencies"):
                with urllib.request.urlopen(base + page, timeout=60) as response:   # training shares the cores
                    statuses.append(response.status)
            # What the dashboard's loader callback does every few seconds, against the live database.
            store = data.refresh(folder, store)
            if (folder / "run.sqlite").exists():
                with sqlite3.connect(f"file:{folder / 'run.sqlite'}?mode=ro", uri=True, timeout=5) as db:
                    count = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                for trial in range(count):      # two trials may commit within one round
                    committed_at.setdefault(trial, round_index)
                shown = data.latest_trial(store) if data.has_trials(store) else None
                if shown is not None and shown in committed_at and shown not in dict(lags):
                    lags.append((shown, round_index - committed_at[shown]))
            if run.poll() is not None and 3 in dict(lags):   # finished, and its last trial shown
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
