"""The command line's words for a run: what `python3 main.py` prints while it tunes.

`ConsoleObserver` is the RunObserver (sdt/run/observer.py) the command line hands the loop;
the wording is the one README "What a run prints and writes" shows. The loop prints nothing.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from sdt.core.vocabulary import TrialStatus
from sdt.run.controller import TrialRecord
from sdt.run.observer import EpochProgress, RunEnd, RunObserver, RunStart, TrialProgress


# The notes of a diagnosis shown under a training: those that say why a problem its final values
# pointed to was not diagnosed (the others, such as a history too short for the fluctuation test,
# hold for every training of a run and are left to `--diagnose`).
WITHHELD_NOTES = ("still_improving", "generalisation_gap")


def describe_params(params: dict[str, Any]) -> str:
    parts = []
    for name, value in params.items():
        if isinstance(value, float):
            parts.append(f"{name}={value:.3g}")
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def trial_lines(record: TrialRecord, progress: TrialProgress) -> list[str]:
    """The console lines of one finished trial, in plain words."""
    result = record.result
    if result.status == TrialStatus.COMPLETED:
        metrics = f"val_loss {result.val_loss:.4f}  val_accuracy {result.val_accuracy:.4f}"
    elif result.status == TrialStatus.PRUNED:
        metrics = (f"val_loss {result.val_loss:.4f}  val_accuracy {result.val_accuracy:.4f}  "
                   f"PRUNED ({result.stop_reason})")
    elif result.status == TrialStatus.DIVERGED:
        metrics = "DIVERGED (loss became NaN/inf)"
    else:
        metrics = f"FAILED ({result.error})"
    elapsed = progress.elapsed_seconds
    eta = elapsed / max(progress.trials_done, 1) * progress.trials_remaining
    budget = ""
    if progress.epoch_budget is not None:
        budget = f" | {progress.epochs_spent}/{progress.epoch_budget} epochs of the budget"
        # The epoch budget ends the run when it comes first: estimate from the epochs' pace.
        left = max(progress.epoch_budget - progress.epochs_spent, 0)
        eta = min(eta, elapsed / max(progress.epochs_done, 1) * left)
    lines = [f"[{record.index + 1}/{progress.max_evals}] trial {record.index}: {metrics}  | best objective {progress.best_objective:.4f} | "
             f"{result.epochs_run} epochs in {result.duration_seconds:.0f}s{budget} | elapsed "
             f"{format_duration(elapsed)}, ~{format_duration(eta)} left",
             f"    params: {describe_params(record.params)}"]
    if record.decision is not None:
        lines.append(f"    proposed by {record.decision.strategy}: {record.decision.summary}")
    if result.status == TrialStatus.PRUNED:
        explanation = (result.stop_explanation or "").removeprefix(f"{result.stop_reason}: ")
        lines.append(f"    pruned after epoch {result.stop_epoch} ({result.stop_reason}): {explanation}")
    if record.diagnosis is not None:
        for problem in record.diagnosis.problems:
            explanation = problem.explanation.removeprefix(f"{problem.name}: ")
            lines.append(f"    diagnosed {problem.name} (p={problem.probability:.2f}): {explanation}")
        if not record.diagnosis.problems:
            lines.append("    diagnosis: no problem found")
        for note in record.diagnosis.notes:
            if note.split(":", 1)[0] in WITHHELD_NOTES:
                lines.append(f"    note {note}")
    if record.outcome is not None:
        for applied in record.outcome.applied:
            lines.append(f"    action {applied.description}")
        for action, reason in record.outcome.skipped:
            lines.append(f"    skipped {action}: {reason}")
    return lines


def start_lines(start: RunStart) -> list[str]:
    lines = [f"dataset: {start.dataset_summary}"]
    if start.device:
        lines.append(f"training with Keras on {start.device}")
    if start.resumed and start.first_trial >= start.max_evals:
        lines.append(f"'{start.log_folder}' already holds the {start.max_evals} trainings of its budget: nothing "
                     f"left to train (raise the budget with --max-evals)")
    elif start.resumed:
        lines.append(f"resuming '{start.log_folder}' with trial {start.first_trial} ({start.first_trial} of "
                     f"{start.max_evals} trainings done)")
    for region in start.avoided_from_start:
        lines.append(f"before any training the optimiser keeps away from {region}: "
                     f"the rules file says it needs a learning rate near 1 (small_step_at_small_rates)")
    if start.starts_near:
        lines.append(f"the first training is drawn where a practitioner starts: {start.starts_near} "
                     f"(start_with in the rules file)")
    return lines


def finish_lines(end: RunEnd) -> list[str]:
    if end.final is None or end.best is None:
        return ["no completed trial: no best model to evaluate"]
    best = end.best.result
    pruned = f" (pruned after epoch {best.stop_epoch})" if best.status == TrialStatus.PRUNED else ""
    return [f"best trial {end.best.index}{pruned}: val_loss {best.val_loss:.4f}, val_accuracy "
            f"{best.val_accuracy:.4f}, test_accuracy {end.final['test_accuracy']:.4f} "
            f"(model: {end.best_model_path})"]


# The numbers an epoch's progress line shows, in this order, when the history has them.
EPOCH_NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy")


def epoch_line(progress: EpochProgress) -> str:
    """One epoch of the training in progress: `trial 3, epoch 4/10: loss 0.5213 accuracy ...`."""
    numbers = "  ".join(f"{key} {progress.numbers[key]:.4f}" for key in EPOCH_NUMBERS if key in progress.numbers)
    return f"trial {progress.trial}, epoch {progress.epoch}/{progress.epochs}: {numbers}"


class ConsoleObserver(RunObserver):
    """Prints a run's progress on `out` (default: the standard output at the time of each line).

    During a training each epoch is shown: on a terminal as one line rewritten in place (erased
    when the trial's block is printed), elsewhere (a file, a pipe) as a plain indented line."""

    def __init__(self, out: TextIO | None = None):
        self._out = out
        self._progress_width = 0          # characters of the in-place epoch line now shown

    def _stream(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def _print(self, lines: list[str]) -> None:
        out = self._stream()
        self._erase_progress(out)
        for line in lines:
            print(line, file=out)
        out.flush()

    def _erase_progress(self, out: TextIO) -> None:
        if self._progress_width:
            out.write("\r" + " " * self._progress_width + "\r")
            self._progress_width = 0

    def on_epoch(self, progress: EpochProgress) -> None:
        out = self._stream()
        line = epoch_line(progress)
        try:
            terminal = out.isatty()
        except (AttributeError, ValueError):
            terminal = False
        if not terminal:
            self._print([f"    {line}"])
            return
        self._erase_progress(out)
        out.write(line)
        out.flush()
        self._progress_width = len(line)

    def on_start(self, start: RunStart) -> None:
        self._print(start_lines(start))

    def on_trial(self, record: TrialRecord, progress: TrialProgress) -> None:
        self._print(trial_lines(record, progress))

    def on_strategy_stopped(self, strategy: str, trials: int) -> None:
        self._print([f"the {strategy} strategy stopped after {trials} trainings"])

    def on_workers(self, workers: int, ray_address: str | None) -> None:
        where = "a local Ray instance" if ray_address is None else f"the Ray cluster at {ray_address}"
        self._print([f"training up to {workers} trials at once on {where}"])

    def on_epoch_budget_spent(self, epochs_spent: int, epoch_budget: int, trials: int) -> None:
        self._print([f"epoch budget spent: {epochs_spent} of {epoch_budget} epochs trained in {trials} trainings"])

    def on_timeout(self, elapsed_seconds: float, timeout_seconds: float, trials: int) -> None:
        self._print([f"time limit reached: {format_duration(elapsed_seconds)} of --timeout "
                     f"{format_duration(timeout_seconds)} after {trials} trainings; no further training starts "
                     f"(continue with --resume)"])

    def on_finish(self, end: RunEnd) -> None:
        self._print(finish_lines(end))
