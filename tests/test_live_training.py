"""Issue 18, item 3: the training in progress is visible outside the run. The run rewrites
running.json after every epoch and removes it once the trial is stored; the dashboard's loader,
Metrics page and status line show it; a file a killed run left is ignored or cleared."""

from __future__ import annotations

import json
import shutil

from sdt.dashboard import data
from sdt.dashboard.app import status_text
from sdt.dashboard.pages import metrics
from sdt.run import loop as tuner
from sdt.run.live import RUNNING_NAME, LiveTraining, read_running
from tests.fake_training import FakeTrainer


def test_the_live_file_holds_the_curves_so_far_and_goes_when_cleared(tmp_path):
    live = LiveTraining(tmp_path)
    live.epoch(3, 1, 5, {"loss": 2.0, "val_loss": 2.1})
    live.epoch(3, 2, 5, {"loss": 1.5, "val_loss": float("nan"), "accuracy": 0.4})
    assert read_running(tmp_path) == {"trial_index": 3, "epoch": 2, "epochs": 5,
                                      "history": {"loss": [2.0, 1.5], "val_loss": [2.1, None], "accuracy": [None, 0.4]}}
    live.epoch(4, 1, 5, {"loss": 2.2})                      # the next trial starts its own curves
    assert read_running(tmp_path)["history"] == {"loss": [2.2]}
    live.clear()
    assert read_running(tmp_path) is None and not (tmp_path / RUNNING_NAME).exists()


def test_a_run_publishes_each_epoch_while_it_trains_and_removes_the_file_after_storing(tmp_path):
    folder = tmp_path / "run"
    seen = []

    def make_train(context, verbose):
        def train(params, architecture, index):
            for epoch in (1, 2):
                context.on_epoch(index, epoch, 3, {"loss": 1.0 / epoch, "val_loss": 2.0 / epoch})
                seen.append(read_running(folder))
                # The dashboard sees the training in progress, not yet a stored trial.
                store = data.load_run(folder)
                assert store["running"]["trial_index"] == index and len(store["running"]["rows"]) == epoch
                assert index not in [t["trial_index"] for t in store["trials"]]
            return FakeTrainer()(params, architecture, index)
        return train

    tuner.run(tuner.RunConfig(dataset="digits", max_evals=2, epochs=3, seed=1, initial_points=1), folder,
              make_train=make_train)
    assert [(s["trial_index"], s["epoch"], s["history"]["loss"]) for s in seen] == [
        (0, 1, [1.0]), (0, 2, [1.0, 0.5]), (1, 1, [1.0]), (1, 2, [1.0, 0.5])]
    assert not (folder / RUNNING_NAME).exists()
    assert data.load_run(folder)["running"] is None


def test_the_dashboard_shows_the_training_in_progress_and_ignores_a_stored_trials_leftover(fake_runs, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(fake_runs["overfitting"], folder)
    stored = [t["trial_index"] for t in data.load_run(folder)["trials"]]
    (folder / RUNNING_NAME).write_text(json.dumps({"trial_index": stored[-1] + 1, "epoch": 2, "epochs": 3,
                                                   "history": {"loss": [2.0, 1.0], "val_loss": [2.2, 1.4],
                                                               "accuracy": [0.3, 0.6], "val_accuracy": [0.2, 0.5]}}))
    store = data.load_run(folder)
    new = stored[-1] + 1
    assert store["running"]["rows"][1] == {"trial_index": new, "epoch": 1, "loss": 1.0, "accuracy": 0.6,
                                           "val_loss": 1.4, "val_accuracy": 0.5}
    assert f"training trial {new} (epoch 2/3)" in status_text(store)
    assert metrics.trial_options(store)[-1] == {"label": f"trial {new} (training: epoch 2/3)", "value": new}
    figure = metrics.metrics_figure(store)
    names = {trace.name for trace in figure.data}
    assert f"trial {new} (training) validation loss" in names
    assert [trace.y for trace in figure.data if trace.name == f"trial {new} (training) validation loss"] == [(2.2, 1.4)]
    # A file naming a stored trial (the run was killed after storing it): nothing is in progress.
    (folder / RUNNING_NAME).write_text(json.dumps({"trial_index": stored[-1], "epoch": 1, "epochs": 3,
                                                   "history": {"loss": [2.0]}}))
    assert data.load_run(folder)["running"] is None
    (folder / RUNNING_NAME).write_text("{half a fi")
    assert data.load_run(folder)["running"] is None


def test_the_next_start_clears_a_killed_runs_training_in_progress(fake_runs, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(fake_runs["overfitting"], folder)
    (folder / RUNNING_NAME).write_text(json.dumps({"trial_index": 99, "epoch": 1, "epochs": 3, "history": {}}))
    tuner.run(tuner.RunConfig(dataset="digits", max_evals=5, epochs=3, seed=1), folder, resume=True,
              make_train=lambda context, verbose: FakeTrainer())
    assert not (folder / RUNNING_NAME).exists()


def test_the_dashboard_lists_every_trial_in_progress_with_its_worker(tmp_path):
    folder = tmp_path / "run"
    seen = []

    def make_train(context, verbose):
        def train(params, architecture, index):
            context.on_epoch(index, 1, 3, {"loss": 1.0, "val_loss": 2.0})
            store = data.load_run(folder)
            seen.append(([t["trial_index"] for t in store["in_progress"]], status_text(store)))
            return FakeTrainer()(params, architecture, index)
        return train

    tuner.run(tuner.RunConfig(dataset="digits", max_evals=2, epochs=3, seed=1, initial_points=1), folder,
              make_train=make_train)
    # One at a time: the running trial is listed, and the status line shows its live epochs.
    assert [indices for indices, _ in seen] == [[0], [1]]
    assert "training trial 1 (epoch 1/3)" in seen[1][1] and "in progress" not in seen[1][1]
    # A second trial running elsewhere (another worker) is named with its worker.
    store = data.load_run(folder)
    assert store["in_progress"] == []
    store["in_progress"] = [{"trial_index": 5, "started_at": "2026-11-30T08:00:00.000+00:00",
                             "worker": "node-b:4242", "params": {}}]
    assert "in progress: trial 5 on node-b:4242" in status_text(store)
