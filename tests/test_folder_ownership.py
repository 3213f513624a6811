"""Issue 17, items 1, 3, 5 and 7: one process owns a run folder; --overwrite removes a run, never
files that are not a run's; a damaged database is refused by --resume and left as it is.

A second process is refused a folder whose lock another process holds, before it writes or
deletes anything there; the lock dies with its holder, SIGKILL included; a folder that holds a
run's file names but no run is refused, with or without --overwrite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdt.run import loop as tuner
from sdt.run.lock import LOCK_NAME, FolderLock
from tests.fake_training import FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="flock locks need a POSIX system")


def config(**changes):
    return tuner.RunConfig(**{**dict(dataset="digits", max_evals=2, epochs=3, seed=1, initial_points=1), **changes})


def fake_run(folder: Path, **options):
    return tuner.run(config(), folder, make_train=fake_factory(FakeTrainer()), **options)


def files(folder: Path) -> dict[Path, bytes]:
    """Every file of the folder and its content, the lock file aside (its holder writes it)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps it until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sdt.run.lock import FolderLock; "
         "FolderLock.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(600)", str(folder)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_held_lock_refuses_a_second_owner_in_the_same_process_too(tmp_path):
    with FolderLock.acquire(tmp_path / "run"):
        with pytest.raises(tuner.RunStateError, match=f"in use by another run \\(process {os.getpid()}"):
            FolderLock.acquire(tmp_path / "run")
    FolderLock.acquire(tmp_path / "run").release()            # free again once released


def test_overwrite_and_resume_are_refused_while_another_process_holds_the_run(tmp_path):
    folder = tmp_path / "run"
    fake_run(folder)
    before = files(folder)
    holder = hold_lock(folder)
    try:
        for options in ({"overwrite": True}, {"resume": True, "resume_budget": 3}):
            with pytest.raises(tuner.RunStateError, match=f"is in use by another run \\(process {holder.pid}"):
                fake_run(folder, **options)
            assert files(folder) == before, options             # nothing deleted, nothing written
        result = subprocess.run([sys.executable, str(REPO / "main.py"), "--overwrite", "--dataset", "digits",
                                 "--log-folder", str(folder)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "in use by another run" in lines[0]
        assert files(folder) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The lock died with its holder: the run resumes.
    summary = fake_run(folder, resume=True, resume_budget=3)
    assert [t["index"] for t in summary["trials"]] == [0, 1, 2]


def test_a_run_holds_its_folder_until_it_returns(tmp_path):
    folder = tmp_path / "run"
    seen = []

    def train(params, architecture, index):
        with pytest.raises(tuner.RunStateError, match="in use by another run"):
            FolderLock.acquire(folder)
        seen.append(index)
        return FakeTrainer()(params, architecture, index)
    tuner.run(config(), folder, make_train=lambda context, verbose: train)
    assert seen == [0, 1]
    FolderLock.acquire(folder).release()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_with_a_runs_file_names_but_no_run_is_never_written_over(tmp_path, overwrite):
    folder = tmp_path / "someone_elses"
    (folder / "logs" / "experiment").mkdir(parents=True)
    (folder / "logs" / "experiment" / "events").write_text("theirs")
    (folder / "trials").mkdir()
    (folder / "summary.json").write_text('{"theirs": true}')
    before = files(folder)
    with pytest.raises(tuner.RunStateError, match="holds summary.json, trials, logs but no run of this tool"):
        fake_run(folder, overwrite=overwrite)
    assert files(folder) == before and (folder / "trials").is_dir()
    assert not (folder / "run.sqlite").exists()


def test_overwrite_removes_a_runs_outputs_and_starts_over(tmp_path):
    folder = tmp_path / "run"
    fake_run(folder)
    (folder / "notes.txt").write_text("mine")                  # not a run output: kept
    summary = tuner.run(config(max_evals=1), folder, overwrite=True, make_train=fake_factory(FakeTrainer()))
    assert [t["index"] for t in summary["trials"]] == [0]
    assert not (folder / "trials" / "trial_0001").exists()
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_finished_run_is_one_database_file_that_readers_leave_alone(tmp_path):
    from sdt.dashboard import data
    from sdt.run.storage import RunStorage
    folder = tmp_path / "run"
    fake_run(folder)
    assert not (folder / "run.sqlite-wal").exists() and not (folder / "run.sqlite-shm").exists()
    before = files(folder)
    with RunStorage.open(folder, read_only=True) as storage:
        assert [r.index for r in storage.records()] == [0, 1]
    assert len(data.load_run(folder)["trials"]) == 2                # the dashboard's reader
    assert files(folder) == before
    # The next writer turns WAL on again, and leaves it off when it ends.
    fake_run(folder, resume=True, resume_budget=3)
    assert not (folder / "run.sqlite-wal").exists()


def test_outputs_are_readable_by_others_and_a_killed_rewrite_leaves_no_temporary_behind(tmp_path):
    folder = tmp_path / "run"
    fake_run(folder)
    umask = os.umask(0o022)
    try:
        for name in ("summary.json", "trials.csv"):
            (folder / f"{name}.k2j4_x.tmp").write_text("half")       # what a kill inside a rewrite leaves
        fake_run(folder, resume=True, resume_budget=3)
    finally:
        os.umask(umask)
    assert sorted(folder.glob("*.tmp")) == []
    for name in ("summary.json", "trials.csv"):
        assert (folder / name).stat().st_mode & 0o777 == 0o644, name


def damage(database: Path, how: str) -> None:
    import sqlite3
    data = database.read_bytes()
    if how == "truncated":
        database.write_bytes(data[:len(data) // 2])
    elif how == "garbage":
        database.write_bytes(b"not a database at all\n" * 100)
    elif how == "empty":
        database.write_bytes(b"")
    elif how == "corrupt page":
        page = 4096
        database.write_bytes(data[:3 * page] + bytes(range(256)) * 16 + data[4 * page:])
    elif how == "another tool's":
        database.unlink()
        with sqlite3.connect(database) as connection:
            connection.execute("CREATE TABLE run (key TEXT, value TEXT)")
            connection.execute("INSERT INTO run VALUES ('schema_version', '99')")
        connection.close()
    elif how == "a trial missing":
        with sqlite3.connect(database) as connection:
            connection.execute("DELETE FROM trials WHERE trial_index = 0")
        connection.close()
    elif how == "a record unreadable":
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE trials SET record = '{\"index\": 1}' WHERE trial_index = 1")
        connection.close()


@pytest.mark.parametrize("how, message", [
    ("truncated", "database disk image is malformed"), ("garbage", "is not a readable run database"),
    ("empty", "is not a readable run database"), ("corrupt page", "database disk image is malformed"),
    ("another tool's", "unknown database schema version 99"), ("a trial missing", "is inconsistent"),
    ("a record unreadable", "cannot be read back as a run"),
])
def test_a_damaged_database_is_refused_by_resume_with_one_error_line_and_left_as_it_is(tmp_path, how, message):
    folder = tmp_path / "run"
    fake_run(folder)
    database = folder / "run.sqlite"
    damage(database, how)
    before = files(folder)
    with pytest.raises(tuner.RunStateError, match=message):
        fake_run(folder, resume=True, resume_budget=3)
    assert files(folder) == before                              # no WAL switch, no -wal/-shm, no repair
    if how not in ("truncated", "another tool's"):
        return                                                  # the command line's wording: two cases suffice
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "--resume", "--log-folder", str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert files(folder) == before
