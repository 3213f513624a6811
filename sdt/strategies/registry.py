"""Strategies: what to try next. Every strategy serves the same trainer and controller.

A strategy is an ask/tell object:

- `ask(state, rng) -> (params, architecture)`: the next training. Strategies that follow the
  symbolic block propose params inside `state.space` and return `state.architecture`;
  strategies that search architectures themselves (evolution) return their own.
- `tell(params, architecture, objective)`: a finished training (objective finite, lower is
  better). On resume the stored trials are replayed through `tell` alone, in order, with no
  `ask`: a strategy's state must be a function of the told trials (and of the per-trial
  random generators, which the loop derives from the run seed and the trial index).
- `point(params, architecture)`: the coordinates stored with the trial.
- `finished` (bool attribute): True when the strategy wants no more trainings (the loop
  then stops before the budget).

Strategies are registered by name in `STRATEGIES` as (factory, tunes_network): the factory
is called `factory(domain, initial_points, options)`, where `options` is a dict of the run's
strategy settings (`STRATEGY_OPTIONS` lists them with their defaults; a factory reads those it
needs); `tunes_network` says whether the controller applies the symbolic tuning actions for
it. `SEARCHES_ARCHITECTURE` names the strategies that choose architectures themselves: their
domain, like sdt's, covers every hyper-parameter and architecture feature a network can have
(see `uses_full_domain`); the other baselines' domain is the initial space alone.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from sdt.strategies import evolution
from sdt.strategies import meta_lr
from sdt.space.domain import ConstrainedGPOptimizer, Domain, sample_params
from sdt.core.vocabulary import DATA_AUGMENTATION, REG_L2

# Options a factory may read, with their defaults (RunConfig carries the same fields).
STRATEGY_OPTIONS: dict[str, Any] = {
    "budget": None,                                        # the run's number of trainings
    "meta_lr_step_factor": meta_lr.DEFAULT_STEP_FACTOR,
    "meta_lr_p_eps": meta_lr.DEFAULT_P_EPS,
    "meta_lr_patience": meta_lr.DEFAULT_PATIENCE,
    "population_size": evolution.DEFAULT_POPULATION_SIZE,
    "tournament_size": evolution.DEFAULT_TOURNAMENT_SIZE,
    "unsupported_actions": frozenset(),                    # architecture actions a user's model cannot take
}

# The Architecture switches each architecture action turns on (what evolution must leave off
# for a model that does not support the action).
_SWITCHES_OF_ACTION = {REG_L2: ("l2", "batch_norm"), DATA_AUGMENTATION: ("augmentation",)}


class GaussianProcessStrategy:
    """GP-EI BO on the run's fixed domain, candidates from the current (edited) space."""

    def __init__(self, domain: Domain, initial_points: int):
        self.optimizer = ConstrainedGPOptimizer(domain, n_initial_points=initial_points)
        self.domain = domain
        self.finished = False

    def ask(self, state, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
        return self.optimizer.ask(state.space, state.architecture, rng), state.architecture

    def tell(self, params: dict[str, Any], architecture, objective: float) -> None:
        self.optimizer.tell(params, architecture, objective)

    def point(self, params: dict[str, Any], architecture) -> list[Any]:
        return self.domain.encode(params, architecture)


class RandomStrategy:
    """Uniform sampling of the current space (which never changes for the baselines)."""

    def __init__(self, domain: Domain, initial_points: int = 0):
        self.domain = domain
        self.finished = False

    def ask(self, state, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
        return sample_params(state.space, 1, rng)[0], state.architecture

    def tell(self, params: dict[str, Any], architecture, objective: float) -> None:
        pass

    def point(self, params: dict[str, Any], architecture) -> list[Any]:
        return self.domain.encode(params, architecture)


def _option(options: dict[str, Any] | None, name: str) -> Any:
    return (options or {}).get(name, STRATEGY_OPTIONS[name])


def _gaussian_process(domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    return GaussianProcessStrategy(domain, initial_points)


def _random(domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    return RandomStrategy(domain, initial_points)


def _tpe(domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    from sdt.strategies.tpe import OptunaTPEStrategy   # Optuna is optional: imported only when asked for
    return OptunaTPEStrategy(domain, initial_points)


def _meta_lr(domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    return meta_lr.MetaLearningRateStrategy(
        domain, step_factor=_option(options, "meta_lr_step_factor"), p_eps=_option(options, "meta_lr_p_eps"),
        patience=_option(options, "meta_lr_patience"), budget=_option(options, "budget"))


def _evolution(domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    fixed = {switch for action in _option(options, "unsupported_actions")
             for switch in _SWITCHES_OF_ACTION.get(action, ())}
    return evolution.EvolutionStrategy(
        evolution.ArchitectureProblem(domain, frozenset(fixed)), population_size=_option(options, "population_size"),
        tournament_size=_option(options, "tournament_size"), budget=_option(options, "budget"))


# name -> (factory(domain, initial_points, options), whether the symbolic actions tune the network)
STRATEGIES: dict[str, tuple[Callable[..., Any], bool]] = {
    "sdt": (_gaussian_process, True),     # Symbolic DNN-Tuner: BO + diagnosis + tuning actions
    "bo": (_gaussian_process, False),     # plain BO on the fixed initial space (the paper's baseline)
    "random": (_random, False),           # random search of the initial space
    "tpe": (_tpe, False),                 # Optuna's TPE sampler on the initial space (optional dependency)
    "meta-lr": (_meta_lr, False),         # the poster's probabilistic learning-rate adjustment (sdt/meta_lr.py)
    "evolution": (_evolution, False),     # DLOPT-style evolution of hyper-parameters and architecture
}

# Strategies that pass their own architecture to the controller (and need the full domain).
SEARCHES_ARCHITECTURE = frozenset({"evolution"})


def tunes_network(name: str) -> bool:
    return STRATEGIES[name][1]


def uses_full_domain(name: str) -> bool:
    """Whether the run's domain must cover every dimension and architecture feature a network can have."""
    return tunes_network(name) or name in SEARCHES_ARCHITECTURE


def make_strategy(name: str, domain: Domain, initial_points: int, options: dict[str, Any] | None = None):
    """Build strategy `name`; `options` overrides STRATEGY_OPTIONS (unknown keys are refused)."""
    unknown = sorted(set(options or {}) - set(STRATEGY_OPTIONS))
    if unknown:
        raise ValueError(f"unknown strategy options {unknown}; expected some of {sorted(STRATEGY_OPTIONS)}")
    factory, _ = STRATEGIES[name]
    return factory(domain, initial_points, options)
