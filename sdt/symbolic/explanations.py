"""Explanations: a diagnosis in words, with the numbers and thresholds that decided it.

`explain_condition` says one condition of a cause (`above(Measure, Threshold)`, ...) in
English; `without_gates` drops the conditions that only gate the curve tests; `note_text`
says a note of the diagnosis in words.
"""

from __future__ import annotations

from collections.abc import Mapping

from problog.logic import Term

# How to say a measure in words; {value} is the measure itself, other names are measures.
_MEASURE_PHRASES = {
    "train_val_accuracy_gap":
        "training accuracy {final_train_accuracy} vs validation {final_val_accuracy}, gap {value}",
    "train_val_loss_gap":
        "validation loss {final_val_loss} vs training loss {final_train_loss}, gap {value}",
    "train_accuracy_above_chance":
        "final training accuracy {final_train_accuracy} got {value} of the way from chance "
        "({chance_accuracy}) to 1",
    "train_loss_over_chance_loss":
        "final training loss {final_train_loss} is {value} times the chance-level loss "
        "ln(K) ({chance_loss})",
    "train_loss_peak_over_chance_loss":
        "peak training loss {peak_train_loss} is {value} times ln(K) ({chance_loss})",
    "rising_train_loss_step_share":
        "the training loss rose in {train_loss_up_steps} of {train_loss_steps} "
        "epoch-to-epoch steps, share {value}",
    "train_loss_up_down_balance":
        "{train_loss_up_steps} rising vs {train_loss_down_steps} falling steps, balance {value}",
    "train_loss_rise_share":
        "rises totalling {train_loss_rise_total} against falls of {train_loss_fall_total}, "
        "rise share {value}",
    "train_loss_mean_rise_over_chance_loss":
        "the training loss jumped back up by {value} times ln(K) ({chance_loss}) on average",
    "train_loss_drop_over_chance_loss":
        "the training loss went from {first_train_loss} to {last_train_loss}, "
        "a fall of {value} times ln(K) ({chance_loss})",
    "train_loss_area_ratio":
        "area between the training-loss curve and its chord {value} of the triangle under "
        "the chord",
    "train_loss_late_drop_share": "the last third of the epochs brought {value} of the fall",
    "non_finite_loss_epochs":
        "{value} epoch(s) with a NaN or infinite loss, the first at epoch "
        "{first_non_finite_loss_epoch}",
    "train_loss_curve_epochs": "{value} epochs of finite training loss",
    "epochs": "{value} epochs",
}

CONDITION_SYMBOLS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<="}

# Which measures a phrase quotes besides its own value.
_PHRASE_FIELDS = {
    name: [part.split("}")[0] for part in phrase.split("{")[1:] if part.split("}")[0] != "value"]
    for name, phrase in _MEASURE_PHRASES.items()
}


def fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}"


def explain_condition(condition: Term, measures: Mapping[str, float],
                       thresholds: Mapping[str, float], quoted: dict[str, float]) -> str:
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
    phrase = _MEASURE_PHRASES.get(measure)
    fields = _PHRASE_FIELDS.get(measure, [])
    if phrase is not None and all(name in measures for name in fields):
        for name in fields:
            quoted[name] = measures[name]
        text = phrase.format(value=fmt(value), **{name: fmt(measures[name]) for name in fields})
    else:
        text = f"{measure} {fmt(value)}"
    return f"{text} {CONDITION_SYMBOLS[kind]} threshold {fmt(limit)} ({threshold})"


# Conditions on the length of the history only gate the curve tests; the explanation
# leaves them out (the notes say when a history was too short).
_GATE_MEASURES = frozenset({"epochs", "train_loss_curve_epochs"})


def without_gates(conditions: list[Term]) -> list[Term]:
    kept = [c for c in conditions
            if not (c.arity == 2 and str(c.args[0]) in _GATE_MEASURES)]
    return kept or conditions


def note_text(note: str, measures: Mapping[str, float], thresholds: Mapping[str, float]) -> str:
    epochs = measures.get("epochs")
    if note == "short_history" and epochs is not None:
        needed = thresholds.get("min_epochs_for_shape_tests")
        return (f"short_history: only {fmt(epochs)} epoch(s); the curve-shape tests "
                f"(increasing_loss, fluctuating_loss, low_lr, high_lr from the curve shape) "
                f"need at least {fmt(needed) if needed is not None else 'more'} and were "
                f"not applied; only the final-value tests (overfitting, underfitting, "
                f"divergence) were")
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
    return note


