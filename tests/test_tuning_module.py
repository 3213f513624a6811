"""Tests of tuning_module: every action changes exactly what it claims, in the right direction,
inside the domain, records it faithfully, and stops (ActionNotApplicable) when it cannot act."""

from __future__ import annotations

import dataclasses

import json
import math

import numpy as np
import pytest

from sdt import actions as tm
from sdt.core.records import Architecture, L2_FACTOR, MAX_EXTRA_CONV_BLOCKS, MAX_EXTRA_DENSE_LAYERS
from sdt.space.search_space import (
    CATEGORICAL, INTEGER, LOG_UNIFORM, REAL, Dimension, SearchSpace, default_search_space,
)
from sdt.core.errors import TunerError
from sdt.core.vocabulary import (
    ACTIONS, ADD_BATCH_NORM, CHANGE_OPTIMIZER, DATA_AUGMENTATION, DECR_BATCH_SIZE, DECR_LR, INC_BATCH_SIZE, INC_DROPOUT, INC_LR, INC_NEURONS,
    NEW_CONV_LAYER, NEW_FC_LAYER, REG_L2,
)

ARCHITECTURE_FIELDS = tuple(f.name for f in dataclasses.fields(Architecture))
DROPOUTS = ("dr1_2", "dr_f")
WIDTHS = ("unit_c1", "unit_c2", "unit_d")
LIMITS = tm.ArchitectureLimits(max_extra_conv_blocks=2)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def base_params(**overrides):
    """A trial inside the default space's current bounds."""
    params = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 96, "unit_d": 384, "dr_f": 0.25,
              "learning_rate": 3e-4, "batch_size": 64, "optimizer": "Adam", "activation": "relu"}
    params.update(overrides)
    return params


def sample_params(space: SearchSpace, rng: np.random.Generator) -> dict:
    """A random trial inside the current bounds (log scale for log priors), like the optimiser's."""
    params = {}
    for d in space:
        if d.kind == CATEGORICAL:
            params[d.name] = str(rng.choice(d.categories))
        elif d.kind == INTEGER:
            params[d.name] = int(rng.integers(d.low, d.high + 1))
        elif d.prior == LOG_UNIFORM:
            params[d.name] = float(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))
        else:
            params[d.name] = float(rng.uniform(d.low, d.high))
    return params


def dimensions_by_name(space: SearchSpace) -> dict:
    return {d.name: d.to_dict() | {"domain": [d.domain_low, d.domain_high]} for d in space}


def assert_valid(space: SearchSpace) -> None:
    """Bounds never invert, never leave the domain, integers stay integers."""
    for d in space:
        if d.kind == CATEGORICAL:
            continue
        assert d.domain_low <= d.low <= d.high <= d.domain_high, d
        if d.kind == INTEGER:
            assert isinstance(d.low, int) and isinstance(d.high, int), d
        else:
            assert isinstance(d.low, float) and isinstance(d.high, float), d


def actual_changes(space0, arch0, space1, arch1) -> set:
    """The before -> after differences computed independently of the module."""
    changes = set()
    for field in ARCHITECTURE_FIELDS:
        if getattr(arch0, field) != getattr(arch1, field):
            changes.add((f"architecture.{field}", getattr(arch0, field), getattr(arch1, field)))
    for d in space1:
        if d.name not in space0:
            changes.add((f"space.{d.name}", None, (d.low, d.high)))
        elif space0[d.name].to_dict() != d.to_dict():
            old = space0[d.name]
            if d.kind == CATEGORICAL:
                assert old.domain_categories == d.domain_categories, "only the current categories may change"
                changes.add((f"space.{d.name}", tuple(old.categories), tuple(d.categories)))
                continue
            assert (old.kind, old.prior, old.domain_low, old.domain_high) == (d.kind, d.prior, d.domain_low, d.domain_high), \
                "only bounds may change"
            changes.add((f"space.{d.name}", (old.low, old.high), (d.low, d.high)))
    assert all(name in space1 for name in space0.names), "a dimension disappeared"
    return changes


def recorded_changes(record: tm.ActionRecord) -> set:
    def freeze(value):
        return tuple(value) if isinstance(value, list) else value
    targets = [c.target for c in record.changes]
    assert len(targets) == len(set(targets)), "a target is recorded twice"
    return {(c.target, freeze(c.before), freeze(c.after)) for c in record.changes}


# What each action may touch (dropout / width lists are the default space's plus added ones).
def allowed_targets(action: str, space0: SearchSpace, arch0: Architecture) -> set:
    if action in (DECR_LR, INC_LR):
        return {"space.learning_rate"}
    if action == INC_DROPOUT:
        return {f"space.{d.name}" for d in space0 if d.name.startswith("dr")}
    if action in (INC_BATCH_SIZE, DECR_BATCH_SIZE):
        return {"space.batch_size"}
    if action == INC_NEURONS:
        return {f"space.{d.name}" for d in space0 if d.name.startswith("unit_")}
    if action == REG_L2:
        return {"architecture.l2", f"space.{L2_FACTOR}"}
    if action == ADD_BATCH_NORM:
        return {"architecture.batch_norm"}
    if action == DATA_AUGMENTATION:
        return {"architecture.augmentation"}
    if action == NEW_FC_LAYER:
        return {"architecture.extra_dense_layers", f"space.unit_d{arch0.extra_dense_layers + 2}"}
    if action == NEW_CONV_LAYER:
        return {"architecture.extra_conv_blocks", f"space.unit_c{arch0.extra_conv_blocks + 3}"}
    if action == CHANGE_OPTIMIZER:
        return {"space.optimizer"}
    raise AssertionError(action)


def check_direction(action, space0, arch0, space1, arch1, params) -> None:
    """The action moved things the way it claims (checked on every step of every loop)."""
    if action == DECR_LR:
        old, new, lr = space0["learning_rate"], space1["learning_rate"], params["learning_rate"]
        assert new.low <= old.low and new.high <= old.high
        assert new.high < lr or new.high == new.domain_low
        assert new.low <= lr / tm.LR_WINDOW_FACTOR * (1 + 1e-9) or new.low == new.domain_low or new.low == old.low
    elif action == INC_LR:
        old, new, lr = space0["learning_rate"], space1["learning_rate"], params["learning_rate"]
        assert new.low >= old.low and new.high >= old.high
        assert new.low > lr or new.low == new.domain_high
    elif action == INC_DROPOUT:
        for d in space0:
            if d.name.startswith("dr"):
                new = space1[d.name]
                if d.low < d.domain_high:
                    assert new.low > d.low, d.name   # raised, not widened
                    assert new.low >= min(params.get(d.name, 0), d.domain_high) - 1e-9
                assert new.high >= d.high
    elif action == INC_BATCH_SIZE:
        old, new = space0["batch_size"], space1["batch_size"]
        assert new.low > old.low and new.high >= old.high
        assert new.low >= min(params["batch_size"], new.domain_high)
    elif action == DECR_BATCH_SIZE:
        old, new = space0["batch_size"], space1["batch_size"]
        assert new.high < old.high and new.low <= old.low
        assert new.high <= params["batch_size"] / 2 or new.high == new.domain_low
    elif action == INC_NEURONS:
        for d in space0:
            if d.name.startswith("unit_"):
                new = space1[d.name]
                if d.low < d.domain_high:
                    assert new.low > d.low, d.name
                assert new.high >= d.high
    elif action == REG_L2:
        assert arch1.l2 and L2_FACTOR in space1
    elif action == ADD_BATCH_NORM:
        assert arch1.batch_norm
    elif action == DATA_AUGMENTATION:
        assert arch1.augmentation
    elif action == NEW_FC_LAYER:
        assert arch1.extra_dense_layers == arch0.extra_dense_layers + 1
        assert set(arch1.extra_width_names()) <= set(space1.names)
    elif action == NEW_CONV_LAYER:
        assert arch1.extra_conv_blocks == arch0.extra_conv_blocks + 1
        assert set(arch1.extra_width_names()) <= set(space1.names)
    elif action == CHANGE_OPTIMIZER:
        assert params["optimizer"] not in space1["optimizer"].categories
        assert set(space1["optimizer"].categories) < set(space0["optimizer"].categories)


def apply_and_check(action, space0, arch0, params, limits=LIMITS, problem=None):
    """Apply one action and assert every invariant; return the new state and record."""
    before = (space0.to_dict(), arch0.to_dict())
    space1, arch1, record = tm.apply_action(action, space0, arch0, params, limits, problem)
    assert (space0.to_dict(), arch0.to_dict()) == before, "the inputs were mutated"
    assert record.action == action and record.problem == problem
    assert_valid(space1)
    changes = actual_changes(space0, arch0, space1, arch1)
    assert changes, "an applied action must change something"
    assert recorded_changes(record) == changes
    assert {target for target, _, _ in changes} <= allowed_targets(action, space0, arch0)
    check_direction(action, space0, arch0, space1, arch1, params)
    assert record.description.startswith(f"{action}: ")
    json.dumps(record.to_dict())
    return space1, arch1, record


# ---------------------------------------------------------------------------------------
# The vocabulary and the records
# ---------------------------------------------------------------------------------------

def test_every_action_of_the_vocabulary_has_a_function():
    assert set(tm.ACTION_FUNCTIONS) == set(ACTIONS)


def test_not_applicable_is_control_flow_not_a_tuner_error():
    assert not issubclass(tm.ActionNotApplicable, TunerError)
    err = tm.ActionNotApplicable("because")
    assert err.reason == "because" and str(err) == "because"


def test_unknown_action_is_a_value_error():
    # "inc_lr_twice" is not in the vocabulary.
    with pytest.raises(ValueError, match="unknown action"):
        tm.apply_action("inc_lr_twice", default_search_space(), Architecture(), base_params(), LIMITS)
    with pytest.raises(ValueError, match="unknown action"):
        tm.apply_actions([("inc_lr_twice", None)], default_search_space(), Architecture(), base_params(), LIMITS)


@pytest.mark.parametrize("conv, dense", [(-1, 1), (MAX_EXTRA_CONV_BLOCKS + 1, 1), (1, MAX_EXTRA_DENSE_LAYERS + 1), (1.5, 1)])
def test_limits_outside_the_hard_caps_are_rejected(conv, dense):
    # Negative, fractional or beyond the caps the optimiser's domain covers.
    with pytest.raises(ValueError, match="must be an integer"):
        tm.ArchitectureLimits(max_extra_conv_blocks=conv, max_extra_dense_layers=dense)


def test_limits_default_dense_cap():
    assert tm.ArchitectureLimits(0).max_extra_dense_layers == MAX_EXTRA_DENSE_LAYERS


# ---------------------------------------------------------------------------------------
# Learning rate
# ---------------------------------------------------------------------------------------

def test_decr_lr_moves_the_window_below_the_used_value():
    space0 = default_search_space()
    space1, arch1, record = apply_and_check(DECR_LR, space0, Architecture(), base_params(learning_rate=1e-3),
                                            problem="high_lr")
    assert (space1["learning_rate"].low, space1["learning_rate"].high) == (1e-4, 5e-4)
    assert arch1 == Architecture()
    assert record.changes == (tm.Change("space.learning_rate", [1e-4, 1e-3], [1e-4, 5e-4]),)
    assert record.description == "decr_lr: learning_rate range [1e-04, 1e-03] -> [1e-04, 5e-04] (trial used 1e-03)"


def test_decr_lr_low_reaches_a_decade_below_the_used_value():
    space1, _, _ = apply_and_check(DECR_LR, default_search_space(), Architecture(), base_params(learning_rate=2e-4))
    assert space1["learning_rate"].low == pytest.approx(2e-5)
    assert space1["learning_rate"].high == pytest.approx(1e-4)


def test_decr_lr_stops_at_the_bottom_of_the_domain():
    space = default_search_space()
    space = space.replace_dimension(space["learning_rate"].with_bounds(1e-5, 1e-5))
    with pytest.raises(tm.ActionNotApplicable, match="bottom"):
        tm.apply_action(DECR_LR, space, Architecture(), base_params(learning_rate=1e-5), LIMITS)


def test_inc_lr_moves_the_window_above_the_used_value():
    space1, _, record = apply_and_check(INC_LR, default_search_space(), Architecture(), base_params(learning_rate=3e-4))
    lr = space1["learning_rate"]
    assert (lr.low, lr.high) == (pytest.approx(6e-4), pytest.approx(3e-3))
    assert record.changes[0].before == [1e-4, 1e-3]


def test_inc_lr_keeps_a_wider_high_and_clips_at_the_domain_top():
    space = default_search_space()
    space1, _, _ = apply_and_check(INC_LR, space, Architecture(), base_params(learning_rate=1e-4))
    assert (space1["learning_rate"].low, space1["learning_rate"].high) == (2e-4, 1e-3)   # high never falls
    space2 = space.replace_dimension(space["learning_rate"].with_bounds(0.03, 0.1))
    space3, _, _ = apply_and_check(INC_LR, space2, Architecture(), base_params(learning_rate=0.06))
    assert (space3["learning_rate"].low, space3["learning_rate"].high) == (0.1, 0.1)
    with pytest.raises(tm.ActionNotApplicable, match="top"):
        tm.apply_action(INC_LR, space3, Architecture(), base_params(learning_rate=0.1), LIMITS)


@pytest.mark.parametrize("action", [DECR_LR, INC_LR])
def test_lr_actions_need_a_learning_rate_dimension(action):
    space = SearchSpace(tuple(d for d in default_search_space() if d.name != "learning_rate"))
    with pytest.raises(tm.ActionNotApplicable, match="no learning_rate"):
        tm.apply_action(action, space, Architecture(), base_params(), LIMITS)


@pytest.mark.parametrize("action", [DECR_LR, INC_LR])
def test_lr_actions_need_the_used_learning_rate(action):
    # params without the trial's learning rate: the caller passed the wrong dict.
    params = base_params()
    del params["learning_rate"]
    with pytest.raises(ValueError, match="learning_rate"):
        tm.apply_action(action, default_search_space(), Architecture(), params, LIMITS)


@pytest.mark.parametrize("action", [DECR_LR, INC_LR])
def test_lr_actions_repeat_until_not_applicable(action):
    space, arch = default_search_space(), Architecture()
    for step in range(100):
        lr = space["learning_rate"]
        # the worst case for termination: the trial sits at the edge the action moves away from
        params = base_params(learning_rate=lr.high if action == DECR_LR else lr.low)
        try:
            space, arch, _ = apply_and_check(action, space, arch, params)
        except tm.ActionNotApplicable:
            break
    else:
        pytest.fail(f"{action} never became not applicable")
    lr = space["learning_rate"]
    edge = lr.domain_low if action == DECR_LR else lr.domain_high
    assert lr.low == lr.high == edge


# ---------------------------------------------------------------------------------------
# Dropout, batch size, widths
# ---------------------------------------------------------------------------------------

def test_inc_dropout_raises_every_dropout_low():
    space0 = default_search_space()
    space1, _, record = apply_and_check(INC_DROPOUT, space0, Architecture(), base_params(dr1_2=0.01, dr_f=0.3))
    assert (space1["dr1_2"].low, space1["dr1_2"].high) == (pytest.approx(0.102), 0.3)   # step
    assert (space1["dr_f"].low, space1["dr_f"].high) == (0.3, 0.5)                     # up to the used value
    assert {c.target for c in record.changes} == {"space.dr1_2", "space.dr_f"}
    assert "dr1_2 range [0.002, 0.3] -> [0.102, 0.3]" in record.description


def test_inc_dropout_raises_the_high_only_to_keep_a_range():
    space = default_search_space()
    space = space.replace_dimension(space["dr1_2"].with_bounds(0.25, 0.3))
    space1, _, _ = apply_and_check(INC_DROPOUT, space, Architecture(), base_params(dr1_2=0.3))
    assert (space1["dr1_2"].low, space1["dr1_2"].high) == (0.35, pytest.approx(0.45))
    assert space1["dr1_2"].high <= space1["dr1_2"].domain_high


def test_inc_dropout_covers_any_dr_dimension_and_skips_those_at_the_top():
    space = default_search_space()
    space = space.replace_dimension(space["dr1_2"].with_bounds(0.6, 0.6))   # at its domain top
    space = space.replace_dimension(Dimension("dr_extra", REAL, 0.0, 0.2, domain_low=0.0, domain_high=0.5))
    space1, _, record = apply_and_check(INC_DROPOUT, space, Architecture(), base_params())
    assert {c.target for c in record.changes} == {"space.dr_f", "space.dr_extra"}
    assert space1["dr1_2"] == space["dr1_2"]


def test_inc_dropout_not_applicable_without_dropout_or_at_the_top():
    without = SearchSpace(tuple(d for d in default_search_space() if not d.name.startswith("dr")))
    with pytest.raises(tm.ActionNotApplicable, match="no dropout"):
        tm.apply_action(INC_DROPOUT, without, Architecture(), base_params(), LIMITS)
    top = default_search_space()
    for name in DROPOUTS:
        top = top.replace_dimension(top[name].with_bounds(top[name].domain_high, top[name].domain_high))
    with pytest.raises(tm.ActionNotApplicable, match="domain top"):
        tm.apply_action(INC_DROPOUT, top, Architecture(), base_params(dr1_2=0.6, dr_f=0.7), LIMITS)


def test_inc_batch_size_doubles_the_low_or_reaches_the_used_value():
    space1, _, record = apply_and_check(INC_BATCH_SIZE, default_search_space(), Architecture(), base_params(batch_size=20))
    assert (space1["batch_size"].low, space1["batch_size"].high) == (32, 256)
    assert record.changes == (tm.Change("space.batch_size", [16, 256], [32, 256]),)
    space2, _, _ = apply_and_check(INC_BATCH_SIZE, default_search_space(), Architecture(), base_params(batch_size=100))
    assert (space2["batch_size"].low, space2["batch_size"].high) == (100, 256)


def test_inc_batch_size_stops_at_the_top():
    space = default_search_space(training_size=100)   # batch size capped by the training-set size
    arch = Architecture()
    lows = []
    while True:
        try:
            space, arch, _ = apply_and_check(INC_BATCH_SIZE, space, arch, base_params(batch_size=space["batch_size"].low))
        except tm.ActionNotApplicable as err:
            assert "domain top" in err.reason
            break
        lows.append(space["batch_size"].low)
    assert lows == [32, 64, 100]


def test_decr_batch_size_searches_at_most_half_the_used_batch():
    space1, _, record = apply_and_check(DECR_BATCH_SIZE, default_search_space(), Architecture(), base_params(batch_size=200))
    assert (space1["batch_size"].low, space1["batch_size"].high) == (16, 100)
    assert record.changes == (tm.Change("space.batch_size", [16, 256], [16, 100]),)
    assert "batch_size range [16, 256] -> [16, 100] (trial used 200)" in record.description
    # An odd batch: the high is the largest whole batch at most half of it.
    space2, _, _ = apply_and_check(DECR_BATCH_SIZE, default_search_space(), Architecture(), base_params(batch_size=75))
    assert (space2["batch_size"].low, space2["batch_size"].high) == (16, 37)
    # A used batch above the current high (an older, wider space) still halves the current high at most.
    narrow = default_search_space()
    narrow = narrow.replace_dimension(narrow["batch_size"].with_bounds(32, 64))
    space3, _, _ = apply_and_check(DECR_BATCH_SIZE, narrow, Architecture(), base_params(batch_size=100))
    assert (space3["batch_size"].low, space3["batch_size"].high) == (32, 50)
    # Halving below the low takes the low down with it, never below the domain.
    space4, _, _ = apply_and_check(DECR_BATCH_SIZE, narrow, Architecture(), base_params(batch_size=40))
    assert (space4["batch_size"].low, space4["batch_size"].high) == (20, 20)


def test_decr_batch_size_stops_at_the_bottom_and_needs_the_used_batch():
    space, arch, highs = default_search_space(), Architecture(), []
    while True:
        try:
            space, arch, _ = apply_and_check(DECR_BATCH_SIZE, space, arch, base_params(batch_size=space["batch_size"].high))
        except tm.ActionNotApplicable as err:
            assert "bottom" in err.reason
            break
        highs.append(space["batch_size"].high)
    domain_low = space["batch_size"].domain_low
    assert highs == [h for h in (128, 64, 32, 16, 8, 4, 2, 1) if h >= domain_low][:len(highs)]
    assert highs[-1] == domain_low and space["batch_size"].low == domain_low
    with pytest.raises(ValueError, match="batch_size"):
        tm.apply_action(DECR_BATCH_SIZE, default_search_space(), Architecture(),
                        {k: v for k, v in base_params().items() if k != "batch_size"}, LIMITS)


def test_inc_neurons_raises_every_width_low_by_a_quarter_of_the_range():
    space1, _, record = apply_and_check(INC_NEURONS, default_search_space(), Architecture(), base_params())
    assert [(space1[n].low, space1[n].high) for n in WIDTHS] == [(28, 64), (80, 128), (320, 512)]
    assert {c.target for c in record.changes} == {f"space.{n}" for n in WIDTHS}
    assert "trial used" not in record.description   # the rule ignores the trial's widths


def test_inc_neurons_covers_added_widths_and_crawls_to_the_top():
    space, arch, _ = apply_and_check(NEW_CONV_LAYER, default_search_space(), Architecture(), base_params())
    space, arch, _ = apply_and_check(NEW_FC_LAYER, space, arch, base_params())
    space1, _, record = apply_and_check(INC_NEURONS, space, arch, base_params())
    assert {c.target for c in record.changes} == {f"space.{n}" for n in WIDTHS + ("unit_c3", "unit_d2")}
    steps = 0
    while True:
        try:
            space, arch, _ = apply_and_check(INC_NEURONS, space, arch, base_params())
        except tm.ActionNotApplicable:
            break
        steps += 1
        assert steps < 200
    assert all(space[n].low == space[n].high == space[n].domain_high
               for n in WIDTHS + ("unit_c3", "unit_d2"))


def test_inc_neurons_moves_a_collapsed_range_with_its_high():
    space = default_search_space()
    space = space.replace_dimension(Dimension("unit_d", INTEGER, 300, 300, domain_low=256, domain_high=1024))
    space1, _, _ = apply_and_check(INC_NEURONS, space, Architecture(), base_params(unit_d=300))
    assert (space1["unit_d"].low, space1["unit_d"].high) == (301, 301)


# ---------------------------------------------------------------------------------------
# Architecture actions
# ---------------------------------------------------------------------------------------

def test_reg_l2_switches_only_l2_on_and_adds_the_factor_once():
    space0 = default_search_space()
    space1, arch1, record = apply_and_check(REG_L2, space0, Architecture(), base_params(), problem="overfitting")
    assert arch1 == Architecture(l2=True)          # batch normalisation is add_batch_norm's (issue 13)
    assert space1.names == space0.names + [L2_FACTOR]
    factor = space1[L2_FACTOR]
    assert factor.prior == LOG_UNIFORM and factor.low < 1e-4 < factor.high
    assert tm.Change(f"space.{L2_FACTOR}", None, [factor.low, factor.high]) in record.changes
    with pytest.raises(tm.ActionNotApplicable, match="already on"):
        tm.apply_action(REG_L2, space1, arch1, base_params(), LIMITS)
    outcome = tm.apply_actions([(REG_L2, "overfitting"), (REG_L2, "overfitting")], space0, Architecture(),
                               base_params(), LIMITS)
    assert outcome.space.names.count(L2_FACTOR) == 1


def test_reg_l2_records_only_what_changed():
    space = default_search_space().replace_dimension(
        Dimension(L2_FACTOR, REAL, 1e-4, 1e-4, prior=LOG_UNIFORM, domain_low=1e-6, domain_high=1e-2))
    space1, arch1, record = apply_and_check(REG_L2, space, Architecture(batch_norm=True), base_params())
    assert record.changes == (tm.Change("architecture.l2", False, True),)
    assert space1[L2_FACTOR] == space[L2_FACTOR]   # an existing factor dimension is kept as it is


def test_add_batch_norm_switches_only_batch_norm_on_once():
    space0 = default_search_space()
    space1, arch1, record = apply_and_check(ADD_BATCH_NORM, space0, Architecture(l2=True), base_params(),
                                            problem="fluctuating_loss")
    assert arch1 == Architecture(l2=True, batch_norm=True) and space1 == space0
    assert record.changes == (tm.Change("architecture.batch_norm", False, True),)
    with pytest.raises(tm.ActionNotApplicable, match="already on"):
        tm.apply_action(ADD_BATCH_NORM, space1, arch1, base_params(), LIMITS)
    # and reg_l2 stays applicable after it: the two switches are independent
    _, arch2, _ = apply_and_check(REG_L2, space0, Architecture(batch_norm=True), base_params())
    assert arch2 == Architecture(l2=True, batch_norm=True)


def test_data_augmentation_once():
    space0 = default_search_space()
    space1, arch1, record = apply_and_check(DATA_AUGMENTATION, space0, Architecture(), base_params())
    assert arch1 == Architecture(augmentation=True) and space1 == space0
    assert record.changes == (tm.Change("architecture.augmentation", False, True),)
    with pytest.raises(tm.ActionNotApplicable):
        tm.apply_action(DATA_AUGMENTATION, space1, arch1, base_params(), LIMITS)


def test_new_fc_layer_adds_layers_and_widths_up_to_the_limit():
    limits = tm.ArchitectureLimits(max_extra_conv_blocks=0, max_extra_dense_layers=2)
    space, arch = default_search_space(), Architecture()
    space, arch, record = apply_and_check(NEW_FC_LAYER, space, arch, base_params(), limits)
    assert record.changes == (tm.Change("architecture.extra_dense_layers", 0, 1),
                              tm.Change("space.unit_d2", None, [256, 512]))
    space, arch, _ = apply_and_check(NEW_FC_LAYER, space, arch, base_params(), limits)
    assert arch.extra_dense_layers == 2 and space.names[-2:] == ["unit_d2", "unit_d3"]
    with pytest.raises(tm.ActionNotApplicable, match="limit 2"):
        tm.apply_action(NEW_FC_LAYER, space, arch, base_params(), limits)


def test_new_conv_layer_copies_the_current_bounds_of_unit_c2():
    space = default_search_space()
    space = space.replace_dimension(space["unit_c2"].with_bounds(100, 128))
    space1, arch1, _ = apply_and_check(NEW_CONV_LAYER, space, Architecture(), base_params(unit_c2=110))
    assert arch1.extra_conv_blocks == 1
    assert (space1["unit_c3"].low, space1["unit_c3"].high) == (100, 128)


def test_new_conv_layer_not_applicable_when_the_input_allows_no_block():
    with pytest.raises(tm.ActionNotApplicable, match="limit 0"):
        tm.apply_action(NEW_CONV_LAYER, default_search_space(), Architecture(), base_params(),
                        tm.ArchitectureLimits(max_extra_conv_blocks=0))


def test_new_conv_layer_stops_at_the_limit():
    space, arch = default_search_space(), Architecture()
    for _ in range(LIMITS.max_extra_conv_blocks):
        space, arch, _ = apply_and_check(NEW_CONV_LAYER, space, arch, base_params())
    assert arch.extra_width_names() == ["unit_c3", "unit_c4"]
    with pytest.raises(tm.ActionNotApplicable):
        tm.apply_action(NEW_CONV_LAYER, space, arch, base_params(), LIMITS)


# ---------------------------------------------------------------------------------------
# Many random states
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_repeated_with_random_trials_keeps_every_invariant(action):
    rng = np.random.default_rng(1234)
    for _ in range(20):
        space, arch = default_search_space(), Architecture()
        for step in range(200):
            params = sample_params(space, rng)
            try:
                space, arch, _ = apply_and_check(action, space, arch, params)
            except tm.ActionNotApplicable:
                break
        else:
            pytest.fail(f"{action} still applicable after 200 steps")
        assert action in tm.not_applicable_actions(space, arch, sample_params(space, rng), LIMITS) \
            or action in (DECR_LR, INC_LR)   # the lr actions depend on the trial's value


def test_random_sequences_of_actions_keep_every_invariant():
    rng = np.random.default_rng(42)
    limits = tm.ArchitectureLimits(max_extra_conv_blocks=3)
    for _ in range(30):
        space, arch = default_search_space(int(rng.integers(50, 1000))), Architecture()
        for _ in range(30):
            params = sample_params(space, rng)
            assert space.contains(params)
            action = str(rng.choice(ACTIONS))
            try:
                space, arch, _ = apply_and_check(action, space, arch, params, limits)
            except tm.ActionNotApplicable:
                assert action in tm.not_applicable_actions(space, arch, params, limits)
            assert set(arch.extra_width_names()) <= set(space.names)


# ---------------------------------------------------------------------------------------
# not_applicable_actions and apply_actions
# ---------------------------------------------------------------------------------------

def test_not_applicable_actions_reflects_the_state():
    space, arch = default_search_space(), Architecture()
    limits = tm.ArchitectureLimits(max_extra_conv_blocks=0)
    assert tm.not_applicable_actions(space, arch, base_params(), limits) == {NEW_CONV_LAYER}
    outcome = tm.apply_actions([(REG_L2, "overfitting"), (DATA_AUGMENTATION, "overfitting")],
                               space, arch, base_params(), limits)
    assert tm.not_applicable_actions(outcome.space, outcome.architecture, base_params(), limits) == {
        NEW_CONV_LAYER, REG_L2, DATA_AUGMENTATION}
    bottom = space.replace_dimension(space["learning_rate"].with_bounds(1e-5, 1e-5))
    blocked = tm.not_applicable_actions(bottom, arch, base_params(learning_rate=1e-5), limits)
    assert DECR_LR in blocked and INC_LR not in blocked


def test_apply_actions_applies_in_order_and_records_skipped():
    space, arch = default_search_space(), Architecture()
    chosen = [(NEW_CONV_LAYER, "underfitting"), (INC_NEURONS, "underfitting"), (REG_L2, "overfitting"),
              (DECR_LR, "increasing_loss"), (DECR_LR, "high_lr"), (NEW_FC_LAYER, "underfitting")]
    limits = tm.ArchitectureLimits(max_extra_conv_blocks=1, max_extra_dense_layers=0)
    outcome = tm.apply_actions(chosen, space, arch, base_params(), limits)
    assert outcome.applied_actions == (NEW_CONV_LAYER, INC_NEURONS, REG_L2, DECR_LR)
    assert [r.problem for r in outcome.applied] == ["underfitting", "underfitting", "overfitting", "increasing_loss"]
    # inc_neurons saw the block added just before it: its new width was raised too
    assert "space.unit_c3" in {c.target for c in outcome.applied[1].changes}
    assert outcome.space["unit_c3"].low > space["unit_c2"].low
    assert [a for a, _ in outcome.skipped] == [DECR_LR, NEW_FC_LAYER]
    assert "already applied" in outcome.skipped[0][1] and "increasing_loss" in outcome.skipped[0][1]
    assert "limit 0" in outcome.skipped[1][1]
    assert outcome.architecture == Architecture(extra_conv_blocks=1, l2=True)
    # the outcome equals applying the same actions one by one
    s, a = space, arch
    for action in outcome.applied_actions:
        s, a, _ = tm.apply_action(action, s, a, base_params(), limits)
    assert (s, a) == (outcome.space, outcome.architecture)


def test_apply_actions_with_nothing_chosen_changes_nothing():
    space, arch = default_search_space(), Architecture()
    outcome = tm.apply_actions([], space, arch, base_params(), LIMITS)
    assert (outcome.space, outcome.architecture, outcome.applied, outcome.skipped) == (space, arch, (), ())


# ---------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------

def test_records_round_trip_through_json():
    chosen = [(REG_L2, "overfitting"), (INC_DROPOUT, "overfitting"), (NEW_FC_LAYER, None),
              (NEW_CONV_LAYER, "underfitting")]
    outcome = tm.apply_actions(chosen, default_search_space(), Architecture(), base_params(),
                               tm.ArchitectureLimits(max_extra_conv_blocks=0))
    assert outcome.skipped and outcome.applied
    text = json.dumps(outcome.to_dict())
    back = tm.TuningOutcome.from_dict(json.loads(text))
    assert back == outcome
    assert back.space.to_dict() == outcome.space.to_dict()
    for record in outcome.applied:
        assert tm.ActionRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
        for change in record.changes:
            assert tm.Change.from_dict(json.loads(json.dumps(change.to_dict()))) == change
