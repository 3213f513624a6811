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

Strategies are registered by name in `STRATEGIES`; `tunes_network` says whether the
controller applies the symbolic tuning actions for it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from sdt.optimizer import ConstrainedGPOptimizer, Domain, sample_params


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


# name -> (factory(domain, initial_points), whether the symbolic actions tune the network)
STRATEGIES: dict[str, tuple[Callable[..., Any], bool]] = {
    "sdt": (GaussianProcessStrategy, True),     # Symbolic DNN-Tuner: BO + diagnosis + tuning actions
    "bo": (GaussianProcessStrategy, False),     # plain BO on the fixed initial space (the paper's baseline)
    "random": (RandomStrategy, False),          # random search of the initial space
}


def tunes_network(name: str) -> bool:
    return STRATEGIES[name][1]


def make_strategy(name: str, domain: Domain, initial_points: int):
    factory, _ = STRATEGIES[name]
    return factory(domain, initial_points)
