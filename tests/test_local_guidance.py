"""`local` guidance: an action on the run's best training prefers that training with the edit
(its neighbourhood), candidates reach the neighbourhood, the prior draw stays a draw from the prior."""

from types import SimpleNamespace

import numpy as np
import pytest

from sdt.actions import ArchitectureLimits
from sdt.core.records import Architecture
from sdt.core.vocabulary import DECR_LR, HIGH_LR, OVERFITTING, REG_L2, VAL_LOSS
from sdt.run.controller import Controller, ControllerState, Objective
from sdt.space.domain import Domain
from sdt.space.preference import (LOCAL, NEIGHBOURHOOD_WIDTH, PRIOR, REGION_CANDIDATE_SHARE, Preference,
                                  draw_from_prior, neighbourhood, prior_weight, region_share, sample_candidates)
from sdt.space.search_space import default_search_space
from sdt.strategies.gaussian_process import ConstrainedGPOptimizer
from sdt.symbolic.block import SymbolicBlock
from tests.fake_training import AlwaysApply, FakeTrainer
from tests.test_guidance import added

PARAMS = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 64, "unit_d": 300, "dr_f": 0.2, "learning_rate": 5e-4,
          "batch_size": 100, "optimizer": "Adam", "activation": "relu"}
L2_ON = Preference(REG_L2, OVERFITTING, 0, 0.9, minimum=(("l2", 1),))


@pytest.fixture(scope="module")
def symbolic():
    return SymbolicBlock()


def local_state(preferences, space=None):
    space = space or default_search_space()
    return SimpleNamespace(space=space, architecture=Architecture(l2=True, extra_dense_layers=1),
                           guidance=LOCAL, preferences=tuple(preferences))


def test_a_neighbourhood_is_the_action_applied_to_the_diagnosed_training():
    space = default_search_space()
    near = neighbourhood(L2_ON, PARAMS, Architecture(), space)
    bounds = {name: (low, high) for name, low, high in near.bounds}
    # Every numeric hyper-parameter the training used is held in a band around its value...
    assert set(bounds) == {name for name, value in PARAMS.items() if not isinstance(value, str)}
    low, high = bounds["learning_rate"]
    assert low < PARAMS["learning_rate"] < high and high / low < 2
    span = space["batch_size"].high - space["batch_size"].low
    assert bounds["batch_size"][0] <= 100 <= bounds["batch_size"][1]
    assert bounds["batch_size"][1] - bounds["batch_size"][0] <= 2 * NEIGHBOURHOOD_WIDTH * span + 2
    # ...each category kept, the edit made, and the rest of the network as it was trained.
    assert dict(near.choices) == {"optimizer": ("Adam",), "activation": ("relu",)}
    assert dict(near.minimum)["l2"] == dict(near.maximum)["l2"] == 1
    assert dict(near.maximum)["extra_dense_layers"] == 0
    assert near.contains({**PARAMS, "l2_factor": 1e-4}, Architecture(l2=True))
    assert not near.contains(PARAMS, Architecture())                            # without the edit
    assert not near.contains(PARAMS, Architecture(l2=True, extra_dense_layers=1))  # another network
    assert not near.contains({**PARAMS, "optimizer": "SGD"}, Architecture(l2=True))
    assert not near.contains({**PARAMS, "learning_rate": 1e-4}, Architecture(l2=True))
    # The action's own region is kept where it constrains a hyper-parameter.
    lower = Preference(DECR_LR, HIGH_LR, 0, 0.9, bounds=(("learning_rate", 1e-5, 2e-4),))
    assert dict((n, (lo, hi)) for n, lo, hi in neighbourhood(lower, PARAMS, Architecture(), space).bounds)[
        "learning_rate"] == (1e-5, 2e-4)
    assert Preference.from_dict(near.to_dict()) == near


def test_candidates_reach_a_neighbourhood_that_uniform_draws_miss():
    space = default_search_space()
    near = neighbourhood(L2_ON, PARAMS, Architecture(), space)
    state = local_state([near], space)
    assert region_share(near, space, state.architecture) * 5000 < 1   # one in millions
    candidates = sample_candidates(state, 5000, np.random.default_rng(0))
    inside = [c for c in candidates if near.contains(*c)]
    assert len(inside) >= REGION_CANDIDATE_SHARE * 5000
    # A region uniform draws reach often gets no extra candidates (prior guidance is unchanged).
    wide = local_state([L2_ON], space)
    assert len(sample_candidates(wide, 5000, np.random.default_rng(0))) == 5000


def test_the_draw_from_the_prior_reaches_a_strong_neighbourhood_and_leaves_a_faded_one():
    space = default_search_space()
    near = neighbourhood(L2_ON, PARAMS, Architecture(), space)
    strong, faded = replace_weight(near, 0.9), replace_weight(near, 0.0001)
    draws = [draw_from_prior(local_state([strong], space), 1, np.random.default_rng([3, i])) for i in range(30)]
    assert sum(near.contains(*d) for d in draws) >= 25
    # A preference of almost no weight leaves the region its share of the candidates (5 %).
    draws = [draw_from_prior(local_state([faded], space), 1, np.random.default_rng([3, i])) for i in range(60)]
    assert sum(near.contains(*d) for d in draws) <= 10


def replace_weight(preference, weight):
    return Preference.from_dict({**preference.to_dict(), "weight": weight})


def test_the_optimiser_proposes_the_diagnosed_training_with_the_edit():
    space = default_search_space()
    domain = Domain(space, 0, 3)
    optimizer = ConstrainedGPOptimizer(domain, n_initial_points=3, n_candidates=2000)
    rng = np.random.default_rng(4)
    state = local_state([], space)
    for i in range(4):
        params, architecture = sample_candidates(state, 1, rng)[0]
        optimizer.tell(params, architecture, 1.0 + 0.1 * i)
    near = neighbourhood(Preference(REG_L2, OVERFITTING, 3, 0.9, minimum=(("l2", 1),)), PARAMS, Architecture(), space)
    proposal = optimizer.ask(local_state([near], space), np.random.default_rng(1))
    assert near.contains(proposal.params, proposal.architecture)
    assert proposal.architecture.l2 and proposal.params["optimizer"] == "Adam"


def controller(symbolic, guidance, history_for):
    return Controller(FakeTrainer(history_for), symbolic, Objective(VAL_LOSS, 10), ArchitectureLimits(2, 3),
                      guidance=guidance)


def test_local_guidance_prefers_the_neighbourhood_of_the_runs_best_training_only(symbolic):
    tuner = controller(symbolic, LOCAL, lambda p, a, i: "overfitting")
    state = tuner.initial_state(default_search_space())
    record, state = tuner.run_iteration(0, PARAMS, state, AlwaysApply())
    assert [a.name for a in record.chosen] == [REG_L2]
    region, preference = added(state)
    assert preference.contains({**PARAMS, "l2_factor": 1e-4}, Architecture(l2=True))
    assert not preference.contains({**PARAMS, "activation": "elu"}, Architecture(l2=True))
    assert "near trial 0" in record.outcome.applied[0].description
    assert ControllerState.from_dict(state.to_dict()) == state
    # The neighbourhood guides the next training only; the action's own region fades as usual.
    elsewhere = ({**PARAMS, "activation": "elu", "l2_factor": 1e-4}, Architecture(l2=True))
    assert (preference.next_only, region.next_only, region.maximum) == (True, False, ())
    assert prior_weight(*elsewhere, [preference], trials_told=1) == pytest.approx(0.1 ** 4)
    assert prior_weight(*elsewhere, [preference], trials_told=2) == 1.0
    assert prior_weight(({**PARAMS, "activation": "elu"}), Architecture(), [region], trials_told=2) < 1.0
    # A worse training (a learning rate further from 1e-3 raises the fake validation loss)
    # gets prior guidance's region alone.
    worse = {**PARAMS, "learning_rate": 1e-4}
    record, state = tuner.run_iteration(1, worse, state, AlwaysApply())
    assert record.objective > state.best_objective
    assert added(state)[2].action == record.chosen[0].name and len(added(state)) == 3
    assert added(state)[2].maximum == ()
    assert "near trial" not in record.outcome.applied[0].description


def test_prior_guidance_keeps_the_actions_region_alone(symbolic):
    tuner = controller(symbolic, PRIOR, lambda p, a, i: "overfitting")
    _, state = tuner.run_iteration(0, PARAMS, tuner.initial_state(default_search_space()), AlwaysApply())
    (preference,) = added(state)
    assert preference.minimum == (("l2", 1),) and preference.bounds == () and preference.maximum == ()


def test_a_best_training_that_learned_nothing_gets_no_neighbourhood(symbolic):
    """Trial 0 stuck at chance is the run's best after one trial, but its values say nothing of
    where good trainings lie: its remedy gets prior guidance's region alone."""
    chance = float(np.log(10))
    stuck = {"loss": [chance + 0.0002 * (-1) ** i for i in range(6)], "accuracy": [0.1] * 6,
             "val_loss": [chance] * 6, "val_accuracy": [0.1] * 6}
    tuner = controller(symbolic, LOCAL, lambda p, a, i: stuck if p["optimizer"] == "Adadelta" else "overfitting")
    state = tuner.initial_state(default_search_space())
    record, state = tuner.run_iteration(0, {**PARAMS, "optimizer": "Adadelta"}, state, AlwaysApply())
    assert record.diagnosis.problem_names() == ("stuck_at_chance",)
    assert record.objective == state.best_objective            # the run's best so far...
    preference, avoided = added(state)                    # the remedy, and the lasting region to avoid
    assert preference.action == "change_optimizer" and avoided.avoid
    assert preference.bounds == () and preference.maximum == ()  # ...yet no neighbourhood
    assert dict(preference.choices)["optimizer"] == ("Adam", "Adamax", "RMSprop")
    assert "near trial" not in record.outcome.applied[0].description
    # The next best training, which learned, gets its neighbourhood.
    record, state = tuner.run_iteration(1, PARAMS, state, AlwaysApply())
    assert "near trial 1" in record.outcome.applied[0].description
    assert added(state)[3].maximum != () and added(state)[3].next_only
