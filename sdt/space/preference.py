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
- `local`: as `prior`, but when the diagnosed training is the run's best so far the preference
  is the action applied to *that* network, as a practitioner fixes the model that did best:
  the action's region and, in every other hyper-parameter the training used, a band of
  NEIGHBOURHOOD_WIDTH of the dimension's span around its value (its category for a categorical
  one, its network for the architecture). The training after the diagnosis then differs from
  the diagnosed one mainly by the edit, instead of landing anywhere in the dimensions the
  action did not touch (a new L2 switch, unknown to the GP, would otherwise leave the rest of
  the point close to random). The neighbourhood guides that one training only (`next_only`):
  from the one after it on, the action's own region guides, fading as under `prior`. A
  neighbourhood that lasted, even fading, held up to six trainings in a row near one network on
  Fashion-MNIST 3k. A training that is not the run's best gets `prior`'s preference.

A training stuck at chance level (the diagnosis `stuck_at_chance`) also leaves, under `prior` and
`local`, a region to *avoid* that does not fade: its optimiser at learning rates up to
STUCK_RATE_FACTOR times its own. That is not a noisy reading of a curve but a fact about the
setting (the weights never moved), and a smaller or slightly larger rate cannot move them in the
same epochs. Without it the remedy's preference (change_optimizer) faded, and after about ten
trainings the GP's expected improvement at an untried Adadelta point outweighed it: on digits,
eight of `local`'s nine wasted trainings were Adadelta stuck at chance, one seed three times.
Its weight is STUCK_AVOID_WEIGHT, not 1: the region stays reachable for an optimiser that finds
nothing better anywhere else. A training too slow for its optimiser (`low_lr` answered by
`change_optimizer`: an optimiser whose step stays tiny at the space's rates, Adadelta in the
paper's space) leaves the same kind of region, its optimiser at rates up to SLOW_RATE_FACTOR
times its own (`avoided_after_slow`): at a lower rate the same optimiser takes smaller steps
still, and the rule's premise is that the optimiser needs rates far above the space's. Without
it, on Fashion-MNIST 3k an Adadelta training at 1.0e-3 reached 0.17, the remedy's preference
faded, and eight trainings later Adadelta came back at 3.8e-4, stuck at chance.

What those regions learn from one training each, the rules file already says of some
optimisers (`small_step_at_small_rates/1`: an optimiser that needs a learning rate near 1), so
under `prior` and `local` each such optimiser of the space is avoided from the start, before
any training, at the rates the others train at (up to SMALL_RATES_TOP), with the same weight and
for good (`avoided_from_the_start`; trial BEFORE_TRAINING). The initial points are then drawn
from the prior too: the first training is no longer the baselines' common random draw. The
rules file also says where a practitioner starts (`start_with/2`: Adam at 1e-3, batches of 32),
and the first training is drawn near there (`start_region`, a region that guides that one
training only): the first point the Gaussian process sees is a setting that usually trains
well, and the other initial points stay random, so it still sees the rest of the space.

A region too small for uniform candidates to find (a neighbourhood is one in millions of the
space) gets candidates drawn inside it as well (`sample_candidates`), REGION_CANDIDATE_SHARE of
them. The expected improvement is maximised over all, so the model phase finds the region. The
random phase's draw from the prior resamples the same candidates by their weight, so there such
a region counts as that share of the space: by u(x) * Π f(x) ** (β / a) alone it would weigh
nothing (a weight of 10 000 on one millionth of the space), and a neighbourhood of the best
training would guide only once the GP models.

Plain numpy; the optimisers in sdt/strategies/ read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.core.records import ARCHITECTURE_FEATURES, COUNT, Architecture
from sdt.core.vocabulary import LOW_LR, STUCK_AT_CHANCE
from sdt.space.domain import sample_params
from sdt.space.search_space import CATEGORICAL, INTEGER, LOG_UNIFORM, Dimension, SearchSpace

EDIT = "edit"
PRIOR = "prior"
LOCAL = "local"
GUIDANCES = (PRIOR, LOCAL, EDIT)

# β of f(x) ** (β / a): with 4, a rule of weight 0.9 makes its region 10 000 times likelier
# for the next training (0.1 ** 4), 10 times four trainings on and 2.5 times ten trainings on.
PRIOR_STRENGTH = 4.0

# A training stuck at chance: the region avoided from then on is its optimiser at learning rates up
# to this many times its own (a decade: the weights did not move at all, so a rate that is only a
# little larger cannot move them in the same epochs; Adadelta, stuck at 1e-4..1e-3 in the paper's
# space, learns near 1).
STUCK_RATE_FACTOR = 10.0

# ...with this weight, for good: inside the region π = (1 - 0.9) ** β = 1e-4.
STUCK_AVOID_WEIGHT = 0.9

# A training too slow for its optimiser (low_lr answered by change_optimizer): the region avoided
# from then on is its optimiser at learning rates up to this many times its own, with the weight
# above. The rule fires only for an optimiser that needs a rate near 1 (small_step_at_small_rates
# in tuning_rules.pl), so a rate a few times larger is still far too small for it, as for a
# stuck one. Measured: with a factor of 1, on Fashion-MNIST 3k (seed 3) the region kept Adadelta
# below 1.03e-3 after a training there reached 0.17, and the GP went to Adadelta at 1.2e-3, which
# stayed at chance.
SLOW_RATE_FACTOR = STUCK_RATE_FACTOR

# Before any training, an optimiser the rules declare to need a learning rate near 1
# (small_step_at_small_rates/1 in tuning_rules.pl: Adadelta in the paper's space) is avoided at
# the rates the others train at, up to this one, with STUCK_AVOID_WEIGHT, for good
# (`avoided_before_training`). What the avoided regions after a stuck or slow training learn
# from one training each, the rules file already says: Keras' Adadelta at 4e-3 ended 6 epochs
# on digits at 0.99 ln K (diagnosis.pl), and every Adadelta training at 1e-4..1e-3 of the
# benchmarks was stuck at chance or too slow (one wasted training per run and seed on
# Fashion-MNIST 3k, docs/benchmarks.md). Rates above it stay as the space has them.
SMALL_RATES_TOP = 1e-2

# The first training's region around the rules file's start_with/2 values: half-width, as a share
# of each dimension's span in its sampling scale (the learning rate of the default [1e-4, 1e-3]
# within a factor 1.26 of 1e-3, a batch of 32 in [16, 256] within 16..56), and weight (with the
# age of 1 the first training has, π = 0.1 ** 4 outside it).
START_WIDTH = 0.1
START_WEIGHT = 0.9

# Candidates drawn to sample one point from the prior (the random phase, random search).
PRIOR_SAMPLE_CANDIDATES = 1000

# Half-width of a neighbourhood (`local` guidance), as a share of each dimension's span in its
# sampling scale (the logarithm for log-uniform ones): 0.1 keeps the learning rate of the
# default [1e-4, 1e-3] within a factor 1.26 of the diagnosed training's, a batch of 100 in
# [16, 256] within 76..124, and leaves room for the GP to move within the band.
NEIGHBOURHOOD_WIDTH = 0.1

# A preference's region gets candidates drawn inside it until this share of the candidates is
# expected there (uniform candidates rarely fall in a neighbourhood).
REGION_CANDIDATE_SHARE = 0.05

# Values within this relative distance of a region's bound count as inside (float noise).
_BOUND_TOLERANCE = 1e-9


def check_guidance(guidance: str) -> str:
    if guidance not in GUIDANCES:
        raise ConfigurationError(f"--guidance must be one of {', '.join(GUIDANCES)}, got {guidance!r}")
    return guidance


def guides_by_prior(guidance: str | None) -> bool:
    """Whether the actions become preferences (`prior`, `local`) rather than edits (`edit`)."""
    return guidance in (PRIOR, LOCAL)


@dataclass(frozen=True)
class Preference:
    """The region one applied action leans towards, and how strongly (`weight`, in (0, 1)).

    `bounds`: (hyper-parameter, low, high) a number should lie in; `choices`: (hyper-parameter,
    categories) a category should be one of; a hyper-parameter the candidate network does not
    use is no evidence either way. `minimum`: (architecture feature, value) the network should
    reach (a switch: 1 = on).

    `avoid`: the region is one to stay out of (π = 1 - weight inside it, 1 outside) rather than
    one to go to. `lasting`: the preference never fades (its age counts as 1 for good). Both are
    set for the region a training stuck at chance, or too slow for its optimiser, leaves
    (`avoided_after_stuck`, `avoided_after_slow`), whose `action` is AVOID, not a tuning action.
    `next_only`: the preference guides only the training right after
    the one it diagnosed (age 1) and then counts no more (a neighbourhood, `local` guidance).
    """

    action: str
    problem: str | None
    trial: int                                     # the diagnosed trial
    weight: float
    bounds: tuple[tuple[str, float, float], ...] = ()
    minimum: tuple[tuple[str, int], ...] = ()
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    maximum: tuple[tuple[str, int], ...] = ()
    avoid: bool = False
    lasting: bool = False
    next_only: bool = False

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
        return (all(int(getattr(architecture, name)) >= value for name, value in self.minimum)
                and all(int(getattr(architecture, name)) <= value for name, value in self.maximum))

    def factor(self, params: Mapping[str, Any], architecture: Architecture) -> float:
        """1 inside the region, 1 - weight outside (the other way round for a region to avoid)."""
        inside = self.contains(params, architecture)
        return 1.0 - self.weight if inside == self.avoid else 1.0

    def describe(self) -> str:
        parts = [f"{name} in [{low:.4g}, {high:.4g}]" for name, low, high in self.bounds]
        parts += [f"{name} in {{{', '.join(allowed)}}}" for name, allowed in self.choices]
        least, most = dict(self.minimum), dict(self.maximum)
        for name in dict.fromkeys([*least, *most]):
            low, high = least.get(name, 0), most.get(name)
            if _is_switch(name):
                if low >= 1 or high == 0:
                    parts.append(f"{name} {'on' if low >= 1 else 'off'}")
            elif high is None:
                parts.append(f"{name} >= {low}")
            else:
                parts.append(f"{name} = {low}" if low == high else f"{name} in {low}..{high}")
        region = " and ".join(parts) or "nothing"
        return f"not ({region})" if self.avoid else region

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "problem": self.problem, "trial": self.trial, "weight": self.weight,
                "bounds": [list(b) for b in self.bounds], "minimum": [list(m) for m in self.minimum],
                "choices": [[name, list(allowed)] for name, allowed in self.choices],
                "maximum": [list(m) for m in self.maximum], "avoid": self.avoid, "lasting": self.lasting,
                "next_only": self.next_only}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preference":
        return cls(action=str(data["action"]), problem=data.get("problem"), trial=int(data["trial"]),
                   weight=float(data["weight"]),
                   bounds=tuple((str(n), float(lo), float(hi)) for n, lo, hi in data.get("bounds", ())),
                   minimum=tuple((str(n), int(v)) for n, v in data.get("minimum", ())),
                   choices=tuple((str(n), tuple(str(c) for c in allowed)) for n, allowed in data.get("choices", ())),
                   maximum=tuple((str(n), int(v)) for n, v in data.get("maximum", ())),
                   avoid=bool(data.get("avoid", False)), lasting=bool(data.get("lasting", False)),
                   next_only=bool(data.get("next_only", False)))


def _is_switch(name: str) -> bool:
    return any(f.name == name and f.kind != COUNT for f in ARCHITECTURE_FEATURES)


def prior_exponent(age: int, strength: float = PRIOR_STRENGTH) -> float:
    """β / a: how much a preference still counts `age` trainings after the trial it diagnosed
    (a >= 1; 1 for the proposal right after that trial)."""
    return strength / max(int(age), 1)


def preference_age(preference: Preference, trials_told: int) -> int:
    """Trainings told since the trial the preference diagnosed (trial indices count from 0, so
    right after trial k, with k + 1 told, the age is 1); at least 1, and 1 for good for a
    lasting preference."""
    if preference.lasting:
        return 1
    return max(int(trials_told) - int(preference.trial), 1)


def prior_weight(params: Mapping[str, Any], architecture: Architecture, preferences: Iterable[Preference],
                 trials_told: int, strength: float = PRIOR_STRENGTH) -> float:
    """Π f(x) ** (β / a) of one candidate over the preferences; 1 without preferences."""
    log_weight = 0.0
    for preference in preferences:
        if preference.next_only and preference_age(preference, trials_told) > 1:
            continue
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


AVOID = "avoid"


def avoided_after_stuck(trial: int, params: Mapping[str, Any]) -> Preference | None:
    """The lasting region to avoid after training `trial`, trained with `params`, stuck at chance:
    its optimiser at learning rates up to STUCK_RATE_FACTOR times its own (None when the space
    has no optimiser or learning rate to say where)."""
    return _avoided_rates(trial, params, STUCK_AT_CHANCE, STUCK_RATE_FACTOR)


def avoided_after_slow(trial: int, params: Mapping[str, Any]) -> Preference | None:
    """The lasting region to avoid after training `trial`, trained with `params`, too slow for its
    optimiser (low_lr answered by change_optimizer): its optimiser at learning rates up to
    SLOW_RATE_FACTOR times its own (None without an optimiser or learning rate)."""
    return _avoided_rates(trial, params, LOW_LR, SLOW_RATE_FACTOR)


# The trial a region avoided before any training counts from (none: it is lasting).
BEFORE_TRAINING = -1


def avoided_before_training(optimizer: str, top_rate: float = SMALL_RATES_TOP) -> Preference:
    """The lasting region to avoid from the start for `optimizer` (a value of the space's
    optimizer dimension), which the rules declare needs a learning rate near 1: that optimiser
    at learning rates up to `top_rate`."""
    return Preference(AVOID, None, BEFORE_TRAINING, STUCK_AVOID_WEIGHT,
                      bounds=(("learning_rate", 0.0, float(top_rate)),),
                      choices=(("optimizer", (str(optimizer),)),), avoid=True, lasting=True)


def avoided_from_the_start(space: SearchSpace, slow_optimizers: Iterable[str]) -> tuple[Preference, ...]:
    """`avoided_before_training` for each value of the space's optimizer dimension whose
    lower-case name is in `slow_optimizers`, when the space also has a learning rate that reaches
    below SMALL_RATES_TOP (none otherwise)."""
    if "optimizer" not in space or "learning_rate" not in space:
        return ()
    rate, optimizer = space["learning_rate"], space["optimizer"]
    if optimizer.kind != CATEGORICAL or rate.kind == CATEGORICAL or float(rate.domain_low) >= SMALL_RATES_TOP:
        return ()
    slow = {name.lower() for name in slow_optimizers}
    return tuple(avoided_before_training(choice) for choice in optimizer.domain_categories
                 if str(choice).lower() in slow)


START = "start"


def start_region(space: SearchSpace, start_values: Iterable[tuple[str, Any]],
                 width: float = START_WIDTH) -> Preference | None:
    """The region the first training is drawn in (`start_with/2` of the rules file): each named
    category that the space's dimension offers (matched without regard to case), and a band of
    `width` of the span around each named number (clipped to the space's current bounds).
    A value the space has no dimension for, a category it does not offer and a number for a
    categorical dimension (or the reverse) constrain nothing. It guides the training after
    BEFORE_TRAINING only (`next_only`: the first). None when nothing is constrained."""
    bounds, choices = [], []
    values = dict(start_values)
    for dimension in space:                     # in the space's order
        if dimension.name not in values:
            continue
        name, value = dimension.name, values[dimension.name]
        if dimension.kind == CATEGORICAL:
            if not isinstance(value, str):
                continue
            matching = tuple(str(c) for c in dimension.categories if str(c).lower() == value.lower())
            if matching:
                choices.append((name, matching))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            bounds.append((name, *_band(dimension, float(value), width)))
    if not bounds and not choices:
        return None
    return Preference(START, None, BEFORE_TRAINING, START_WEIGHT, bounds=tuple(bounds), choices=tuple(choices),
                      next_only=True)


def describe_start(preference: Preference) -> str:
    """`optimizer Adam, learning_rate 0.000794..0.001, batch_size 16..56` for the console."""
    parts = [f"{name} {'/'.join(allowed)}" for name, allowed in preference.choices]
    parts += [f"{name} {low:.3g}..{high:.3g}" if low != high else f"{name} {low:.3g}"
              for name, low, high in preference.bounds]
    return ", ".join(parts)


def describe_avoided_rates(preference: Preference) -> str:
    """`Adadelta at learning rates up to 0.01 (weight 0.90, not fading)` for a lasting region of
    avoided rates of one optimiser."""
    (_, _, highest), = preference.bounds
    (_, (optimizer, *_)), = preference.choices
    return f"{optimizer} at learning rates up to {highest:.3g} (weight {preference.weight:.2f}, not fading)"


def _avoided_rates(trial: int, params: Mapping[str, Any], problem: str, rate_factor: float) -> Preference | None:
    optimizer, rate = params.get("optimizer"), params.get("learning_rate")
    if optimizer is None or rate is None:
        return None
    return Preference(AVOID, problem, int(trial), STUCK_AVOID_WEIGHT,
                      bounds=(("learning_rate", 0.0, rate_factor * float(rate)),),
                      choices=(("optimizer", (str(optimizer),)),), avoid=True, lasting=True)


def neighbourhood(preference: Preference, params: Mapping[str, Any], architecture: Architecture,
                  space: SearchSpace, width: float = NEIGHBOURHOOD_WIDTH) -> Preference:
    """`preference` applied to one training (`local` guidance): its region, and around every other
    hyper-parameter the training used a band of `width` of the dimension's span (in its sampling
    scale) clipped to the space, its category for a categorical one; the network is the trained
    one with the action's features (a feature the action did not touch stays as it was)."""
    constrained = {name for name, _, _ in preference.bounds} | {name for name, _ in preference.choices}
    bounds, choices = list(preference.bounds), list(preference.choices)
    for name, value in used_params(params, architecture).items():
        if name in constrained or name not in space:
            continue
        dimension = space[name]
        if dimension.kind == CATEGORICAL:
            choices.append((name, (str(value),)))
        else:
            bounds.append((name, *_band(dimension, float(value), width)))
    edited = dict(preference.minimum)
    network = tuple((f.name, int(edited.get(f.name, getattr(architecture, f.name)))) for f in ARCHITECTURE_FEATURES)
    return replace(preference, bounds=tuple(bounds), choices=tuple(choices), minimum=network, maximum=network,
                   next_only=True)


def _scale(dimension: Dimension):
    """The dimension's sampling scale and its inverse (the logarithm for log-uniform ones)."""
    if dimension.prior == LOG_UNIFORM:
        return math.log, math.exp
    return (lambda v: v), (lambda v: v)


def _band(dimension: Dimension, value: float, width: float) -> tuple[float, float]:
    """[value -/+ width * span] in the dimension's sampling scale, inside its current bounds."""
    low, high = float(dimension.low), float(dimension.high)
    value = min(max(value, low), high)
    if low == high:
        return low, high
    forward, inverse = _scale(dimension)
    half = width * (forward(high) - forward(low))
    band_low = max(low, inverse(forward(value) - half))
    band_high = min(high, inverse(forward(value) + half))
    if dimension.kind == INTEGER:
        band_low, band_high = float(math.floor(band_low)), float(math.ceil(band_high))
    return band_low, band_high


def _region_space(preference: Preference, space: SearchSpace) -> SearchSpace | None:
    """The space cut to the preference's region (None where the region leaves it)."""
    for name, low, high in preference.bounds:
        if name not in space:
            continue
        dimension = space[name]
        low, high = max(low, float(dimension.low)), min(high, float(dimension.high))
        if dimension.kind == INTEGER:
            low, high = math.ceil(low - _BOUND_TOLERANCE), math.floor(high + _BOUND_TOLERANCE)
        if low > high:
            return None
        space = space.replace_dimension(replace(dimension, low=dimension.python_value(low),
                                                high=dimension.python_value(high)))
    for name, allowed in preference.choices:
        if name not in space:
            continue
        dimension = space[name]
        kept = tuple(c for c in dimension.categories if c in allowed)
        if not kept:
            return None
        space = space.replace_dimension(replace(dimension, categories=kept))
    return space


def _feature_ranges(preference: Preference, available: Architecture) -> dict[str, tuple[int, int]] | None:
    """Per architecture feature, the values the region allows within `available` (None if none)."""
    least, most = dict(preference.minimum), dict(preference.maximum)
    ranges = {}
    for feature in ARCHITECTURE_FEATURES:
        top = int(getattr(available, feature.name))
        low, high = least.get(feature.name, 0), min(most.get(feature.name, top), top)
        if low > high:
            return None
        ranges[feature.name] = (low, high)
    return ranges


def region_share(preference: Preference, space: SearchSpace, available: Architecture) -> float:
    """The share of uniform candidates expected in the preference's region (every constraint
    counted as if the candidate used its hyper-parameter: an approximation where it does not)."""
    cut, ranges = _region_space(preference, space), _feature_ranges(preference, available)
    if cut is None or ranges is None:
        return 0.0
    share = 1.0
    for dimension, part in zip(space, cut):
        if dimension.kind == CATEGORICAL:
            share *= len(part.categories) / len(dimension.categories)
        elif dimension.kind == INTEGER and dimension.prior != LOG_UNIFORM:
            share *= (int(part.high) - int(part.low) + 1) / (int(dimension.high) - int(dimension.low) + 1)
        elif dimension.high > dimension.low:
            forward, _ = _scale(dimension)
            upper = (lambda d: d.high + 1) if dimension.kind == INTEGER else (lambda d: d.high)
            share *= ((forward(upper(part)) - forward(part.low))
                      / (forward(upper(dimension)) - forward(dimension.low)))
    for feature in ARCHITECTURE_FEATURES:
        low, high = ranges[feature.name]
        share *= (high - low + 1) / (int(getattr(available, feature.name)) + 1)
    return share


def sample_in_region(preference: Preference, state: Any, n_samples: int,
                     rng: np.random.Generator) -> list[tuple[dict[str, Any], Architecture]]:
    """`n_samples` candidates drawn uniformly inside the preference's region (within the state's
    space and available features); none where the region is empty."""
    cut, ranges = _region_space(preference, state.space), _feature_ranges(preference, state.architecture)
    if cut is None or ranges is None or n_samples <= 0:
        return []
    params = sample_params(cut, n_samples, rng)
    columns = {name: rng.integers(low, high + 1, size=n_samples) for name, (low, high) in ranges.items()}
    networks = [Architecture(**{f.name: (int if f.kind == COUNT else bool)(columns[f.name][i])
                                for f in ARCHITECTURE_FEATURES}) for i in range(n_samples)]
    return [(used_params(p, a), a) for p, a in zip(params, networks)]


def _top_ups(state: Any, n_samples: int) -> list[tuple[Preference, int, float]]:
    """(preference, candidates to draw inside it, its uniform share) for every preference whose
    region uniform candidates would rarely reach."""
    wanted = REGION_CANDIDATE_SHARE * n_samples
    top_ups = []
    for preference in getattr(state, "preferences", ()) or ():
        if preference.avoid:
            continue
        share = region_share(preference, state.space, state.architecture)
        if 0.0 < share and share * n_samples < wanted:
            top_ups.append((preference, math.ceil(wanted), share))
    return top_ups


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
    architecture and its params come from the state's (edited) space; with `prior` / `local`
    the architecture varies within what is available and each candidate keeps only the
    hyper-parameters its network uses, and a preference's region that uniform candidates would
    rarely reach gets REGION_CANDIDATE_SHARE of `n_samples` drawn inside it, after them."""
    return _candidates_and_top_ups(state, n_samples, rng)[0]


def _candidates_and_top_ups(state: Any, n_samples: int, rng: np.random.Generator):
    params = sample_params(state.space, n_samples, rng)
    if not guides_by_prior(getattr(state, "guidance", EDIT)):
        return [(p, state.architecture) for p in params], []
    networks = sample_architectures(state.architecture, n_samples, rng)
    candidates = [(used_params(p, a), a) for p, a in zip(params, networks)]
    top_ups = _top_ups(state, n_samples)
    for preference, count, _ in top_ups:
        candidates += sample_in_region(preference, state, count, rng)
    return candidates, top_ups


def candidate_weights(state: Any, candidates: list[tuple[dict[str, Any], Architecture]],
                      trials_told: int) -> np.ndarray:
    """Π f(x) ** (β / a) of every candidate (all 1 without preferences)."""
    preferences = tuple(getattr(state, "preferences", ()) or ())
    if not preferences:
        return np.ones(len(candidates))
    return np.array([prior_weight(p, a, preferences, trials_told) for p, a in candidates])


def draw_from_prior(state: Any, trials_told: int, rng: np.random.Generator,
                    n_candidates: int = PRIOR_SAMPLE_CANDIDATES) -> tuple[dict[str, Any], Architecture]:
    """One point drawn from the prior: the candidates of `sample_candidates` (uniform, and
    inside small regions) resampled by their prior weight.

    Without preferences this is one uniform draw (the same draw as `sample_params(space, 1)`,
    so the random phases of all strategies start alike)."""
    if not getattr(state, "preferences", ()):
        # The same draw as every other strategy's random phase (common random numbers).
        params = sample_params(state.space, 1, rng)[0]
        if guides_by_prior(getattr(state, "guidance", EDIT)):
            params = used_params(params, state.architecture)
        return params, state.architecture
    candidates, _ = _candidates_and_top_ups(state, n_candidates, rng)
    weights = candidate_weights(state, candidates, trials_told)
    total = float(weights.sum())
    if total <= 0.0:
        return candidates[0]
    return candidates[int(rng.choice(len(candidates), p=weights / total))]


__all__ = ["AVOID", "BEFORE_TRAINING", "EDIT", "GUIDANCES", "LOCAL", "NEIGHBOURHOOD_WIDTH", "PRIOR", "REGION_CANDIDATE_SHARE", "PRIOR_SAMPLE_CANDIDATES", "PRIOR_STRENGTH", "Preference",
           "SLOW_RATE_FACTOR", "START", "START_WEIGHT", "START_WIDTH", "STUCK_AVOID_WEIGHT", "STUCK_RATE_FACTOR", "available_union", "avoided_after_slow", "avoided_after_stuck", "candidate_weights", "check_guidance", "describe_start", "draw_from_prior",
           "guides_by_prior", "neighbourhood", "preference_age", "preference_of_changes", "prior_exponent", "prior_weight", "region_share",
           "sample_architectures", "sample_candidates", "sample_in_region", "start_region", "used_params", "within"]
