"""Random search: uniform draws (priors respected) from the current space, resampled by the
tuning actions' prior under `prior` guidance (sdt/space/preference.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdt.space.preference import draw_from_prior
from sdt.strategies.base import Strategy, StrategySetup


class RandomStrategy(Strategy):
    """Independent draws from `state.space`: the initial space for the baseline, the edited one
    when combined with the symbolic block."""

    follows_edited_space = True
    told = 0                    # trainings told so far (the prior's strength fades with them)

    @classmethod
    def build(cls, setup: StrategySetup) -> "RandomStrategy":
        return cls()

    def ask(self, state, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
        return draw_from_prior(state, self.told, rng)

    def tell(self, params: dict[str, Any], architecture, objective: float) -> None:
        self.told += 1
