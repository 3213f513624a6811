"""Gaussian-process Bayesian optimisation (expected improvement) on the run's fixed domain.

The only module that knows scikit-optimize (archived in February 2024; its last release,
0.10.2, is kept working here): swapping the GP and the acquisition for a maintained library
is a change of this file alone.

How no trial is ever lost (reference.md section 6): the GP lives on the run's *domain*
(sdt/space/domain.py), fixed when the run starts. New candidates are sampled only from the
*current* space (current bounds, current architecture pinned), scored with expected
improvement under a GP fitted on every past point, and the best is proposed. This is
skopt's own "sampling" acquisition optimiser with the candidate set restricted, which is why
the class does its own ask() rather than use skopt's `space_constraint` (that refuses to be
told points outside the constraint).

The same class serves the plain-BO baseline: with a space that never changes it is ordinary
GP-EI Bayesian optimisation, so the comparison isolates what the symbolic part adds.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
from skopt.acquisition import gaussian_ei
from skopt.space import Categorical, Integer, Real, Space
from skopt.utils import cook_estimator

from sdt.core.records import Architecture, Decision, Proposal
from sdt.space.domain import Domain
from sdt.space.preference import START, candidate_weights, draw_from_prior, sample_candidates
from sdt.space.search_space import CATEGORICAL, INTEGER, Dimension, SearchSpace
from sdt.strategies.base import Strategy, StrategySetup

# The name its decisions carry (sdt/core/records.py Decision).
DECIDER = "gaussian process"
# Candidates sampled from the current space per proposal; EI is evaluated on all of them.
DEFAULT_CANDIDATES = 5000


def _skopt_dimension(dimension: Dimension):
    """The skopt dimension of `dimension` at its domain bounds, or None if it has one value."""
    if dimension.kind == CATEGORICAL:
        categories = dimension.domain_categories
        return Categorical(list(categories), name=dimension.name) if len(categories) > 1 else None
    low, high = dimension.domain_low, dimension.domain_high
    if low == high:
        return None
    if dimension.kind == INTEGER:
        return Integer(int(low), int(high), prior=dimension.prior, name=dimension.name)
    return Real(float(low), float(high), prior=dimension.prior, name=dimension.name)


def gp_space(domain: Domain) -> tuple[Space, list[int]]:
    """skopt Space of the GP and the indices of the point coordinates it uses.

    Coordinates with a single possible value carry no information and skopt refuses
    them, so they are left out.
    """
    dimensions, used = [], []
    for index, dimension in enumerate(domain.hyper_parameters):
        skopt_dimension = _skopt_dimension(dimension)
        if skopt_dimension is not None:
            dimensions.append(skopt_dimension)
            used.append(index)
    offset = len(domain.hyper_parameters)
    for position, (name, maximum) in enumerate(domain.architecture_bounds()):
        if maximum > 0:
            dimensions.append(Integer(0, maximum, name=name))
            used.append(offset + position)
    return Space(dimensions), used


def modelled_objectives(objectives: Sequence[float], learned_nothing: float | None
                        ) -> tuple[list[float], int, float | None]:
    """The objectives the GP is fitted on: each at or above `learned_nothing` (a training that
    learned nothing: stuck at chance, diverged, failed; set by the symbolic tuning from the
    diagnosis's chance level) replaced by the worst objective of the trainings that learned plus
    their range (as far beyond the worst as the worst is from the best). Returns (objectives,
    how many were replaced, the value they got).

    Why: one training at chance level (a validation loss of ln K among losses of 0.4 to 0.8)
    sets the scale of the GP's normalised targets, so its predicted standard deviation is about
    as large as the whole range everywhere and expected improvement explores blindly (seen on
    Fashion-MNIST: ± 0.6 to 0.85 at every proposal after one, ± 0.04 to 0.12 without). Modelled
    on the scale of the trainings that learned, its region still looks the worst. As told with
    fewer than two trainings that learned (no scale yet), or without a bound (plain BO)."""
    values = [float(y) for y in objectives]
    if learned_nothing is None:
        return values, 0, None
    learned = [y for y in values if y < learned_nothing]
    if len(learned) < 2 or len(learned) == len(values):
        return values, 0, None
    modelled_as = min(max(learned) + (max(learned) - min(learned)), learned_nothing)
    return [y if y < learned_nothing else modelled_as for y in values], len(values) - len(learned), modelled_as


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
        self._gp_space, self._gp_columns = gp_space(domain)

    def tell(self, params: dict[str, Any], architecture: Architecture, objective: float,
             decision: Decision | None = None) -> None:
        """Record the objective of one training; it must be finite (use a penalty for failures)."""
        if not math.isfinite(objective):
            raise ValueError(f"objective must be finite, got {objective}")
        self.points.append(self.domain.encode(params, architecture))
        self.objectives.append(float(objective))

    def _gp_matrix(self, points: Sequence[Sequence[Any]]) -> np.ndarray:
        rows = [[point[i] for i in self._gp_columns] for point in points]
        return self._gp_space.transform(rows)

    def ask(self, state: Any, rng: np.random.Generator,
            pending: Sequence[tuple[dict[str, Any], Architecture]] = ()) -> Proposal:
        """Hyper-parameters and network of the next training, from `state` (its space, its
        architecture, and with `prior` guidance its preferences: sdt/space/preference.py).

        `pending`: the trainings running meanwhile (trials in parallel). The initial phase counts
        them as asked; the model phase fits the GP with each told the best objective so far (the
        constant liar "cl_min", scikit-optimize's default for parallel asks), so the proposal
        moves away from what is already being trained.

        The random phase draws from the prior; afterwards expected improvement is weighted by
        it (EI(x) * Π f(x) ** (β / a), πBO with each preference fading from the trial it
        diagnosed). Without preferences both are plain GP-EI.

        The decision's facts: `phase` ("initial" or "model"); in the initial phase `point` (1-based)
        and `initial_points`; in the model phase `candidates`, the chosen candidate's
        `expected_improvement`, `prior_weight` (1 without preferences), the GP's
        `predicted_objective` and `predicted_std` there, and `best_objective` so far; with trainings running,
        `pending` (how many) and `lie` (the objective they were told)."""
        told = len(self.objectives)
        asked = told + len(pending)
        preferred = bool(getattr(state, "preferences", ()))
        if told == 0 or asked < self.n_initial_points:
            params, architecture = draw_from_prior(state, told, rng)
            source = "drawn from the actions' preferences" if preferred else "drawn at random"
            if told == 0 and any(p.action == START for p in getattr(state, "preferences", ())):
                source = "drawn near where the rules file starts (start_with)"
            return Proposal(params, architecture, Decision(
                DECIDER, f"initial point {asked + 1} of {self.n_initial_points}, {source} (the GP models from "
                         f"point {self.n_initial_points + 1} on)",
                {"phase": "initial", "point": asked + 1, "initial_points": self.n_initial_points}))
        candidates = sample_candidates(state, self.n_candidates, rng)
        gp = cook_estimator("GP", space=self._gp_space, noise="gaussian",
                            random_state=int(rng.integers(0, 2**31 - 1)))
        modelled, replaced, worst = modelled_objectives(self.objectives,
                                                        getattr(state, "learned_nothing_objective", None))
        y_opt = float(np.min(modelled))
        points = self.points + [self.domain.encode(p, a) for p, a in pending]
        objectives = modelled + [y_opt] * len(pending)
        with warnings.catch_warnings():
            # The GP warns about converging to bounds on tiny data sets; that is expected.
            warnings.simplefilter("ignore")
            gp.fit(self._gp_matrix(points), np.asarray(objectives))
            expected_improvement = np.asarray(gaussian_ei(
                self._gp_matrix([self.domain.encode(p, a) for p, a in candidates]),
                gp, y_opt=y_opt, xi=self.xi))
            weights = candidate_weights(state, candidates, told)
            chosen = int(np.argmax(expected_improvement * weights))
            params, architecture = candidates[chosen]
            mean, std = gp.predict(self._gp_matrix([self.domain.encode(params, architecture)]), return_std=True)
        facts = {"phase": "model", "candidates": len(candidates),
                 "expected_improvement": float(expected_improvement[chosen]),
                 "prior_weight": float(weights[chosen]), "predicted_objective": float(mean[0]),
                 "predicted_std": float(std[0]), "best_objective": y_opt}
        if pending:
            facts.update(pending=len(pending), lie=y_opt)
        if replaced:
            facts.update(learned_nothing=replaced, modelled_as=worst)
        weighting = (f", weighted by the actions' preferences ({facts['prior_weight']:.2f})"
                     if preferred and round(facts["prior_weight"], 2) != 1.0 else "")
        summary = (f"highest expected improvement of {len(candidates)} candidates ({facts['expected_improvement']:.3g}"
                   f"{weighting}): the GP predicts an objective of {facts['predicted_objective']:.4g} "
                   f"± {facts['predicted_std']:.2g} against the best {y_opt:.4g}")
        if replaced:
            summary += (f"; {replaced} training{'s' if replaced > 1 else ''} that learned nothing modelled "
                        f"as {worst:.4g}, beyond the worst that learned")
        if pending:
            summary += f"; {len(pending)} running told {y_opt:.4g} (constant liar)"
        return Proposal(params, architecture, Decision(DECIDER, summary, facts))

    def predict(self, params: dict[str, Any], architecture: Architecture) -> tuple[float, float]:
        """GP mean and standard deviation of the objective at one configuration (for tests and explanations)."""
        gp = cook_estimator("GP", space=self._gp_space, noise="gaussian", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(self._gp_matrix(self.points), np.asarray(self.objectives))
            mean, std = gp.predict(self._gp_matrix([self.domain.encode(params, architecture)]), return_std=True)
        return float(mean[0]), float(std[0])


class GaussianProcessStrategy(Strategy):
    """GP-EI BO on the run's fixed domain, candidates from the current (edited) space."""

    follows_edited_space = True

    def __init__(self, domain: Domain, initial_points: int):
        self.optimizer = ConstrainedGPOptimizer(domain, n_initial_points=initial_points)

    @classmethod
    def build(cls, setup: StrategySetup) -> "GaussianProcessStrategy":
        return cls(setup.domain, setup.initial_points)

    def ask(self, state, rng: np.random.Generator, pending=()) -> Proposal:
        return self.optimizer.ask(state, rng, pending)

    def tell(self, params: dict[str, Any], architecture, objective: float,
             decision: Decision | None = None) -> None:
        self.optimizer.tell(params, architecture, objective)
