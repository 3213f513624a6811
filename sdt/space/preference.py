"""Guidance that the data can overrule: the tuning actions as a prior over the space (πBO).

Two ways for a tuning action to guide the optimiser (`--guidance`):

- `edit`, the paper's: the action edits the search space (a range jumps, a layer is added for
  good) and the next candidates come only from the edited space.
- `prior` (Hvarfner et al., "πBO", ICLR 2022): the action never narrows the space (a range
  only widens, to take in a region beyond it, e.g. learning rates above the initial range) and
  records a `Preference`, the region the edit would have cut the space down to. Candidates
  come from the whole space; their acquisition value is multiplied by

      Π over preferences of  f(x) ** (PRIOR_STRENGTH / a)

      f(x) = 1 if x is in the preference's region, else 1 - weight
      a    = the preference's age: trainings told since the trial it diagnosed (1 for the
             proposal right after it)

  with `weight` the probability the tuning rule gave the action. A strong rule keeps the next
  search inside its region almost as an edit would; as trials accumulate after it the exponent
  shrinks, f ** (β / a) tends to 1 and the optimiser's own model decides, so a wrong diagnosis
  costs little and the whole initial space stays reachable. πBO's prior is given before the
  run and fades as β / n with all n trials; a diagnosis arrives during the run, so its strength
  counts from when it was made: an action diagnosed at the tenth training guides the eleventh as
  strongly as one diagnosed at the first guides the second, and diagnoses that repeat (the same
  optimiser stuck at chance again) add up. Architecture features that an action switched on or
  added become *available*: each candidate network may use them or not (the optimiser turns
  them on and off), and the preference says which way the action leaned.

Plain numpy; the optimisers in sdt/strategies/ read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.records import ARCHITECTURE_FEATURES, COUNT, Architecture
from sdt.space.domain import sample_params

EDIT = "edit"
PRIOR = "prior"
GUIDANCES = (PRIOR, EDIT)

# β of f(x) ** (β / a): with 4, a rule of weight 0.9 makes its region 10 000 times likelier
# for the next training (0.1 ** 4), 10 times four trainings on and 2.5 times ten trainings on.
PRIOR_STRENGTH = 4.0

# Candidates drawn to sample one point from the prior (the random phase, random search).
PRIOR_SAMPLE_CANDIDATES = 1000

# Values within this relative distance of a region's bound count as inside (float noise).
_BOUND_TOLERANCE = 1e-9


def check_guidance(guidance: str) -> str:
    if guidance not in GUIDANCES:
        raise ConfigurationError(f"--guidance must be one of {', '.join(GUIDANCES)}, got {guidance!r}")
    return guidance


@dataclass(frozen=True)
class Preference:
    """The region one applied action leans towards, and how strongly (`weight`, in (0, 1)).

    `bounds`: (hyper-parameter, low, high) a number should lie in; `choices`: (hyper-parameter,
    categories) a category should be one of; a hyper-parameter the candidate network does not
    use is no evidence either way. `minimum`: (architecture feature, value) the network should
    reach (a switch: 1 = on).
    """

    action: str
    problem: str | None
    trial: int                                     # the diagnosed trial
    weight: float
    bounds: tuple[tuple[str, float, float], ...] = ()
    minimum: tuple[tuple[str, int], ...] = ()
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigurationError(f"a preference's weight must be in [0, 1], got {self.weight!r}")

    def contains(self, params: Mapping[str, Any], architecture: Architecture) -> bool:
        for name, low, high in self.bounds:
            if name not in params:
                continue
            value = float(params[name])
            slack = _BOUND_TOLERANCE * max(abs(low), abs(high), 1e-12)
            if not low - slack <= value <= high + slack:
                return False
        if any(name in params and params[name] not in allowed for name, allowed in self.choices):
            return False
        return all(int(getattr(architecture, name)) >= value for name, value in self.minimum)

    def factor(self, params: Mapping[str, Any], architecture: Architecture) -> float:
        """1 inside the region, 1 - weight outside."""
        return 1.0 if self.contains(params, architecture) else 1.0 - self.weight

    def describe(self) -> str:
        parts = [f"{name} in [{low:.4g}, {high:.4g}]" for name, low, high in self.bounds]
        parts += [f"{name} in {{{', '.join(allowed)}}}" for name, allowed in self.choices]
        parts += [f"{name} {'on' if value == 1 and _is_switch(name) else f'>= {value}'}"
                  for name, value in self.minimum]
        return " and ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "problem": self.problem, "trial": self.trial, "weight": self.weight,
                "bounds": [list(b) for b in self.bounds], "minimum": [list(m) for m in self.minimum],
                "choices": [[name, list(allowed)] for name, allowed in self.choices]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preference":
        return cls(action=str(data["action"]), problem=data.get("problem"), trial=int(data["trial"]),
                   weight=float(data["weight"]),
                   bounds=tuple((str(n), float(lo), float(hi)) for n, lo, hi in data.get("bounds", ())),
                   minimum=tuple((str(n), int(v)) for n, v in data.get("minimum", ())),
                   choices=tuple((str(n), tuple(str(c) for c in allowed)) for n, allowed in data.get("choices", ())))


def _is_switch(name: str) -> bool:
    return any(f.name == name and f.kind != COUNT for f in ARCHITECTURE_FEATURES)


def prior_exponent(age: int, strength: float = PRIOR_STRENGTH) -> float:
    """β / a: how much a preference still counts `age` trainings after the trial it diagnosed
    (a >= 1; 1 for the proposal right after that trial)."""
    return strength / max(int(age), 1)


def preference_age(preference: Preference, trials_told: int) -> int:
    """Trainings told since the trial the preference diagnosed (trial indices count from 0, so
    right after trial k, with k + 1 told, the age is 1); at least 1."""
    return max(int(trials_told) - int(preference.trial), 1)


def prior_weight(params: Mapping[str, Any], architecture: Architecture, preferences: Iterable[Preference],
                 trials_told: int, strength: float = PRIOR_STRENGTH) -> float:
    """Π f(x) ** (β / a) of one candidate over the preferences; 1 without preferences."""
    log_weight = 0.0
    for preference in preferences:
        factor = preference.factor(params, architecture)
        if factor >= 1.0:
            continue
        if factor <= 0.0:
            return 0.0
        log_weight += prior_exponent(preference_age(preference, trials_told), strength) * math.log(factor)
    return math.exp(log_weight)


def preference_of_changes(action: str, problem: str | None, trial: int, weight: float,
                          changes: Iterable[Any]) -> Preference:
    """The region an edit would have cut the space to, from its before -> after changes.

    A moved range gives its new bounds, a narrowed category list its new categories, a
    switched-on or added feature its new value as a minimum; a dimension the edit only added
    (before None) constrains nothing."""
    bounds, minimum, choices = [], [], []
    for change in changes:
        kind, _, name = change.target.partition(".")
        if kind == "space" and change.before is not None:
            if all(isinstance(v, str) for v in change.after):
                choices.append((name, tuple(change.after)))
                continue
            low, high = change.after
            bounds.append((name, float(low), float(high)))
        elif kind == "architecture":
            minimum.append((name, int(change.after)))
    return Preference(action, problem, trial, float(weight), tuple(bounds), tuple(minimum), tuple(choices))


def available_union(available: Architecture, other: Architecture) -> Architecture:
    """Every feature at the larger of the two values: what either network may use."""
    return replace(available, **{f.name: max(getattr(available, f.name), getattr(other, f.name))
                                 for f in fields(Architecture)})


def within(architecture: Architecture, available: Architecture) -> bool:
    """Whether `architecture` uses only what `available` offers."""
    return all(getattr(architecture, f.name) <= getattr(available, f.name) for f in fields(Architecture))


def used_params(params: Mapping[str, Any], architecture: Architecture) -> dict[str, Any]:
    """`params` without the hyper-parameters of layers and switches `architecture` does not use."""
    unused = set()
    for feature in ARCHITECTURE_FEATURES:
        value = getattr(architecture, feature.name)
        if feature.kind == COUNT:
            unused |= {feature.width_name(i) for i in range(value, feature.maximum)}
        elif not value:
            unused |= set(feature.parameters)
    return {name: v for name, v in params.items() if name not in unused}


def sample_architectures(available: Architecture, n_samples: int, rng: np.random.Generator) -> list[Architecture]:
    """Networks that use any part of `available`: counts uniform in 0..available, switches on or off."""
    columns = {}
    for feature in ARCHITECTURE_FEATURES:
        top = int(getattr(available, feature.name))
        drawn = rng.integers(0, top + 1, size=n_samples) if top > 0 else np.zeros(n_samples, dtype=int)
        columns[feature.name] = [int(v) if feature.kind == COUNT else bool(v) for v in drawn]
    return [Architecture(**{name: column[i] for name, column in columns.items()}) for i in range(n_samples)]


def sample_candidates(state: Any, n_samples: int, rng: np.random.Generator) -> list[tuple[dict[str, Any], Architecture]]:
    """Candidate (params, architecture) pairs for the next training.

    With `edit` guidance (or a state without guidance) every candidate uses the state's
    architecture and its params come from the state's (edited) space; with `prior` the
    architecture varies within what is available and each candidate keeps only the
    hyper-parameters its network uses."""
    params = sample_params(state.space, n_samples, rng)
    if getattr(state, "guidance", EDIT) != PRIOR:
        return [(p, state.architecture) for p in params]
    networks = sample_architectures(state.architecture, n_samples, rng)
    return [(used_params(p, a), a) for p, a in zip(params, networks)]


def candidate_weights(state: Any, candidates: list[tuple[dict[str, Any], Architecture]],
                      trials_told: int) -> np.ndarray:
    """Π f(x) ** (β / a) of every candidate (all 1 without preferences)."""
    preferences = tuple(getattr(state, "preferences", ()) or ())
    if not preferences:
        return np.ones(len(candidates))
    return np.array([prior_weight(p, a, preferences, trials_told) for p, a in candidates])


def draw_from_prior(state: Any, trials_told: int, rng: np.random.Generator,
                    n_candidates: int = PRIOR_SAMPLE_CANDIDATES) -> tuple[dict[str, Any], Architecture]:
    """One point drawn from the prior: uniform candidates resampled by their prior weight.

    Without preferences this is one uniform draw (the same draw as `sample_params(space, 1)`,
    so the random phases of all strategies start alike)."""
    if not getattr(state, "preferences", ()):
        # The same draw as every other strategy's random phase (common random numbers).
        params = sample_params(state.space, 1, rng)[0]
        if getattr(state, "guidance", EDIT) == PRIOR:
            params = used_params(params, state.architecture)
        return params, state.architecture
    candidates = sample_candidates(state, n_candidates, rng)
    weights = candidate_weights(state, candidates, trials_told)
    total = float(weights.sum())
    if total <= 0.0:
        return candidates[0]
    return candidates[int(rng.choice(len(candidates), p=weights / total))]


__all__ = ["EDIT", "GUIDANCES", "PRIOR", "PRIOR_SAMPLE_CANDIDATES", "PRIOR_STRENGTH", "Preference",
           "available_union", "candidate_weights", "check_guidance", "draw_from_prior",
           "preference_age", "preference_of_changes", "prior_exponent", "prior_weight", "sample_architectures",
           "sample_candidates", "used_params", "within"]
