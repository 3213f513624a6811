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

from sdt.core.vocabulary import TrialStatus

# Hard limits on what the architecture actions may add. The conv limit is further
# bounded by the input size (a block is added only while its max-pool still halves a
# feature map of at least 2x2): see neural_network.max_extra_conv_blocks.
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


# Hyper-parameter holding the L2 weight-decay factor once `reg_l2` switched L2 on.
L2_FACTOR = "l2_factor"


@dataclass(frozen=True)
class Architecture:
    """What the tuning actions changed in the paper's CNN; the default is Listing 4 as is."""

    extra_conv_blocks: int = 0     # conv blocks inserted after the two of Listing 4
    extra_dense_layers: int = 0    # dense layers inserted after unit_d, each with its activation
    l2: bool = False               # L2 kernel regularisation on every conv/dense kernel
    batch_norm: bool = False       # batch normalisation after every hidden activation
    augmentation: bool = False     # random shift (and flip where sensible) layers, training only

    def extra_width_names(self) -> list[str]:
        """Names of the width hyper-parameters the added layers need, in build order."""
        return ([extra_conv_width_name(i) for i in range(self.extra_conv_blocks)]
                + [extra_dense_width_name(i) for i in range(self.extra_dense_layers)])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        return cls(
            extra_conv_blocks=int(data.get("extra_conv_blocks", 0)),
            extra_dense_layers=int(data.get("extra_dense_layers", 0)),
            l2=bool(data.get("l2", False)),
            batch_norm=bool(data.get("batch_norm", False)),
            augmentation=bool(data.get("augmentation", False)),
        )


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of one training of one configuration.

    `history` holds the per-epoch Keras metrics (loss, accuracy, val_loss, val_accuracy) of
    every epoch that ran. `val_loss` / `val_accuracy` are those of the weights the model was
    left with (EarlyStopping restores the best epoch), i.e. of `best_epoch` (0-based).
    For a diverged or failed training they may be NaN; the objective layer turns that into
    a finite penalty.
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
        )


__all__ = [
    "Architecture", "TrainingResult",
    "MAX_EXTRA_CONV_BLOCKS", "MAX_EXTRA_DENSE_LAYERS", "L2_FACTOR",
    "extra_conv_width_name", "extra_dense_width_name",
]
