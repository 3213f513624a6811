"""Explanations: a diagnosis in words, with the numbers and thresholds that decided it.

`explain_condition` says one condition of a cause (`above(Measure, Threshold)`, ...) in
English, wording the measure by its `phrase/2` of the diagnosis file (`MeasurePhrases`);
`without_gates` drops the conditions that only gate the curve tests; `explain_causes` says the
causes of one problem that held; `note_text` says a note of the diagnosis in words.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from problog.logic import Term

# The placeholder of a phrase that stands for the value of the phrase's own measure.
VALUE_FIELD = "value"


def phrase_fields(text: str) -> tuple[str, ...]:
    """The measures a phrase quotes besides its own value, in order of appearance.

    Raises ValueError for a malformed template: an unmatched brace, an empty name, or a
    format spec or conversion (`{value:.2f}`, `{value!r}`): numbers are formatted here.
    """
    names = []
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} must be a measure name")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must not carry a format: numbers "
                             f"are written with 3 significant digits")
        if name != VALUE_FIELD and name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class MeasurePhrases:
    """How explanations say each measure in words: measure -> template (`phrase/2`).

    In a template `{value}` stands for the measure itself and `{name}` for the measure
    `name`. A measure without a phrase, or whose phrase quotes an absent measure, is said
    plainly as "name value".
    """

    texts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for text in self.texts.values():
            phrase_fields(text)  # ValueError if malformed
        object.__setattr__(self, "texts", MappingProxyType(dict(sorted(self.texts.items()))))

    def say(self, measure: str, value: float, measures: Mapping[str, float],
            quoted: dict[str, float]) -> str:
        """The measure in words; the measures quoted besides it are added to `quoted`."""
        text = self.texts.get(measure)
        if text is not None:
            fields = phrase_fields(text)
            if all(name in measures for name in fields):
                for name in fields:
                    quoted[name] = measures[name]
                return text.format(**{VALUE_FIELD: fmt(value)},
                                   **{name: fmt(measures[name]) for name in fields})
        return f"{measure} {fmt(value)}"


CONDITION_SYMBOLS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<="}



def fmt(value: float) -> str:
    """A number as explanations write it: whole numbers exactly, others to 3 significant digits."""
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}"


def explain_condition(condition: Term, measures: Mapping[str, float],
                      thresholds: Mapping[str, float], quoted: dict[str, float],
                      phrases: MeasurePhrases) -> str:
    """One condition in words with its numbers, e.g. "... gap 0.19 > threshold 0.072 (max_gap)".

    The measure and threshold (and the measures its phrase quotes) are added to `quoted`.
    A condition that is not a comparison, or whose numbers are absent, is quoted as written.
    """
    kind = str(condition.functor)
    if kind not in CONDITION_SYMBOLS or condition.arity != 2:
        return str(condition)
    measure, threshold = (str(arg) for arg in condition.args)
    value = measures.get(measure)
    limit = thresholds.get(threshold)
    if value is None or limit is None:
        return str(condition)
    quoted[measure] = value
    quoted[threshold] = limit
    text = phrases.say(measure, value, measures, quoted)
    return f"{text} {CONDITION_SYMBOLS[kind]} threshold {fmt(limit)} ({threshold})"


# Conditions on the length of the history only gate the curve tests; the explanation
# leaves them out (the notes say when a history was too short).
_GATE_MEASURES = frozenset({"epochs", "train_loss_curve_epochs"})


def without_gates(conditions: list[Term]) -> list[Term]:
    """The conditions of a cause worth explaining: all but the history-length gates."""
    kept = [c for c in conditions
            if not (c.arity == 2 and str(c.args[0]) in _GATE_MEASURES)]
    return kept or conditions


def explain_causes(causes: list[list[Term]], measures: Mapping[str, float],
                   thresholds: Mapping[str, float], quoted: dict[str, float],
                   phrases: MeasurePhrases) -> list[str]:
    """The causes of one problem that held, each in words ("A and B"), in order.

    A condition that an earlier cause already said is not said again (two causes of
    overfitting share the turn of the validation loss), and a cause left with nothing new is
    left out."""
    said: set[str] = set()
    reasons = []
    for conditions in causes:
        fresh = [c for c in without_gates(conditions) if str(c) not in said]
        said.update(str(c) for c in fresh)
        if fresh:
            reasons.append(" and ".join(explain_condition(c, measures, thresholds, quoted, phrases)
                                        for c in fresh))
    return reasons


def note_text(note: str, measures: Mapping[str, float], thresholds: Mapping[str, float]) -> str:
    """A note of the diagnosis (`note/1`) in words, with its numbers; unknown notes as named."""
    epochs = measures.get("epochs")
    if note == "short_history" and epochs is not None:
        needed = thresholds.get("min_epochs_for_shape_tests")
        return (f"short_history: only {fmt(epochs)} epoch(s); the curve-shape tests "
                f"(increasing_loss, fluctuating_loss, low_lr, high_lr from the curve shape, "
                f"and underfitting, which needs a curve that has flattened) need at least "
                f"{fmt(needed) if needed is not None else 'more'} and were not applied; only the "
                f"final-value tests (overfitting, divergence) were")
    if note == "no_fluctuation_test" and epochs is not None:
        needed = thresholds.get("min_epochs_for_fluctuation_test")
        return (f"no_fluctuation_test: {fmt(epochs)} epochs; the fluctuating_loss test needs "
                f"at least {fmt(needed) if needed is not None else 'more'} and was not applied")
    if note == "non_finite_loss" and "non_finite_loss_epochs" in measures:
        first = measures.get("first_non_finite_loss_epoch")
        curve = measures.get("train_loss_curve_epochs")
        text = (f"non_finite_loss: the loss was NaN or infinite in "
                f"{fmt(measures['non_finite_loss_epochs'])} epoch(s)")
        if first is not None:
            text += f", first at epoch {fmt(first)}"
        if curve is not None:
            text += f"; the curve tests only saw the {fmt(curve)} epoch(s) of finite training loss before"
        return text
    if note == "still_improving" and "train_loss_still_falling_share" in measures:
        limit = thresholds.get("max_late_drop_share_for_underfitting")
        return (f"still_improving: the training was still improving at the end: the last third of "
                f"the epochs brought {fmt(measures['train_loss_still_falling_share'])} of the fall of "
                f"the training loss"
                + (f" (underfitting needs less than {fmt(limit)}, "
                   f"max_late_drop_share_for_underfitting)" if limit is not None else "")
                + ". The final training accuracy or loss is poor, but more epochs, not more "
                  "capacity, would help, so underfitting was not diagnosed")
    if note == "generalisation_gap" and "val_loss_rise_over_chance_loss" in measures:
        limit = thresholds.get("min_val_loss_rise_for_overfitting")
        gap = measures.get("train_val_accuracy_gap")
        return ("generalisation_gap: the training data are fitted better than the validation data"
                + (f" (accuracy gap {fmt(gap)})" if gap is not None else "")
                + f", but the validation loss ended only {fmt(measures['val_loss_rise_over_chance_loss'])} "
                  f"times ln(K) above its lowest"
                + (f" (overfitting needs more than {fmt(limit)}, min_val_loss_rise_for_overfitting)"
                   if limit is not None else "")
                + ": the model was still learning on new data, so overfitting was not diagnosed")
    return note


