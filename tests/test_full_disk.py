"""Issue 17, item 7: a full disk (or any failed write of the run's own files) ends the run with one
clear error, never a traceback, and never leaves a table-less run.sqlite that blocks the folder.

The disk is filled by fault injection: the writes the run makes raise what a full disk raises
(sqlite3's "database or disk is full", OSError ENOSPC)."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest

from sdt.core.errors import RunStateError, TunerError
from sdt.run import loop as tuner
from sdt.run import storage as run_storage
from sdt.run.storage import DATABASE_NAME, RunStorage
from tests.fake_training import FakeTrainer, fake_factory


def config(**changes):
    return tuner.RunConfig(**{**dict(dataset="digits", max_evals=4, epochs=3, seed=2, initial_points=2), **changes})


def fake_run(folder: Path, **options):
    return tuner.run(config(), folder, make_train=fake_factory(FakeTrainer()), **options)


def disk_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")


def test_a_full_disk_while_the_database_is_created_leaves_nothing_that_blocks_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(RunStorage, "_insert_weights", staticmethod(disk_full))
    with pytest.raises(RunStateError, match=r"writing the run in '.*' failed \(database or disk is full\); "
                                            r"nothing was saved: fix the cause and run the command again"):
        fake_run(tmp_path / "run")
    assert not (tmp_path / "run" / DATABASE_NAME).exists()
    assert not list((tmp_path / "run").glob(f"{DATABASE_NAME}*"))          # no temporary either
    monkeypatch.undo()
    summary = fake_run(tmp_path / "run")                                     # the same folder, no --overwrite
    assert len(summary["trials"]) == 4


def test_a_database_creation_killed_halfway_is_cleaned_by_the_next_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    leftover = folder / f"{DATABASE_NAME}.k1ll3d{run_storage.TEMPORARY_SUFFIX}"
    leftover.write_bytes(b"SQLite format 3\x00 half a database")
    assert len(fake_run(folder)["trials"]) == 4
    assert not leftover.exists() and (folder / DATABASE_NAME).is_file()


def test_a_full_disk_during_a_trial_keeps_the_trials_before_and_the_run_resumes(tmp_path, monkeypatch):
    reference = fake_run(tmp_path / "reference")
    commit = RunStorage.commit_trial

    def full_at_the_third(self, record, state):
        if record.index == 2:
            disk_full()
        return commit(self, record, state)
    monkeypatch.setattr(RunStorage, "commit_trial", full_at_the_third)
    with pytest.raises(RunStateError, match=r"failed \(database or disk is full\); the trainings finished before "
                                            r"are saved: fix the cause and continue with --resume --log-folder"):
        fake_run(tmp_path / "run")
    monkeypatch.undo()
    with RunStorage.open(tmp_path / "run", read_only=True) as stored:
        assert [r.index for r in stored.records()] == [0, 1]
    resumed = fake_run(tmp_path / "run", resume=True)
    assert [t["params"] for t in resumed["trials"]] == [t["params"] for t in reference["trials"]]


def test_no_space_for_the_summary_is_one_error_naming_the_file(tmp_path, monkeypatch):
    write = run_storage.write_json_atomically
    calls = []

    def no_space_on_the_third(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, data)
    monkeypatch.setattr(run_storage, "write_json_atomically", no_space_on_the_third)
    with pytest.raises(TunerError) as raised:
        fake_run(tmp_path / "run")
    message = str(raised.value)
    assert f"(No space left on device: '{tmp_path / 'run' / 'summary.json'}')" in message
    assert "continue with --resume" in message and "Errno" not in message
    monkeypatch.undo()
    assert len(fake_run(tmp_path / "run", resume=True)["trials"]) == 4
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best"] is not None
