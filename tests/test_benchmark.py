"""A smoke test so the benchmark cannot silently rot: a tiny real comparison on digits."""

import csv
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
                             "--strategies", "sdt,bo,random", "--seeds", "0", "--max-evals", "2", "--epochs", "2",
                             "--initial-points", "1", "--output-dir", str(output)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    table = (output / "results.md").read_text()
    for strategy in ("sdt", "bo", "random"):
        assert f"| {strategy} |" in table
    with open(output / "trials.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 6 and {r["strategy"] for r in rows} == {"sdt", "bo", "random"}
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
