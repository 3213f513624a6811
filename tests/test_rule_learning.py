"""Tests of sdt/rule_learning.py: LFI of the tuning-rule weights with a prior."""

from __future__ import annotations

import json
import math
import random

import pytest

from sdt.symbolic import rule_learning
from sdt.core.errors import ConfigurationError
from sdt.symbolic.rule_learning import (
    DEFAULT_PRIOR_STRENGTH, Observation, closed_form_weight, learn_weights,
)
from sdt.symbolic.block import RuleWeights, SymbolicBlock
from sdt.core.vocabulary import FLUCTUATING_LOSS, HIGH_LR, LOW_LR, OVERFITTING, UNDERFITTING

REG_L2 = ("reg_l2", OVERFITTING)


@pytest.fixture(scope="module")
def initial() -> RuleWeights:
    return SymbolicBlock().initial_weights()


def observe(key: tuple[str, str], improved: bool, times: int = 1) -> list[Observation]:
    return [Observation(key[0], key[1], improved)] * times


def test_an_improvement_raises_the_weight(initial):
    learned = learn_weights(initial, observe(REG_L2, True))
    assert initial[REG_L2] < learned[REG_L2] < 1.0


def test_a_failure_lowers_the_weight_but_not_to_zero(initial):
    learned = learn_weights(initial, observe(REG_L2, False))
    assert 0.0 < learned[REG_L2] < initial[REG_L2]
    # The prior keeps it from the defect of plain LFI (k/n = 0 after one failure).
    assert learned[REG_L2] == pytest.approx(0.9 * 4 / 5)


def test_twenty_failures_never_reach_zero_and_twenty_successes_never_one(initial):
    low = learn_weights(initial, observe(REG_L2, False, 20))[REG_L2]
    high = learn_weights(initial, observe(REG_L2, True, 20))[REG_L2]
    assert 0.0 < low < 0.2
    assert 0.95 < high < 1.0
    assert low == pytest.approx(closed_form_weight(0.9, 0, 20))
    assert high == pytest.approx(closed_form_weight(0.9, 20, 20))


def test_weights_move_gradually(initial):
    key = ("inc_neurons", UNDERFITTING)
    previous = initial[key]
    observations: list[Observation] = []
    for step in range(10):
        observations += observe(key, False)
        current = learn_weights(initial, observations)[key]
        assert 0 < previous - current < 1 / (len(observations) + DEFAULT_PRIOR_STRENGTH)
        previous = current


@pytest.mark.parametrize("prior_strength", [1.0, 2.5, 4.0, 10.0])
def test_lfi_matches_the_closed_form(initial, prior_strength):
    rng = random.Random(int(prior_strength * 10))
    keys = list(initial)
    observations = [Observation(*rng.choice(keys), improved=rng.random() < 0.4)
                    for _ in range(40)]
    learned = learn_weights(initial, observations, prior_strength)
    for key in keys:
        matching = [o for o in observations if (o.action, o.problem) == key]
        successes = sum(o.improved for o in matching)
        expected = closed_form_weight(initial[key], successes, len(matching), prior_strength)
        assert learned[key] == pytest.approx(expected, abs=1e-9), key


def test_an_odd_prior_is_matched_within_the_resolution():
    initial = RuleWeights({("inc_lr", LOW_LR): 0.3337, ("decr_lr", HIGH_LR): 0.123456})
    observations = observe(("inc_lr", LOW_LR), True, 3) + observe(("decr_lr", HIGH_LR), False, 2)
    learned = learn_weights(initial, observations, 3.0)
    assert learned[("inc_lr", LOW_LR)] == pytest.approx(closed_form_weight(0.3337, 3, 3, 3.0), abs=2e-3)
    assert learned[("decr_lr", HIGH_LR)] == pytest.approx(closed_form_weight(0.123456, 0, 2, 3.0),
                                                          abs=2e-3)


def test_rules_without_observations_keep_their_weight(initial):
    learned = learn_weights(initial, observe(REG_L2, True))
    for key in initial:
        if key != REG_L2:
            assert learned[key] == initial[key]
    assert learn_weights(initial, []) == initial


def test_the_same_action_for_two_problems_learns_separately(initial):
    observations = (observe(("decr_lr", UNDERFITTING), False, 3)
                    + observe(("decr_lr", HIGH_LR), True, 3))
    learned = learn_weights(initial, observations)
    assert learned[("decr_lr", UNDERFITTING)] < initial[("decr_lr", UNDERFITTING)]
    assert learned[("decr_lr", HIGH_LR)] > initial[("decr_lr", HIGH_LR)]


def test_order_of_observations_does_not_matter(initial):
    rng = random.Random(5)
    keys = list(initial)
    observations = [Observation(*rng.choice(keys), improved=rng.random() < 0.5) for _ in range(15)]
    shuffled = observations[:]
    rng.shuffle(shuffled)
    assert learn_weights(initial, observations) == learn_weights(initial, shuffled)


def test_learning_really_runs_problog_lfi(initial, monkeypatch):
    calls = []
    original = rule_learning.LFIProblem

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(rule_learning, "LFIProblem", spy)
    learn_weights(initial, observe(REG_L2, True) + observe(("inc_lr", LOW_LR), False))
    assert len(calls) == 1
    program_text = "\n".join(str(clause) for clause in calls[0][0])
    assert "t(0.9)::action(reg_l2,overfitting)" in program_text
    assert "t(0.7)::action(inc_lr,low_lr)" in program_text
    assert "inc_dropout" not in program_text  # only observed rules are learned


def test_fifty_observations_give_the_same_weights_twice(initial):
    """Learning is a function of the observations (its speed is measured by
    scripts/measure_symbolic_step.py, not asserted here)."""
    rng = random.Random(1)
    keys = list(initial)
    observations = [Observation(*rng.choice(keys), improved=rng.random() < 0.5) for _ in range(50)]
    first = learn_weights(initial, observations)
    assert learn_weights(initial, observations) == first
    assert all(0.0 < weight < 1.0 for weight in first.weights.values())


# ---------------------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("prior_strength", [0, -1.0, math.nan, math.inf, True, "4"])
def test_prior_strength_must_be_positive(initial, prior_strength):
    with pytest.raises(ConfigurationError, match="prior_strength"):
        learn_weights(initial, [], prior_strength)


def test_observation_of_a_rule_that_does_not_exist(initial):
    # inc_lr is a remedy for low_lr only: there is no rule action(inc_lr, overfitting).
    with pytest.raises(ConfigurationError, match="not a learnable rule"):
        learn_weights(initial, [Observation("inc_lr", OVERFITTING, True)])


@pytest.mark.parametrize("fields, message", [
    (("lower_lr", UNDERFITTING, True), "unknown action"),     # not in the vocabulary
    (("decr_lr", "bias", True), "unknown problem"),           # not in the vocabulary
    (("decr_lr", UNDERFITTING, 1), "True or False"),          # 1 is not a bool
])
def test_observation_is_validated(fields, message):
    with pytest.raises(ConfigurationError, match=message):
        Observation(*fields)


def test_observation_round_trips():
    observation = Observation("inc_batch_size", FLUCTUATING_LOSS, False)
    assert Observation.from_dict(json.loads(json.dumps(observation.to_dict()))) == observation
    with pytest.raises(ConfigurationError):
        Observation.from_dict({"action": "decr_lr"})  # fields missing


# ---------------------------------------------------------------------------------------
# RuleWeights as run state
# ---------------------------------------------------------------------------------------

def test_rule_weights_round_trip_exactly_through_json(initial):
    rng = random.Random(3)
    keys = list(initial)
    observations = [Observation(*rng.choice(keys), improved=rng.random() < 0.5) for _ in range(23)]
    learned = learn_weights(initial, observations)
    assert learned != initial
    restored = RuleWeights.from_dict(json.loads(json.dumps(learned.to_dict())))
    assert restored == learned
    assert hash(restored) == hash(learned)
    assert all(restored[key] == learned[key] for key in learned)  # bit for bit
    assert list(restored) == list(learned)


def test_rule_weights_dict_form(initial):
    data = initial.to_dict()
    assert data["rules"][0] == {"action": "reg_l2", "problem": OVERFITTING, "weight": 0.9}
    assert len(data["rules"]) == len(initial)


@pytest.mark.parametrize("weights, message", [
    ({("reg_l2", OVERFITTING): 1.0}, "strictly between 0 and 1"),      # could never learn
    ({("reg_l2", OVERFITTING): 0.0}, "strictly between 0 and 1"),
    ({("reg_l2", OVERFITTING): math.nan}, "strictly between 0 and 1"),
    ({("reg_l2", OVERFITTING): "0.5"}, "must be a number"),
    ({("regularise", OVERFITTING): 0.5}, "unknown action"),
    ({("reg_l2", "variance"): 0.5}, "unknown problem"),
    ({"reg_l2": 0.5}, "pairs"),
])
def test_rule_weights_are_validated(weights, message):
    with pytest.raises(ConfigurationError, match=message):
        RuleWeights(weights)


def test_rule_weights_from_bad_dict():
    with pytest.raises(ConfigurationError, match="rules"):
        RuleWeights.from_dict({"weights": []})


def test_rule_weights_are_immutable(initial):
    with pytest.raises(TypeError):
        initial.weights[REG_L2] = 0.5  # type: ignore[index]
    updated = initial.updated({REG_L2: 0.5})
    assert initial[REG_L2] == 0.9 and updated[REG_L2] == 0.5
    with pytest.raises(ConfigurationError, match="no learnable rule"):
        initial.updated({("inc_lr", OVERFITTING): 0.5})
