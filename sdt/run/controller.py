"""One iteration of Symbolic DNN-Tuner: train -> facts -> LFI -> diagnosis -> choice -> tuning.

The controller receives the hyper-parameters the optimiser proposed and the run state
(`ControllerState`: search space, architecture, rule weights, LFI evidence, actions waiting
to be judged) and returns what happened (`TrialRecord`) and the next state. It never keeps
run state of its own, imports no Keras (training is a callable handed in) and writes nothing
to disk: main.py persists the records.

At most one action is applied per training, so that every label judges one action: the most
probable applicable one. Under `edit` it is applied with its probability (sdt/symbolic/policy.py
`decide_action`: an edit is all or nothing, so a low weight must mostly mean "do nothing");
under `prior` it is always applied, as a preference whose strength is that probability (a low
weight is a weak preference, close to nothing), so the weight is not counted twice.

Evidence for LFI: the action applied after trial i-1 is judged by trial i against its
counterfactual, the trial it was meant to fix: it counts as *improved* when trial i's
objective is strictly better than trial i-1's. (The original judged against the best
objective so far, true for 12-33% of trials whatever the action, so that a helpful action
looked barely better than a neutral one and every weight sank: issue 13.) For a neutral
action the label is a coin flip, for a helpful one it is true more often than not.

Guidance (sdt/space/preference.py): with `edit` the action edits the space and the network
(the paper); with `prior` the space keeps its bounds, the features an action switches on or
adds become available to the optimiser, and the edit's region is kept as a `Preference` that
weights the optimiser's choice with a strength that fades with the trainings after it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from sdt.core.records import Architecture, Decision, TrainingResult
from sdt.symbolic.rule_learning import Observation, learn_weights
from sdt.space.preference import (
    EDIT, LOCAL, NEIGHBOURHOOD_WIDTH, Preference, available_union, avoided_after_slow, avoided_after_stuck,
    START, avoided_from_the_start, check_guidance, guides_by_prior, neighbourhood, start_region,
    preference_of_changes, within,
)
from sdt.space.search_space import CATEGORICAL, SearchSpace
from sdt.symbolic.block import ChosenAction, Diagnosis, RuleWeights, SymbolicBlock
from sdt.core.vocabulary import (
    CHANGE_OPTIMIZER, HISTORY_KEYS, LOW_LR, STUCK_AT_CHANCE, VAL_ACCURACY, VAL_LOSS, TrialStatus,
)
from sdt.actions import ActionRecord, ArchitectureLimits, TuningOutcome, apply_actions, not_applicable_actions

# A val_loss objective is capped at this many times ln(num_classes) (the loss of a uniform
# guess). A diverged or failed training gets the cap: a finite penalty the GP can use
# (1e10 would flatten everything else the GP knows).
LOSS_CAP_IN_CHANCE_LOSSES = 3.0

# The diagnosis's chance-level thresholds (diagnosis.pl) that say a training learned nothing.
SLOW_LOSS_THRESHOLD = "min_slow_loss_over_chance_loss"
STUCK_ACCURACY_THRESHOLD = "max_train_accuracy_above_chance_when_stuck"

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
        """The finite number told to the optimiser for one training (lower is better).

        A pruned training (stopped by the stop rules, issue 14) is scored like a completed one,
        on the metrics of the best epoch it ran: what it reached is what the optimiser learns."""
        if self.metric == VAL_LOSS:
            if result.status not in TrialStatus.SCORED or not math.isfinite(result.val_loss):
                return self.loss_cap
            return min(result.val_loss, self.loss_cap)
        if result.status not in TrialStatus.SCORED or not math.isfinite(result.val_accuracy):
            return 0.0
        return -result.val_accuracy

    def learned_nothing_bound(self, thresholds: Mapping[str, float]) -> float | None:
        """The objective at or above which a training learned nothing, by the diagnosis's own
        chance-level thresholds (diagnosis.pl): a validation loss still within
        min_slow_loss_over_chance_loss ln(K) of nothing learned, or a validation accuracy less
        than max_train_accuracy_above_chance_when_stuck of the way from 1/K to 1. None when the
        diagnosis program does not declare them."""
        if self.metric == VAL_LOSS:
            share = thresholds.get(SLOW_LOSS_THRESHOLD)
            return None if share is None else float(share) * math.log(max(self.num_classes, 2))
        share = thresholds.get(STUCK_ACCURACY_THRESHOLD)
        if share is None:
            return None
        chance = 1.0 / max(self.num_classes, 2)
        return -(chance + float(share) * (1.0 - chance))


@dataclass(frozen=True)
class PendingAction:
    """An applied action waiting to be judged: after which trial it was applied, and that
    trial's objective (its counterfactual: the trial it was meant to fix)."""

    action: ChosenAction
    after_trial: int
    counterfactual: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.to_dict(), "after_trial": self.after_trial,
                "counterfactual": self.counterfactual}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PendingAction":
        return cls(ChosenAction.from_dict(data["action"]), int(data["after_trial"]), data.get("counterfactual"))


@dataclass(frozen=True)
class ControllerState:
    """Run state between two trials; saved after every trial and restored on resume.

    With `edit` guidance `space` and `architecture` are what the next training must use; with
    `prior` `space` keeps its initial bounds (plus the dimensions of added features),
    `architecture` is every feature available to the optimiser and `preferences` the regions
    the applied actions lean towards.
    """

    space: SearchSpace
    architecture: Architecture
    rule_weights: RuleWeights
    observations: tuple[Observation, ...] = ()
    pending_actions: tuple[ChosenAction, ...] = ()   # applied after the last trial, judged by the next
    best_objective: float | None = None
    guidance: str = EDIT
    preferences: tuple[Preference, ...] = ()
    last_objective: float | None = None              # the last trial's: the pending action's counterfactual
    # Aligned with pending_actions: the trial each followed and that trial's objective (trials in
    # parallel leave actions of several trials waiting); empty in states stored before them.
    pending_after: tuple[int, ...] = ()
    pending_counterfactuals: tuple[float | None, ...] = ()
    # Under symbolic tuning: the objective at or above which a training learned nothing (stuck at
    # chance, diverged, failed), from the diagnosis's thresholds. The GP models such trainings
    # on the scale of those that learned (sdt/strategies/gaussian_process.py); None: as told.
    learned_nothing_objective: float | None = None

    def pending(self) -> tuple[PendingAction, ...]:
        """The actions waiting to be judged, each with its trial and counterfactual."""
        if len(self.pending_after) == len(self.pending_actions) == len(self.pending_counterfactuals):
            return tuple(PendingAction(a, t, c) for a, t, c in
                         zip(self.pending_actions, self.pending_after, self.pending_counterfactuals))
        return tuple(PendingAction(a, -1, self.last_objective) for a in self.pending_actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "architecture": self.architecture.to_dict(),
            "rule_weights": self.rule_weights.to_dict(),
            "observations": [o.to_dict() for o in self.observations],
            "pending_actions": [a.to_dict() for a in self.pending_actions],
            "best_objective": self.best_objective,
            "guidance": self.guidance,
            "preferences": [p.to_dict() for p in self.preferences],
            "last_objective": self.last_objective,
            "pending_after": list(self.pending_after),
            "pending_counterfactuals": list(self.pending_counterfactuals),
            "learned_nothing_objective": self.learned_nothing_objective,
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
            guidance=check_guidance(data.get("guidance", EDIT)),
            preferences=tuple(Preference.from_dict(p) for p in data.get("preferences", [])),
            last_objective=data.get("last_objective"),
            pending_after=tuple(int(t) for t in data.get("pending_after", ())),
            pending_counterfactuals=tuple(data.get("pending_counterfactuals", ())),
            learned_nothing_objective=data.get("learned_nothing_objective"),
        )


@dataclass(frozen=True)
class ProposedUnder:
    """What a trial was proposed under, so that its analysis judges the right actions when
    trials run in parallel (issue 16): the number of trials committed when it was proposed (the
    version of the space and rule weights it came from) and the actions then waiting to be
    judged, each with its counterfactual (the objective of the trial it followed). The actions are judged
    by the first trial proposed after them to finish; a trial already running when they were
    applied never judges them. One trial at a time, it is the state the trial is analysed in."""

    trials_finished: int
    pending: tuple[PendingAction, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"trials_finished": self.trials_finished, "pending": [a.to_dict() for a in self.pending]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProposedUnder":
        return cls(trials_finished=int(data["trials_finished"]),
                   pending=tuple(PendingAction.from_dict(a) for a in data.get("pending", ())))


@dataclass(frozen=True)
class RunningTrial:
    """A trial dispatched to a worker and not yet finished: what the storage keeps as running,
    and what a resumed run trains again (the same proposal, not a new one)."""

    index: int
    params: dict[str, Any]
    architecture: Architecture
    decision: Decision | None
    proposed_under: ProposedUnder
    started_at: str
    worker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "params": dict(self.params), "architecture": self.architecture.to_dict(),
                "decision": None if self.decision is None else self.decision.to_dict(),
                "proposed_under": self.proposed_under.to_dict(), "started_at": self.started_at,
                "worker": self.worker}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunningTrial":
        return cls(index=int(data["index"]), params=dict(data["params"]),
                   architecture=Architecture.from_dict(data["architecture"]),
                   decision=None if data.get("decision") is None else Decision.from_dict(data["decision"]),
                   proposed_under=ProposedUnder.from_dict(data["proposed_under"]),
                   started_at=data["started_at"], worker=data.get("worker"))


@dataclass(frozen=True)
class TrialRecord:
    """Everything one iteration produced; what is persisted and what the dashboard draws."""

    index: int
    params: dict[str, Any]
    architecture: Architecture
    result: TrainingResult
    objective: float
    improved: bool | None                        # vs the best objective before this trial; None for the first
    # (what the run reports; the rule learning judges an action against the trial it followed)
    diagnosis: Diagnosis | None = None
    chosen: tuple[ChosenAction, ...] = ()
    outcome: TuningOutcome | None = None
    rule_weights: RuleWeights | None = None      # weights in force for this trial's choice
    new_observations: tuple[Observation, ...] = ()
    symbolic_seconds: float = 0.0
    point: tuple[Any, ...] = field(default_factory=tuple)   # filled by the caller (optimiser coordinates)
    decision: Decision | None = None             # why the strategy proposed this training (filled by the caller)
    # When the trial started (its proposal) and finished (stored), ISO 8601 UTC, and who ran it
    # (`host:pid` of the process); filled by the caller, None in records written before them.
    started_at: str | None = None
    finished_at: str | None = None
    worker: str | None = None
    proposed_under: ProposedUnder | None = None   # filled by the caller; None in records from before it

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
            "decision": None if self.decision is None else self.decision.to_dict(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "worker": self.worker,
            "proposed_under": None if self.proposed_under is None else self.proposed_under.to_dict(),
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
            decision=None if data.get("decision") is None else Decision.from_dict(data["decision"]),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            worker=data.get("worker"),
            proposed_under=(None if data.get("proposed_under") is None
                            else ProposedUnder.from_dict(data["proposed_under"])),
        )


class Controller:
    """Runs one iteration; holds only configuration, never run state.

    `tune=False` gives the baselines: the training is still diagnosed (so every strategy's
    trials carry explanations) but no rule is learned and no action is applied.
    `unsupported_actions` are never chosen (the architecture actions a user's own model does
    not declare): the rules fall back to the problem's other actions. `guidance` is `edit`
    or `prior` (module docstring).
    """

    def __init__(self, train: Trainer, symbolic: SymbolicBlock, objective: Objective,
                 limits: ArchitectureLimits, tune: bool = True,
                 prior_strength: float = DEFAULT_PRIOR_STRENGTH,
                 unsupported_actions: frozenset[str] = frozenset(), guidance: str = EDIT):
        self._train = train
        self._symbolic = symbolic
        self.objective = objective
        self.limits = limits
        self.tune = tune
        self.prior_strength = prior_strength
        self.unsupported_actions = frozenset(unsupported_actions)
        self.guidance = check_guidance(guidance)

    def initial_state(self, space: SearchSpace, architecture: Architecture | None = None) -> ControllerState:
        """The state before the first training. Under `prior` / `local` guidance it holds the
        regions avoided from the start: each optimiser the rules declare needs a learning rate near
        1, at small rates (`avoided_from_the_start`), and the region the first training is drawn
        in, near the rules file's start_with/2 values (`start_region`)."""
        preferences: tuple[Preference, ...] = ()
        if self.tune and guides_by_prior(self.guidance):
            preferences = avoided_from_the_start(space, self._symbolic.slow_optimizers)
            start = start_region(space, self._symbolic.start_values)
            if start is not None:
                preferences += (start,)
        return ControllerState(space=space, architecture=architecture or Architecture(),
                               rule_weights=self._symbolic.initial_weights(), guidance=self.guidance,
                               preferences=preferences)

    def proposed_under(self, state: ControllerState, trials_finished: int) -> ProposedUnder:
        """What a trial proposed now from `state` is proposed under (see ProposedUnder)."""
        return ProposedUnder(trials_finished, state.pending())

    def check_proposal(self, state: ControllerState, architecture: Architecture) -> None:
        """Refuse a network the state does not allow (when it is proposed: by the time it has
        trained, trials running beside it may have changed the state)."""
        if not self.tune:
            return
        if self.guidance == EDIT and architecture != state.architecture:
            raise ValueError("a strategy tuned by the symbolic block must train the state's architecture")
        if guides_by_prior(self.guidance) and not within(architecture, state.architecture):
            raise ValueError("under prior guidance the trained network may only use the available features")

    def run_iteration(self, index: int, params: dict[str, Any], state: ControllerState,
                      rng: np.random.Generator,
                      architecture: Architecture | None = None) -> tuple[TrialRecord, ControllerState]:
        """Train `params` on `architecture` (default: the state's), then diagnose and tune.

        Only strategies that do not tune the network pass their own architecture, except under
        `prior` guidance, where the optimiser picks any network within the available features.
        """
        trained_architecture = state.architecture if architecture is None else architecture
        self.check_proposal(state, trained_architecture)
        under = self.proposed_under(state, 0)
        result = self._train(params, trained_architecture, index)
        return self.analyse(index, params, trained_architecture, result, state, rng, under)

    def analyse(self, index: int, params: dict[str, Any], trained_architecture: Architecture,
                result: TrainingResult, state: ControllerState, rng: np.random.Generator,
                proposed_under: ProposedUnder | None = None) -> tuple[TrialRecord, ControllerState]:
        """Diagnose and tune after one training: the record and the next state.

        `proposed_under`: what the trial was proposed under (default: `state`, the case of one
        trial at a time). Of its pending actions, those still waiting in `state` are judged here
        against their counterfactual; actions applied while it ran wait for a later trial."""
        under = self.proposed_under(state, 0) if proposed_under is None else proposed_under
        started = time.perf_counter()
        objective = self.objective.value(result)
        improved = None if state.best_objective is None else objective < state.best_objective
        best_objective = objective if state.best_objective is None else min(objective, state.best_objective)

        # LFI: judge the actions applied before this trial was proposed (and not judged since by
        # another trial) against the trial each followed.
        new_observations: tuple[Observation, ...] = ()
        weights = state.rule_weights
        observations = state.observations
        waiting = state.pending()
        judged = tuple(p for p in under.pending if p in waiting and p.counterfactual is not None)
        if self.tune and judged:
            new_observations = tuple(Observation(p.action.name, p.action.problem, objective < p.counterfactual)
                                     for p in judged)
            observations = observations + new_observations
            weights = learn_weights(self._symbolic.initial_weights(), list(observations), self.prior_strength)
            waiting = tuple(p for p in waiting if p not in judged)

        diagnosis = self._diagnose(result, weights, params)

        chosen: tuple[ChosenAction, ...] = ()
        outcome = None
        space, architecture, preferences = state.space, state.architecture, state.preferences
        learned_nothing = state.learned_nothing_objective
        if self.tune and learned_nothing is None and diagnosis is not None:
            learned_nothing = self.objective.learned_nothing_bound(diagnosis.thresholds)
        if self.tune and diagnosis is not None:
            # Under `edit` the action edits the run's current network (the trained one, unless
            # a trial beside this one has changed it since).
            base = state.architecture if self.guidance == EDIT else trained_architecture
            blocked = (not_applicable_actions(space, base, params, self.limits)
                       | self.unsupported_actions)
            if guides_by_prior(self.guidance):
                # The weight is already the preference's strength (π = 1 - weight outside its
                # region): a low weight is a weak preference, close to doing nothing. Drawing
                # whether to apply it as well would count the weight twice and, at a weight
                # of 0.8, skip one sure remedy in five.
                ranked = self._symbolic.choose_actions(diagnosis, blocked, rng)
                action, declined = (ranked[0] if ranked else None), None
            else:
                action, declined = self._symbolic.decide_action(diagnosis, blocked, rng)
            picked = [] if action is None else [(action.name, action.problem)]
            outcome = apply_actions(picked, space, base, params, self.limits)
            if declined is not None:
                outcome = replace(outcome, skipped=outcome.skipped + (declined,))
            if guides_by_prior(self.guidance):
                # `local`: the remedy for the run's best training is that training with the edit,
                # unless that training learned nothing: then its values say nothing of where
                # good trainings lie (trial 0 stuck at chance is the run's best after one trial).
                near = ((params, trained_architecture) if self.guidance == LOCAL and
                        (state.best_objective is None or objective <= state.best_objective) and
                        (learned_nothing is None or objective < learned_nothing) else None)
                outcome, preferences = self._as_preference(outcome, state, index, action, near)
                outcome, preferences = self._avoid_if_stuck(outcome, preferences, diagnosis, index, params)
            space, architecture = outcome.space, outcome.architecture
            chosen = () if action is None or not outcome.applied else (action,)

        record = TrialRecord(
            index=index, params=dict(params), architecture=trained_architecture, result=result,
            objective=objective, improved=improved, diagnosis=diagnosis, chosen=chosen, outcome=outcome,
            rule_weights=weights if self.tune else None, new_observations=new_observations,
            symbolic_seconds=time.perf_counter() - started)
        waiting = waiting + tuple(PendingAction(action, index, objective) for action in chosen)
        next_state = ControllerState(space=space, architecture=architecture, rule_weights=weights,
                                     observations=observations,
                                     pending_actions=tuple(p.action for p in waiting),
                                     best_objective=best_objective, guidance=state.guidance,
                                     # The start region guided the first training; once one
                                     # is told it guides nothing (sdt/space/preference.py).
                                     preferences=tuple(p for p in preferences if p.action != START),
                                     last_objective=objective,
                                     pending_after=tuple(p.after_trial for p in waiting),
                                     pending_counterfactuals=tuple(p.counterfactual for p in waiting),
                                     learned_nothing_objective=learned_nothing)
        return record, next_state

    @staticmethod
    def _as_preference(outcome: TuningOutcome, state: ControllerState, index: int, action: ChosenAction | None,
                       near: tuple[dict[str, Any], Architecture] | None = None,
                       ) -> tuple[TuningOutcome, tuple[Preference, ...]]:
        """Under `prior` / `local` guidance: never narrow the space (a range only widens, to the
        hull of its bounds and the preferred region, so the region stays reachable: inc_lr may
        prefer rates above the initial range), make added features available and turn the
        applied edit into a Preference (its record says so). `near`: the diagnosed training's
        (params, network) when the preference is its neighbourhood (`local`)."""
        if action is None or not outcome.applied:
            return replace(outcome, space=state.space, architecture=state.architecture), state.preferences
        (applied,) = outcome.applied
        preference = preference_of_changes(applied.action, applied.problem, index, action.probability,
                                           applied.changes)
        space = state.space
        for change in applied.changes:
            kind, _, name = change.target.partition(".")
            if kind == "space" and change.before is None:
                space = space.replace_dimension(outcome.space[name])
            elif kind == "space" and space[name].kind != CATEGORICAL:
                # Never cut, but reach the preferred region: the hull of both.
                current, (low, high) = space[name], change.after
                space = space.replace_dimension(current.with_bounds(min(current.low, low), max(current.high, high)))
        architecture = available_union(state.architecture, outcome.architecture)
        region = preference.describe()
        extra: tuple[Preference, ...] = ()
        if near is not None:
            # The neighbourhood guides the next training only (it tests the edit on the best
            # model); from then on the action's own region guides, fading as under `prior`.
            extra = (neighbourhood(preference, near[0], near[1], space),)
            region += (f", and for the next training only near trial {index}'s values (the run's best: each remaining number within "
                       f"{NEIGHBOURHOOD_WIDTH:.0%} of its range, the same categories and network)")
        added = [c.target.partition(".")[2] for c in applied.changes
                 if c.target.startswith("space.") and c.before is None]
        description = (f"{applied.action}: the optimiser now prefers {region} "
                       f"(weight {action.probability:.2f}, fading with the trainings after this one)")
        if added:
            description += f"; new dimension {', '.join(added)}"
        record = ActionRecord(applied.action, applied.problem, applied.changes, description)
        return (replace(outcome, space=space, architecture=architecture, applied=(record,)),
                state.preferences + (preference,) + extra)

    @staticmethod
    def _avoid_if_stuck(outcome: TuningOutcome, preferences: tuple[Preference, ...], diagnosis: Diagnosis,
                        index: int, params: dict[str, Any]) -> tuple[TuningOutcome, tuple[Preference, ...]]:
        """Under `prior` / `local` guidance, a training stuck at chance also leaves a lasting region
        to avoid (`avoided_after_stuck`), whatever action answered it, and so does a training too
        slow for its optimiser, once `change_optimizer` answered its `low_lr` (`avoided_after_slow`:
        the rules judged the optimiser's step, not the batch or the epochs, the cause); the
        applied action's record says so (and the log, when none was applied)."""
        if any(problem.name == STUCK_AT_CHANCE for problem in diagnosis.problems):
            avoided, what = avoided_after_stuck(index, params), "stuck at chance"
        elif any(record.action == CHANGE_OPTIMIZER and record.problem == LOW_LR for record in outcome.applied):
            avoided, what = avoided_after_slow(index, params), "too slow for its optimiser"
        else:
            return outcome, preferences
        if avoided is None:
            return outcome, preferences
        (_, _, highest), = avoided.bounds
        note = (f"trial {index} {what}: from now on the optimiser keeps away from {params['optimizer']} "
                f"at learning rates up to {highest:.3g} (weight {avoided.weight:.2f}, not fading)")
        if outcome.applied:
            first, *rest = outcome.applied
            first = replace(first, description=f"{first.description}; {note}")
            outcome = replace(outcome, applied=(first, *rest))
        else:
            log.info("%s", note)
        return outcome, preferences + (avoided,)

    def _diagnose(self, result: TrainingResult, weights: RuleWeights,
                  params: dict[str, Any]) -> Diagnosis | None:
        """Diagnose a training whose curves are complete (a pruned one on the epochs it ran, like
        any other, so its problem gets its action and its trial judges the previous action); a
        failed training has nothing to read. The rules see the values it was trained with."""
        if result.status == TrialStatus.FAILED:
            return None
        history = result.history or {}
        lengths = {len(history.get(key) or []) for key in HISTORY_KEYS}
        if len(lengths) != 1 or 0 in lengths:
            log.warning("trial history incomplete (lengths %s): not diagnosed", sorted(lengths))
            return None
        return self._symbolic.diagnose(history, self.objective.num_classes, weights, params)
