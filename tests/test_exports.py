"""Exports: trials.csv agrees with summary.json, one row per trial; TensorBoard HParams summaries read back."""

import csv
import json
import math
from pathlib import Path

import pytest

from sdt.run import exports
from sdt.run import loop as tuner
from sdt.core.records import Architecture, TrainingResult
from sdt.run.storage import write_csv_atomically
from sdt.core.vocabulary import TrialStatus
from tests.fake_training import FakeTrainer, fake_factory


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames), list(reader)


def fake_run(folder: Path, trainer=None, **changes) -> dict:
    config = dict(dataset="digits", max_evals=4, epochs=3, seed=1, initial_points=2)
    config.update(changes)
    return tuner.run(tuner.RunConfig(**config), folder, make_train=fake_factory(trainer or FakeTrainer()))


def test_trials_csv_has_one_row_per_trial_and_agrees_with_summary(tmp_path):
    summary = fake_run(tmp_path / "run")       # overfitting curves: reg_l2 adds l2_factor after trial 0
    columns, rows = read_csv(tmp_path / "run" / exports.TRIALS_CSV_NAME)
    assert len(rows) == len(summary["trials"]) == 4
    assert columns[:7] == ["index", "status", "objective", "val_loss", "val_accuracy", "epochs_run",
                           "duration_seconds"]
    assert columns[-4:] == ["problems", "actions", "stop", "error"]
    assert [c for c in columns if c.startswith("arch_")] == [
        "arch_extra_conv_blocks", "arch_extra_dense_layers", "arch_l2", "arch_batch_norm", "arch_augmentation"]
    for row, trial in zip(rows, summary["trials"]):
        assert int(row["index"]) == trial["index"] and row["status"] == trial["status"]
        assert math.isclose(float(row["val_loss"]), trial["val_loss"])
        assert math.isclose(float(row["objective"]), trial["objective"])
        assert row["problems"].split(";") == trial["problems"]
        assert (row["actions"].split(";") if row["actions"] else []) == trial["actions"]
        assert row["arch_l2"] == str(trial["architecture"]["l2"])
        for name, value in trial["params"].items():
            assert row[f"param_{name}"] == str(value)
        # a parameter the trial did not have is an empty cell
        for column in columns:
            if column.startswith("param_") and column[len("param_"):] not in trial["params"]:
                assert row[column] == ""
    assert rows[0]["param_l2_factor"] == "" and rows[1]["param_l2_factor"] != ""
    # Why the strategy proposed each trial: summary.json has the whole decision, the CSV its words.
    for row, trial in zip(rows, summary["trials"]):
        assert row["proposal"] == f"{trial['proposal']['strategy']}: {trial['proposal']['summary']}"
    assert [t["proposal"]["facts"]["phase"] for t in summary["trials"]] == ["initial", "initial", "model", "model"]


def test_trials_csv_is_rewritten_after_every_trial(tmp_path):
    seen = []

    def trainer(params, architecture, index):
        path = tmp_path / "run" / exports.TRIALS_CSV_NAME
        seen.append(len(read_csv(path)[1]))     # what a reader sees while trial `index` trains
        return FakeTrainer()(params, architecture, index)
    fake_run(tmp_path / "run", trainer, max_evals=3)
    assert seen == [0, 1, 2]


def test_failed_trial_row_has_empty_metrics_and_the_error(tmp_path):
    with pytest.raises(tuner.RunStateError):
        fake_run(tmp_path / "run", FakeTrainer(lambda p, a, i: "failed"), max_evals=5)
    _, rows = read_csv(tmp_path / "run" / exports.TRIALS_CSV_NAME)
    assert [r["status"] for r in rows] == ["failed"] * tuner.MAX_CONSECUTIVE_FAILURES
    assert rows[0]["val_loss"] == "" and "simulated" in rows[0]["error"]


def test_csv_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "t.csv"
    write_csv_atomically(path, ["a", "b"], [{"a": 1, "b": None}])
    write_csv_atomically(path, ["a", "b"], [{"a": 2, "b": "x;y"}])
    assert read_csv(path)[1] == [{"a": "2", "b": "x;y"}]
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    # a row with a column not in the header is a bug, and the old file survives it
    with pytest.raises(ValueError):
        write_csv_atomically(path, ["a"], [{"a": 3, "c": 4}])
    assert read_csv(path)[1] == [{"a": "2", "b": "x;y"}] and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------------------------------
# TensorBoard HParams
# ---------------------------------------------------------------------------------------

def hparams_events(folder: Path) -> list[tuple[str, object, dict[str, float]]]:
    """(kind, plugin data, scalars) of every event file directly in `folder`, read back with
    TensorFlow's event reader; kind is 'experiment' or 'session_start_info'."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        scalars: dict[str, float] = {}
        datas = []
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "hparams":
                    datas.append(plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
                elif plugin == "scalars":
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
        found += [(data.WhichOneof("data"), data, scalars) for data in datas]
    return found


def session_hparams(data) -> dict[str, object]:
    values = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    return values


def test_hparams_summaries_hold_the_trial_params_and_metrics(tmp_path):
    from sdt.space.domain import Domain
    from sdt.space.search_space import all_potential_dimensions, load_search_space
    space = load_search_space(Path(__file__).resolve().parent.parent / "examples" / "mlp_space.json")
    domain = Domain(all_potential_dimensions(space, 0, 3), 0, 3)
    params = {"unit_d": 64, "dr_f": 0.25, "learning_rate": 1e-3, "batch_size": 32, "optimizer": "Adam",
              "activation": "relu", "unit_d2": 40}
    architecture = Architecture(extra_dense_layers=1, l2=False)
    result = TrainingResult(status=TrialStatus.COMPLETED, val_loss=0.5, val_accuracy=0.875, best_epoch=2,
                            epochs_run=3)
    logs = tmp_path / "logs"
    exports.export_trial_to_tensorboard(logs, 3, domain, params, architecture, result)
    exports.export_trial_to_tensorboard(logs, 4, domain, params, architecture,
                                        TrainingResult(status=TrialStatus.FAILED, error="x"))

    experiments = hparams_events(logs)
    assert len(experiments) == 1 and experiments[0][0] == "experiment"     # written once
    infos = {info.name for info in experiments[0][1].experiment.hparam_infos}
    assert set(space.names) | {"unit_d2", "l2_factor", "extra_dense_layers", "l2", "augmentation"} <= infos
    assert {m.name.tag for m in experiments[0][1].experiment.metric_infos} == {"val_loss", "val_accuracy"}

    [(kind, data, scalars)] = hparams_events(logs / "trial_0003")
    assert kind == "session_start_info" and data.session_start_info.group_name == "trial_0003"
    values = session_hparams(data)
    assert values["unit_d"] == 64 and values["optimizer"] == "Adam" and values["unit_d2"] == 40
    assert math.isclose(values["learning_rate"], 1e-3) and values["extra_dense_layers"] == 1
    assert values["l2"] is False
    assert scalars == pytest.approx({"val_loss": 0.5, "val_accuracy": 0.875})
    # A failed training: its hyper-parameters are listed, no metric is invented.
    [(_, _, failed_scalars)] = hparams_events(logs / "trial_0004")
    assert failed_scalars == {}


def test_summary_json_rows_match_to_rows_of_the_api(tmp_path):
    fake_run(tmp_path / "run")
    from sdt.api import TuningResult
    result = TuningResult.from_log_folder(tmp_path / "run")
    columns, rows = read_csv(tmp_path / "run" / exports.TRIALS_CSV_NAME)
    api_rows = result.to_rows()
    assert [list(r) for r in api_rows] == [columns] * len(rows)
    assert [{k: "" if v is None else str(v) for k, v in r.items()} for r in api_rows] == rows
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.best_val_loss == summary["best"]["val_loss"]
