"""The records of the symbolic block: what a diagnosis found and the weights of the tuning rules.

Frozen dataclasses with `to_dict` / `from_dict` (an exact round trip through JSON), stored with
each trial: `ProblemFinding`, `CandidateAction`, `ChosenAction`, `Diagnosis`, `RuleWeights`;
`StopDecision`, the stop rules' verdict on a training still running (issue 14; the trainer keeps
its reason, epoch and explanation in the TrainingResult).
`ActionExclusions` holds the `excludes/2` declarations of the rules file (not stored: it is
read from the rules file whenever a block is built).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sdt.core.errors import ConfigurationError
from sdt.core.vocabulary import ACTIONS, PROBLEMS, STOP_REASONS


def problem_order(name: str) -> tuple[int, str]:
    """Sort key: vocabulary order of problems, unknown names last (alphabetically)."""
    return (PROBLEMS.index(name) if name in PROBLEMS else len(PROBLEMS), name)


def action_order(name: str) -> tuple[int, str]:
    """Sort key: vocabulary order of actions, unknown names last (alphabetically)."""
    return (ACTIONS.index(name) if name in ACTIONS else len(ACTIONS), name)


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


@dataclass(frozen=True)
class StopDecision:
    """The stop rules' verdict on a training still running: stop it now (issue 14).

    `reason` is a name of vocabulary.STOP_REASONS (`stop_training/1` of diagnosis.pl), `epoch`
    the number of epochs in the history it was decided on (the training stops after that epoch,
    counted from 1), `probability` ProbLog's for the reason, `explanation` the conditions that
    decided it with their numbers and thresholds, worded like a diagnosis ("stuck_at_chance: 3
    epochs in a row at chance level ... >= threshold 3 (min_epochs_at_chance_to_stop); ..."), and
    `measures` the measures and thresholds it quotes.
    """

    reason: str
    epoch: int
    explanation: str
    probability: float = 1.0
    measures: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reason not in STOP_REASONS:
            raise ConfigurationError(f"stop reason must be one of {', '.join(STOP_REASONS)}, got {self.reason!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "epoch": self.epoch, "explanation": self.explanation,
                "probability": self.probability, "measures": dict(self.measures)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StopDecision":
        return cls(reason=str(data["reason"]), epoch=int(data["epoch"]),
                   explanation=str(data.get("explanation", "")),
                   probability=float(data.get("probability", 1.0)),
                   measures={str(k): float(v) for k, v in (data.get("measures") or {}).items()})


def rule_order(key: tuple[str, str]) -> tuple[int, int]:
    """Sort key of an (action, problem) rule: problem, then action, in vocabulary order."""
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
        ordered = dict(sorted(checked.items(), key=lambda item: rule_order(item[0])))
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



@dataclass(frozen=True)
class ActionExclusions:
    """Pairs of actions never applied together after one training (`excludes/2` of the rules).

    `pairs` holds each pair once, its two names in vocabulary order, the pairs sorted; the
    relation is symmetric: `excludes(a, b)` keeps b from joining a and a from joining b.
    Built from any iterable of 2-name pairs; an unknown action or a pair of one action with
    itself raises ConfigurationError.
    """

    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        checked = set()
        for pair in self.pairs:
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Iterable) or len(tuple(pair)) != 2:
                raise ConfigurationError(f"action exclusions must be (action, action) pairs, got {pair!r}")
            first, second = tuple(pair)
            _check_action_name(first, "action exclusion")
            _check_action_name(second, "action exclusion")
            if first == second:
                raise ConfigurationError(f"action exclusion: {first} cannot exclude itself")
            checked.add(tuple(sorted((first, second), key=action_order)))
        ordered = sorted(checked, key=lambda pair: (action_order(pair[0]), action_order(pair[1])))
        object.__setattr__(self, "pairs", tuple(ordered))

    def excluded_by(self, chosen: Iterable[str]) -> frozenset[str]:
        """The actions that may not join the actions `chosen`."""
        chosen = set(chosen)
        return frozenset(other for pair in self.pairs for name, other in (pair, pair[::-1])
                         if name in chosen)
