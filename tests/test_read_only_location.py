"""Issue 17, item 10: a run on a read-only location can be read (dashboard, API) and a resume there
is refused with one error line.

The read-only location is real: the run's folder bind-mounted read-only. Mounting needs the
privilege to mount (root in a container that allows it); elsewhere these tests are skipped."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from sdt.run import loop as tuner
from sdt.run.storage import DATABASE_NAME
from tests.fake_training import FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def read_only_view(source: Path, mount_point: Path):
    """`source` bind-mounted read-only at `mount_point` (skips the test where mounting is not allowed)."""
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    bound = subprocess.run(["mount", "--bind", str(source), str(mount_point)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.decode().strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(mount_point)], capture_output=True)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remounted.stderr.decode().strip()}")
        with pytest.raises(OSError):
            (mount_point / "probe").write_text("x")        # really read-only
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def finished_run(folder: Path) -> dict:
    config = tuner.RunConfig(dataset="digits", max_evals=3, epochs=3, seed=1, initial_points=1)
    return tuner.run(config, folder, make_train=fake_factory(FakeTrainer()))


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("state", ["finished", "killed"])
def test_a_run_on_a_read_only_location_is_read_by_the_dashboard_and_the_api(tmp_path, state):
    from sdt.api import TuningResult
    from sdt.dashboard import data
    summary = finished_run(tmp_path / "run")
    source = tmp_path / "run"
    if state == "killed":
        # A run killed while it wrote: its database is still in WAL mode, with -wal and -shm beside it.
        writer = sqlite3.connect(source / DATABASE_NAME)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("SELECT count(*) FROM trials").fetchone()
        shutil.copytree(source, tmp_path / "killed")
        writer.close()
        source = tmp_path / "killed"
        assert (source / f"{DATABASE_NAME}-wal").exists()
    before = files(source)
    with read_only_view(source, tmp_path / "ro") as view:
        store = data.load_run(view)
        assert store["status"] == data.STATUS_OK and store["error"] is None
        assert [t["trial_index"] for t in store["trials"]] == [0, 1, 2]
        result = TuningResult.from_log_folder(view)
        assert [t.index for t in result.trials] == [0, 1, 2]
        assert [t.params for t in result.trials] == [t["params"] for t in summary["trials"]]
        resumed = subprocess.run([sys.executable, "main.py", "--resume", "--log-folder", str(view), "--max-evals", "4"],
                                 cwd=REPO, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 2
        assert resumed.stderr.strip().splitlines()[-1] == f"error: log folder '{view}' is not writable"
    assert files(source) == before
