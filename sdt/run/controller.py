"""One iteration of Symbolic DNN-Tuner: train -> facts -> LFI -> diagnosis -> choice -> tuning.

The controller receives the hyper-parameters the optimiser proposed and the run state
(`ControllerState`: search space, architecture, rule weights, LFI evidence, actions waiting
to be judged) and returns what happened (`TrialRecord`) and the next state. It never keeps
run state of its own, imports no Keras (training is a callable handed in) and writes nothing
to disk: main.py persists the records.

Evidence for LFI: the actions applied after trial i-1 are judged by trial i. They count as
*improved* when trial i's objective is strictly better than the best objective of trials
0..i-1 (the best so far when the actions were chosen). Judging against the best so far,
not the previous trial, keeps a lucky or unlucky neighbour from deciding a rule's fate.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from sdt.core.records import Architecture, TrainingResult
from sdt.symbolic.rule_learning import Observation, learn_weights
from sdt.space.search_space import SearchSpace
from sdt.symbolic.block import ChosenAction, Diagnosis, RuleWeights, SymbolicBlock, choose_actions
from sdt.core.vocabulary import HISTORY_KEYS, VAL_ACCURACY, VAL_LOSS, TrialStatus
from sdt.actions import ArchitectureLimits, TuningOutcome, apply_actions, not_applicable_actions

# A val_loss objective is capped at this many times ln(num_classes) (the loss of a uniform
# guess). A diverged or failed training gets the cap: a finite penalty the GP can use
# (1e10 would flatten everything else the GP knows).
LOSS_CAP_IN_CHANCE_LOSSES = 3.0

# Strength of the LFI prior, in pseudo-observations carrying each rule's initial weight.
DEFAULT_PRIOR_STRENGTH = 4.0

log = logging.getLogger(__name__)

Trainer = Callable[[dict[str, Any], Architecture, int], TrainingResult]


@dataclass(frozen=True)
class Objective:
    """What the optimiser minimises: the validation loss, or minus the validation accuracy."""

    metric: str
    num_classes: int

    def __post_init__(self) -> None:
        if self.metric not in (VAL_LOSS, VAL_ACCURACY):
            raise ValueError(f"objective must be {VAL_LOSS} or {VAL_ACCURACY}, got {self.metric!r}")

    @property
    def loss_cap(self) -> float:
        return LOSS_CAP_IN_CHANCE_LOSSES * math.log(max(self.num_classes, 2))

    def value(self, result: TrainingResult) -> float:
        """The finite number told to the optimiser for one training (lower is better)."""
        if self.metric == VAL_LOSS:
            if result.status != TrialStatus.COMPLETED or not math.isfinite(result.val_loss):
                return self.loss_cap
            return min(result.val_loss, self.loss_cap)
        if result.status != TrialStatus.COMPLETED or not math.isfinite(result.val_accuracy):
            return 0.0
        return -result.val_accuracy


@dataclass(frozen=True)
class ControllerState:
    """Run state between two trials; saved after every trial and restored on resume."""

    space: SearchSpace
    architecture: Architecture
    rule_weights: RuleWeights
    observations: tuple[Observation, ...] = ()
    pending_actions: tuple[ChosenAction, ...] = ()   # applied after the last trial, judged by the next
    best_objective: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "architecture": self.architecture.to_dict(),
            "rule_weights": self.rule_weights.to_dict(),
            "observations": [o.to_dict() for o in self.observations],
            "pending_actions": [a.to_dict() for a in self.pending_actions],
            "best_objective": self.best_objective,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControllerState":
        return cls(
            space=SearchSpace.from_dict(data["space"]),
            architecture=Architecture.from_dict(data["architecture"]),
            rule_weights=RuleWeights.from_dict(data["rule_weights"]),
            observations=tuple(Observation.from_dict(o) for o in data.get("observations", [])),
            pending_actions=tuple(ChosenAction.from_dict(a) for a in data.get("pending_actions", [])),
            best_objective=data.get("best_objective"),
        )


@dataclass(frozen=True)
class TrialRecord:
    """Everything one iteration produced; what is persisted and what the dashboard draws."""

    index: int
    params: dict[str, Any]
    architecture: Architecture
    result: TrainingResult
    objective: float
    improved: bool | None                        # vs the best objective before this trial; None for the first
    diagnosis: Diagnosis | None = None
    chosen: tuple[ChosenAction, ...] = ()
    outcome: TuningOutcome | None = None
    rule_weights: RuleWeights | None = None      # weights in force for this trial's choice
    new_observations: tuple[Observation, ...] = ()
    symbolic_seconds: float = 0.0
    point: tuple[Any, ...] = field(default_factory=tuple)   # filled by the caller (optimiser coordinates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": dict(self.params),
            "architecture": self.architecture.to_dict(),
            "result": self.result.to_dict(),
            "objective": self.objective,
            "improved": self.improved,
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "chosen": [a.to_dict() for a in self.chosen],
            "outcome": None if self.outcome is None else self.outcome.to_dict(),
            "rule_weights": None if self.rule_weights is None else self.rule_weights.to_dict(),
            "new_observations": [o.to_dict() for o in self.new_observations],
            "symbolic_seconds": self.symbolic_seconds,
            "point": list(self.point),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialRecord":
        """The record `to_dict` wrote (also after a JSON round trip): every nested record whole."""
        return cls(
            index=int(data["index"]),
            params=dict(data["params"]),
            architecture=Architecture.from_dict(data["architecture"]),
            result=TrainingResult.from_dict(data["result"]),
            objective=float(data["objective"]),
            improved=None if data.get("improved") is None else bool(data["improved"]),
            diagnosis=None if data.get("diagnosis") is None else Diagnosis.from_dict(data["diagnosis"]),
            chosen=tuple(ChosenAction.from_dict(a) for a in data.get("chosen", ())),
            outcome=None if data.get("outcome") is None else TuningOutcome.from_dict(data["outcome"]),
            rule_weights=None if data.get("rule_weights") is None else RuleWeights.from_dict(data["rule_weights"]),
            new_observations=tuple(Observation.from_dict(o) for o in data.get("new_observations", ())),
            symbolic_seconds=float(data.get("symbolic_seconds", 0.0)),
            point=tuple(data.get("point", ())),
        )


class Controller:
    """Runs one iteration; holds only configuration, never run state.

    `tune=False` gives the baselines: the training is still diagnosed (so every strategy's
    trials carry explanations) but no rule is learned and no action is applied.
    `unsupported_actions` are never chosen (the architecture actions a user's own model does
    not declare): the rules fall back to the problem's other actions.
    """

    def __init__(self, train: Trainer, symbolic: SymbolicBlock, objective: Objective,
                 limits: ArchitectureLimits, tune: bool = True,
                 prior_strength: float = DEFAULT_PRIOR_STRENGTH,
                 unsupported_actions: frozenset[str] = frozenset()):
        self._train = train
        self._symbolic = symbolic
        self.objective = objective
        self.limits = limits
        self.tune = tune
        self.prior_strength = prior_strength
        self.unsupported_actions = frozenset(unsupported_actions)

    def initial_state(self, space: SearchSpace, architecture: Architecture | None = None) -> ControllerState:
        return ControllerState(space=space, architecture=architecture or Architecture(),
                               rule_weights=self._symbolic.initial_weights())

    def run_iteration(self, index: int, params: dict[str, Any], state: ControllerState,
                      rng: np.random.Generator,
                      architecture: Architecture | None = None) -> tuple[TrialRecord, ControllerState]:
        """Train `params` on `architecture` (default: the state's), then diagnose and tune.

        Only strategies that do not tune the network pass their own architecture.
        """
        trained_architecture = state.architecture if architecture is None else architecture
        if self.tune and trained_architecture != state.architecture:
            raise ValueError("a strategy tuned by the symbolic block must train the state's architecture")
        result = self._train(params, trained_architecture, index)
        started = time.perf_counter()
        objective = self.objective.value(result)
        improved = None if state.best_objective is None else objective < state.best_objective
        best_objective = objective if state.best_objective is None else min(objective, state.best_objective)

        # LFI: judge the actions applied after the previous trial by this trial's outcome.
        new_observations: tuple[Observation, ...] = ()
        weights = state.rule_weights
        observations = state.observations
        if self.tune and state.pending_actions and improved is not None:
            new_observations = tuple(Observation(a.name, a.problem, improved) for a in state.pending_actions)
            observations = observations + new_observations
            weights = learn_weights(self._symbolic.initial_weights(), list(observations), self.prior_strength)

        diagnosis = self._diagnose(result, weights)

        chosen: tuple[ChosenAction, ...] = ()
        outcome = None
        space, architecture = state.space, state.architecture
        if self.tune and diagnosis is not None:
            blocked = not_applicable_actions(space, architecture, params, self.limits) | self.unsupported_actions
            chosen = tuple(choose_actions(diagnosis, blocked, rng, self._symbolic.exclusions))
            outcome = apply_actions([(a.name, a.problem) for a in chosen], space, architecture, params, self.limits)
            space, architecture = outcome.space, outcome.architecture
            applied = {record.action for record in outcome.applied}
            chosen = tuple(a for a in chosen if a.name in applied)

        record = TrialRecord(
            index=index, params=dict(params), architecture=trained_architecture, result=result,
            objective=objective, improved=improved, diagnosis=diagnosis, chosen=chosen, outcome=outcome,
            rule_weights=weights if self.tune else None, new_observations=new_observations,
            symbolic_seconds=time.perf_counter() - started)
        next_state = ControllerState(space=space, architecture=architecture, rule_weights=weights,
                                     observations=observations, pending_actions=chosen,
                                     best_objective=best_objective)
        return record, next_state

    def _diagnose(self, result: TrainingResult, weights: RuleWeights) -> Diagnosis | None:
        """Diagnose a training whose curves are complete; a failed training has nothing to read."""
        if result.status == TrialStatus.FAILED:
            return None
        history = result.history or {}
        lengths = {len(history.get(key) or []) for key in HISTORY_KEYS}
        if len(lengths) != 1 or 0 in lengths:
            log.warning("trial history incomplete (lengths %s): not diagnosed", sorted(lengths))
            return None
        return self._symbolic.diagnose(history, self.objective.num_classes, weights)
