"""The `meta-lr` strategy: probabilistic adjustment of the learning rate alone.

The meta-learning poster of Verucchi, Franchini, Spallanzani, Bertogna and Zanni (Algorithms
AdjustLR and TuneLearningRate): train once at a heuristic learning rate, then repeatedly draw
a move (increase / keep / decrease) with probabilities p1, p2, p3, train again, and make the
drawn move more likely when the training succeeded, less likely when it did not.

The success rule is the poster's; the other choices are this implementation's (the poster
leaves them open):

- Everything but the learning rate is fixed at the *default configuration* of the initial
  search space: the middle of each numeric range (geometric middle for a log-uniform prior,
  arithmetic middle otherwise, rounded for integers) and the first category of each
  categorical dimension (Adam and relu for the paper's space).
- The heuristic start is the geometric middle of the learning_rate bounds (3.2e-4 for the
  paper's 1e-4..1e-3), so the first moves can go either way.
- A step multiplies (increase) or divides (decrease) the learning rate by `step_factor`,
  i.e. it adds or subtracts log(step_factor) on a log scale: learning rates span orders of
  magnitude, and an additive step that is sensible at 1e-3 would jump past 1e-4 to a
  negative rate. The result is clipped into the learning_rate bounds of the initial space
  (the range the bo and random baselines search).
- A training is a *success* as the poster counts it: its objective is at least as good as the
  previous training's (lower or equal: ties count). The run's objective defaults to the poster's,
  validation accuracy (`default_objective`; the objective is then 1 - accuracy, so "accuracy at
  least the previous one's"); `--objective val_loss` judges by the loss instead. The walk steps from the last
  learning rate, so the poster judges a move by where it came from. `--meta-lr-success best`
  keeps the earlier rule: strictly better than the best objective so far. The first training
  sets the reference and moves nothing.
- Probability update: the drawn move c gets +p_eps after an improvement and -p_eps after a
  worsening, the two other moves -p_eps/2 / +p_eps/2 each. At the boundary each probability
  is clipped into [0, 1] and the three are divided by their sum, so they stay a
  distribution (the sum before clipping is 1, so after clipping it is positive).
- The move of step i is read from the told learning rates (higher / equal / lower than the
  previous one), never remembered from ask(): a resumed run rebuilds the same state by
  replaying tell() alone. A move the bound blocks completely trained the same learning rate
  again, so it is credited as a keep.
- The strategy finishes after `patience` steps in a row without a success, or at the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.vocabulary import LEARNING_RATE, VAL_ACCURACY
from sdt.space.domain import Domain
from sdt.strategies.base import Option, Strategy, StrategySetup, at_least
from sdt.core.records import Architecture, Decision, Proposal
from sdt.space.search_space import CATEGORICAL, INTEGER, LOG_UNIFORM, Dimension, SearchSpace


# Defaults (documented in the CLI help and README).
DEFAULT_STEP_FACTOR = 2.0     # one step doubles or halves the learning rate
DEFAULT_P_EPS = 0.1           # probability moved per step; 1/3 -> about 3 agreeing steps to double
DEFAULT_PATIENCE = 5          # steps in a row without a success before the strategy stops
# What counts as a success: the poster's rule (at least as good as the previous training) or
# the earlier one (strictly better than the best so far).
SUCCESS_PREVIOUS, SUCCESS_BEST = "previous", "best"
SUCCESS_RULES = (SUCCESS_PREVIOUS, SUCCESS_BEST)
DEFAULT_SUCCESS = SUCCESS_PREVIOUS

# The name its decisions carry (sdt/core/records.py Decision).
DECIDER = "meta-lr"

INCREASE, KEEP, DECREASE = 0, 1, 2
MOVES = ("increase", "keep", "decrease")

# Two learning rates whose ratio is within this of 1 count as equal (JSON round trips are exact,
# but a clipped value may differ in the last bits).
_RELATIVE_TOLERANCE = 1e-9


def default_value(dimension: Dimension) -> int | float | str:
    """The default of one dimension: middle of its current range, or its first category."""
    if dimension.kind == CATEGORICAL:
        return dimension.categories[0]
    low, high = float(dimension.low), float(dimension.high)
    if dimension.prior == LOG_UNIFORM and low > 0:
        middle = math.sqrt(low * high)
    else:
        middle = (low + high) / 2.0
    if dimension.kind == INTEGER:
        return int(min(max(round(middle), dimension.low), dimension.high))
    return float(middle)


def default_configuration(space: SearchSpace) -> dict[str, Any]:
    """Every dimension of `space` at its default (see default_value)."""
    return {dimension.name: default_value(dimension) for dimension in space}


def updated_probabilities(probabilities: tuple[float, float, float], move: int, improved: bool,
                          p_eps: float) -> tuple[float, float, float]:
    """TuneLearningRate's update: the drawn `move` gains (improved) or loses p_eps, the others
    share the opposite change equally; then clip into [0, 1] and renormalise to sum 1."""
    sign = 1.0 if improved else -1.0
    shifted = [p + (sign * p_eps if index == move else -sign * p_eps / 2.0)
               for index, p in enumerate(probabilities)]
    clipped = [min(max(p, 0.0), 1.0) for p in shifted]
    total = sum(clipped)
    return tuple(p / total for p in clipped)  # type: ignore[return-value]


def move_between(previous: float, current: float) -> int:
    """Which move took the learning rate from `previous` to `current`."""
    if current > previous * (1.0 + _RELATIVE_TOLERANCE):
        return INCREASE
    if current < previous * (1.0 - _RELATIVE_TOLERANCE):
        return DECREASE
    return KEEP


def draw_move(probabilities: tuple[float, float, float], uniform: float) -> int:
    """AdjustLR's draw: u < p1 increase, u < p1 + p2 keep, otherwise decrease."""
    if uniform < probabilities[0]:
        return INCREASE
    if uniform < probabilities[0] + probabilities[1]:
        return KEEP
    return DECREASE


@dataclass(frozen=True)
class MetaLRStep:
    """One told training as the strategy saw it (kept for tests and explanations)."""

    learning_rate: float
    objective: float
    move: int | None                 # None for the first (heuristic) training
    improved: bool | None            # a success (the success rule's); None for the first training
    probabilities: tuple[float, float, float]   # p1, p2, p3 after this step's update


class MetaLearningRateStrategy(Strategy):
    """Ask/tell form of TuneLearningRate on the run's initial space; never edits the network."""

    # The poster judges a training by its accuracy.
    default_objective = VAL_ACCURACY
    options = (
        Option("meta_lr_step_factor", float, DEFAULT_STEP_FACTOR,
               "meta-lr: a step multiplies or divides the learning rate by this factor > 1",
               lambda value, options: None if value > 1 else "must be > 1"),
        Option("meta_lr_p_eps", float, DEFAULT_P_EPS,
               "meta-lr: probability moved towards (improvement) or away from (worsening) the move just "
               "taken, in (0, 1]",
               lambda value, options: None if 0 < value <= 1 else "must be in (0, 1]"),
        Option("meta_lr_patience", int, DEFAULT_PATIENCE,
               "meta-lr: stop after this many trainings in a row without a success", at_least(1)),
        Option("meta_lr_success", str, DEFAULT_SUCCESS,
               "meta-lr: a training succeeds when its objective is at least as good as the previous "
               "training's (previous, the poster's rule: ties count) or strictly better than the best so far (best)",
               lambda value, options: None if value in SUCCESS_RULES else f"must be one of {', '.join(SUCCESS_RULES)}"),
    )

    @classmethod
    def build(cls, setup: StrategySetup) -> "MetaLearningRateStrategy":
        options = cls.check_options(setup.options)
        return cls(setup.domain, step_factor=options["meta_lr_step_factor"], p_eps=options["meta_lr_p_eps"],
                   patience=options["meta_lr_patience"], budget=setup.budget, success=options["meta_lr_success"])

    def __init__(self, domain: Domain, step_factor: float = DEFAULT_STEP_FACTOR,
                 p_eps: float = DEFAULT_P_EPS, patience: int = DEFAULT_PATIENCE,
                 budget: int | None = None, success: str = DEFAULT_SUCCESS):
        if success not in SUCCESS_RULES:
            raise ValueError(f"success must be one of {SUCCESS_RULES}, got {success!r}")
        self.success = success
        if not step_factor > 1.0:
            raise ValueError(f"step_factor must be > 1, got {step_factor}")
        if not 0.0 < p_eps <= 1.0:
            raise ValueError(f"p_eps must be in (0, 1], got {p_eps}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        space = domain.hyper_parameters
        if LEARNING_RATE not in space or space[LEARNING_RATE].kind == CATEGORICAL:
            # A user's search space may lack it: a configuration mistake, reported before training.
            raise ConfigurationError(f"--strategy meta-lr needs a numeric '{LEARNING_RATE}' dimension in the "
                                     f"search space, got dimensions {space.names}")
        self.domain = domain
        self.step_factor = float(step_factor)
        self.p_eps = float(p_eps)
        self.patience = int(patience)
        self.budget = budget
        dimension = space[LEARNING_RATE]
        self.low, self.high = float(dimension.low), float(dimension.high)
        self.defaults = default_configuration(space)
        self.initial_learning_rate = self.clip(math.sqrt(self.low * self.high) if self.low > 0
                                               else (self.low + self.high) / 2.0)
        self.defaults[LEARNING_RATE] = self.initial_learning_rate
        self.probabilities: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
        self.best_objective: float | None = None
        self.steps_without_improvement = 0
        self.steps: list[MetaLRStep] = []

    # ------------------------------------------------------------------ strategy interface
    @property
    def finished(self) -> bool:
        if self.budget is not None and len(self.steps) >= self.budget:
            return True
        return self.steps_without_improvement >= self.patience

    def clip(self, learning_rate: float) -> float:
        return float(min(max(learning_rate, self.low), self.high))

    def next_learning_rate(self, uniform: float) -> float:
        """The learning rate AdjustLR moves to from the last told one, for a draw `uniform` in [0, 1)."""
        if not self.steps:
            return self.initial_learning_rate
        move = draw_move(self.probabilities, uniform)
        factor = {INCREASE: self.step_factor, KEEP: 1.0, DECREASE: 1.0 / self.step_factor}[move]
        return self.clip(self.steps[-1].learning_rate * factor)

    def ask(self, state, rng: np.random.Generator, pending=()) -> Proposal:
        """The next training: the defaults with the learning rate AdjustLR moves to.

        The decision records the draw (facts): `probabilities` (p1, p2, p3: increase, keep,
        decrease, as they stood for the draw), `uniform` (the draw), `move` (its name, None for the
        heuristic start), `from_learning_rate` and `learning_rate`, `clipped` (a bound stopped the
        step) and `previous_success` (whether the success rule counted the last told training a
        success; None before the second)."""
        # One draw per ask, always taken, so the rng use does not depend on the state.
        uniform = float(rng.random())
        params = dict(self.defaults)
        learning_rate = self.next_learning_rate(uniform)
        params[LEARNING_RATE] = learning_rate
        return Proposal(params, Architecture(), self.decision(uniform, learning_rate))

    def decision(self, uniform: float, learning_rate: float) -> Decision:
        """Why ask() proposes `learning_rate` after the draw `uniform` (see ask for the facts)."""
        p1, p2, p3 = self.probabilities
        facts: dict[str, Any] = {"probabilities": [p1, p2, p3], "uniform": uniform, "move": None,
                                 "from_learning_rate": None, "learning_rate": learning_rate, "clipped": False,
                                 "previous_success": None}
        if not self.steps:
            return Decision(DECIDER, f"heuristic start: learning rate {learning_rate:.3g}, the geometric middle "
                                     f"of its bounds [{self.low:.3g}, {self.high:.3g}]", facts)
        move = draw_move(self.probabilities, uniform)
        last = self.steps[-1]
        factor = {INCREASE: self.step_factor, KEEP: 1.0, DECREASE: 1.0 / self.step_factor}[move]
        facts.update(move=MOVES[move], from_learning_rate=last.learning_rate,
                     clipped=learning_rate != last.learning_rate * factor, previous_success=last.improved)
        judged = ("" if last.improved is None else
                  f"; the last training was a {'success' if last.improved else 'failure'}")
        clipped = " (held at the bound)" if facts["clipped"] else ""
        return Decision(DECIDER, f"move {MOVES[move]} drawn (u {uniform:.2f} against p1 {p1:.2f}, p2 {p2:.2f}, "
                                 f"p3 {p3:.2f}{judged}): learning rate {last.learning_rate:.3g} -> "
                                 f"{learning_rate:.3g}{clipped}", facts)

    def tell(self, params: dict[str, Any], architecture, objective: float,
             decision: Decision | None = None) -> None:
        if not math.isfinite(objective):
            raise ValueError(f"objective must be finite, got {objective}")
        learning_rate = float(params[LEARNING_RATE])
        if not self.steps:
            self.best_objective = float(objective)
            self.steps.append(MetaLRStep(learning_rate, float(objective), None, None, self.probabilities))
            return
        move = move_between(self.steps[-1].learning_rate, learning_rate)
        if self.success == SUCCESS_PREVIOUS:
            improved = objective <= self.steps[-1].objective          # ties count (the poster's rule)
        else:
            improved = objective < self.best_objective
        self.probabilities = updated_probabilities(self.probabilities, move, improved, self.p_eps)
        self.best_objective = min(self.best_objective, float(objective))
        self.steps_without_improvement = 0 if improved else self.steps_without_improvement + 1
        self.steps.append(MetaLRStep(learning_rate, float(objective), move, improved, self.probabilities))
