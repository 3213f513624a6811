"""Random search: uniform draws (priors respected) from the current space."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdt.space.domain import sample_params
from sdt.strategies.base import Strategy, StrategySetup


class RandomStrategy(Strategy):
    """Independent draws from `state.space`: the initial space for the baseline, the edited one
    when combined with the symbolic block."""

    follows_edited_space = True

    @classmethod
    def build(cls, setup: StrategySetup) -> "RandomStrategy":
        return cls()

    def ask(self, state, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
        return sample_params(state.space, 1, rng)[0], state.architecture

    def tell(self, params: dict[str, Any], architecture, objective: float) -> None:
        pass
