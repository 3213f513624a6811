"""Random search: uniform draws (priors respected) from the current space, resampled by the
tuning actions' prior under `prior` guidance (sdt/space/preference.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdt.core.records import Decision, Proposal
from sdt.space.preference import draw_from_prior
from sdt.strategies.base import Strategy, StrategySetup


# The name its decisions carry (sdt/core/records.py Decision).
DECIDER = "random search"


class RandomStrategy(Strategy):
    """Independent draws from `state.space`: the initial space for the baseline, the edited one
    when combined with the symbolic block."""

    follows_edited_space = True
    told = 0                    # trainings told so far (the prior's strength fades with them)

    @classmethod
    def build(cls, setup: StrategySetup) -> "RandomStrategy":
        return cls()

    def ask(self, state, rng: np.random.Generator, pending=()) -> Proposal:
        """One draw; the decision's fact `preferences` says whether the actions' preferences weighted it."""
        params, architecture = draw_from_prior(state, self.told, rng)
        preferred = bool(getattr(state, "preferences", ()))
        summary = ("drawn at random from the current space, resampled by the actions' preferences" if preferred
                   else "drawn at random from the current space")
        return Proposal(params, architecture, Decision(DECIDER, summary, {"preferences": preferred}))

    def tell(self, params: dict[str, Any], architecture, objective: float,
             decision: Decision | None = None) -> None:
        self.told += 1
