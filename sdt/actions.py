"""The tuning actions: one small function per action, each returning a new search space and
architecture together with a before -> after record of exactly what it changed.

The diagnosis (diagnosis.pl) finds problems, the tuning rules (tuning_rules.pl) weigh the
actions, the controller picks them; this module only *performs* a chosen action. It knows
nothing of Keras, ProbLog or the optimiser, never trains, and never mutates its inputs:
every record is frozen and every function returns new objects.

Every action works on the *current* bounds of the search space and never moves a bound
outside the dimension's domain (the hard limits fixed when the run starts), never inverts a
range (low <= high always) and changes nothing but what its entry below says. An action that
would change nothing any more raises `ActionNotApplicable`, so the controller can skip it (or
tell the rules it cannot fire) instead of recording an empty edit.

`lr` is the learning rate the diagnosed trial used, `used` the value the trial used for the
dimension at hand; "clipped" means clipped into the dimension's domain.

decr_lr            learning_rate: high -> min(high, lr / LR_STEP_FACTOR),
                   low -> min(low, lr / LR_WINDOW_FACTOR), clipped. Neither bound rises; the
                   new high is below lr unless it sits at the domain bottom.
                   Not applicable: no real learning_rate dimension, or nothing would move
                   (already at the bottom of the domain).
inc_lr             The mirror image: low -> max(low, lr * LR_STEP_FACTOR),
                   high -> max(high, lr * LR_WINDOW_FACTOR), clipped. Neither bound falls.
                   Not applicable: no real learning_rate dimension, or already at the top.
inc_dropout        Every real dimension named dr* (dr1_2, dr_f, ...):
                   low -> max(low + DROPOUT_STEP, used), clipped;
                   high -> max(high, min(new low + DROPOUT_MIN_WIDTH, domain top)), so a
                   searchable range remains while the domain allows. A high never falls.
                   Not applicable: no dropout dimension, or every dropout low at its domain top.
inc_batch_size     batch_size (integer): low -> max(low * BATCH_SIZE_STEP, used), clipped;
                   high -> max(high, new low).
                   Not applicable: no integer batch_size, or its low at the domain top.
decr_batch_size    batch_size (integer): high -> min(high, floor(used / BATCH_SIZE_STEP)),
                   low -> min(low, new high), clipped. Neither bound rises; the new high is
                   at most half the used batch unless it sits at the domain bottom.
                   Not applicable: no integer batch_size, or its high at the domain bottom.
inc_neurons        Every integer width dimension (unit_c1, unit_c2, unit_d, unit_c3.., unit_d2..):
                   low -> low + max(1, ceil(NEURON_STEP_FRACTION * (high - low))), clipped;
                   high -> max(high, new low). The trial's widths play no part.
                   Not applicable: no width dimension, or every width low at its domain top.
reg_l2             architecture.l2 -> True (L2 only; batch normalisation is add_batch_norm); adds
                   the l2_factor dimension (l2_factor_dimension(): log scale around 1e-4) if the
                   space lacks it. Not applicable: l2 already on.
add_batch_norm     architecture.batch_norm -> True. Not applicable: already on.
data_augmentation  architecture.augmentation -> True. Not applicable: already on.
new_fc_layer       architecture.extra_dense_layers += 1; adds the new layer's width unit_d{k+2}
                   (the bounds of unit_d). Not applicable: limits.max_extra_dense_layers reached.
new_conv_layer     architecture.extra_conv_blocks += 1; adds the new block's filters unit_c{k+3}
                   (the bounds of unit_c2). Not applicable: limits.max_extra_conv_blocks reached
                   (the caller derives it from the input size; it may be 0).
change_optimizer   optimizer (categorical): the optimiser the trial used leaves the choices.
                   Not applicable: no categorical optimizer dimension, the trial's optimiser
                   is not among the choices, or it is the only one left.

Why these rules. The learning-rate edits move the window around the value that was just
diagnosed as too high (too low): the next trials search strictly below (above) it, down
(up) to a decade away, yet never undo an earlier widening. The original implementation's
"decrease LR" could raise a bound and its "increase dropout" could widen instead of raise;
here each edit is monotone in its direction and the tests check it. Batch size
doubles its low so that a handful of actions reach the top; the used value counts so the
next trials never go below the batch that fluctuated. Its mirror, decr_batch_size, gives a slow
training more optimiser steps per epoch: the next trials search at most half the batch that
trained too slowly. Width steps are a quarter of the
current range, so the low approaches the top geometrically and stays an integer.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from sdt.core.records import (
    ARCHITECTURE_FEATURES, MAX_EXTRA_CONV_BLOCKS, MAX_EXTRA_DENSE_LAYERS, SWITCH, Architecture,
)
from sdt.space.search_space import (
    CATEGORICAL, INTEGER, LOG_UNIFORM, REAL, Dimension, SearchSpace,
    extra_conv_width_dimension, extra_dense_width_dimension, feature_parameter_dimension,
)
from sdt.core.vocabulary import (
    ACTIONS, BATCH_SIZE, CHANGE_OPTIMIZER, OPTIMIZER, DECR_BATCH_SIZE, DECR_LR, INC_BATCH_SIZE, INC_DROPOUT, INC_LR, INC_NEURONS, LEARNING_RATE, NEW_CONV_LAYER,
    NEW_FC_LAYER,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Factors (see the table in the module docstring).
# ---------------------------------------------------------------------------------------

# decr_lr: the new high is the used learning rate divided by this (inc_lr: the new low is it
# multiplied by this), so the next trials search strictly on the other side of the used value.
LR_STEP_FACTOR = 2.0
# decr_lr: the new low reaches at least one decade below the used learning rate
# (inc_lr: the new high at least one decade above).
LR_WINDOW_FACTOR = 10.0
# inc_dropout: how much every dropout low rises per action (a rate in [0, 1]).
DROPOUT_STEP = 0.1
# inc_dropout: the high rises (within the domain) when needed to keep at least this width.
DROPOUT_MIN_WIDTH = 0.1
# inc_batch_size: the batch-size low is multiplied by this per action (at least the used value).
BATCH_SIZE_STEP = 2
# inc_neurons: every width low rises by this fraction of its current range (at least 1 unit).
NEURON_STEP_FRACTION = 0.25

# Which dimensions the dropout and width actions touch.
DROPOUT_PREFIX = "dr"
WIDTH_NAME = re.compile(r"^unit_[cd]\d*$")   # unit_c1, unit_c2, unit_d, unit_c3.., unit_d2..


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------

class ActionNotApplicable(Exception):
    """The action cannot change anything any more; `reason` says why (plain words).

    Control flow, not a failure: deliberately not a TunerError.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Change:
    """One edit, before -> after.

    `target` is "space.<dimension>" (before/after are [low, high] lists; before is None when
    the action added the dimension) or "architecture.<field>" (bools or ints).
    """

    target: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "before": _json_value(self.before), "after": _json_value(self.after)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Change":
        return cls(target=data["target"], before=data.get("before"), after=data.get("after"))


@dataclass(frozen=True)
class ActionRecord:
    """One applied action: the problem it answered, its changes and a sentence with numbers."""

    action: str
    problem: str | None
    changes: tuple[Change, ...]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "problem": self.problem,
                "changes": [c.to_dict() for c in self.changes], "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ActionRecord":
        return cls(action=data["action"], problem=data.get("problem"),
                   changes=tuple(Change.from_dict(c) for c in data.get("changes", ())),
                   description=data.get("description", ""))


@dataclass(frozen=True)
class ArchitectureLimits:
    """How far the architecture actions may grow the network.

    The caller computes `max_extra_conv_blocks` (the neural block's limit for the input; 0
    for a model that cannot add conv blocks). Both limits must stay within the hard
    caps of sdt.core.records, because the optimiser's domain only covers dimensions up to them.
    """

    max_extra_conv_blocks: int
    max_extra_dense_layers: int = MAX_EXTRA_DENSE_LAYERS

    def __post_init__(self) -> None:
        for name, value, cap in (("max_extra_conv_blocks", self.max_extra_conv_blocks, MAX_EXTRA_CONV_BLOCKS),
                                 ("max_extra_dense_layers", self.max_extra_dense_layers, MAX_EXTRA_DENSE_LAYERS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= cap:
                raise ValueError(f"{name} must be an integer in 0..{cap}, got {value!r}")


@dataclass(frozen=True)
class TuningOutcome:
    """What one iteration's tuning did: the new space and architecture, and the actions
    applied (with before -> after) or skipped (with the reason)."""

    space: SearchSpace
    architecture: Architecture
    applied: tuple[ActionRecord, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def applied_actions(self) -> tuple[str, ...]:
        return tuple(record.action for record in self.applied)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "architecture": self.architecture.to_dict(),
                "applied": [r.to_dict() for r in self.applied],
                "skipped": [[action, reason] for action, reason in self.skipped]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TuningOutcome":
        return cls(space=SearchSpace.from_dict(data["space"]),
                   architecture=Architecture.from_dict(data["architecture"]),
                   applied=tuple(ActionRecord.from_dict(r) for r in data.get("applied", ())),
                   skipped=tuple((str(a), str(r)) for a, r in data.get("skipped", ())))


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _tidy(value: float) -> float:
    """Drop float noise (0.002 + 0.1 = 0.10200000000000001) so records read cleanly."""
    return float(f"{value:.10g}")


def _bounds(dimension: Dimension) -> list[int | float]:
    return [dimension.low, dimension.high]


def _with_bounds(dimension: Dimension, low: float, high: float) -> Dimension:
    """`dimension` with new bounds, clipped into its domain, as plain ints or floats."""
    if dimension.kind == REAL:
        low, high = _tidy(low), _tidy(high)
    moved = dimension.with_bounds(low, high)
    if dimension.kind == REAL:
        moved = replace(moved, low=float(moved.low), high=float(moved.high))
    return moved


def _format_value(dimension: Dimension, value: float) -> str:
    if dimension.kind == INTEGER:
        return str(int(value))
    if dimension.prior == LOG_UNIFORM:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return f"{value:.3g}"


def _format_bounds(dimension: Dimension, bounds: Sequence[float]) -> str:
    return "[" + ", ".join(_format_value(dimension, v) for v in bounds) + "]"


def _numeric_dimension(space: SearchSpace, name: str, kinds: tuple[str, ...]) -> Dimension:
    """The dimension `name` if the space has it with one of `kinds`, else ActionNotApplicable."""
    if name not in space:
        raise ActionNotApplicable(f"the search space has no {name} dimension")
    dimension = space[name]
    if dimension.kind not in kinds:
        raise ActionNotApplicable(f"{name} is {dimension.kind}, its bounds cannot be moved")
    return dimension


def _used_value(params: dict[str, Any], dimension: Dimension, required: bool) -> float | None:
    """The value the diagnosed trial used for `dimension` (None if absent and not required)."""
    if dimension.name not in params:
        if required:
            raise ValueError(f"params must hold the trial's {dimension.name!r} "
                             f"(the hyper-parameters of the diagnosed trial), got keys {sorted(params)}")
        return None
    raw = params[dimension.name]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"params[{dimension.name!r}] must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"params[{dimension.name!r}] must be finite, got {raw!r}")
    return value


def _move_bounds(space: SearchSpace, moved: Sequence[tuple[Dimension, Dimension, float | None]],
                 action: str) -> tuple[SearchSpace, ActionRecord]:
    """Apply (old, new, used) bound moves; keep only the dimensions whose bounds changed."""
    changes: list[Change] = []
    parts: list[str] = []
    for old, new, used in moved:
        if _bounds(old) == _bounds(new):
            continue
        space = space.replace_dimension(new)
        changes.append(Change(f"space.{old.name}", _bounds(old), _bounds(new)))
        text = f"{old.name} range {_format_bounds(old, _bounds(old))} -> {_format_bounds(new, _bounds(new))}"
        if used is not None:
            text += f" (trial used {_format_value(old, used)})"
        parts.append(text)
    return space, ActionRecord(action, None, tuple(changes), f"{action}: " + "; ".join(parts))


def _flag_change(architecture: Architecture, field: str, after: Any) -> Change | None:
    before = getattr(architecture, field)
    return None if before == after else Change(f"architecture.{field}", before, after)


def _describe_change(change: Change, space: SearchSpace) -> str:
    _, name = change.target.split(".", 1)
    if change.target.startswith("space."):
        dimension = space[name]
        scale = " (log scale)" if dimension.prior == LOG_UNIFORM else ""
        return f"new dimension {name} {_format_bounds(dimension, change.after)}{scale}"
    words = {True: "on", False: "off"}
    before = words.get(change.before, change.before) if isinstance(change.before, bool) else change.before
    after = words.get(change.after, change.after) if isinstance(change.after, bool) else change.after
    return f"{name} {before} -> {after}"


def _architecture_edit(action: str, space: SearchSpace, architecture: Architecture,
                       new_architecture: Architecture, new_dimensions: Sequence[Dimension]
                       ) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """Record the flag/counter changes and add each of `new_dimensions` the space lacks."""
    changes = [c for f in ARCHITECTURE_FEATURES
               if (c := _flag_change(architecture, f.name, getattr(new_architecture, f.name))) is not None]
    for new_dimension in new_dimensions:
        if new_dimension.name not in space:
            # Never add a dimension twice (the original did on every call).
            space = space.replace_dimension(new_dimension)
            changes.append(Change(f"space.{new_dimension.name}", None, _bounds(new_dimension)))
    description = f"{action}: " + "; ".join(_describe_change(c, space) for c in changes)
    return space, new_architecture, ActionRecord(action, None, tuple(changes), description)


# ---------------------------------------------------------------------------------------
# The actions: (space, architecture, params, limits) -> (space, architecture, record)
# ---------------------------------------------------------------------------------------

def decrease_learning_rate(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                           limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """decr_lr: search below the used learning rate, down to a decade under it."""
    old = _numeric_dimension(space, LEARNING_RATE, (REAL,))
    lr = _used_value(params, old, required=True)
    if lr <= 0:
        raise ValueError(f"params[{LEARNING_RATE!r}] must be > 0, got {lr!r}")
    new = _with_bounds(old, min(old.low, lr / LR_WINDOW_FACTOR), min(old.high, lr / LR_STEP_FACTOR))
    if _bounds(new) == _bounds(old):
        raise ActionNotApplicable(f"{LEARNING_RATE} {old.describe_bounds()} is already at the bottom "
                                  f"of its domain [{old.domain_low:.4g}, {old.domain_high:.4g}]")
    space, record = _move_bounds(space, [(old, new, lr)], DECR_LR)
    return space, architecture, record


def increase_learning_rate(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                           limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """inc_lr: search above the used learning rate, up to a decade over it."""
    old = _numeric_dimension(space, LEARNING_RATE, (REAL,))
    lr = _used_value(params, old, required=True)
    if lr <= 0:
        raise ValueError(f"params[{LEARNING_RATE!r}] must be > 0, got {lr!r}")
    new = _with_bounds(old, max(old.low, lr * LR_STEP_FACTOR), max(old.high, lr * LR_WINDOW_FACTOR))
    if _bounds(new) == _bounds(old):
        raise ActionNotApplicable(f"{LEARNING_RATE} {old.describe_bounds()} is already at the top "
                                  f"of its domain [{old.domain_low:.4g}, {old.domain_high:.4g}]")
    space, record = _move_bounds(space, [(old, new, lr)], INC_LR)
    return space, architecture, record


def _raise_lows(space: SearchSpace, dimensions: Sequence[Dimension], params: dict[str, Any],
                action: str, what: str, new_low: Callable[[Dimension, float | None], float],
                min_width: float = 0.0, uses_trial_value: bool = True) -> tuple[SearchSpace, ActionRecord]:
    """Raise the low of each dimension to new_low(dimension, used); the high follows only as
    far as needed to keep `min_width` (within the domain). Never lowers anything.

    `used` is the trial's value (None when absent or when the rule ignores it, so that the
    description only quotes values the rule really used)."""
    if not dimensions:
        raise ActionNotApplicable(f"the search space has no {what} dimension")
    moved = []
    for old in dimensions:
        used = _used_value(params, old, required=False) if uses_trial_value else None
        low = min(max(new_low(old, used), old.low), old.domain_high)
        high = max(old.high, min(low + min_width, old.domain_high))
        moved.append((old, _with_bounds(old, low, high), used))
    if all(_bounds(old) == _bounds(new) for old, new, _ in moved):
        names = ", ".join(d.name for d in dimensions)
        raise ActionNotApplicable(f"every {what} low ({names}) is already at its domain top")
    return _move_bounds(space, moved, action)


def increase_dropout(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                     limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """inc_dropout: raise every dropout low by DROPOUT_STEP (at least to the used rate)."""
    dropouts = [d for d in space if d.name.startswith(DROPOUT_PREFIX) and d.kind == REAL]
    space, record = _raise_lows(
        space, dropouts, params, INC_DROPOUT, "dropout",
        lambda d, used: max(d.low + DROPOUT_STEP, used if used is not None else -math.inf),
        min_width=DROPOUT_MIN_WIDTH)
    return space, architecture, record


def increase_batch_size(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                        limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """inc_batch_size: double the batch-size low (at least to the used batch size)."""
    batch = _numeric_dimension(space, BATCH_SIZE, (INTEGER,))
    space, record = _raise_lows(
        space, [batch], params, INC_BATCH_SIZE, BATCH_SIZE,
        lambda d, used: max(d.low * BATCH_SIZE_STEP, used if used is not None else -math.inf))
    return space, architecture, record


def decrease_batch_size(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                        limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """decr_batch_size: search batch sizes of at most half the used one (more steps per epoch)."""
    old = _numeric_dimension(space, BATCH_SIZE, (INTEGER,))
    used = _used_value(params, old, required=True)
    if used < 1:
        raise ValueError(f"params[{BATCH_SIZE!r}] must be >= 1, got {used!r}")
    high = min(old.high, math.floor(used / BATCH_SIZE_STEP))
    new = _with_bounds(old, min(old.low, high), high)
    if _bounds(new) == _bounds(old):
        raise ActionNotApplicable(f"{BATCH_SIZE} {old.describe_bounds()} is already at the bottom "
                                  f"of its domain [{old.domain_low}, {old.domain_high}]")
    space, record = _move_bounds(space, [(old, new, used)], DECR_BATCH_SIZE)
    return space, architecture, record


def increase_neurons(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                     limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """inc_neurons: raise every width low by a quarter of its range (at least one unit)."""
    widths = [d for d in space if WIDTH_NAME.match(d.name) and d.kind == INTEGER]
    space, record = _raise_lows(
        space, widths, params, INC_NEURONS, "width",
        lambda d, used: d.low + max(1, math.ceil(NEURON_STEP_FRACTION * (d.high - d.low))),
        uses_trial_value=False)
    return space, architecture, record


def switch_action(action: str) -> "ActionFunction":
    """The action that switches on every SWITCH feature declared with `action` (sdt/core/records.py)
    and adds the dimensions of the hyper-parameters they read: reg_l2 (L2 on every kernel;
    l2_factor becomes a dimension), add_batch_norm (batch normalisation after every hidden
    activation), data_augmentation (random shifts, and flips where sensible). Not applicable once the first of its features is on."""
    features = [f for f in ARCHITECTURE_FEATURES if f.kind == SWITCH and f.action == action]

    def switch_on(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                  limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
        if getattr(architecture, features[0].name):
            raise ActionNotApplicable(f"{features[0].name} ({features[0].description}) is already on")
        new_architecture = replace(architecture, **{f.name: True for f in features})
        dimensions = [feature_parameter_dimension(name) for f in features for name in f.parameters]
        return _architecture_edit(action, space, architecture, new_architecture, dimensions)

    switch_on.__name__ = f"switch_on_{action}"
    return switch_on


def add_dense_layer(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                    limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """new_fc_layer: one more dense layer, its width a new dimension shaped like unit_d."""
    index = architecture.extra_dense_layers
    if index >= limits.max_extra_dense_layers:
        raise ActionNotApplicable(f"the network already has {index} extra dense layers "
                                  f"(limit {limits.max_extra_dense_layers})")
    return _architecture_edit(NEW_FC_LAYER, space, architecture,
                              replace(architecture, extra_dense_layers=index + 1),
                              [extra_dense_width_dimension(index, space)])


def add_conv_block(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                   limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """new_conv_layer: one more conv block, its filter count a new dimension shaped like unit_c2."""
    index = architecture.extra_conv_blocks
    if index >= limits.max_extra_conv_blocks:
        raise ActionNotApplicable(f"the network already has {index} extra conv blocks "
                                  f"(limit {limits.max_extra_conv_blocks} for this input size)")
    return _architecture_edit(NEW_CONV_LAYER, space, architecture,
                              replace(architecture, extra_conv_blocks=index + 1),
                              [extra_conv_width_dimension(index, space)])


def change_optimizer(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                     limits: ArchitectureLimits) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """change_optimizer: the optimiser the trial used leaves the optimizer choices."""
    if OPTIMIZER not in space or space[OPTIMIZER].kind != CATEGORICAL:
        raise ActionNotApplicable(f"the search space has no categorical {OPTIMIZER} dimension")
    old = space[OPTIMIZER]
    used = params.get(OPTIMIZER)
    if used not in old.categories:
        raise ActionNotApplicable(f"the trial's optimizer {used!r} is not among the choices {old.describe_bounds()}")
    if len(old.categories) == 1:
        raise ActionNotApplicable(f"{used} is the only optimizer left")
    new = replace(old, categories=tuple(c for c in old.categories if c != used))
    change = Change(f"space.{OPTIMIZER}", list(old.categories), list(new.categories))
    description = (f"{CHANGE_OPTIMIZER}: {OPTIMIZER} choices {old.describe_bounds()} -> "
                   f"{new.describe_bounds()} (trial used {used})")
    return space.replace_dimension(new), architecture, ActionRecord(CHANGE_OPTIMIZER, None, (change,), description)


ActionFunction = Callable[[SearchSpace, Architecture, dict, ArchitectureLimits],
                          tuple[SearchSpace, Architecture, ActionRecord]]

ACTION_FUNCTIONS: dict[str, ActionFunction] = {
    INC_DROPOUT: increase_dropout,
    DECR_LR: decrease_learning_rate,
    INC_LR: increase_learning_rate,
    INC_NEURONS: increase_neurons,
    NEW_FC_LAYER: add_dense_layer,
    NEW_CONV_LAYER: add_conv_block,
    INC_BATCH_SIZE: increase_batch_size,
    DECR_BATCH_SIZE: decrease_batch_size,
    CHANGE_OPTIMIZER: change_optimizer,
    # every action that only switches features on (declared with the features, sdt/core/records.py)
    **{feature.action: switch_action(feature.action) for feature in ARCHITECTURE_FEATURES if feature.kind == SWITCH},
}
assert set(ACTION_FUNCTIONS) == set(ACTIONS), "every action of the vocabulary needs a function"


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------

def apply_action(action: str, space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                 limits: ArchitectureLimits, problem: str | None = None
                 ) -> tuple[SearchSpace, Architecture, ActionRecord]:
    """Perform one action for `problem` on the state the trial with `params` was diagnosed in.

    Raises ActionNotApplicable(reason) when the action cannot change anything any more and
    ValueError for an unknown action name or params lacking a value the action needs.
    """
    try:
        function = ACTION_FUNCTIONS[action]
    except (KeyError, TypeError):
        raise ValueError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}") from None
    new_space, new_architecture, record = function(space, architecture, params, limits)
    return new_space, new_architecture, replace(record, problem=problem)


def not_applicable_actions(space: SearchSpace, architecture: Architecture, params: dict[str, Any],
                           limits: ArchitectureLimits) -> frozenset[str]:
    """The actions that would change nothing in this state (found by dry-running each)."""
    blocked = set()
    for action in ACTIONS:
        try:
            apply_action(action, space, architecture, params, limits)
        except ActionNotApplicable:
            blocked.add(action)
    return frozenset(blocked)


def apply_actions(chosen: Sequence[tuple[str, str | None]], space: SearchSpace, architecture: Architecture,
                  params: dict[str, Any], limits: ArchitectureLimits) -> TuningOutcome:
    """Apply the chosen (action, problem) pairs in order, each on the result of the previous.

    An action that cannot apply is recorded in `skipped` with its reason, and so is an action
    chosen a second time in the same call (for another problem): applying e.g. inc_dropout
    twice in one iteration would double its step.
    """
    applied: list[ActionRecord] = []
    skipped: list[tuple[str, str]] = []
    done: dict[str, str | None] = {}
    unknown = [action for action, _ in chosen if action not in ACTION_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown actions {unknown}: expected names from {', '.join(ACTIONS)}")
    for action, problem in chosen:
        if action in done:
            reason = "already applied in this iteration" + (f" (for {done[action]})" if done[action] else "")
            skipped.append((action, reason))
            logger.debug("skipped %s: %s", action, reason)
            continue
        try:
            space, architecture, record = apply_action(action, space, architecture, params, limits, problem)
        except ActionNotApplicable as err:
            skipped.append((action, err.reason))
            logger.debug("skipped %s: %s", action, err.reason)
            continue
        done[action] = problem
        applied.append(record)
        logger.debug("applied %s", record.description)
    return TuningOutcome(space, architecture, tuple(applied), tuple(skipped))


__all__ = [
    "ACTION_FUNCTIONS", "ActionNotApplicable", "ActionRecord", "ArchitectureLimits", "Change",
    "TuningOutcome", "apply_action", "apply_actions", "not_applicable_actions",
    "LR_STEP_FACTOR", "LR_WINDOW_FACTOR", "DROPOUT_STEP", "DROPOUT_MIN_WIDTH", "BATCH_SIZE_STEP",
    "NEURON_STEP_FRACTION",
]
