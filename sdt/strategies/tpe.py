"""Optuna's TPE sampler as a strategy: a thin adapter, for comparisons on the same trainer.

It tunes the initial search space (the network never changes, like `bo` and `random`), asks
Optuna for each trial and tells it every result. Optuna is an optional dependency
(`pip install ".[tpe]"`, or requirements-optuna.txt).

Resume: the stored trials are replayed with `study.add_trial`, and each ask re-seeds the TPE
sampler from the loop's per-trial generator, so a proposal depends only on the told trials and
the trial index, exactly like the other strategies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.records import Decision, Proposal
from sdt.space.domain import Domain
from sdt.strategies.base import Strategy, StrategySetup
from sdt.space.search_space import CATEGORICAL, INTEGER, LOG_UNIFORM, SearchSpace

# The name its decisions carry (sdt/core/records.py Decision).
DECIDER = "tpe"


def _import_optuna():
    try:
        import optuna
    except ImportError as err:
        raise ConfigurationError('--strategy tpe needs Optuna: pip install "symbolic-dnn-tuner[tpe]" '
                                 "(or pip install -r requirements-optuna.txt)") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_distributions(space: SearchSpace) -> dict[str, Any]:
    """One Optuna distribution per dimension, at the current bounds and with the same prior."""
    optuna = _import_optuna()
    distributions: dict[str, Any] = {}
    for dimension in space:
        log = dimension.prior == LOG_UNIFORM
        if dimension.kind == CATEGORICAL:
            distributions[dimension.name] = optuna.distributions.CategoricalDistribution(list(dimension.categories))
        elif dimension.kind == INTEGER:
            distributions[dimension.name] = optuna.distributions.IntDistribution(
                int(dimension.low), int(dimension.high), log=log)
        else:
            distributions[dimension.name] = optuna.distributions.FloatDistribution(
                float(dimension.low), float(dimension.high), log=log)
    return distributions


class OptunaTPEStrategy(Strategy):
    """Optuna TPE over the initial space; `initial_points` random trials before TPE models."""

    @classmethod
    def build(cls, setup: StrategySetup) -> "OptunaTPEStrategy":
        return cls(setup.domain, setup.initial_points)

    def __init__(self, domain: Domain, initial_points: int):
        self._optuna = _import_optuna()
        self.domain = domain
        self.initial_points = initial_points
        self.distributions = optuna_distributions(domain.hyper_parameters)
        self.study = self._optuna.create_study(direction="minimize")
        self.finished = False
        self._asked: list[Any] = []        # Optuna trials asked and not yet told (several in parallel)

    def ask(self, state, rng: np.random.Generator, pending=()) -> Proposal:
        """Optuna's proposal; the decision's facts: `phase` ("startup": Optuna's random trials, or
        "model") and `told` (finished trials Optuna knows). Trials running meanwhile are Optuna's
        own running trials, which its sampler's constant liar accounts for."""
        self.study.sampler = self._optuna.samplers.TPESampler(
            n_startup_trials=self.initial_points, seed=int(rng.integers(0, 2**31 - 1)),
            constant_liar=bool(self._asked))
        told = len(self.study.trials) - len(self._asked)
        trial = self.study.ask(self.distributions)
        self._asked.append(trial)
        params = {d.name: d.python_value(trial.params[d.name]) for d in self.domain.hyper_parameters}
        if told < self.initial_points:
            decision = Decision(DECIDER, f"startup trial {told + 1} of {self.initial_points}, drawn at random",
                                {"phase": "startup", "told": told})
        else:
            decision = Decision(DECIDER, f"TPE: the point most likely under the best trials' density against the "
                                         f"others' ({told} trials told)", {"phase": "model", "told": told})
        return Proposal(params, state.architecture, decision)

    def tell(self, params: dict[str, Any], architecture, objective: float,
             decision: Decision | None = None) -> None:
        for position, asked in enumerate(self._asked):
            if all(asked.params.get(k) == v for k, v in params.items()):
                del self._asked[position]
                self.study.tell(asked, float(objective))
                return
        # A replayed trial (resume): add it as a finished trial.
        self.study.add_trial(self._optuna.trial.create_trial(
            params={name: params[name] for name in self.distributions},
            distributions=self.distributions, value=float(objective)))
