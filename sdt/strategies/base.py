"""The strategy interface: what every search strategy is, and how it declares its options.

A strategy decides what to try next (KerasTuner's "oracle"); the run's loop trains what it
proposes and tells it the outcome. The loop speaks to every strategy the same way:

    proposal = strategy.ask(state, rng, pending)   # state: the run's current space and network
    # proposal.params, proposal.architecture: what to train; proposal.decision: why (stored)
    strategy.tell(params, architecture, objective, decision)   # objective: finite, lower is better
    strategy.finished                                   # True: the strategy has nothing left to try

`state` carries `space` (the current, possibly edited, search space) and `architecture`.
`pending` lists the (params, architecture) of trainings proposed and still running (trials in
parallel, issue 16; empty one at a time): the GP takes them into account with a constant liar,
TPE with Optuna's constant liar; random search needs nothing; evolution and meta-lr, sequential by
nature, ignore them (a child may repeat a running one's parent). A
strategy that samples from `state.space` follows the symbolic block's edits, so it can be
combined with it (`follows_edited_space`); one that proposes its own network sets
`searches_architecture` and gets a domain that covers every network feature.

Options are declared once, on the class (`options`): the command line (`--name-with-dashes`),
`RunConfig.strategy_options` and the API's keyword arguments are derived from the declarations,
and `check_options` validates them before anything is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.records import Decision, Proposal
from sdt.core.vocabulary import VAL_LOSS
from sdt.space.domain import Domain


@dataclass(frozen=True)
class Option:
    """One option of a strategy: its name (a RunConfig key; `--name-with-dashes` on the command line),
    type, default, help text and a check that returns what is wrong with a value (None when fine).
    The check sees every option of the strategy, for options that depend on each other."""

    name: str
    type: type
    default: Any
    help: str
    check: Callable[[Any, Mapping[str, Any]], str | None] = lambda value, options: None
    shown_default: str | None = None      # the help's words for a default that is derived (None: `default`)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class StrategySetup:
    """What the run hands a strategy when it builds it."""

    domain: Domain                                  # every coordinate a point of the run can have
    initial_points: int                             # random trials before a model-based strategy models
    budget: int | None = None                       # the run's number of trainings
    unsupported_actions: frozenset[str] = frozenset()   # architecture actions a user's model cannot take
    options: Mapping[str, Any] = field(default_factory=dict)   # the strategy's declared options
    # (params, architecture, seed) -> the untrained network's loss over random draws of its weights
    # (the neural block's random_weight_losses, bound to the run's data); None where the run has
    # no such estimate. Only a training-free fitness calls it (evolution's --fitness mrs).
    random_weight_losses: Callable[[dict[str, Any], Any, int], Any] | None = None


class Strategy(ABC):
    """Base class of every search strategy (see the module docstring for the protocol)."""

    # Declared by each subclass.
    options: ClassVar[tuple[Option, ...]] = ()
    follows_edited_space: ClassVar[bool] = False    # samples from state.space: the symbolic edits steer it
    searches_architecture: ClassVar[bool] = False   # proposes its own architecture (needs the full domain)
    # The run's objective when none is given (`RunConfig.objective` None): what the method optimises.
    default_objective: ClassVar[str] = VAL_LOSS

    finished: bool = False

    @classmethod
    @abstractmethod
    def build(cls, setup: StrategySetup) -> "Strategy":
        """A new strategy for one run."""

    @abstractmethod
    def ask(self, state: Any, rng: np.random.Generator, pending: Sequence[tuple[dict[str, Any], Any]] = ()
            ) -> Proposal:
        """The hyper-parameters and architecture of the next training, and the decision behind
        them (sdt/core/records.py: Proposal, Decision), which the run stores with the trial.
        `pending`: (params, architecture) of the trainings running meanwhile."""

    @abstractmethod
    def tell(self, params: dict[str, Any], architecture: Any, objective: float,
             decision: Decision | None = None) -> None:
        """The objective (finite, lower is better) of a finished training, in the order finished,
        with the decision its ask() returned (also when a resumed run replays its stored trials)."""

    @classmethod
    def option_values(cls, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The declared options with `given` over their defaults; an undeclared name is refused."""
        given = dict(given or {})
        declared = {option.name: option for option in cls.options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ConfigurationError(f"unknown option(s) {', '.join(unknown)} for this strategy; "
                                     f"it takes {', '.join(sorted(declared)) or 'none'}")
        values = {name: option.default for name, option in declared.items()}
        for name, value in given.items():
            values[name] = _converted(declared[name], value)
        return values

    @classmethod
    def check_options(cls, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """`option_values(given)`, each checked; raises ConfigurationError naming the flag."""
        values = cls.option_values(given)
        for option in cls.options:
            problem = option.check(values[option.name], values)
            if problem:
                raise ConfigurationError(f"{option.flag} {problem}, got {values[option.name]!r}")
        return values


def _converted(option: Option, value: Any) -> Any:
    if value is None and option.default is None:       # an option whose default is derived, left unset
        return None
    try:
        if option.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return option.type(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{option.flag} must be {option.type.__name__}, got {value!r}") from None


def at_least(minimum: float) -> Callable[[Any, Mapping[str, Any]], str | None]:
    return lambda value, options: None if value >= minimum else f"must be >= {minimum}"
