"""Benchmark: Symbolic DNN-Tuner against plain BO, random search and Optuna TPE, on two budgets.

Every arm runs through the same tuner (same trainer, same initial space, same seeds) once per
seed, side by side in one benchmark run, and is summarised for each budget of `--budgets`:

  <output>/results.md      per budget: the table per arm (median and min-max over seeds), each
                           arm's best per seed against bo's (paired differences, their mean and
                           its 95 % interval), the per-action table of the symbolic arms and issue 13's checks
  <output>/best_so_far.png best-so-far validation accuracy against the training, one panel per budget
  <output>/trials.csv      raw per-trial rows of every run (arm, guidance, seed, index, metrics, actions)
  <output>/runs/<arm>_seed<seed>/   each run's own log folder (`_b<N>` added: a run for budget N only)

  python3 benchmark.py --quick       # smoke preset: 2 seeds, budgets 4 and 6, 3 epochs, plus the checks
  python3 benchmark.py --issue13     # issue 13's measurement: digits, seeds 0-4, budgets 10 and 16, 6 epochs
  python3 benchmark.py --issue14     # issue 14's measurement: sdt-prior (pruning) and bo at an equal epoch budget
  python3 benchmark.py --dataset fashion_mnist --seeds 0,1,2 --budgets 10,20 --epochs 15

--quick is not measured yet (estimated about 15 minutes on 2 CPU cores: 180 epochs on the
Fashion-MNIST subset against 160 in 13.9 minutes for the earlier preset). --issue13 keeps that digits benchmark's settings (6 epochs, 3 initial points,
the default objective val_loss) and raises its 8 trainings to budgets 10 and 16 (16, not 20: the
whole measurement, 400 trainings, took about 100 minutes on 2 cores; docs/benchmarks.md).

Arms (`--strategies`, comma-separated labels): a strategy's name (`sdt`, `bo`, `random`, `tpe`,
`random-sdt`, `meta-lr`, `evolution`), or a symbolic strategy with its guidance: `sdt-edit`,
`sdt-prior`, `sdt-local`, `random-sdt-edit`, ... run `sdt` / `random-sdt` with the run option
`guidance` set to `edit` / `prior` / `local`; any of them followed by `@name=value` sets one of the strategy's
options (`evolution@fitness=mrs+trained`, `meta-lr@meta_lr_success=best`). The option needs a `sdt.run.loop.RunConfig` with a `guidance`
field; without it such an arm stops the benchmark with an error before anything runs. Default
arms: sdt-prior, sdt-edit, bo, random, tpe (tpe is skipped when Optuna is not installed).

Two budgets from one run: each arm and seed runs once, to the largest budget, and a smaller budget
N is read from the first N trainings of that run. This is what a run of budget N would have done
only when the strategy's choices do not depend on the total budget. The samplers (sdt/strategies/)
get the budget as `StrategySetup.budget`: the GP (`sdt`, `bo`), random search (`random`,
`random-sdt`) and TPE never read it; `evolution` and `meta-lr` do (today only to stop at it). The
symbolic controller does not see the budget. A strategy whose sampler's source mentions the budget
(`reads_budget`) is therefore run separately for every budget, in `runs/<arm>_seed<seed>_b<N>/`.

The measurements, per arm and budget (all read from validation accuracy, whatever the objective):
best validation accuracy; the trainings needed to reach plain BO's final best validation accuracy
of the same seed and budget ("never" when not reached; the median counts "never" as infinitely
many); the epochs spent (every epoch the budget's trainings trained, pruned ones included) and the
epochs needed to reach BO's final best (those of the trainings up to and including the one that
reached it); wasted trainings (validation accuracy below half the run's best at that budget; failed
and diverged trainings count as wasted, a pruned one by its accuracy); and, for symbolic arms, per action how often it was applied
(`chosen` of a trial record) and how often the training that judged it found an improvement (the
`new_observations` of the next trial record; an action applied after a budget's last training is
applied but not judged). Issue 13's checks compare every symbolic arm with `bo`: median best at
least 0.005 above BO's, a wasted share at most BO's, and BO's best reached within 70 % of the
budget (median over seeds).

Stopping and starting again: a finished run (its configuration stored, and marked finished in
`runs/<name>.json`) is reused; a run the benchmark was stopped in is resumed with the tuner's
--resume, so its finished trainings are kept. `runs/<name>.json` records each stretch of time the
benchmark ran the run, and the run time counts only those, not the time it was stopped.

Pruning (issue 14) is each strategy's default: the symbolic arms stop trainings that cannot succeed
(status pruned: they count as trainings, with the accuracy of the best epoch they ran), the
baselines train every training to its end. The epochs columns show what that saves.

An epoch budget (`--epoch-budget E`, issue 14) replaces the budgets of trainings: every run trains
until its trainings have trained E epochs in all (`RunConfig.epoch_budget`, folders `_e<E>`), and
the summary reads the trainings that ended within E epochs, so arms that prune get more trainings
for the same compute. Its check: the epochs a symbolic arm needed to reach BO's final best, as a
share of the epochs BO spent, at most 70 % (median over seeds); the plot is against epochs spent.

Finished runs are kept in the output folder: started again with the same options, the benchmark
reuses every run whose stored configuration matches and runs only what is missing. Started again
with a larger budget, it extends each run of a strategy that does not read its budget (the first
trainings of the longer run are the shorter run's) with the tuner's resume, instead of training
them again; per-budget runs and runs to an epoch budget start anew.

`--checks` adds the measurements the tuner is held to: resident memory after 30 trainings vs
after 3, and one fixed configuration trained by the tuner vs a bare `model.fit` of the same model.
"""

from __future__ import annotations

import argparse
import csv
import gc
import inspect
import json
import math
import statistics
import sys
import time
from abc import ABC
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

REPO_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_DIR))

from sdt.neural import backend  # noqa: E402

backend.prepare_environment()   # before anything imports TensorFlow

from sdt.core.errors import ConfigurationError, TunerError  # noqa: E402
from sdt.core.vocabulary import TrialStatus  # noqa: E402
from sdt.run.storage import RunStorage  # noqa: E402
from sdt.strategies import registry  # noqa: E402
from sdt.strategies.base import Strategy  # noqa: E402

DEFAULT_ARMS = ("sdt-prior", "sdt-edit", "bo", "random", "tpe")
GUIDANCE_VALUES = ("edit", "prior", "local")
REFERENCE_ARM = "bo"
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"dataset": "fashion_mnist_small", "seeds": "0,1,2,3,4", "budgets": "10,20", "epochs": 15,
                "initial_points": 5},
    "quick": {"dataset": "fashion_mnist_small", "seeds": "0,1", "budgets": "4,6", "epochs": 3,
              "initial_points": 2},
    # Issue 13's measurement; dataset, epochs and initial points (and the default objective,
    # val_loss) as in the digits benchmark of docs/benchmarks.md, budgets 10 and 16.
    "issue13": {"dataset": "digits", "seeds": "0,1,2,3,4", "budgets": "10,16", "epochs": 6,
                "initial_points": 3},
    # Issue 14's measurement: SDT with pruning against plain BO at an equal epoch budget, 96 epochs
    # (16 trainings of 6 epochs for BO, issue 13's larger budget), on digits: the embedded
    # Fashion-MNIST subset trains about ten times slower per epoch here.
    "issue14": {"dataset": "digits", "seeds": "0,1,2,3,4", "budgets": "16", "epochs": 6,
                "initial_points": 3, "epoch_budget": 96, "strategies": "sdt-prior,bo"},
}
# Issue 13's bars: a symbolic arm against plain BO at the same budget.
BEAT_BO_BY = 0.005           # median best validation accuracy at least this much above BO's
REACH_WITHIN_SHARE = 0.70    # BO's final best reached within this share of the budget (median)
WASTED_BELOW_SHARE_OF_BEST = 0.5
# Keras reports accuracies in float32 (about 7 significant digits), so a median of two of them and
# another plus BEAT_BO_BY can count the same validation images and still differ by 5e-9 (Fashion-
# MNIST 3k at 16 trainings: (258 + 259) / 2 / 300 against 257 / 300 + 0.005). A bar compares with
# this much slack: far below one image of any validation set under a million images.
ACCURACY_TOLERANCE = 1e-6
FIXED_PARAMS = {"unit_c1": 32, "dr1_2": 0.15, "unit_c2": 96, "unit_d": 384, "dr_f": 0.25,
                "learning_rate": 1e-3, "batch_size": 64, "optimizer": "Adam", "activation": "relu"}


# --------------------------------------------------------------------------------------------
# Arms: a strategy plus its run options
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    """One compared arm: its label (`--strategies`, folder names, tables), strategy and guidance."""

    label: str
    strategy: str
    guidance: str | None = None
    # Strategy options the arm sets (`<arm>@name=value`, e.g. `evolution@fitness=mrs+trained`).
    options: tuple[tuple[str, str], ...] = ()

    @property
    def symbolic(self) -> bool:
        """Whether the symbolic block applies actions in this arm's runs."""
        return registry.tunes_network(self.strategy)


def parse_arm(label: str) -> Arm:
    """The arm a `--strategies` label names: a strategy, or a symbolic strategy + `-edit`/`-prior`,
    each optionally followed by strategy options `@name=value` (`evolution@fitness=mrs+trained`)."""
    base_label, *settings = label.split(ARM_OPTION_SEPARATOR)
    if settings:
        arm = parse_arm(base_label)
        declared = {option.name for option in registry.entry(arm.strategy).sampler_class().options}
        options = []
        for setting in settings:
            name, equals, value = setting.partition("=")
            if not equals or name not in declared:
                raise ConfigurationError(f"--strategies: arm {label!r}: {setting!r} is not name=value of an option "
                                         f"of {arm.strategy} ({', '.join(sorted(declared)) or 'it has none'})")
            options.append((name, value))
        return Arm(label, arm.strategy, arm.guidance, tuple(options))
    if label in registry.STRATEGIES:
        return Arm(label, label)
    for guidance in GUIDANCE_VALUES:
        base = label.removesuffix(f"-{guidance}")
        if base != label and base in registry.STRATEGIES and registry.tunes_network(base):
            return Arm(label, base, guidance)
    symbolic = [name for name in registry.STRATEGIES if registry.tunes_network(name)]
    guided = [f"{name}-{guidance}" for name in symbolic for guidance in GUIDANCE_VALUES]
    raise ConfigurationError(f"--strategies: unknown arm {label!r}; expected one of "
                             f"{', '.join([*registry.STRATEGIES, *guided])}")


ARM_OPTION_SEPARATOR = "@"


def parse_arms(text: str) -> list[Arm]:
    """The arms of a comma-separated `--strategies` value, in order, each once."""
    labels = list(dict.fromkeys(label.strip() for label in text.split(",") if label.strip()))
    if not labels:
        raise ConfigurationError("--strategies: no arm given")
    return [parse_arm(label) for label in labels]


def run_config_class():
    """sdt's RunConfig (imported here so that the module imports without the run layer's weight)."""
    from sdt.run.loop import RunConfig
    return RunConfig


def make_config(arm: Arm, seed: int, max_evals: int, settings: argparse.Namespace, config_class=None):
    """The RunConfig of one run of `arm`; the one place a run's options are set.

    With `settings.epoch_budget` the run ends when its trainings have trained that many epochs
    (`max_evals` is then only an upper bound on the trainings). An arm with a guidance needs a
    RunConfig with a `guidance` field (ConfigurationError if not).
    """
    config_class = config_class or run_config_class()
    options = dict(dataset=settings.dataset, max_evals=max_evals, epochs=settings.epochs, seed=seed,
                   strategy=arm.strategy, initial_points=settings.initial_points)
    if getattr(settings, "epoch_budget", None) is not None:
        options["epoch_budget"] = settings.epoch_budget
    if arm.guidance is not None:
        if "guidance" not in config_class.__dataclass_fields__:
            raise ConfigurationError(
                f"arm {arm.label!r} needs the run option 'guidance' ({arm.guidance}), which this version "
                f"of sdt's RunConfig does not have; use arm {arm.strategy!r} (its built-in behaviour) "
                f"or an sdt that has --guidance")
        options["guidance"] = arm.guidance
    if arm.options:
        options["strategy_options"] = dict(arm.options)
    return config_class(**options)


def guidance_of(arm: Arm, config) -> str:
    """The guidance a run of `arm` used ("" for strategies without the symbolic block or without the option)."""
    return str(getattr(config, "guidance", "") or "") if arm.symbolic else ""


# --------------------------------------------------------------------------------------------
# The plan: which runs cover which budgets
# --------------------------------------------------------------------------------------------

def reads_budget(strategy: str) -> bool:
    """Whether strategy's sampler may depend on the run's total budget (StrategySetup.budget).

    Conservative: true when the source of any module of the sampler's classes mentions `budget`.
    """
    sampler = registry.entry(strategy).sampler_class()
    modules = {inspect.getmodule(cls) for cls in sampler.__mro__ if cls not in (Strategy, ABC, object)}
    return any("budget" in inspect.getsource(module) for module in modules if module is not None)


@dataclass(frozen=True)
class PlannedRun:
    """One tuning run: arm, seed, its number of trainings, and whether it serves only that budget."""

    arm: Arm
    seed: int
    max_evals: int
    per_budget: bool = False
    epoch_budget: int | None = None

    @property
    def name(self) -> str:
        """Its folder's name under runs/ (`_e<E>`: a run to an epoch budget of E)."""
        if self.epoch_budget is not None:
            return f"{self.arm.label}_seed{self.seed}_e{self.epoch_budget}"
        suffix = f"_b{self.max_evals}" if self.per_budget else ""
        return f"{self.arm.label}_seed{self.seed}{suffix}"


def plan_runs(arms: list[Arm], seeds: list[int], budgets: list[int],
              budget_dependent: Callable[[str], bool] = reads_budget) -> list[PlannedRun]:
    """Seed by seed, every arm: one run to the largest budget, or one per budget where the
    strategy reads the budget."""
    plan = []
    for seed in seeds:
        for arm in arms:
            if budget_dependent(arm.strategy):
                plan += [PlannedRun(arm, seed, budget, per_budget=True) for budget in sorted(budgets)]
            else:
                plan.append(PlannedRun(arm, seed, max(budgets)))
    return plan


def plan_epoch_runs(arms: list[Arm], seeds: list[int], epoch_budget: int) -> list[PlannedRun]:
    """Seed by seed, every arm: one run to `epoch_budget` epochs (at most that many trainings)."""
    return [PlannedRun(arm, seed, epoch_budget, epoch_budget=epoch_budget) for seed in seeds for arm in arms]


def trials_within_epochs(rows: list[dict[str, Any]], epoch_budget: int) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(arm, seed) -> the trainings of the run that ended within `epoch_budget` epochs in all.

    A run stops starting trainings once the budget is spent, so its last training may end past it;
    that training is left out here, so that every arm is compared on at most `epoch_budget` epochs."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["index"]):
        runs.setdefault((row["arm"], row["seed"]), []).append(row)
    chosen = {}
    for key, trials in runs.items():
        kept, spent = [], 0
        for trial in trials:
            spent += int(trial.get("epochs_run") or 0)
            if spent > epoch_budget:
                break
            kept.append(trial)
        chosen[key] = kept
    return chosen


def trials_at_budget(rows: list[dict[str, Any]], budget: int) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(arm, seed) -> the first `budget` trainings of the run that stands for that budget: the
    arm's run for exactly this budget where there is one, else its shared run."""
    runs: dict[tuple[str, int, int, bool], list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault((row["arm"], row["seed"], row["run_budget"], bool(row["per_budget"])), []).append(row)
    chosen: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (arm, seed, run_budget, per_budget), trials in runs.items():
        if per_budget and run_budget != budget:
            continue
        if (arm, seed) in chosen and not per_budget:
            continue          # the run for exactly this budget wins over the shared one
        chosen[(arm, seed)] = sorted((t for t in trials if t["index"] < budget), key=lambda t: t["index"])
    return chosen


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def config_json(config) -> dict[str, Any]:
    """A RunConfig as the run's database stores it (after a JSON round trip)."""
    return json.loads(json.dumps(asdict(config)))


def same_config(stored: Any, config) -> bool:
    """Whether a stored configuration is `config`, read as the tuner reads it on --resume
    (RunConfig.from_dict): an option added to RunConfig since the run was stored takes the value
    the tuner gives it there (its default, or the behaviour runs had before it existed). The
    guidance is compared only for strategies whose actions it shapes: a `bo` run is the same run
    whatever guidance it was stored with (the default guidance changed under stored runs)."""
    if not isinstance(stored, dict):
        return False
    try:
        stored_config = type(config).from_dict(stored)
    except (TypeError, ValueError):
        return False
    if hasattr(config, "guidance") and not registry.tunes_network(config.strategy):
        stored_config = replace(stored_config, guidance=config.guidance)
    return stored_config == config


def stored_run(folder: Path, config) -> tuple[bool, list[Any], Any]:
    """(the folder holds a run of exactly `config`, its stored trials, its final evaluation)."""
    try:
        stored = RunStorage.open(folder, read_only=True)
    except (OSError, ValueError, TunerError):
        return False, [], None
    with stored:
        return (same_config(stored.run_value("config"), config), stored.stored_trials(),
                stored.run_value("final"))


def read_timing(timing_file: Path, config) -> dict[str, Any] | None:
    """The timing file of a run of `config`: {"config", "sessions": [[start, end], ...]}, where
    each session is one stretch of the benchmark running the run (a run the benchmark was stopped
    in and resumed has several). Files from before sessions were kept hold "started" and
    "wall_seconds" of one session."""
    try:
        timing = json.loads(timing_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(timing, dict) or not same_config(timing.get("config"), config):
        return None
    if "sessions" not in timing and "started" in timing:
        timing["sessions"] = [[timing["started"], timing["started"] + timing["wall_seconds"]]]
    return timing if timing.get("sessions") else None


def finished_run(folder: Path, timing_file: Path, config) -> tuple[list[list[float]], dict[str, Any]] | None:
    """(sessions, summary) of a finished run of `config` in `folder`, else None.

    Finished: the stored configuration is `config` and the benchmark marked the run finished in its
    timing file when the run returned (or, for runs from before timing files, every training and
    the test evaluation are stored)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    same, trials, final = stored_run(folder, config)
    if not same or not trials:
        return None
    timing = read_timing(timing_file, config)
    if timing is not None and timing.get("finished", "started" in timing):
        return timing["sessions"], summary
    if len(trials) != config.max_evals or final is None:
        return None
    # Finished before timings were kept: from the first training's start to the last one's end.
    started = trials[0].finished_at - trials[0].record.result.duration_seconds
    return [[started, trials[-1].finished_at]], summary


def smaller_budget_run(folder: Path, config, extendable: bool) -> Any:
    """The configuration stored in `folder` when it is `config` with fewer trainings and the run
    may be extended to `config`'s (`extendable`: the strategy never reads its budget, so the first
    trainings of a longer run are the shorter run's); else None."""
    if not extendable or getattr(config, "epoch_budget", None) is not None:
        return None
    try:
        stored = RunStorage.open(folder, read_only=True)
    except (OSError, ValueError, TunerError):
        return None
    with stored:
        value, trials = stored.run_value("config"), stored.stored_trials()
    if not trials or not isinstance(value, dict) or not isinstance(value.get("max_evals"), int):
        return None
    if not value["max_evals"] < config.max_evals or not same_config(value, replace(config, max_evals=value["max_evals"])):
        return None
    return type(config).from_dict(value)


def run_tuner(config, folder: Path, timing_file: Path, make_train=None,
              extendable: bool = False) -> tuple[list[list[float]], dict[str, Any]]:
    """Run `config` into `folder` (its console lines to `<folder>.log`); (sessions, summary).

    A run of `config` the benchmark was stopped in (killed, machine gone) is resumed, not started
    again: its finished trainings are kept, and the time it was stopped is not counted. So is a run
    of the same configuration to a smaller budget, when `extendable` (see smaller_budget_run): its
    trainings are the first ones of the longer run, which the tuner's resume continues to
    `config.max_evals` as an uninterrupted run would have."""
    from sdt.cli.console import ConsoleObserver
    from sdt.run import loop as tuner
    same, trials, _ = stored_run(folder, config)
    shorter = None if same else smaller_budget_run(folder, config, extendable)
    resume = (same and bool(trials)) or shorter is not None
    timing = read_timing(timing_file, shorter or config) if resume else None
    if timing is not None:
        sessions = timing["sessions"]
    elif resume:      # stopped before timing files kept sessions: the stored trainings' own span
        sessions = [[trials[0].finished_at - trials[0].record.result.duration_seconds, trials[-1].finished_at]]
    else:
        sessions = []
    started = time.time()
    sessions.append([started, started])

    def mark(finished: bool) -> None:
        # Written before the training starts too, so a stop keeps the sessions that came before.
        sessions[-1][1] = time.time()
        timing_file.write_text(json.dumps({"config": config_json(config), "sessions": sessions,
                                           "finished": finished}))
    if not resume:
        timing_file.unlink(missing_ok=True)
    mark(False)
    with open(folder.parent / f"{folder.name}.log", "a" if resume else "w") as log_stream:
        summary = tuner.run(config, folder, resume=resume, overwrite=not resume,
                            observer=ConsoleObserver(log_stream), make_train=make_train,
                            resume_budget=config.max_evals if shorter is not None else None)
    mark(True)
    return sessions, summary


def trial_durations(stored_trials, sessions: list[list[float]]) -> list[float]:
    """Each trial's iteration time: from the end of the one before (or the start of the session
    it ran in, when the benchmark was stopped and resumed in between) to its own end."""
    durations, previous_end = [], sessions[0][0]
    for trial in stored_trials:
        session_start = max((start for start, _ in sessions if start <= trial.finished_at), default=previous_end)
        durations.append(trial.finished_at - max(previous_end, session_start))
        previous_end = trial.finished_at
    return durations


def execute(run: PlannedRun, config, output: Path, make_train=None) -> tuple[list[dict[str, Any]], bool]:
    """One planned run (reused when finished before); its trials as flat rows, and whether it was reused."""
    folder = output / "runs" / run.name
    timing_file = folder.parent / f"{run.name}.json"
    finished = finished_run(folder, timing_file, config)
    reused = finished is not None
    sessions, summary = finished if reused else run_tuner(config, folder, timing_file, make_train,
                                                          extendable=not run.per_budget)
    wall = sum(end - start for start, end in sessions)
    with RunStorage.open(folder, read_only=True) as storage:
        stored_trials = storage.stored_trials()
    rows = [trial_row(run, config, trial.record, seconds, wall, summary)
            for trial, seconds in zip(stored_trials, trial_durations(stored_trials, sessions))]
    return rows, reused


def action_columns(record) -> dict[str, str]:
    """The symbolic actions of a trial record: applied after it (`chosen`) and, of those applied
    after the previous trial, judged by this one (`new_observations`) and among them improved."""
    return {"actions": ";".join(action.name for action in record.chosen),
            "judged_actions": ";".join(observation.action for observation in record.new_observations),
            "helped_actions": ";".join(observation.action for observation in record.new_observations
                                       if observation.improved)}


def trial_row(run: PlannedRun, config, record, iteration_seconds: float, wall: float,
              summary: dict[str, Any]) -> dict[str, Any]:
    """One trial as a flat row of trials.csv."""
    from sdt.run import exports
    fields = exports.record_fields(record)
    best = summary.get("best") or {}
    return {
        "arm": run.arm.label, "strategy": run.arm.strategy, "guidance": guidance_of(run.arm, config),
        "seed": run.seed, "run": run.name, "run_budget": run.max_evals, "per_budget": run.per_budget,
        "index": record.index, "status": fields["status"], "objective": record.objective,
        "val_loss": fields["val_loss"], "val_accuracy": fields["val_accuracy"], "epochs_run": fields["epochs_run"],
        "stop_reason": record.result.stop_reason,
        "training_seconds": fields["duration_seconds"], "symbolic_seconds": record.symbolic_seconds,
        "iteration_seconds": iteration_seconds, "problems": ";".join(fields["problems"]),
        **action_columns(record),
        "test_accuracy": best.get("test_accuracy") if best.get("index") == record.index else None,
        "run_wall_seconds": wall,
    }


# --------------------------------------------------------------------------------------------
# Summaries (from the flat rows of the trials)
# --------------------------------------------------------------------------------------------

def completed_accuracy(row: dict[str, Any]) -> float | None:
    """The validation accuracy of a completed or pruned training (a pruned one: of the best epoch it
    ran); None for a failed, diverged or NaN one."""
    value = row.get("val_accuracy")
    if row.get("status") not in TrialStatus.SCORED or value is None or not math.isfinite(value):
        return None
    return float(value)


def best_accuracy(trials: list[dict[str, Any]]) -> float:
    """The run's best validation accuracy (0.0 when no training completed)."""
    return max((a for a in map(completed_accuracy, trials) if a is not None), default=0.0)


def best_loss(trials: list[dict[str, Any]]) -> float | None:
    """The lowest validation loss of the run's completed trainings (None when none completed)."""
    return min((t["val_loss"] for t in trials if completed_accuracy(t) is not None and t.get("val_loss") is not None),
               default=None)


def best_so_far(trials: list[dict[str, Any]]) -> list[float]:
    """Best validation accuracy after each training (NaN before the first completed one)."""
    best, curve = math.nan, []
    for accuracy in map(completed_accuracy, trials):
        if accuracy is not None:
            best = accuracy if math.isnan(best) else max(best, accuracy)
        curve.append(best)
    return curve


def trainings_to_reach(trials: list[dict[str, Any]], target: float) -> int | None:
    """How many trainings the run needed until one reached `target` validation accuracy; None: never."""
    return next((number for number, best in enumerate(best_so_far(trials), start=1) if best >= target), None)


def epochs_of(trials: list[dict[str, Any]]) -> int:
    """The epochs the trainings trained, pruned, diverged and failed ones included."""
    return sum(int(t.get("epochs_run") or 0) for t in trials)


def epochs_to_reach(trials: list[dict[str, Any]], target: float) -> int | None:
    """The epochs the run spent until a training reached `target` validation accuracy, that
    training's included; None: never."""
    needed = trainings_to_reach(trials, target)
    return None if needed is None else epochs_of(trials[:needed])


def seconds_to_reach(trials: list[dict[str, Any]], target: float) -> float | None:
    """The wall seconds of the run's iterations (training, diagnosis, proposal) until a training
    reached `target` validation accuracy, that one's included; None: never."""
    needed = trainings_to_reach(trials, target)
    return None if needed is None else sum(t.get("iteration_seconds") or 0.0 for t in trials[:needed])


def is_wasted(row: dict[str, Any], run_best: float) -> bool:
    """A training that failed, diverged, has no validation accuracy, or got less than half the run's best."""
    accuracy = completed_accuracy(row)
    return accuracy is None or accuracy < WASTED_BELOW_SHARE_OF_BEST * run_best


def wasted_count(trials: list[dict[str, Any]]) -> int:
    """The run's wasted trainings, judged against its own best (at the budget the trials cover)."""
    run_best = best_accuracy(trials)
    return sum(is_wasted(row, run_best) for row in trials)


def median_trainings(needed: list[int | None]) -> float | None:
    """Median of trainings-to-reach over seeds, "never" (None) counted as infinitely many: inf when
    the median is "never", None when there is nothing to take a median of."""
    if not needed:
        return None
    return statistics.median(math.inf if n is None else n for n in needed)


def action_counts(trials: list[dict[str, Any]]) -> dict[str, Counter]:
    """Per action: applied (after a training), judged (by the next training) and helped (judged improved)."""
    counts: dict[str, Counter] = {}
    for row in trials:
        for column, key in (("actions", "applied"), ("judged_actions", "judged"), ("helped_actions", "helped")):
            for name in filter(None, (row.get(column) or "").split(";")):
                counts.setdefault(name, Counter())[key] += 1
    return counts


@dataclass
class ArmSummary:
    """What one arm did at one budget, over its seeds."""

    arm: Arm
    budget: int                                      # trainings; 0 for an epoch budget (no trainings budget)
    best: dict[int, float]                           # seed -> best validation accuracy
    best_loss: list[float]
    test_accuracy: list[float]
    reach: dict[int, int | None]                     # seed -> trainings to reach the reference's best
    wasted: int
    trainings: int
    symbolic_seconds: list[float]
    seconds: float
    actions: dict[str, Counter] = field(default_factory=dict)
    epochs: dict[int, int] = field(default_factory=dict)                    # seed -> epochs spent
    epochs_reach: dict[int, int | None] = field(default_factory=dict)       # seed -> epochs to reach the best
    seconds_reach: dict[int, float | None] = field(default_factory=dict)    # seed -> seconds to reach the best

    @property
    def median_best(self) -> float:
        return statistics.median(self.best.values())

    @property
    def median_reach(self) -> float | None:
        return median_trainings(list(self.reach.values()))

    @property
    def median_epochs_reach(self) -> float | None:
        return median_trainings(list(self.epochs_reach.values()))


def best_trial_test_accuracy(trials: list[dict[str, Any]]) -> float | None:
    """Test accuracy of the budget's best trial (by objective, as the tuner picks it: completed and
    pruned trainings), known when it is the run's evaluated best."""
    from sdt.run.loop import best_trial
    best = best_trial([t for t in trials if t.get("status") in TrialStatus.SCORED])
    return None if best is None else best.get("test_accuracy")


def summarise_arm(arm: Arm, runs: dict[tuple[str, int], list[dict[str, Any]]], budget: int,
                  targets: dict[int, float]) -> ArmSummary | None:
    """The summary of `arm` from `runs` (trials_at_budget); `targets`: seed -> the reference's best."""
    mine = {seed: trials for (label, seed), trials in sorted(runs.items()) if label == arm.label and trials}
    if not mine:
        return None
    every = [t for trials in mine.values() for t in trials]
    losses = [best_loss(trials) for trials in mine.values()]
    tests = [best_trial_test_accuracy(trials) for trials in mine.values()]
    return ArmSummary(
        arm=arm, budget=budget, best={seed: best_accuracy(trials) for seed, trials in mine.items()},
        best_loss=[v for v in losses if v is not None], test_accuracy=[v for v in tests if v is not None],
        reach={seed: trainings_to_reach(trials, targets[seed]) for seed, trials in mine.items() if seed in targets},
        epochs={seed: epochs_of(trials) for seed, trials in mine.items()},
        epochs_reach={seed: epochs_to_reach(trials, targets[seed]) for seed, trials in mine.items() if seed in targets},
        seconds_reach={seed: seconds_to_reach(trials, targets[seed]) for seed, trials in mine.items() if seed in targets},
        wasted=sum(wasted_count(trials) for trials in mine.values()), trainings=len(every),
        symbolic_seconds=[t["symbolic_seconds"] for t in every if t.get("symbolic_seconds")],
        seconds=sum(t.get("iteration_seconds") or 0.0 for t in every),
        actions=action_counts(every) if arm.symbolic else {})


def summarise(rows: list[dict[str, Any]], arms: list[Arm], budget: int,
              runs: dict[tuple[str, int], list[dict[str, Any]]] | None = None) -> list[ArmSummary]:
    """One summary per arm that has runs, at `budget` (or of the given `runs`, for an epoch budget);
    trainings-to-reach against the `bo` arm."""
    runs = trials_at_budget(rows, budget) if runs is None else runs
    targets = {seed: best_accuracy(trials) for (label, seed), trials in runs.items()
               if label == REFERENCE_ARM and trials}
    return [s for s in (summarise_arm(arm, runs, budget, targets) for arm in arms) if s is not None]


# --------------------------------------------------------------------------------------------
# Issue 13's checks
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One bar for one arm at one budget: met or not (None: cannot be told), with the numbers."""

    arm: str
    bar: str
    met: bool | None
    numbers: str

    def line(self) -> str:
        verdict = {True: "**met**", False: "**not met**", None: "n/a"}[self.met]
        return f"- {self.arm}, {self.bar}: {self.numbers}: {verdict}"


def format_trainings(value: float | None) -> str:
    """A count of trainings, or a median of them; "never" for infinity, "n/a" for None."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "never"
    return f"{value:g}"


def format_minutes(seconds) -> str:
    """The median of per-seed seconds in minutes, never (None) counted as infinitely long."""
    seconds = list(seconds)
    if not seconds:
        return "n/a"
    median = statistics.median(math.inf if s is None else s for s in seconds)
    return "never" if math.isinf(median) else f"{median / 60:.1f} min"


def percent(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} %" if whole else "n/a"


def check_best(arm: ArmSummary, reference: ArmSummary) -> Check:
    """Median best validation accuracy at least BEAT_BO_BY above the reference's."""
    bar = reference.median_best + BEAT_BO_BY
    return Check(arm.arm.label, f"median best val_accuracy >= {reference.arm.label}'s + {BEAT_BO_BY}",
                 arm.median_best >= bar - ACCURACY_TOLERANCE,
                 f"{arm.median_best:.4f} vs {reference.median_best:.4f} + {BEAT_BO_BY} = {bar:.4f}")


def check_wasted(arm: ArmSummary, reference: ArmSummary) -> Check:
    """A share of wasted trainings no larger than the reference's."""
    return Check(arm.arm.label, f"wasted share <= {reference.arm.label}'s",
                 arm.trainings > 0 and arm.wasted * reference.trainings <= reference.wasted * arm.trainings,
                 f"{arm.wasted}/{arm.trainings} ({percent(arm.wasted, arm.trainings)}) vs "
                 f"{reference.wasted}/{reference.trainings} ({percent(reference.wasted, reference.trainings)})")


def check_reach(arm: ArmSummary) -> Check:
    """The reference's final best reached within REACH_WITHIN_SHARE of the budget (median over seeds)."""
    limit = REACH_WITHIN_SHARE * arm.budget
    median = arm.median_reach
    numbers = (f"median {format_trainings(median)} of {arm.budget} trainings"
               f"{'' if median is None or math.isinf(median) else f' ({percent(median, arm.budget)})'}"
               f", bar {REACH_WITHIN_SHARE * 100:.0f} % = {limit:g}; per seed "
               + ", ".join("never" if n is None else str(n) for n in arm.reach.values()))
    return Check(arm.arm.label, f"{REFERENCE_ARM}'s final best reached within {REACH_WITHIN_SHARE * 100:.0f} % "
                 "of the trainings", None if median is None else median <= limit + 1e-9, numbers)


def check_epochs(arm: ArmSummary, reference: ArmSummary) -> Check:
    """Issue 14's bar: the reference's final best reached within REACH_WITHIN_SHARE of the epochs the
    reference spent (median over seeds of the per-seed share; never counts as infinitely many)."""
    shares = {}
    for seed, needed in arm.epochs_reach.items():
        if seed in reference.epochs:
            shares[seed] = math.inf if needed is None else needed / reference.epochs[seed]
    median = statistics.median(shares.values()) if shares else None
    numbers = (f"median {'n/a' if median is None else 'never' if math.isinf(median) else f'{median * 100:.0f} %'}"
               f" of {reference.arm.label}'s epochs, bar {REACH_WITHIN_SHARE * 100:.0f} %; per seed "
               + ", ".join(f"{'never' if arm.epochs_reach[seed] is None else arm.epochs_reach[seed]}"
                           f"/{reference.epochs[seed]}" for seed in shares))
    return Check(arm.arm.label, f"{reference.arm.label}'s final best reached within "
                 f"{REACH_WITHIN_SHARE * 100:.0f} % of {reference.arm.label}'s epochs",
                 None if median is None else median <= REACH_WITHIN_SHARE + 1e-9, numbers)


def epoch_checks(summaries: list[ArmSummary]) -> list[Check]:
    """Issue 14's bar for every arm that prunes or is symbolic, against the `bo` arm (empty without one)."""
    reference = next((s for s in summaries if s.arm.label == REFERENCE_ARM), None)
    if reference is None:
        return []
    return [check_epochs(s, reference) for s in summaries if s.arm.symbolic]


def issue_checks(summaries: list[ArmSummary]) -> list[Check]:
    """Issue 13's three bars for every symbolic arm against the `bo` arm (empty without one)."""
    reference = next((s for s in summaries if s.arm.label == REFERENCE_ARM), None)
    if reference is None:
        return []
    checks = []
    for summary in summaries:
        if summary.arm.symbolic:
            checks += [check_best(summary, reference), check_wasted(summary, reference), check_reach(summary)]
    return checks


# --------------------------------------------------------------------------------------------
# Report: results.md, best_so_far.png, trials.csv
# --------------------------------------------------------------------------------------------

def median_range(values, digits: int = 4) -> str:
    """'median (min–max)' of the finite values; 'n/a' when there are none."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "n/a"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def count_range(values) -> str:
    """'median (min–max)' of whole numbers (a median of two may end in .5); 'n/a' when there are none."""
    values = list(values)
    if not values:
        return "n/a"
    return f"{statistics.median(values):g} ({min(values)}–{max(values)})"


def arm_table_row(summary: ArmSummary) -> dict[str, str]:
    """One arm's row of a budget's table."""
    median = summary.median_reach
    reach_median = format_trainings(median)
    if median is not None and not math.isinf(median) and summary.budget:
        reach_median += f" ({percent(median, summary.budget)} of {summary.budget})"
    return {
        "arm": summary.arm.label,
        "seeds": str(len(summary.best)),
        "best val_accuracy": median_range(summary.best.values()),
        "best val_loss": median_range(summary.best_loss),
        "test accuracy of best": median_range(summary.test_accuracy),
        f"trainings to reach {REFERENCE_ARM}'s best (per seed)":
            ", ".join("never" if n is None else str(n) for n in summary.reach.values()) or "n/a",
        "median trainings to reach it": reach_median,
        "epochs spent": count_range(summary.epochs.values()),
        f"epochs to reach {REFERENCE_ARM}'s best (per seed)":
            ", ".join("never" if n is None else str(n) for n in summary.epochs_reach.values()) or "n/a",
        "median epochs to reach it": format_trainings(summary.median_epochs_reach),
        "median time to reach it": format_minutes(summary.seconds_reach.values()),
        "wasted trainings": f"{summary.wasted}/{summary.trainings} ({percent(summary.wasted, summary.trainings)})",
        "symbolic step, median": (f"{statistics.median(summary.symbolic_seconds) * 1000:.0f} ms"
                                  if summary.symbolic_seconds else "n/a"),
        "time of these trainings": f"{summary.seconds / 60:.1f} min",
    }


def action_table(summaries: list[ArmSummary]) -> list[dict[str, str]]:
    """Per symbolic arm and action: applied, judged by a later training, helped (judged improved)."""
    table = []
    for summary in summaries:
        if not summary.arm.symbolic:
            continue
        if not summary.actions:
            table.append({"arm": summary.arm.label, "action": "(none applied)", "applied": "0", "judged": "0",
                          "helped": "0", "helped / judged": "n/a"})
        for name, counts in sorted(summary.actions.items(), key=lambda item: (-item[1]["applied"], item[0])):
            table.append({"arm": summary.arm.label, "action": name, "applied": str(counts["applied"]),
                          "judged": str(counts["judged"]), "helped": str(counts["helped"]),
                          "helped / judged": percent(counts["helped"], counts["judged"])})
    return table


@dataclass(frozen=True)
class SeedComparison:
    """One arm's best validation accuracy against the reference's, seed by seed (paired: the same
    seeds draw the same initial data split and the same first point)."""

    arm: str
    differences: dict[int, float]                     # seed -> arm's best - reference's best

    @property
    def wins(self) -> int:
        return sum(1 for d in self.differences.values() if d > 0)

    @property
    def losses(self) -> int:
        return sum(1 for d in self.differences.values() if d < 0)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences.values())

    @property
    def standard_error(self) -> float | None:
        """Of the mean difference; None with fewer than two seeds."""
        values = list(self.differences.values())
        return None if len(values) < 2 else statistics.stdev(values) / math.sqrt(len(values))

    def interval(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of the mean difference (Student's t with n - 1 degrees of
        freedom: the seeds' differences as a sample); None with fewer than two seeds."""
        error = self.standard_error
        if error is None:
            return None
        from scipy.stats import t
        half = float(t.ppf(0.975, len(self.differences) - 1)) * error
        return self.mean - half, self.mean + half

    def line(self) -> str:
        interval = self.interval()
        if interval is None:
            spread = verdict = ""
        else:
            low, high = interval
            spread = f", 95 % interval {low * 100:+.2f} to {high * 100:+.2f}"
            verdict = (": the interval holds zero, not told apart from the seeds' luck" if low <= 0 <= high
                       else ": the interval excludes zero")
        return (f"- {self.arm} − {REFERENCE_ARM}, per seed: mean {self.mean * 100:+.2f} points{spread}; "
                f"{self.wins} seeds better, {self.losses} worse, "
                f"{len(self.differences) - self.wins - self.losses} level{verdict}")


def seed_comparisons(summaries: list[ArmSummary]) -> list[SeedComparison]:
    """Every other arm against the `bo` arm on the seeds both ran (empty without one)."""
    reference = next((s for s in summaries if s.arm.label == REFERENCE_ARM), None)
    if reference is None:
        return []
    return [SeedComparison(s.arm.label, {seed: s.best[seed] - reference.best[seed]
                                         for seed in sorted(s.best) if seed in reference.best})
            for s in summaries if s is not reference and set(s.best) & set(reference.best)]


def seed_table(summaries: list[ArmSummary]) -> list[dict[str, str]]:
    """Per seed: every arm's best validation accuracy and, for the others, the difference to `bo`'s."""
    comparisons = {c.arm: c for c in seed_comparisons(summaries)}
    seeds = sorted({seed for s in summaries for seed in s.best})
    table = []
    for seed in seeds:
        row = {"seed": str(seed)}
        for summary in summaries:
            best = summary.best.get(seed)
            row[summary.arm.label] = "n/a" if best is None else f"{best:.4f}"
            if summary.arm.label in comparisons:
                difference = comparisons[summary.arm.label].differences.get(seed)
                row[f"{summary.arm.label} − {REFERENCE_ARM} (points)"] = (
                    "n/a" if difference is None else f"{difference * 100:+.2f}")
        table.append(row)
    return table


def markdown_table(table: list[dict[str, str]]) -> str:
    """A list of same-keyed rows as a Markdown table."""
    if not table:
        return "(no results)\n"
    headers = list(table[0])
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(row[h] for h in headers) + " |" for row in table]
    return "\n".join(lines) + "\n"


def budget_section(summaries: list[ArmSummary], budget: int) -> list[str]:
    """results.md's section of one budget: the arms, the symbolic actions, issue 13's checks."""
    lines = [f"## Budget {budget} trainings", "", markdown_table([arm_table_row(s) for s in summaries])]
    comparisons = seed_comparisons(summaries)
    if comparisons:
        lines += ["### Per seed", "",
                  f"Best validation accuracy per seed; the same seed gives every arm the same data split "
                  f"and first point, so the differences are paired.", "",
                  markdown_table(seed_table(summaries))]
        lines += [c.line() for c in comparisons] + [""]
    actions = action_table(summaries)
    if actions:
        lines += ["### Symbolic actions", "",
                  "Applied: chosen after a training. Judged: the next training (within this budget) judged it. "
                  "Helped: that training's objective beat the objective of the training the action followed (the rule learning's label).", "",
                  markdown_table(actions)]
    checks = issue_checks(summaries)
    lines += [f"### Issue 13's checks at budget {budget}", ""]
    lines += [check.line() for check in checks] or [
        f"(need a `{REFERENCE_ARM}` arm and a symbolic arm: nothing to check)"]
    return lines + [""]


def epoch_budget_section(summaries: list[ArmSummary], epoch_budget: int) -> list[str]:
    """results.md's section of an epoch budget: the arms, the symbolic actions, issue 14's check."""
    lines = [f"## Epoch budget {epoch_budget}", "",
             f"Every run trained until its trainings had trained {epoch_budget} epochs in all; a training that "
             f"ended past {epoch_budget} is left out, so every arm is compared on at most {epoch_budget} epochs.", "",
             markdown_table([arm_table_row(s) for s in summaries])]
    actions = action_table(summaries)
    if actions:
        lines += ["### Symbolic actions", "", markdown_table(actions)]
    checks = epoch_checks(summaries)
    lines += [f"### Issue 14's check at {epoch_budget} epochs", ""]
    lines += [check.line() for check in checks] or [
        f"(need a `{REFERENCE_ARM}` arm and a symbolic arm: nothing to check)"]
    return lines + [""]


def method_notes(plan: list[PlannedRun], budgets: list[int], objective: str) -> list[str]:
    """How the numbers were obtained: which runs stand for which budget, and the definitions."""
    separate = sorted({run.arm.label for run in plan if run.per_budget})
    shared = sorted({run.arm.label for run in plan if not run.per_budget}, key=[r.arm.label for r in plan].index)
    lines = [f"Objective minimised by every strategy: {objective}; every column reads validation accuracy.", ""]
    if len(budgets) > 1 and shared:
        lines.append(f"Budgets {', '.join(map(str, budgets))}: each run of {', '.join(shared)} went to "
                     f"{max(budgets)} trainings, and a smaller budget N reads its first N trainings (these "
                     "strategies' choices do not depend on the total budget).")
    if separate:
        lines.append(f"{', '.join(separate)} read the budget (StrategySetup.budget): run separately for every "
                     "budget (folders `_b<N>`).")
    lines += ["", f"Trainings to reach {REFERENCE_ARM}'s best: the number of trainings until the run's best "
              f"validation accuracy reached {REFERENCE_ARM}'s final best of the same seed and budget; the median "
              "counts never as infinitely many. Epochs spent: every epoch the budget's trainings trained "
              "(median, min-max over seeds); epochs to reach it: those of the trainings up to and including "
              "the one that reached it. Pruning is each strategy's default (on for sdt and random-sdt, off "
              "for the baselines); a pruned training counts with the accuracy of the best epoch it ran. "
              f"Wasted: validation accuracy below {WASTED_BELOW_SHARE_OF_BEST:g} x the run's best at that "
              "budget, failed and diverged trainings included.", ""]
    return lines


def epoch_curve(trials: list[dict[str, Any]], epoch_budget: int) -> list[float]:
    """Best-so-far validation accuracy after each of epochs 1..epoch_budget (a training counts from
    the epoch it ended at; NaN before the first completed one)."""
    curve, best, spent, position = [], math.nan, 0, 0
    ends = []
    for trial, accuracy in zip(trials, best_so_far(trials)):
        spent += int(trial.get("epochs_run") or 0)
        ends.append((spent, accuracy))
    for epoch in range(1, epoch_budget + 1):
        while position < len(ends) and ends[position][0] <= epoch:
            best = ends[position][1]
            position += 1
        curve.append(best)
    return curve


def plot_epochs(rows: list[dict[str, Any]], arms: list[Arm], epoch_budget: int, path: Path, title: str) -> None:
    """best_so_far.png of an epoch budget: median and min-max over seeds against the epochs spent."""
    import warnings
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    figure, panel = plt.subplots(figsize=(7, 4.2), dpi=120)
    runs = trials_within_epochs(rows, epoch_budget)
    for arm in arms:
        curves = [epoch_curve(trials, epoch_budget) for (label, _), trials in sorted(runs.items()) if label == arm.label]
        if not curves:
            continue
        matrix = np.array(curves, dtype=float)
        x = np.arange(1, epoch_budget + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            panel.step(x, np.nanmedian(matrix, axis=0), where="post", label=f"{arm.label} ({len(curves)} seeds)")
            panel.fill_between(x, np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0), step="post", alpha=0.15)
    panel.set_xlabel("epochs spent")
    panel.set_ylabel("best-so-far validation accuracy")
    panel.grid(alpha=0.3)
    panel.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot(rows: list[dict[str, Any]], arms: list[Arm], budgets: list[int], path: Path, title: str) -> None:
    """best_so_far.png: median (line) and min-max (band) over seeds of each arm, one panel per budget."""
    import warnings
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
    figure, axes = plt.subplots(1, len(budgets), figsize=(6.5 * len(budgets), 4.2), dpi=120, squeeze=False)
    for panel, budget in zip(axes[0], budgets):
        runs = trials_at_budget(rows, budget)
        for arm in arms:
            curves = [best_so_far(trials) for (label, _), trials in sorted(runs.items())
                      if label == arm.label and trials]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            matrix = np.array([c[:length] for c in curves], dtype=float)
            x = np.arange(1, length + 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)     # an all-NaN column: no training completed yet
                panel.plot(x, np.nanmedian(matrix, axis=0), marker="o", label=f"{arm.label} ({len(curves)} seeds)")
                panel.fill_between(x, np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0), alpha=0.15)
        panel.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        panel.set_xlabel("training")
        panel.set_ylabel("best-so-far validation accuracy")
        panel.set_title(f"budget {budget}", fontsize=10)
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """trials.csv: every row of every run."""
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# Checks: memory across trainings, the tuner's training overhead
# --------------------------------------------------------------------------------------------

def memory_check(trainings: int = 30, strategy: str = "sdt", output: Path | None = None) -> dict[str, float]:
    """Resident memory after 3 and after `trainings` trainings of one tuning run in this process:
    the whole loop (proposals, diagnosis, rule learning, storage), with a strategy that varies the
    network (`sdt` adds layers and switches features), 1-epoch trainings on digits."""
    import tempfile
    import psutil
    from sdt.run import loop as tuner
    from sdt.run.observer import RunObserver
    process = psutil.Process()
    rss: dict[int, float] = {}

    class Measure(RunObserver):
        def on_trial(self, record, progress) -> None:
            gc.collect()
            if progress.trials_done in (3, trainings):
                rss[progress.trials_done] = process.memory_info().rss / 2**20

    with tempfile.TemporaryDirectory(dir=output) as folder:
        tuner.run(tuner.RunConfig(dataset="digits", max_evals=trainings, epochs=1, seed=0, strategy=strategy,
                                  initial_points=3, prune=False), Path(folder) / "run", observer=Measure())
    return {"rss_after_3_mb": rss[3], f"rss_after_{trainings}_mb": rss[trainings],
            "growth_percent": (rss[trainings] - rss[3]) / rss[3] * 100}


def overhead_check(dataset_name: str, epochs: int = 2, repetitions: int = 3) -> dict[str, float]:
    """One fixed configuration: the tuner's train() against a bare model.fit on the same arrays."""
    import keras
    from sdt.data import datasets
    from sdt.neural import network as neural_network
    from sdt.core.records import Architecture
    dataset = datasets.load_dataset(dataset_name, seed=0)
    tuner_times, bare_times = [], []
    for repetition in range(repetitions):
        started = time.perf_counter()
        neural_network.train(FIXED_PARAMS, Architecture(), dataset, epochs=epochs, seed=repetition,
                             tensorboard_dir=None, model_path=None, early_stopping_patience=None)
        tuner_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        keras.backend.clear_session()
        keras.utils.set_random_seed(repetition)
        model = neural_network.build_model(FIXED_PARAMS, Architecture(), dataset.input_shape, dataset.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=FIXED_PARAMS["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(dataset.x_train, dataset.y_train, batch_size=FIXED_PARAMS["batch_size"], epochs=epochs,
                  validation_data=(dataset.x_val, dataset.y_val), verbose=0)
        bare_times.append(time.perf_counter() - started)
    tuner_median, bare_median = statistics.median(tuner_times), statistics.median(bare_times)
    return {"tuner_train_seconds": tuner_median, "bare_fit_seconds": bare_median,
            "overhead_percent": (tuner_median - bare_median) / bare_median * 100}


# --------------------------------------------------------------------------------------------
# Evolution's training-free fitness (issue 19): what MRS costs and how it ranks networks
# --------------------------------------------------------------------------------------------

# Candidates per screening group in the MRS measurement: evolution's default --offspring.
MRS_GROUP = 4


def mrs_check(dataset_name: str, candidates: int, epochs: int, seed: int,
              train: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Random candidates of evolution's domain, each scored by MRS and then trained `epochs` epochs.

    Reported: the Spearman rank correlation of the MRS log p (and of the random-weight loss) with
    the trained validation accuracy; the cost of one MRS estimate against one training; and, for
    consecutive groups of MRS_GROUP candidates, what screening would have trained: the accuracy of
    the group's MRS pick against the group's mean and best. `train` replaces network.train (tests)."""
    import tempfile
    import numpy as np
    from scipy.stats import spearmanr
    from sdt.neural import network as neural_network
    from sdt.run import loop
    from sdt.strategies.evolution import ArchitectureProblem
    from sdt.strategies.mrs import fitness_of
    config = loop.RunConfig(dataset=dataset_name, strategy="evolution", epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        context = loop.prepare(config, Path(folder) / "run")
    problem = ArchitectureProblem(context.domain)
    rng = np.random.default_rng([seed, 19])
    train = train or neural_network.train
    rows = []
    for index in range(candidates):
        params, architecture = problem.decode(problem.random_genome(rng))
        fitness = fitness_of(neural_network.random_weight_losses(params, architecture, context.dataset,
                                                                 seed=seed * 1000 + index))
        result = train(params, architecture, context.dataset, epochs=epochs, seed=seed * 1000 + index,
                       tensorboard_dir=None, model_path=None,
                       early_stopping_patience=config.early_stopping_patience)
        accuracy = result.val_accuracy if math.isfinite(result.val_accuracy) else 0.0
        rows.append({"index": index, "log_p": fitness.log_p, "random_loss_mean": fitness.mean,
                     "random_loss_std": fitness.std, "mrs_seconds": fitness.seconds,
                     "val_accuracy": accuracy, "training_seconds": result.duration_seconds,
                     "params": params, "architecture": architecture.to_dict()})
        print(f"  mrs candidate {index + 1}/{candidates}: log p {fitness.log_p:.3g}, "
              f"val_accuracy {accuracy:.4f}", flush=True)
    accuracies = [r["val_accuracy"] for r in rows]
    groups = [rows[i:i + MRS_GROUP] for i in range(0, len(rows) - MRS_GROUP + 1, MRS_GROUP)]
    picks = [max(group, key=lambda r: r["log_p"]) for group in groups]
    return {
        "dataset": dataset_name, "candidates": candidates, "epochs": epochs, "seed": seed,
        "spearman_log_p": float(spearmanr([r["log_p"] for r in rows], accuracies)[0]),
        "spearman_random_loss": float(spearmanr([r["random_loss_mean"] for r in rows], accuracies)[0]),
        "mrs_seconds_median": statistics.median(r["mrs_seconds"] for r in rows),
        "training_seconds_median": statistics.median(r["training_seconds"] for r in rows),
        "groups": len(groups),
        "pick_accuracy_mean": statistics.mean(r["val_accuracy"] for r in picks) if picks else math.nan,
        "group_accuracy_mean": statistics.mean(accuracies[:len(groups) * MRS_GROUP]) if groups else math.nan,
        "picked_the_best": sum(pick is max(group, key=lambda r: r["val_accuracy"])
                               for pick, group in zip(picks, groups)),
        "rows": rows,
    }


def mrs_report(result: dict[str, Any]) -> list[str]:
    """The lines of mrs.md."""
    ratio = result["mrs_seconds_median"] / max(result["training_seconds_median"], 1e-9) * 100
    return ["## Evolution's MRS fitness against trained accuracy", "",
            f"{result['candidates']} random candidates of evolution's domain on {result['dataset']} "
            f"(seed {result['seed']}), each scored by MRS and trained {result['epochs']} epochs.", "",
            f"- Spearman rank correlation with the trained validation accuracy: MRS log p "
            f"{result['spearman_log_p']:+.2f}; mean random-weight loss {result['spearman_random_loss']:+.2f}",
            f"- cost: one MRS estimate {result['mrs_seconds_median']:.2f} s (median) against one training "
            f"{result['training_seconds_median']:.1f} s: {ratio:.1f} %",
            f"- screening {result['groups']} groups of {MRS_GROUP} (what `--fitness mrs+trained` trains): the "
            f"MRS pick's accuracy {result['pick_accuracy_mean']:.4f} on average against the groups' mean "
            f"{result['group_accuracy_mean']:.4f}; it picked the group's best {result['picked_the_best']} "
            f"times of {result['groups']} (chance: 1 in {MRS_GROUP})", ""]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def parse_numbers(text: str, option: str, parser: argparse.ArgumentParser, minimum: int) -> list[int]:
    """A comma-separated list of integers >= minimum, each once, in the given order."""
    try:
        numbers = list(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        parser.error(f"{option} takes comma-separated whole numbers, got {text!r}")
    if not numbers or min(numbers) < minimum:
        parser.error(f"{option} takes numbers >= {minimum}, got {text!r}")
    return numbers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with the chosen preset's values where an option is not given."""
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    presets = parser.add_mutually_exclusive_group()
    quick, issue13, issue14 = PRESETS["quick"], PRESETS["issue13"], PRESETS["issue14"]
    presets.add_argument("--quick", action="store_true",
                         help=f"smoke preset: {quick['dataset']}, seeds {quick['seeds']}, budgets {quick['budgets']}, "
                              f"{quick['epochs']} epochs, {quick['initial_points']} initial points, plus the checks")
    presets.add_argument("--issue13", action="store_true",
                         help=f"issue 13's measurement: {issue13['dataset']}, seeds {issue13['seeds']}, budgets "
                              f"{issue13['budgets']}, {issue13['epochs']} epochs, "
                              f"{issue13['initial_points']} initial points")
    presets.add_argument("--issue14", action="store_true",
                         help=f"issue 14's measurement: {issue14['strategies']} on {issue14['dataset']}, seeds "
                              f"{issue14['seeds']}, an epoch budget of {issue14['epoch_budget']}, "
                              f"{issue14['epochs']} epochs per training")
    default = PRESETS["default"]
    parser.add_argument("--dataset", default=None,
                        help=f"the dataset every run tunes on, as main.py's --dataset (default {default['dataset']})")
    parser.add_argument("--strategies", default=None,
                        help=f"comma-separated arms (default: {','.join(DEFAULT_ARMS)}; tpe needs Optuna); "
                             "sdt-edit / sdt-prior / sdt-local: sdt with --guidance edit / prior / local")
    parser.add_argument("--seeds", default=None, help=f"comma-separated seeds (default {default['seeds']})")
    parser.add_argument("--budgets", default=None,
                        help=f"comma-separated numbers of trainings, all read from one run per arm and seed "
                             f"(default {default['budgets']})")
    parser.add_argument("--max-evals", type=int, default=None, help="a single budget: the same as --budgets N")
    parser.add_argument("--epoch-budget", type=int, default=None,
                        help="instead of budgets of trainings: every run trains until its trainings have trained "
                             "this many epochs in all (equal compute; issue 14)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per training (default {default['epochs']})")
    parser.add_argument("--initial-points", type=int, default=None,
                        help="random trainings before a model-based strategy models "
                             f"(default {default['initial_points']})")
    parser.add_argument("--checks", action="store_true", help="also run the memory and overhead checks")
    parser.add_argument("--mrs", type=int, default=None, metavar="N",
                        help="instead of the arms: evolution's MRS fitness of N random candidates against their "
                             "trained accuracy (rank correlation, cost, screening), on --dataset (default digits), "
                             "the first --seeds, --epochs; written to mrs.md and mrs.json")
    parser.add_argument("--output-dir", default="benchmark_results",
                        help="where results.md, best_so_far.png, trials.csv and every run's folder go; finished "
                             "runs there are reused, a run the benchmark was stopped in is resumed "
                             "(default benchmark_results)")
    args = parser.parse_args(argv)
    if args.budgets is not None and args.max_evals is not None:
        parser.error("give --budgets or --max-evals, not both")
    if args.epoch_budget is not None and (args.budgets is not None or args.max_evals is not None):
        parser.error("give --epoch-budget or --budgets / --max-evals, not both")
    args.preset = ("quick" if args.quick else "issue13" if args.issue13 else "issue14" if args.issue14
                   else "default")
    preset = PRESETS[args.preset]
    args.strategies = args.strategies or preset.get("strategies") or ",".join(DEFAULT_ARMS)
    if args.epoch_budget is None and args.budgets is None and args.max_evals is None:
        args.epoch_budget = preset.get("epoch_budget")
    if args.epoch_budget is not None and args.epoch_budget < 1:
        parser.error(f"--epoch-budget takes a whole number >= 1, got {args.epoch_budget}")
    if args.mrs is not None:
        if args.mrs < MRS_GROUP:
            parser.error(f"--mrs takes a number of candidates >= {MRS_GROUP}, got {args.mrs}")
        args.dataset = args.dataset or "digits"
    args.dataset = args.dataset or preset["dataset"]
    args.seeds = parse_numbers(args.seeds or preset["seeds"], "--seeds", parser, minimum=0)
    budgets = str(args.max_evals) if args.max_evals is not None else args.budgets or preset["budgets"]
    args.budgets = sorted(parse_numbers(budgets, "--budgets", parser, minimum=1))
    args.epochs = preset["epochs"] if args.epochs is None else args.epochs
    args.initial_points = preset["initial_points"] if args.initial_points is None else args.initial_points
    args.checks = args.checks or args.quick
    return args


def available_arms(arms: list[Arm]) -> list[Arm]:
    """The arms that can run here: tpe's only with Optuna installed (a note on stderr otherwise)."""
    if not any(arm.strategy == "tpe" for arm in arms):
        return arms
    try:
        import optuna  # noqa: F401
    except ImportError:
        print("Optuna is not installed (pip install -r requirements-optuna.txt): skipping tpe", file=sys.stderr)
        return [arm for arm in arms if arm.strategy != "tpe"]
    return arms


def prepared_plan(args: argparse.Namespace) -> tuple[list[Arm], dict[PlannedRun, Any]]:
    """The arms and every planned run's checked RunConfig, before anything runs (TunerError if wrong)."""
    arms = available_arms(parse_arms(args.strategies))
    plan = (plan_epoch_runs(arms, args.seeds, args.epoch_budget) if args.epoch_budget is not None
            else plan_runs(arms, args.seeds, args.budgets))
    configs = {run: make_config(run.arm, run.seed, run.max_evals, args) for run in plan}
    for config in configs.values():
        config.validate()
    return arms, configs


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_plan(configs: dict[PlannedRun, Any], args: argparse.Namespace, output: Path,
             make_train=None) -> list[dict[str, Any]]:
    """Every planned run in order (finished ones reused), with a progress line before and after each."""
    started, rows = time.time(), []
    for number, (run, config) in enumerate(configs.items(), start=1):
        size = (f"{run.epoch_budget} epochs in trainings" if run.epoch_budget is not None
                else f"{run.max_evals} trainings")
        print(f"[{number}/{len(configs)}] {run.name}: {size} of up to {args.epochs} epochs "
              f"on {args.dataset} (benchmark elapsed {minutes(time.time() - started)}) ...", flush=True)
        run_rows, reused = execute(run, config, output, make_train)
        rows += run_rows
        print(f"    {'reused the finished run: ' if reused else ''}best val_accuracy {best_accuracy(run_rows):.4f}, "
              f"{wasted_count(run_rows)}/{len(run_rows)} wasted, run time "
              f"{minutes(run_rows[0]['run_wall_seconds'] if run_rows else 0.0)}", flush=True)
    return rows


def write_report(args: argparse.Namespace, argv: list[str] | None, arms: list[Arm],
                 configs: dict[PlannedRun, Any], rows: list[dict[str, Any]], output: Path) -> list[str]:
    """trials.csv, best_so_far.png and the lines of results.md (without the closing ones)."""
    write_csv(rows, output / "trials.csv")
    seeds = ','.join(map(str, args.seeds))
    if args.epoch_budget is not None:
        title = (f"{args.dataset}: an epoch budget of {args.epoch_budget}, trainings of up to {args.epochs} "
                 f"epochs, seeds {seeds}")
        plot_epochs(rows, arms, args.epoch_budget, output / "best_so_far.png", title)
    else:
        title = f"{args.dataset}: budgets {', '.join(map(str, args.budgets))} trainings x {args.epochs} epochs, seeds {seeds}"
        plot(rows, arms, args.budgets, output / "best_so_far.png", title)
    objective = next(iter(configs.values())).objective
    report = [f"# Benchmark: {title}", "",
              f"Command: `python3 benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    report += method_notes(list(configs), [] if args.epoch_budget is not None else args.budgets, objective)
    if args.epoch_budget is not None:
        runs = trials_within_epochs(rows, args.epoch_budget)
        report += epoch_budget_section(summarise(rows, arms, 0, runs), args.epoch_budget)
    for budget in ([] if args.epoch_budget is not None else args.budgets):
        report += budget_section(summarise(rows, arms, budget), budget)
    return report + ["![best-so-far validation accuracy](best_so_far.png)", ""]


def checks_report(args: argparse.Namespace, output: Path) -> list[str]:
    """Run the memory and overhead checks; their lines of results.md (checks.json written)."""
    print("checks: memory over a 30-training sdt run, tuner vs bare model.fit ...", flush=True)
    memory = memory_check()
    overhead = overhead_check(args.dataset)
    (output / "checks.json").write_text(json.dumps({"memory": memory, "overhead": overhead}, indent=2))
    return ["## Checks", "",
            f"- resident memory after 3 trainings {memory['rss_after_3_mb']:.0f} MiB, after 30 "
            f"{memory['rss_after_30_mb']:.0f} MiB in one sdt run of 1-epoch trainings on digits: growth "
            f"{memory['growth_percent']:+.1f} % (bar: within 5 %)",
            f"- one fixed configuration, 2 epochs: tuner's train() {overhead['tuner_train_seconds']:.1f} s, "
            f"bare model.fit {overhead['bare_fit_seconds']:.1f} s: overhead {overhead['overhead_percent']:+.1f} % "
            f"(bar: within 10 %)", ""]


def mrs_main(args: argparse.Namespace, argv: list[str] | None, output: Path, train=None) -> int:
    """`--mrs N`: the MRS measurement alone (mrs.md, mrs.json)."""
    started = time.time()
    try:
        result = mrs_check(args.dataset, args.mrs, args.epochs, args.seeds[0], train=train)
    except TunerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    output.mkdir(parents=True, exist_ok=True)
    (output / "mrs.json").write_text(json.dumps(result, indent=2))
    report = mrs_report(result) + [f"Command: `python3 benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
                                   f"{minutes(time.time() - started)}.", ""]
    (output / "mrs.md").write_text("\n".join(report))
    print("\n".join(report))
    return 0


def main(argv: list[str] | None = None, make_train=None) -> int:
    """The benchmark; `make_train` (sdt.run.loop.run's) replaces the Keras trainer, for tests."""
    args = parse_args(argv)
    output = Path(args.output_dir).resolve()
    if args.mrs is not None:
        return mrs_main(args, argv, output)
    (output / "runs").mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        arms, configs = prepared_plan(args)
        rows = run_plan(configs, args, output, make_train)
    except TunerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = write_report(args, argv, arms, configs, rows, output)
    if args.checks:
        report += checks_report(args, output)
    report.append(f"Total benchmark time: {minutes(time.time() - started)}.\n")
    (output / "results.md").write_text("\n".join(report))
    print("\n".join(report))
    print(f"written: {output / 'results.md'}, {output / 'best_so_far.png'}, {output / 'trials.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
