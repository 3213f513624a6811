"""The action policy: which of a diagnosis's candidate actions to apply after one training."""

from __future__ import annotations

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.vocabulary import ACTIONS, DECR_LR, INC_LR
from sdt.symbolic.records import ChosenAction, Diagnosis, action_order, problem_order

# Two probabilities closer than this are a tie for `choose_actions`.
TIE_TOLERANCE = 1e-9

# Actions that undo each other; never both in one iteration.
OPPOSITE_ACTIONS = {INC_LR: DECR_LR, DECR_LR: INC_LR}


def choose_actions(diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                   rng: np.random.Generator) -> list[ChosenAction]:
    """For each diagnosed problem (vocabulary order), its most probable applicable action.

    Actions named in `not_applicable` (e.g. reg_l2 once L2 is on, decr_lr at the lower
    bound) are skipped. Problems choose in order of their best action's probability (then
    vocabulary order); an action whose opposite (OPPOSITE_ACTIONS) was already chosen is
    skipped. Ties are broken by `rng` (the run's seeded generator), which is drawn from only
    when there is a tie. An action chosen for two problems is returned once, with the first
    problem. A problem whose actions are all inapplicable gets none.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigurationError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
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
        blocked = {OPPOSITE_ACTIONS[name] for name in taken if name in OPPOSITE_ACTIONS}
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
