"""Reading and checking the ProbLog programs: diagnosis.pl and tuning_rules.pl.

`read_program` loads a .pl file (dropping its query/evidence clauses); `check_diagnosis` and
`parse_rules` check what each file may and must define, so that a malformed or misspelt file
fails when the block is built with one RulesError naming the file (and quoting ProbLog), not
silently later. `read_phrases` and `read_exclusions` ask ProbLog for the declarations of a
file that are no part of the diagnosis itself: the wording of the measures (`phrase/2` of the
diagnosis file) and the actions never applied together (`excludes/2` of the rules file). A
file without them still works: measures are then said by name, and no action excludes
another. A malformed declaration raises one RulesError naming the file and the fault.
"""

from __future__ import annotations

import math

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from problog import get_evaluatable
from problog.errors import ProbLogError
from problog.logic import AnnotatedDisjunction, Clause, Constant, Term, Var, term2list
from problog.program import PrologString, SimpleProgram

from sdt.core.errors import RulesError
from sdt.core.vocabulary import ACTIONS, PROBLEMS, STOP_REASONS
from sdt.symbolic.explanations import CONDITION_SYMBOLS, MeasurePhrases, phrase_fields
from sdt.symbolic.records import ActionExclusions
from sdt.symbolic.statistics import EPOCH_STATS, HISTORY_STATS, TRAINING_STATS

# The shipped programs are package data beside this module (a checkout shows them at the top level
# too, as links): found from this file's location, never from the working directory.
PROGRAM_DIR = Path(__file__).resolve().parent
DEFAULT_DIAGNOSIS_PATH = PROGRAM_DIR / "diagnosis.pl"
DEFAULT_RULES_PATH = PROGRAM_DIR / "tuning_rules.pl"


@dataclass(frozen=True)
class ActionRule:
    """One `action/2` clause of the rules file; `initial` is None for a fixed weight."""

    action: str
    problem: str
    initial: float | None
    clause: Any


def problog_message(err: BaseException) -> str:
    """ProbLog's error message on one line."""
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


def read_program(path: Path, role: str) -> tuple[str, list[Any]]:
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
                         f"{problog_message(err)}") from err
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
    """Every problem/1, action/2, cause/2, excludes/2, stop_training/1, stop_because/2 and
    stop_cause/2 term names vocabulary atoms (or variables)."""
    known_names = {"problem": PROBLEMS, "action": ACTIONS, "stop reason": STOP_REASONS}
    for clause in clauses:
        for term in _subterms(clause):
            if term.functor == "problem" and term.arity == 1:
                names = [("problem", term.args[0])]
            elif term.functor == "cause" and term.arity == 2:
                names = [("problem", term.args[0])]
            elif (term.functor, term.arity) in (("stop_training", 1), ("stop_cause", 2), ("stop_because", 2)):
                names = [("stop reason", term.args[0])]
            elif term.functor == "action" and term.arity == 2:
                names = [("action", term.args[0]), ("problem", term.args[1])]
            elif term.functor == "excludes" and term.arity == 2:
                names = [("action", term.args[0]), ("action", term.args[1])]
            else:
                continue
            for kind, arg in names:
                if isinstance(arg, Var):
                    continue
                name = _atom_name(arg)
                known = known_names[kind]
                if name not in known:
                    raise RulesError(
                        f"{role} file {path}: {term} names the unknown {kind} {arg}; "
                        f"expected one of {', '.join(known)} (sdt/core/vocabulary.py)")


def check_diagnosis(clauses: list[Any], path: Path) -> None:
    """RulesError unless the diagnosis file derives problem/1 (and, if it has stop rules,
    stop_training/1) from known names, and no actions."""
    role = "diagnosis"
    _check_vocabulary(clauses, path, role)
    defines_problem = False
    for clause in clauses:
        for head in _heads(clause):
            if head.functor == "problem" and head.arity == 1:
                defines_problem = True
            if head.functor in ("action", "excludes") and head.arity == 2:
                raise RulesError(f"diagnosis file {path} defines {head}: actions belong in the "
                                 f"tuning rules file, the diagnosis only defines problem/1")
            if head.probability is not None and head.probability.functor == "t":
                raise RulesError(f"diagnosis file {path}: {head} has a learnable weight; only the "
                                 f"action/2 rules of the tuning rules file are learned")
    if not defines_problem:
        raise RulesError(f"diagnosis file {path} defines no problem/1 clause: it must derive "
                         f"problem(P) for the problems it diagnoses")
    _check_names(clauses, path)


def _defined_names(clauses: list[Any], functor: str) -> set[str] | None:
    """The names N of the `functor(N, _)` clauses; None when a clause defines any name.

    The clause that makes every statistic a measure (`measure(N, V) :- history_stat(N, V).`)
    counts as defining the names of HISTORY_STATS and TRAINING_STATS.
    """
    names: set[str] = set()
    for clause in clauses:
        if functor == "measure" and _passes_statistics_through(clause):
            names |= set(HISTORY_STATS) | set(TRAINING_STATS)
            continue
        for head in _heads(clause):
            if head.functor == functor and head.arity == 2:
                name = _atom_name(head.args[0])
                if name is None:
                    return None  # defined for any name: nothing to check
                names.add(name)
    return names


def _check_names(clauses: list[Any], path: Path) -> None:
    """Statistics, measures and thresholds named in the diagnosis exist (typos fail silently)."""
    for term in (t for clause in clauses for t in _subterms(clause)):
        if term.functor == "history_stat" and term.arity == 2:
            name = _atom_name(term.args[0])
            if name is not None and name not in HISTORY_STATS + TRAINING_STATS:
                raise RulesError(f"diagnosis file {path}: {term} names a statistic that "
                                 f"sdt/symbolic/statistics.py does not measure; "
                                 f"known: {', '.join(HISTORY_STATS + TRAINING_STATS)}")
        if term.functor == "epoch_stat" and term.arity == 3:
            name = _atom_name(term.args[1])
            if name is not None and name not in EPOCH_STATS:
                raise RulesError(f"diagnosis file {path}: {term} names a per-epoch value that "
                                 f"sdt/symbolic/statistics.py does not write; "
                                 f"known: {', '.join(EPOCH_STATS)}")
    measures, thresholds = _defined_names(clauses, "measure"), _defined_names(clauses, "threshold")
    for head in (head for clause in clauses for head in _heads(clause)):
        if head.functor not in ("cause", "stop_cause") or head.arity != 2:
            continue
        for condition in term2list(head.args[1], False):
            if not (isinstance(condition, Term) and condition.functor in CONDITION_SYMBOLS
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


def _passes_statistics_through(clause: Any) -> bool:
    """True for `measure(Name, Value) :- history_stat(Name, Value).`: every statistic is a measure."""
    if not isinstance(clause, Clause) or isinstance(clause, AnnotatedDisjunction):
        return False
    head, body = clause.head, clause.body
    return (head.functor == "measure" and head.arity == 2 and isinstance(body, Term)
            and body.functor == "history_stat" and body.arity == 2
            and all(isinstance(arg, Var) for arg in head.args) and list(body.args) == list(head.args))


def parse_rules(clauses: list[Any], path: Path) -> list[ActionRule]:
    """The action/2 rules of the rules file, checked; RulesError naming the file if malformed."""
    role = "rules"
    _check_vocabulary(clauses, path, role)
    rules: list[ActionRule] = []
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
        if head.functor == "phrase" and head.arity == 2:
            raise RulesError(f"rules file {path} defines {head}: the wording of the measures "
                             f"belongs in the diagnosis file")
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
        rules.append(ActionRule(action, problem, initial, clause))
    if not seen:
        raise RulesError(f"rules file {path} has no learnable rule: write the rules as "
                         f"t(p)::action(Action, Problem) :- problem(Problem).")
    return rules


def with_probability(clause: Any, probability: float) -> Any:
    """The clause with its head's probability annotation replaced by `probability`."""
    if isinstance(clause, Clause):
        return Clause(clause.head.with_probability(Constant(probability)), clause.body)
    return clause.with_probability(Constant(probability))




# ---------------------------------------------------------------------------------------
# Declarations: phrase/2 (diagnosis file) and excludes/2 (rules file)
# ---------------------------------------------------------------------------------------

def defines(clauses: list[Any], functor: str, arity: int) -> bool:
    """Whether some clause of `clauses` has a head functor/arity."""
    return any(head.functor == functor and head.arity == arity
               for clause in clauses for head in _heads(clause))


def _declared(clauses: list[Any], functor: str, path: Path, role: str, arity: int = 2) -> list[Term]:
    """Every answer of the query `functor(A, B)` (of `arity` arguments) on the file's clauses,
    each certain.

    Empty when no clause defines functor/arity. RulesError if ProbLog fails, or if an answer is
    uncertain: declarations are facts of the program, not evidence.
    """
    if not defines(clauses, functor, arity):
        return []
    program = SimpleProgram()
    for clause in clauses:
        program.add_clause(clause)
    program.add_clause(Term("query", Term(functor, *(Var(f"A{i}") for i in range(arity)))))
    try:
        results = get_evaluatable().create_from(program).evaluate()
    except ProbLogError as err:
        raise RulesError(f"{role} file {path}: ProbLog failed on its {functor}/{arity} clauses: "
                         f"{problog_message(err)}") from err
    except RecursionError as err:
        raise RulesError(f"{role} file {path}: its {functor}/{arity} clauses recurse without end") from err
    answers = []
    for term, probability in sorted(results.items(), key=lambda item: str(item[0])):
        if float(probability) == 0.0:
            continue
        if abs(float(probability) - 1.0) > 1e-12:
            raise RulesError(f"{role} file {path}: {term} holds with probability "
                             f"{float(probability):.3g}; {functor}/{arity} must be certain (no weight)")
        answers.append(term)
    return answers


def _text_of(term: Any) -> str | None:
    """A double-quoted string, or a list of them joined; None for anything else."""
    if isinstance(term, Constant):
        parts = [term]
    elif isinstance(term, Term) and term.functor in (".", "[]"):
        parts = term2list(term, False)
    else:
        return None
    if not all(isinstance(part, Constant) and part.is_string() for part in parts):
        return None
    texts = [str(p.value) for p in parts]
    return "".join(t[1:-1] if len(t) >= 2 and t[0] == t[-1] == '"' else t for t in texts)


def read_phrases(clauses: list[Any], path: Path) -> MeasurePhrases:
    """The `phrase(Measure, Text)` facts of a checked diagnosis file (none: plain wording).

    RulesError naming the file when a phrase is uncertain, has no string text, is malformed
    (`{` without `}`, a format such as `{value:.2f}`), gives one measure two texts, or words
    or quotes a measure the file does not define.
    """
    role = "diagnosis"
    known = _defined_names(clauses, "measure")
    if known is not None:
        known |= set(HISTORY_STATS)
    texts: dict[str, str] = {}
    for answer in _declared(clauses, "phrase", path, role):
        measure, text = _atom_name(answer.args[0]), _text_of(answer.args[1])
        if measure is None or text is None:
            raise RulesError(f"diagnosis file {path}: {answer} must be phrase(measure_name, "
                             f"\"text\") with the text a double-quoted string or a list of them")
        if measure in texts and texts[measure] != text:
            raise RulesError(f"diagnosis file {path}: two phrases for the measure {measure}; "
                             f"keep one")
        try:
            fields = phrase_fields(text)
        except ValueError as err:
            raise RulesError(f"diagnosis file {path}: the phrase of {measure} is malformed: "
                             f"{err} (in \"{text}\")") from err
        if known is not None:
            for name in (measure, *fields):
                if name not in known:
                    raise RulesError(f"diagnosis file {path}: the phrase of {measure} names the "
                                     f"measure {name}, which no measure/2 clause defines")
        texts[measure] = text
    return MeasurePhrases(texts)


def read_exclusions(clauses: list[Any], path: Path) -> ActionExclusions:
    """The `excludes(Action, Other)` facts of a checked rules file (none: no exclusions).

    RulesError naming the file when an exclusion is uncertain, does not name two actions, or
    pairs an action with itself, or when ProbLog fails on the excludes/2 clauses (they may not
    depend on the diagnosis: they are read without a training).
    """
    pairs = []
    for answer in _declared(clauses, "excludes", path, "rules"):
        first, second = (_atom_name(arg) for arg in answer.args)
        if first not in ACTIONS or second not in ACTIONS:
            raise RulesError(f"rules file {path}: {answer} must name two actions of "
                             f"{', '.join(ACTIONS)}")
        if first == second:
            raise RulesError(f"rules file {path}: {answer}: an action cannot exclude itself")
        pairs.append((first, second))
    return ActionExclusions(tuple(pairs))


def read_slow_optimizers(clauses: list[Any], path: Path) -> frozenset[str]:
    """The optimisers the rules file declares `small_step_at_small_rates(Optimizer)`: lower-case
    names of optimisers that need a learning rate near 1 (none: no such fact). They may not
    depend on a training: the facts are read once, without one.

    RulesError naming the file when a fact is uncertain or its argument is not an atom."""
    names = []
    for answer in _declared(clauses, "small_step_at_small_rates", path, "rules", arity=1):
        name = _atom_name(answer.args[0])
        if not isinstance(name, str) or not name:
            raise RulesError(f"rules file {path}: {answer} must name an optimiser (an atom)")
        names.append(name.lower())
    return frozenset(names)


def read_start_values(clauses: list[Any], path: Path) -> tuple[tuple[str, str | float], ...]:
    """Where the rules file says a first training starts, `start_with(Hyperparameter, Value)`:
    (name, value) pairs sorted by name, a category as a lower-case name, a number as a float
    (none: no such fact). Read once, without a training.

    RulesError naming the file when a fact is uncertain, its hyper-parameter is not an atom, its
    value neither an atom nor a number, or a hyper-parameter is given twice."""
    values: dict[str, str | float] = {}
    for answer in _declared(clauses, "start_with", path, "rules", arity=2):
        name, value = _atom_name(answer.args[0]), answer.args[1]
        if not isinstance(name, str) or not name:
            raise RulesError(f"rules file {path}: {answer} must name a hyper-parameter (an atom)")
        category = _atom_name(value)
        number = value.compute_value() if isinstance(value, Constant) else None
        if category is not None:
            parsed: str | float = category.lower()
        elif isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
            parsed = float(number)
        else:
            raise RulesError(f"rules file {path}: {answer} must give a category (an atom) or a number")
        if name in values:
            raise RulesError(f"rules file {path}: start_with/2 gives {name} twice")
        values[name] = parsed
    return tuple(values.items())


@lru_cache(maxsize=1)
def shipped_exclusions() -> ActionExclusions:
    """The exclusions of the shipped tuning_rules.pl (read once)."""
    _, clauses = read_program(DEFAULT_RULES_PATH, "rules")
    return read_exclusions(clauses, DEFAULT_RULES_PATH)
