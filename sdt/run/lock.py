"""One owner per run folder: an exclusive lock that a second process is refused.

A run (new, `--overwrite` or `--resume`) takes the lock of its log folder once its inputs are
checked and before it writes or deletes anything there, and keeps it until it returns. The lock
is an advisory `flock` on the file `run.lock` in the folder, which holds the owner's process id
and start time for the error message. The operating system drops the lock when its process
ends, however it ends (SIGKILL included), so a crashed run never leaves its folder locked; the
file itself stays (harmless: only the flock counts, and removing the file could let two
processes lock two different files of the same name).

Where `fcntl` does not exist (Windows), runs are not locked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sdt.core.errors import RunStateError

try:
    import fcntl
except ImportError:             # pragma: no cover - not on POSIX
    fcntl = None

LOCK_NAME = "run.lock"


class FolderLock:
    """The held lock of one log folder; `release()` (or leaving the `with` block) frees it."""

    def __init__(self, folder: Path, descriptor: int | None):
        self.folder = folder
        self._descriptor = descriptor

    @classmethod
    def acquire(cls, folder: Path) -> "FolderLock":
        """Lock `folder` (created if missing) for this process; RunStateError when another holds it."""
        folder = Path(folder)
        if fcntl is None:
            return cls(folder, None)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise in_use(folder, read_owner(path)) from None
        except BaseException:
            os.close(descriptor)
            raise
        owner = json.dumps({"pid": os.getpid(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, owner, 0)
        return cls(folder, descriptor)

    @staticmethod
    def check_free(folder: Path) -> None:
        """RunStateError when another process holds `folder`'s lock; creates and writes nothing
        (a run asks this before its slow checks, and takes the lock itself after them)."""
        path = Path(folder) / LOCK_NAME
        if fcntl is None or not path.is_file():
            return
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise in_use(Path(folder), read_owner(path)) from None
        finally:
            os.close(descriptor)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)           # closing the descriptor drops the flock
            self._descriptor = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def in_use(folder: Path, owner: dict | None) -> RunStateError:
    who = f" (process {owner['pid']}, started {owner['started']})" if owner else ""
    return RunStateError(f"log folder '{folder}' is in use by another run{who}: wait for it to end, "
                         "or choose another --log-folder")


def read_owner(path: Path) -> dict | None:
    """The process id and start time the lock's holder wrote, if readable."""
    try:
        owner = json.loads(Path(path).read_text())
        return owner if isinstance(owner, dict) and {"pid", "started"} <= owner.keys() else None
    except (OSError, ValueError):
        return None
