"""The constrained GP optimiser: every past trial keeps informing the GP across space edits."""

import math

from types import SimpleNamespace

import numpy as np
import pytest

from sdt.core.records import ARCHITECTURE_FEATURES
from sdt.space.domain import Domain, sample_params
from sdt.strategies.gaussian_process import ConstrainedGPOptimizer
from sdt.core.records import Architecture
from sdt.space.search_space import all_potential_dimensions, default_search_space, l2_factor_dimension


@pytest.fixture
def space():
    return default_search_space(training_size=1000)


@pytest.fixture
def domain(space):
    return Domain(all_potential_dimensions(space, 2, 2), 2, 2)


def objective(params):
    # A smooth function with its optimum at learning_rate = 10**-3.3, small dropout.
    return (math.log10(params["learning_rate"]) + 3.3) ** 2 + params["dr_f"]


def test_encode_marks_absent_hyper_parameters_inactive(domain, space):
    params = sample_params(space, 1, np.random.default_rng(0))[0]
    point = domain.encode(params, Architecture())
    names = domain.coordinate_names
    assert len(point) == len(names)
    assert point[names.index("l2_factor")] == domain.hyper_parameters["l2_factor"].domain_low
    assert point[-len(ARCHITECTURE_FEATURES):] == [0] * len(ARCHITECTURE_FEATURES)
    with_l2 = domain.encode({**params, "l2_factor": 3e-4}, Architecture(l2=True, batch_norm=True, extra_conv_blocks=1))
    assert with_l2[names.index("l2_factor")] == 3e-4
    assert with_l2[-5:] == [1, 0, 1, 1, 0]


def test_samples_respect_current_bounds(space):
    narrowed = space.replace_dimension(space["learning_rate"].with_bounds(2e-4, 3e-4))
    for params in sample_params(narrowed, 200, np.random.default_rng(1)):
        assert narrowed.contains(params)
        assert type(params["batch_size"]) is int


def test_space_edit_keeps_every_past_trial(domain, space):
    optimizer = ConstrainedGPOptimizer(domain, n_initial_points=3, n_candidates=500)
    rng = np.random.default_rng(0)
    told = []
    for _ in range(6):
        params = optimizer.ask(SimpleNamespace(space=space, architecture=Architecture()), rng).params
        optimizer.tell(params, Architecture(), objective(params))
        told.append(params)
    # An action edits the space: learning rate moves down, L2 is switched on with a new dimension.
    edited = space.replace_dimension(space["learning_rate"].with_bounds(1e-5, 1e-4))
    edited = edited.replace_dimension(l2_factor_dimension())
    architecture = Architecture(l2=True, batch_norm=True)
    proposal = optimizer.ask(SimpleNamespace(space=edited, architecture=architecture), rng).params
    assert edited.contains(proposal)                  # the candidate honours the edited space
    optimizer.tell(proposal, architecture, objective(proposal))
    # Nothing was dropped: all seven points are in the GP's data, including those outside the new space.
    assert len(optimizer.points) == 7
    assert sum(not edited.contains(p) for p in told) > 0
    # ...and the GP still knows the old points' values (it interpolates them closely).
    mean, _ = optimizer.predict(told[0], Architecture())
    assert mean == pytest.approx(objective(told[0]), abs=0.15)


def test_gp_finds_better_points_than_its_initial_samples(domain, space):
    optimizer = ConstrainedGPOptimizer(domain, n_initial_points=4, n_candidates=2000)
    rng = np.random.default_rng(3)
    values = []
    for _ in range(14):
        params = optimizer.ask(SimpleNamespace(space=space, architecture=Architecture()), rng).params
        values.append(objective(params))
        optimizer.tell(params, Architecture(), values[-1])
    assert min(values[4:]) < min(values[:4])


def test_tell_refuses_non_finite(domain, space):
    optimizer = ConstrainedGPOptimizer(domain)
    params = sample_params(space, 1, np.random.default_rng(0))[0]
    with pytest.raises(ValueError, match="finite"):
        optimizer.tell(params, Architecture(), float("nan"))


def test_same_seed_same_proposals(domain, space):
    def proposals():
        optimizer = ConstrainedGPOptimizer(domain, n_initial_points=2, n_candidates=300)
        out = []
        for i in range(4):
            params = optimizer.ask(SimpleNamespace(space=space, architecture=Architecture()), np.random.default_rng([7, i])).params
            optimizer.tell(params, Architecture(), objective(params))
            out.append(params)
        return out
    assert proposals() == proposals()


def test_modelled_objectives_replace_what_learned_nothing_by_the_worst_that_learned():
    from sdt.strategies.gaussian_process import modelled_objectives
    bound = 0.9 * math.log(10)
    # Beyond the worst that learned by the range of those that learned: the worst, on their scale.
    assert modelled_objectives([0.4, 2.3, 0.8, 6.9], bound) == ([0.4, pytest.approx(1.2), 0.8, pytest.approx(1.2)],
                                                                2, pytest.approx(1.2))
    assert modelled_objectives([0.5, 2.3, 1.9], bound)[0][1] == pytest.approx(bound)   # never above the bound
    assert modelled_objectives([0.4, 2.3, 0.8], None) == ([0.4, 2.3, 0.8], 0, None)     # plain BO: as told
    assert modelled_objectives([0.4, 2.3], bound) == ([0.4, 2.3], 0, None)      # one that learned: no scale yet
    assert modelled_objectives([2.3, 2.31], bound) == ([2.3, 2.31], 0, None)    # nothing learned yet
    assert modelled_objectives([0.4, 0.5], bound) == ([0.4, 0.5], 0, None)


def test_a_training_that_learned_nothing_does_not_set_the_gps_scale(domain, space):
    # Five trainings that learned (objectives 0.30 to 0.32 around a smooth optimum) and one stuck at
    # chance (ln 10 = 2.3). Told as it is, the stuck one makes the GP uncertain everywhere; under
    # symbolic tuning (the state's bound) it is modelled beyond the worst that learned, on their scale.
    rng = np.random.default_rng(5)
    trained = sample_params(space, 6, rng)
    objectives = [0.3 + 0.1 * objective(p) / 4 for p in trained[:5]] + [math.log(10)]

    def decision(bound):
        optimizer = ConstrainedGPOptimizer(domain, n_initial_points=3, n_candidates=300)
        for params, value in zip(trained, objectives):
            optimizer.tell(params, Architecture(), value)
        state = SimpleNamespace(space=space, architecture=Architecture(), learned_nothing_objective=bound)
        return optimizer.ask(state, np.random.default_rng(1)).decision

    plain, modelled = decision(None), decision(0.9 * math.log(10))
    assert "learned_nothing" not in plain.facts and "learned nothing" not in plain.summary
    assert modelled.facts["learned_nothing"] == 1
    learned = objectives[:5]
    assert modelled.facts["modelled_as"] == pytest.approx(2 * max(learned) - min(learned))
    assert "1 training that learned nothing modelled as" in modelled.summary
    assert modelled.facts["best_objective"] == plain.facts["best_objective"] == min(objectives)
    # The GP's uncertainty at its proposal is on the scale of the trainings that learned.
    assert modelled.facts["predicted_std"] < 0.5 * plain.facts["predicted_std"]
