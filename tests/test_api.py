"""The Python API: tune() runs the same loop as main.py, quietly, and returns a TuningResult."""

import dataclasses
import io
import json
from pathlib import Path

import pytest

import sdt
from sdt.run import loop as tuner
from sdt.api import SEARCH_SPACE_FILE, TrialSummary, TuningResult, tune
from sdt.core.errors import ConfigurationError, RunStateError, SearchSpaceError
from sdt.core.records import Architecture
from sdt.run.storage import RunStorage
from tests.fake_training import FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent
MLP_SPACE = REPO / "examples" / "mlp_space.json"


@pytest.fixture
def fake(monkeypatch):
    """tune() with the fake trainer instead of Keras."""
    trainer = FakeTrainer()
    monkeypatch.setattr(tuner, "make_trainer", fake_factory(trainer))
    return trainer


def mlp_space_dict():
    return json.loads(MLP_SPACE.read_text())


def build_mlp_stub(params, architecture, input_shape, num_classes):
    raise AssertionError("the fake trainer never builds")


build_mlp_stub.supports = {"new_fc_layer", "reg_l2"}


def test_tune_is_quiet_and_returns_the_run_in_a_frozen_result(tmp_path, fake, capsys):
    result = tune(dataset="digits", max_evals=4, epochs=3, seed=1, initial_points=2, log_folder=tmp_path / "run")
    assert capsys.readouterr() == ("", "")                      # quiet by default
    assert sdt.tune is tune and isinstance(result, TuningResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.best_val_loss = 0.0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [t.index for t in result.trials] == [t["index"] for t in summary["trials"]] == [0, 1, 2, 3]
    assert all(isinstance(t, TrialSummary) for t in result.trials)
    best = summary["best"]
    assert result.best_val_loss == best["val_loss"] and result.best_val_accuracy == best["val_accuracy"]
    assert result.best_params == summary["trials"][best["index"]]["params"]
    assert result.best_architecture == Architecture.from_dict(summary["trials"][best["index"]]["architecture"])
    assert result.log_folder == (tmp_path / "run").resolve()
    assert result.trials[0].actions == ("reg_l2",) and "overfitting" in result.trials[0].problems
    # the fake trainer saves no model: nothing to test, no best model file
    assert result.best_model_path is None and result.test_accuracy is None
    assert result == TuningResult.from_log_folder(tmp_path / "run")


def test_to_rows_is_flat_and_pandas_friendly(tmp_path, fake):
    rows = tune(dataset="digits", max_evals=3, epochs=3, initial_points=2, log_folder=tmp_path / "run").to_rows()
    assert len(rows) == 3 and len({tuple(row) for row in rows}) == 1         # every row has the same keys
    assert all(not isinstance(v, (dict, list, tuple)) for row in rows for v in row.values())
    assert rows[0]["param_l2_factor"] is None and rows[1]["param_l2_factor"] is not None
    assert rows[0]["actions"] == "reg_l2" and rows[0]["arch_l2"] is False and rows[1]["arch_l2"] is True
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(rows)
    assert list(frame["index"]) == [0, 1, 2]


def test_an_observer_follows_the_run_and_the_console_one_prints_the_cli_lines(tmp_path, fake, capsys):
    from sdt.cli.console import ConsoleObserver
    from sdt.run.observer import RunObserver

    class Recorder(RunObserver):
        def __init__(self):
            self.events = []

        def on_start(self, start):
            self.events.append(("start", start.first_trial, start.max_evals))

        def on_trial(self, record, progress):
            self.events.append(("trial", record.index, progress.trials_done, progress.trials_remaining))

        def on_finish(self, end):
            self.events.append(("finish", end.best.index if end.best else None, end.final))

    recorder = Recorder()
    tune(dataset="digits", max_evals=2, epochs=3, initial_points=2, log_folder=tmp_path / "a", observer=recorder)
    assert recorder.events[0] == ("start", 0, 2)
    assert recorder.events[1:3] == [("trial", 0, 1, 1), ("trial", 1, 2, 0)]
    assert recorder.events[3][0] == "finish" and recorder.events[3][2] is None   # the fake saves no model
    assert capsys.readouterr() == ("", "")
    stream = io.StringIO()
    tune(dataset="digits", max_evals=1, epochs=3, log_folder=tmp_path / "b", observer=ConsoleObserver(stream))
    assert "[1/1] trial 0: val_loss" in stream.getvalue() and capsys.readouterr().out == ""
    assert "no completed trial: no best model to evaluate" in stream.getvalue()
    tune(dataset="digits", max_evals=1, epochs=3, log_folder=tmp_path / "c", verbose=True)
    assert "[1/1] trial 0: val_loss" in capsys.readouterr().out


def test_a_search_space_dict_and_a_model_function_survive_resume(tmp_path, fake):
    folder = tmp_path / "run"
    first = tune(dataset="digits", search_space=mlp_space_dict(), model=build_mlp_stub, max_evals=2, epochs=3,
                 initial_points=2, log_folder=folder)
    assert (folder / SEARCH_SPACE_FILE).is_file()
    with RunStorage.open(folder, read_only=True) as storage:
        stored = storage.run_value("config")
    assert stored["search_space_path"] == str(folder / SEARCH_SPACE_FILE)
    assert stored["model"] == f"{__name__}:build_mlp_stub"
    assert set(first.best_params) >= {"unit_d", "dr_f", "learning_rate"}
    # The stored spec is importable: resume needs neither the space nor the function again.
    resumed = tune(dataset="digits", max_evals=4, log_folder=folder, resume=True)
    assert [t.index for t in resumed.trials] == [0, 1, 2, 3]
    assert not {"data_augmentation", "new_conv_layer"} & {a for t in resumed.trials for a in t.actions}


def test_a_search_space_object_and_a_path_are_accepted(tmp_path, fake):
    from sdt.space.search_space import load_search_space
    space = load_search_space(MLP_SPACE)
    for name, given in (("object", space), ("path", str(MLP_SPACE))):
        result = tune(dataset="digits", search_space=given, model=build_mlp_stub, max_evals=1, epochs=3,
                      log_folder=tmp_path / name)
        assert space.contains({k: v for k, v in result.trials[0].params.items() if k in space.names})


@pytest.mark.parametrize("arguments, error, message", [
    (dict(max_evals=0), ConfigurationError, "--max-evals must be >= 1"),
    (dict(no_such_option=1), ConfigurationError, r"unknown option\(s\) \['no_such_option'\]"),
    (dict(model=42), ConfigurationError, "model must be None"),
    (dict(model="nocolon"), ConfigurationError, "must be module:function"),
    (dict(search_space={"dimensions": []}), SearchSpaceError, "non-empty list"),
    (dict(search_space=3.5), ConfigurationError, "search_space must be"),
    (dict(resume=True), RunStateError, "holds no run"),
])
def test_bad_arguments_raise_before_anything_is_written(tmp_path, fake, arguments, error, message):
    with pytest.raises(error, match=message):
        tune(dataset="digits", log_folder=tmp_path / "run", **arguments)
    assert not (tmp_path / "run").exists() and not fake.calls


def test_an_existing_run_is_refused_before_a_space_is_written(tmp_path, fake):
    tune(dataset="digits", search_space=mlp_space_dict(), model=build_mlp_stub, max_evals=1, log_folder=tmp_path)
    before = (tmp_path / SEARCH_SPACE_FILE).read_text()
    changed = mlp_space_dict()
    changed["dimensions"][0]["high"] = 100
    with pytest.raises(RunStateError, match="already holds a run"):
        tune(dataset="digits", search_space=changed, model=build_mlp_stub, max_evals=1, log_folder=tmp_path)
    assert (tmp_path / SEARCH_SPACE_FILE).read_text() == before
    result = tune(dataset="digits", search_space=changed, model=build_mlp_stub, max_evals=1, log_folder=tmp_path,
                  overwrite=True)
    assert result.trials[0].params["unit_d"] <= 100


@pytest.mark.slow
def test_tune_trains_the_example_model_for_real(tmp_path):
    result = tune(dataset="digits", model=str(REPO / "examples" / "mlp.py") + ":build_mlp",
                  search_space=MLP_SPACE, max_evals=2, epochs=2, log_folder=tmp_path / "run")
    assert len(result.trials) == 2 and all(t.status == "completed" for t in result.trials)
    assert result.best_model_path == (tmp_path / "run" / "best_model.keras").resolve()
    assert result.best_model_path.is_file() and 0.0 <= result.test_accuracy <= 1.0
    assert result.best_val_loss == min(t.val_loss for t in result.trials)
