"""The strategies a run can use, by name: a sampler (sdt/strategies/base.py) and whether the
symbolic block tunes the space and network after each training.

The symbolic tuning is a component, not a sampler: `sdt` is the GP sampler with it, `bo` the
same sampler without it. It combines with any sampler that samples from the edited space
(`follows_edited_space`); `random-sdt` is random search with it, which separates what the
symbolic edits add from what the GP adds.

On resume the stored trials are replayed through `tell` alone, in order, with no `ask`: a
strategy's state must be a function of the told trials (and of the per-trial random
generators, which the loop derives from the run seed and the trial index).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from sdt.core.errors import ConfigurationError
from sdt.space.domain import Domain
from sdt.strategies.base import Option, Strategy, StrategySetup


@dataclass(frozen=True)
class StrategyEntry:
    """One name of `--strategy`: which sampler, with or without the symbolic tuning."""

    sampler: str          # "module:Class" inside sdt.strategies (imported on use: Optuna is optional)
    symbolic: bool        # the symbolic block edits the space and network after each training
    description: str

    def sampler_class(self) -> type[Strategy]:
        module, _, name = self.sampler.partition(":")
        return getattr(importlib.import_module(f"sdt.strategies.{module}"), name)


STRATEGIES: dict[str, StrategyEntry] = {
    "sdt": StrategyEntry("gaussian_process:GaussianProcessStrategy", True,
                         "Symbolic DNN-Tuner: Bayesian optimisation + diagnosis + tuning actions (default)"),
    "bo": StrategyEntry("gaussian_process:GaussianProcessStrategy", False,
                        "plain Bayesian optimisation on the fixed initial space (the paper's baseline)"),
    "random": StrategyEntry("random_search:RandomStrategy", False, "random search of the initial space"),
    "random-sdt": StrategyEntry("random_search:RandomStrategy", True,
                                "random search steered by the diagnosis and tuning actions"),
    "tpe": StrategyEntry("tpe:OptunaTPEStrategy", False,
                         "Optuna's TPE sampler on the initial space (needs optuna)"),
    "meta-lr": StrategyEntry("meta_lr:MetaLearningRateStrategy", False,
                             "probabilistic learning-rate adjustment, other hyper-parameters at the "
                             "middle of their ranges"),
    "evolution": StrategyEntry("evolution:EvolutionStrategy", False,
                               "evolutionary search of hyper-parameters and architecture"),
}

# The samplers whose options are declared (imported here: none of them needs an optional package
# at import time).
_SAMPLERS_WITH_OPTIONS = ("meta_lr:MetaLearningRateStrategy", "evolution:EvolutionStrategy")


def entry(name: str) -> StrategyEntry:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigurationError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}") from None


def all_options() -> dict[str, Option]:
    """Every declared strategy option by name (the command line and RunConfig derive from these)."""
    options: dict[str, Option] = {}
    for name, strategy in STRATEGIES.items():
        if strategy.sampler in _SAMPLERS_WITH_OPTIONS:
            for option in strategy.sampler_class().options:
                options.setdefault(option.name, option)
    return options


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options strategy `name` reads, defaults filled in and checked; the others' are ignored
    (a run of one strategy may carry another's settings, as the command line always does)."""
    sampler = entry(name).sampler_class()
    unknown = sorted(set(options or {}) - set(all_options()))
    if unknown:
        raise ConfigurationError(f"unknown strategy option(s): {', '.join(unknown)}")
    own = {option.name for option in sampler.options}
    return sampler.check_options({key: value for key, value in (options or {}).items() if key in own})


def default_objective(name: str) -> str:
    """The objective strategy `name` optimises when the run names none (val_loss but for meta-lr)."""
    return entry(name).sampler_class().default_objective


def tunes_network(name: str) -> bool:
    return entry(name).symbolic


def uses_full_domain(name: str) -> bool:
    """Whether the run's domain must cover every dimension and architecture feature a network can have."""
    strategy = entry(name)
    return strategy.symbolic or strategy.sampler_class().searches_architecture


def make_strategy(name: str, domain: Domain, initial_points: int, options: Mapping[str, Any] | None = None,
                  budget: int | None = None, unsupported_actions: frozenset[str] = frozenset(),
                  random_weight_losses=None) -> Strategy:
    """Build strategy `name` for one run; `options` are its declared options (checked here);
    `random_weight_losses`: the run's training-free estimate (StrategySetup), if it has one."""
    strategy = entry(name)
    sampler = strategy.sampler_class()
    if strategy.symbolic and not sampler.follows_edited_space:
        raise ConfigurationError(f"strategy {name!r}: its sampler does not follow the edited space")
    return sampler.build(StrategySetup(domain, initial_points, budget, frozenset(unsupported_actions),
                                       check_options(name, options), random_weight_losses))
