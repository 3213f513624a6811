"""The declared strategy interface: options declared once, samplers combined with the symbolic tuning."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sdt.cli.main import build_parser
from sdt.core.errors import ConfigurationError
from sdt.core.records import ARCHITECTURE_FEATURES, Architecture
from sdt.run import loop as tuner
from sdt.space.domain import Domain
from sdt.space.search_space import all_potential_dimensions, default_search_space
from sdt.strategies import registry
from sdt.strategies.base import Strategy
from sdt.strategies.random_search import RandomStrategy
from tests.fake_training import FakeTrainer


def domain() -> Domain:
    """A domain every strategy can use: the space plus every dimension a network feature reads."""
    return Domain(all_potential_dimensions(default_search_space(training_size=1000), 0, 0), 0, 0)


def test_every_registered_sampler_is_a_strategy_and_builds():
    for name, entry in registry.STRATEGIES.items():
        if name == "tpe":
            pytest.importorskip("optuna")
        sampler = entry.sampler_class()
        assert issubclass(sampler, Strategy)
        strategy = registry.make_strategy(name, domain(), 2, budget=5)
        assert isinstance(strategy, sampler) and strategy.finished is False


def test_command_line_flags_derive_from_the_declared_options():
    options = registry.all_options()
    assert {"meta_lr_step_factor", "meta_lr_p_eps", "meta_lr_patience", "population_size",
            "tournament_size"} <= set(options)
    parser_flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert {option.flag for option in options.values()} <= parser_flags
    args = build_parser().parse_args(["--strategy", "evolution", "--population-size", "7"])
    assert args.population_size == 7 and args.tournament_size is None   # unset: the declared default applies


def test_options_are_checked_with_the_flag_named():
    with pytest.raises(ConfigurationError, match="--meta-lr-patience must be >= 1, got 0"):
        registry.make_strategy("meta-lr", domain(), 2, {"meta_lr_patience": 0})
    with pytest.raises(ConfigurationError, match="--population-size must be int"):
        registry.check_options("evolution", {"population_size": "many"})
    with pytest.raises(ConfigurationError, match="unknown strategy option"):
        tuner.RunConfig(strategy_options={"no_such_option": 1}).validate()
    # another strategy's options are carried, not refused (the command line always passes them)
    assert registry.check_options("bo", {"population_size": 9}) == {}


def test_defaults_fill_in_what_is_not_given():
    strategy = registry.make_strategy("meta-lr", domain(), 2, {"meta_lr_patience": 3})
    declared = {option.name: option.default for option in strategy.options}
    assert (strategy.step_factor, strategy.patience) == (declared["meta_lr_step_factor"], 3)


@pytest.mark.parametrize("budget, population", [(None, 6), (4, 3), (8, 3), (16, 5), (30, 10), (90, 10)])
def test_evolutions_default_population_leaves_most_of_the_budget_to_evolution(budget, population):
    strategy = registry.make_strategy("evolution", domain(), 2, {"tournament_size": 3}, budget=budget)
    assert (strategy.population_size, strategy.tournament_size) == (population, 3)
    if budget is not None and budget >= 8:
        assert budget - population >= budget * 2 // 3 - 1     # at least about two thirds are children


def test_a_tournament_larger_than_the_derived_population_is_refused_with_a_hint():
    with pytest.raises(ConfigurationError, match="--tournament-size .*set --population-size"):
        registry.make_strategy("evolution", domain(), 2, {"tournament_size": 5}, budget=8)


def test_unknown_strategy_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="--strategy must be one of"):
        tuner.RunConfig(strategy="hyperband").validate()


def test_symbolic_tuning_only_combines_with_a_sampler_that_reads_the_edited_space(monkeypatch):
    monkeypatch.setitem(registry.STRATEGIES, "evolution-sdt",
                        registry.StrategyEntry("evolution:EvolutionStrategy", True, "not possible"))
    with pytest.raises(ConfigurationError, match="does not follow the edited space"):
        registry.make_strategy("evolution-sdt", domain(), 2)


def test_random_search_samples_the_edited_space():
    space = default_search_space(training_size=1000)
    narrowed = space.replace_dimension(space["learning_rate"].with_bounds(2e-4, 3e-4))
    strategy = RandomStrategy()
    for index in range(20):
        params = strategy.ask(SimpleNamespace(space=narrowed, architecture=Architecture()),
                              np.random.default_rng(index)).params
        assert 2e-4 <= params["learning_rate"] <= 3e-4


def test_random_search_with_the_symbolic_tuning_runs_end_to_end(tmp_path, monkeypatch):
    """random-sdt: the diagnosis edits the space and the random sampler draws from the edits."""
    asked = []
    original_ask = RandomStrategy.ask

    def recording_ask(self, state, rng):
        proposal = original_ask(self, state, rng)
        asked.append((state.space, proposal.params))
        return proposal

    monkeypatch.setattr(RandomStrategy, "ask", recording_ask)
    config = tuner.RunConfig(dataset="digits", max_evals=5, epochs=3, seed=1, strategy="random-sdt")
    trainer = FakeTrainer()   # every training overfits
    tuner.run(config, tmp_path / "run", make_train=lambda context, verbose: trainer)
    initial_space = asked[0][0]
    assert any(space != initial_space for space, _ in asked[1:]), "the sampler never saw an edited space"
    for space, params in asked:
        assert space.contains(params)
    assert [call[0] for call in trainer.calls] == [params for _, params in asked]


def test_domain_coordinates_follow_the_declared_features():
    d = Domain(default_search_space(training_size=1000), 2, 1)
    assert d.coordinate_names[-len(ARCHITECTURE_FEATURES):] == [f.name for f in ARCHITECTURE_FEATURES]
    bounds = dict(d.architecture_bounds())
    assert (bounds["extra_conv_blocks"], bounds["extra_dense_layers"], bounds["l2"], bounds["augmentation"]) == (2, 1, 1, 1)
    point = d.encode({}, Architecture(extra_conv_blocks=2, augmentation=True))
    assert dict(zip(d.coordinate_names[-len(ARCHITECTURE_FEATURES):], point[-len(ARCHITECTURE_FEATURES):])) == {
        f.name: {"extra_conv_blocks": 2, "augmentation": 1}.get(f.name, 0) for f in ARCHITECTURE_FEATURES}
