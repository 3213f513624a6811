"""Bayesian optimisation across a search space that the tuning actions keep editing.

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

New candidates are sampled only from the *current* space (current bounds, current
architecture pinned), scored with expected improvement (EI) under a GP fitted on every past
point, and the best is proposed. This is skopt's own "sampling" acquisition optimiser with
the candidate set restricted, which is why the class does its own ask() rather than use
skopt's `space_constraint` (that refuses to be told points outside the constraint).

The same class serves the plain-BO baseline: with a space that never changes it is ordinary
GP-EI Bayesian optimisation, so the comparison isolates what the symbolic part adds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from skopt.acquisition import gaussian_ei
from skopt.space import Categorical, Integer, Real, Space
from skopt.utils import cook_estimator

from sdt.core.records import Architecture
from sdt.space.search_space import CATEGORICAL, INTEGER, Dimension, SearchSpace

# Architecture features that are part of every point, in this order.
ARCHITECTURE_FEATURES = ("extra_conv_blocks", "extra_dense_layers", "l2", "batch_norm", "augmentation")

# Candidates sampled from the current space per proposal; EI is evaluated on all of them.
DEFAULT_CANDIDATES = 5000


def _skopt_dimension(dimension: Dimension, use_domain: bool):
    """The skopt dimension for `dimension` (current bounds or domain), or None if it has one value."""
    if dimension.kind == CATEGORICAL:
        categories = dimension.domain_categories if use_domain else dimension.categories
        return Categorical(list(categories), name=dimension.name) if len(categories) > 1 else None
    low, high = ((dimension.domain_low, dimension.domain_high) if use_domain
                 else (dimension.low, dimension.high))
    if low == high:
        return None
    if dimension.kind == INTEGER:
        return Integer(int(low), int(high), prior=dimension.prior, name=dimension.name)
    return Real(float(low), float(high), prior=dimension.prior, name=dimension.name)


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
        return self.hyper_parameters.names + list(ARCHITECTURE_FEATURES)

    def encode(self, params: dict[str, Any], architecture: Architecture) -> list[Any]:
        """The point of (params, architecture): every coordinate, absent ones inactive."""
        point: list[Any] = []
        for dimension in self.hyper_parameters:
            if dimension.name in params:
                point.append(dimension.python_value(params[dimension.name]))
            else:
                point.append(inactive_value(dimension))
        point += [int(architecture.extra_conv_blocks), int(architecture.extra_dense_layers),
                  int(architecture.l2), int(architecture.batch_norm), int(architecture.augmentation)]
        return point

    def _architecture_bounds(self) -> list[tuple[str, int]]:
        return [("extra_conv_blocks", self.max_extra_conv_blocks),
                ("extra_dense_layers", self.max_extra_dense_layers),
                ("l2", 1), ("batch_norm", 1), ("augmentation", 1)]

    def gp_space(self) -> tuple[Space, list[int]]:
        """skopt Space of the GP and the indices of the point coordinates it uses.

        Coordinates with a single possible value carry no information and skopt refuses
        them, so they are left out.
        """
        dimensions, used = [], []
        for index, dimension in enumerate(self.hyper_parameters):
            skopt_dimension = _skopt_dimension(dimension, use_domain=True)
            if skopt_dimension is not None:
                dimensions.append(skopt_dimension)
                used.append(index)
        offset = len(self.hyper_parameters)
        for position, (name, maximum) in enumerate(self._architecture_bounds()):
            if maximum > 0:
                dimensions.append(Integer(0, maximum, name=name))
                used.append(offset + position)
        return Space(dimensions), used

    def to_dict(self) -> dict[str, Any]:
        return {"hyper_parameters": self.hyper_parameters.to_dict(),
                "max_extra_conv_blocks": self.max_extra_conv_blocks,
                "max_extra_dense_layers": self.max_extra_dense_layers}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Domain":
        return cls(SearchSpace.from_dict(data["hyper_parameters"]),
                   int(data["max_extra_conv_blocks"]), int(data["max_extra_dense_layers"]))


def sample_params(space: SearchSpace, n_samples: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`n_samples` random hyper-parameter dicts drawn from the current bounds (priors respected)."""
    columns: dict[str, list[Any]] = {}
    for dimension in space:
        skopt_dimension = _skopt_dimension(dimension, use_domain=False)
        if skopt_dimension is None:
            value = dimension.categories[0] if dimension.kind == CATEGORICAL else dimension.low
            columns[dimension.name] = [dimension.python_value(value)] * n_samples
        else:
            seed = int(rng.integers(0, 2**31 - 1))
            values = skopt_dimension.rvs(n_samples=n_samples, random_state=seed)
            columns[dimension.name] = [dimension.python_value(v) for v in values]
    return [{name: column[i] for name, column in columns.items()} for i in range(n_samples)]


class ConstrainedGPOptimizer:
    """GP-EI Bayesian optimisation on a fixed domain with candidates from the current space.

    The caller owns the loop: `ask(space, architecture, rng)` proposes hyper-parameters inside
    the current space; `tell(params, architecture, objective)` records a result (of any past
    space: every told point keeps informing the GP). Objectives are minimised.
    """

    def __init__(self, domain: Domain, n_initial_points: int = 5,
                 n_candidates: int = DEFAULT_CANDIDATES, xi: float = 0.01):
        if n_initial_points < 1:
            raise ValueError(f"n_initial_points must be >= 1, got {n_initial_points}")
        self.domain = domain
        self.n_initial_points = n_initial_points
        self.n_candidates = n_candidates
        self.xi = xi
        self.points: list[list[Any]] = []
        self.objectives: list[float] = []
        self._gp_space, self._gp_columns = domain.gp_space()

    def tell(self, params: dict[str, Any], architecture: Architecture, objective: float) -> None:
        """Record the objective of one training; it must be finite (use a penalty for failures)."""
        if not math.isfinite(objective):
            raise ValueError(f"objective must be finite, got {objective}")
        self.points.append(self.domain.encode(params, architecture))
        self.objectives.append(float(objective))

    def _gp_matrix(self, points: Sequence[Sequence[Any]]) -> np.ndarray:
        rows = [[point[i] for i in self._gp_columns] for point in points]
        return self._gp_space.transform(rows)

    def ask(self, space: SearchSpace, architecture: Architecture, rng: np.random.Generator) -> dict[str, Any]:
        """Hyper-parameters for the next training, inside `space`."""
        if len(self.objectives) < self.n_initial_points:
            return sample_params(space, 1, rng)[0]
        candidates = sample_params(space, self.n_candidates, rng)
        gp = cook_estimator("GP", space=self._gp_space, noise="gaussian",
                            random_state=int(rng.integers(0, 2**31 - 1)))
        with warnings.catch_warnings():
            # The GP warns about converging to bounds on tiny data sets; that is expected.
            warnings.simplefilter("ignore")
            gp.fit(self._gp_matrix(self.points), np.asarray(self.objectives))
            expected_improvement = gaussian_ei(
                self._gp_matrix([self.domain.encode(c, architecture) for c in candidates]),
                gp, y_opt=float(np.min(self.objectives)), xi=self.xi)
        return candidates[int(np.argmax(expected_improvement))]

    def predict(self, params: dict[str, Any], architecture: Architecture) -> tuple[float, float]:
        """GP mean and standard deviation of the objective at one configuration (for tests and explanations)."""
        gp = cook_estimator("GP", space=self._gp_space, noise="gaussian", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(self._gp_matrix(self.points), np.asarray(self.objectives))
            mean, std = gp.predict(self._gp_matrix([self.domain.encode(params, architecture)]), return_std=True)
        return float(mean[0]), float(std[0])
