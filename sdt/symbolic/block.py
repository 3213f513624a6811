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
2. `decide_action` takes the most probable applicable candidate (`choose_actions` ranks one
   per problem, never two that the rules file says exclude each other:
   `SymbolicBlock.exclusions`) and applies it with its probability, or declines it.

While a training runs (issue 14), `SymbolicBlock.stop_reason` asks the same diagnosis file,
after every epoch, whether the history so far shows a problem that no more epochs can fix
(`stop_training/1` of diagnosis.pl): a `StopDecision` with the reason and its explanation, or
None. Only the diagnosis file is evaluated (tens of milliseconds); a diagnosis file without
stop rules never stops anything.

Weights are learned elsewhere (sdt/symbolic/rule_learning.py) and actions are applied
elsewhere (sdt/actions.py). Python only measures; every threshold and rule lives in the .pl
files, and so do the wording of the measures (`phrase/2` of diagnosis.pl) and the actions
that exclude each other (`excludes/2` of tuning_rules.pl). Users may replace both files
(`SymbolicBlock(diagnosis_path=..., rules_path=...)`). Both are validated when the block is
built: a malformed file raises `RulesError` naming the file and quoting ProbLog. `query/1`
and `evidence/1,2` clauses in either file are ignored: the block asks its own questions.
This module never imports Keras or TensorFlow.

The parts live in their own modules, and this one re-exports their public names:
records.py (the records), statistics.py (history -> `history_stat` facts), programs.py
(reading and checking the .pl files), explanations.py (the wording), policy.py
(`choose_actions`, `decide_action`). This module holds the ProbLog evaluation: `SymbolicBlock`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import problog
from problog import get_evaluatable
from problog.errors import ProbLogError
from problog.logic import Term, Var, term2list
from problog.program import PrologString, SimpleProgram

from sdt.core.errors import ConfigurationError, RulesError
from sdt.core.vocabulary import ACCURACY, LOSS, STOP_REASONS, VAL_ACCURACY, VAL_LOSS
from sdt.symbolic.explanations import MeasurePhrases, explain_causes, note_text
from sdt.symbolic.policy import choose_actions, decide_action
from sdt.symbolic.programs import (
    DEFAULT_DIAGNOSIS_PATH, DEFAULT_RULES_PATH, PROGRAM_DIR, check_diagnosis, defines, parse_rules,
    problog_message, read_exclusions, read_phrases, read_program, read_slow_optimizers, read_start_values, with_probability,
)
from sdt.symbolic.records import (
    ActionExclusions, CandidateAction, ChosenAction, Diagnosis, ProblemFinding, RuleWeights, StopDecision,
    action_order, problem_order, rule_order,
)
from sdt.symbolic.statistics import (
    FINAL_WINDOW_EPOCHS, HISTORY_STATS, epoch_statistics, history_facts, history_statistics, hyperparameter_facts,
    validate_history,
)

_QUERIES = (
    Term("problem", Var("P")),
    Term("because", Var("P"), Var("C")),
    Term("action", Var("A"), Var("P")),
    Term("measure", Var("M"), Var("V")),
    Term("threshold", Var("T"), Var("V")),
    Term("note", Var("N")),
)

# What `stop_reason` asks the diagnosis file (section 6 of diagnosis.pl), and the threshold below
# which a weighted stop rule does not stop.
_STOP_QUERIES = (
    Term("stop_training", Var("R")),
    Term("stop_because", Var("R"), Var("C")),
    Term("measure", Var("M"), Var("V")),
    Term("threshold", Var("T"), Var("V")),
)
MIN_STOP_PROBABILITY = "min_stop_probability"


# The values of the probe training's hyper-parameters, so that rules asking for them are evaluated
# at start-up too.
_PROBE_HYPERPARAMETERS = {"optimizer": "Adadelta", "learning_rate": 1e-3, "batch_size": 64}

# Seconds the start-up evaluation of the two files may take (it takes well under one on the
# shipped files): a file whose rules recurse without end is refused instead of hanging the run.
PROBE_SECONDS = 60.0


# After the first expiry the timer fires again every this many seconds until the block is left:
# Python drops an exception raised while it runs a garbage-collector callback ("Exception ignored
# in gc callback"; JAX installs one), and ProbLog's endless recursion allocates so much that the
# first expiry often lands there. A one-shot timer then let the recursion run on until the kernel
# killed the process for memory (seen as an xdist worker "node down" in CI).
_TIMER_REPEAT_SECONDS = 0.1

# The code an expiry may interrupt: ProbLog's and this package's. An expiry that lands anywhere
# else (a gc callback, a finaliser, the interpreter's unraisable-exception hook reporting an
# earlier drop) is skipped and the next one, a tenth of a second later, tried instead: raised
# there, the exception is dropped at best, and in CI one raised inside pytest's unraisable hook
# broke the hook itself and failed the test.
_INTERRUPTIBLE_ROOTS = (str(Path(problog.__file__).resolve().parent) + "/",
                        str(Path(__file__).resolve().parents[1]) + "/")


class _ProbeTimeout(BaseException):
    """The start-up evaluation ran past its time limit. A BaseException, like KeyboardInterrupt,
    so that no `except Exception` on the way (ProbLog's own or a callback's) can swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float, interruptible: tuple[str, ...] = _INTERRUPTIBLE_ROOTS):
    """Raise _ProbeTimeout in the block after `seconds`, and again every _TIMER_REPEAT_SECONDS
    until it leaves the block, each time only if the code running then lies under one of the
    `interruptible` folders (a SIGALRM timer, so only on the main thread of a POSIX process;
    elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    armed = [True]

    def expire(signum, frame):
        if armed[0] and _interruptible(frame, interruptible):
            raise _ProbeTimeout()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, _TIMER_REPEAT_SECONDS)
    try:
        yield
    finally:
        # Disarm before stopping the timer, and stop it even if a last expiry lands here: a
        # repeating timer left running would interrupt whatever the process does next.
        try:
            armed[0] = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _interruptible(frame, roots: tuple[str, ...]) -> bool:
    """Whether the interrupted frame runs code under one of the `roots` folders."""
    if frame is None:
        return False
    try:
        return str(Path(frame.f_code.co_filename).resolve()).startswith(roots)
    except (OSError, ValueError):
        return False


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
        diagnosis_text, self._diagnosis_clauses = read_program(self.diagnosis_path, "diagnosis")
        check_diagnosis(self._diagnosis_clauses, self.diagnosis_path)
        _, rules_clauses = read_program(self.rules_path, "rules")
        rules = parse_rules(rules_clauses, self.rules_path)
        learnable = {id(r.clause): (r.action, r.problem) for r in rules if r.initial is not None}
        # The rules program in file order; learnable clauses carry their (action, problem).
        self._rules_clauses = [(clause, learnable.get(id(clause))) for clause in rules_clauses]
        self._initial = RuleWeights({(r.action, r.problem): r.initial
                                     for r in rules if r.initial is not None})
        # Whether the diagnosis file has stop rules (stop_training/1, issue 14); a copy from
        # before them never stops a training.
        self.has_stop_rules = defines(self._diagnosis_clauses, "stop_training", 1)
        try:
            with _time_limit(PROBE_SECONDS):
                self._probe(diagnosis_text)
        except _ProbeTimeout:
            raise RulesError(f"{self.diagnosis_path} and {self.rules_path} did not answer a test query within "
                             f"{PROBE_SECONDS:g} s: a rule that recurses without end?") from None
        # Declarations beside the diagnosis: how to word each measure, which actions exclude
        # each other (absent from a file: plain wording, no exclusions).
        self.phrases: MeasurePhrases = read_phrases(self._diagnosis_clauses, self.diagnosis_path)
        self.exclusions: ActionExclusions = read_exclusions(rules_clauses, self.rules_path)
        # The optimisers that need a learning rate near 1 (small_step_at_small_rates/1 of the
        # rules file): under prior guidance, avoided at small rates before any training.
        self.slow_optimizers: frozenset[str] = read_slow_optimizers(rules_clauses, self.rules_path)
        # Where a practitioner starts (start_with/2 of the rules file): under prior guidance the
        # first training is drawn near these values.
        self.start_values: tuple[tuple[str, str | float], ...] = read_start_values(rules_clauses, self.rules_path)

    # Public API ---------------------------------------------------------------------
    def initial_weights(self) -> RuleWeights:
        """The weights of the `t(p)` annotations of the rules file."""
        return self._initial

    def choose_actions(self, diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                       rng: Any) -> list[ChosenAction]:
        """`choose_actions` with the exclusions of this block's rules file."""
        return choose_actions(diagnosis, not_applicable, rng, self.exclusions)

    def decide_action(self, diagnosis: Diagnosis, not_applicable: set[str] | frozenset[str],
                      rng: Any) -> tuple[ChosenAction | None, tuple[str, str] | None]:
        """`decide_action` with the exclusions of this block's rules file."""
        return decide_action(diagnosis, not_applicable, rng, self.exclusions)

    def diagnose(self, history: Mapping[str, Any], num_classes: int,
                 weights: RuleWeights, hyperparameters: Mapping[str, Any] | None = None) -> Diagnosis:
        """Diagnose one training at the given rule weights (see the module docstring).

        `hyperparameters`, when known, are the values the training was trained with: the rules
        may ask them (`hyperparameter(optimizer, adadelta)`, statistics.hyperparameter_facts).

        Raises ConfigurationError for a malformed history, a bad number of classes or
        weights that do not match the learnable rules; RulesError if ProbLog fails on the
        joined program.
        """
        curves = validate_history(history, num_classes)
        self._check_weights(weights)
        stats = history_statistics(curves)
        try:
            results = self._evaluate(self._program(stats, int(num_classes), weights, epoch_statistics(curves),
                                                   hyperparameters))
        except ProbLogError as err:
            raise RulesError(
                f"ProbLog failed on the diagnosis file {self.diagnosis_path} joined with the "
                f"rules file {self.rules_path}: {problog_message(err)}") from err
        return self._diagnosis_from(results)

    def stop_reason(self, partial_history: Mapping[str, Any], num_classes: int,
                    epoch_budget: int | None = None) -> StopDecision | None:
        """Whether a training still running should stop now, and why (`stop_training/1`).

        `partial_history` is the Keras history of the epochs run so far (the keys `diagnose`
        reads); `epoch_budget`, when given, the epochs the training may run in all (the fact
        `history_stat(epoch_budget, N)`: stop rules may ask what the epochs left can achieve). Returns the StopDecision of the most probable reason whose probability reaches
        the file's `min_stop_probability` (on a tie, the first of STOP_REASONS), or None: keep
        training. None too when the diagnosis file has no stop rules. Raises like `diagnose`.
        """
        if not self.has_stop_rules:
            return None
        curves = validate_history(partial_history, num_classes)
        try:
            results = self._evaluate(self._stop_program(curves, int(num_classes), epoch_budget))
        except ProbLogError as err:
            raise RulesError(f"ProbLog failed on the stop rules of the diagnosis file "
                             f"{self.diagnosis_path}: {problog_message(err)}") from err
        return self._stop_decision_from(results, epochs=len(curves[LOSS]))

    # Internals ----------------------------------------------------------------------
    def _check_weights(self, weights: RuleWeights) -> None:
        if not isinstance(weights, RuleWeights):
            raise ConfigurationError(f"weights must be RuleWeights, got {type(weights).__name__}")
        expected, given = set(self._initial), set(weights)
        if expected != given:
            missing = sorted(expected - given, key=rule_order)
            extra = sorted(given - expected, key=rule_order)
            raise ConfigurationError(
                f"the rule weights do not match the learnable rules of {self.rules_path}: "
                f"missing {missing or 'none'}, unknown {extra or 'none'}")

    def _program(self, stats: Mapping[str, float], num_classes: int,
                 weights: RuleWeights, epochs: Mapping[int, Mapping[str, float]] | None = None,
                 hyperparameters: Mapping[str, Any] | None = None) -> SimpleProgram:
        program = SimpleProgram()
        for fact in history_facts(stats, num_classes, epochs) + hyperparameter_facts(hyperparameters):
            program.add_clause(fact)
        for clause in self._diagnosis_clauses:
            program.add_clause(clause)
        for clause, key in self._rules_clauses:
            program.add_clause(clause if key is None else with_probability(clause, weights[key]))
        for query in _QUERIES:
            program.add_clause(Term("query", query))
        return program

    def _stop_program(self, curves: Mapping[str, Any], num_classes: int,
                      epoch_budget: int | None = None) -> SimpleProgram:
        """The diagnosis file alone (the rules are not needed to stop) with one history's facts."""
        program = SimpleProgram()
        for fact in history_facts(history_statistics(curves), num_classes, epoch_statistics(curves),
                                  epoch_budget=epoch_budget):
            program.add_clause(fact)
        for clause in self._diagnosis_clauses:
            program.add_clause(clause)
        for query in _STOP_QUERIES:
            program.add_clause(Term("query", query))
        return program

    @staticmethod
    def _evaluate(program: SimpleProgram) -> dict[Term, float]:
        return get_evaluatable().create_from(program).evaluate()

    def _probe(self, diagnosis_text: str) -> None:
        """Evaluate both files once on a probe history, so errors surface at construction."""
        curves = validate_history(_probe_history(), 10)
        stats = history_statistics(curves)
        epochs = epoch_statistics(curves)
        # The diagnosis alone, as text, so ProbLog's message carries line numbers of the file.
        facts = "".join(f"{fact}.\n" for fact in history_facts(stats, 10, epochs))
        queries = "".join(f"query({query}).\n" for query in _QUERIES
                          if query.functor not in ("action",))
        try:
            get_evaluatable().create_from(
                PrologString(diagnosis_text + "\n" + facts + queries)).evaluate()
        except ProbLogError as err:
            raise RulesError(f"diagnosis file {self.diagnosis_path} is malformed: ProbLog says: "
                             f"{problog_message(err)}") from err
        except RecursionError as err:
            raise RulesError(f"diagnosis file {self.diagnosis_path} recurses without end") from err
        try:
            self._evaluate(self._program(stats, 10, self._initial, epochs, _PROBE_HYPERPARAMETERS))
        except ProbLogError as err:
            raise RulesError(f"rules file {self.rules_path} is malformed (joined with "
                             f"{self.diagnosis_path}): ProbLog says: "
                             f"{problog_message(err)}") from err
        except RecursionError as err:
            raise RulesError(f"rules file {self.rules_path} recurses without end") from err
        if self.has_stop_rules:
            try:
                results = self._evaluate(self._stop_program(curves, 10, epoch_budget=20))
            except ProbLogError as err:
                raise RulesError(f"diagnosis file {self.diagnosis_path}: ProbLog failed on its stop rules: "
                                 f"{problog_message(err)}") from err
            except RecursionError as err:
                raise RulesError(f"diagnosis file {self.diagnosis_path}: its stop rules recurse without end") from err
            if not any(term.functor == "threshold" and str(term.args[0]) == MIN_STOP_PROBABILITY
                       and probability > 0 for term, probability in results.items()):
                raise RulesError(f"diagnosis file {self.diagnosis_path} has stop rules (stop_training/1) but no "
                                 f"threshold({MIN_STOP_PROBABILITY}, P): the probability a stop reason "
                                 f"needs to stop a training")

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
        for name in sorted(problems, key=problem_order):
            quoted: dict[str, float] = {}
            reasons = explain_causes(causes.get(name, []), measures, thresholds, quoted, self.phrases)
            if reasons:
                explanation = f"{name}: " + "; ".join(reasons)
            else:
                explanation = (f"{name}: derived by a problem/1 clause of {self.diagnosis_path.name} "
                               f"that gives no cause/2 conditions")
            findings.append(ProblemFinding(name, problems[name], explanation, quoted))
        actions.sort(key=lambda a: (problem_order(a.problem), -a.probability, action_order(a.name)))
        note_order = ("short_history", "no_fluctuation_test", "non_finite_loss")
        notes.sort(key=lambda n: (note_order.index(n) if n in note_order else len(note_order), n))
        return Diagnosis(
            problems=tuple(findings),
            actions=tuple(actions),
            measures=dict(sorted(measures.items())),
            notes=tuple(note_text(n, measures, thresholds) for n in notes),
            thresholds=dict(sorted(thresholds.items())),
        )


    def _stop_decision_from(self, results: Mapping[Term, float], epochs: int) -> StopDecision | None:
        reasons: dict[str, float] = {}
        causes: dict[str, list[list[Term]]] = {}
        measures: dict[str, float] = {}
        thresholds: dict[str, float] = {}
        for term, probability in results.items():
            probability = float(probability)
            if probability <= 0:
                continue
            functor = term.functor
            if functor in ("measure", "threshold"):
                value = _number(term.args[1])
                if value is not None:
                    (measures if functor == "measure" else thresholds)[str(term.args[0])] = value
            elif functor == "stop_training":
                reasons[str(term.args[0])] = probability
            elif functor == "stop_because":
                causes.setdefault(str(term.args[0]), []).append(term2list(term.args[1], False))
        minimum = thresholds.get(MIN_STOP_PROBABILITY, math.inf)
        ranked = sorted((r for r, p in reasons.items() if p >= minimum),
                        key=lambda r: (-reasons[r], STOP_REASONS.index(r) if r in STOP_REASONS else len(STOP_REASONS)))
        if not ranked:
            return None
        reason = ranked[0]
        quoted: dict[str, float] = {}
        explanations = explain_causes(causes.get(reason, []), measures, thresholds, quoted, self.phrases)
        if explanations:
            explanation = f"{reason}: " + "; ".join(explanations)
        else:
            explanation = (f"{reason}: derived by a stop_training/1 clause of {self.diagnosis_path.name} "
                           f"that gives no stop_cause/2 conditions")
        return StopDecision(reason=reason, epoch=epochs, explanation=explanation,
                            probability=reasons[reason], measures=quoted)


def _number(term: Any) -> float | None:
    try:
        value = float(term)
    except (TypeError, ValueError, ArithmeticError, ProbLogError):
        return None
    return value if math.isfinite(value) else None


__all__ = [
    "DEFAULT_DIAGNOSIS_PATH", "DEFAULT_RULES_PATH", "FINAL_WINDOW_EPOCHS", "HISTORY_STATS",
    "PROGRAM_DIR",
    "ActionExclusions", "CandidateAction", "ChosenAction", "Diagnosis", "MeasurePhrases",
    "ProblemFinding", "RuleWeights", "StopDecision",
    "SymbolicBlock", "choose_actions", "decide_action", "history_statistics", "validate_history",
]
