"""A fake trainer for loop tests: canned training curves, no Keras, instant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sdt.core.records import TrainingResult
from sdt.core.vocabulary import TrialStatus

HISTORIES = Path(__file__).resolve().parent / "fixtures" / "histories"


def canned_history(name: str) -> dict[str, list[float]]:
    data = json.loads((HISTORIES / f"{name}.json").read_text())
    return {key: [float("nan") if v is None else float(v) for v in data[key]]
            for key in ("loss", "accuracy", "val_loss", "val_accuracy")}


class FakeTrainer:
    """Returns the curves of `history_for(params, architecture, index)` (a fixture name).

    The validation loss is scaled by the learning rate's distance from 1e-3, so the optimiser
    sees a landscape; every call is recorded in `calls`.
    """

    def __init__(self, history_for=lambda params, architecture, index: "overfitting"):
        self.history_for = history_for
        self.calls: list[tuple[dict, object, int]] = []

    def __call__(self, params, architecture, index):
        import math
        self.calls.append((dict(params), architecture, index))
        name = self.history_for(params, architecture, index)
        if name == "failed":
            return TrainingResult(status=TrialStatus.FAILED, error="RuntimeError: simulated")
        history = canned_history(name)
        if name == "nan_loss":
            return TrainingResult(status=TrialStatus.DIVERGED, history=history,
                                  epochs_run=len(history["loss"]))
        shift = abs(math.log10(params["learning_rate"]) + 3.0) * 0.1
        history["val_loss"] = [v + shift for v in history["val_loss"]]
        best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
        return TrainingResult(status=TrialStatus.COMPLETED, history=history,
                              val_loss=history["val_loss"][best], val_accuracy=history["val_accuracy"][best],
                              best_epoch=best, epochs_run=len(history["loss"]), duration_seconds=0.01)


def fake_factory(trainer: FakeTrainer):
    """A `make_train` for main.run that hands out `trainer`."""
    return lambda context, verbose: trainer


class AlwaysApply(np.random.Generator):
    """A seeded generator whose uniform draws are 0: every chosen action is applied
    (`decide_action` applies an action when the draw falls below its weight)."""

    def __init__(self, seed: int = 0):
        super().__init__(np.random.PCG64(seed))

    def random(self, *args, **kwargs):
        return 0.0


class NeverApply(np.random.Generator):
    """A seeded generator whose uniform draws are just below 1: every action is declined."""

    def __init__(self, seed: int = 0):
        super().__init__(np.random.PCG64(seed))

    def random(self, *args, **kwargs):
        return 1.0 - 1e-12
