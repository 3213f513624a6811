"""The benchmark end to end: with the fake trainer (two budgets, per-budget runs, reuse, the guidance
error) and, marked slow, a tiny real comparison on digits so it cannot silently rot."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import benchmark

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmark_writes_table_plot_and_csv(tmp_path):
    output = tmp_path / "bench"
    result = subprocess.run([sys.executable, str(REPO / "benchmark.py"), "--dataset", "digits",
                             "--strategies", "sdt,bo", "--seeds", "0", "--max-evals", "2", "--epochs", "1",
                             "--initial-points", "1", "--output-dir", str(output)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    table = (output / "results.md").read_text()
    for strategy in ("sdt", "bo"):
        assert f"| {strategy} |" in table
    with open(output / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4 and {r["strategy"] for r in rows} == {"sdt", "bo"}
    assert (output / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_counts_trainings_to_reach_bo():
    def rows(strategy, accuracies):
        return [{"arm": strategy, "strategy": strategy, "seed": 0, "run_budget": 3, "per_budget": False, "index": i,
                 "status": "completed", "val_accuracy": a, "val_loss": 1 - a, "objective": 1 - a,
                 "test_accuracy": None, "symbolic_seconds": 0.05, "iteration_seconds": 10.0,
                 "run_wall_seconds": 30.0} for i, a in enumerate(accuracies)]
    summaries = benchmark.summarise(rows("bo", [0.5, 0.7, 0.6]) + rows("sdt", [0.6, 0.8, 0.8]),
                                    benchmark.parse_arms("sdt,bo"), 3)
    by_name = {summary.arm.label: benchmark.arm_table_row(summary) for summary in summaries}
    assert by_name["sdt"]["trainings to reach bo's best (per seed)"] == "2"
    assert by_name["bo"]["trainings to reach bo's best (per seed)"] == "2"
    assert by_name["sdt"]["symbolic step, median"] == "50 ms"
    assert by_name["sdt"]["best val_accuracy"].startswith("0.8000")


@pytest.mark.slow
def test_a_started_again_benchmark_reuses_finished_runs(tmp_path):
    arguments = ["--dataset", "digits", "--strategies", "bo", "--seeds", "0", "--max-evals", "2", "--epochs", "1",
                 "--initial-points", "1", "--output-dir", str(tmp_path / "bench")]
    assert benchmark.main(arguments) == 0
    database = tmp_path / "bench" / "runs" / "bo_seed0" / "run.sqlite"
    written = database.stat().st_mtime_ns
    assert benchmark.main(arguments) == 0                      # nothing left to run
    assert database.stat().st_mtime_ns == written
    assert "| bo |" in (tmp_path / "bench" / "results.md").read_text()


def varied_history(params, architecture, index):
    """Fake curves that depend on the proposal, so strategies differ and the symbolic block acts."""
    if params["learning_rate"] > 1e-2:
        return "high_lr"
    if params["learning_rate"] < 3e-4:
        return "low_lr"
    return "healthy" if params["batch_size"] < 128 else "overfitting"


def fake_benchmark(output, strategies="sdt,bo,evolution", budgets="2,3"):
    from tests.fake_training import FakeTrainer, fake_factory
    arguments = ["--dataset", "digits", "--strategies", strategies, "--seeds", "0", "--budgets", budgets,
                 "--epochs", "1", "--initial-points", "1", "--output-dir", str(output)]
    return benchmark.main(arguments, make_train=fake_factory(FakeTrainer(varied_history)))


def test_two_budgets_from_one_run_per_arm_and_seed_with_the_fake_trainer(tmp_path, capsys):
    output = tmp_path / "bench"
    assert fake_benchmark(output) == 0
    progress = capsys.readouterr().out
    assert "[1/4] sdt_seed0: 3 trainings" in progress and "[4/4] evolution_seed0_b3: 3 trainings" in progress
    assert "benchmark elapsed" in progress
    # sdt and bo ran once to the largest budget; evolution, which reads the budget, once per budget.
    runs = sorted(p.name for p in (output / "runs").iterdir() if p.is_dir())
    assert runs == ["bo_seed0", "evolution_seed0_b2", "evolution_seed0_b3", "sdt_seed0"]
    with open(output / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["run"], r["index"]) for r in rows if r["arm"] == "evolution"] == [
        ("evolution_seed0_b2", "0"), ("evolution_seed0_b2", "1"),
        ("evolution_seed0_b3", "0"), ("evolution_seed0_b3", "1"), ("evolution_seed0_b3", "2")]
    assert len([r for r in rows if r["arm"] == "sdt"]) == 3
    assert {"arm", "guidance", "seed", "index", "val_accuracy", "objective", "status", "actions"} <= set(rows[0])
    report = (output / "results.md").read_text()
    budget_2, budget_3 = report.split("## Budget 2 trainings")[1].split("## Budget 3 trainings")
    for section in (budget_2, budget_3):
        assert "| sdt | 1 |" in section and "| bo | 1 |" in section and "| evolution | 1 |" in section
        assert "### Symbolic actions" in section
        assert section.count("- sdt, ") == 3 and "evolution, median best" not in section
    assert "evolution read the budget" in report
    assert (output / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_started_again_fake_benchmark_reuses_its_finished_runs(tmp_path, capsys):
    output = tmp_path / "bench"
    assert fake_benchmark(output, strategies="bo,evolution") == 0
    databases = sorted((output / "runs").glob("*/run.sqlite"))
    written = [database.stat().st_mtime_ns for database in databases]
    capsys.readouterr()
    assert fake_benchmark(output, strategies="bo,evolution") == 0
    assert capsys.readouterr().out.count("reused the finished run") == 3
    assert [database.stat().st_mtime_ns for database in databases] == written


def stored_trials_of(folder):
    with benchmark.RunStorage.open(folder, read_only=True) as storage:
        return [(trial.record, trial.finished_at) for trial in storage.stored_trials()]


def untimed(trials):
    """The records without what the clock sets (when and how long), which no two runs share."""
    from dataclasses import replace
    return [replace(record, symbolic_seconds=0.0, started_at="", finished_at="") for record, _ in trials]


def test_a_larger_budget_extends_the_runs_that_do_not_read_it_into_the_uninterrupted_longer_runs(tmp_path, capsys):
    output = tmp_path / "bench"
    assert fake_benchmark(output, budgets="2") == 0
    before = {name: stored_trials_of(output / "runs" / name) for name in ("sdt_seed0", "bo_seed0")}
    evolution = (output / "runs" / "evolution_seed0_b2" / "run.sqlite").stat().st_mtime_ns
    capsys.readouterr()
    assert fake_benchmark(output, budgets="2,4") == 0
    assert "reused the finished run" in capsys.readouterr().out        # evolution's budget-2 run
    assert (output / "runs" / "evolution_seed0_b2" / "run.sqlite").stat().st_mtime_ns == evolution
    assert (output / "runs" / "evolution_seed0_b4").is_dir()           # it reads the budget: a run of its own
    straight = tmp_path / "straight"
    assert fake_benchmark(straight, strategies="sdt,bo", budgets="4") == 0
    for name, kept in before.items():
        extended = stored_trials_of(output / "runs" / name)
        assert len(extended) == 4 and extended[:2] == kept             # the two trainings kept, not trained again
        # ...and the longer run is the one a benchmark to budget 4 runs from the start.
        assert untimed(extended) == untimed(stored_trials_of(straight / "runs" / name))
    # Its time: the first run's session and the extension's, not the gap between them.
    sessions = json.loads((output / "runs" / "sdt_seed0.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0][1] <= sessions[1][0]
    with open(output / "trials.csv") as stream:
        rows = [r for r in csv.DictReader(stream) if r["arm"] == "sdt"]
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]


def test_an_epoch_budget_runs_every_arm_to_the_same_epochs_and_checks_issue_14(tmp_path, capsys):
    from tests.fake_training import FakeTrainer, fake_factory
    output = tmp_path / "bench"
    # Every training has 30 epochs; low learning rates get a stuck curve that the sdt arm prunes.
    arguments = ["--dataset", "digits", "--strategies", "sdt,bo", "--seeds", "0", "--epoch-budget", "70",
                 "--epochs", "30", "--initial-points", "1", "--output-dir", str(output)]
    assert benchmark.main(arguments, make_train=fake_factory(FakeTrainer(varied_history), honour_stop=True)) == 0
    progress = capsys.readouterr().out
    assert "[1/2] sdt_seed0_e70: 70 epochs in trainings" in progress
    assert sorted(p.name for p in (output / "runs").iterdir() if p.is_dir()) == ["bo_seed0_e70", "sdt_seed0_e70"]
    with open(output / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    for arm in ("sdt", "bo"):
        epochs = [int(r["epochs_run"]) for r in rows if r["arm"] == arm]
        # The run stopped starting trainings once 70 epochs were spent: only its last one passed 70.
        assert sum(epochs[:-1]) < 70 <= sum(epochs)
    assert {r["status"] for r in rows if r["arm"] == "bo"} == {"completed"}       # the baseline never prunes
    report = (output / "results.md").read_text()
    assert "## Epoch budget 70" in report and "## Budget" not in report
    assert "### Issue 14's check at 70 epochs" in report and "- sdt, bo's final best reached within 70 %" in report
    assert "| bo | 1 |" in report and "| sdt | 1 |" in report
    assert (output / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_epoch_budget_and_a_budget_of_trainings_are_refused_together(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--epoch-budget", "60", "--budgets", "10"])
    assert "not both" in capsys.readouterr().err
    assert benchmark.parse_args(["--issue14"]).epoch_budget == 96
    assert benchmark.parse_args(["--issue14"]).strategies == "sdt-prior,bo"


def test_the_mrs_measurement_scores_trains_and_reports_the_screening(tmp_path, capsys):
    import json
    import math
    from scipy.stats import spearmanr
    from sdt.core.records import TrainingResult

    def fake_train(params, architecture, dataset, **kwargs):
        # A landscape the report can be checked against: accuracy grows with the dense layer.
        return TrainingResult("completed", val_loss=1.0, val_accuracy=params["unit_d"] / 1024, duration_seconds=2.0)
    args = benchmark.parse_args(["--mrs", "8", "--epochs", "1", "--seeds", "3", "--output-dir", str(tmp_path)])
    assert args.dataset == "digits"
    assert benchmark.mrs_main(args, [], tmp_path, train=fake_train) == 0
    result = json.loads((tmp_path / "mrs.json").read_text())
    rows = result["rows"]
    assert len(rows) == 8 and result["groups"] == 2 and result["seed"] == 3
    assert all(math.isfinite(r["log_p"]) and r["mrs_seconds"] > 0 for r in rows)
    accuracies = [r["val_accuracy"] for r in rows]
    assert accuracies == [r["params"]["unit_d"] / 1024 for r in rows]
    assert result["spearman_log_p"] == pytest.approx(spearmanr([r["log_p"] for r in rows], accuracies)[0])
    picks = [max(rows[i:i + 4], key=lambda r: r["log_p"]) for i in (0, 4)]
    assert result["pick_accuracy_mean"] == pytest.approx(sum(p["val_accuracy"] for p in picks) / 2)
    assert result["training_seconds_median"] == 2.0
    text = (tmp_path / "mrs.md").read_text()
    assert "Spearman rank correlation" in text and f"{result['spearman_log_p']:+.2f}" in text


def test_the_mrs_measurement_needs_a_group_of_candidates(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--mrs", "2"])
    assert "--mrs takes a number of candidates >= 4" in capsys.readouterr().err


def test_an_arm_may_set_strategy_options():
    arm = benchmark.parse_arm("evolution@fitness=mrs+trained@offspring=3")
    assert (arm.strategy, arm.options) == ("evolution", (("fitness", "mrs+trained"), ("offspring", "3")))
    args = benchmark.parse_args(["--dataset", "digits", "--seeds", "0", "--budgets", "4"])
    config = benchmark.make_config(arm, 0, 4, args)
    config.validate()
    assert config.strategy_options == {"fitness": "mrs+trained", "offspring": "3"}
    for label in ("evolution@fitness", "evolution@colour=red", "bo@fitness=mrs"):
        with pytest.raises(benchmark.ConfigurationError, match="is not name=value of an option"):
            benchmark.parse_arm(label)


def test_a_benchmark_stopped_in_a_run_resumes_it_and_keeps_the_finished_trainings(tmp_path, capsys):
    from tests.fake_training import FakeTrainer, fake_factory
    output = tmp_path / "bench"
    arguments = ["--dataset", "digits", "--strategies", "bo", "--seeds", "0", "--max-evals", "4",
                 "--epochs", "1", "--initial-points", "1", "--output-dir", str(output)]

    def stopped_at_the_third(params, architecture, index):
        if index == 2:
            raise KeyboardInterrupt          # the benchmark is stopped (Ctrl-C, session end) in training 3
        return varied_history(params, architecture, index)
    with pytest.raises(KeyboardInterrupt):
        benchmark.main(arguments, make_train=fake_factory(FakeTrainer(stopped_at_the_third)))
    database = output / "runs" / "bo_seed0"
    with benchmark.RunStorage.open(database, read_only=True) as storage:
        before = [(trial.record, trial.finished_at) for trial in storage.stored_trials()]
    assert len(before) == 2
    capsys.readouterr()
    assert benchmark.main(arguments, make_train=fake_factory(FakeTrainer(varied_history))) == 0
    assert "reused the finished run" not in capsys.readouterr().out
    with benchmark.RunStorage.open(database, read_only=True) as storage:
        after = [(trial.record, trial.finished_at) for trial in storage.stored_trials()]
    assert len(after) == 4 and after[:2] == before           # resumed: the two trainings were kept, not rerun
    with open(output / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    # The time the benchmark was stopped is not counted: the sessions' sum, not first start to last end.
    sessions = json.loads((output / "runs" / "bo_seed0.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0][1] <= sessions[1][0]
    assert float(rows[0]["run_wall_seconds"]) == pytest.approx(sum(end - start for start, end in sessions))
    assert benchmark.main(arguments, make_train=fake_factory(FakeTrainer(varied_history))) == 0
    assert "reused the finished run" in capsys.readouterr().out
