"""The tuning loop end to end with a fake trainer: actions reach the next trial, outputs agree, resume loses nothing."""

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sdt.run import loop as tuner
from sdt.core.records import Architecture
from sdt.run.storage import RunStorage, read_records
from tests.fake_training import GAP_STILL_LEARNING, GAP_TURNED_UP, FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent


def config(**changes):
    base = dict(dataset="digits", max_evals=4, epochs=3, seed=1, initial_points=2)
    base.update(changes)
    return tuner.RunConfig(**base)


def run(tmp_path, trainer, **changes):
    return tuner.run(config(**changes), tmp_path / "run", make_train=fake_factory(trainer))


def test_a_diagnosis_applies_an_action_and_the_next_trial_reflects_it(tmp_path):
    trainer = FakeTrainer()          # every training overfits
    summary = run(tmp_path, trainer)
    first, second = summary["trials"][0], summary["trials"][1]
    assert "overfitting" in first["problems"] and first["actions"] == ["reg_l2"]
    # The next training really ran with L2 on (and only L2: batch norm is add_batch_norm's) and an
    # L2 factor chosen by the optimiser.
    params, architecture = trainer.calls[1][0], trainer.calls[1][1]
    assert architecture.l2 and not architecture.batch_norm
    assert 1e-6 <= params["l2_factor"] <= 1e-2
    assert second["architecture"]["l2"] is True
    # A later training with L2 on gets another overfitting remedy (reg_l2 is not applicable to it;
    # the optimiser may turn L2 off again, and a training without it may get reg_l2 again).
    with_l2 = [t for t in summary["trials"][1:] if t["architecture"]["l2"]]
    assert with_l2 and all(t["actions"] and "reg_l2" not in t["actions"] for t in with_l2)


def test_summary_and_database_agree(tmp_path):
    summary = run(tmp_path, FakeTrainer())
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        assert storage.integrity_ok()
        records = storage.records()
        assert [r.index for r in records] == [0, 1, 2, 3]
        for stored, summarised in zip(records, on_disk["trials"]):
            assert stored.params == summarised["params"]
            assert stored.result.val_loss == summarised["val_loss"]
            assert list(stored.outcome.applied_actions) == summarised["actions"]
            assert sorted(stored.diagnosis.problem_names()) == summarised["problems"]
    assert set(on_disk) >= {"strategy", "seed", "dataset", "trials", "best"}
    assert on_disk["best"]["index"] == min(on_disk["trials"], key=lambda t: t["objective"])["index"]
    best = on_disk["trials"][on_disk["best"]["index"]]
    assert on_disk["best"]["params"] == best["params"] and on_disk["best"]["architecture"] == best["architecture"]
    for stored, summarised in zip(records, on_disk["trials"]):
        assert summarised["training_seconds"] == stored.result.duration_seconds
        assert summarised["symbolic_seconds"] == stored.symbolic_seconds


def test_space_edits_keep_every_trial_in_the_optimiser(tmp_path):
    trainer = FakeTrainer(lambda p, a, i: "high_lr")     # decr_lr moves the learning-rate range each time
    summary = run(tmp_path, trainer, max_evals=5, guidance="edit")
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        spaces = [json.loads(r[0]) for r in storage._connection.execute(
            "SELECT space FROM search_spaces ORDER BY trial_index")]
    highs = [next(d for d in s["dimensions"] if d["name"] == "learning_rate")["high"] for s in spaces]
    assert highs[-1] < highs[0]                          # the range really moved down
    # Resume rebuilds the optimiser from every stored trial, also those outside the edited space.
    context = tuner.prepare(config(guidance="edit"), tmp_path / "run")
    strategy = tuner.make_strategy(context)
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        for record in storage.records():
            strategy.tell(record.params, record.architecture, record.objective)
    assert len(strategy.optimizer.points) == len(summary["trials"]) == 5


class Interrupt(Exception):
    pass


def test_resume_after_interruption_continues_without_loss(tmp_path):
    uninterrupted = FakeTrainer()
    run(tmp_path / "a", uninterrupted, max_evals=5)

    def crash_on_third(params, architecture, index):
        if index == 2:
            raise Interrupt()        # the process dies during the third training
        return FakeTrainer()(params, architecture, index)
    with pytest.raises(Interrupt):
        run(tmp_path / "b", crash_on_third, max_evals=5)
    partial = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())
    assert len(partial["trials"]) == 2

    resumed = FakeTrainer()
    summary = tuner.run(config(max_evals=5), tmp_path / "b" / "run", resume=True,
                       make_train=fake_factory(resumed))
    assert [t["index"] for t in summary["trials"]] == [0, 1, 2, 3, 4]
    assert [c[2] for c in resumed.calls] == [2, 3, 4]               # nothing repeated
    # Same seed, same state: the resumed run is the run that was never interrupted.
    reference = json.loads((tmp_path / "a" / "run" / "summary.json").read_text())
    assert [t["params"] for t in summary["trials"]] == [t["params"] for t in reference["trials"]]
    assert [t["actions"] for t in summary["trials"]] == [t["actions"] for t in reference["trials"]]


@pytest.mark.parametrize("strategy", ["bo", "random"])
def test_baselines_use_the_same_trainer_and_never_edit(tmp_path, strategy):
    trainer = FakeTrainer()
    summary = run(tmp_path, trainer, strategy=strategy)
    assert summary["strategy"] == strategy and len(trainer.calls) == 4
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        from sdt.space.search_space import SearchSpace
        initial = SearchSpace.from_dict(json.loads(storage._connection.execute(
            "SELECT space FROM search_spaces WHERE trial_index=-1").fetchone()[0]))
    for params, architecture, _ in trainer.calls:
        assert architecture == Architecture()
        assert set(params) == set(initial.names) and initial.contains(params)
    assert all(t["actions"] == [] for t in summary["trials"])
    assert all("overfitting" in t["problems"] for t in summary["trials"])   # still explained


def test_same_seed_same_sequence_different_seed_different(tmp_path):
    a = run(tmp_path / "a", FakeTrainer(), seed=5)
    b = run(tmp_path / "b", FakeTrainer(), seed=5)
    c = run(tmp_path / "c", FakeTrainer(), seed=6)
    assert [t["params"] for t in a["trials"]] == [t["params"] for t in b["trials"]]
    assert [t["params"] for t in a["trials"]] != [t["params"] for t in c["trials"]]


def test_existing_run_is_refused_unless_resume_or_overwrite(tmp_path):
    run(tmp_path, FakeTrainer(), max_evals=1)
    with pytest.raises(tuner.RunStateError, match="already holds a run"):
        run(tmp_path, FakeTrainer(), max_evals=1)
    summary = tuner.run(config(max_evals=2), tmp_path / "run", overwrite=True,
                       make_train=fake_factory(FakeTrainer()))
    assert len(summary["trials"]) == 2
    with pytest.raises(tuner.RunStateError, match="holds no run"):
        tuner.run(config(), tmp_path / "empty", resume=True, make_train=fake_factory(FakeTrainer()))


def test_consecutive_failures_stop_the_run_with_a_resumable_state(tmp_path):
    with pytest.raises(tuner.RunStateError, match="failed in a row"):
        run(tmp_path, FakeTrainer(lambda p, a, i: "failed"), max_evals=6)
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        assert [r.result.status for r in storage.records()] == ["failed"] * tuner.MAX_CONSECUTIVE_FAILURES


def cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--max-evals", "0"], "--max-evals must be >= 1"),
    (["--epochs", "-1"], "--epochs must be >= 1"),
    (["--dataset", "no_such_dataset"], "no_such_dataset"),
    (["--resume"], "holds no run"),
    (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),        # argparse's own errors
    (["--strategy", "foo"], "argument --strategy: invalid choice: 'foo'"),
])
def test_cli_bad_input_gives_one_error_line(tmp_path, args, message):
    result = cli(*args, "--log-folder", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_bad_input_leaves_an_existing_run_untouched(tmp_path):
    run(tmp_path, FakeTrainer(), max_evals=1)
    folder = tmp_path / "run"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    bad_space = tmp_path / "space.json"
    bad_space.write_text('{"dimensions": [{"name": "x", "type": "real", "low": 2, "high": 1}]}')
    result = cli("--overwrite", "--search-space", str(bad_space), "--log-folder", str(folder), cwd=tmp_path)
    assert result.returncode == 2 and "low (2) must not exceed high (1)" in result.stderr
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    # A log folder that is a file.
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = cli("--log-folder", str(afile), cwd=tmp_path)
    assert result.returncode == 2 and "is a file" in result.stderr


def test_the_database_holds_every_record_whole_and_hands_it_back(tmp_path):
    trainer = FakeTrainer(lambda p, a, i: "overfitting" if i % 2 == 0 else "high_lr")
    run(tmp_path, trainer, max_evals=4)
    records = read_records(tmp_path / "run")
    assert [r.index for r in records] == [0, 1, 2, 3]
    first = records[0]
    # What the old columns dropped: measures, thresholds, candidates, skipped actions, LFI evidence.
    assert first.diagnosis.measures and first.diagnosis.thresholds and first.diagnosis.actions
    assert all(f.measures for f in first.diagnosis.problems)
    assert first.outcome.applied[0].changes and first.rule_weights is not None and first.point
    assert any(r.new_observations for r in records[1:])
    # The stored record is the loop's record (what summary.json and trials.csv were built from).
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [t["objective"] for t in summary["trials"]] == [r.objective for r in records]
    from sdt.run.controller import TrialRecord
    assert all(TrialRecord.from_dict(json.loads(json.dumps(r.to_dict()))) == r for r in records)


def test_a_database_of_the_previous_schema_is_refused_with_a_clear_message(tmp_path):
    import sqlite3
    run(tmp_path, FakeTrainer(), max_evals=1)
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as connection:
        connection.execute("UPDATE run SET value='1' WHERE key='schema_version'")
    connection.close()
    with pytest.raises(tuner.RunStateError, match="older version.*cannot be read or resumed"):
        read_records(tmp_path / "run")
    with pytest.raises(tuner.RunStateError, match="older version"):
        tuner.run(config(max_evals=2), tmp_path / "run", resume=True, make_train=fake_factory(FakeTrainer()))


def test_summary_and_csv_are_built_without_rereading_the_database(tmp_path, monkeypatch):
    # Each trial appends its record to the loop's list: the database is read on resume (once to check
    # it, read-only, and once under the folder's lock), never per trial.
    reads = []
    original = RunStorage.stored_trials

    def counting(self):
        reads.append(1)
        return original(self)
    monkeypatch.setattr(RunStorage, "stored_trials", counting)
    run(tmp_path, FakeTrainer(), max_evals=3)
    assert reads == []
    tuner.run(config(), tmp_path / "run", resume=True, resume_budget=5, make_train=fake_factory(FakeTrainer()))
    assert reads == [1, 1]
    csv_rows = (tmp_path / "run" / "trials.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 5


def test_the_loop_prints_nothing_and_the_cli_observer_prints_the_readme_lines(tmp_path, capsys):
    import io
    from sdt.cli.console import ConsoleObserver
    run(tmp_path / "quiet", FakeTrainer(), max_evals=2)
    assert capsys.readouterr() == ("", "")
    stream = io.StringIO()
    tuner.run(config(max_evals=2), tmp_path / "loud", make_train=fake_factory(FakeTrainer()),
              observer=ConsoleObserver(stream))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("dataset: ")
    assert lines[1] in ("training with Keras on tensorflow on CPU",) or lines[1].startswith(
        "training with Keras on tensorflow on GPU: ")
    # The default guidance (local) avoids Adadelta at small rates from the start, and says so.
    assert lines[2].startswith("before any training the optimiser keeps away from Adadelta at learning rates up to ")
    # ...and draws the first training where the rules file says a practitioner starts.
    assert lines[3].startswith("the first training is drawn where a practitioner starts: optimizer Adam, learning_rate ")
    assert lines[4].startswith("[1/2] trial 0: val_loss ") and "| best objective " in lines[4] and "left" in lines[4]
    assert lines[5].startswith("    params: ") and "optimizer=Adam" in lines[5]
    assert any(line.startswith("    diagnosed overfitting (p=") for line in lines)
    assert any(line.startswith("    action reg_l2: the optimiser now prefers l2 on, and for the next training only near "
                               "trial 0's values (the run's best") or
               line.startswith("    skipped reg_l2: not applied this time") for line in lines)
    assert lines[-1] == "no completed trial: no best model to evaluate"


def test_the_console_says_why_a_gap_while_the_validation_loss_still_falls_was_not_overfitting(tmp_path):
    from sdt.cli.console import ConsoleObserver
    stream = io.StringIO()
    histories = [GAP_STILL_LEARNING, GAP_TURNED_UP]
    summary = tuner.run(config(max_evals=2), tmp_path / "run", observer=ConsoleObserver(stream),
                        make_train=fake_factory(FakeTrainer(lambda params, architecture, index: histories[index])))
    first, second = summary["trials"]
    assert "overfitting" not in first["problems"] and "overfitting" in second["problems"]
    text = stream.getvalue()
    first_block, second_block = text.split("[1/2] trial 0:")[1].split("[2/2] trial 1:")
    [note] = [line for line in first_block.splitlines() if line.startswith("    note ")]
    assert note.startswith("    note generalisation_gap: the training data are fitted better than the validation data")
    assert "overfitting was not diagnosed" in note
    # the notes that hold for every short training stay out of the console
    assert "no_fluctuation_test" not in text
    assert "    note " not in second_block and "    diagnosed overfitting (p=" in second_block


def test_resuming_a_run_that_has_trained_its_budget_says_so():
    from sdt.cli.console import start_lines
    from sdt.run.observer import RunStart
    finished = start_lines(RunStart(log_folder=Path("/runs/a"), dataset_summary="digits", first_trial=2,
                                    max_evals=2, resumed=True))
    assert finished[1] == ("'/runs/a' already holds the 2 trainings of its budget: nothing left to train "
                           "(raise the budget with --max-evals)")
    going_on = start_lines(RunStart(log_folder=Path("/runs/a"), dataset_summary="digits", first_trial=1,
                                    max_evals=2, resumed=True))
    assert going_on[1] == "resuming '/runs/a' with trial 1 (1 of 2 trainings done)"


def space_with(**changes):
    """The default search space as a file's JSON, with some dimensions replaced."""
    from sdt.space.search_space import default_search_space
    dimensions = [changes.get(d.name, d.to_dict()) for d in default_search_space()]
    return json.dumps({"dimensions": dimensions})


@pytest.mark.parametrize("dimension, message", [
    ({"name": "dr1_2", "type": "real", "low": 0.5, "high": 1.0}, "dr1_2 can take 1.0"),
    ({"name": "batch_size", "type": "integer", "low": 0, "high": 64}, "batch_size can take 0"),
    ({"name": "optimizer", "type": "categorical", "categories": ["Adam", "Foo"]}, "optimizer can take 'Foo'"),
    ({"name": "learning_rate", "type": "real", "low": -0.001, "high": 0.001}, "learning_rate can take -0.001"),
    ({"name": "activation", "type": "categorical", "categories": ["relu", "wobbly"]}, "activation can take 'wobbly'"),
])
def test_impossible_search_space_values_are_refused_before_an_existing_run_is_touched(tmp_path, dimension, message):
    run(tmp_path, FakeTrainer(), max_evals=1)
    folder = tmp_path / "run"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "run.lock"}
    space = tmp_path / "space.json"
    space.write_text(space_with(**{dimension["name"]: dimension}))
    with pytest.raises(tuner.ConfigurationError, match=f"search space: {re.escape(message)}"):
        tuner.run(config(search_space_path=str(space)), folder, overwrite=True, make_train=fake_factory(FakeTrainer()))
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "run.lock"} == before
    if dimension["name"] != "optimizer":
        return                           # the command line's one line: one case suffices
    result = cli("--overwrite", "--dataset", "digits", "--search-space", str(space), "--log-folder", str(folder),
                 cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: search space: ") and message in lines[0], result.stderr
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "run.lock"} == before


def test_the_console_numbers_trials_as_the_summary_the_folders_and_the_dashboard_do(tmp_path):
    import io
    from sdt.cli.console import ConsoleObserver, finish_lines
    from sdt.run.observer import RunEnd
    stream = io.StringIO()
    summary = tuner.run(config(max_evals=2), tmp_path / "run", make_train=fake_factory(FakeTrainer()),
                        observer=ConsoleObserver(stream))
    printed = stream.getvalue()
    assert "[1/2] trial 0: " in printed and "[2/2] trial 1: " in printed
    assert [t["index"] for t in summary["trials"]] == [0, 1]
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        second = storage.records()[1]
    (line,) = finish_lines(RunEnd(best=second, final={"index": 1, "test_accuracy": 0.5, "test_loss": 1.0},
                                  best_model_path=tmp_path / "run" / "best_model.keras"))
    assert line.startswith("best trial 1: ")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_console_shows_each_epoch_in_place_on_a_terminal_and_as_lines_elsewhere(tmp_path):
    from sdt.cli.console import ConsoleObserver

    def make_train(context, verbose):
        def train(params, architecture, index):
            for epoch in (1, 2):        # what the Keras trainer tells after each epoch
                context.on_epoch(index, epoch, 3, {"loss": 1.0 / epoch, "val_loss": 1.5 / epoch, "other": 7.0})
            return FakeTrainer()(params, architecture, index)
        return train

    for stream in (io.StringIO(), Terminal()):
        tuner.run(config(max_evals=2), tmp_path / type(stream).__name__, make_train=make_train,
                  observer=ConsoleObserver(stream))
        printed = stream.getvalue()
        first = "trial 0, epoch 1/3: loss 1.0000  val_loss 1.5000"
        if isinstance(stream, Terminal):
            # Rewritten in place and erased before the trial's block, which starts its own line.
            assert f"\r{' ' * len(first)}\r" in printed
            assert "\r" + " " * len("trial 0, epoch 2/3: loss 0.5000  val_loss 0.7500") + "\r[1/2] trial 0: " in printed
            assert f"\n    {first}\n" not in printed
        else:
            # After the dataset, device, avoided-from-the-start and first-training lines.
            assert printed.splitlines()[4:6] == [f"    {first}", "    trial 0, epoch 2/3: loss 0.5000  val_loss 0.7500"]
            assert "\r" not in printed
        assert "trial 1, epoch 2/3: " in printed and "other" not in printed


def test_a_timeout_lets_the_training_in_progress_finish_and_starts_no_other(tmp_path):
    from sdt.cli.console import ConsoleObserver
    stream = io.StringIO()
    summary = tuner.run(config(max_evals=4), tmp_path / "run", make_train=fake_factory(FakeTrainer()),
                        observer=ConsoleObserver(stream), timeout=1e-6)
    assert [t["index"] for t in summary["trials"]] == [0]
    assert "time limit reached: " in stream.getvalue() and "after 1 trainings; no further training starts" in stream.getvalue()
    # Not stored with the run: a resume without it trains to the budget.
    summary = tuner.run(config(max_evals=4), tmp_path / "run", resume=True, make_train=fake_factory(FakeTrainer()))
    assert [t["index"] for t in summary["trials"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "abc"])
def test_a_bad_timeout_is_one_error_line_and_nothing_is_written(tmp_path, timeout):
    result = cli("--timeout", timeout, "--log-folder", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--timeout" in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_every_trial_records_when_it_started_and_finished_and_who_ran_it(tmp_path):
    """Issue 16 (its storage part, for the sequential loop): started_at and finished_at in ISO 8601
    UTC and the worker, in the database, summary.json, trials.csv, the API and the dashboard."""
    import csv
    import os
    import socket
    from datetime import datetime, timezone
    from sdt.api import TuningResult
    from sdt.dashboard import data
    from sdt.dashboard.pages import hyperparams
    from sdt.run.storage import RunStorage
    before = datetime.now(timezone.utc)
    summary = tuner.run(tuner.RunConfig(dataset="digits", max_evals=3, epochs=3, seed=1, initial_points=2),
                        tmp_path / "run", make_train=fake_factory(FakeTrainer()))
    after = datetime.now(timezone.utc)
    with RunStorage.open(tmp_path / "run", read_only=True) as storage:
        records = storage.records()
    moments = []
    for record, trial in zip(records, summary["trials"]):
        started, finished = datetime.fromisoformat(record.started_at), datetime.fromisoformat(record.finished_at)
        assert started.utcoffset().total_seconds() == 0 and before <= started <= finished <= after
        moments += [started, finished]
        assert record.worker == f"{socket.gethostname()}:{os.getpid()}"
        assert (trial["started_at"], trial["finished_at"], trial["worker"]) == \
            (record.started_at, record.finished_at, record.worker)
    assert moments == sorted(moments)                      # one trial after the other
    with open(tmp_path / "run" / "trials.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["started_at"] for r in rows] == [r.started_at for r in records]
    assert [t.finished_at for t in TuningResult.from_log_folder(tmp_path / "run").trials] == \
        [r.finished_at for r in records]
    _, table = hyperparams.params_table(data.load_run(tmp_path / "run"))
    assert [row["finished"] for row in table] == [r.finished_at[:19].replace("T", " ") + " UTC" for r in records]
