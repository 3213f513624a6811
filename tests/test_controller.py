"""One iteration: train -> LFI -> diagnosis -> choice -> tuning, with a fake trainer."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from sdt.run.controller import Controller, ControllerState, Objective, TrialRecord
from sdt.core.records import Architecture, TrainingResult
from sdt.space.search_space import default_search_space
from sdt.symbolic.block import ChosenAction, SymbolicBlock
from sdt.core.vocabulary import OVERFITTING, REG_L2, TrialStatus, VAL_ACCURACY, VAL_LOSS
from tests.fake_training import AlwaysApply, FakeTrainer
from sdt.actions import ArchitectureLimits

PARAMS = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 64, "unit_d": 300, "dr_f": 0.2, "learning_rate": 1e-3,
          "batch_size": 32, "optimizer": "Adam", "activation": "relu"}


@pytest.fixture(scope="module")
def symbolic():
    return SymbolicBlock()


def make_controller(symbolic, trainer, tune=True, metric=VAL_LOSS):
    return Controller(trainer, symbolic, Objective(metric, 10), ArchitectureLimits(2, 3), tune=tune)


def test_overfitting_applies_reg_l2_and_next_state_shows_it(symbolic):
    controller = make_controller(symbolic, FakeTrainer())
    state = controller.initial_state(default_search_space())
    record, state = controller.run_iteration(0, PARAMS, state, AlwaysApply(0))
    assert OVERFITTING in record.diagnosis.problem_names()
    assert [a.name for a in record.chosen] == [REG_L2]       # the most probable rule for overfitting
    assert state.architecture.l2 and not state.architecture.batch_norm   # L2 only (issue 13)
    assert "l2_factor" in state.space
    assert record.architecture == Architecture()              # the trial itself ran without L2
    assert state.pending_actions == record.chosen
    assert record.improved is None and state.best_objective == record.objective


def test_lfi_judges_pending_actions_by_the_next_trial(symbolic):
    # The second training is worse (underfitting curves have a higher validation loss): reg_l2 failed.
    names = iter(["overfitting", "underfitting"])
    controller = make_controller(symbolic, FakeTrainer(lambda p, a, i: next(names)))
    state = controller.initial_state(default_search_space())
    initial = state.rule_weights.weight(REG_L2, OVERFITTING)
    first, state = controller.run_iteration(0, PARAMS, state, AlwaysApply(0))
    second, state = controller.run_iteration(1, {**PARAMS, "l2_factor": 1e-4}, state, AlwaysApply(1))
    assert second.improved is False
    assert [(o.action, o.problem, o.improved) for o in second.new_observations] == [(REG_L2, OVERFITTING, False)]
    lowered = state.rule_weights.weight(REG_L2, OVERFITTING)
    assert 0 < lowered < initial
    # The state round-trips, so a resumed run has the same weights and evidence.
    restored = ControllerState.from_dict(state.to_dict())
    assert restored == state


def test_improvement_raises_the_weight(symbolic):
    names = iter(["underfitting", "overfitting"])
    controller = make_controller(symbolic, FakeTrainer(lambda p, a, i: next(names)))
    state = controller.initial_state(default_search_space())
    first, state = controller.run_iteration(0, PARAMS, state, AlwaysApply(0))
    chosen = first.chosen[0]
    before = state.rule_weights.weight(chosen.name, chosen.problem)
    second, state = controller.run_iteration(1, PARAMS, state, AlwaysApply(1))
    assert second.improved is True
    assert before < state.rule_weights.weight(chosen.name, chosen.problem) < 1


def test_baseline_diagnoses_but_never_tunes(symbolic):
    controller = make_controller(symbolic, FakeTrainer(), tune=False)
    state = controller.initial_state(default_search_space())
    record, next_state = controller.run_iteration(0, PARAMS, state, np.random.default_rng(0))
    assert OVERFITTING in record.diagnosis.problem_names()
    assert record.chosen == () and record.outcome is None
    assert next_state.space == state.space and next_state.architecture == state.architecture


def test_failed_training_is_recorded_with_a_finite_penalty(symbolic):
    controller = make_controller(symbolic, FakeTrainer(lambda p, a, i: "failed"))
    state = controller.initial_state(default_search_space())
    record, state = controller.run_iteration(0, PARAMS, state, np.random.default_rng(0))
    assert record.result.status == TrialStatus.FAILED
    assert record.diagnosis is None and record.chosen == ()
    assert record.objective == pytest.approx(3 * math.log(10))


def test_diverged_training_is_diagnosed_high_lr_and_penalised(symbolic):
    controller = make_controller(symbolic, FakeTrainer(lambda p, a, i: "nan_loss"))
    state = controller.initial_state(default_search_space())
    record, state = controller.run_iteration(0, PARAMS, state, AlwaysApply(0))
    assert record.result.status == TrialStatus.DIVERGED
    assert math.isfinite(record.objective) and record.objective == pytest.approx(3 * math.log(10))
    assert "high_lr" in record.diagnosis.problem_names()
    assert "decr_lr" in [a.name for a in record.chosen]
    assert state.space["learning_rate"].high < PARAMS["learning_rate"]


@pytest.mark.parametrize("metric, bound", [(VAL_LOSS, 0.9 * math.log(10)), (VAL_ACCURACY, -(0.1 + 0.1 * 0.9))])
def test_symbolic_tuning_tells_the_optimiser_what_objective_learned_nothing(symbolic, metric, bound):
    # From the diagnosis's own chance-level thresholds: a loss within a tenth of ln K of chance,
    # an accuracy less than a tenth of the way from 1/K to 1. The GP models such trainings on the
    # scale of those that learned; plain BO (no tuning) is told nothing of it.
    tuned = make_controller(symbolic, FakeTrainer(), metric=metric)
    state = tuned.initial_state(default_search_space())
    assert state.learned_nothing_objective is None
    _, state = tuned.run_iteration(0, PARAMS, state, AlwaysApply(0))
    assert state.learned_nothing_objective == pytest.approx(bound)
    assert ControllerState.from_dict(state.to_dict()) == state       # kept by a resumed run
    plain = make_controller(symbolic, FakeTrainer(), tune=False, metric=metric)
    _, plain_state = plain.run_iteration(0, PARAMS, plain.initial_state(default_search_space()),
                                         np.random.default_rng(0))
    assert plain_state.learned_nothing_objective is None


def test_objective_values():
    loss = Objective(VAL_LOSS, 10)
    accuracy = Objective(VAL_ACCURACY, 10)
    good = TrainingResult(status=TrialStatus.COMPLETED, val_loss=0.4, val_accuracy=0.9)
    huge = TrainingResult(status=TrialStatus.COMPLETED, val_loss=1e6, val_accuracy=0.1)
    assert loss.value(good) == 0.4 and accuracy.value(good) == -0.9
    assert loss.value(huge) == pytest.approx(3 * math.log(10))          # capped: the GP stays sane
    assert accuracy.value(TrainingResult(status=TrialStatus.DIVERGED)) == 0.0
    with pytest.raises(ValueError):
        Objective("accuracy", 10)


def test_a_trial_record_survives_json_whole(symbolic):
    # Two iterations: the second carries LFI evidence, weights, a diagnosis with measures,
    # thresholds and candidates, and a tuning outcome with applied (before -> after) actions.
    names = iter(["overfitting", "underfitting"])
    controller = make_controller(symbolic, FakeTrainer(lambda p, a, i: next(names)))
    state = controller.initial_state(default_search_space())
    first, state = controller.run_iteration(0, PARAMS, state, AlwaysApply(0))
    second, state = controller.run_iteration(1, {**PARAMS, "l2_factor": 1e-4}, state, AlwaysApply(1))
    for record in (first, second):
        record = replace(record, point=(32, 0.1, "Adam"))
        restored = TrialRecord.from_dict(json.loads(json.dumps(record.to_dict())))
        assert restored == record
        assert type(restored.chosen[0]) is ChosenAction
    assert second.new_observations and second.rule_weights is not None
    assert first.diagnosis.measures and first.diagnosis.thresholds and first.diagnosis.actions
    assert first.outcome.applied and first.outcome.applied[0].changes


def test_skipped_actions_and_notes_survive_json(symbolic):
    record, _ = make_controller(symbolic, FakeTrainer()).run_iteration(
        0, PARAMS, make_controller(symbolic, FakeTrainer()).initial_state(default_search_space()),
        np.random.default_rng(0))
    record = replace(record, diagnosis=replace(record.diagnosis, notes=("history too short",)),
                     outcome=replace(record.outcome, skipped=(("new_fc_layer", "no room for another layer"),)))
    restored = TrialRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert restored.outcome.skipped == (("new_fc_layer", "no room for another layer"),)
    assert restored.diagnosis.notes == ("history too short",)
    assert restored == record
