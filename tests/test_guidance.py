"""Guidance that the data can overrule (issue 13): the tuning actions as a fading prior (πBO)
next to the paper's space edits, and rule learning whose labels can tell a helpful action
from a harmful one."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from sdt.actions import ArchitectureLimits, Change
from sdt.core.errors import ConfigurationError
from sdt.core.records import Architecture
from sdt.core.vocabulary import DECR_LR, HIGH_LR, OVERFITTING, REG_L2, UNDERFITTING, VAL_LOSS
from sdt.run.controller import Controller, ControllerState, Objective
from sdt.space.domain import Domain, sample_params
from sdt.space.preference import (
    BEFORE_TRAINING, EDIT, PRIOR, Preference, draw_from_prior, preference_of_changes, prior_weight, sample_architectures,
    sample_candidates, used_params,
)
from sdt.space.search_space import all_potential_dimensions, default_search_space
from sdt.strategies.gaussian_process import ConstrainedGPOptimizer
from sdt.symbolic.block import SymbolicBlock
from sdt.symbolic.records import RuleWeights
from sdt.symbolic.rule_learning import Observation, learn_weights
from tests.fake_training import AlwaysApply, FakeTrainer, NeverApply

PARAMS = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 64, "unit_d": 300, "dr_f": 0.2, "learning_rate": 1e-3,
          "batch_size": 32, "optimizer": "Adam", "activation": "relu"}


@pytest.fixture(scope="module")
def symbolic():
    return SymbolicBlock()


def added(state):
    """The preferences a state's trainings left: without the regions avoided from the start."""
    return tuple(p for p in state.preferences if p.trial != BEFORE_TRAINING)


def avoided_regions(state):
    """The regions a state avoids (without the region the first training is drawn in)."""
    return tuple(p for p in state.preferences if p.avoid)


def controller(symbolic, trainer, guidance):
    return Controller(trainer, symbolic, Objective(VAL_LOSS, 10), ArchitectureLimits(2, 3), guidance=guidance)


# --- the prior -----------------------------------------------------------------------------

def test_a_preference_weights_candidates_outside_its_region_and_fades_with_trials():
    lower = Preference(DECR_LR, HIGH_LR, 0, 0.9, bounds=(("learning_rate", 1e-5, 5e-4),))
    inside, outside = {"learning_rate": 1e-4}, {"learning_rate": 1e-3}
    assert prior_weight(inside, Architecture(), [lower], trials_told=1) == 1.0
    # π ** (β / n) with β = 4: 0.1 ** 4 after one training, 0.1 ** 0.4 after ten.
    assert prior_weight(outside, Architecture(), [lower], trials_told=1) == pytest.approx(0.1 ** 4)
    assert prior_weight(outside, Architecture(), [lower], trials_told=10) == pytest.approx(0.1 ** 0.4)
    assert prior_weight(outside, Architecture(), [lower], trials_told=1000) > 0.99
    # A weak rule barely leans: weight 0.2 leaves 0.8 ** 4 = 0.41 even after the first training.
    weak = Preference(DECR_LR, HIGH_LR, 0, 0.2, bounds=(("learning_rate", 1e-5, 5e-4),))
    assert prior_weight(outside, Architecture(), [weak], trials_told=1) == pytest.approx(0.8 ** 4)
    # A hyper-parameter the candidate network does not use is no evidence either way.
    assert lower.contains({}, Architecture())


def test_a_preference_fades_from_the_trial_it_diagnosed_and_repeated_diagnoses_add_up():
    region = (("learning_rate", 1e-5, 5e-4),)
    outside = {"learning_rate": 1e-3}
    early = Preference(DECR_LR, HIGH_LR, 0, 0.9, bounds=region)
    late = Preference(DECR_LR, HIGH_LR, 9, 0.9, bounds=region)
    # Diagnosed at trial 9, it guides the eleventh proposal (10 told) as strongly as one diagnosed
    # at trial 0 guides the second (1 told), and fades over the trainings after it alike.
    assert prior_weight(outside, Architecture(), [late], trials_told=10) == pytest.approx(0.1 ** 4)
    assert prior_weight(outside, Architecture(), [late], trials_told=13) == pytest.approx(
        prior_weight(outside, Architecture(), [early], trials_told=4))
    assert prior_weight(outside, Architecture(), [early], trials_told=10) == pytest.approx(0.1 ** 0.4)
    # The same diagnosis again adds its own, fresh, factor.
    both = prior_weight(outside, Architecture(), [early, late], trials_told=10)
    assert both == pytest.approx(0.1 ** 0.4 * 0.1 ** 4)
    assert both < prior_weight(outside, Architecture(), [early], trials_told=10)
    # Told fewer trainings than the trial's index (a resumed or parallel run): never stronger than age 1.
    assert prior_weight(outside, Architecture(), [late], trials_told=3) == pytest.approx(0.1 ** 4)


def test_a_preference_is_the_region_of_the_edit_and_survives_json():
    changes = [Change("space.learning_rate", [1e-4, 1e-2], [1e-5, 5e-4]), Change("space.l2_factor", None, [1e-6, 1e-2]),
               Change("architecture.l2", False, True)]
    preference = preference_of_changes(REG_L2, OVERFITTING, 3, 0.9, changes)
    assert preference.bounds == (("learning_rate", 1e-5, 5e-4),)      # the added dimension constrains nothing
    assert preference.minimum == (("l2", 1),)
    assert not preference.contains({"learning_rate": 1e-4}, Architecture())        # L2 off
    assert preference.contains({"learning_rate": 1e-4}, Architecture(l2=True))
    assert Preference.from_dict(preference.to_dict()) == preference
    with pytest.raises(ConfigurationError):
        Preference(REG_L2, OVERFITTING, 0, 1.5)


def test_a_narrowed_category_list_is_a_preference_for_the_remaining_categories():
    changes = [Change("space.optimizer", ["Adam", "Adadelta"], ["Adam"])]
    preference = preference_of_changes("change_optimizer", "stuck_at_chance", 0, 0.8, changes)
    assert preference.choices == (("optimizer", ("Adam",)),) and preference.bounds == ()
    assert preference.contains({"optimizer": "Adam"}, Architecture())
    assert preference.factor({"optimizer": "Adadelta"}, Architecture()) == pytest.approx(0.2)
    assert Preference.from_dict(preference.to_dict()) == preference


def test_candidate_networks_use_only_what_is_available_and_carry_only_their_parameters():
    available = Architecture(extra_conv_blocks=1, extra_dense_layers=2, l2=True)
    networks = sample_architectures(available, 400, np.random.default_rng(0))
    assert {a.extra_conv_blocks for a in networks} == {0, 1}
    assert {a.extra_dense_layers for a in networks} == {0, 1, 2}
    assert {a.l2 for a in networks} == {False, True} and not any(a.augmentation for a in networks)
    params = {**PARAMS, "unit_c3": 64, "unit_d2": 100, "unit_d3": 50, "l2_factor": 1e-4}
    assert set(used_params(params, Architecture(extra_dense_layers=1))) == set(PARAMS) | {"unit_d2"}
    assert set(used_params(params, Architecture(extra_conv_blocks=1, l2=True))) == set(PARAMS) | {"unit_c3", "l2_factor"}


def test_the_random_phase_draws_from_the_prior():
    space = default_search_space()
    region = Preference(DECR_LR, HIGH_LR, 0, 0.9, bounds=(("learning_rate", space["learning_rate"].low, 3e-4),))
    state = SimpleNamespace(space=space, architecture=Architecture(), guidance=PRIOR, preferences=(region,))
    plain = SimpleNamespace(space=space, architecture=Architecture(), guidance=PRIOR, preferences=())
    draws = [draw_from_prior(state, 1, np.random.default_rng([5, i]))[0] for i in range(40)]
    uniform = [draw_from_prior(plain, 1, np.random.default_rng([5, i]))[0] for i in range(40)]
    assert sum(p["learning_rate"] <= 3e-4 for p in draws) >= 38
    assert sum(p["learning_rate"] <= 3e-4 for p in uniform) <= 30
    # Without preferences the draw is every strategy's random draw (common random numbers).
    assert uniform == [sample_params(space, 1, np.random.default_rng([5, i]))[0] for i in range(40)]


def test_expected_improvement_is_weighted_by_the_prior_and_the_data_overrules_it():
    space = default_search_space()
    domain = Domain(space, 0, 0)
    high = 3e-4
    region = Preference(DECR_LR, HIGH_LR, 0, 0.9, bounds=(("learning_rate", space["learning_rate"].low, high),))
    state = SimpleNamespace(space=space, architecture=Architecture(), guidance=PRIOR, preferences=(region,))

    def objective(params):   # the truth: larger learning rates are better, the prior is wrong
        return -math.log10(params["learning_rate"])

    def proposals(told):
        optimizer = ConstrainedGPOptimizer(domain, n_initial_points=3, n_candidates=400)
        rng = np.random.default_rng(11)
        for params, _ in sample_candidates(SimpleNamespace(space=space, architecture=Architecture()), told, rng):
            optimizer.tell(params, Architecture(), objective(params))
        return [optimizer.ask(state, np.random.default_rng([told, i])).params["learning_rate"] for i in range(6)]

    early, late = proposals(3), proposals(40)
    assert sum(lr <= high for lr in early) >= 5      # (0.1) ** (4/3): the region wins early...
    assert sum(lr <= high for lr in late) <= 1       # ...and 40 trainings later the GP's evidence decides


# --- the controller under each guidance -----------------------------------------------------

def test_prior_guidance_keeps_the_space_and_makes_the_feature_available(symbolic):
    tuner = controller(symbolic, FakeTrainer(), PRIOR)
    state = tuner.initial_state(default_search_space())
    record, state = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    assert [a.name for a in record.chosen] == [REG_L2]
    assert state.architecture.l2                                   # available to the optimiser...
    assert ("l2", 1) in added(state)[0].minimum               # ...and preferred
    assert "l2_factor" in state.space
    assert all(state.space[d.name] == d for d in default_search_space())   # no bound moved
    assert "prefers" in record.outcome.applied[0].description
    # The next training may use L2 or not, but nothing beyond what is available.
    tuner.run_iteration(1, PARAMS, state, AlwaysApply())
    with pytest.raises(ValueError, match="available"):
        tuner.run_iteration(1, PARAMS, state, AlwaysApply(), architecture=Architecture(augmentation=True))
    assert ControllerState.from_dict(state.to_dict()) == state


def test_prior_guidance_turns_a_range_edit_into_a_region(symbolic):
    tuner = controller(symbolic, FakeTrainer(lambda p, a, i: "nan_loss"), PRIOR)
    state = tuner.initial_state(default_search_space())
    record, state = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    assert [a.name for a in record.chosen] == [DECR_LR]
    assert state.space["learning_rate"] == default_search_space()["learning_rate"]
    ((name, low, high),) = added(state)[0].bounds
    assert name == "learning_rate" and high < PARAMS["learning_rate"]


def test_prior_guidance_widens_a_range_to_reach_the_preferred_region(symbolic):
    # The trial diverged at the initial range's lowest rate: the preferred rates lie below the
    # range, so the range widens down to them (it never narrows).
    tuner = controller(symbolic, FakeTrainer(lambda p, a, i: "nan_loss"), PRIOR)
    state = tuner.initial_state(default_search_space())
    _, state = tuner.run_iteration(0, {**PARAMS, "learning_rate": 1e-4}, state, AlwaysApply())
    ((_, low, high),) = added(state)[0].bounds
    assert high < 1e-4
    assert state.space["learning_rate"].low == pytest.approx(low)
    assert state.space["learning_rate"].high == default_search_space()["learning_rate"].high


def test_edit_guidance_edits_the_space(symbolic):
    tuner = controller(symbolic, FakeTrainer(lambda p, a, i: "nan_loss"), EDIT)
    state = tuner.initial_state(default_search_space())
    _, state = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    assert state.space["learning_rate"].high < PARAMS["learning_rate"] and state.preferences == ()


def test_one_action_per_training_applied_with_its_weight(symbolic):
    # Overfitting and underfitting together (the fake "both" curve) still apply one action.
    tuner = controller(symbolic, FakeTrainer(), EDIT)
    state = tuner.initial_state(default_search_space())
    record, _ = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    assert len(record.chosen) == 1
    declined, next_state = tuner.run_iteration(0, PARAMS, state, NeverApply())
    assert declined.chosen == () and next_state.space == state.space and next_state.architecture == state.architecture
    (skipped,) = declined.outcome.skipped
    assert skipped[0] == REG_L2 and "probability of applying" in skipped[1]


def test_under_prior_guidance_the_chosen_action_is_always_applied_as_a_preference_of_its_weight(symbolic):
    # The draw that declines an edit under `edit` (NeverApply: every draw is just below 1) does
    # not decline a preference: its weight is already its strength, so a low weight is a weak
    # preference, close to nothing.
    tuner = controller(symbolic, FakeTrainer(), PRIOR)
    state = tuner.initial_state(default_search_space())
    record, next_state = tuner.run_iteration(0, PARAMS, state, NeverApply())
    (chosen,) = record.chosen
    assert record.outcome.skipped == () and chosen.name == REG_L2
    (preference,) = added(next_state)
    assert preference.action == REG_L2 and preference.weight == pytest.approx(chosen.probability)
    # Rules that have learned low weights (the diagnosis' actions come out of ProbLog with them)
    # make a preference that barely pulls: outside its region the acquisition is barely damped.
    weak = replace(state, rule_weights=RuleWeights({key: 0.02 for key in state.rule_weights}))
    record, next_state = tuner.run_iteration(0, PARAMS, weak, NeverApply())
    (chosen,) = record.chosen
    (preference,) = added(next_state)
    assert chosen.probability == pytest.approx(0.02) and preference.weight == pytest.approx(0.02)
    assert preference.factor(PARAMS, Architecture()) in (1.0, pytest.approx(0.98))


def test_an_action_is_judged_against_the_trial_it_followed(symbolic):
    # Trial 0 overfits; reg_l2 follows. Trial 1 is worse than trial 0 but ...
    names = iter(["overfitting", "underfitting", "overfitting"])
    tuner = controller(symbolic, FakeTrainer(lambda p, a, i: next(names)), EDIT)
    state = tuner.initial_state(default_search_space())
    first, state = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    second, state = tuner.run_iteration(1, {**PARAMS, "l2_factor": 1e-4}, state, AlwaysApply())
    assert [(o.action, o.improved) for o in second.new_observations] == [(REG_L2, False)]
    # ... trial 2 beats trial 1 (the one its action followed) without beating the best so far.
    third, state = tuner.run_iteration(2, {**PARAMS, "l2_factor": 1e-4}, state, AlwaysApply())
    assert third.improved is False
    assert [o.improved for o in third.new_observations] == [True]


# --- rule learning that can learn -------------------------------------------------------------

def simulated_weights(effect: float, observations: int, seed: int, label: str) -> float:
    """The weight LFI learns for action(inc_neurons, underfitting) (prior 0.5) when applying it
    moves the next objective by `effect` standard deviations (negative helps)."""
    rng = np.random.default_rng(seed)
    initial = SymbolicBlock().initial_weights()
    evidence, best = [], rng.normal()
    for _ in range(observations):
        before = rng.normal()                    # the diagnosed trial
        after = rng.normal() + effect            # the trial the action led to
        judged_against = before if label == "counterfactual" else min(best, before)
        evidence.append(Observation("inc_neurons", UNDERFITTING, bool(after < judged_against)))
        best = min(best, before, after)
    return learn_weights(initial, evidence).weight("inc_neurons", UNDERFITTING)


def test_a_helpful_rule_rises_and_a_harmful_one_falls_within_20_observations():
    seeds = range(40)
    helpful = [simulated_weights(-0.5, 20, seed, "counterfactual") for seed in seeds]
    harmful = [simulated_weights(+0.5, 20, seed, "counterfactual") for seed in seeds]
    assert np.median(helpful) > 0.55 and np.median(harmful) < 0.45
    assert sum(w > 0.5 for w in helpful) >= 30 and sum(w < 0.5 for w in harmful) >= 30
    # The original label (beat the best so far) sinks even the helpful rule below its prior.
    best_so_far = [simulated_weights(-0.5, 20, seed, "best_so_far") for seed in seeds]
    assert np.median(best_so_far) < 0.5


# --- stuck at chance: the optimiser is a cause too ---------------------------------------------

def test_change_optimizer_drops_the_stuck_trainings_optimizer():
    from sdt.actions import ActionNotApplicable, apply_action
    space = default_search_space()
    params = {**PARAMS, "optimizer": "Adadelta"}
    edited, _, record = apply_action("change_optimizer", space, Architecture(), params, ArchitectureLimits(2, 3))
    assert edited["optimizer"].categories == ("Adam", "Adamax", "RMSprop")
    assert edited["optimizer"].domain_categories == space["optimizer"].domain_categories
    assert record.changes[0].before == list(space["optimizer"].categories) and "Adadelta" in record.description
    with pytest.raises(ActionNotApplicable):          # not among the choices any more
        apply_action("change_optimizer", edited, Architecture(), params, ArchitectureLimits(2, 3))
    alone = space.replace_dimension(replace(space["optimizer"], categories=("Adadelta",)))
    with pytest.raises(ActionNotApplicable):          # the only one left
        apply_action("change_optimizer", alone, Architecture(), params, ArchitectureLimits(2, 3))


def test_a_training_stuck_at_chance_leads_away_from_its_optimizer(symbolic):
    from sdt.core.records import TrainingResult
    from sdt.core.vocabulary import TrialStatus
    flat = {"loss": [2.3026, 2.3025, 2.3027, 2.3026], "accuracy": [0.10, 0.11, 0.10, 0.10],
            "val_loss": [2.3026, 2.3026, 2.3026, 2.3026], "val_accuracy": [0.10, 0.10, 0.10, 0.10]}

    def stuck(params, architecture, index):
        return TrainingResult(status=TrialStatus.COMPLETED, history=flat, val_loss=2.3026, val_accuracy=0.1,
                              best_epoch=3, epochs_run=4)

    tuner = controller(symbolic, stuck, PRIOR)
    state = tuner.initial_state(default_search_space())
    record, state = tuner.run_iteration(0, {**PARAMS, "optimizer": "Adadelta"}, state, AlwaysApply())
    assert record.diagnosis.problem_names() == ("stuck_at_chance",)
    assert [a.name for a in record.chosen] == ["change_optimizer"]
    assert added(state)[0].choices == (("optimizer", ("Adam", "Adamax", "RMSprop")),)
    assert state.space["optimizer"] == default_search_space()["optimizer"]     # still reachable
    # ...and leaves a lasting region to avoid: Adadelta up to ten times the stuck rate.
    avoided = added(state)[1]
    assert (avoided.avoid, avoided.lasting, avoided.problem) == (True, True, "stuck_at_chance")
    assert "keeps away from Adadelta at learning rates up to 0.01" in record.outcome.applied[0].description
    assert ControllerState.from_dict(state.to_dict()).preferences == state.preferences
    # Under the paper's edits the optimiser simply leaves the choices: no preference at all.
    tuner = controller(symbolic, stuck, EDIT)
    _, edited = tuner.run_iteration(0, {**PARAMS, "optimizer": "Adadelta"},
                                    tuner.initial_state(default_search_space()), AlwaysApply())
    assert edited.preferences == () and "Adadelta" not in edited.space["optimizer"].categories


def test_the_region_a_stuck_training_leaves_is_avoided_for_good_and_nothing_else_is():
    from sdt.space.preference import STUCK_AVOID_WEIGHT, avoided_after_stuck
    avoided = avoided_after_stuck(3, {**PARAMS, "optimizer": "Adadelta", "learning_rate": 5e-4})
    remedy = Preference("change_optimizer", "stuck_at_chance", 3, 0.8,
                        choices=(("optimizer", ("Adam", "Adamax", "RMSprop")),))
    again = {**PARAMS, "optimizer": "Adadelta", "learning_rate": 1e-3}      # a little higher: still stuck
    inside_weight = (1 - STUCK_AVOID_WEIGHT) ** 4
    for told in (4, 10, 100):
        assert prior_weight(again, Architecture(), [avoided], told) == pytest.approx(inside_weight)
    # The remedy's own preference fades as before: by the 14th training it is a factor of 0.5.
    assert prior_weight(again, Architecture(), [remedy], 14) > 0.5
    for elsewhere in ({**again, "learning_rate": 6e-3},                  # beyond ten times the rate
                      {**again, "optimizer": "Adam"}):                   # another optimiser
        assert prior_weight(elsewhere, Architecture(), [avoided], 4) == 1.0
    # Without an optimiser or a learning rate in the space there is nothing to say.
    assert avoided_after_stuck(0, {"batch_size": 32}) is None
    # Persisted whole; a preference stored before these fields reads back as a plain one.
    assert Preference.from_dict(avoided.to_dict()) == avoided
    old = {k: v for k, v in remedy.to_dict().items() if k not in ("avoid", "lasting")}
    assert Preference.from_dict(old) == remedy


def test_the_gp_keeps_out_of_the_avoided_region_however_promising_the_model_finds_it():
    from sdt.space.preference import avoided_after_stuck
    space = default_search_space()
    domain = Domain(space, 0, 0)
    avoided = avoided_after_stuck(0, {**PARAMS, "optimizer": "Adadelta", "learning_rate": 1e-4})
    state = SimpleNamespace(space=space, architecture=Architecture(), guidance=PRIOR, preferences=(avoided,))

    # The model's view: Adadelta a fifth better, everything noisy (as after an unlucky draw).
    optimizer = ConstrainedGPOptimizer(domain, n_initial_points=3, n_candidates=400)
    rng, noise = np.random.default_rng(0), np.random.default_rng(100)
    for params, _ in sample_candidates(SimpleNamespace(space=space, architecture=Architecture()), 12, rng):
        optimizer.tell(params, Architecture(),
                       0.5 - 0.2 * (params["optimizer"] == "Adadelta") + 0.1 * noise.normal())
    plain = SimpleNamespace(space=space, architecture=Architecture(), guidance=PRIOR, preferences=())
    asked = [optimizer.ask(s, np.random.default_rng([7, i])).params["optimizer"]
             for s in (plain, state) for i in range(4)]
    assert asked[:4].count("Adadelta") >= 3                       # without it the GP goes to Adadelta...
    assert asked[4:].count("Adadelta") == 0                       # ...with it never, at 12 trainings told


def test_a_slow_training_leads_away_from_adadelta_to_smaller_batches_or_to_higher_rates(symbolic):
    from sdt.core.records import TrainingResult
    from sdt.core.vocabulary import TrialStatus
    from tests.test_short_training_diagnoses import SLOW_ADADELTA

    def slow(params, architecture, index):
        return TrainingResult(status=TrialStatus.COMPLETED, history=SLOW_ADADELTA, val_loss=2.1971,
                              val_accuracy=0.1617, best_epoch=3, epochs_run=4)

    for optimizer, batch_size, action in (("Adadelta", 32, "change_optimizer"), ("Adam", 32, "inc_lr"),
                                          ("Adam", 200, "decr_batch_size")):
        tuner = controller(symbolic, slow, PRIOR)
        state = tuner.initial_state(default_search_space())
        params = {**PARAMS, "optimizer": optimizer, "batch_size": batch_size}
        record, state = tuner.run_iteration(0, params, state, AlwaysApply())
        assert record.diagnosis.problem_names() == ("low_lr",)
        assert [(a.name, a.problem) for a in record.chosen] == [(action, "low_lr")]
        if action == "change_optimizer":
            assert added(state)[0].choices == (("optimizer", ("Adam", "Adamax", "RMSprop")),)
            # ...and, the optimiser's step judged the cause, Adadelta at a lower rate or at a few
            # times this one is avoided for good; beyond ten times it the region ends.
            avoided = added(state)[1]
            assert (avoided.avoid, avoided.lasting, avoided.problem) == (True, True, "low_lr")
            assert "too slow for its optimiser: from now on the optimiser keeps away from Adadelta at " \
                   f"learning rates up to {10 * params['learning_rate']:.3g}" in record.outcome.applied[0].description
            for told in (2, 10, 50):
                far = prior_weight({**params, "learning_rate": params["learning_rate"] * 20}, Architecture(),
                                   added(state), told)
                for factor in (1 / 3, 1.2, 3):
                    near = prior_weight({**params, "learning_rate": params["learning_rate"] * factor},
                                        Architecture(), added(state), told)
                    assert near == pytest.approx((1 - avoided.weight) ** 4 * far)
            assert ControllerState.from_dict(state.to_dict()).preferences == state.preferences
        elif action == "inc_lr":
            assert added(state)[0].choices == () and added(state)[0].bounds[0][0] == "learning_rate"
        else:   # a large batch: more steps first, the whole batch range still reachable
            assert added(state)[0].bounds == (("batch_size", 16.0, 100.0),)
            assert (state.space["batch_size"].low, state.space["batch_size"].high) == (16, 256)
        if action != "change_optimizer":   # the batch or the rate may be the cause: nothing avoided
            assert not any(p.avoid for p in added(state))


def test_before_any_training_prior_guidance_keeps_away_from_an_optimiser_the_rules_say_needs_rates_near_one(
        symbolic, tmp_path):
    from sdt.core.errors import RulesError
    from sdt.symbolic.programs import DEFAULT_RULES_PATH
    space = default_search_space()
    for guidance in (PRIOR, "local"):
        state = controller(symbolic, FakeTrainer(), guidance).initial_state(space)
        (avoided,) = avoided_regions(state)
        assert (avoided.avoid, avoided.lasting, avoided.trial) == (True, True, BEFORE_TRAINING)
        assert ControllerState.from_dict(state.to_dict()).preferences == state.preferences
        for rate in (space["learning_rate"].low, space["learning_rate"].high, 5e-3):
            at = {**PARAMS, "learning_rate": rate}
            # Adadelta at the rates the others train at: 1e-4 as likely as another optimiser, for good.
            for told in (0, 1, 30):
                assert prior_weight({**at, "optimizer": "Adadelta"}, Architecture(), avoided_regions(state), told) \
                    == pytest.approx((1 - avoided.weight) ** 4)
                assert prior_weight(at, Architecture(), avoided_regions(state), told) == 1.0
        # Above the small rates (a range inc_lr widened) Adadelta is as likely as the others.
        assert prior_weight({**PARAMS, "optimizer": "Adadelta", "learning_rate": 0.05}, Architecture(),
                            avoided_regions(state), 1) == 1.0
        # The initial points are drawn from it: no Adadelta at the space's rates.
        draws = [draw_from_prior(state, 1, np.random.default_rng([7, i]))[0] for i in range(60)]
        assert not any(p["optimizer"] == "Adadelta" for p in draws)
        assert len({p["optimizer"] for p in draws}) == 3
        # The console says so before the first training.
        from pathlib import Path
        from sdt.cli.console import start_lines
        from sdt.run.observer import RunStart
        from sdt.space.preference import describe_avoided_rates
        lines = start_lines(RunStart(Path("run"), "digits", 0, 4, False,
                                     avoided_from_start=(describe_avoided_rates(avoided),)))
        assert "before any training the optimiser keeps away from Adadelta at learning rates up to 0.01 " \
               "(weight 0.90, not fading)" in lines[-1]
    # The paper's guidance edits the space only after a diagnosis.
    assert controller(symbolic, FakeTrainer(), EDIT).initial_state(space).preferences == ()
    # The knowledge is the rules file's: another optimiser declared slow is avoided too...
    rules = DEFAULT_RULES_PATH.read_text()
    assert "small_step_at_small_rates(adadelta)." in rules
    both = tmp_path / "both.pl"
    both.write_text(rules.replace("small_step_at_small_rates(adadelta).",
                                  "small_step_at_small_rates(adadelta).\nsmall_step_at_small_rates(rmsprop)."))
    state = controller(SymbolicBlock(rules_path=both), FakeTrainer(), PRIOR).initial_state(space)
    assert sorted(p.choices[0][1][0] for p in avoided_regions(state)) == ["Adadelta", "RMSprop"]
    # ...none declared, none avoided; an uncertain declaration is refused, naming the file.
    none = tmp_path / "none.pl"
    none.write_text(rules.replace("small_step_at_small_rates(adadelta).", "small_step_at_small_rates(sgd_at_1)."))
    assert avoided_regions(controller(SymbolicBlock(rules_path=none), FakeTrainer(), PRIOR).initial_state(space)) == ()
    uncertain = tmp_path / "uncertain.pl"
    uncertain.write_text(rules.replace("small_step_at_small_rates(adadelta).", "0.5::small_step_at_small_rates(adadelta)."))
    with pytest.raises(RulesError, match="uncertain.pl.*small_step_at_small_rates/1 must be certain"):
        SymbolicBlock(rules_path=uncertain)
    # A space whose rates all lie above the small ones avoids nothing.
    high = space.replace_dimension(replace(space["learning_rate"], low=0.05, high=1.0, domain_low=0.05, domain_high=1.0))
    assert avoided_regions(controller(symbolic, FakeTrainer(), PRIOR).initial_state(high)) == ()


def start_of(state):
    from sdt.space.preference import START
    (start,) = [p for p in state.preferences if p.action == START]
    return start


def test_the_first_training_is_drawn_where_the_rules_file_says_a_practitioner_starts(symbolic, tmp_path):
    from pathlib import Path
    from sdt.cli.console import start_lines
    from sdt.core.errors import RulesError
    from sdt.run.observer import RunStart
    from sdt.space.preference import START, describe_start
    from sdt.symbolic.programs import DEFAULT_RULES_PATH
    space = default_search_space()
    for guidance in (PRIOR, "local"):
        tuner = controller(symbolic, FakeTrainer(), guidance)
        state = tuner.initial_state(space)
        start = start_of(state)
        # Adam at 1e-3 and batches of 32 (start_with/2), within a tenth of each range, clipped to it.
        assert start.choices == (("optimizer", ("Adam",)),) and (start.avoid, start.next_only) == (False, True)
        (rate, rate_low, rate_high), (batch, batch_low, batch_high) = start.bounds
        assert (rate, batch) == ("learning_rate", "batch_size")
        assert rate_low == pytest.approx(1e-3 / 10 ** 0.1) and rate_high == pytest.approx(1e-3)
        assert (batch_low, batch_high) == (16.0, 56.0)
        assert ControllerState.from_dict(state.to_dict()).preferences == state.preferences
        # The first training is drawn there; every other hyper-parameter as for any initial point.
        draws = [draw_from_prior(state, 0, np.random.default_rng([11, i]))[0] for i in range(40)]
        assert all(p["optimizer"] == "Adam" and rate_low <= p["learning_rate"] <= rate_high
                   and p["batch_size"] <= 56 for p in draws)
        assert len({p["activation"] for p in draws}) == 3 and len({p["unit_d"] for p in draws}) > 30
        # It guides the first training only: told one, the later initial points do not feel it...
        later = [draw_from_prior(state, 1, np.random.default_rng([11, i]))[0] for i in range(40)]
        assert len({p["optimizer"] for p in later}) == 3 and max(p["batch_size"] for p in later) > 100
        assert prior_weight({**PARAMS, "optimizer": "RMSprop", "batch_size": 200}, Architecture(),
                            state.preferences, 1) == 1.0
        # ...and the state after the first training no longer holds it.
        _, after = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
        assert not any(p.action == START for p in after.preferences)
        # The GP's first proposal says where it comes from.
        optimizer = ConstrainedGPOptimizer(Domain(space, 0, 0), n_initial_points=3)
        proposal = optimizer.ask(state, np.random.default_rng(0))
        assert proposal.params["optimizer"] == "Adam"
        assert "drawn near where the rules file starts (start_with)" in proposal.decision.summary
        # The console says so before the first training.
        lines = start_lines(RunStart(Path("run"), "digits", 0, 4, False, starts_near=describe_start(start)))
        assert lines[-1] == ("the first training is drawn where a practitioner starts: optimizer Adam, "
                             "learning_rate 0.000794..0.001, batch_size 16..56 (start_with in the rules file)")
    # The paper's guidance and the baselines start at random.
    assert controller(symbolic, FakeTrainer(), EDIT).initial_state(space).preferences == ()
    # The values are the rules file's: another start moves the region; a category the space does
    # not offer and a hyper-parameter it lacks constrain nothing; without the facts, no region.
    rules = DEFAULT_RULES_PATH.read_text()
    facts = "start_with(optimizer, adam).\nstart_with(learning_rate, 0.001).\nstart_with(batch_size, 32)."
    assert facts in rules

    def start_from(text):
        path = tmp_path / "start.pl"
        path.write_text(rules.replace(facts, text))
        return controller(SymbolicBlock(rules_path=path), FakeTrainer(), PRIOR).initial_state(space)

    other = start_of(start_from("start_with(optimizer, rmsprop).\nstart_with(learning_rate, 3.0e-4)."))
    assert other.choices == (("optimizer", ("RMSprop",)),)
    assert other.bounds == (("learning_rate", pytest.approx(3e-4 / 10 ** 0.1), pytest.approx(3e-4 * 10 ** 0.1)),)
    assert start_of(start_from("start_with(optimizer, sgd).\nstart_with(momentum, 0.9).\nstart_with(batch_size, 32)."
                               )).bounds == (("batch_size", 16.0, 56.0),)
    assert start_of(start_from("start_with(optimizer, sgd).\nstart_with(batch_size, 32).")).choices == ()
    assert not any(p.action == START for p in start_from("").preferences)
    assert not any(p.action == START for p in start_from("start_with(optimizer, sgd).").preferences)
    # Facts that are uncertain, twice given or neither a category nor a number are refused, naming the file.
    for bad, message in (("0.5::start_with(optimizer, adam).", "start_with/2 must be certain"),
                         ("start_with(optimizer, adam).\nstart_with(optimizer, rmsprop).", "gives optimizer twice"),
                         ("start_with(optimizer, f(adam)).", "must give a category"),
                         ("start_with(3, adam).", "must name a hyper-parameter")):
        with pytest.raises(RulesError, match=f"start.pl.*({message})"):
            start_from(bad)
