"""Records that cross module boundaries: small frozen dataclasses with to_dict/from_dict.

`Architecture` is what the tuning actions grow on top of the paper's CNN (Listing 4);
`TrainingResult` is what the neural block hands back after one training (no model object,
only numbers and the path of the saved model).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sdt.core.vocabulary import (
    ADD_BATCH_NORM, DATA_AUGMENTATION, L2_FACTOR, NEW_CONV_LAYER, NEW_FC_LAYER, REG_L2, TrialStatus,
)

# Hard limits on what the architecture actions may add. Added conv blocks keep the size
# of the feature map (no pool), so the conv limit holds for every input size: see
# sdt/neural/network.py max_extra_conv_blocks.
MAX_EXTRA_CONV_BLOCKS = 3
MAX_EXTRA_DENSE_LAYERS = 3


def extra_conv_width_name(block_index: int) -> str:
    """Hyper-parameter holding the filter count of added conv block `block_index` (0-based).

    The paper's two blocks use unit_c1 and unit_c2, so added blocks continue unit_c3, unit_c4...
    """
    return f"unit_c{block_index + 3}"


def extra_dense_width_name(layer_index: int) -> str:
    """Hyper-parameter holding the unit count of added dense layer `layer_index` (0-based).

    The paper's dense layer uses unit_d, so added layers are unit_d2, unit_d3...
    """
    return f"unit_d{layer_index + 2}"




COUNT = "count"      # a feature that adds layers: 0..maximum of them
SWITCH = "switch"    # a feature that is off or on


@dataclass(frozen=True)
class ArchitectureFeature:
    """One thing the tuning actions change in the network, declared once for every module.

    The optimiser's coordinates, the evolution operators, the TensorBoard HParams, the CSV
    columns, a user's model `supports` and the generic switch actions are all derived from
    `ARCHITECTURE_FEATURES`; only the network builder (sdt/neural/network.py) and the rule that
    proposes the action (tuning_rules.pl) need to know what a new feature means.
    """

    name: str                         # the Architecture field
    kind: str                         # COUNT or SWITCH
    action: str                       # the tuning action that adds one (COUNT) / switches it on (SWITCH)
    description: str
    maximum: int = 1                  # hard limit of a COUNT (the network may lower it: input size)
    width_name: Any = None            # COUNT: index -> the hyper-parameter holding the added layer's width
    parameters: tuple[str, ...] = ()  # SWITCH: hyper-parameters the network reads while it is on


ARCHITECTURE_FEATURES = (
    ArchitectureFeature("extra_conv_blocks", COUNT, NEW_CONV_LAYER,
                        "conv blocks inserted after the two of Listing 4",
                        maximum=MAX_EXTRA_CONV_BLOCKS, width_name=extra_conv_width_name),
    ArchitectureFeature("extra_dense_layers", COUNT, NEW_FC_LAYER,
                        "dense layers inserted after unit_d, each with its activation",
                        maximum=MAX_EXTRA_DENSE_LAYERS, width_name=extra_dense_width_name),
    ArchitectureFeature("l2", SWITCH, REG_L2, "L2 kernel regularisation on every conv/dense kernel",
                        parameters=(L2_FACTOR,)),
    ArchitectureFeature("batch_norm", SWITCH, ADD_BATCH_NORM, "batch normalisation after every hidden activation"),
    ArchitectureFeature("augmentation", SWITCH, DATA_AUGMENTATION,
                        "random shift (and flip where sensible) layers, training only"),
)
FEATURES_BY_NAME = {feature.name: feature for feature in ARCHITECTURE_FEATURES}
# The tuning actions that change the network (a user's model declares which it supports).
ARCHITECTURE_ACTIONS = frozenset(feature.action for feature in ARCHITECTURE_FEATURES)


def switches_of_actions(actions: frozenset[str] | set[str]) -> frozenset[str]:
    """The SWITCH features that `actions` turn on (what must stay off when a model lacks them)."""
    return frozenset(f.name for f in ARCHITECTURE_FEATURES if f.kind == SWITCH and f.action in actions)


@dataclass(frozen=True)
class Architecture:
    """What the tuning actions changed in the paper's CNN; the default is Listing 4 as is.

    One field per entry of ARCHITECTURE_FEATURES, in the same order (checked below).
    """

    extra_conv_blocks: int = 0
    extra_dense_layers: int = 0
    l2: bool = False
    batch_norm: bool = False
    augmentation: bool = False

    def extra_width_names(self) -> list[str]:
        """Names of the width hyper-parameters the added layers need, in build order."""
        return [feature.width_name(i) for feature in ARCHITECTURE_FEATURES if feature.kind == COUNT
                for i in range(getattr(self, feature.name))]

    def active_parameters(self) -> list[str]:
        """The hyper-parameters the switched-on features read (l2_factor while l2 is on)."""
        return [name for feature in ARCHITECTURE_FEATURES if feature.kind == SWITCH and getattr(self, feature.name)
                for name in feature.parameters]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        return cls(**{feature.name: (int if feature.kind == COUNT else bool)(data.get(feature.name, 0))
                      for feature in ARCHITECTURE_FEATURES})


if [f.name for f in dataclasses.fields(Architecture)] != [f.name for f in ARCHITECTURE_FEATURES]:
    raise ImportError("Architecture's fields must be ARCHITECTURE_FEATURES' names, in order")


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of one training of one configuration.

    `history` holds the per-epoch Keras metrics (loss, accuracy, val_loss, val_accuracy) of
    every epoch that ran and, since issue 13, train_eval_loss / train_eval_accuracy (a fixed
    training subset evaluated in inference mode after each epoch; absent from older records). `val_loss` / `val_accuracy` are those of the weights the model was
    left with (EarlyStopping restores the best epoch), i.e. of `best_epoch` (0-based).
    For a diverged or failed training they may be NaN; the objective layer turns that into
    a finite penalty.

    A training the stop rules ended (status `pruned`, issue 14) also records `stop_reason` (a
    name of vocabulary.STOP_REASONS), `stop_explanation` (the reason with the numbers and
    thresholds that decided it, worded like a diagnosis) and `stop_epoch`: the epoch after which
    it was stopped, counted from 1 (so it equals `epochs_run`). Records written before issue 14
    lack the three and load with None.
    """

    status: str
    history: dict[str, list[float]] = field(default_factory=dict)
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    best_epoch: int | None = None
    epochs_run: int = 0
    duration_seconds: float = 0.0
    parameter_count: int = 0
    model_path: str | None = None
    error: str | None = None
    stop_reason: str | None = None
    stop_explanation: str | None = None
    stop_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.status not in TrialStatus.ALL:
            raise ValueError(f"status must be one of {TrialStatus.ALL}, got {self.status!r}")

    @property
    def completed(self) -> bool:
        return self.status == TrialStatus.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # JSON has no NaN: store missing numbers as None.
        for key in ("val_loss", "val_accuracy"):
            if data[key] is not None and not math.isfinite(data[key]):
                data[key] = None
        data["history"] = {
            key: [None if not math.isfinite(v) else float(v) for v in values]
            for key, values in self.history.items()
        }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingResult":
        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        history = {key: [number(v) for v in values]
                   for key, values in (data.get("history") or {}).items()}
        return cls(
            status=data["status"],
            history=history,
            val_loss=number(data.get("val_loss")),
            val_accuracy=number(data.get("val_accuracy")),
            best_epoch=data.get("best_epoch"),
            epochs_run=int(data.get("epochs_run", 0)),
            duration_seconds=float(data.get("duration_seconds", 0.0)),
            parameter_count=int(data.get("parameter_count", 0)),
            model_path=data.get("model_path"),
            error=data.get("error"),
            stop_reason=data.get("stop_reason"),
            stop_explanation=data.get("stop_explanation"),
            stop_epoch=None if data.get("stop_epoch") is None else int(data["stop_epoch"]),
        )


@dataclass(frozen=True)
class RandomWeightLosses:
    """The loss of one untrained network over random draws of its weights (the neural block's
    `random_weight_losses`), what a training-free fitness (sdt/strategies/mrs.py) is computed from."""

    losses: tuple[float, ...]      # one cross-entropy per weight draw
    chance_loss: float             # ln K: the loss of a uniform guess over the K classes
    seconds: float = 0.0           # what the estimate cost


@dataclass(frozen=True)
class Decision:
    """Why a strategy proposed a training, in its own terms; persisted whole with the trial.

    `strategy` names the sampler that decided ("gaussian process", "meta-lr", "evolution"...),
    `summary` is one sentence for people (the console and the dashboard's Decisions page), and
    `facts` holds the numbers behind it as JSON values, under names the strategy documents
    (meta-lr: the move drawn and p1/p2/p3; evolution: parents, tournament and operators).
    """

    strategy: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "summary": self.summary, "facts": dict(self.facts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Decision":
        return cls(strategy=str(data["strategy"]), summary=str(data["summary"]), facts=dict(data.get("facts") or {}))


@dataclass(frozen=True)
class Proposal:
    """What a strategy's ask() returns: the next training's hyper-parameters and network, and why."""

    params: dict[str, Any]
    architecture: Architecture
    decision: Decision | None = None


__all__ = [
    "Architecture", "ArchitectureFeature", "Decision", "Proposal", "RandomWeightLosses", "ARCHITECTURE_FEATURES", "ARCHITECTURE_ACTIONS", "COUNT", "SWITCH",
    "FEATURES_BY_NAME", "TrainingResult", "switches_of_actions",
    "MAX_EXTRA_CONV_BLOCKS", "MAX_EXTRA_DENSE_LAYERS", "L2_FACTOR",
    "extra_conv_width_name", "extra_dense_width_name",
]
