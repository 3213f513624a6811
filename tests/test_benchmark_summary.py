"""benchmark.py's summaries on synthetic trials with known answers: trainings to reach BO's best,
wasted trainings, budgets read from a run's first trainings, the symbolic actions' counts, issue 13's
checks; arm labels, run configurations and the run plan."""

import math
import statistics
from dataclasses import dataclass

import numpy as np
import pytest

import benchmark
from sdt.core.errors import ConfigurationError
from sdt.core.records import Architecture, TrainingResult
from sdt.core.vocabulary import TrialStatus
from sdt.run.controller import TrialRecord
from sdt.symbolic.records import ChosenAction
from sdt.symbolic.rule_learning import Observation

FAILED, DIVERGED = "failed", "diverged"


def rows(arm, accuracies, seed=0, run_budget=None, per_budget=False, actions=None, epochs=None, pruned=()):
    """Trial rows of one run: an accuracy, or FAILED / DIVERGED, per training; objective = 1 - accuracy.
    `epochs`: each training's epochs_run (default 10 each); `pruned`: indices of pruned trainings."""
    out = []
    for index, accuracy in enumerate(accuracies):
        status = accuracy if accuracy in (FAILED, DIVERGED) else TrialStatus.COMPLETED
        status = TrialStatus.PRUNED if index in pruned else status
        value = None if status not in TrialStatus.SCORED else accuracy
        out.append({"arm": arm, "strategy": arm, "seed": seed, "run_budget": run_budget or len(accuracies),
                    "per_budget": per_budget, "index": index, "status": status, "val_accuracy": value,
                    "val_loss": None if value is None else 1 - value,
                    "objective": 3.0 if value is None else 1 - value, "symbolic_seconds": 0.05,
                    "iteration_seconds": 10.0, "test_accuracy": None,
                    "epochs_run": 10 if epochs is None else epochs[index],
                    **((actions or {}).get(index, {}))})
    return out


# ---------------------------------------------------------------------------- single runs

def test_trainings_to_reach_counts_failed_trainings_and_says_never():
    trials = rows("sdt", [0.5, FAILED, 0.7, 0.9])
    assert benchmark.trainings_to_reach(trials, 0.7) == 3          # reaching it exactly counts
    assert benchmark.trainings_to_reach(trials, 0.5) == 1
    assert benchmark.trainings_to_reach(trials, 0.95) is None
    assert benchmark.trainings_to_reach(rows("sdt", [FAILED, DIVERGED]), 0.0) is None


def test_wasted_trainings_are_below_half_the_best_or_not_completed():
    trials = rows("bo", [0.9, 0.44, 0.45, FAILED, DIVERGED])
    trials.append({**trials[0], "index": 5, "val_accuracy": math.nan})   # completed, but NaN accuracy
    assert [benchmark.is_wasted(t, 0.9) for t in trials] == [False, True, False, True, True, True]
    assert benchmark.wasted_count(trials) == 4
    assert benchmark.wasted_count(rows("bo", [FAILED, FAILED])) == 2


def test_median_of_trainings_counts_never_as_infinitely_many():
    assert benchmark.median_trainings([2, None, 3]) == 3
    assert math.isinf(benchmark.median_trainings([2, None, None]))
    assert math.isinf(benchmark.median_trainings([2, None]))       # the upper middle value is never
    assert benchmark.median_trainings([4, 2]) == 3
    assert benchmark.median_trainings([]) is None
    assert benchmark.format_trainings(math.inf) == "never" and benchmark.format_trainings(3.0) == "3"


# ---------------------------------------------------------------------------- budgets

def test_a_smaller_budget_reads_the_first_trainings_of_the_shared_run():
    trials = rows("bo", [0.5, 0.6, 0.9, 0.4], run_budget=4)
    at_2 = benchmark.trials_at_budget(trials, 2)
    assert [t["index"] for t in at_2[("bo", 0)]] == [0, 1]
    assert [t["index"] for t in benchmark.trials_at_budget(trials, 4)[("bo", 0)]] == [0, 1, 2, 3]
    assert benchmark.best_accuracy(at_2[("bo", 0)]) == 0.6


def test_a_per_budget_run_stands_for_its_own_budget_only():
    trials = (rows("evolution", [0.1, 0.2], run_budget=2, per_budget=True)
              + rows("evolution", [0.7, 0.8, 0.9], run_budget=3, per_budget=True))
    assert [t["val_accuracy"] for t in benchmark.trials_at_budget(trials, 2)[("evolution", 0)]] == [0.1, 0.2]
    assert [t["val_accuracy"] for t in benchmark.trials_at_budget(trials, 3)[("evolution", 0)]] == [0.7, 0.8, 0.9]


def test_summary_per_budget_measures_against_bo_at_the_same_budget():
    trials = (rows("bo", [0.5, 0.7, 0.6, 0.9]) + rows("sdt", [0.6, 0.8, 0.8, 0.85])
              + rows("bo", [0.8, 0.6, 0.6, 0.6], seed=1) + rows("sdt", [0.3, 0.7, 0.81, 0.2], seed=1))
    arms = [benchmark.Arm("sdt", "sdt"), benchmark.Arm("bo", "bo")]
    at_2 = {s.arm.label: s for s in benchmark.summarise(trials, arms, 2)}
    at_4 = {s.arm.label: s for s in benchmark.summarise(trials, arms, 4)}
    # Budget 2: bo's best is 0.7 (seed 0) and 0.8 (seed 1); sdt reaches 0.7 at 2, never 0.8 in 2.
    assert at_2["sdt"].reach == {0: 2, 1: None}
    assert at_2["bo"].reach == {0: 2, 1: 1}
    assert at_2["sdt"].best == {0: 0.8, 1: 0.7}
    # Budget 4: bo's best is 0.9 (seed 0, never reached by sdt) and 0.8 (seed 1, reached at 3).
    assert at_4["sdt"].reach == {0: None, 1: 3}
    assert math.isinf(at_4["sdt"].median_reach)
    assert at_4["sdt"].wasted == 2 and at_4["sdt"].trainings == 8      # 0.3 and 0.2 < 0.81 / 2
    assert at_4["bo"].median_best == pytest.approx(0.85)
    row = benchmark.arm_table_row(at_4["sdt"])
    assert row["trainings to reach bo's best (per seed)"] == "never, 3"
    assert row["median trainings to reach it"] == "never"
    assert row["wasted trainings"] == "2/8 (25 %)"
    assert row["best val_accuracy"] == "0.8300 (0.8100–0.8500)"
    assert benchmark.arm_table_row(at_2["bo"])["median trainings to reach it"] == "1.5 (75 % of 2)"


def test_without_a_bo_arm_nothing_is_reached_or_checked():
    summaries = benchmark.summarise(rows("sdt", [0.5, 0.6]), [benchmark.Arm("sdt", "sdt")], 2)
    assert summaries[0].reach == {} and summaries[0].median_reach is None
    assert benchmark.issue_checks(summaries) == []


# ---------------------------------------------------------------------------- epochs (issue 14)

def test_a_pruned_training_counts_with_the_accuracy_of_its_best_epoch():
    trials = rows("sdt", [0.1, 0.8, 0.3], pruned=(0, 2), epochs=[4, 10, 4])
    assert [benchmark.completed_accuracy(t) for t in trials] == [0.1, 0.8, 0.3]
    assert benchmark.best_accuracy(trials) == 0.8
    assert [benchmark.is_wasted(t, 0.8) for t in trials] == [True, False, True]   # by accuracy, like any other
    assert benchmark.epochs_of(trials) == 18


def test_epochs_spent_and_epochs_to_reach_bos_best_per_seed():
    # Seed 0: sdt prunes two hopeless trainings at 4 epochs and reaches bo's best 0.8 at its 3rd
    # training, after 4 + 4 + 10 epochs; bo needs 3 trainings of 10. Seed 1: sdt never reaches 0.9.
    trials = (rows("sdt", [0.1, 0.1, 0.85, 0.7], epochs=[4, 4, 10, 10], pruned=(0, 1))
              + rows("bo", [0.5, 0.6, 0.8, 0.7])
              + rows("sdt", [0.1, 0.6, 0.6, 0.6], seed=1, epochs=[4, 10, 10, 10], pruned=(0,))
              + rows("bo", [0.9, 0.6, 0.6, 0.6], seed=1))
    summaries = {s.arm.label: s for s in benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"),
                                                                      benchmark.Arm("bo", "bo")], 4)}
    sdt, bo = summaries["sdt"], summaries["bo"]
    assert sdt.epochs == {0: 28, 1: 34} and bo.epochs == {0: 40, 1: 40}
    assert sdt.epochs_reach == {0: 18, 1: None} and bo.epochs_reach == {0: 30, 1: 10}
    assert math.isinf(sdt.median_epochs_reach) and bo.median_epochs_reach == 20
    row = benchmark.arm_table_row(sdt)
    assert row["epochs spent"] == "31 (28–34)"
    assert row["epochs to reach bo's best (per seed)"] == "18, never"
    assert row["median epochs to reach it"] == "never"
    assert benchmark.arm_table_row(bo)["median epochs to reach it"] == "20"
    # At budget 2 the first two trainings stand for the run: 8 epochs of sdt, bo's best 0.6 not reached.
    at_2 = {s.arm.label: s for s in benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"),
                                                                  benchmark.Arm("bo", "bo")], 2)}
    assert at_2["sdt"].epochs == {0: 8, 1: 14} and at_2["sdt"].epochs_reach == {0: None, 1: None}
    assert at_2["bo"].epochs_reach == {0: 20, 1: 10}


def test_the_best_trials_test_accuracy_is_the_tuners_best_pruned_ones_included():
    trials = rows("sdt", [0.6, 0.9], pruned=(1,))
    trials[1]["test_accuracy"] = 0.88
    assert benchmark.best_trial_test_accuracy(trials) == 0.88
    tie = rows("sdt", [0.9, 0.9], pruned=(0,))
    tie[1]["test_accuracy"] = 0.87                 # on a tie the completed training is the best
    assert benchmark.best_trial_test_accuracy(tie) == 0.87


# ---------------------------------------------------------------------------- symbolic actions

def record(index, accuracy, chosen=(), judged=()):
    """A trial record: `chosen` = (action, problem) applied after it; `judged` = (action, problem, improved)."""
    result = TrainingResult(status=TrialStatus.COMPLETED, val_loss=1 - accuracy, val_accuracy=accuracy)
    return TrialRecord(index=index, params={}, architecture=Architecture(), result=result, objective=1 - accuracy,
                       improved=None if index == 0 else True,
                       chosen=tuple(ChosenAction(name, problem, 0.5) for name, problem in chosen),
                       new_observations=tuple(Observation(*o) for o in judged))


def test_actions_are_counted_applied_from_chosen_and_helped_from_the_next_record():
    records = [
        record(0, 0.5, chosen=[("inc_lr", "low_lr"), ("inc_neurons", "underfitting")]),
        record(1, 0.6, chosen=[("inc_lr", "low_lr")],
               judged=[("inc_lr", "low_lr", True), ("inc_neurons", "underfitting", False)]),
        record(2, 0.55, chosen=[("reg_l2", "overfitting")], judged=[("inc_lr", "low_lr", False)]),
        record(3, 0.7, chosen=[("decr_lr", "high_lr")], judged=[("reg_l2", "overfitting", True)]),
    ]
    columns = [benchmark.action_columns(r) for r in records]
    assert columns[1] == {"actions": "inc_lr", "judged_actions": "inc_lr;inc_neurons", "helped_actions": "inc_lr"}
    trials = rows("sdt-prior", [0.5, 0.6, 0.55, 0.7], actions=dict(enumerate(columns)))
    arm = benchmark.Arm("sdt-prior", "sdt", "prior")
    counts = {budget: benchmark.summarise(trials, [arm], budget)[0].actions for budget in (3, 4)}
    # Budget 3: reg_l2, applied after the third training, is applied but not judged within the budget.
    assert {name: dict(c) for name, c in counts[3].items()} == {
        "inc_lr": {"applied": 2, "judged": 2, "helped": 1},
        "inc_neurons": {"applied": 1, "judged": 1},
        "reg_l2": {"applied": 1}}
    assert dict(counts[4]["reg_l2"]) == {"applied": 1, "judged": 1, "helped": 1}
    assert dict(counts[4]["decr_lr"]) == {"applied": 1}
    table = benchmark.action_table(benchmark.summarise(trials, [arm], 4))
    assert table[0] == {"arm": "sdt-prior", "action": "inc_lr", "applied": "2", "judged": "2", "helped": "1",
                        "helped / judged": "50 %"}


def test_only_symbolic_arms_get_an_action_table():
    trials = rows("bo", [0.5, 0.6], actions={0: {"actions": "inc_lr"}}) + rows("sdt", [0.5, 0.6])
    summaries = benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"), benchmark.Arm("bo", "bo")], 2)
    assert benchmark.action_table(summaries) == [{"arm": "sdt", "action": "(none applied)", "applied": "0",
                                                  "judged": "0", "helped": "0", "helped / judged": "n/a"}]


# ---------------------------------------------------------------------------- issue 13's checks

def checks(sdt_runs, bo_runs, budget):
    trials = [t for seed, accuracies in enumerate(sdt_runs) for t in rows("sdt-edit", accuracies, seed=seed)]
    trials += [t for seed, accuracies in enumerate(bo_runs) for t in rows("bo", accuracies, seed=seed)]
    summaries = benchmark.summarise(trials, [benchmark.Arm("sdt-edit", "sdt", "edit"), benchmark.Arm("bo", "bo")],
                                    budget)
    return {check.bar.split(" ")[1] if check.bar.startswith("median") else check.bar.split(" ")[0]: check
            for check in benchmark.issue_checks(summaries)}


def test_checks_are_met_at_their_bars():
    # Median best 0.9772 = 0.9722 + 0.005 exactly; wasted 1/10 each; bo's best reached at 7 of 10 (70 %).
    sdt = [0.2, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9772, 0.6, 0.6, 0.6]
    bo = [0.6, 0.9722, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.2]
    found = checks([sdt], [bo], 10)
    assert [c.met for c in found.values()] == [True, True, True]
    assert found["best"].numbers == "0.9772 vs 0.9722 + 0.005 = 0.9772"
    assert found["wasted"].numbers == "1/10 (10 %) vs 1/10 (10 %)"
    assert found["bo's"].numbers == "median 7 of 10 trainings (70 %), bar 70 % = 7; per seed 7"
    assert found["best"].line() == ("- sdt-edit, median best val_accuracy >= bo's + 0.005: "
                                    "0.9772 vs 0.9722 + 0.005 = 0.9772: **met**")


def test_the_accuracy_bar_counts_validation_images_not_float32_rounding():
    def accuracy(images):   # of 300 validation images (Fashion-MNIST 3k), in float32 as Keras reports it
        return float(np.float32(images / 300))
    bo = [[accuracy(257)] * 4] * 6                                 # median 257 images: the bar is 258.5
    sdt = [[accuracy(258)] * 4] * 3 + [[accuracy(259)] * 4] * 3    # median 258.5 images: at the bar...
    assert statistics.median([accuracy(258), accuracy(259)]) < accuracy(257) + 0.005   # ...below it in float32
    assert checks(sdt, bo, 4)["best"].met is True
    fewer = [[accuracy(258)] * 4] * 4 + [[accuracy(259)] * 4] * 2  # median 258 images
    assert checks(fewer, bo, 4)["best"].met is False


def test_checks_are_not_met_just_past_their_bars():
    sdt = [0.2, 0.2, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9771, 0.6, 0.6]
    bo = [0.6, 0.9722, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.2]
    found = checks([sdt], [bo], 10)
    assert [c.met for c in found.values()] == [False, False, False]
    assert found["bo's"].line().endswith("median 8 of 10 trainings (80 %), bar 70 % = 7; per seed 8: **not met**")
    assert found["wasted"].numbers == "2/10 (20 %) vs 1/10 (10 %)"
    never = checks([[0.6] * 10], [bo], 10)["bo's"]
    assert (never.met, never.numbers) == (False, "median never of 10 trainings, bar 70 % = 7; per seed never")


def test_the_reach_check_takes_the_median_over_seeds():
    bo = [[0.5, 0.8, 0.6, 0.6], [0.5, 0.8, 0.6, 0.6], [0.5, 0.8, 0.6, 0.6]]
    reached_early = [[0.9, 0.6, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5], [0.6, 0.85, 0.6, 0.6]]   # 1, never, 2
    assert checks(reached_early, bo, 4)["bo's"].met is True                                 # median 2 <= 2.8
    reached_late = [[0.9, 0.6, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5], [0.6, 0.6, 0.6, 0.85]]     # 1, never, 4
    assert checks(reached_late, bo, 4)["bo's"].met is False


def test_budget_section_prints_the_tables_and_checks():
    trials = rows("sdt", [0.5, 0.9], actions={0: {"actions": "inc_lr"}, 1: {"judged_actions": "inc_lr",
                                                                             "helped_actions": "inc_lr"}})
    trials += rows("bo", [0.5, 0.8])
    lines = benchmark.budget_section(benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"),
                                                                   benchmark.Arm("bo", "bo")], 2), 2)
    text = "\n".join(lines)
    assert lines[0] == "## Budget 2 trainings"
    assert "| sdt | 1 | 0.9000 (0.9000–0.9000) |" in text
    assert "| 20 (20–20) | 20 | 20 |" in text            # epochs spent, to reach bo's best (per seed), median
    assert "| sdt | inc_lr | 1 | 1 | 1 | 100 % |" in text
    assert "- sdt, median best val_accuracy >= bo's + 0.005: 0.9000 vs 0.8000 + 0.005 = 0.8050: **met**" in text


def test_arms_are_compared_with_bo_seed_by_seed():
    trials = rows("sdt", [0.5, 0.90], seed=0) + rows("bo", [0.5, 0.80], seed=0)
    trials += rows("sdt", [0.5, 0.70], seed=1) + rows("bo", [0.5, 0.75], seed=1)
    trials += rows("sdt", [0.5, 0.60], seed=2) + rows("bo", [0.5, 0.60], seed=2)
    summaries = benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"), benchmark.Arm("bo", "bo")], 2)
    (comparison,) = benchmark.seed_comparisons(summaries)
    assert comparison.differences == pytest.approx({0: 0.10, 1: -0.05, 2: 0.0})
    assert (comparison.wins, comparison.losses) == (1, 1)
    assert comparison.mean == pytest.approx(0.05 / 3)
    assert comparison.standard_error == pytest.approx(0.07637626 / math.sqrt(3))
    low, high = comparison.interval()              # t(0.975, 2) = 4.3027
    assert (low, high) == pytest.approx((0.05 / 3 - 4.302653 * 0.0440959, 0.05 / 3 + 4.302653 * 0.0440959), rel=1e-4)
    assert comparison.line() == ("- sdt − bo, per seed: mean +1.67 points, 95 % interval -17.31 to +20.64; "
                                 "1 seeds better, 1 worse, 1 level: the interval holds zero, not told apart "
                                 "from the seeds' luck")
    table = benchmark.seed_table(summaries)
    assert table[1] == {"seed": "1", "sdt": "0.7000", "sdt − bo (points)": "-5.00", "bo": "0.7500"}
    text = "\n".join(benchmark.budget_section(summaries, 2))
    assert "### Per seed" in text and "| 0 | 0.9000 | +10.00 | 0.8000 |" in text


def test_a_difference_whose_interval_excludes_zero_is_said_to_be():
    trials = []
    for seed, (mine, theirs) in enumerate([(0.90, 0.80), (0.85, 0.80), (0.88, 0.80)]):
        trials += rows("sdt", [mine], seed=seed) + rows("bo", [theirs], seed=seed)
    summaries = benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt"), benchmark.Arm("bo", "bo")], 1)
    (comparison,) = benchmark.seed_comparisons(summaries)
    assert comparison.line().endswith("3 seeds better, 0 worse, 0 level: the interval excludes zero")
    one_seed = benchmark.SeedComparison("sdt", {0: 0.1})
    assert (one_seed.standard_error, one_seed.interval()) == (None, None)
    assert one_seed.line() == "- sdt − bo, per seed: mean +10.00 points; 1 seeds better, 0 worse, 0 level"
    without_bo = benchmark.summarise(trials, [benchmark.Arm("sdt", "sdt")], 1)
    assert benchmark.seed_comparisons(without_bo) == []
    assert "### Per seed" not in "\n".join(benchmark.budget_section(without_bo, 1))


# ---------------------------------------------------------------------------- arms, configurations, plan

def test_arm_labels_name_a_strategy_or_a_symbolic_strategy_with_its_guidance():
    assert benchmark.parse_arm("bo") == benchmark.Arm("bo", "bo", None)
    assert benchmark.parse_arm("sdt") == benchmark.Arm("sdt", "sdt", None)
    assert benchmark.parse_arm("sdt-edit") == benchmark.Arm("sdt-edit", "sdt", "edit")
    assert benchmark.parse_arm("sdt-prior") == benchmark.Arm("sdt-prior", "sdt", "prior")
    assert benchmark.parse_arm("random-sdt-prior") == benchmark.Arm("random-sdt-prior", "random-sdt", "prior")
    assert benchmark.parse_arm("random-sdt") == benchmark.Arm("random-sdt", "random-sdt", None)
    for wrong in ("bo-edit", "tpe-prior", "sdt-other", "gp"):
        with pytest.raises(ConfigurationError, match="unknown arm"):
            benchmark.parse_arm(wrong)
    assert [a.label for a in benchmark.parse_arms("sdt-edit, bo,sdt-edit,,random")] == ["sdt-edit", "bo", "random"]
    assert benchmark.parse_arm("sdt-edit").symbolic and not benchmark.parse_arm("tpe").symbolic


@dataclass(frozen=True)
class ConfigWithGuidance:
    dataset: str
    max_evals: int
    epochs: int
    seed: int
    strategy: str
    initial_points: int
    guidance: str = "prior"


@dataclass(frozen=True)
class ConfigWithoutGuidance:
    dataset: str
    max_evals: int
    epochs: int
    seed: int
    strategy: str
    initial_points: int


def settings():
    return benchmark.parse_args(["--issue13"])


def test_a_guided_arm_sets_the_guidance_run_option():
    config = benchmark.make_config(benchmark.parse_arm("sdt-edit"), 3, 20, settings(), ConfigWithGuidance)
    assert (config.strategy, config.guidance, config.seed, config.max_evals) == ("sdt", "edit", 3, 20)
    assert (config.dataset, config.epochs, config.initial_points) == ("digits", 6, 3)
    plain = benchmark.make_config(benchmark.parse_arm("sdt"), 0, 10, settings(), ConfigWithGuidance)
    assert plain.guidance == "prior"                  # the run option's own default
    assert benchmark.guidance_of(benchmark.parse_arm("sdt"), plain) == "prior"
    assert benchmark.guidance_of(benchmark.parse_arm("bo"), plain) == ""


def test_a_guided_arm_without_the_guidance_option_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="'sdt-prior' needs the run option 'guidance'"):
        benchmark.make_config(benchmark.parse_arm("sdt-prior"), 0, 10, settings(), ConfigWithoutGuidance)
    config = benchmark.make_config(benchmark.parse_arm("sdt"), 0, 10, settings(), ConfigWithoutGuidance)
    assert config.strategy == "sdt" and benchmark.guidance_of(benchmark.parse_arm("sdt"), config) == ""


def test_sdts_run_config_is_used_by_default():
    from sdt.run.loop import RunConfig
    if "guidance" in RunConfig.__dataclass_fields__:
        assert benchmark.make_config(benchmark.parse_arm("sdt-edit"), 0, 10, settings()).guidance == "edit"
    else:
        with pytest.raises(ConfigurationError, match="guidance"):
            benchmark.make_config(benchmark.parse_arm("sdt-edit"), 0, 10, settings())
    config = benchmark.make_config(benchmark.parse_arm("bo"), 1, 10, settings())
    assert isinstance(config, RunConfig) and config.objective == "val_loss"


def test_samplers_that_read_the_budget_are_found():
    assert not any(benchmark.reads_budget(name) for name in ("sdt", "bo", "random", "random-sdt", "tpe"))
    assert benchmark.reads_budget("evolution") and benchmark.reads_budget("meta-lr")


def test_a_budget_reading_strategy_is_run_once_per_budget():
    arms = benchmark.parse_arms("sdt-prior,bo,evolution")
    plan = benchmark.plan_runs(arms, [0, 1], [20, 10])
    assert [(run.name, run.max_evals) for run in plan] == [
        ("sdt-prior_seed0", 20), ("bo_seed0", 20), ("evolution_seed0_b10", 10), ("evolution_seed0_b20", 20),
        ("sdt-prior_seed1", 20), ("bo_seed1", 20), ("evolution_seed1_b10", 10), ("evolution_seed1_b20", 20)]
    single = benchmark.plan_runs(arms, [0], [5], budget_dependent=lambda strategy: False)
    assert [run.name for run in single] == ["sdt-prior_seed0", "bo_seed0", "evolution_seed0"]


def test_presets_and_budgets():
    quick = benchmark.parse_args(["--quick"])
    assert (quick.seeds, quick.budgets, quick.epochs, quick.checks) == ([0, 1], [4, 6], 3, True)
    issue13 = benchmark.parse_args(["--issue13", "--epochs", "2"])
    assert (issue13.dataset, issue13.seeds, issue13.budgets, issue13.epochs, issue13.initial_points) == (
        "digits", [0, 1, 2, 3, 4], [10, 16], 2, 3)
    assert issue13.strategies == "sdt-prior,sdt-edit,bo,random,tpe"
    assert benchmark.parse_args(["--budgets", "20,10,20"]).budgets == [10, 20]
    assert benchmark.parse_args(["--max-evals", "7"]).budgets == [7]
    for wrong in (["--budgets", "10", "--max-evals", "5"], ["--budgets", "0,5"], ["--seeds", "a"],
                  ["--quick", "--issue13"]):
        with pytest.raises(SystemExit):
            benchmark.parse_args(wrong)


# ---------------------------------------------------------------------------- an epoch budget (issue 14)

def test_trials_within_an_epoch_budget_leave_out_the_training_that_ended_past_it():
    bo = rows("bo", [0.5, 0.6, 0.7], epochs=[10, 10, 10])
    sdt = rows("sdt", [0.5, 0.2, 0.2, 0.8], epochs=[10, 2, 2, 10], pruned=(1, 2))
    runs = benchmark.trials_within_epochs(bo + sdt, epoch_budget=25)
    assert [t["index"] for t in runs[("bo", 0)]] == [0, 1]            # the third ends at 30 > 25
    assert [t["index"] for t in runs[("sdt", 0)]] == [0, 1, 2, 3]     # the fourth ends at 24 <= 25
    runs = benchmark.trials_within_epochs(bo + sdt, epoch_budget=23)
    assert [t["index"] for t in runs[("sdt", 0)]] == [0, 1, 2]
    assert [t["index"] for t in runs[("bo", 0)]] == [0, 1]


def test_the_epoch_curve_steps_up_at_the_epoch_a_training_ended():
    trials = rows("sdt", [0.5, FAILED, 0.8], epochs=[3, 1, 2])
    assert benchmark.epoch_curve(trials, 7)[:2] == [pytest.approx(math.nan, nan_ok=True)] * 2
    assert benchmark.epoch_curve(trials, 7)[2:] == [0.5, 0.5, 0.5, 0.8, 0.8]


def test_issue_14s_check_compares_epochs_to_reach_with_the_epochs_bo_spent():
    bo = rows("bo", [0.5, 0.7, 0.6], epochs=[10, 10, 10])
    pruning = rows("sdt", [0.2, 0.3, 0.7, 0.9], epochs=[2, 2, 10, 10], pruned=(0, 1))   # 0.7 after 14 epochs
    slow = rows("random", [0.2, 0.3, 0.6, 0.7], epochs=[10, 10, 10, 10])              # 0.7 after 40
    arms = [benchmark.Arm("sdt", "sdt"), benchmark.Arm("random", "random-sdt"), benchmark.Arm("bo", "bo")]
    runs = benchmark.trials_within_epochs(bo + pruning + slow, epoch_budget=40)
    summaries = benchmark.summarise([], arms, 0, runs)
    checks = {check.arm: check for check in benchmark.epoch_checks(summaries)}
    assert checks["sdt"].met is True and "14/30" in checks["sdt"].numbers     # 47 % of BO's 30 epochs
    assert checks["random"].met is False and "40/30" in checks["random"].numbers
    never = rows("sdt", [0.2, 0.3], epochs=[2, 2])
    summaries = benchmark.summarise([], arms[:1] + arms[2:], 0, benchmark.trials_within_epochs(bo + never, 40))
    (check,) = benchmark.epoch_checks(summaries)
    assert check.met is False and "never" in check.numbers


def test_a_stored_run_matches_when_read_as_resume_reads_it():
    from dataclasses import asdict
    from sdt.run.loop import RunConfig
    config = RunConfig(dataset="digits", max_evals=4, epochs=2, seed=1, strategy="sdt", guidance="prior")
    stored = benchmark.config_json(config)
    assert benchmark.same_config(stored, config)
    # An option added after the run was stored (absent there, at its default here): still the same run.
    older = {key: value for key, value in stored.items() if key != "epoch_budget"}
    assert benchmark.same_config(older, config)
    assert not benchmark.same_config(older, RunConfig(**{**asdict(config), "epoch_budget": 8}))
    # A run stored before guidance existed edited the space: not this prior-guided run.
    assert not benchmark.same_config({k: v for k, v in stored.items() if k != "guidance"}, config)
    assert not benchmark.same_config({**stored, "seed": 2}, config)
    assert not benchmark.same_config(None, config) and not benchmark.same_config({"bogus": 1}, config)
    # Guidance shapes only the symbolic actions: a plain-BO run stored under another guidance is the
    # same run, an sdt run is not.
    bo = RunConfig(dataset="digits", max_evals=4, epochs=2, seed=1, strategy="bo", guidance="local")
    assert benchmark.same_config({**benchmark.config_json(bo), "guidance": "prior"}, bo)
    assert not benchmark.same_config({**stored, "guidance": "local"}, config)
    assert not benchmark.same_config({**benchmark.config_json(bo), "seed": 2}, bo)
