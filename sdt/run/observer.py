"""What a run tells the outside while it runs: the `RunObserver` the loop calls back.

The loop (sdt/run/loop.py) prints nothing. It calls an observer at the start, after every
committed trial and at the end; `RunObserver` itself does nothing (the default: a silent run).
The command line's wording is sdt/cli/console.py `ConsoleObserver`; a notebook or a service
passes its own subclass (subclass it, so that callbacks added later default to nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdt.run.controller import TrialRecord


@dataclass(frozen=True)
class RunStart:
    """A run about to train: `first_trial` is 0 for a new run, the next index on resume."""

    log_folder: Path
    dataset_summary: str
    first_trial: int
    max_evals: int
    resumed: bool
    # What trains: the Keras backend and its devices ("tensorflow on CPU", "jax on GPU: ...").
    device: str | None = None
    # A new run under prior guidance: the regions avoided from the start, each "Adadelta at
    # learning rates up to 0.01 (weight 0.90, not fading)" (an optimiser the rules file says
    # needs a rate near 1).
    avoided_from_start: tuple[str, ...] = ()
    # A new run under prior guidance: where the first training is drawn, "optimizer Adam,
    # learning_rate 0.000794..0.001, batch_size 16..56" (start_with/2 of the rules file).
    starts_near: str | None = None


@dataclass(frozen=True)
class TrialProgress:
    """Where the run stands after a trial (counts of this session; a resumed run starts again at 0)."""

    max_evals: int
    best_objective: float
    elapsed_seconds: float       # since this session's first training
    trials_done: int             # trainings run in this session, this one included
    trials_remaining: int        # trainings left to the budget
    epochs_spent: int = 0        # epochs trained by the whole run so far (resumed trials included)
    epoch_budget: int | None = None   # the run's epoch budget; None: none
    epochs_done: int = 0         # epochs trained in this session, this training included


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: the best trial, completed or pruned (None when none has metrics), and its test metrics."""

    best: TrialRecord | None
    final: dict[str, Any] | None          # {"index", "test_accuracy", "test_loss"}, None when not evaluated
    best_model_path: Path | None           # where best_model.keras was copied, None when not evaluated


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch of the training in progress."""

    trial: int                               # the trial's index
    epoch: int                               # counted from 1
    epochs: int                              # the training's epoch budget (it may stop earlier)
    numbers: dict[str, float]                # loss, accuracy, val_loss, val_accuracy, ... of this epoch


class RunObserver:
    """Callbacks of a run; every method does nothing. Subclass and override what you need."""

    def on_start(self, start: RunStart) -> None:
        pass

    def on_trial(self, record: TrialRecord, progress: TrialProgress) -> None:
        pass

    def on_epoch(self, progress: EpochProgress) -> None:
        """After every epoch of a training (called from inside the training: keep it quick)."""

    def on_strategy_stopped(self, strategy: str, trials: int) -> None:
        pass

    def on_workers(self, workers: int, ray_address: str | None) -> None:
        """Trainings run on `workers` Ray workers (a local instance when `ray_address` is None)."""

    def on_epoch_budget_spent(self, epochs_spent: int, epoch_budget: int, trials: int) -> None:
        """The run's trainings have trained `epochs_spent` >= `epoch_budget` epochs in `trials`
        trainings: no further training starts."""

    def on_timeout(self, elapsed_seconds: float, timeout_seconds: float, trials: int) -> None:
        """This call ran `elapsed_seconds` >= its `timeout_seconds` after `trials` trainings: no
        further training starts."""

    def on_finish(self, end: RunEnd) -> None:
        pass
