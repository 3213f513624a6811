"""The training in progress, for readers in other processes (the dashboard's Metrics page).

After every epoch the run rewrites `running.json` in its log folder, atomically: the trial's
index, the epoch reached (counted from 1), the training's epoch budget and the curves so far.
The file is removed once the trial is stored; a file left by a killed run names a trial that
is then either stored already (readers ignore it) or run again (the next run start removes it
first). Only the folder's owner (sdt/run/lock.py) writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdt.run.storage import write_json_atomically

RUNNING_NAME = "running.json"


class LiveTraining:
    """Keeps the curves of the training in progress and publishes them after every epoch."""

    def __init__(self, log_folder: Path):
        self.path = Path(log_folder) / RUNNING_NAME
        self._trial: int | None = None
        self._history: dict[str, list[float | None]] = {}

    def epoch(self, trial: int, epoch: int, epochs: int, numbers: dict[str, float]) -> None:
        """Record epoch `epoch` (from 1) of `trial` and rewrite the file."""
        if trial != self._trial:
            self._trial, self._history = trial, {}
        for key, value in numbers.items():
            values = self._history.setdefault(key, [])
            values.extend([None] * (epoch - 1 - len(values)))     # a key first seen late
            values.append(value if value == value and abs(value) != float("inf") else None)
        write_json_atomically(self.path, {"trial_index": trial, "epoch": epoch, "epochs": epochs,
                                          "history": self._history})

    def clear(self) -> None:
        """The trial is stored (or the run starts): no training is in progress."""
        self._trial, self._history = None, {}
        self.path.unlink(missing_ok=True)


def read_running(log_folder: Path) -> dict[str, Any] | None:
    """The training in progress as its run last wrote it, or None (none, or unreadable)."""
    import json
    try:
        data = json.loads((Path(log_folder) / RUNNING_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("trial_index"), int) \
            or not isinstance(data.get("history"), dict):
        return None
    return data
