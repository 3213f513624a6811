"""The fixed domain of a run's points, across a search space that the tuning actions keep editing.

How no trial is ever lost (reference.md section 6): the Gaussian process lives on a *domain*
fixed when the run starts and never changed afterwards. The domain has

- one dimension per hyper-parameter the run can ever have, at its hard limits: the user's
  dimensions plus every dimension an action may add (l2_factor, unit_c3..., unit_d2...);
- one dimension per architecture feature the actions switch on (extra conv blocks, extra
  dense layers, L2, batch normalisation, augmentation), so the GP sees everything that
  changes the network and an old (x, y) pair keeps describing the objective.

A trial's point fills the hyper-parameters its network did not use (an added layer that did
not exist yet, the L2 factor while L2 was off) with the dimension's *inactive value*, its
domain low (or first category): one constant the GP learns to read as "absent".

The Gaussian process that reads these points is in sdt/strategies/gaussian_process.py, the
only module that knows scikit-optimize; this one is plain numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdt.core.records import ARCHITECTURE_FEATURES, COUNT, Architecture
from sdt.space.search_space import CATEGORICAL, INTEGER, LOG_UNIFORM, Dimension, SearchSpace



def inactive_value(dimension: Dimension) -> Any:
    """The value recorded for a hyper-parameter the trial's network did not use."""
    if dimension.kind == CATEGORICAL:
        return dimension.domain_categories[0]
    return dimension.python_value(dimension.domain_low)


@dataclass(frozen=True)
class Domain:
    """The fixed set of coordinates of every point of a run.

    `hyper_parameters` is every hyper-parameter the run can ever have (at domain bounds);
    `max_extra_conv_blocks` / `max_extra_dense_layers` bound the architecture coordinates.
    """

    hyper_parameters: SearchSpace
    max_extra_conv_blocks: int
    max_extra_dense_layers: int

    @property
    def coordinate_names(self) -> list[str]:
        return self.hyper_parameters.names + [feature.name for feature in ARCHITECTURE_FEATURES]

    def encode(self, params: dict[str, Any], architecture: Architecture) -> list[Any]:
        """The point of (params, architecture): every coordinate, absent ones inactive."""
        point: list[Any] = []
        for dimension in self.hyper_parameters:
            if dimension.name in params:
                point.append(dimension.python_value(params[dimension.name]))
            else:
                point.append(inactive_value(dimension))
        point += [int(getattr(architecture, feature.name)) for feature in ARCHITECTURE_FEATURES]
        return point

    def limit(self, feature) -> int:
        """The most a feature can be in this run: `max_<name>` for a COUNT, 1 for a SWITCH."""
        return int(getattr(self, f"max_{feature.name}")) if feature.kind == COUNT else 1

    def architecture_bounds(self) -> list[tuple[str, int]]:
        """(feature, maximum) of every architecture coordinate, in point order."""
        return [(feature.name, self.limit(feature)) for feature in ARCHITECTURE_FEATURES]

    def to_dict(self) -> dict[str, Any]:
        return {"hyper_parameters": self.hyper_parameters.to_dict(),
                "max_extra_conv_blocks": self.max_extra_conv_blocks,
                "max_extra_dense_layers": self.max_extra_dense_layers}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Domain":
        return cls(SearchSpace.from_dict(data["hyper_parameters"]),
                   int(data["max_extra_conv_blocks"]), int(data["max_extra_dense_layers"]))


def sample_params(space: SearchSpace, n_samples: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`n_samples` random hyper-parameter dicts drawn from the current bounds (priors respected):
    categories and integers uniformly, reals uniformly or log-uniformly (uniform in the logarithm)."""
    columns: dict[str, list[Any]] = {}
    for dimension in space:
        if dimension.kind == CATEGORICAL:
            drawn = rng.integers(0, len(dimension.categories), size=n_samples)
            values = [dimension.categories[int(i)] for i in drawn]
        elif dimension.low == dimension.high:
            values = [dimension.low] * n_samples
        elif dimension.prior == LOG_UNIFORM:
            upper = dimension.high + 1 if dimension.kind == INTEGER else dimension.high
            values = np.exp(rng.uniform(math.log(dimension.low), math.log(upper), size=n_samples))
            if dimension.kind == INTEGER:
                values = np.minimum(np.floor(values), dimension.high)
        elif dimension.kind == INTEGER:
            values = rng.integers(int(dimension.low), int(dimension.high) + 1, size=n_samples)
        else:
            values = rng.uniform(float(dimension.low), float(dimension.high), size=n_samples)
        columns[dimension.name] = [dimension.python_value(v) for v in values]
    return [{name: column[i] for name, column in columns.items()} for i in range(n_samples)]
