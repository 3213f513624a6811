"""History -> statistics: the numbers of one training that the diagnosis reasons about.

`validate_history` checks a Keras history; `history_statistics` measures it; `epoch_statistics`
takes the per-epoch values the stop rules read; `history_facts` writes the numbers as the
ProbLog facts `num_classes/1`, `history_stat/2` and `epoch_stat/3` that diagnosis.pl
(section 2) documents; `hyperparameter_facts` writes what the training was trained with as
`hyperparameter/2` (tuning_rules.pl asks it which optimiser ran). Python only measures here;
it decides nothing.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from problog.logic import Clause, Constant, Term, Var

from sdt.core.errors import ConfigurationError
from sdt.core.vocabulary import (
    ACCURACY, HISTORY_KEYS, LOSS, TRAIN_EVAL_ACCURACY, TRAIN_EVAL_KEYS, TRAIN_EVAL_LOSS, VAL_ACCURACY, VAL_LOSS,
)

# Statistics of a history that `history_facts` writes as `history_stat(Name, Value)` facts;
# diagnosis.pl (section 2) documents each one. A statistic that cannot be measured is
# left out rather than written as NaN.
HISTORY_STATS = (
    "epochs",
    "final_train_accuracy", "final_val_accuracy", "final_train_loss", "final_val_loss",
    "lowest_val_loss",
    "non_finite_loss_epochs", "first_non_finite_loss_epoch",
    "train_loss_curve_epochs", "first_train_loss", "last_train_loss", "peak_train_loss",
    "train_loss_steps", "train_loss_up_steps", "train_loss_down_steps",
    "train_loss_rise_total", "train_loss_fall_total",
    "train_loss_chord_area", "train_loss_late_drop",
)

# Facts about the training rather than its curves, written by `history_facts` as
# `history_stat(Name, Value)` only when the caller knows them: `epoch_budget`, the epochs the
# training may run in all (the tuner's stop check knows it; a history diagnosed on its own does
# not).
TRAINING_STATS = ("epoch_budget",)

# A name or value `hyperparameter_facts` can write as a ProbLog atom.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")

# Per-epoch values that `history_facts` writes as `epoch_stat(Epoch, Name, Value)` facts (Epoch
# counted from 1): the training loss and accuracy of every epoch, measured like the final ones
# (inference mode on the fixed training subset when the history has it, Keras' otherwise). The
# stop rules of diagnosis.pl (issue 14) read them to tell how many epochs in a row a training sat
# at chance level. A value that is NaN or infinite is left out.
EPOCH_STATS = ("train_loss", "train_accuracy")

# "Final" values are the mean of this many last epochs (fewer on short runs), so one
# noisy epoch does not decide a diagnosis.
FINAL_WINDOW_EPOCHS = 3

_ACCURACY_KEYS = (ACCURACY, VAL_ACCURACY, TRAIN_EVAL_ACCURACY)


def validate_history(history: object, num_classes: object) -> dict[str, np.ndarray]:
    """Check a Keras history and return its four curves as float arrays (None -> NaN), plus
    the optional inference-mode training curves (train_eval_loss, train_eval_accuracy) it has.

    Raises ConfigurationError naming the fault: not a dict, a missing key, an empty or
    non-list curve, curves of different lengths, a non-number, an accuracy outside [0, 1],
    or a number of classes that is not an integer >= 2. Other keys are ignored.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or int(num_classes) < 2:
        raise ConfigurationError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(history, Mapping):
        raise ConfigurationError(
            f"the history must be a dict of per-epoch lists ({', '.join(HISTORY_KEYS)}), "
            f"got {type(history).__name__}")
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise ConfigurationError(
            f"the history lacks {', '.join(repr(k) for k in missing)}: expected the keys "
            f"{', '.join(HISTORY_KEYS)} (Keras History.history with validation data)")
    curves: dict[str, np.ndarray] = {}
    for key in (*HISTORY_KEYS, *(key for key in TRAIN_EVAL_KEYS if key in history)):
        values = history[key]
        if isinstance(values, np.ndarray):
            values = values.tolist()
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ConfigurationError(
                f"history[{key!r}] must be a list of per-epoch numbers, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise ConfigurationError(f"history[{key!r}] is empty: expected one number per epoch")
        numbers_out = []
        for epoch, value in enumerate(values):
            if value is None:  # JSON null: how TrainingResult stores NaN
                numbers_out.append(math.nan)
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigurationError(
                    f"history[{key!r}][{epoch}] must be a number, got {value!r}")
            number = float(value)
            if key in _ACCURACY_KEYS and math.isfinite(number) and not 0.0 <= number <= 1.0:
                raise ConfigurationError(
                    f"history[{key!r}][{epoch}] must be an accuracy in [0, 1], got {number!r}")
            numbers_out.append(number)
        curves[key] = np.asarray(numbers_out, dtype=float)
    lengths = {key: len(curve) for key, curve in curves.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{key} has {n}" for key, n in lengths.items())
        raise ConfigurationError(f"the history lists differ in length ({detail} epochs): "
                                 f"expected one value per epoch in each")
    return curves


def history_statistics(curves: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The `history_stat/2` numbers of one validated history (see diagnosis.pl section 2)."""
    loss, val_loss = curves[LOSS], curves[VAL_LOSS]
    epochs = len(loss)
    stats: dict[str, float] = {"epochs": epochs}

    window = max(1, min(FINAL_WINDOW_EPOCHS, epochs // 3))
    # How well the model fits its training data: measured in inference mode on a fixed training
    # subset when the history has it (train_eval_*), like the validation numbers; Keras' own
    # accuracy and loss (dropout on, averaged over the epoch) otherwise. The curve statistics
    # below stay on Keras' loss.
    train_accuracy = TRAIN_EVAL_ACCURACY if TRAIN_EVAL_ACCURACY in curves else ACCURACY
    train_loss = TRAIN_EVAL_LOSS if TRAIN_EVAL_LOSS in curves else LOSS
    for key, name in ((train_accuracy, "final_train_accuracy"), (VAL_ACCURACY, "final_val_accuracy"),
                      (train_loss, "final_train_loss"), (VAL_LOSS, "final_val_loss")):
        tail = curves[key][-window:]
        tail = tail[np.isfinite(tail)]
        if tail.size:
            stats[name] = float(tail.mean())

    finite_val_loss = val_loss[np.isfinite(val_loss)]
    if finite_val_loss.size:
        stats["lowest_val_loss"] = float(finite_val_loss.min())

    non_finite = ~np.isfinite(loss) | ~np.isfinite(val_loss)
    stats["non_finite_loss_epochs"] = int(non_finite.sum())
    if non_finite.any():
        stats["first_non_finite_loss_epoch"] = int(np.argmax(non_finite)) + 1

    # The training-loss curve up to its first NaN/inf value.
    finite = np.isfinite(loss)
    length = epochs if finite.all() else int(np.argmin(finite))
    curve = loss[:length]
    stats["train_loss_curve_epochs"] = length
    if length >= 2:
        steps = np.diff(curve)
        n_steps = len(steps)
        x = np.arange(length, dtype=float)
        chord = curve[0] + (curve[-1] - curve[0]) * x / n_steps
        below_chord = chord - curve
        stats.update({
            "first_train_loss": float(curve[0]),
            "last_train_loss": float(curve[-1]),
            "peak_train_loss": float(curve.max()),
            "train_loss_steps": n_steps,
            "train_loss_up_steps": int((steps > 0).sum()),
            "train_loss_down_steps": int((steps < 0).sum()),
            "train_loss_rise_total": float(steps[steps > 0].sum()),
            "train_loss_fall_total": float(-steps[steps < 0].sum()),
            "train_loss_chord_area": float(((below_chord[1:] + below_chord[:-1]) / 2).sum()),
            "train_loss_late_drop": float(np.interp(2 * n_steps / 3, x, curve) - curve[-1]),
        })
    return {name: value for name, value in stats.items()
            if isinstance(value, int) or math.isfinite(value)}


def epoch_statistics(curves: Mapping[str, np.ndarray]) -> dict[int, dict[str, float]]:
    """Epoch (from 1) -> the finite `epoch_stat/3` values of that epoch (see EPOCH_STATS)."""
    sources = {"train_loss": TRAIN_EVAL_LOSS if TRAIN_EVAL_LOSS in curves else LOSS,
               "train_accuracy": TRAIN_EVAL_ACCURACY if TRAIN_EVAL_ACCURACY in curves else ACCURACY}
    epochs: dict[int, dict[str, float]] = {}
    for name in EPOCH_STATS:
        for epoch, value in enumerate(curves[sources[name]], start=1):
            if math.isfinite(value):
                epochs.setdefault(epoch, {})[name] = float(value)
    return epochs


def history_facts(stats: Mapping[str, float], num_classes: int,
                  epochs: Mapping[int, Mapping[str, float]] | None = None,
                  epoch_budget: int | None = None) -> list[Term]:
    """The facts `num_classes(K)`, `history_stat(Name, Value)` and, when `epochs` is given,
    `epoch_stat(Epoch, Name, Value)` of one training; with `epoch_budget`, the fact
    `history_stat(epoch_budget, N)` (TRAINING_STATS)."""
    facts = [Term("num_classes", Constant(int(num_classes)))]
    for name, value in stats.items():
        facts.append(Term("history_stat", Term(name), Constant(value)))
    if epoch_budget is not None:
        facts.append(Term("history_stat", Term("epoch_budget"), Constant(int(epoch_budget))))
    for epoch, values in sorted((epochs or {}).items()):
        for name, value in values.items():
            facts.append(Term("epoch_stat", Constant(int(epoch)), Term(name), Constant(value)))
    return facts


def hyperparameter_facts(params: Mapping[str, Any] | None) -> list[Term]:
    """The facts `hyperparameter(Name, Value)` of the values one training was trained with: a
    number as it is, a string as a lower-case atom (`hyperparameter(optimizer, adadelta)`).
    Names and strings that are no plain identifiers, and values of other types, give no fact.

    Always preceded by the clause `hyperparameter(_, _) :- fail.`, so that a rule may ask for a
    hyper-parameter whether or not the training's values are known (a history diagnosed alone,
    `--diagnose`, has none): asking ProbLog for a predicate no clause defines is an error.
    """
    facts: list[Any] = [Clause(Term("hyperparameter", Var("_"), Var("_")), Term("fail"))]
    for name, value in sorted((params or {}).items()):
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            facts.append(Term("hyperparameter", Term(name), Constant(value)))
        elif isinstance(value, str) and _IDENTIFIER.fullmatch(value.lower()):
            facts.append(Term("hyperparameter", Term(name), Term(value.lower())))
    return facts
