"""Trials in parallel (issue 16): running trials in storage, proposals that know what is running,
rule learning that judges an action by the trials proposed after it, and Ray workers.

The loop tests use the fake trainer; the Ray tests start a real local Ray instance (marked slow)
and run the real command line on a tiny .npz dataset."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from sdt.actions import ArchitectureLimits
from sdt.core.records import Architecture
from sdt.core.vocabulary import OVERFITTING, REG_L2, VAL_LOSS
from sdt.run import loop as tuner
from sdt.run.controller import Controller, Objective, RunningTrial
from sdt.run.storage import RunStorage
from sdt.space.domain import Domain
from sdt.space.search_space import default_search_space
from sdt.strategies.gaussian_process import ConstrainedGPOptimizer
from sdt.symbolic.block import SymbolicBlock
from tests.fake_training import AlwaysApply, FakeTrainer, fake_factory, tiny_npz

REPO = Path(__file__).resolve().parent.parent
PARAMS = {"unit_c1": 32, "dr1_2": 0.1, "unit_c2": 64, "unit_d": 300, "dr_f": 0.2, "learning_rate": 1e-3,
          "batch_size": 32, "optimizer": "Adam", "activation": "relu"}


# ------------------------------------------------------------------ proposals with trials running

class _State:
    def __init__(self, space):
        self.space, self.architecture, self.preferences = space, Architecture(), ()


def told_optimizer(count: int) -> ConstrainedGPOptimizer:
    space = default_search_space()
    optimizer = ConstrainedGPOptimizer(Domain(space, 0, 0), n_initial_points=2, n_candidates=500)
    rng = np.random.default_rng(0)
    for _ in range(count):
        proposal = optimizer.ask(_State(space), rng)
        optimizer.tell(proposal.params, proposal.architecture, float(rng.random()))
    return optimizer


def test_the_gp_counts_running_trials_as_asked_and_moves_away_from_them():
    space = default_search_space()
    fresh = ConstrainedGPOptimizer(Domain(space, 0, 0), n_initial_points=2, n_candidates=500)
    first = fresh.ask(_State(space), np.random.default_rng(1))
    # One told, one running: the initial phase of 2 points is over only when counting the running one.
    fresh.tell(first.params, first.architecture, 0.5)
    assert fresh.ask(_State(space), np.random.default_rng(2)).decision.facts["phase"] == "initial"
    running = fresh.ask(_State(space), np.random.default_rng(3))
    with_running = fresh.ask(_State(space), np.random.default_rng(4), [(running.params, running.architecture)])
    assert with_running.decision.facts["phase"] == "model"
    assert with_running.decision.facts["pending"] == 1 and with_running.decision.facts["lie"] == 0.5

    optimizer = told_optimizer(5)
    alone = optimizer.ask(_State(space), np.random.default_rng(7))
    # The same generator state with the first proposal running: the GP is told it scored the best
    # so far there, so its expected improvement vanishes there and another point is proposed.
    beside = optimizer.ask(_State(space), np.random.default_rng(7), [(alone.params, alone.architecture)])
    assert beside.params != alone.params
    assert "constant liar" in beside.decision.summary


# ------------------------------------------------------------------ judging actions in parallel

@pytest.fixture(scope="module")
def symbolic():
    return SymbolicBlock()


def test_an_action_is_judged_by_a_trial_proposed_after_it_not_by_one_already_running(symbolic):
    controller = Controller(FakeTrainer(), symbolic, Objective(VAL_LOSS, 10), ArchitectureLimits(2, 3))
    trainer = FakeTrainer()             # overfitting curves: reg_l2 is applied after each trial
    state = controller.initial_state(default_search_space())
    # Trials 0 and 1 are proposed from the initial state and run side by side.
    under_0 = controller.proposed_under(state, 0)
    under_1 = controller.proposed_under(state, 0)
    record_0, state = controller.analyse(0, PARAMS, Architecture(), trainer(PARAMS, Architecture(), 0), state,
                                         AlwaysApply(0), under_0)
    assert [a.name for a in record_0.chosen] == [REG_L2]
    # Trial 2 is proposed now, with reg_l2 waiting; trial 1 (already running) finishes first.
    under_2 = controller.proposed_under(state, 1)
    assert [p.action.name for p in under_2.pending] == [REG_L2] and under_2.pending[0].after_trial == 0
    record_1, state = controller.analyse(1, PARAMS, Architecture(), trainer(PARAMS, Architecture(), 1), state,
                                         AlwaysApply(1), under_1)
    assert record_1.new_observations == ()                     # it ran without the action: no label
    (second,) = record_1.chosen                                # (L2 is on now: another regulariser)
    assert [(p.action.name, p.after_trial) for p in state.pending()] == [(REG_L2, 0), (second.name, 1)]
    # Trial 2 judges the action applied after trial 0 against trial 0's objective, and only that one.
    worse = {**PARAMS, "learning_rate": 1e-1}                  # the fake landscape: farther from 1e-3, worse
    record_2, state = controller.analyse(2, worse, Architecture(), trainer(worse, Architecture(), 2), state,
                                         AlwaysApply(2), under_2)
    assert [(o.action, o.problem, o.improved) for o in record_2.new_observations] == [(REG_L2, OVERFITTING, False)]
    assert record_2.objective > record_0.objective
    assert [(p.action.name, p.after_trial) for p in state.pending()][0] == (second.name, 1)
    assert all(p.after_trial != 0 for p in state.pending())


# ------------------------------------------------------------------ running trials in storage

def fake_run(folder: Path, history_for, max_evals: int = 4, resume: bool = False, **options):
    config = tuner.RunConfig(dataset="digits", max_evals=max_evals, epochs=1, initial_points=2, seed=0)
    return tuner.run(config, folder, resume=resume, make_train=fake_factory(FakeTrainer(history_for)), **options)


def test_a_training_in_progress_is_stored_running_and_trained_again_with_its_proposal_on_resume(tmp_path):
    folder = tmp_path / "run"
    seen: dict[int, dict] = {}

    def interrupted_in_trial_2(params, architecture, index):
        if index == 2:
            with RunStorage.open(folder, read_only=True) as storage:
                seen["running"] = [r.to_dict() for r in storage.running_trials()]
            raise KeyboardInterrupt
        return "overfitting"
    with pytest.raises(KeyboardInterrupt):
        fake_run(folder, interrupted_in_trial_2)
    (running,) = [RunningTrial.from_dict(r) for r in seen["running"]]
    assert running.index == 2 and running.worker == tuner.WORKER and running.proposed_under.trials_finished == 2
    with RunStorage.open(folder, read_only=True) as storage:
        assert [r.index for r in storage.running_trials()] == [2]      # still running when killed
        assert [r.index for r in storage.records()] == [0, 1]

    trained: list[tuple[int, dict]] = []

    def recorded(params, architecture, index):
        trained.append((index, dict(params)))
        return "overfitting"
    fake_run(folder, recorded, resume=True)
    assert trained[0] == (2, running.params)                  # the same proposal, not a new one
    with RunStorage.open(folder, read_only=True) as storage:
        assert storage.running_trials() == []
        records = storage.records()
    assert [r.index for r in records] == [0, 1, 2, 3]           # nothing lost, nothing twice
    assert records[2].params == running.params and records[2].decision == running.decision
    assert records[2].proposed_under == running.proposed_under


def test_workers_and_trial_resources_are_checked_before_anything_is_written(tmp_path, capsys):
    from sdt.cli.main import main
    for flags, message in ((["--workers", "0"], "--workers must be a whole number >= 1, got 0"),
                           (["--cpus-per-trial", "0"], "--cpus-per-trial must be a number > 0"),
                           (["--gpus-per-trial", "-1"], "--gpus-per-trial must be a number >= 0")):
        folder = tmp_path / flags[0].strip("-")
        assert main(["--dataset", "digits", "--log-folder", str(folder), *flags]) == 2
        assert message in capsys.readouterr().err
        assert not folder.exists()


# ------------------------------------------------------------------ Ray

requires_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                  reason='Ray is not installed (pip install ".[ray]")')


def overlapping(trials: list[dict]) -> bool:
    spans = sorted((datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"]))
                   for t in trials)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


def main_py(*arguments: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *arguments], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.slow
@pytest.mark.processes
@requires_ray
def test_two_workers_train_four_unique_trials_side_by_side(tmp_path):
    dataset = tiny_npz(tmp_path / "tiny.npz")
    folder = tmp_path / "run"
    result = main_py("--dataset", str(dataset), "--workers", "2", "--max-evals", "4", "--epochs", "2",
                     "--initial-points", "2", "--log-folder", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training up to 2 trials at once on a local Ray instance" in result.stdout
    summary = json.loads((folder / "summary.json").read_text())
    trials = summary["trials"]
    assert sorted(t["index"] for t in trials) == [0, 1, 2, 3]
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 4     # unique proposals
    assert overlapping(trials)                                                     # two at once
    assert len({t["worker"] for t in trials}) == 2
    assert all(t["worker"] and t["worker"].split(":")[1] != "" for t in trials)
    with RunStorage.open(folder, read_only=True) as storage:
        assert storage.running_trials() == []
    with open(folder / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert {r["worker"] for r in rows} == {t["worker"] for t in trials}
    assert (folder / "best_model.keras").is_file() and summary["best"]["test_accuracy"] is not None
    # Every trial wrote its TensorBoard curves, whichever worker trained it.
    assert all(any((folder / "logs" / f"trial_{i:04d}").rglob("events.out.tfevents.*")) for i in range(4))


@pytest.mark.slow
@pytest.mark.processes
@requires_ray
def test_killing_the_driver_with_trainings_in_flight_then_resume_loses_and_duplicates_nothing(tmp_path):
    dataset = tiny_npz(tmp_path / "tiny.npz")
    folder = tmp_path / "run"
    arguments = ["--dataset", str(dataset), "--workers", "2", "--max-evals", "5", "--epochs", "3",
                 "--initial-points", "2", "--log-folder", str(folder)]
    driver = subprocess.Popen([sys.executable, str(REPO / "main.py"), *arguments], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    in_flight: list[RunningTrial] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.5)
            try:
                with RunStorage.open(folder, read_only=True) as storage:
                    committed, running = storage.records(), storage.running_trials()
            except Exception:          # not created yet, or being written
                continue
            if committed and len(running) == 2:
                in_flight = running
                os.killpg(driver.pid, signal.SIGKILL)      # the driver and its Ray processes
                break
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert len(in_flight) == 2, "the run ended before two trainings were in flight with one committed"
    result = main_py("--resume", "--log-folder", str(folder), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    with RunStorage.open(folder, read_only=True) as storage:
        records = storage.records()
        assert storage.running_trials() == []
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    by_index = {r.index: r for r in records}
    for running in in_flight:         # trained again as proposed
        assert by_index[running.index].params == running.params
        assert by_index[running.index].proposed_under == running.proposed_under


def ray_cli(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *arguments], capture_output=True,
                          text=True, timeout=300, env=env)


def start_ray_node(*arguments: str, env: dict) -> int:
    """`ray start ...` in a process group of its own, which the node's processes keep after the
    command returns: the group to stop (`stop_process_group`). `ray stop` would stop every Ray
    process of the machine, a user's too."""
    starter = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *arguments], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = starter.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        stop_process_group(starter.pid)
        raise
    if starter.returncode != 0:
        stop_process_group(starter.pid)
        pytest.fail(f"ray start {' '.join(arguments)} failed: {stderr[-2000:]}")
    return starter.pid


def stop_process_group(group: int) -> None:
    """SIGTERM to every process of the group, SIGKILL to those left after 10 s; back when all are gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 10
        try:
            os.killpg(group, sig)
            while time.monotonic() < deadline:
                os.killpg(group, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            return


@pytest.fixture
def two_node_cluster():
    """A Ray cluster on 127.0.0.1: a head started with `ray start --head` and a second worker node,
    one CPU each, so two trainings can only run at once on two nodes. Token authentication (Ray's
    default since 2.5x) is off, as for a cluster on one trusted machine. Each node's processes are
    stopped by their process group, so no other Ray instance of the machine is touched."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{port}"
    groups = []
    try:
        groups.append(start_ray_node("--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                                     "--include-dashboard=false", env=env))
        groups.append(start_ray_node(f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1", env=env))
        yield address, env
    finally:
        for group in reversed(groups):        # the worker node, then the head
            stop_process_group(group)


@pytest.mark.slow
@pytest.mark.processes
@requires_ray
def test_ray_address_joins_a_two_node_cluster_and_trains_on_both_nodes(tmp_path, two_node_cluster):
    address, env = two_node_cluster
    dataset = tiny_npz(tmp_path / "tiny.npz")
    folder = tmp_path / "run"
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "--dataset", str(dataset), "--ray-address",
                             address, "--workers", "2", "--max-evals", "4", "--epochs", "2", "--initial-points", "2",
                             "--log-folder", str(folder)], capture_output=True, text=True, timeout=900, cwd=REPO,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"on the Ray cluster at {address}" in result.stdout
    trials = json.loads((folder / "summary.json").read_text())["trials"]
    assert sorted(t["index"] for t in trials) == [0, 1, 2, 3]
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 4
    assert overlapping(trials) and len({t["worker"] for t in trials}) == 2
    # The cluster is left running for its owner: the run only disconnected from it.
    status = ray_cli("status", f"--address={address}", env=env)
    assert status.returncode == 0 and status.stdout.count("node_") >= 2, status.stdout[-2000:]
    # Without --ray-address a run starts a Ray instance of its own, also while another runs here
    # (plain ray.init() would join it, and refuse the run's num_cpus).
    alone = subprocess.run([sys.executable, str(REPO / "main.py"), "--dataset", str(dataset), "--workers", "2",
                            "--max-evals", "2", "--epochs", "1", "--initial-points", "2", "--log-folder",
                            str(tmp_path / "alone")], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "on a local Ray instance" in alone.stdout
    assert ray_cli("status", f"--address={address}", env=env).stdout.count("node_") == status.stdout.count("node_")


@requires_ray
def test_a_ray_address_where_no_cluster_runs_is_one_clear_error(tmp_path, capsys):
    from sdt.cli.main import main
    folder = tmp_path / "run"
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["--dataset", "digits", "--ray-address", f"127.0.0.1:{port}", "--max-evals", "1",
                 "--log-folder", str(folder)]) == 2
    assert f"--ray-address 127.0.0.1:{port}: no Ray cluster there" in capsys.readouterr().err
    assert not folder.exists()                       # refused before anything was written


def test_more_than_one_worker_without_ray_installed_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import builtins
    from sdt.cli.main import main
    real_import = builtins.__import__

    def without_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", without_ray)
    folder = tmp_path / "run"
    assert main(["--dataset", "digits", "--workers", "2", "--max-evals", "2", "--log-folder", str(folder)]) == 2
    assert 'need Ray: pip install "symbolic-dnn-tuner[ray]"' in capsys.readouterr().err
    assert not folder.exists()
