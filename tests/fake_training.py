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


# Two 6-epoch trainings of the 3,000-image Fashion-MNIST benchmark (issue 13, seeds 4 and 3 of
# sdt-local at 7ddcf04), rounded: both fit their training data clearly better than the validation
# data; in the first the validation loss is still at its lowest at the end, in the second it has
# turned up.
GAP_STILL_LEARNING = {
    "loss": [0.84, 0.525, 0.431, 0.387, 0.314, 0.271],
    "accuracy": [0.699, 0.816, 0.845, 0.863, 0.89, 0.907],
    "train_eval_loss": [0.532, 0.401, 0.357, 0.288, 0.227, 0.187],
    "train_eval_accuracy": [0.806, 0.852, 0.88, 0.9, 0.915, 0.944],
    "val_loss": [0.624, 0.559, 0.542, 0.511, 0.488, 0.487],
    "val_accuracy": [0.79, 0.847, 0.843, 0.86, 0.833, 0.847],
}
GAP_TURNED_UP = {
    "loss": [0.841, 0.503, 0.402, 0.374, 0.3, 0.218],
    "accuracy": [0.705, 0.826, 0.855, 0.871, 0.896, 0.921],
    "train_eval_loss": [0.503, 0.315, 0.342, 0.205, 0.172, 0.115],
    "train_eval_accuracy": [0.828, 0.883, 0.884, 0.924, 0.932, 0.964],
    "val_loss": [0.629, 0.486, 0.64, 0.611, 0.596, 0.65],
    "val_accuracy": [0.803, 0.837, 0.813, 0.827, 0.803, 0.827],
}


class FakeTrainer:
    """Returns the curves of `history_for(params, architecture, index)`: a fixture name, or a
    history dict itself.

    The validation loss is scaled by the learning rate's distance from 1e-3, so the optimiser
    sees a landscape; every call is recorded in `calls`. With `should_stop` (set by
    `fake_factory(..., honour_stop=True)` from the run's context) the curves are handed over
    epoch by epoch as the Keras trainer does (sdt/neural/network.py): after every epoch but the
    last, and the training ends, pruned, at the first answer.
    """

    def __init__(self, history_for=lambda params, architecture, index: "overfitting", should_stop=None):
        self.history_for = history_for
        self.should_stop = should_stop
        self.calls: list[tuple[dict, object, int]] = []

    def __call__(self, params, architecture, index):
        import math
        self.calls.append((dict(params), architecture, index))
        name = self.history_for(params, architecture, index)
        if name == "failed":
            return TrainingResult(status=TrialStatus.FAILED, error="RuntimeError: simulated")
        history = canned_history(name) if isinstance(name, str) else {k: list(v) for k, v in name.items()}
        if name == "nan_loss":
            return TrainingResult(status=TrialStatus.DIVERGED, history=history,
                                  epochs_run=len(history["loss"]))
        shift = abs(math.log10(params["learning_rate"]) + 3.0) * 0.1
        history["val_loss"] = [v + shift for v in history["val_loss"]]
        stop = {}
        epochs = len(history["loss"])
        for epoch in range(1, epochs if self.should_stop is not None else 0):
            answer = self.should_stop({key: values[:epoch] for key, values in history.items()})
            if answer is not None:
                history = {key: values[:epoch] for key, values in history.items()}
                stop = {"stop_reason": answer[0], "stop_explanation": answer[1], "stop_epoch": epoch}
                break
        best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
        return TrainingResult(status=TrialStatus.PRUNED if stop else TrialStatus.COMPLETED, history=history,
                              val_loss=history["val_loss"][best], val_accuracy=history["val_accuracy"][best],
                              best_epoch=best, epochs_run=len(history["loss"]), duration_seconds=0.01, **stop)


def fake_factory(trainer: FakeTrainer, honour_stop: bool = False):
    """A `make_train` for main.run that hands out `trainer`; with `honour_stop` the trainer gets the
    run's stop check (`RunContext.should_stop`: None when the run does not prune)."""
    def make_train(context, verbose):
        if honour_stop:
            trainer.should_stop = context.should_stop
        return trainer
    return make_train


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


def tiny_npz(path: Path) -> Path:
    """A tiny, learnable .npz dataset at `path`: 200 training and 40 test 12x12 images, 3 classes
    told apart by their brightness (a real training on it takes seconds)."""
    rng = np.random.default_rng(0)
    labels = np.arange(240) % 3
    images = (rng.integers(0, 60, (240, 12, 12)) + labels[:, None, None] * 60).astype(np.uint8)
    np.savez(path, x_train=images[:200], y_train=labels[:200], x_test=images[200:], y_test=labels[200:])
    return path
