"""Learning the weights of the tuning rules with ProbLog LFI (Learning From Interpretations).

After each training the controller records, for the action it applied after the previous
training (at most one), an `Observation(action, problem, improved)`. The controller decides
`improved` against the action's counterfactual, the training it was meant to fix: the next
training's objective beat that training's. A neutral action is then a coin flip and a
helpful one is judged improved more often than not, so its weight rises (tests/test_guidance.py
simulates it). `learn_weights` turns all observations of the run so far into new `RuleWeights`.

How: one interpretation per observation of the rule `action(A, P)` (evidence
`problem(P)` true and `action(A, P)` true if the result improved, false if not) is given
to `problog.learning.lfi.LFIProblem` on the program
`t(w0)::action(A, P) :- problem(P).` (one such rule per learnable pair). Without more,
the EM fixed point of an independent learnable rule is its success rate k/n, so a single
failure drives a weight to exactly 0 and the rule never fires again (the original's
defect). So the initial weight w0 of each rule enters as a prior: `prior_strength`
pseudo-interpretations, of which a share w0 says "improved". The learned weight is

    w = (k + s * w0) / (n + s)

with k improvements among the n observations of the rule and s = prior_strength. It moves
gradually (one more observation moves it by less than 1 / (n + s + 1)), never reaches 0
or 1 after any finite number of observations, and equals w0 for a rule never observed.
`closed_form_weight` computes it directly; the tests check LFI against it.

Fractional pseudo-counts: LFI counts identical interpretations by multiplicity, so every
interpretation is repeated R times (R, the resolution, is the smallest integer up to
`MAX_RESOLUTION` that makes s * w0 * R and s * (1 - w0) * R whole numbers for every
observed rule; the two-decimal priors of the shipped rules with s = 4 need R <= 25). With
an odd prior the pseudo-counts are rounded at resolution MAX_RESOLUTION (at least one copy
each, so the prior always has both outcomes), an error below 1 / (2 * R * s) on w0.
Only rules that have observations go through LFI; ProbLog compiles one circuit per
distinct interpretation (two per rule), so about 50 observations take some tens of ms.

The weights are state of the run: the caller keeps the RuleWeights of each trial
(`to_dict` / `from_dict`); the rules file is never rewritten. Observations are always
learned from the INITIAL weights (the prior), not chained from the last learned ones, so
the result depends only on the evidence, not on how often learning ran.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from problog.errors import ProbLogError
from problog.learning.lfi import LFIProblem
from problog.logic import Clause, Constant, Term
from problog.program import SimpleProgram

from sdt.core.errors import ConfigurationError, RulesError
from sdt.symbolic.records import RuleWeights
from sdt.core.vocabulary import ACTIONS, PROBLEMS

log = logging.getLogger(__name__)

# Weight of the initial rule weights, in observations: with 4, the first observation
# moves a 0.5 prior to 0.6 or 0.4, and 20 failures leave 0.5 * 4 / 24 = 0.083.
DEFAULT_PRIOR_STRENGTH = 4.0

# Largest number of copies of one interpretation used to make pseudo-counts whole.
MAX_RESOLUTION = 100

# EM converges in two iterations on fully observed independent rules; the cap is a guard.
_MAX_LFI_ITERATIONS = 50


@dataclass(frozen=True)
class Observation:
    """Evidence for one applied rule: did `action`, applied for `problem`, improve the result?

    The controller sets `improved` when the next training's objective beat the objective of
    the training the action was chosen after (the one it was meant to fix).
    """

    action: str
    problem: str
    improved: bool

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigurationError(f"observation: unknown action {self.action!r}, "
                                     f"expected one of {', '.join(ACTIONS)}")
        if self.problem not in PROBLEMS:
            raise ConfigurationError(f"observation: unknown problem {self.problem!r}, "
                                     f"expected one of {', '.join(PROBLEMS)}")
        if not isinstance(self.improved, bool):
            raise ConfigurationError(f"observation: improved must be True or False, "
                                     f"got {self.improved!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "problem": self.problem, "improved": self.improved}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Observation":
        try:
            return cls(action=data["action"], problem=data["problem"], improved=data["improved"])
        except (KeyError, TypeError) as err:
            raise ConfigurationError(f"an observation needs action, problem and improved, "
                                     f"got {data!r}") from err


def closed_form_weight(initial: float, improvements: int, observations: int,
                       prior_strength: float = DEFAULT_PRIOR_STRENGTH) -> float:
    """The weight LFI learns: (improvements + prior_strength * initial) / (observations + prior_strength)."""
    return (improvements + prior_strength * initial) / (observations + prior_strength)


def learn_weights(initial: RuleWeights, observations: Sequence[Observation],
                  prior_strength: float = DEFAULT_PRIOR_STRENGTH) -> RuleWeights:
    """Learn the rule weights from all observations of the run with ProbLog LFI.

    `initial` are the rules file's weights (the prior), `observations` every observation
    so far, `prior_strength` how many observations the prior is worth (> 0). Rules without
    observations keep their initial weight. Raises ConfigurationError for an observation of
    a rule that `initial` does not have or a bad prior strength.
    """
    if not isinstance(initial, RuleWeights):
        raise ConfigurationError(f"initial must be RuleWeights, got {type(initial).__name__}")
    if isinstance(prior_strength, bool) or not isinstance(prior_strength, numbers.Real) \
            or not math.isfinite(prior_strength) or prior_strength <= 0:
        raise ConfigurationError(f"prior_strength must be a number > 0 (pseudo-observations "
                                 f"of the initial weight), got {prior_strength!r}")
    counts: Counter[tuple[tuple[str, str], bool]] = Counter()
    for observation in observations:
        if not isinstance(observation, Observation):
            raise ConfigurationError(f"observations must be Observation records, "
                                     f"got {type(observation).__name__}")
        key = (observation.action, observation.problem)
        if key not in initial:
            raise ConfigurationError(
                f"observation of action({observation.action}, {observation.problem}), which is "
                f"not a learnable rule; known rules: {', '.join(f'{a}/{p}' for a, p in initial)}")
        counts[(key, observation.improved)] += 1
    observed = [key for key in initial if counts[(key, True)] + counts[(key, False)] > 0]
    if not observed:
        return initial
    learned = _run_lfi(initial, observed, counts, float(prior_strength))
    return initial.updated(learned)


def _resolution(priors: Sequence[float], prior_strength: float) -> int:
    """Smallest R <= MAX_RESOLUTION making every prior pseudo-count R * s * w0 whole."""
    for resolution in range(1, MAX_RESOLUTION + 1):
        if all(abs(x - round(x)) < 1e-6
               for w0 in priors for x in (resolution * prior_strength * w0,
                                          resolution * prior_strength * (1 - w0))):
            return resolution
    return MAX_RESOLUTION


def _run_lfi(initial: RuleWeights, observed: list[tuple[str, str]],
             counts: Counter, prior_strength: float) -> dict[tuple[str, str], float]:
    resolution = _resolution([initial[key] for key in observed], prior_strength)
    program = SimpleProgram()
    for problem in sorted({problem for _, problem in observed}, key=PROBLEMS.index):
        program.add_clause(Term("problem", Term(problem)))
    examples: list[list[tuple[Term, bool]]] = []
    for action, problem in observed:
        w0 = initial[(action, problem)]
        head = Term("action", Term(action), Term(problem), p=Term("t", Constant(w0)))
        program.add_clause(Clause(head, Term("problem", Term(problem))))
        for improved in (True, False):
            share = w0 if improved else 1.0 - w0
            copies = (counts[((action, problem), improved)] * resolution
                      + max(1, round(prior_strength * share * resolution)))
            interpretation = [(Term("problem", Term(problem)), True),
                              (Term("action", Term(action), Term(problem)), improved)]
            # Identical interpretations are compiled once and counted by multiplicity.
            examples.extend([interpretation] * copies)
    try:
        problem_ = LFIProblem(program, examples, max_iter=_MAX_LFI_ITERATIONS)
        problem_.run()
    except ProbLogError as err:
        raise RulesError(f"ProbLog LFI failed on the tuning rules: {err}") from err
    learned: dict[tuple[str, str], float] = {}
    for index, name in enumerate(problem_.names):
        key = (str(name.args[0]), str(name.args[1]))
        ((_, weight),) = problem_.get_weights(index)
        learned[key] = float(weight)
    log.debug("LFI learned %s from %d interpretations (resolution %d, %d iterations)",
              learned, len(examples), resolution, problem_.iteration)
    return learned


__all__ = ["DEFAULT_PRIOR_STRENGTH", "MAX_RESOLUTION", "Observation", "closed_form_weight",
           "learn_weights"]
