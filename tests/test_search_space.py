"""Search-space records: validation with clear messages, JSON round trips, bounds that never leave the domain."""

import json

import pytest

from sdt.core.errors import SearchSpaceError
from sdt.space.search_space import (
    CATEGORICAL, INTEGER, LOG_UNIFORM, REAL, Dimension, all_potential_dimensions,
    default_search_space, load_search_space,
)


def test_default_space_follows_listing_3_and_adapts_batch_size():
    space = default_search_space()
    assert space.names == ["unit_c1", "dr1_2", "unit_c2", "unit_d", "dr_f", "learning_rate",
                           "batch_size", "optimizer", "activation"]
    assert (space["unit_c1"].low, space["unit_c1"].high) == (16, 64)
    assert space["learning_rate"].prior == LOG_UNIFORM
    assert (space["learning_rate"].domain_low, space["learning_rate"].domain_high) == (1e-5, 1e-1)
    # A tiny training set caps the batch size.
    assert default_search_space(training_size=100)["batch_size"].high == 100


def test_json_round_trip(tmp_path):
    space = default_search_space()
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space.to_dict()))
    assert load_search_space(path) == space


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "type": "float", "low": 0, "high": 1}, "unknown type 'float'"),      # unknown type
    ({"name": "x", "type": "real", "low": 2.0, "high": 1.0}, "low .* must not exceed high"),  # inverted
    ({"name": "x", "type": "categorical", "categories": []}, "categories must not be empty"),
    ({"name": "x", "type": "integer", "low": 1.5, "high": 4}, "whole number"),          # fractional integer bound
    ({"name": "x", "type": "real", "low": 0.0, "high": 1.0, "prior": "log-uniform"}, "positive bounds"),
    ({"name": "x", "type": "real", "low": 0.1, "high": 1.0, "domain": [0.2, 1.0]}, "outside the domain"),
    ({"name": "x", "type": "integer", "high": 4}, "needs 'low' and 'high'"),             # missing bound
    ({"name": "x", "type": "integer", "low": 1, "high": 4, "step": 2}, "unknown keys"),  # typo'd key
    ({"type": "integer", "low": 1, "high": 4}, "missing 'name'"),
])
def test_malformed_dimension_names_the_entry(tmp_path, entry, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"dimensions": [{"name": "ok", "type": "integer", "low": 1, "high": 2}, entry]}))
    with pytest.raises(SearchSpaceError, match=message) as info:
        load_search_space(path)
    assert "bad.json" in str(info.value) and "#2" in str(info.value)


def test_a_file_that_is_not_utf8_or_nested_too_deeply_is_one_clear_error(tmp_path):
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"dimensions": [{"name": "taille_caf\u00e9"}]}'.encode("latin-1"))
    with pytest.raises(SearchSpaceError, match="latin1.json.*not UTF-8 text"):
        load_search_space(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SearchSpaceError, match="deep.json.*nested too deeply"):
        load_search_space(deep)


def test_malformed_files(tmp_path):
    # Not JSON at all.
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(SearchSpaceError, match="invalid JSON at line 1"):
        load_search_space(path)
    # Missing file.
    with pytest.raises(SearchSpaceError, match="cannot read"):
        load_search_space(tmp_path / "absent.json")
    # Empty list; repeated names.
    path.write_text("[]")
    with pytest.raises(SearchSpaceError, match="non-empty list"):
        load_search_space(path)
    path.write_text(json.dumps([{"name": "a", "type": "integer", "low": 1, "high": 2}] * 2))
    with pytest.raises(SearchSpaceError, match="repeat"):
        load_search_space(path)


def test_with_bounds_clips_into_domain_and_never_inverts():
    dimension = Dimension("lr", REAL, 1e-4, 1e-3, prior=LOG_UNIFORM, domain_low=1e-5, domain_high=1e-1)
    moved = dimension.with_bounds(1e-7, 5e-4)
    assert (moved.low, moved.high) == (1e-5, 5e-4)
    inverted = dimension.with_bounds(1e-2, 1e-3)
    assert inverted.low <= inverted.high
    integer = Dimension("units", INTEGER, 16, 64)
    assert (integer.with_bounds(80, 90).low, integer.with_bounds(80, 90).high) == (64, 64)
    assert integer.with_bounds(80, 90).is_fixed


def test_contains_and_python_values():
    space = default_search_space()
    params = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 64, "unit_d": 300, "dr_f": 0.2,
              "learning_rate": 5e-4, "batch_size": 32, "optimizer": "Adam", "activation": "relu"}
    assert space.contains(params)
    assert not space.contains({**params, "learning_rate": 5e-2})   # outside current bounds
    assert not space.contains({**params, "optimizer": "SGD"})
    import numpy as np
    values = space.python_params([np.int64(32), np.float64(0.1), 64, 300, 0.2, 5e-4, np.int64(32), "Adam", "relu"])
    assert type(values["unit_c1"]) is int and type(values["dr1_2"]) is float


def test_potential_dimensions_add_each_template_once():
    space = default_search_space()
    extended = all_potential_dimensions(space, max_conv_blocks=2, max_dense_layers=1)
    assert extended.names[len(space):] == ["l2_factor", "unit_c3", "unit_c4", "unit_d2"]
    # Added widths copy the bounds of the paper layer they follow.
    assert (extended["unit_c3"].low, extended["unit_c3"].high) == (64, 128)
    assert all_potential_dimensions(extended, 2, 1) == extended
    assert extended["optimizer"].kind == CATEGORICAL
