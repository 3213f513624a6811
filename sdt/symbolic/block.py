"""The symbolic block: ProbLog diagnosis of one training and the choice of tuning actions.

One symbolic step, as the controller runs it after each training:

1. `SymbolicBlock.diagnose` measures the Keras history (final accuracies and losses,
   counts and areas of the training-loss curve) and writes the numbers as ProbLog facts
   (`num_classes/1`, `history_stat/2`). It joins them with diagnosis.pl, which decides the
   problems (`problem/1`) and says why (`because/2`), and with tuning_rules.pl, whose
   learnable `t(p)::` annotations are replaced in memory by the CURRENT rule weights (the
   source files are never rewritten). ProbLog evaluates the joined program once and the
   answer becomes a `Diagnosis`: problems with their explanations in words and numbers,
   candidate actions with their probabilities, every measure, and notes on what the
   evidence could not support.
2. `choose_actions` picks, for each diagnosed problem, the most probable applicable action.

Weights are learned elsewhere (sdt/rule_learning.py) and actions are applied elsewhere
(tuning_module.py). Python only measures; every threshold and rule lives in the .pl files,
which users may replace (`SymbolicBlock(diagnosis_path=..., rules_path=...)`). Both files
are validated when the block is built: a malformed file raises `RulesError` naming the file
and quoting ProbLog. `query/1` and `evidence/1,2` clauses in either file are ignored: the
block asks its own questions. This module never imports Keras or TensorFlow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from problog import get_evaluatable
from problog.errors import ProbLogError
from problog.logic import AnnotatedDisjunction, Clause, Constant, Term, Var, term2list
from problog.program import PrologString, SimpleProgram

from sdt.core.errors import ConfigurationError, RulesError
from sdt.core.vocabulary import (
    ACCURACY, ACTIONS, DECR_LR, HISTORY_KEYS, INC_LR, LOSS, PROBLEMS, VAL_ACCURACY, VAL_LOSS,
)

# The shipped programs are package data beside this module (a checkout shows them at the top level
# too, as links): found from this file's location, never from the working directory.
PROGRAM_DIR = Path(__file__).resolve().parent
DEFAULT_DIAGNOSIS_PATH = PROGRAM_DIR / "diagnosis.pl"
DEFAULT_RULES_PATH = PROGRAM_DIR / "tuning_rules.pl"

# Statistics of a history that this module writes as `history_stat(Name, Value)` facts;
# diagnosis.pl (section 2) documents each one. A statistic that cannot be measured is
# left out rather than written as NaN.
HISTORY_STATS = (
    "epochs",
    "final_train_accuracy", "final_val_accuracy", "final_train_loss", "final_val_loss",
    "non_finite_loss_epochs", "first_non_finite_loss_epoch",
    "train_loss_curve_epochs", "first_train_loss", "last_train_loss", "peak_train_loss",
    "train_loss_steps", "train_loss_up_steps", "train_loss_down_steps",
    "train_loss_rise_total", "train_loss_fall_total",
    "train_loss_chord_area", "train_loss_late_drop",
)

# "Final" values are the mean of this many last epochs (fewer on short runs), so one
# noisy epoch does not decide a diagnosis.
FINAL_WINDOW_EPOCHS = 3

# Two probabilities closer than this are a tie for `choose_actions`.
_TIE_TOLERANCE = 1e-9

_ACCURACY_KEYS = (ACCURACY, VAL_ACCURACY)


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProblemFinding:
    """One diagnosed problem: its probability and the numbers that made it true."""

    name: str
    probability: float
    explanation: str
    measures: dict[str, float] = field(default_factory=dict)  # measures and thresholds quoted

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "probability": self.probability,
                "explanation": self.explanation, "measures": dict(self.measures)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProblemFinding":
        return cls(name=str(data["name"]), probability=float(data["probability"]),
                   explanation=str(data.get("explanation", "")),
                   measures={str(k): float(v) for k, v in (data.get("measures") or {}).items()})


@dataclass(frozen=True)
class CandidateAction:
    """A tuning action proposed for a diagnosed problem, with the rule's probability."""

    name: str
    problem: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "problem": self.problem, "probability": self.probability}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CandidateAction":  # also builds ChosenAction
        return cls(name=str(data["name"]), problem=str(data["problem"]),
                   probability=float(data["probability"]))


@dataclass(frozen=True)
class ChosenAction(CandidateAction):
    """The candidate picked for a problem by `choose_actions` (same fields, its own type)."""


@dataclass(frozen=True)
class Diagnosis:
    """What the symbolic block found in one training.

    `problems` (probability > 0) and `actions` are in vocabulary order (actions of a
    problem by decreasing probability); `measures` holds every measured quantity of
    diagnosis.pl, `thresholds` every threshold at the task's scale, `notes` what the
    evidence could not support (e.g. a history too short for the curve-shape tests).
    """

    problems: tuple[ProblemFinding, ...] = ()
    actions: tuple[CandidateAction, ...] = ()
    measures: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)

    def problem_names(self) -> tuple[str, ...]:
        return tuple(finding.name for finding in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": [finding.to_dict() for finding in self.problems],
            "actions": [action.to_dict() for action in self.actions],
            "measures": dict(self.measures),
            "notes": list(self.notes),
            "thresholds": dict(self.thresholds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Diagnosis":
        return cls(
            problems=tuple(ProblemFinding.from_dict(p) for p in data.get("problems", ())),
            actions=tuple(CandidateAction.from_dict(a) for a in data.get("actions", ())),
            measures={str(k): float(v) for k, v in (data.get("measures") or {}).items()},
            notes=tuple(str(n) for n in data.get("notes", ())),
            thresholds={str(k): float(v) for k, v in (data.get("thresholds") or {}).items()},
        )


def _rule_order(key: tuple[str, str]) -> tuple[int, int]:
    action, problem = key
    return PROBLEMS.index(problem), ACTIONS.index(action)


@dataclass(frozen=True, eq=False)
class RuleWeights(Mapping):
    """The weights of the learnable tuning rules: (action, problem) -> weight in (0, 1).

    Immutable; a mapping in vocabulary order (problem, then action). The weights are state
    of a run: store `to_dict()` with each trial and restore with `from_dict` (an exact
    round trip through JSON). `SymbolicBlock.initial_weights()` reads the initial ones
    from the rules file's `t(p)` annotations.
    """

    weights: Mapping[tuple[str, str], float]

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping):
            raise ConfigurationError(
                f"rule weights must be a mapping (action, problem) -> weight, "
                f"got {type(self.weights).__name__}")
        checked: dict[tuple[str, str], float] = {}
        for key, weight in self.weights.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ConfigurationError(
                    f"rule weight keys must be (action, problem) pairs, got {key!r}")
            action, problem = key
            _check_action_name(action, "rule weight")
            _check_problem_name(problem, "rule weight")
            checked[(action, problem)] = _check_weight(weight, f"weight of action({action}, {problem})")
        ordered = dict(sorted(checked.items(), key=lambda item: _rule_order(item[0])))
        object.__setattr__(self, "weights", MappingProxyType(ordered))

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, key: tuple[str, str]) -> float:
        return self.weights[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleWeights):
            return NotImplemented
        return dict(self.weights) == dict(other.weights)

    def __hash__(self) -> int:
        return hash(tuple(self.weights.items()))

    def __repr__(self) -> str:
        body = ", ".join(f"{a}/{p}={w:.4g}" for (a, p), w in self.weights.items())
        return f"RuleWeights({body})"

    # Helpers ------------------------------------------------------------------------
    def weight(self, action: str, problem: str) -> float:
        """Weight of the rule `action(action, problem)`; KeyError if there is none."""
        return self.weights[(action, problem)]

    def updated(self, changes: Mapping[tuple[str, str], float]) -> "RuleWeights":
        """A copy with the weights of `changes` replaced (the rules must exist)."""
        unknown = [key for key in changes if key not in self.weights]
        if unknown:
            raise ConfigurationError(f"no learnable rule for {unknown[0]!r}; "
                                     f"known rules: {sorted(self.weights)}")
        merged = dict(self.weights)
        merged.update(changes)
        return RuleWeights(merged)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [{"action": a, "problem": p, "weight": w}
                          for (a, p), w in self.weights.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RuleWeights":
        try:
            rules = data["rules"]
            return cls({(str(r["action"]), str(r["problem"])): r["weight"] for r in rules})
        except (KeyError, TypeError) as err:
            raise ConfigurationError(
                "rule weights must look like {'rules': [{'action': ..., 'problem': ..., "
                f"'weight': ...}}, ...]}}, got {str(data)[:200]}") from err


def _check_action_name(name: object, what: str) -> None:
    if name not in ACTIONS:
        raise ConfigurationError(f"{what}: unknown action {name!r}, expected one of {', '.join(ACTIONS)}")


def _check_problem_name(name: object, what: str) -> None:
    if name not in PROBLEMS:
        raise ConfigurationError(f"{what}: unknown problem {name!r}, expected one of {', '.join(PROBLEMS)}")


def _check_weight(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(f"{what} must be a number in (0, 1), got {value!r}")
    weight = float(value)
    if not (0.0 < weight < 1.0):
        raise ConfigurationError(f"{what} must lie strictly between 0 and 1, got {weight!r}")
    return weight


# ---------------------------------------------------------------------------------------
# History -> statistics
# ---------------------------------------------------------------------------------------

def validate_history(history: object, num_classes: object) -> dict[str, np.ndarray]:
    """Check a Keras history and return its four curves as float arrays (None -> NaN).

    Raises ConfigurationError naming the fault: not a dict, a missing key, an empty or
    non-list curve, curves of different lengths, a non-number, an accuracy outside [0, 1],
    or a number of classes that is not an integer >= 2. Other keys are ignored.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or int(num_classes) < 2:
        raise ConfigurationError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(history, Mapping):
        raise ConfigurationError(
            f"the history must be a dict of per-epoch lists ({', '.join(HISTORY_KEYS)}), "
            f"got {type(history).__name__}")
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise ConfigurationError(
            f"the history lacks {', '.join(repr(k) for k in missing)}: expected the keys "
            f"{', '.join(HISTORY_KEYS)} (Keras History.history with validation data)")
    curves: dict[str, np.ndarray] = {}
    for key in HISTORY_KEYS:
        values = history[key]
        if isinstance(values, np.ndarray):
            values = values.tolist()
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ConfigurationError(
                f"history[{key!r}] must be a list of per-epoch numbers, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise ConfigurationError(f"history[{key!r}] is empty: expected one number per epoch")
        numbers_out = []
        for epoch, value in enumerate(values):
            if value is None:  # JSON null: how TrainingResult stores NaN
                numbers_out.append(math.nan)
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigurationError(
                    f"history[{key!r}][{epoch}] must be a number, got {value!r}")
            number = float(value)
            if key in _ACCURACY_KEYS and math.isfinite(number) and not 0.0 <= number <= 1.0:
                raise ConfigurationError(
                    f"history[{key!r}][{epoch}] must be an accuracy in [0, 1], got {number!r}")
            numbers_out.append(number)
        curves[key] = np.asarray(numbers_out, dtype=float)
    lengths = {key: len(curve) for key, curve in curves.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{key} has {n}" for key, n in lengths.items())
        raise ConfigurationError(f"the history lists differ in length ({detail} epochs): "
                                 f"expected one value per epoch in each")
    return curves


def history_statistics(curves: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The `history_stat/2` numbers of one validated history (see diagnosis.pl section 2)."""
    loss, val_loss = curves[LOSS], curves[VAL_LOSS]
    epochs = len(loss)
    stats: dict[str, float] = {"epochs": epochs}

    window = max(1, min(FINAL_WINDOW_EPOCHS, epochs // 3))
    for key, name in ((ACCURACY, "final_train_accuracy"), (VAL_ACCURACY, "final_val_accuracy"),
                      (LOSS, "final_train_loss"), (VAL_LOSS, "final_val_loss")):
        tail = curves[key][-window:]
        tail = tail[np.isfinite(tail)]
        if tail.size:
            stats[name] = float(tail.mean())

    non_finite = ~np.isfinite(loss) | ~np.isfinite(val_loss)
    stats["non_finite_loss_epochs"] = int(non_finite.sum())
    if non_finite.any():
        stats["first_non_finite_loss_epoch"] = int(np.argmax(non_finite)) + 1

    # The training-loss curve up to its first NaN/inf value.
    finite = np.isfinite(loss)
    length = epochs if finite.all() else int(np.argmin(finite))
    curve = loss[:length]
    stats["train_loss_curve_epochs"] = length
    if length >= 2:
        steps = np.diff(curve)
        n_steps = len(steps)
        x = np.arange(length, dtype=float)
        chord = curve[0] + (curve[-1] - curve[0]) * x / n_steps
        below_chord = chord - curve
        stats.update({
            "first_train_loss": float(curve[0]),
            "last_train_loss": float(curve[-1]),
            "peak_train_loss": float(curve.max()),
            "train_loss_steps": n_steps,
            "train_loss_up_steps": int((steps > 0).sum()),
            "train_loss_down_steps": int((steps < 0).sum()),
            "train_loss_rise_total": float(steps[steps > 0].sum()),
            "train_loss_fall_total": float(-steps[steps < 0].sum()),
            "train_loss_chord_area": float(((below_chord[1:] + below_chord[:-1]) / 2).sum()),
            "train_loss_late_drop": float(np.interp(2 * n_steps / 3, x, curve) - curve[-1]),
        })
    return {name: value for name, value in stats.items()
            if isinstance(value, int) or math.isfinite(value)}


def _history_facts(stats: Mapping[str, float], num_classes: int) -> list[Term]:
    facts = [Term("num_classes", Constant(int(num_classes)))]
    for name, value in stats.items():
        facts.append(Term("history_stat", Term(name), Constant(value)))
    return facts


# ---------------------------------------------------------------------------------------
# Reading and checking the ProbLog files
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    """One `action/2` clause of the rules file; `initial` is None for a fixed weight."""

    action: str
    problem: str
    initial: float | None
    clause: Any


def _problog_message(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


def _read_program(path: Path, role: str) -> tuple[str, list[Any]]:
    """Text and clauses of a .pl file, without query/evidence clauses; RulesError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RulesError(f"{role} file {path} cannot be read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise RulesError(f"{role} file {path} is not UTF-8 text: {err}") from err
    try:
        clauses = list(PrologString(text))
    except ProbLogError as err:
        raise RulesError(f"{role} file {path} is malformed: ProbLog says: "
                         f"{_problog_message(err)}") from err
    kept = []
    for clause in clauses:
        head = clause if isinstance(clause, Term) and not isinstance(clause, Clause) else None
        if head is not None and head.functor in ("query", "evidence", "observe"):
            continue
        kept.append(clause)
    return text, kept


def _heads(clause: Any) -> list[Term]:
    if isinstance(clause, AnnotatedDisjunction):
        return list(clause.heads)
    if isinstance(clause, Clause):
        return [clause.head]
    return [clause]


def _subterms(term: Any) -> Iterator[Term]:
    """Every compound term inside `term` (bodies, lists, arguments), depth first."""
    stack = [term]
    while stack:
        current = stack.pop()
        if isinstance(current, Clause):
            stack.extend([current.head, current.body])
            continue
        if isinstance(current, AnnotatedDisjunction):
            stack.extend(current.heads)
            if current.body is not None:
                stack.append(current.body)
            continue
        if isinstance(current, Term) and not isinstance(current, (Var, Constant)):
            yield current
            stack.extend(current.args)


def _atom_name(term: Any) -> str | None:
    """The name of a plain atom (`overfitting`), None for a variable or anything else."""
    if isinstance(term, Term) and not isinstance(term, (Var, Constant)) and term.arity == 0:
        return str(term.functor)
    return None


def _check_vocabulary(clauses: list[Any], path: Path, role: str) -> None:
    """Every problem(P), action(A, P) and cause(P, _) names vocabulary atoms (or variables)."""
    for clause in clauses:
        for term in _subterms(clause):
            if term.functor == "problem" and term.arity == 1:
                names = [("problem", term.args[0])]
            elif term.functor == "cause" and term.arity == 2:
                names = [("problem", term.args[0])]
            elif term.functor == "action" and term.arity == 2:
                names = [("action", term.args[0]), ("problem", term.args[1])]
            else:
                continue
            for kind, arg in names:
                if isinstance(arg, Var):
                    continue
                name = _atom_name(arg)
                known = PROBLEMS if kind == "problem" else ACTIONS
                if name not in known:
                    raise RulesError(
                        f"{role} file {path}: {term} names the unknown {kind} {arg}; "
                        f"expected one of {', '.join(known)} (sdt/vocabulary.py)")


def _check_diagnosis(clauses: list[Any], path: Path) -> None:
    role = "diagnosis"
    _check_vocabulary(clauses, path, role)
    defines_problem = False
    for clause in clauses:
        for head in _heads(clause):
            if head.functor == "problem" and head.arity == 1:
                defines_problem = True
            if head.functor == "action" and head.arity == 2:
                raise RulesError(f"diagnosis file {path} defines {head}: actions belong in the "
                                 f"tuning rules file, the diagnosis only defines problem/1")
            if head.probability is not None and head.probability.functor == "t":
                raise RulesError(f"diagnosis file {path}: {head} has a learnable weight; only the "
                                 f"action/2 rules of the tuning rules file are learned")
    if not defines_problem:
        raise RulesError(f"diagnosis file {path} defines no problem/1 clause: it must derive "
                         f"problem(P) for the problems it diagnoses")
    _check_names(clauses, path)


def _check_names(clauses: list[Any], path: Path) -> None:
    """Statistics, measures and thresholds named in the diagnosis exist (typos fail silently)."""
    heads = [head for clause in clauses for head in _heads(clause)]

    def defined(functor: str) -> set[str] | None:
        names = set()
        for head in heads:
            if head.functor == functor and head.arity == 2:
                name = _atom_name(head.args[0])
                if name is None:
                    return None  # defined for any name: nothing to check
                names.add(name)
        return names

    for term in (t for clause in clauses for t in _subterms(clause)):
        if term.functor == "history_stat" and term.arity == 2:
            name = _atom_name(term.args[0])
            if name is not None and name not in HISTORY_STATS:
                raise RulesError(f"diagnosis file {path}: {term} names a statistic that "
                                 f"sdt/symbolic.py does not measure; known: {', '.join(HISTORY_STATS)}")
    measures, thresholds = defined("measure"), defined("threshold")
    for head in heads:
        if head.functor != "cause" or head.arity != 2:
            continue
        for condition in term2list(head.args[1], False):
            if not (isinstance(condition, Term) and condition.functor in _CONDITION_SYMBOLS
                    and condition.arity == 2):
                continue
            measure, threshold = (_atom_name(arg) for arg in condition.args)
            if measures is not None and measure is not None \
                    and measure not in measures | set(HISTORY_STATS):
                raise RulesError(f"diagnosis file {path}: {head} compares the measure {measure}, "
                                 f"which no measure/2 clause defines")
            if thresholds is not None and threshold is not None and threshold not in thresholds:
                raise RulesError(f"diagnosis file {path}: {head} compares with the threshold "
                                 f"{threshold}, which no threshold/2 clause defines")


def _parse_rules(clauses: list[Any], path: Path) -> list[_Rule]:
    role = "rules"
    _check_vocabulary(clauses, path, role)
    rules: list[_Rule] = []
    seen: set[tuple[str, str]] = set()
    for clause in clauses:
        if isinstance(clause, AnnotatedDisjunction):
            raise RulesError(f"rules file {path}: annotated disjunctions are not supported "
                             f"({clause}); write one rule per action")
        head = _heads(clause)[0]
        learnable = head.probability is not None and head.probability.functor == "t"
        if head.functor == "problem" and head.arity == 1:
            raise RulesError(f"rules file {path} defines {head}: problems are decided by the "
                             f"diagnosis file, the rules only map them to action/2")
        if head.functor != "action" or head.arity != 2:
            if learnable:
                raise RulesError(f"rules file {path}: {head} has a learnable weight; only "
                                 f"action(Action, Problem) rules can be learned")
            continue
        action, problem = (_atom_name(arg) for arg in head.args)
        if action is None or problem is None:
            raise RulesError(f"rules file {path}: the rule head {head} must name its action "
                             f"and problem, e.g. action(decr_lr, underfitting)")
        initial: float | None = None
        if learnable:
            try:
                (start,) = head.probability.args
                initial = float(start)
            except (ValueError, TypeError, ArithmeticError, ProbLogError) as err:
                raise RulesError(f"rules file {path}: {head} needs an initial weight, "
                                 f"e.g. t(0.5)::action(...)") from err
            if not 0.0 < initial < 1.0:
                raise RulesError(f"rules file {path}: the initial weight of {head} must lie "
                                 f"strictly between 0 and 1 (a rule at 0 or 1 cannot learn), "
                                 f"got {initial}")
            if (action, problem) in seen:
                raise RulesError(f"rules file {path}: two learnable rules for "
                                 f"action({action}, {problem}); keep one rule per pair")
            seen.add((action, problem))
        rules.append(_Rule(action, problem, initial, clause))
    if not seen:
        raise RulesError(f"rules file {path} has no learnable rule: write the rules as "
                         f"t(p)::action(Action, Problem) :- problem(Problem).")
    return rules


def _with_probability(clause: Any, probability: float) -> Any:
    if isinstance(clause, Clause):
        return Clause(clause.head.with_probability(Constant(probability)), clause.body)
    return clause.with_probability(Constant(probability))


# ---------------------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------------------

# How to say a measure in words; {value} is the measure itself, other names are measures.
_MEASURE_PHRASES = {
    "train_val_accuracy_gap":
        "training accuracy {final_train_accuracy} vs validation {final_val_accuracy}, gap {value}",
    "train_val_loss_gap":
        "validation loss {final_val_loss} vs training loss {final_train_loss}, gap {value}",
    "train_accuracy_above_chance":
        "final training accuracy {final_train_accuracy} got {value} of the way from chance "
        "({chance_accuracy}) to 1",
    "train_loss_over_chance_loss":
        "final training loss {final_train_loss} is {value} times the chance-level loss "
        "ln(K) ({chance_loss})",
    "train_loss_peak_over_chance_loss":
        "peak training loss {peak_train_loss} is {value} times ln(K) ({chance_loss})",
    "rising_train_loss_step_share":
        "the training loss rose in {train_loss_up_steps} of {train_loss_steps} "
        "epoch-to-epoch steps, share {value}",
    "train_loss_up_down_balance":
        "{train_loss_up_steps} rising vs {train_loss_down_steps} falling steps, balance {value}",
    "train_loss_rise_share":
        "rises totalling {train_loss_rise_total} against falls of {train_loss_fall_total}, "
        "rise share {value}",
    "train_loss_mean_rise_over_chance_loss":
        "the training loss jumped back up by {value} times ln(K) ({chance_loss}) on average",
    "train_loss_drop_over_chance_loss":
        "the training loss went from {first_train_loss} to {last_train_loss}, "
        "a fall of {value} times ln(K) ({chance_loss})",
    "train_loss_area_ratio":
        "area between the training-loss curve and its chord {value} of the triangle under "
        "the chord",
    "train_loss_late_drop_share": "the last third of the epochs brought {value} of the fall",
    "non_finite_loss_epochs":
        "{value} epoch(s) with a NaN or infinite loss, the first at epoch "
        "{first_non_finite_loss_epoch}",
    "train_loss_curve_epochs": "{value} epochs of finite training loss",
    "epochs": "{value} epochs",
}

_CONDITION_SYMBOLS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<="}

# Which measures a phrase quotes besides its own value.
_PHRASE_FIELDS = {
    name: [part.split("}")[0] for part in phrase.split("{")[1:] if part.split("}")[0] != "value"]
    for name, phrase in _MEASURE_PHRASES.items()
}


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}"


def _explain_condition(condition: Term, measures: Mapping[str, float],
                       thresholds: Mapping[str, float], quoted: dict[str, float]) -> str:
    kind = str(condition.functor)
    if kind not in _CONDITION_SYMBOLS or condition.arity != 2:
        return str(condition)
    measure, threshold = (str(arg) for arg in condition.args)
    value = measures.get(measure)
    limit = thresholds.get(threshold)
    if value is None or limit is None:
        return str(condition)
    quoted[measure] = value
    quoted[threshold] = limit
    phrase = _MEASURE_PHRASES.get(measure)
    fields = _PHRASE_FIELDS.get(measure, [])
    if phrase is not None and all(name in measures for name in fields):
        for name in fields:
            quoted[name] = measures[name]
        text = phrase.format(value=_fmt(value), **{name: _fmt(measures[name]) for name in fields})
    else:
        text = f"{measure} {_fmt(value)}"
    return f"{text} {_CONDITION_SYMBOLS[kind]} threshold {_fmt(limit)} ({threshold})"


# Conditions on the length of the history only gate the curve tests; the explanation
# leaves them out (the notes say when a history was too short).
_GATE_MEASURES = frozenset({"epochs", "train_loss_curve_epochs"})


def _without_gates(conditions: list[Term]) -> list[Term]:
    kept = [c for c in conditions
            if not (c.arity == 2 and str(c.args[0]) in _GATE_MEASURES)]
    return kept or conditions


def _note_text(note: str, measures: Mapping[str, float], thresholds: Mapping[str, float]) -> str:
    epochs = measures.get("epochs")
    if note == "short_history" and epochs is not None:
        needed = thresholds.get("min_epochs_for_shape_tests")
        return (f"short_history: only {_fmt(epochs)} epoch(s); the curve-shape tests "
                f"(increasing_loss, fluctuating_loss, low_lr, high_lr from the curve shape) "
                f"need at least {_fmt(needed) if needed is not None else 'more'} and were "
                f"not applied; only the final-value tests (overfitting, underfitting, "
                f"divergence) were")
    if note == "no_fluctuation_test" and epochs is not None:
        needed = thresholds.get("min_epochs_for_fluctuation_test")
        return (f"no_fluctuation_test: {_fmt(epochs)} epochs; the fluctuating_loss test needs "
                f"at least {_fmt(needed) if needed is not None else 'more'} and was not applied")
    if note == "non_finite_loss" and "non_finite_loss_epochs" in measures:
        first = measures.get("first_non_finite_loss_epoch")
        curve = measures.get("train_loss_curve_epochs")
        text = (f"non_finite_loss: the loss was NaN or infinite in "
                f"{_fmt(measures['non_finite_loss_epochs'])} epoch(s)")
        if first is not None:
            text += f", first at epoch {_fmt(first)}"
        if curve is not None:
            text += f"; the curve tests only saw the {_fmt(curve)} epoch(s) of finite training loss before"
        return text
    return note


# ---------------------------------------------------------------------------------------
# The symbolic block
# ---------------------------------------------------------------------------------------

_QUERIES = (
    Term("problem", Var("P")),
    Term("because", Var("P"), Var("C")),
    Term("action", Var("A"), Var("P")),
    Term("measure", Var("M"), Var("V")),
    Term("threshold", Var("T"), Var("V")),
    Term("note", Var("N")),
)


def _probe_history() -> dict[str, list[float]]:
    """A 12-epoch history with rises and falls, so every measure clause runs once."""
    loss = [2.2, 1.6, 1.3, 1.15, 1.2, 1.0, 0.95, 0.97, 0.9, 0.88, 0.87, 0.86]
    acc = [0.2, 0.4, 0.5, 0.58, 0.57, 0.64, 0.66, 0.65, 0.68, 0.69, 0.7, 0.7]
    return {LOSS: loss, ACCURACY: acc,
            VAL_LOSS: [v + 0.1 for v in loss], VAL_ACCURACY: [a - 0.03 for a in acc]}


class SymbolicBlock:
    """Diagnosis (diagnosis.pl) plus tuning rules (tuning_rules.pl), evaluated by ProbLog.

    Both files default to the shipped ones next to the repository root (located from this
    module, never from the working directory). They are read, checked and test-evaluated
    once, here: a malformed file raises RulesError naming the file and quoting ProbLog.
    """

    def __init__(self, diagnosis_path: str | Path | None = None,
                 rules_path: str | Path | None = None) -> None:
        self.diagnosis_path = Path(diagnosis_path) if diagnosis_path is not None \
            else DEFAULT_DIAGNOSIS_PATH
        self.rules_path = Path(rules_path) if rules_path is not None else DEFAULT_RULES_PATH
        diagnosis_text, self._diagnosis_clauses = _read_program(self.diagnosis_path, "diagnosis")
        _check_diagnosis(self._diagnosis_clauses, self.diagnosis_path)
        _, rules_clauses = _read_program(self.rules_path, "rules")
        rules = _parse_rules(rules_clauses, self.rules_path)
        learnable = {id(r.clause): (r.action, r.problem) for r in rules if r.initial is not None}
        # The rules program in file order; learnable clauses carry their (action, problem).
        self._rules_clauses = [(clause, learnable.get(id(clause))) for clause in rules_clauses]
        self._initial = RuleWeights({(r.action, r.problem): r.initial
                                     for r in rules if r.initial is not None})
        self._probe(diagnosis_text)

    # Public API ---------------------------------------------------------------------
    def initial_weights(self) -> RuleWeights:
        """The weights of the `t(p)` annotations of the rules file."""
        return self._initial

    def diagnose(self, history: Mapping[str, Any], num_classes: int,
                 weights: RuleWeights) -> Diagnosis:
        """Diagnose one training at the given rule weights (see the module docstring).

        Raises ConfigurationError for a malformed history, a bad number of classes or
        weights that do not match the learnable rules; RulesError if ProbLog fails on the
        joined program.
        """
        curves = validate_history(history, num_classes)
        self._check_weights(weights)
        stats = history_statistics(curves)
        try:
            results = self._evaluate(self._program(stats, int(num_classes), weights))
        except ProbLogError as err:
            raise RulesError(
                f"ProbLog failed on the diagnosis file {self.diagnosis_path} joined with the "
                f"rules file {self.rules_path}: {_problog_message(err)}") from err
        return self._diagnosis_from(results)

    # Internals ----------------------------------------------------------------------
    def _check_weights(self, weights: RuleWeights) -> None:
        if not isinstance(weights, RuleWeights):
            raise ConfigurationError(f"weights must be RuleWeights, got {type(weights).__name__}")
        expected, given = set(self._initial), set(weights)
        if expected != given:
            missing = sorted(expected - given, key=_rule_order)
            extra = sorted(given - expected, key=_rule_order)
            raise ConfigurationError(
                f"the rule weights do not match the learnable rules of {self.rules_path}: "
                f"missing {missing or 'none'}, unknown {extra or 'none'}")

    def _program(self, stats: Mapping[str, float], num_classes: int,
                 weights: RuleWeights) -> SimpleProgram:
        program = SimpleProgram()
        for fact in _history_facts(stats, num_classes):
            program.add_clause(fact)
        for clause in self._diagnosis_clauses:
            program.add_clause(clause)
        for clause, key in self._rules_clauses:
            program.add_clause(clause if key is None else _with_probability(clause, weights[key]))
        for query in _QUERIES:
            program.add_clause(Term("query", query))
        return program

    @staticmethod
    def _evaluate(program: SimpleProgram) -> dict[Term, float]:
        return get_evaluatable().create_from(program).evaluate()

    def _probe(self, diagnosis_text: str) -> None:
        """Evaluate both files once on a probe history, so errors surface at construction."""
        curves = validate_history(_probe_history(), 10)
        stats = history_statistics(curves)
        # The diagnosis alone, as text, so ProbLog's message carries line numbers of the file.
        facts = "".join(f"{fact}.\n" for fact in _history_facts(stats, 10))
        queries = "".join(f"query({query}).\n" for query in _QUERIES
                          if query.functor not in ("action",))
        try:
            get_evaluatable().create_from(
                PrologString(diagnosis_text + "\n" + facts + queries)).evaluate()
        except ProbLogError as err:
            raise RulesError(f"diagnosis file {self.diagnosis_path} is malformed: ProbLog says: "
                             f"{_problog_message(err)}") from err
        except RecursionError as err:
            raise RulesError(f"diagnosis file {self.diagnosis_path} recurses without end") from err
        try:
            self._evaluate(self._program(stats, 10, self._initial))
        except ProbLogError as err:
            raise RulesError(f"rules file {self.rules_path} is malformed (joined with "
                             f"{self.diagnosis_path}): ProbLog says: "
                             f"{_problog_message(err)}") from err
        except RecursionError as err:
            raise RulesError(f"rules file {self.rules_path} recurses without end") from err

    def _diagnosis_from(self, results: Mapping[Term, float]) -> Diagnosis:
        problems: dict[str, float] = {}
        causes: dict[str, list[list[Term]]] = {}
        actions: list[CandidateAction] = []
        measures: dict[str, float] = {}
        thresholds: dict[str, float] = {}
        notes: list[str] = []
        for term, probability in results.items():
            probability = float(probability)
            functor = term.functor
            if functor == "measure" and probability > 0:
                value = _number(term.args[1])
                if value is not None:
                    measures[str(term.args[0])] = value
            elif functor == "threshold" and probability > 0:
                value = _number(term.args[1])
                if value is not None:
                    thresholds[str(term.args[0])] = value
            elif functor == "problem" and probability > 0:
                problems[str(term.args[0])] = probability
            elif functor == "because" and probability > 0:
                causes.setdefault(str(term.args[0]), []).append(term2list(term.args[1], False))
            elif functor == "action" and probability > 0:
                actions.append(CandidateAction(str(term.args[0]), str(term.args[1]), probability))
            elif functor == "note" and probability > 0:
                notes.append(str(term.args[0]))

        findings = []
        for name in sorted(problems, key=_problem_order):
            quoted: dict[str, float] = {}
            reasons = [" and ".join(_explain_condition(c, measures, thresholds, quoted)
                                    for c in _without_gates(conditions))
                       for conditions in causes.get(name, [])]
            if reasons:
                explanation = f"{name}: " + "; ".join(reasons)
            else:
                explanation = (f"{name}: derived by a problem/1 clause of {self.diagnosis_path.name} "
                               f"that gives no cause/2 conditions")
            findings.append(ProblemFinding(name, problems[name], explanation, quoted))
        actions.sort(key=lambda a: (_problem_order(a.problem), -a.probability, _action_order(a.name)))
        note_order = ("short_history", "no_fluctuation_test", "non_finite_loss")
        notes.sort(key=lambda n: (note_order.index(n) if n in note_order else len(note_order), n))
        return Diagnosis(
            problems=tuple(findings),
            actions=tuple(actions),
            measures=dict(sorted(measures.items())),
            notes=tuple(_note_text(n, measures, thresholds) for n in notes),
            thresholds=dict(sorted(thresholds.items())),
        )


def _number(term: Any) -> float | None:
    try:
        value = float(term)
    except (TypeError, ValueError, ArithmeticError, ProbLogError):
        return None
    return value if math.isfinite(value) else None


def _problem_order(name: str) -> tuple[int, str]:
    return (PROBLEMS.index(name) if name in PROBLEMS else len(PROBLEMS), name)


def _action_order(name: str) -> tuple[int, str]:
    return (ACTIONS.index(name) if name in ACTIONS else len(ACTIONS), name)


# ---------------------------------------------------------------------------------------
# Action choice
# ---------------------------------------------------------------------------------------

# Actions that undo each other; never both in one iteration.
OPPOSITE_ACTIONS = {INC_LR: DECR_LR, DECR_LR: INC_LR}


def choose_actions(diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                   rng: np.random.Generator) -> list[ChosenAction]:
    """For each diagnosed problem (vocabulary order), its most probable applicable action.

    Actions named in `not_applicable` (e.g. reg_l2 once L2 is on, decr_lr at the lower
    bound) are skipped. Problems choose in order of their best action's probability (then
    vocabulary order); an action whose opposite (OPPOSITE_ACTIONS) was already chosen is
    skipped. Ties are broken by `rng` (the run's seeded generator), which is drawn from only
    when there is a tie. An action chosen for two problems is returned once, with the first
    problem. A problem whose actions are all inapplicable gets none.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigurationError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    unknown = sorted(set(not_applicable) - set(ACTIONS))
    if unknown:
        raise ConfigurationError(f"not_applicable names unknown action(s) {unknown}; "
                                 f"expected names from {', '.join(ACTIONS)}")
    chosen: list[ChosenAction] = []
    taken: set[str] = set()

    def best_probability(problem: str) -> float:
        return max((a.probability for a in diagnosis.actions
                    if a.problem == problem and a.name not in not_applicable), default=0.0)

    # The most confident problem chooses first, so that when two problems want opposite
    # actions (inc_lr for low_lr, decr_lr for underfitting) the more probable one is applied
    # and the other problem falls back to its best action that does not undo it.
    for problem in sorted(diagnosis.problem_names(), key=lambda p: (-best_probability(p), _problem_order(p))):
        blocked = {OPPOSITE_ACTIONS[name] for name in taken if name in OPPOSITE_ACTIONS}
        candidates = [a for a in diagnosis.actions
                      if a.problem == problem and a.name not in not_applicable and a.probability > 0
                      and a.name not in blocked]
        if not candidates:
            continue
        best = max(a.probability for a in candidates)
        tied = sorted((a for a in candidates if best - a.probability <= _TIE_TOLERANCE),
                      key=lambda a: _action_order(a.name))
        pick = tied[int(rng.integers(len(tied)))] if len(tied) > 1 else tied[0]
        if pick.name in taken:
            continue
        taken.add(pick.name)
        chosen.append(ChosenAction(pick.name, pick.problem, pick.probability))
    return chosen


__all__ = [
    "DEFAULT_DIAGNOSIS_PATH", "DEFAULT_RULES_PATH", "HISTORY_STATS",
    "CandidateAction", "ChosenAction", "Diagnosis", "ProblemFinding", "RuleWeights",
    "SymbolicBlock", "choose_actions", "history_statistics", "validate_history",
]
