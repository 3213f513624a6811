"""Each architecture feature is declared once (sdt/core/records.py) and everything else derives from it."""

from __future__ import annotations

import dataclasses

from sdt import actions
from sdt.core.records import (
    ARCHITECTURE_ACTIONS, ARCHITECTURE_FEATURES, COUNT, SWITCH, Architecture, switches_of_actions,
)
from sdt.core.user_code import unsupported_actions
from sdt.core.vocabulary import ACTIONS, ADD_BATCH_NORM, DATA_AUGMENTATION, REG_L2
from sdt.space.search_space import all_potential_dimensions, default_search_space
from sdt.strategies.evolution import ARCHITECTURE_OPERATORS


def test_architecture_fields_are_the_declared_features():
    assert [f.name for f in dataclasses.fields(Architecture)] == [f.name for f in ARCHITECTURE_FEATURES]
    grown = Architecture(extra_conv_blocks=1, extra_dense_layers=2, l2=True, augmentation=True)
    assert Architecture.from_dict(grown.to_dict()) == grown
    assert grown.extra_width_names() == ["unit_c3", "unit_d2", "unit_d3"]
    assert grown.active_parameters() == ["l2_factor"]


def test_every_feature_action_is_a_vocabulary_action_with_a_function():
    assert ARCHITECTURE_ACTIONS <= set(ACTIONS)
    assert ARCHITECTURE_ACTIONS <= set(actions.ACTION_FUNCTIONS)


def test_switch_actions_turn_on_exactly_their_declared_features():
    space = default_search_space(training_size=1000)
    limits = actions.ArchitectureLimits(max_extra_conv_blocks=0)
    for action in (REG_L2, ADD_BATCH_NORM, DATA_AUGMENTATION):
        features = {f.name for f in ARCHITECTURE_FEATURES if f.kind == SWITCH and f.action == action}
        outcome = actions.apply_actions([(action, None)], space, Architecture(), {}, limits)
        assert {name for name, on in outcome.architecture.to_dict().items() if on is True} == features
        added = {name for f in ARCHITECTURE_FEATURES if f.name in features for name in f.parameters}
        assert set(outcome.space.names) - set(space.names) == added


def test_batch_norm_has_its_own_action_and_reg_l2_is_l2_only():
    # Issue 13: reg_l2 used to switch batch normalisation on too.
    switched = {f.action: f.name for f in ARCHITECTURE_FEATURES if f.kind == SWITCH}
    assert switched[ADD_BATCH_NORM] == "batch_norm" and switched[REG_L2] == "l2"
    assert switches_of_actions({REG_L2}) == {"l2"}
    assert switches_of_actions({ADD_BATCH_NORM}) == {"batch_norm"}


def test_a_model_without_an_action_keeps_its_switches_off():
    def model(params, architecture, input_shape, num_classes):
        raise AssertionError("not built here")
    model.supports = {DATA_AUGMENTATION}
    missing = unsupported_actions(model, "tests:model")
    assert missing == ARCHITECTURE_ACTIONS - {DATA_AUGMENTATION}
    assert switches_of_actions(missing) == {f.name for f in ARCHITECTURE_FEATURES
                                            if f.kind == SWITCH and f.action != DATA_AUGMENTATION}


def test_evolution_has_an_operator_for_each_direction_of_each_feature():
    expected = set()
    for feature in ARCHITECTURE_FEATURES:
        expected |= ({f"add_{feature.name}", f"remove_{feature.name}"} if feature.kind == COUNT
                     else {f"toggle_{feature.name}"})
    assert set(ARCHITECTURE_OPERATORS) == expected


def test_the_optimiser_domain_covers_every_parameter_a_feature_reads():
    space = all_potential_dimensions(default_search_space(training_size=1000), 1, 1)
    for feature in ARCHITECTURE_FEATURES:
        names = ([feature.width_name(0)] if feature.kind == COUNT else list(feature.parameters))
        assert set(names) <= set(space.names), feature.name
