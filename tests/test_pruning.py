"""Issue 14: symbolic early stopping. After each epoch the history so far goes through the stop
rules of diagnosis.pl (`stop_training/1`); a training that cannot succeed is stopped with its
reason. The stop rules run on synthetic histories."""

from __future__ import annotations

import json
import math

import pytest

from sdt.core.errors import ConfigurationError, RulesError
from sdt.core.records import TrainingResult
from sdt.core.vocabulary import (
    LOW_LR, STOP_DIVERGED, STOP_OVERSHOT, STOP_STUCK_AT_CHANCE, STUCK_AT_CHANCE, TrialStatus,
)
from sdt.symbolic.block import DEFAULT_DIAGNOSIS_PATH, StopDecision, SymbolicBlock
from tests.fake_training import canned_history

CLASSES = 10
CHANCE_LOSS = math.log(CLASSES)
# min_epochs_before_stop of diagnosis.pl: the first epoch after which a stuck training is stopped.
STUCK_STOP_EPOCH = 4


@pytest.fixture(scope="module")
def block() -> SymbolicBlock:
    return SymbolicBlock()


def prefixes(history: dict) -> list[tuple[int, dict]]:
    """Every history a training still running shows: the first 1, 2, ... epochs."""
    epochs = len(history["loss"])
    return [(n, {key: values[:n] for key, values in history.items()}) for n in range(1, epochs + 1)]


def first_stop(block: SymbolicBlock, history: dict) -> StopDecision | None:
    """What the trainer would see: the decision after the first epoch at which the rules stop."""
    for _, prefix in prefixes(history):
        decision = block.stop_reason(prefix, CLASSES)
        if decision is not None:
            return decision
    return None


def stuck_history(epochs: int = 10) -> dict:
    """Adadelta at 1e-6: the loss sits at ln(10) jittering by 2e-4, the accuracy at 1/10."""
    loss = [CHANCE_LOSS + 0.0002 * (-1) ** i for i in range(epochs)]
    return {"loss": loss, "accuracy": [0.1 + 0.002 * (-1) ** i for i in range(epochs)],
            "val_loss": [v + 0.01 for v in loss], "val_accuracy": [0.1] * epochs}


def overshoot_history() -> dict:
    """A step too large: the loss jumps to 1.5 ln(K) in the second epoch, collapses to ln(K) (the
    outputs saturate into a uniform guess) and stays there, jittering by 1e-4."""
    loss = [2.2, 3.4, 2.31, 2.3027, 2.3026, 2.3027, 2.3026, 2.3027]
    accuracy = [0.2, 0.1, 0.1, 0.11, 0.1, 0.1, 0.11, 0.1]
    return {"loss": loss, "accuracy": accuracy, "val_loss": loss, "val_accuracy": accuracy}


def barely_moving_history() -> dict:
    """A step too small: the loss falls by 0.4% of ln(K) per epoch from chance level (0.96 ln(K)
    after 10 epochs, RMSprop at 1.6e-4 on digits), the accuracy creeps off chance."""
    loss = [CHANCE_LOSS * (1 - 0.004 * t) for t in range(10)]
    accuracy = [0.10 + 0.022 * t for t in range(10)]
    return {"loss": loss, "accuracy": accuracy, "val_loss": [v + 0.01 for v in loss],
            "val_accuracy": [a - 0.01 for a in accuracy]}


def slow_descent_from_above_chance() -> dict:
    """Adadelta at 4.6e-4 with batch norm and elu: starts above ln(K), descends slowly (tests/test_symbolic.py)."""
    return {"loss": [3.14, 3.07, 3.00, 2.93, 2.86, 2.79, 2.72], "accuracy": [0.11, 0.12, 0.13, 0.14, 0.14, 0.15, 0.16],
            "val_loss": [3.1, 3.05, 2.98, 2.92, 2.85, 2.78, 2.71], "val_accuracy": [0.12, 0.13, 0.14, 0.15, 0.15, 0.16, 0.17]}


# ---------------------------------------------------------------------------------------------
# The stop rules on synthetic histories
# ---------------------------------------------------------------------------------------------

def test_a_training_stuck_at_chance_is_stopped_at_epoch_4_and_not_before(block):
    history = stuck_history()
    for epochs, prefix in prefixes(history):
        decision = block.stop_reason(prefix, CLASSES)
        if epochs < STUCK_STOP_EPOCH:
            assert decision is None, epochs
        else:
            assert decision.reason == STOP_STUCK_AT_CHANCE and decision.epoch == epochs
    decision = first_stop(block, history)
    assert decision.epoch == STUCK_STOP_EPOCH
    # Worded like a diagnosis: the reason, each condition with its numbers and threshold.
    assert decision.explanation.startswith("stuck_at_chance: 4 epochs in a row at chance level")
    for threshold in ("min_epochs_at_chance_to_stop", "max_train_loss_fall_per_epoch_when_stuck",
                      "min_overshoot_peak_over_chance_loss"):
        assert f"({threshold})" in decision.explanation
    assert "came down from its highest, 2.3, to 2.3: 8.69e-05 times ln(K) per epoch < threshold 0.001" in decision.explanation
    assert decision.measures["epochs_at_chance_in_a_row"] == 4
    assert decision.probability == 1.0


def test_a_diverged_training_is_stopped_at_once(block):
    for first_nan in (1, 3):
        history = stuck_history(6)
        history["loss"][first_nan - 1] = math.nan
        decision = first_stop(block, history)
        assert decision.reason == STOP_DIVERGED and decision.epoch == first_nan
        assert f"the first at epoch {first_nan}" in decision.explanation
    history = canned_history("healthy")
    history["val_loss"][1] = math.inf
    assert first_stop(block, history).epoch == 2


def test_a_loss_that_overshoots_and_never_recovers_is_stopped(block):
    decision = first_stop(block, overshoot_history())
    # Epochs 4 and 5 still see the loss coming down from its peak (by 0.0016 ln(K) per epoch in
    # epochs 3-5); epochs 4-6 are flat at ln(K).
    assert decision.reason == STOP_OVERSHOT and decision.epoch == 6
    # The first epoch left chance level (accuracy 0.2): the five after it are the ones in a row.
    assert decision.explanation.startswith("overshot: 5 epochs in a row at chance level")
    assert "peak training loss 3.4 is 1.48 times ln(K) (2.3) > threshold 1.2 (min_overshoot_peak_over_chance_loss)" \
        in decision.explanation


def test_a_loss_coming_back_down_after_an_overshoot_is_not_stopped(block):
    history = overshoot_history()
    history["loss"] = [2.2, 2.9, 3.3, 3.0, 2.8, 2.6, 2.45, 2.3]    # recovering, however slowly
    assert first_stop(block, history) is None
    history["loss"] = [2.2, 2.9, 3.3, 3.35, 3.4, 3.45, 3.5, 3.55]  # climbing: never recovers
    assert first_stop(block, history).reason == STOP_OVERSHOT


@pytest.mark.parametrize("name, history", [
    ("low_lr", canned_history("low_lr")),
    ("barely moving", barely_moving_history()),
    ("slow descent from above ln(K)", slow_descent_from_above_chance()),
    ("healthy", canned_history("healthy")),
    ("overfitting", canned_history("overfitting")),
    ("fluctuating_loss", canned_history("fluctuating_loss")),
])
def test_slow_and_healthy_trainings_are_never_stopped(block, name, history):
    assert all(block.stop_reason(prefix, CLASSES) is None for _, prefix in prefixes(history)), name


def test_the_slow_histories_are_the_ones_the_diagnosis_calls_a_low_learning_rate(block):
    # What the never-stopped test above protects: a step too small, not a training stuck at chance.
    for history in (canned_history("low_lr"), barely_moving_history(), slow_descent_from_above_chance()):
        names = block.diagnose(history, CLASSES, block.initial_weights()).problem_names()
        assert LOW_LR in names and STUCK_AT_CHANCE not in names
    assert block.diagnose(stuck_history(), CLASSES, block.initial_weights()).problem_names() == (STUCK_AT_CHANCE,)


def test_an_epoch_off_chance_level_starts_the_count_again(block):
    history = stuck_history()
    history["accuracy"][3] = 0.6              # the 4th epoch: 0.6 accuracy is not chance level
    decision = first_stop(block, history)
    assert decision.reason == STOP_STUCK_AT_CHANCE and decision.epoch == 7   # epochs 5, 6, 7 in a row


def test_the_clean_training_curves_decide_when_the_history_has_them(block):
    # The tuner's histories carry train_eval_*: the model in inference mode. Keras' own accuracy
    # (dropout on) at chance does not make a model stuck whose clean accuracy left chance.
    history = stuck_history()
    history["train_eval_loss"] = [CHANCE_LOSS * (1 - 0.05 * t) for t in range(10)]
    history["train_eval_accuracy"] = [0.1 + 0.05 * t for t in range(10)]
    assert first_stop(block, history) is None
    history["train_eval_loss"] = list(history["loss"])
    history["train_eval_accuracy"] = [0.11] * 10
    assert first_stop(block, history).epoch == STUCK_STOP_EPOCH


def test_a_diagnosis_file_without_stop_rules_never_stops(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text().replace("stop_training(R) :- stop_because(R, _).", "")
    path = tmp_path / "diagnosis.pl"
    path.write_text(text)
    old = SymbolicBlock(diagnosis_path=path)
    assert not old.has_stop_rules
    assert old.stop_reason(stuck_history(), CLASSES) is None


def test_malformed_stop_rules_are_refused_when_the_block_is_built(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text()
    path = tmp_path / "diagnosis.pl"
    path.write_text(text + "\nstop_cause(bored, [above(epochs, min_epochs_before_stop)]).\n")
    with pytest.raises(RulesError, match="unknown stop reason bored"):
        SymbolicBlock(diagnosis_path=path)
    path.write_text(text.replace("threshold(min_stop_probability, 0.5).", ""))
    with pytest.raises(RulesError, match="min_stop_probability"):
        SymbolicBlock(diagnosis_path=path)
    path.write_text(text + "\nstop_cause(overshot, [above(epochs, no_such_threshold)]).\n")
    with pytest.raises(RulesError, match="no_such_threshold"):
        SymbolicBlock(diagnosis_path=path)


def test_a_weighted_stop_rule_stops_only_with_at_least_even_odds(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text()
    path = tmp_path / "diagnosis.pl"
    for weight, stops in ((0.4, False), (0.6, True)):
        path.write_text(text.replace("stop_training(R) :- stop_because(R, _).",
                                     f"{weight}::stop_training(R) :- stop_because(R, _)."))
        decision = SymbolicBlock(diagnosis_path=path).stop_reason(stuck_history(5), CLASSES)
        assert (decision is not None) == stops
        if stops:
            assert decision.probability == pytest.approx(weight)


def test_the_stop_records_round_trip_and_old_records_still_load():
    decision = StopDecision(STOP_STUCK_AT_CHANCE, 4, "stuck_at_chance: ...", 1.0, {"epochs_at_chance_in_a_row": 4.0})
    assert StopDecision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision
    with pytest.raises(ConfigurationError, match="stop reason"):
        StopDecision("bored", 4, "")
    result = TrainingResult(status=TrialStatus.PRUNED, history=stuck_history(4), val_loss=2.31, val_accuracy=0.1,
                            best_epoch=0, epochs_run=4, stop_reason=STOP_STUCK_AT_CHANCE,
                            stop_explanation="stuck_at_chance: ...", stop_epoch=4)
    assert TrainingResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    old = result.to_dict()
    for key in ("stop_reason", "stop_explanation", "stop_epoch"):
        del old[key]
    old["status"] = TrialStatus.COMPLETED
    loaded = TrainingResult.from_dict(old)
    assert loaded.stop_reason is None and loaded.stop_epoch is None and loaded.stop_explanation is None
