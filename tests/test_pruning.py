"""Issue 14: symbolic early stopping. After each epoch the history so far goes through the stop
rules of diagnosis.pl (`stop_training/1`); a training that cannot succeed is stopped, recorded as
`pruned` with its reason, and is a trial like any other. `--epoch-budget` ends a run on the epochs
trained; `--prune / --no-prune` switch the stop rules on and off (on by default for sdt and
random-sdt only).

The stop rules run on synthetic histories; the loop runs with the fake trainer, which hands the
stop check its curves epoch by epoch as the Keras trainer does; one tiny real training (marked
slow) checks the Keras side end to end."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from sdt.core.errors import ConfigurationError, RulesError
from sdt.core.records import Architecture, TrainingResult
from sdt.core.vocabulary import (
    LOW_LR, STOP_DIVERGED, STOP_OVERSHOT, STOP_STUCK_AT_CHANCE, STUCK_AT_CHANCE, TrialStatus,
)
from sdt.run import loop as tuner
from sdt.run.controller import Objective, TrialRecord
from sdt.run.storage import RunStorage
from sdt.symbolic.block import DEFAULT_DIAGNOSIS_PATH, StopDecision, SymbolicBlock
from tests.fake_training import FakeTrainer, canned_history, fake_factory

CLASSES = 10
CHANCE_LOSS = math.log(CLASSES)
# min_epochs_before_stop of diagnosis.pl: the first epoch after which a stuck training is stopped.
STUCK_STOP_EPOCH = 4


@pytest.fixture(scope="module")
def block() -> SymbolicBlock:
    return SymbolicBlock()


def prefixes(history: dict) -> list[tuple[int, dict]]:
    """Every history a training still running shows: the first 1, 2, ... epochs."""
    epochs = len(history["loss"])
    return [(n, {key: values[:n] for key, values in history.items()}) for n in range(1, epochs + 1)]


def first_stop(block: SymbolicBlock, history: dict) -> StopDecision | None:
    """What the trainer would see: the decision after the first epoch at which the rules stop."""
    for _, prefix in prefixes(history):
        decision = block.stop_reason(prefix, CLASSES)
        if decision is not None:
            return decision
    return None


def stuck_history(epochs: int = 10) -> dict:
    """Adadelta at 1e-6: the loss sits at ln(10) jittering by 2e-4, the accuracy at 1/10."""
    loss = [CHANCE_LOSS + 0.0002 * (-1) ** i for i in range(epochs)]
    return {"loss": loss, "accuracy": [0.1 + 0.002 * (-1) ** i for i in range(epochs)],
            "val_loss": [v + 0.01 for v in loss], "val_accuracy": [0.1] * epochs}


def overshoot_history() -> dict:
    """A step too large: the loss jumps to 1.5 ln(K) in the second epoch, collapses to ln(K) (the
    outputs saturate into a uniform guess) and stays there, jittering by 1e-4."""
    loss = [2.2, 3.4, 2.31, 2.3027, 2.3026, 2.3027, 2.3026, 2.3027]
    accuracy = [0.2, 0.1, 0.1, 0.11, 0.1, 0.1, 0.11, 0.1]
    return {"loss": loss, "accuracy": accuracy, "val_loss": loss, "val_accuracy": accuracy}


def barely_moving_history() -> dict:
    """A step too small: the loss falls by 0.4% of ln(K) per epoch from chance level (0.96 ln(K)
    after 10 epochs, RMSprop at 1.6e-4 on digits), the accuracy creeps off chance."""
    loss = [CHANCE_LOSS * (1 - 0.004 * t) for t in range(10)]
    accuracy = [0.10 + 0.022 * t for t in range(10)]
    return {"loss": loss, "accuracy": accuracy, "val_loss": [v + 0.01 for v in loss],
            "val_accuracy": [a - 0.01 for a in accuracy]}


def slow_descent_from_above_chance() -> dict:
    """Adadelta at 4.6e-4 with batch norm and elu: starts above ln(K), descends slowly (tests/test_symbolic.py)."""
    return {"loss": [3.14, 3.07, 3.00, 2.93, 2.86, 2.79, 2.72], "accuracy": [0.11, 0.12, 0.13, 0.14, 0.14, 0.15, 0.16],
            "val_loss": [3.1, 3.05, 2.98, 2.92, 2.85, 2.78, 2.71], "val_accuracy": [0.12, 0.13, 0.14, 0.15, 0.15, 0.16, 0.17]}


# ---------------------------------------------------------------------------------------------
# The stop rules on synthetic histories
# ---------------------------------------------------------------------------------------------

def test_a_training_stuck_at_chance_is_stopped_at_epoch_4_and_not_before(block):
    history = stuck_history()
    for epochs, prefix in prefixes(history):
        decision = block.stop_reason(prefix, CLASSES)
        if epochs < STUCK_STOP_EPOCH:
            assert decision is None, epochs
        else:
            assert decision.reason == STOP_STUCK_AT_CHANCE and decision.epoch == epochs
    decision = first_stop(block, history)
    assert decision.epoch == STUCK_STOP_EPOCH
    # Worded like a diagnosis: the reason, each condition with its numbers and threshold.
    assert decision.explanation.startswith("stuck_at_chance: 4 epochs in a row at chance level")
    for threshold in ("min_epochs_at_chance_to_stop", "max_train_loss_fall_per_epoch_when_stuck",
                      "min_overshoot_peak_over_chance_loss"):
        assert f"({threshold})" in decision.explanation
    assert "came down from its highest, 2.3, to 2.3: 8.69e-05 times ln(K) per epoch < threshold 0.001" in decision.explanation
    assert decision.measures["epochs_at_chance_in_a_row"] == 4
    assert decision.probability == 1.0


def test_a_diverged_training_is_stopped_at_once(block):
    for first_nan in (1, 3):
        history = stuck_history(6)
        history["loss"][first_nan - 1] = math.nan
        decision = first_stop(block, history)
        assert decision.reason == STOP_DIVERGED and decision.epoch == first_nan
        assert f"the first at epoch {first_nan}" in decision.explanation
    history = canned_history("healthy")
    history["val_loss"][1] = math.inf
    assert first_stop(block, history).epoch == 2


def test_a_loss_that_overshoots_and_never_recovers_is_stopped(block):
    decision = first_stop(block, overshoot_history())
    # Epochs 4 and 5 still see the loss coming down from its peak (by 0.0016 ln(K) per epoch in
    # epochs 3-5); epochs 4-6 are flat at ln(K).
    assert decision.reason == STOP_OVERSHOT and decision.epoch == 6
    # The first epoch left chance level (accuracy 0.2): the five after it are the ones in a row.
    assert decision.explanation.startswith("overshot: 5 epochs in a row at chance level")
    assert "peak training loss 3.4 is 1.48 times ln(K) (2.3) > threshold 1.2 (min_overshoot_peak_over_chance_loss)" \
        in decision.explanation


def test_a_loss_coming_back_down_after_an_overshoot_is_not_stopped(block):
    history = overshoot_history()
    history["loss"] = [2.2, 2.9, 3.3, 3.0, 2.8, 2.6, 2.45, 2.3]    # recovering, however slowly
    assert first_stop(block, history) is None
    history["loss"] = [2.2, 2.9, 3.3, 3.35, 3.4, 3.45, 3.5, 3.55]  # climbing: never recovers
    assert first_stop(block, history).reason == STOP_OVERSHOT


@pytest.mark.parametrize("name, history", [
    ("low_lr", canned_history("low_lr")),
    ("barely moving", barely_moving_history()),
    ("slow descent from above ln(K)", slow_descent_from_above_chance()),
    ("healthy", canned_history("healthy")),
    ("overfitting", canned_history("overfitting")),
    ("fluctuating_loss", canned_history("fluctuating_loss")),
])
def test_slow_and_healthy_trainings_are_never_stopped(block, name, history):
    assert all(block.stop_reason(prefix, CLASSES) is None for _, prefix in prefixes(history)), name
    # Nor when the rules know the epochs left (the tuner's stop check): these leave chance level
    # within their own epochs, or were never at it. (The barely moving one does not: below.)
    budgets = (40,) if name == "barely moving" else (len(history["loss"]), 2 * len(history["loss"]))
    for budget in budgets:
        assert all(block.stop_reason(prefix, CLASSES, epoch_budget=budget) is None
                   for _, prefix in prefixes(history)), (name, budget)


def creeping_at_chance_history(epochs: int = 6) -> dict:
    """Adadelta at 4e-3 on digits (the issue-14 benchmark, seed 3, trial 17): the loss falls by
    0.35% of ln(K) per epoch from chance level, the accuracy stays at 1/10."""
    loss = [CHANCE_LOSS * (1 - 0.0035 * t) for t in range(epochs)]
    accuracy = [0.095 + 0.003 * (-1) ** t for t in range(epochs)]
    return {"loss": loss, "accuracy": accuracy, "val_loss": [v + 0.01 for v in loss], "val_accuracy": [0.1] * epochs}


def test_a_training_creeping_at_chance_is_stopped_only_when_its_epochs_left_cannot_take_it_off(block):
    history = creeping_at_chance_history()
    # Falling faster than the noise floor: without the budget no rule stops it.
    assert all(block.stop_reason(prefix, CLASSES) is None for _, prefix in prefixes(history))
    # With 6 epochs in all: after epoch 4 it would end at 0.98 ln(K), still at chance level.
    decisions = [block.stop_reason(prefix, CLASSES, epoch_budget=6) for _, prefix in prefixes(history)[:5]]
    assert decisions[:3] == [None, None, None]
    assert decisions[3].reason == STOP_STUCK_AT_CHANCE and decisions[3].epoch == STUCK_STOP_EPOCH
    assert ("falling at that pace for the 2 epoch(s) left, the training loss would end at 0.983 times ln(K) "
            ">= threshold 0.9 (min_slow_loss_over_chance_loss)") in decisions[3].explanation
    # With 100 epochs the same pace would take it to 0.65 ln(K): it keeps training.
    long = creeping_at_chance_history(epochs=30)
    assert all(block.stop_reason(prefix, CLASSES, epoch_budget=100) is None for _, prefix in prefixes(long))
    # The barely moving training (0.4% of ln(K) per epoch, accuracy 0.19 after 4 epochs) is
    # stopped in a 10-epoch training, which it would end at 0.96 ln(K), and kept in a 40-epoch one.
    slow = barely_moving_history()
    decision = first_stop_with_budget(block, slow, 10)
    assert decision.reason == STOP_STUCK_AT_CHANCE and decision.epoch == STUCK_STOP_EPOCH
    assert first_stop_with_budget(block, slow, 40) is None


def first_stop_with_budget(block, history, epoch_budget):
    return next((decision for _, prefix in prefixes(history)
                 if (decision := block.stop_reason(prefix, CLASSES, epoch_budget=epoch_budget)) is not None), None)


def test_the_slow_histories_are_the_ones_the_diagnosis_calls_a_low_learning_rate(block):
    # What the never-stopped test above protects: a step too small, not a training stuck at chance.
    for history in (canned_history("low_lr"), barely_moving_history(), slow_descent_from_above_chance()):
        names = block.diagnose(history, CLASSES, block.initial_weights()).problem_names()
        assert LOW_LR in names and STUCK_AT_CHANCE not in names
    assert block.diagnose(stuck_history(), CLASSES, block.initial_weights()).problem_names() == (STUCK_AT_CHANCE,)


def test_an_epoch_off_chance_level_starts_the_count_again(block):
    history = stuck_history()
    history["accuracy"][3] = 0.6              # the 4th epoch: 0.6 accuracy is not chance level
    decision = first_stop(block, history)
    assert decision.reason == STOP_STUCK_AT_CHANCE and decision.epoch == 7   # epochs 5, 6, 7 in a row


def test_the_clean_training_curves_decide_when_the_history_has_them(block):
    # The tuner's histories carry train_eval_*: the model in inference mode. Keras' own accuracy
    # (dropout on) at chance does not make a model stuck whose clean accuracy left chance.
    history = stuck_history()
    history["train_eval_loss"] = [CHANCE_LOSS * (1 - 0.05 * t) for t in range(10)]
    history["train_eval_accuracy"] = [0.1 + 0.05 * t for t in range(10)]
    assert first_stop(block, history) is None
    history["train_eval_loss"] = list(history["loss"])
    history["train_eval_accuracy"] = [0.11] * 10
    assert first_stop(block, history).epoch == STUCK_STOP_EPOCH


def test_a_diagnosis_file_without_stop_rules_never_stops(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text().replace("stop_training(R) :- stop_because(R, _).", "")
    path = tmp_path / "diagnosis.pl"
    path.write_text(text)
    old = SymbolicBlock(diagnosis_path=path)
    assert not old.has_stop_rules
    assert old.stop_reason(stuck_history(), CLASSES) is None


def test_malformed_stop_rules_are_refused_when_the_block_is_built(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text()
    path = tmp_path / "diagnosis.pl"
    path.write_text(text + "\nstop_cause(bored, [above(epochs, min_epochs_before_stop)]).\n")
    with pytest.raises(RulesError, match="unknown stop reason bored"):
        SymbolicBlock(diagnosis_path=path)
    path.write_text(text.replace("threshold(min_stop_probability, 0.5).", ""))
    with pytest.raises(RulesError, match="min_stop_probability"):
        SymbolicBlock(diagnosis_path=path)
    path.write_text(text + "\nstop_cause(overshot, [above(epochs, no_such_threshold)]).\n")
    with pytest.raises(RulesError, match="no_such_threshold"):
        SymbolicBlock(diagnosis_path=path)


def test_a_weighted_stop_rule_stops_only_with_at_least_even_odds(tmp_path):
    text = DEFAULT_DIAGNOSIS_PATH.read_text()
    path = tmp_path / "diagnosis.pl"
    for weight, stops in ((0.4, False), (0.6, True)):
        path.write_text(text.replace("stop_training(R) :- stop_because(R, _).",
                                     f"{weight}::stop_training(R) :- stop_because(R, _)."))
        decision = SymbolicBlock(diagnosis_path=path).stop_reason(stuck_history(5), CLASSES)
        assert (decision is not None) == stops
        if stops:
            assert decision.probability == pytest.approx(weight)


def test_the_stop_records_round_trip_and_old_records_still_load():
    decision = StopDecision(STOP_STUCK_AT_CHANCE, 4, "stuck_at_chance: ...", 1.0, {"epochs_at_chance_in_a_row": 4.0})
    assert StopDecision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision
    with pytest.raises(ConfigurationError, match="stop reason"):
        StopDecision("bored", 4, "")
    result = TrainingResult(status=TrialStatus.PRUNED, history=stuck_history(4), val_loss=2.31, val_accuracy=0.1,
                            best_epoch=0, epochs_run=4, stop_reason=STOP_STUCK_AT_CHANCE,
                            stop_explanation="stuck_at_chance: ...", stop_epoch=4)
    assert TrainingResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    old = result.to_dict()
    for key in ("stop_reason", "stop_explanation", "stop_epoch"):
        del old[key]
    old["status"] = TrialStatus.COMPLETED
    loaded = TrainingResult.from_dict(old)
    assert loaded.stop_reason is None and loaded.stop_epoch is None and loaded.stop_explanation is None


# ---------------------------------------------------------------------------------------------
# A pruned training is a trial: its objective, its place among the best
# ---------------------------------------------------------------------------------------------

def record(index: int, status: str, objective: float) -> TrialRecord:
    result = TrainingResult(status=status, val_loss=objective, val_accuracy=0.5, epochs_run=4)
    return TrialRecord(index=index, params={}, architecture=Architecture(), result=result,
                       objective=objective, improved=None)


def test_a_pruned_training_is_scored_like_a_completed_one():
    objective = Objective("val_loss", CLASSES)
    pruned = TrainingResult(status=TrialStatus.PRUNED, val_loss=1.2, val_accuracy=0.6)
    assert objective.value(pruned) == objective.value(replace(pruned, status=TrialStatus.COMPLETED)) == 1.2
    assert Objective("val_accuracy", CLASSES).value(pruned) == -0.6
    assert objective.value(replace(pruned, status=TrialStatus.DIVERGED)) == objective.loss_cap


def test_a_pruned_training_is_the_best_only_when_it_beats_every_other():
    assert tuner.best_record([record(0, TrialStatus.COMPLETED, 0.5), record(1, TrialStatus.PRUNED, 0.4)]).index == 1
    # On a tie the completed one wins, even when it came later.
    assert tuner.best_record([record(0, TrialStatus.PRUNED, 0.5), record(1, TrialStatus.COMPLETED, 0.5)]).index == 1
    assert tuner.best_record([record(0, TrialStatus.DIVERGED, 0.1), record(1, TrialStatus.PRUNED, 0.9)]).index == 1
    trials = [{"index": 0, "status": TrialStatus.PRUNED, "objective": 0.5},
              {"index": 1, "status": TrialStatus.COMPLETED, "objective": 0.5}]
    assert tuner.best_trial(trials)["index"] == 1


# ---------------------------------------------------------------------------------------------
# Configuration: --prune / --no-prune, --epoch-budget
# ---------------------------------------------------------------------------------------------

def test_pruning_is_on_by_default_for_the_symbolic_strategies_only():
    assert tuner.RunConfig(strategy="sdt").pruning and tuner.RunConfig(strategy="random-sdt").pruning
    for strategy in ("bo", "random", "meta-lr", "evolution"):
        assert not tuner.RunConfig(strategy=strategy).pruning, strategy
    assert tuner.RunConfig(strategy="bo", prune=True).pruning
    assert not tuner.RunConfig(strategy="sdt", prune=False).pruning
    # A run stored before pruning existed never pruned, and resumes without it.
    stored = {k: v for k, v in tuner.RunConfig(strategy="sdt").__dict__.items() if k not in ("prune", "epoch_budget")}
    assert not tuner.RunConfig.from_dict(stored).pruning


def test_the_command_line_flags():
    from sdt.cli.main import build_parser
    parse = build_parser().parse_args
    assert parse([]).prune is None and parse(["--prune"]).prune is True and parse(["--no-prune"]).prune is False
    assert parse(["--epoch-budget", "30"]).epoch_budget == 30 and parse([]).epoch_budget is None


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_bad_epoch_budget_is_one_error_line_and_nothing_is_written(tmp_path, capsys, value):
    from sdt.cli.main import main
    folder = tmp_path / "run"
    assert main(["--dataset", "digits", "--epoch-budget", value, "--log-folder", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"error: --epoch-budget must be a whole number >= 1, got {value}"]
    assert not folder.exists()
    with pytest.raises(ConfigurationError, match="--epoch-budget"):
        tuner.RunConfig(epoch_budget=int(value)).validate()


def test_a_resume_may_raise_the_budgets():
    by_epochs = tuner.RunConfig(max_evals=tuner.default_max_evals(20, 8), epoch_budget=20)
    assert by_epochs.max_evals == 20
    # A trial budget that could never end the run first is raised along with the epoch budget...
    assert tuner.resumed_config(by_epochs, epoch_budget=40).max_evals == 40
    # ...one that could is the user's, and stays.
    both = tuner.RunConfig(max_evals=5, epoch_budget=20)
    assert tuner.resumed_config(both, epoch_budget=40) == replace(both, epoch_budget=40)
    assert tuner.resumed_config(both, max_evals=9) == replace(both, max_evals=9)
    assert tuner.resumed_config(both) == both


# ---------------------------------------------------------------------------------------------
# The loop, with a fake trainer that honours the stop check
# ---------------------------------------------------------------------------------------------

def config(**changes) -> tuner.RunConfig:
    base = dict(dataset="digits", max_evals=4, epochs=10, seed=1, initial_points=2)
    base.update(changes)
    return tuner.RunConfig(**base)


def stuck_trainer() -> FakeTrainer:
    return FakeTrainer(lambda params, architecture, index: stuck_history(10))


def run(folder: Path, trainer: FakeTrainer, **changes) -> dict:
    return tuner.run(config(**changes), folder, make_train=fake_factory(trainer, honour_stop=True))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_a_pruned_trial_is_recorded_with_its_reason_everywhere(tmp_path):
    from sdt.api import TuningResult
    from sdt.cli.console import ConsoleObserver
    from sdt.dashboard import data
    from sdt.dashboard.pages import decisions, hyperparams
    folder = tmp_path / "run"
    stream = io.StringIO()
    summary = tuner.run(config(max_evals=2), folder, observer=ConsoleObserver(stream),
                        make_train=fake_factory(stuck_trainer(), honour_stop=True))
    assert summary["prune"] is True and summary["epochs_spent"] == 2 * STUCK_STOP_EPOCH
    for trial in summary["trials"]:
        assert trial["status"] == TrialStatus.PRUNED and trial["epochs_run"] == STUCK_STOP_EPOCH
        assert trial["stop"]["reason"] == STOP_STUCK_AT_CHANCE and trial["stop"]["epoch"] == STUCK_STOP_EPOCH
        assert trial["stop"]["explanation"].startswith("stuck_at_chance: 4 epochs in a row at chance level")
        assert trial["problems"] == [STUCK_AT_CHANCE]          # diagnosed on the epochs it ran
    with RunStorage.open(folder, read_only=True) as storage:
        for stored in storage.records():
            # Its objective: the validation loss of the best of the epochs it ran.
            assert stored.objective == stored.result.val_loss == min(stored.result.history["val_loss"])
            assert len(stored.result.history["loss"]) == stored.result.stop_epoch == STUCK_STOP_EPOCH
    assert summary["trials"][0]["actions"]                       # tuned like any other trial
    assert summary["best"] is not None                          # a pruned training can be the best
    rows = read_csv(folder / "trials.csv")
    assert [row["status"] for row in rows] == ["pruned", "pruned"]
    assert all(row["stop"].startswith("stuck_at_chance: ") and row["epochs_run"] == "4" for row in rows)
    result = TuningResult.from_log_folder(folder)
    assert [t.status for t in result.trials] == ["pruned", "pruned"] and result.epochs_spent == 8
    assert result.trials[0].stop_reason == STOP_STUCK_AT_CHANCE and result.trials[0].stop_epoch == 4
    assert result.to_rows()[0]["stop"] == rows[0]["stop"]
    lines = stream.getvalue().splitlines()
    assert any(line.startswith("[1/2] trial 0: val_loss ") and "PRUNED (stuck_at_chance)" in line for line in lines)
    assert any(line.startswith("    pruned after epoch 4 (stuck_at_chance): 4 epochs in a row") for line in lines)
    store = data.load_run(folder)
    columns, table = hyperparams.params_table(store)
    assert table[0]["status"] == "pruned" and table[0]["stopped"] == "stuck_at_chance after epoch 4"
    assert decisions.decision_timeline(store)[0]["stop"].startswith("stuck_at_chance: ")


def test_the_epoch_budget_ends_the_run_after_the_training_that_crosses_it(tmp_path):
    from sdt.cli.console import ConsoleObserver
    stream = io.StringIO()
    trainer = stuck_trainer()
    summary = tuner.run(config(max_evals=20, epoch_budget=10), tmp_path / "run", observer=ConsoleObserver(stream),
                        make_train=fake_factory(trainer, honour_stop=True))
    # 4 + 4 epochs leave the budget unspent; the third training crosses it and still finishes.
    assert [t["epochs_run"] for t in summary["trials"]] == [4, 4, 4]
    assert summary["epochs_spent"] == 12 and summary["epoch_budget"] == 10 and len(trainer.calls) == 3
    assert "epoch budget spent: 12 of 10 epochs trained in 3 trainings" in stream.getvalue()
    assert "| 8/10 epochs of the budget |" in stream.getvalue()


def test_no_prune_never_stops_a_training(tmp_path):
    trainer = stuck_trainer()
    summary = run(tmp_path / "run", trainer, max_evals=3, prune=False, epoch_budget=25)
    assert [t["status"] for t in summary["trials"]] == ["completed"] * 3
    assert [t["epochs_run"] for t in summary["trials"]] == [10, 10, 10] and trainer.should_stop is None
    assert summary["prune"] is False and summary["epochs_spent"] == 30


def test_a_baseline_does_not_prune_unless_asked(tmp_path):
    default = run(tmp_path / "bo", stuck_trainer(), strategy="bo", max_evals=2)
    assert [t["status"] for t in default["trials"]] == ["completed", "completed"]
    asked = run(tmp_path / "bo_pruned", stuck_trainer(), strategy="bo", max_evals=2, prune=True)
    assert [t["status"] for t in asked["trials"]] == ["pruned", "pruned"]
    assert all(t["actions"] == [] for t in asked["trials"])          # a baseline still never tunes


class Interrupt(Exception):
    pass


def test_resume_after_pruned_trials_counts_their_epochs_and_continues_as_if_never_interrupted(tmp_path):
    def history_for(params, architecture, index):
        return stuck_history(10) if index % 2 == 0 else "overfitting"      # pruned at 4, completed at 30
    reference = run(tmp_path / "a", FakeTrainer(history_for), max_evals=10, epoch_budget=60)

    def crash_on_third(params, architecture, index):
        if index == 2:
            raise Interrupt()
        return history_for(params, architecture, index)
    with pytest.raises(Interrupt):
        run(tmp_path / "b", FakeTrainer(crash_on_third), max_evals=10, epoch_budget=60)
    with RunStorage.open(tmp_path / "b", read_only=True) as storage:
        assert [r.result.status for r in storage.records()] == ["pruned", "completed"]

    resumed = FakeTrainer(history_for)
    summary = tuner.run(config(max_evals=10, epoch_budget=60), tmp_path / "b", resume=True,
                        make_train=fake_factory(resumed, honour_stop=True))
    # 4 + 30 stored epochs, then 4 + 30 more cross 60: the same four trainings as the reference.
    assert [c[2] for c in resumed.calls] == [2, 3]
    assert [t["epochs_run"] for t in summary["trials"]] == [4, 30, 4, 30] and summary["epochs_spent"] == 68
    assert [t["status"] for t in summary["trials"]] == [t["status"] for t in reference["trials"]]
    assert [t["params"] for t in summary["trials"]] == [t["params"] for t in reference["trials"]]
    # A resumed run whose epoch budget is spent trains nothing; a raised one trains on.
    again = FakeTrainer(history_for)
    tuner.run(config(), tmp_path / "b", resume=True, make_train=fake_factory(again, honour_stop=True))
    assert again.calls == []
    raised = tuner.run(config(), tmp_path / "b", resume=True, resume_epoch_budget=70,
                       make_train=fake_factory(again, honour_stop=True))
    assert [c[2] for c in again.calls] == [4] and raised["epochs_spent"] == 72 and raised["epoch_budget"] == 70


# ---------------------------------------------------------------------------------------------
# The Keras side: the callback, and one real training
# ---------------------------------------------------------------------------------------------

class _Recorder:
    def __init__(self, history: dict):
        self.history = history


class _Model:
    stop_training = False


def stopper(should_stop, history: dict, epochs: int):
    from sdt.neural.network import _StopWhenTold
    callback = _StopWhenTold(should_stop, _Recorder(history), epochs)
    callback.set_model(_Model())
    return callback


def test_the_callback_asks_after_every_epoch_but_the_last_and_stops_at_the_first_answer():
    asked = []

    def should_stop(history):
        asked.append(len(history["loss"]))
        return ("stuck_at_chance", "stuck_at_chance: why") if len(history["loss"]) == 2 else None
    history = {"loss": []}
    callback = stopper(should_stop, history, epochs=5)
    for epoch in range(3):
        history["loss"].append(2.3)
        callback.on_epoch_end(epoch)
    assert asked == [1, 2] and callback.decision == ("stuck_at_chance", "stuck_at_chance: why", 2)
    assert callback.model.stop_training is True
    last = stopper(should_stop, {"loss": [2.3] * 5}, epochs=5)
    last.on_epoch_end(4)                          # the last epoch: nothing left to save
    assert last.decision is None and asked == [1, 2]


def test_a_stop_check_that_fails_never_costs_the_training(caplog):
    def broken(history):
        raise RuntimeError("ProbLog fell over")
    callback = stopper(broken, {"loss": [2.3]}, epochs=5)
    callback.on_epoch_end(0)
    callback.on_epoch_end(1)
    assert callback.decision is None and callback.model.stop_training is False
    assert "the stop check failed after epoch 1" in caplog.text


def write_space(path: Path) -> Path:
    """A tiny CNN that cannot learn: Adadelta only, the learning rate fixed at 1e-6 (inc_lr may
    widen it, never past 1e-5, still far too small for Adadelta in a few epochs)."""
    dimensions = [
        {"name": "unit_c1", "type": "integer", "low": 8, "high": 8},
        {"name": "dr1_2", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "unit_c2", "type": "integer", "low": 8, "high": 8},
        {"name": "unit_d", "type": "integer", "low": 16, "high": 16},
        {"name": "dr_f", "type": "real", "low": 0.0, "high": 0.1},
        {"name": "learning_rate", "type": "real", "low": 1e-6, "high": 1e-6, "prior": "log-uniform",
         "domain": [1e-6, 1e-5]},
        {"name": "batch_size", "type": "integer", "low": 64, "high": 64},
        {"name": "optimizer", "type": "categorical", "categories": ["Adadelta"]},
        {"name": "activation", "type": "categorical", "categories": ["relu"]},
    ]
    path.write_text(json.dumps({"dimensions": dimensions}))
    return path


@pytest.mark.slow
def test_real_trainings_that_cannot_learn_are_pruned_within_4_epochs_with_their_reason(tmp_path):
    from sdt.run.observer import RunObserver

    class EpochRecorder(RunObserver):
        def __init__(self):
            self.epochs = []

        def on_epoch(self, progress):
            self.epochs.append((progress.trial, progress.epoch, progress.epochs, progress.numbers))

    folder = tmp_path / "run"
    observer = EpochRecorder()
    summary = tuner.run(config(max_evals=3, epochs=10, seed=0, initial_points=2,
                               search_space_path=str(write_space(tmp_path / "space.json"))), folder,
                        observer=observer)
    assert len(summary["trials"]) == 3
    for trial in summary["trials"]:
        assert trial["status"] == "pruned" and trial["epochs_run"] <= STUCK_STOP_EPOCH, trial
        # Progress during the training (issue 18): every epoch it ran, told as it ended.
        told = [(epoch, epochs, numbers) for index, epoch, epochs, numbers in observer.epochs
                if index == trial["index"]]
        assert [(epoch, epochs) for epoch, epochs, _ in told] == [(e, 10) for e in range(1, trial["epochs_run"] + 1)]
        assert trial["stop"]["reason"] == STOP_STUCK_AT_CHANCE and trial["stop"]["epoch"] == trial["epochs_run"]
        assert trial["stop"]["explanation"].startswith("stuck_at_chance: ")
    rows = read_csv(folder / "trials.csv")
    assert [row["status"] for row in rows] == ["pruned"] * 3
    assert all(row["stop"].startswith("stuck_at_chance: ") for row in rows)
    with RunStorage.open(folder, read_only=True) as storage:
        for stored in storage.records():
            history = stored.result.history
            # Recorded as trained: the epochs it ran, the clean training curves the rules read.
            assert len(history["loss"]) == len(history["train_eval_loss"]) == stored.result.epochs_run
            told = [numbers for index, _, _, numbers in observer.epochs if index == stored.index]
            assert [numbers["val_loss"] for numbers in told] == pytest.approx(history["val_loss"])
            assert Path(stored.result.model_path).is_file()
    assert summary["best"]["test_accuracy"] is not None      # the best pruned model was evaluated


def test_the_api_takes_prune_and_epoch_budget_as_run_options(tmp_path, monkeypatch):
    from sdt.api import tune
    monkeypatch.setattr(tuner, "make_trainer", fake_factory(stuck_trainer(), honour_stop=True))
    result = tune(dataset="digits", epochs=10, epoch_budget=10, log_folder=tmp_path / "a", initial_points=2)
    # No max_evals: as many trainings as the epoch budget allows; 4 + 4 + 4 epochs cross 10.
    assert [t.status for t in result.trials] == ["pruned"] * 3 and result.epochs_spent == 12
    assert result.best_val_loss is not None and result.trials[0].stop_reason == STOP_STUCK_AT_CHANCE
    unpruned = tune(dataset="digits", epochs=10, max_evals=2, prune=False, log_folder=tmp_path / "b",
                    initial_points=2)
    assert [t.status for t in unpruned.trials] == ["completed"] * 2 and unpruned.epochs_spent == 20
