"""Tests of `python3 main.py --diagnose HISTORY.json` (sdt/diagnose_cli.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sdt.cli.diagnose import run_diagnose

REPO_DIR = Path(__file__).resolve().parent.parent
HISTORIES = Path(__file__).resolve().parent / "fixtures" / "histories"
GOOD = {"loss": [1.0, 0.8, 0.7], "accuracy": [0.5, 0.6, 0.7],
        "val_loss": [1.1, 0.9, 0.8], "val_accuracy": [0.45, 0.55, 0.65]}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "--diagnose", *args], cwd=REPO_DIR,
                          capture_output=True, text=True, timeout=120)


def write_json(tmp_path: Path, data, name: str = "history.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_good_history_prints_the_diagnosis_as_json():
    result = run_cli(str(HISTORIES / "overfitting.json"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    output = json.loads(result.stdout)
    assert [p["name"] for p in output["problems"]] == ["overfitting"]
    problem = output["problems"][0]
    assert problem["probability"] == pytest.approx(1.0)
    assert "gap" in problem["explanation"] and "threshold" in problem["explanation"]
    actions = {(a["name"], a["problem"]): a["probability"] for a in output["actions"]}
    assert actions == pytest.approx({("reg_l2", "overfitting"): 0.9,
                                     ("data_augmentation", "overfitting"): 0.6,
                                     ("inc_dropout", "overfitting"): 0.4})
    assert output["measures"]["chance_loss"] == pytest.approx(math.log(10))


def test_healthy_history_lists_no_problem():
    result = run_cli(str(HISTORIES / "healthy.json"))
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["problems"] == [] and output["actions"] == []


def test_nan_history_gives_strict_json(tmp_path):
    result = run_cli(str(HISTORIES / "nan_loss.json"))
    assert result.returncode == 0, result.stderr

    def reject(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant} in the output")

    # Strict JSON: every printed number is finite.
    output = json.loads(result.stdout, parse_constant=reject)
    assert "high_lr" in [p["name"] for p in output["problems"]]
    assert any(note.startswith("non_finite_loss") for note in output["notes"])


def test_num_classes_in_the_file_is_used(tmp_path):
    path = write_json(tmp_path, dict(GOOD, num_classes=100))
    result = run_cli(str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["measures"]["chance_loss"] == pytest.approx(math.log(100))


def test_user_rules_file_via_the_command_line(tmp_path):
    rules = tmp_path / "rules.pl"
    rules.write_text("t(0.25)::action(decr_lr, overfitting) :- problem(overfitting).\n")
    result = run_cli(str(HISTORIES / "overfitting.json"), "--rules", str(rules))
    assert result.returncode == 0, result.stderr
    actions = json.loads(result.stdout)["actions"]
    assert [(a["name"], a["probability"]) for a in actions] == [("decr_lr", pytest.approx(0.25))]


BAD_INPUTS = {
    # What is wrong with each input, and a word the message must contain.
    "missing file": (None, "does not exist"),
    "invalid JSON": ('{"loss": [1.0, 0.9', "not valid JSON"),
    "JSON list instead of object": ("[1, 2, 3]", "JSON object"),
    "missing keys": ({"loss": [1.0], "accuracy": [0.5]}, "lacks"),
    "lists of different lengths": (dict(GOOD, val_loss=[1.0, 0.9]), "differ in length"),
    "non-numbers": (dict(GOOD, accuracy=[0.5, "high", 0.7]), "must be a number"),
    "empty lists": ({"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}, "empty"),
    "bad num_classes": (dict(GOOD, num_classes=1), "num_classes"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_error_line(tmp_path, case):
    data, word = BAD_INPUTS[case]
    path = tmp_path / "missing.json" if data is None else write_json(tmp_path, data)
    result = run_cli(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert word in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--rules", "--diagnosis"])
def test_malformed_program_file_exits_2_with_one_error_line(tmp_path, option):
    bad = tmp_path / "bad.pl"
    bad.write_text("problem(overfitting) :- measure(gap, G), G > 0.2\n"
                   "t(0.3)::action(decr_lr, underfitting) :- problem(underfitting.\n")
    result = run_cli(str(HISTORIES / "healthy.json"), option, str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(bad) in lines[0]
    assert "ProbLog says" in lines[0]
    assert "Traceback" not in result.stderr


def test_run_diagnose_in_process_accepts_a_trial_record(tmp_path, capsys):
    # A saved trial record keeps the Keras history under "history" (NaN stored as null).
    history = json.loads((HISTORIES / "nan_loss.json").read_text())
    record = {"num_classes": history.pop("num_classes"),
              "history": {k: [None if isinstance(v, float) and math.isnan(v) else v for v in vs]
                          for k, vs in history.items()}}
    path = write_json(tmp_path, record)
    assert run_diagnose(str(path)) == 0
    output = json.loads(capsys.readouterr().out)
    assert "high_lr" in [p["name"] for p in output["problems"]]


def test_run_diagnose_in_process_reports_errors(tmp_path, capsys):
    path = write_json(tmp_path, dict(GOOD, loss=[1.0, None, "x"]))
    assert run_diagnose(str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert str(path) in captured.err


def test_a_trial_record_with_its_params_is_diagnosed_with_them(tmp_path, capsys):
    from tests.test_short_training_diagnoses import SLOW_ADADELTA, SLOW_ADADELTA_PARAMS
    bare = write_json(tmp_path, SLOW_ADADELTA, "bare.json")
    record = write_json(tmp_path, {"num_classes": 10, "history": SLOW_ADADELTA, "params": SLOW_ADADELTA_PARAMS},
                        "record.json")
    assert run_diagnose(str(bare)) == 0
    assert [a["name"] for a in json.loads(capsys.readouterr().out)["actions"]] == ["inc_lr"]
    assert run_diagnose(str(record)) == 0           # the rules know it was Adadelta
    assert [a["name"] for a in json.loads(capsys.readouterr().out)["actions"]] == ["change_optimizer", "decr_batch_size", "inc_lr"]


def test_hyperparameter_facts_write_numbers_and_lower_case_atoms_and_skip_the_rest():
    from sdt.symbolic.statistics import hyperparameter_facts
    facts = [str(fact) for fact in hyperparameter_facts(
        {"optimizer": "Adadelta", "learning_rate": 0.001, "batch_size": 64, "flag": True,
         "activation": "leaky relu", "Weird-Name": 1, "dr_f": float("nan"), "nested": [1, 2]})]
    assert facts[0].startswith("hyperparameter(_") and facts[0].endswith(":- fail")
    assert facts[1:] == ["hyperparameter(batch_size,64)", "hyperparameter(learning_rate,0.001)",
                         "hyperparameter(optimizer,adadelta)"]
    assert [str(f) for f in hyperparameter_facts(None)] == facts[:1]
