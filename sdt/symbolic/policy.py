"""The action policy: which of a diagnosis's candidate actions to apply after one training.

At most ONE action per training, the most probable applicable candidate, so that each applied
action gets its own label when the next training judges it. `choose_actions` ranks the
candidates (one per problem); under prior guidance the tuner applies the first as a preference
whose strength is its weight. `decide_action` is what it uses under edit guidance: the
candidate is applied with its probability (the rule's weight is "the probability of applying",
as the paper frames it), so a rule that has learned a low weight mostly does nothing.

Which actions may not be applied together is no decision of this module: the rules file
declares it (`excludes/2`, read into `ActionExclusions` by programs.py).
"""

from __future__ import annotations

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.vocabulary import ACTIONS
from sdt.symbolic.programs import shipped_exclusions
from sdt.symbolic.records import ActionExclusions, ChosenAction, Diagnosis, action_order, problem_order

# Two probabilities closer than this are a tie for `choose_actions`.
TIE_TOLERANCE = 1e-9


def choose_actions(diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                   rng: np.random.Generator,
                   exclusions: ActionExclusions | None = None) -> list[ChosenAction]:
    """For each diagnosed problem (vocabulary order), its most probable applicable action.

    Actions named in `not_applicable` (e.g. reg_l2 once L2 is on, decr_lr at the lower
    bound) are skipped. Problems choose in order of their best action's probability (then
    vocabulary order); an action excluded by one already chosen is skipped: `exclusions` are
    the `excludes/2` facts of the block's rules file (`SymbolicBlock.exclusions`), None means
    those of the shipped tuning_rules.pl. Ties are broken by `rng` (the run's seeded
    generator), which is drawn from only when there is a tie. An action chosen for two
    problems is returned once, with the first problem. A problem whose actions are all
    inapplicable gets none.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigurationError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if exclusions is None:
        exclusions = shipped_exclusions()
    elif not isinstance(exclusions, ActionExclusions):
        raise ConfigurationError(f"exclusions must be ActionExclusions, "
                                 f"got {type(exclusions).__name__}")
    unknown = sorted(set(not_applicable) - set(ACTIONS))
    if unknown:
        raise ConfigurationError(f"not_applicable names unknown action(s) {unknown}; "
                                 f"expected names from {', '.join(ACTIONS)}")
    chosen: list[ChosenAction] = []
    taken: set[str] = set()

    def best_probability(problem: str) -> float:
        return max((a.probability for a in diagnosis.actions
                    if a.problem == problem and a.name not in not_applicable), default=0.0)

    # The most confident problem chooses first, so that when two problems want opposite
    # actions (inc_lr for low_lr, decr_lr for underfitting) the more probable one is applied
    # and the other problem falls back to its best action that does not undo it.
    for problem in sorted(diagnosis.problem_names(), key=lambda p: (-best_probability(p), problem_order(p))):
        blocked = exclusions.excluded_by(taken)
        candidates = [a for a in diagnosis.actions
                      if a.problem == problem and a.name not in not_applicable and a.probability > 0
                      and a.name not in blocked]
        if not candidates:
            continue
        best = max(a.probability for a in candidates)
        tied = sorted((a for a in candidates if best - a.probability <= TIE_TOLERANCE),
                      key=lambda a: action_order(a.name))
        pick = tied[int(rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
        if pick.name in taken:
            continue
        taken.add(pick.name)
        chosen.append(ChosenAction(pick.name, pick.problem, pick.probability))
    return chosen


def decide_action(diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                  rng: np.random.Generator, exclusions: ActionExclusions | None = None
                  ) -> tuple[ChosenAction | None, tuple[str, str] | None]:
    """The action to apply after one training, or None, and the declined action with its reason.

    The candidate is the first of `choose_actions` (the most probable applicable action of
    the most confident problem). It is applied when a uniform draw from `rng` falls below its
    probability; otherwise it is declined, and the reason quotes both numbers.
    """
    ranked = choose_actions(diagnosis, not_applicable, rng, exclusions)
    if not ranked:
        return None, None
    candidate = ranked[0]
    draw = float(rng.random())
    if draw < candidate.probability:
        return candidate, None
    return None, (candidate.name, f"not applied this time: its weight {candidate.probability:.2f} is the "
                                  f"probability of applying it and the draw was {draw:.2f}")
