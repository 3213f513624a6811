"""Tests of sdt/meta_lr.py: the poster's probability updates, the learning-rate moves, patience, resume."""

import json
import math

import numpy as np
import pytest

from sdt.run import loop as tuner
from sdt.core.errors import ConfigurationError
from sdt.strategies.meta_lr import (
    DECREASE, INCREASE, KEEP, MetaLearningRateStrategy, default_configuration, draw_move, move_between,
    updated_probabilities,
)
from sdt.space.domain import Domain
from sdt.core.records import Architecture, TrainingResult
from sdt.space.search_space import default_search_space
from sdt.strategies.registry import make_strategy
from sdt.core.vocabulary import TrialStatus
from tests.fake_training import FakeTrainer, canned_history, fake_factory

THIRD = 1 / 3


def domain():
    return Domain(default_search_space(), 0, 0)


def strategy(**options):
    return MetaLearningRateStrategy(domain(), **options)


class FixedDraw:
    """Stands in for the numpy generator: random() returns `u`."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def assert_probabilities(actual, expected):
    assert sum(actual) == pytest.approx(1.0)
    assert actual == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------
# Defaults and the heuristic start
# ---------------------------------------------------------------------------------------

def test_first_training_is_the_default_configuration_at_the_geometric_middle_learning_rate():
    proposal = strategy().ask(None, np.random.default_rng(0))
    params, architecture = proposal.params, proposal.architecture
    assert architecture == Architecture()
    # Middle of each range (geometric for the log-scale learning rate), first category.
    assert params == {"unit_c1": 40, "dr1_2": pytest.approx(0.151), "unit_c2": 96, "unit_d": 384,
                      "dr_f": pytest.approx(0.265), "learning_rate": pytest.approx(math.sqrt(1e-4 * 1e-3)),
                      "batch_size": 136, "optimizer": "Adam", "activation": "relu"}
    assert default_configuration(default_search_space())["learning_rate"] == pytest.approx(math.sqrt(1e-7))
    assert default_search_space().contains(params)


# ---------------------------------------------------------------------------------------
# Probability updates (TuneLearningRate lines 8-15) on scripted outcomes
# ---------------------------------------------------------------------------------------

def test_the_posters_success_rule_compares_with_the_previous_training_and_counts_ties():
    s = strategy(p_eps=0.1, patience=10)
    assert s.success == "previous"                                        # the default
    lr0 = s.initial_learning_rate
    script = [
        (lr0, 1.0, (THIRD, THIRD, THIRD)),                                # first: the reference, no move
        (lr0 * 2, 0.9, (THIRD + 0.1, THIRD - 0.05, THIRD - 0.05)),        # increase, better: a success
        (lr0 * 2, 0.9, (THIRD + 0.05, THIRD + 0.05, THIRD - 0.1)),        # keep, a tie: a success too
        (lr0, 0.95, (THIRD + 0.1, THIRD + 0.1, THIRD - 0.2)),             # decrease, worse: a failure
        (lr0 / 2, 0.92, (THIRD + 0.05, THIRD + 0.05, THIRD - 0.1)),       # decrease, better than the previous
    ]                                                                     # (not the best 0.9): a success
    for learning_rate, objective, expected in script:
        s.tell({"learning_rate": learning_rate}, Architecture(), objective)
        assert_probabilities(s.probabilities, expected)
    assert [step.improved for step in s.steps] == [None, True, True, False, True]
    assert s.best_objective == 0.9 and s.steps_without_improvement == 0


def test_probabilities_follow_the_algorithm_on_a_scripted_sequence():
    s = strategy(p_eps=0.1, patience=10, success="best")
    lr0 = s.initial_learning_rate
    # (learning rate told, objective, expected p1 p2 p3 after the update), hand-computed.
    script = [
        (lr0, 1.0, (THIRD, THIRD, THIRD)),                                # first: sets the best, no move
        (lr0 * 2, 0.9, (THIRD + 0.1, THIRD - 0.05, THIRD - 0.05)),        # increase improved: +0.1 / -0.05 each
        (lr0 * 2, 0.95, (THIRD + 0.15, THIRD - 0.15, THIRD)),             # keep worsened: -0.1 / +0.05 each
        (lr0, 0.92, (THIRD + 0.2, THIRD - 0.1, THIRD - 0.1)),             # decrease worse than best 0.9
        (lr0 / 2, 0.8, (THIRD + 0.15, THIRD - 0.15, THIRD)),              # decrease improved
    ]
    for learning_rate, objective, expected in script:
        s.tell({"learning_rate": learning_rate}, Architecture(), objective)
        assert_probabilities(s.probabilities, expected)
    assert [step.move for step in s.steps] == [None, INCREASE, KEEP, DECREASE, DECREASE]
    assert [step.improved for step in s.steps] == [None, True, False, False, True]
    assert s.best_objective == 0.8 and s.steps_without_improvement == 0


def test_with_success_best_a_training_must_beat_the_best_so_far():
    told = ((1.0, 1.0), (2.0, 2.0), (4.0, 1.5), (4.0, 1.5))
    for success, expected in (("best", [None, False, False, False]), ("previous", [None, False, True, True])):
        s = strategy(p_eps=0.1, success=success)
        for factor, objective in told:
            s.tell({"learning_rate": s.initial_learning_rate * factor}, Architecture(), objective)
        # 1.5 beats the previous 2.0 but not the best 1.0; then a tie with the previous 1.5.
        assert [step.improved for step in s.steps] == expected, success


def test_boundary_clips_into_zero_one_then_renormalises():
    # Big p_eps: two improvements of "increase" push p1 past 1 and the others below 0.
    p = updated_probabilities((THIRD, THIRD, THIRD), INCREASE, True, 0.5)
    assert_probabilities(p, (5 / 6, 1 / 12, 1 / 12))
    p = updated_probabilities(p, INCREASE, True, 0.5)         # (4/3, -1/6, -1/6) -> clip (1, 0, 0)
    assert_probabilities(p, (1.0, 0.0, 0.0))
    p = updated_probabilities(p, KEEP, False, 0.5)            # (1.25, -0.5, 0.25) -> (1, 0, 0.25) -> /1.25
    assert_probabilities(p, (0.8, 0.0, 0.2))
    p = updated_probabilities(p, INCREASE, False, 0.5)        # (0.3, 0.25, 0.45): inside, nothing clipped
    assert_probabilities(p, (0.3, 0.25, 0.45))
    assert all(0.0 <= value <= 1.0 for value in p)


def test_a_move_with_probability_zero_is_never_drawn():
    assert {draw_move((1.0, 0.0, 0.0), u) for u in np.linspace(0, 0.999999, 101)} == {INCREASE}
    assert {draw_move((0.8, 0.0, 0.2), u) for u in np.linspace(0, 0.999999, 101)} == {INCREASE, DECREASE}


# ---------------------------------------------------------------------------------------
# The learning-rate step
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("u, move, factor", [(0.1, INCREASE, 3.0), (0.5, KEEP, 1.0), (0.9, DECREASE, 1 / 3)])
def test_the_learning_rate_moves_in_the_drawn_direction_by_the_step(u, move, factor):
    s = strategy(step_factor=3.0)
    lr0 = s.initial_learning_rate
    s.tell({"learning_rate": lr0}, Architecture(), 1.0)
    proposal = s.ask(None, FixedDraw(u))
    params, _ = proposal.params, proposal.architecture
    assert draw_move(s.probabilities, u) == move
    assert params["learning_rate"] == pytest.approx(lr0 * factor)
    assert move_between(lr0, params["learning_rate"]) == move
    # Everything else stays at its default.
    assert {k: v for k, v in params.items() if k != "learning_rate"} == \
           {k: v for k, v in s.defaults.items() if k != "learning_rate"}


def test_the_step_is_clipped_into_the_learning_rate_bounds_and_a_blocked_move_counts_as_keep():
    s = strategy(step_factor=10.0, p_eps=0.1)
    s.tell({"learning_rate": 1e-3}, Architecture(), 1.0)          # at the upper bound
    proposal = s.ask(None, FixedDraw(0.0))
    up, _ = proposal.params, proposal.architecture
    assert up["learning_rate"] == 1e-3
    s.tell(up, Architecture(), 2.0)                                # blocked increase, worse
    assert s.steps[-1].move == KEEP
    assert_probabilities(s.probabilities, (THIRD + 0.05, THIRD - 0.1, THIRD + 0.05))
    proposal = s.ask(None, FixedDraw(0.99))
    down, _ = proposal.params, proposal.architecture
    assert down["learning_rate"] == pytest.approx(1e-4)            # 1e-3 / 10, the lower bound
    s.tell(down, Architecture(), 0.5)
    proposal = s.ask(None, FixedDraw(0.99))
    again, _ = proposal.params, proposal.architecture
    assert again["learning_rate"] == pytest.approx(1e-4)


def test_the_draw_comes_from_the_rng_handed_to_ask():
    s = strategy()
    s.tell({"learning_rate": s.initial_learning_rate}, Architecture(), 1.0)
    first = [s.ask(None, np.random.default_rng([3, i, 0])).params["learning_rate"] for i in range(20)]
    again = [s.ask(None, np.random.default_rng([3, i, 0])).params["learning_rate"] for i in range(20)]
    assert first == again and len(set(first)) == 3       # all three moves occur, reproducibly


# ---------------------------------------------------------------------------------------
# Stopping
# ---------------------------------------------------------------------------------------

def test_patience_non_improving_steps_finish_the_strategy():
    s = strategy(patience=3)
    lr0 = s.initial_learning_rate
    outcomes = [1.0, 0.9, 1.2, 1.3, 1.4]              # a success, then three failures in a row
    for i, objective in enumerate(outcomes):
        assert not s.finished
        s.tell({"learning_rate": lr0}, Architecture(), objective)
    assert s.finished and s.steps_without_improvement == 3


def test_the_budget_finishes_the_strategy():
    s = strategy(budget=2)
    s.tell({"learning_rate": s.initial_learning_rate}, Architecture(), 1.0)
    assert not s.finished
    s.tell({"learning_rate": s.initial_learning_rate}, Architecture(), 0.5)
    assert s.finished


@pytest.mark.parametrize("options", [dict(step_factor=1.0), dict(p_eps=0.0), dict(p_eps=1.5), dict(patience=0),
                                     dict(success="strictly")])
def test_invalid_options_are_refused(options):
    # A factor of 1 never moves; p_eps outside (0, 1]; a patience of 0 stops before training.
    with pytest.raises(ValueError):
        strategy(**options)


@pytest.mark.parametrize("field, value, message", [
    ("meta_lr_step_factor", 0.5, "--meta-lr-step-factor must be > 1"),
    ("meta_lr_p_eps", 0.0, "--meta-lr-p-eps must be in (0, 1]"),
    ("meta_lr_patience", 0, "--meta-lr-patience must be >= 1"),
    ("meta_lr_success", "strictly", "--meta-lr-success must be one of previous, best"),
])
def test_run_config_refuses_invalid_meta_lr_options(field, value, message):
    with pytest.raises(ConfigurationError, match=__import__("re").escape(message)):
        tuner.RunConfig(strategy="meta-lr", strategy_options={field: value}).validate()


def test_registry_builds_it_with_options():
    s = make_strategy("meta-lr", domain(), 4, {"meta_lr_step_factor": 4.0, "meta_lr_p_eps": 0.2,
                                               "meta_lr_patience": 2, "meta_lr_success": "best"}, budget=7)
    assert (s.step_factor, s.p_eps, s.patience, s.budget, s.success) == (4.0, 0.2, 2, 7, "best")


# ---------------------------------------------------------------------------------------
# Through the loop (fake trainer)
# ---------------------------------------------------------------------------------------

def config(**changes):
    base = dict(dataset="digits", max_evals=8, epochs=3, seed=2, strategy="meta-lr")
    options = {name: changes.pop(name) for name in list(changes) if name.startswith("meta_lr_")}
    base.update(changes)
    return tuner.RunConfig(**base, strategy_options=options)


def run(folder, trainer, **changes):
    return tuner.run(config(**changes), folder, make_train=fake_factory(trainer))


def scripted_trainer(val_losses):
    """Completed trainings whose validation loss is val_losses[index] (curves from a fixture)."""
    calls = []

    def train(params, architecture, index):
        calls.append((dict(params), architecture, index))
        history = canned_history("healthy")
        return TrainingResult(status=TrialStatus.COMPLETED, history=history, val_loss=val_losses[index],
                              val_accuracy=0.9, best_epoch=0, epochs_run=len(history["loss"]))
    train.calls = calls
    return train


def scripted_accuracy_trainer(val_accuracies):
    """Completed trainings whose validation accuracy is val_accuracies[index], at a constant loss."""
    calls = []

    def train(params, architecture, index):
        calls.append((dict(params), architecture, index))
        history = canned_history("healthy")
        return TrainingResult(status=TrialStatus.COMPLETED, history=history, val_loss=0.5,
                              val_accuracy=val_accuracies[index], best_epoch=0, epochs_run=len(history["loss"]))
    train.calls = calls
    return train


def test_the_objective_is_the_posters_validation_accuracy_unless_told_otherwise(tmp_path):
    assert tuner.RunConfig(strategy="meta-lr").objective == "val_accuracy"
    assert tuner.RunConfig(strategy="meta-lr", objective="val_loss").objective == "val_loss"
    assert tuner.RunConfig(strategy="bo").objective == "val_loss"
    # Accuracy falls after the second training, every time, while the loss stays put: judged by accuracy,
    # every later training is a failure and patience 2 ends the run after two of them.
    trainer = scripted_accuracy_trainer([0.5, 0.6] + [0.4 - 0.03 * i for i in range(8)])
    summary = run(tmp_path / "run", trainer, max_evals=10, meta_lr_patience=2)
    assert summary["objective"] == "val_accuracy" and len(trainer.calls) == 2 + 2
    # Judged by the (constant) loss every training ties the previous one: all successes.
    trainer = scripted_accuracy_trainer([0.5, 0.6] + [0.4 - 0.03 * i for i in range(8)])
    summary = run(tmp_path / "loss", trainer, max_evals=10, meta_lr_patience=2, objective="val_loss")
    assert summary["objective"] == "val_loss" and len(trainer.calls) == 10


def test_patience_ends_the_run_before_the_budget(tmp_path):
    trainer = scripted_trainer([1.0, 0.8] + [2.0 + 0.1 * i for i in range(10)])   # worse every time after trial 1
    summary = run(tmp_path / "run", trainer, max_evals=10, meta_lr_patience=3, objective="val_loss")
    assert len(trainer.calls) == 2 + 3 < 10
    assert [t["index"] for t in summary["trials"]] == [0, 1, 2, 3, 4]
    assert summary["best"]["index"] == 1
    # Resuming a finished run trains nothing more.
    again = tuner.run(config(max_evals=10, objective="val_loss"), tmp_path / "run", resume=True,
                      make_train=fake_factory(scripted_trainer([9.9] * 10)))
    assert len(again["trials"]) == 5


def test_runs_end_to_end_with_only_the_learning_rate_changing(tmp_path):
    trainer = FakeTrainer()
    summary = run(tmp_path / "run", trainer, meta_lr_patience=20)
    assert summary["strategy"] == "meta-lr" and len(summary["trials"]) == 8
    learning_rates = [params["learning_rate"] for params, _, _ in trainer.calls]
    assert all(1e-4 <= lr <= 1e-3 for lr in learning_rates)
    for (previous, _, _), (current, _, _) in zip(trainer.calls, trainer.calls[1:]):
        ratio = current["learning_rate"] / previous["learning_rate"]
        # One step of factor 2 (or less where the bound clipped it), or none.
        assert 0.5 - 1e-12 <= ratio <= 2.0 + 1e-12
        assert {k: v for k, v in current.items() if k != "learning_rate"} == \
               {k: v for k, v in previous.items() if k != "learning_rate"}
    assert all(architecture == Architecture() for _, architecture, _ in trainer.calls)
    assert all(t["actions"] == [] for t in summary["trials"])
    assert (tmp_path / "run" / "summary.json").exists() and (tmp_path / "run" / "run.sqlite").exists()


class Interrupt(Exception):
    pass


def test_resume_after_interruption_continues_identically(tmp_path):
    run(tmp_path / "a", FakeTrainer(), meta_lr_patience=20)

    def crash_on_fourth(params, architecture, index):
        if index == 3:
            raise Interrupt()
        return FakeTrainer()(params, architecture, index)
    with pytest.raises(Interrupt):
        run(tmp_path / "b", crash_on_fourth, meta_lr_patience=20)

    resumed = FakeTrainer()
    summary = tuner.run(config(), tmp_path / "b", resume=True, make_train=fake_factory(resumed))
    assert [c[2] for c in resumed.calls] == [3, 4, 5, 6, 7]
    reference = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert [t["params"] for t in summary["trials"]] == [t["params"] for t in reference["trials"]]
    assert len({t["params"]["learning_rate"] for t in summary["trials"]}) > 1   # it did move


@pytest.mark.slow
def test_a_real_tiny_run(tmp_path):
    summary = tuner.run(config(max_evals=2, epochs=1), tmp_path / "run")
    assert [t["status"] for t in summary["trials"]] == ["completed", "completed"]
    assert summary["best"]["test_accuracy"] is not None
    assert (tmp_path / "run" / "best_model.keras").exists()


def test_a_space_without_a_learning_rate_is_refused():
    from sdt.space.search_space import INTEGER, Dimension, SearchSpace
    with pytest.raises(ConfigurationError, match="needs a numeric 'learning_rate'"):
        MetaLearningRateStrategy(Domain(SearchSpace((Dimension("units", INTEGER, 1, 8),)), 0, 0))
