"""The neural block: build the paper's CNN (SoftwareX Listing 4) for one configuration and train it.

`build_model` turns a hyper-parameter dict plus the `Architecture` grown by the tuning actions into
an uncompiled Keras model; `train` builds, compiles, fits on train/validation and hands back a
`TrainingResult` (numbers and the saved model's path, never the model object); `evaluate` scores a
saved model once, on the test set. It is plain Keras 3: what depends on the engine under Keras
(seeding and deterministic ops, devices, the input pipeline, memory between trainings) goes
through sdt/neural/backend.py, the tuner's only TensorFlow-specific module. It knows nothing of
diagnosis or search spaces: it builds and trains what it is given.

Failures inside one training are reported, not raised: a loss that becomes NaN or infinite
gives status `diverged`, any exception while building, fitting or saving gives status `failed`
(logged with its traceback). A training that `should_stop` (a plain callable handed down by the
run layer: the stop rules of the symbolic block, issue 14) ends after an epoch gets status
`pruned`, with the reason and its explanation. Configuration mistakes (a missing or malformed hyper-parameter, an
unknown optimizer or activation, an architecture that does not fit the input) raise
`ConfigurationError` before any training starts.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import keras
import numpy as np

from sdt.core.errors import ConfigurationError, RunStateError
from sdt.core.records import (
    L2_FACTOR,
    RandomWeightLosses,
    MAX_EXTRA_CONV_BLOCKS,
    MAX_EXTRA_DENSE_LAYERS,
    Architecture,
    TrainingResult,
    extra_conv_width_name,
    extra_dense_width_name,
)
from sdt.core.vocabulary import (
    ACCURACY, ACTIVATION, BATCH_SIZE, CONV_WIDTHS, DENSE_WIDTH, DROPOUTS, HISTORY_KEYS, LEARNING_RATE, LOSS,
    OPTIMIZER, TRAIN_EVAL_ACCURACY, TRAIN_EVAL_KEYS, TRAIN_EVAL_LOSS, VAL_LOSS, TrialStatus,
)
from sdt.neural import backend

logger = logging.getLogger(__name__)

# Optimizers the `optimizer` hyper-parameter may name (looked up case-insensitively).
OPTIMIZERS: dict[str, type] = {
    "Adam": keras.optimizers.Adam,
    "Adamax": keras.optimizers.Adamax,
    "RMSprop": keras.optimizers.RMSprop,
    "Adadelta": keras.optimizers.Adadelta,
    "SGD": keras.optimizers.SGD,
}

# Hyper-parameters every network needs (Listing 3 names), by the type they are converted to.
_INT_PARAMS = (*CONV_WIDTHS, DENSE_WIDTH)
_RATE_PARAMS = DROPOUTS
# The widths of added conv blocks and dense layers (unit_c3.., unit_d2..; sdt/core/records.py).
_EXTRA_WIDTHS = frozenset([*map(extra_conv_width_name, range(MAX_EXTRA_CONV_BLOCKS)),
                           *map(extra_dense_width_name, range(MAX_EXTRA_DENSE_LAYERS))])

# The second conv of a paper block is 'valid' (shrinks the map by 2) only when the map is at
# least this many pixels on each side; below that it is 'same', so small inputs (8x8 digits) build.
_MIN_SIZE_FOR_VALID_CONV = 4
# A 2x2 max-pool needs a map of at least 2x2 to halve.
_MIN_SIZE_FOR_POOL = 2
# The paper's network has two conv blocks before any added ones.
_PAPER_CONV_BLOCKS = 2
# Momentum of the batch-normalisation moving statistics (Keras' default is 0.99). Inference uses
# the moving statistics, which after n optimiser steps still carry momentum**n of their initial
# values: with 0.99 a short training (50 steps, 0.99**50 = 0.6) validates with statistics that
# are mostly the initial ones, and its validation accuracy collapses (0.15 against 0.97 without
# batch norm, measured in issue 13); with 0.9 they are warmed up within about 20 steps.
BATCH_NORM_MOMENTUM = 0.9
# Fraction of the image height/width the augmentation may shift by (the original's 10%).
_AUGMENT_SHIFT = 0.1


# ---------------------------------------------------------------------------------------------
# Determinism and optimizers
# ---------------------------------------------------------------------------------------------

def configure_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend and make the backend's ops deterministic (backend.configure).

    Safe to call repeatedly. Deterministic ops can be slower (on GPU especially) and make a few
    ops raise instead of running non-deterministically; the caller decides whether to pay that.
    """
    backend.configure(seed)


def optimizer_class(name: str) -> type:
    """The Keras optimizer class named `name` (case-insensitive), from `OPTIMIZERS`."""
    if isinstance(name, str):
        for known, cls in OPTIMIZERS.items():
            if known.lower() == name.strip().lower():
                return cls
    raise ConfigurationError(
        f"hyper-parameter `optimizer` must be one of {sorted(OPTIMIZERS)}, got {name!r}")


# ---------------------------------------------------------------------------------------------
# Hyper-parameters: check and convert (scikit-optimize hands out numpy scalars)
# ---------------------------------------------------------------------------------------------

def _required(params: Mapping[str, Any], key: str) -> Any:
    if key not in params:
        raise ConfigurationError(f"hyper-parameter `{key}` is missing (given: {sorted(params)})")
    return params[key]


def _as_positive_int(params: Mapping[str, Any], key: str) -> int:
    value = _required(params, key)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ConfigurationError(f"hyper-parameter `{key}` must be an integer, got {value!r}")
    if not float(value).is_integer() or value < 1:
        raise ConfigurationError(f"hyper-parameter `{key}` must be an integer >= 1, got {value!r}")
    return int(value)


def _as_float(params: Mapping[str, Any], key: str, *, low: float, high: float,
              high_inclusive: bool, low_inclusive: bool = True) -> float:
    value = _required(params, key)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ConfigurationError(f"hyper-parameter `{key}` must be a number, got {value!r}")
    number = float(value)
    above_low = number >= low if low_inclusive else number > low
    below_high = number <= high if high_inclusive else number < high
    if not (math.isfinite(number) and above_low and below_high):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ConfigurationError(f"hyper-parameter `{key}` must be in {interval}, got {value!r}")
    return number


def _as_name(params: Mapping[str, Any], key: str) -> str:
    value = _required(params, key)
    if not isinstance(value, str):  # numpy str_ is a str subclass
        raise ConfigurationError(f"hyper-parameter `{key}` must be a name, got {value!r}")
    return str(value)


def _network_params(params: Mapping[str, Any], architecture: Architecture) -> dict[str, Any]:
    """The values `build_model` needs, as plain Python int/float/str; unused keys are ignored."""
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"params must be a dict, got {type(params).__name__}")
    converted: dict[str, Any] = {key: _as_positive_int(params, key) for key in _INT_PARAMS}
    for key in _RATE_PARAMS:
        # A dropout rate of 1 would zero every activation.
        converted[key] = _as_float(params, key, low=0.0, high=1.0, high_inclusive=False)
    for key in architecture.extra_width_names():
        converted[key] = _as_positive_int(params, key)
    if architecture.l2:
        converted[L2_FACTOR] = _as_float(params, L2_FACTOR, low=0.0, high=math.inf,
                                         high_inclusive=False)
    converted[ACTIVATION] = _check_activation(params, ACTIVATION)
    return converted


def _training_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The values `train` needs on top of the network's, as plain Python values."""
    optimizer_name = _as_name(params, OPTIMIZER)
    return {
        LEARNING_RATE: _as_float(params, LEARNING_RATE, low=0.0, high=math.inf,
                                   low_inclusive=False, high_inclusive=False),
        BATCH_SIZE: _as_positive_int(params, BATCH_SIZE),
        OPTIMIZER: optimizer_name,
        "optimizer_class": optimizer_class(optimizer_name),
    }


def check_values(values: Mapping[str, Iterable[Any]], builds_network: bool = True) -> None:
    """Refuse, before any training, a hyper-parameter value the trainer would refuse when it
    came to it: `values` maps a name to every value its dimension can take (the run passes the
    domain bounds and every category). Names this trainer does not read are the user's own and
    are left alone; with `builds_network` False (a user's model builds the network) only the
    training's own (learning rate, batch size, optimizer) are checked. ConfigurationError names
    the hyper-parameter and the value."""
    for name, candidates in values.items():
        if name in (LEARNING_RATE, BATCH_SIZE, OPTIMIZER):
            check = _TRAINING_CHECKS[name]
        elif builds_network:
            check = next((c for match, c in _NETWORK_CHECKS if match(name)), None)
        else:
            check = None
        for value in (candidates if check is not None else ()):
            try:
                check({name: value}, name)
            except ConfigurationError as err:
                raise ConfigurationError(f"search space: {name} can take {value!r}, which no training "
                                         f"accepts ({err})") from None


def _check_activation(params: Mapping[str, Any], key: str) -> str:
    activation = _as_name(params, key)
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError) as err:
        raise ConfigurationError(
            f"hyper-parameter `{key}` must name a Keras activation (relu, elu, selu...), got {activation!r}") from err
    return activation


# check_values: the hyper-parameters the trainer reads, each with the check it applies.
_TRAINING_CHECKS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    LEARNING_RATE: lambda params, key: _as_float(params, key, low=0.0, high=math.inf, low_inclusive=False,
                                                 high_inclusive=False),
    BATCH_SIZE: _as_positive_int,
    OPTIMIZER: lambda params, key: optimizer_class(_as_name(params, key)),
}
_NETWORK_CHECKS: tuple[tuple[Callable[[str], bool], Callable[[Mapping[str, Any], str], Any]], ...] = (
    (lambda name: name in _INT_PARAMS or name in _EXTRA_WIDTHS, _as_positive_int),
    (lambda name: name in _RATE_PARAMS, lambda params, key: _as_float(params, key, low=0.0, high=1.0,
                                                                      high_inclusive=False)),
    (lambda name: name == L2_FACTOR, lambda params, key: _as_float(params, key, low=0.0, high=math.inf,
                                                                   high_inclusive=False)),
    (lambda name: name == ACTIVATION, _check_activation),
)


def _check_input_shape(input_shape: Iterable[Any]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if (len(shape) != 3
            or not all(isinstance(side, (int, np.integer)) and side >= 1 for side in shape)):
        raise ConfigurationError(
            f"input_shape must be (height, width, channels) of positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_architecture(architecture: Architecture, input_shape: tuple[int, int, int]) -> None:
    if not isinstance(architecture, Architecture):
        raise ConfigurationError(
            f"architecture must be an Architecture, got {type(architecture).__name__}")
    if not 0 <= architecture.extra_dense_layers <= MAX_EXTRA_DENSE_LAYERS:
        raise ConfigurationError(
            f"architecture.extra_dense_layers must be in [0, {MAX_EXTRA_DENSE_LAYERS}], "
            f"got {architecture.extra_dense_layers}")
    limit = max_extra_conv_blocks(input_shape)
    if not 0 <= architecture.extra_conv_blocks <= limit:
        raise ConfigurationError(
            f"architecture.extra_conv_blocks must be in [0, {limit}] for input "
            f"{input_shape[0]}x{input_shape[1]}x{input_shape[2]} (added blocks keep the feature "
            f"map's size, so every input takes up to {MAX_EXTRA_CONV_BLOCKS}), "
            f"got {architecture.extra_conv_blocks}")


# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

def _paper_blocks_plan(height: int, width: int) -> tuple[list[tuple[str, bool]], int, int]:
    """Second-conv padding and whether to pool for each paper block, and the map size after them."""
    plan = []
    for _ in range(_PAPER_CONV_BLOCKS):
        # The first conv is 'same': size unchanged.
        if min(height, width) >= _MIN_SIZE_FOR_VALID_CONV:
            padding = "valid"
            height, width = height - 2, width - 2
        else:
            padding = "same"
        pool = min(height, width) >= _MIN_SIZE_FOR_POOL
        if pool:
            height, width = height // 2, width // 2
        plan.append((padding, pool))
    return plan, height, width


def max_extra_conv_blocks(input_shape: Iterable[Any]) -> int:
    """How many conv blocks can be added after the paper's two for this (H, W, C) input.

    Added blocks use 'same' padding and do not pool (issue 13), so they keep the size of the
    map they get and fit after the paper's blocks on any input: MAX_EXTRA_CONV_BLOCKS for every
    valid input shape (8x8 digits included). Added blocks used to end with a 2x2 max-pool, which
    shrank what reached the dense layer (a 28x28 network lost parameters: 1.06M -> 0.45M) and
    left 8x8 inputs no block at all; an added block now only adds parameters. The input shape is
    still checked (ConfigurationError), and the function stays so the limit may depend on the
    input again.
    """
    _check_input_shape(input_shape)
    return MAX_EXTRA_CONV_BLOCKS


def _hidden_activation(x, name: str, activation: str, batch_norm: bool):
    """Activation of a hidden layer, followed by batch normalisation when switched on."""
    x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
    return x


def _conv_block(x, name: str, filters: int, *, second_padding: str, pool: bool,
                dropout: float, activation: str, batch_norm: bool, regularizer):
    """Conv(same) act [BN], Conv(second_padding) act [BN], [MaxPool 2x2], Dropout."""
    for index, padding in ((1, "same"), (2, second_padding)):
        x = keras.layers.Conv2D(filters, (3, 3), padding=padding, kernel_regularizer=regularizer,
                                name=f"{name}_conv{index}")(x)
        x = _hidden_activation(x, f"{name}_conv{index}", activation, batch_norm)
    if pool:
        x = keras.layers.MaxPooling2D(pool_size=(2, 2), name=f"{name}_pool")(x)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)


def _dense_layer(x, name: str, units: int, *, dropout: float, activation: str, batch_norm: bool,
                 regularizer):
    """Dense act [BN] Dropout."""
    x = keras.layers.Dense(units, kernel_regularizer=regularizer, name=name)(x)
    x = _hidden_activation(x, name, activation, batch_norm)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)


def build_model(params: dict, architecture: Architecture, input_shape, num_classes: int,
                allows_horizontal_flip: bool = True) -> keras.Model:
    """The paper's CNN (Listing 4) with the architecture's additions; uncompiled.

    Layer names: `augment_translate` / `augment_flip` (only active in training), `block1_*` and
    `block2_*` (the paper's blocks, widths unit_c1 / unit_c2), `block_extraK_*` (the K-th added
    block, width unit_c{K+2}; 'same' padding and no pool, so it keeps the map's size), `dense` (unit_d), `dense_extraK` (the K-th added dense layer, width
    unit_d{K+1}), `output`. Every hidden conv/dense layer is followed by `<name>_act` and, with
    batch_norm, `<name>_bn`. With architecture.l2 every conv and dense kernel (the output layer
    included) carries an L2 penalty of `l2_factor`, which reaches the loss through `model.losses`.

    Raises ConfigurationError for a missing or malformed hyper-parameter or an architecture that
    does not fit the input.
    """
    shape = _check_input_shape(input_shape)
    _check_architecture(architecture, shape)
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise ConfigurationError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    values = _network_params(params, architecture)
    return _build(values, architecture, shape, int(num_classes), bool(allows_horizontal_flip))


def _build(values: dict[str, Any], architecture: Architecture, shape: tuple[int, int, int],
           num_classes: int, allows_horizontal_flip: bool) -> keras.Model:
    regularizer = keras.regularizers.L2(values[L2_FACTOR]) if architecture.l2 else None
    layer_options = {"activation": values[ACTIVATION], "batch_norm": architecture.batch_norm,
                     "regularizer": regularizer}

    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    if architecture.augmentation:
        # Random layers are identities at inference, so validation and test see the real images.
        x = keras.layers.RandomTranslation(_AUGMENT_SHIFT, _AUGMENT_SHIFT,
                                           name="augment_translate")(x)
        if allows_horizontal_flip:
            x = keras.layers.RandomFlip("horizontal", name="augment_flip")(x)

    plan, height, width = _paper_blocks_plan(shape[0], shape[1])
    for index, (second_padding, pool) in enumerate(plan):
        x = _conv_block(x, f"block{index + 1}", values[CONV_WIDTHS[index]],
                        second_padding=second_padding, pool=pool, dropout=values[DROPOUTS[0]],
                        **layer_options)
    for index in range(architecture.extra_conv_blocks):
        # Added blocks keep the map's size ('same' padding, no pool): they add capacity and
        # leave the number of features reaching the dense layer unchanged (issue 13).
        x = _conv_block(x, f"block_extra{index + 1}", values[extra_conv_width_name(index)],
                        second_padding="same", pool=False, dropout=values[DROPOUTS[0]],
                        **layer_options)

    x = keras.layers.Flatten(name="flatten")(x)
    x = _dense_layer(x, "dense", values[DENSE_WIDTH], dropout=values[DROPOUTS[1]], **layer_options)
    for index in range(architecture.extra_dense_layers):
        x = _dense_layer(x, f"dense_extra{index + 1}", values[extra_dense_width_name(index)],
                         dropout=values[DROPOUTS[1]], **layer_options)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer,
                                 name="output")(x)
    return keras.Model(inputs, outputs, name="symbolic_dnn_tuner_cnn")


# ---------------------------------------------------------------------------------------------
# A user's own model (README, "Your own model")
# ---------------------------------------------------------------------------------------------

# Used for a user's model when its params have no batch_size / optimizer (Keras' defaults).
DEFAULT_BATCH_SIZE = 32
DEFAULT_OPTIMIZER = "Adam"


def _user_model_training_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """batch_size, optimizer and learning_rate when present in params, defaults when not."""
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"params must be a dict, got {type(params).__name__}")
    optimizer_name = _as_name(params, OPTIMIZER) if OPTIMIZER in params else DEFAULT_OPTIMIZER
    return {
        LEARNING_RATE: (_as_float(params, LEARNING_RATE, low=0.0, high=math.inf,
                                    low_inclusive=False, high_inclusive=False)
                          if LEARNING_RATE in params else None),   # None: the optimizer's default
        BATCH_SIZE: (_as_positive_int(params, BATCH_SIZE) if BATCH_SIZE in params
                       else DEFAULT_BATCH_SIZE),
        OPTIMIZER: optimizer_name,
        "optimizer_class": optimizer_class(optimizer_name),
    }


def _build_user_model(model_builder, params: Mapping[str, Any], architecture: Architecture,
                      input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Call the user's builder with plain Python values; anything but a keras.Model is an error."""
    plain = {key: value.item() if isinstance(value, np.generic) else value
             for key, value in params.items()}
    model = model_builder(plain, architecture, input_shape, num_classes)
    if not isinstance(model, keras.Model):
        name = getattr(model_builder, "__qualname__", repr(model_builder))
        raise TypeError(f"the model function {name} returned a {type(model).__name__}, "
                        f"expected a keras.Model")
    return model


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

# The data loss, measured as a metric next to Keras' loss (which adds the L2 penalty).
CROSSENTROPY = "crossentropy"
VAL_CROSSENTROPY = "val_crossentropy"

# How many training examples (the first ones of the training split, so the same for every trial
# of a run) are evaluated in inference mode after every epoch (train_eval_loss/_accuracy). Enough
# for an accuracy to about 1.5 points (binomial standard error at 0.5: 0.016); on the default data
# it is 1,024 forward passes against 5,400 training examples' forward and backward passes (about
# three forward passes each), an estimated 6% more work per epoch.
TRAIN_EVAL_EXAMPLES = 1024


class _TrainingSubsetEvaluation(keras.callbacks.Callback):
    """After every epoch, evaluates the model on a fixed subset of the training data in inference
    mode (no dropout, batch norm's moving statistics: as the validation data is evaluated) and adds
    the data loss and accuracy to the epoch's logs as train_eval_loss / train_eval_accuracy.

    Keras' own loss and accuracy are measured with dropout on and averaged over the epoch while the
    weights change, so they make a model look worse on its training data than it is; the diagnosis
    judges underfitting and overfitting on these numbers instead. Keras hands the same logs dict to
    every callback in turn, so the callbacks after this one (the recorder, TensorBoard) see them.
    """

    def __init__(self, data) -> None:
        super().__init__()
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        scores = self.model.evaluate(self.data, verbose=0, return_dict=True)
        # The data cross-entropy where the tuner compiled the model; a user's own compile has only
        # its loss (with whatever penalties it adds), as for the recorded losses.
        logs[TRAIN_EVAL_LOSS] = scores.get(CROSSENTROPY, scores.get(LOSS))
        logs[TRAIN_EVAL_ACCURACY] = scores.get(ACCURACY)


class _EpochRecorder(keras.callbacks.Callback):
    """Keeps the per-epoch metrics as Python floats, also when fit raises half-way."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {key: [] for key in (*HISTORY_KEYS, *TRAIN_EVAL_KEYS)}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # The losses recorded are the data cross-entropy (the metric), not Keras' loss, which
        # also holds the L2 penalty: a trial with L2 must not look worse for carrying it, and
        # the diagnosis reads curves against ln(num_classes). Models without the metric (a
        # user's own compile) fall back to Keras' loss.
        values = {LOSS: logs.get(CROSSENTROPY, logs.get(LOSS)),
                  VAL_LOSS: logs.get(VAL_CROSSENTROPY, logs.get(VAL_LOSS))}
        for key in self.history:
            value = values.get(key, logs.get(key))
            self.history[key].append(math.nan if value is None else float(value))


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training as soon as the training loss (or, at epoch end, the validation loss) is NaN
    or infinite, and remembers that it did, so the training is reported as diverged."""

    def __init__(self) -> None:
        super().__init__()
        self.diverged = False

    def _check(self, logs, key: str) -> None:
        value = (logs or {}).get(key)
        if value is not None and not math.isfinite(float(value)):
            self.diverged = True
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, LOSS)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, LOSS)
        self._check(logs, VAL_LOSS)


# `should_stop(history so far)`: None to go on, or (reason, explanation) to stop after this epoch.
StopCheck = Callable[[dict[str, list[float]]], "tuple[str, str] | None"]


class _StopWhenTold(keras.callbacks.Callback):
    """After every epoch but the last, hands the history so far (the recorder's, as plain lists)
    to `should_stop` and stops the training when it answers (reason, explanation); `decision`
    keeps (reason, explanation, epoch counted from 1). On the last epoch there is nothing left
    to save, so it is not asked. If `should_stop` raises, the training goes on without it (a
    warning is logged): stopping early saves time, it must never cost a training."""

    def __init__(self, should_stop: StopCheck, recorder: "_EpochRecorder", epochs: int) -> None:
        super().__init__()
        self.should_stop: StopCheck | None = should_stop
        self.recorder = recorder
        self.epochs = epochs
        self.decision: tuple[str, str, int] | None = None

    def on_epoch_end(self, epoch, logs=None):
        if self.should_stop is None or self.decision is not None or epoch + 1 >= self.epochs:
            return
        history = {key: list(values) for key, values in self.recorder.history.items()}
        try:
            answer = self.should_stop(history)
        except Exception:  # noqa: BLE001 - the stop check must not fail the training
            logger.warning("the stop check failed after epoch %d; this training runs to its end",
                           epoch + 1, exc_info=True)
            self.should_stop = None
            return
        if answer is not None:
            reason, explanation = answer
            self.decision = (str(reason), str(explanation), epoch + 1)
            self.model.stop_training = True


# `on_epoch(epoch counted from 1, epochs, this epoch's numbers)`: told after every epoch.
EpochReport = Callable[[int, int, dict[str, float]], None]


class _ReportEpoch(keras.callbacks.Callback):
    """Tells `on_epoch` the recorder's numbers of every finished epoch (progress for the user).
    A report that raises is logged and no longer asked: progress must never cost a training."""

    def __init__(self, on_epoch: EpochReport, recorder: "_EpochRecorder", epochs: int) -> None:
        super().__init__()
        self.on_epoch: EpochReport | None = on_epoch
        self.recorder = recorder
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if self.on_epoch is None:
            return
        numbers = {key: float(values[-1]) for key, values in self.recorder.history.items() if values}
        try:
            self.on_epoch(epoch + 1, self.epochs, numbers)
        except Exception:  # noqa: BLE001
            logger.warning("the epoch report failed after epoch %d; no more reports for this training",
                           epoch + 1, exc_info=True)
            self.on_epoch = None


@functools.cache
def _log_device_once() -> None:
    devices = backend.available_devices()
    if devices:
        logger.info("training on GPU: %s", ", ".join(devices))
    else:
        logger.info("training on CPU (no GPU visible to %s)", backend.active())


def _split(dataset, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(getattr(dataset, f"x_{prefix}"), dtype=np.float32)
        y = np.asarray(getattr(dataset, f"y_{prefix}"), dtype=np.int64)
    except AttributeError as err:
        raise ConfigurationError(f"dataset has no {prefix} split: {err}") from err
    if len(x) == 0 or len(x) != len(y):
        raise ConfigurationError(
            f"dataset {prefix} split must hold as many labels as images (> 0), "
            f"got {len(x)} images and {len(y)} labels")
    return x, y


def _check_model_path(model_path: str | Path | None) -> Path | None:
    if model_path is None:
        return None
    path = Path(model_path)
    if path.suffix != ".keras":
        raise ConfigurationError(f"model_path must end in .keras, got {str(path)!r}")
    return path


def train(params: dict, architecture: Architecture, dataset, *, epochs: int, seed: int,
          tensorboard_dir: str | Path | None, model_path: str | Path | None,
          early_stopping_patience: int | None = 5, verbose: int = 0,
          extra_callbacks=(), model_builder=None, should_stop: StopCheck | None = None,
          on_epoch: EpochReport | None = None) -> TrainingResult:
    """Build, compile and fit the network for `params` on `dataset`, validating every epoch.

    The history holds, per epoch, Keras' loss and accuracy on the training batches (dropout on,
    averaged over the epoch), val_loss and val_accuracy, and train_eval_loss / train_eval_accuracy:
    the first TRAIN_EVAL_EXAMPLES training examples evaluated in inference mode after the epoch
    (for a user's model too). The losses are the data cross-entropy without the L2 penalty (a
    user's compiled model: its own loss).

    The result's val_loss / val_accuracy are those of the weights the model ends with: with early
    stopping (patience not None) Keras restores the weights of the epoch with the lowest val_loss
    when training ends, stopped early or not, and best_epoch (0-based) is that epoch; without early
    stopping the last epoch's weights are kept and best_epoch is the last epoch. The model is saved
    to `model_path` (a .keras file; parent folders are created) unless the training diverged or
    failed. TensorBoard logs go to `tensorboard_dir` when given.

    `model_builder(params, architecture, input_shape, num_classes) -> keras.Model` replaces the
    built-in CNN (see `_build_user_model`); its params are not checked against the CNN's nine.

    `should_stop(history so far) -> (reason, explanation) | None` is asked after every epoch but
    the last (the history as the result would hold it); when it answers, the training stops
    after that epoch with status PRUNED: the metrics and saved model of its best epoch (restored
    as above, as for a completed training), plus stop_reason, stop_explanation and stop_epoch.

    `on_epoch(epoch, epochs, numbers)` is told after every epoch, with the epoch counted from 1
    and that epoch's numbers as the history holds them (progress shown to the user).

    A NaN or infinite loss stops the training, should_stop or not: status DIVERGED, the history
    so far, NaN val metrics. Any exception while building, fitting or saving: status FAILED with
    error="Type: message", logged with its traceback. Neither is raised. ConfigurationError is
    raised, before any training, for malformed params, architecture, dataset or arguments.
    """
    # Everything that can be checked without training is checked here, outside the try below,
    # so configuration mistakes stop the caller instead of turning into failed trials.
    input_shape = _check_input_shape(dataset.input_shape)
    _check_architecture(architecture, input_shape)
    num_classes = int(dataset.num_classes)
    if num_classes < 2:
        raise ConfigurationError(f"dataset.num_classes must be >= 2, got {num_classes}")
    if model_builder is None:
        network_values = _network_params(params, architecture)
        training_values = _training_params(params)
    else:
        training_values = _user_model_training_params(params)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ConfigurationError(f"epochs must be an integer >= 1, got {epochs!r}")
    if early_stopping_patience is not None and early_stopping_patience < 0:
        raise ConfigurationError(
            f"early_stopping_patience must be >= 0 or None, got {early_stopping_patience!r}")
    model_file = _check_model_path(model_path)
    x_train, y_train = _split(dataset, "train")
    x_val, y_val = _split(dataset, "val")

    _log_device_once()
    started = time.perf_counter()
    recorder = _EpochRecorder()
    divergence = _StopOnNonFiniteLoss()
    early_stopping = None
    parameter_count = 0

    def result(status: str, **fields: Any) -> TrainingResult:
        history = {key: list(values) for key, values in recorder.history.items()}
        return TrainingResult(status=status, history=history,
                              epochs_run=len(history[LOSS]),
                              duration_seconds=time.perf_counter() - started,
                              parameter_count=parameter_count, **fields)

    with backend.training_scope():
        try:
            # Drop the previous trainings' graphs and layers so memory stays flat over a long run.
            backend.clear_session()
            keras.utils.set_random_seed(int(seed))
            if model_builder is None:
                model = _build(network_values, architecture, input_shape, num_classes,
                               bool(getattr(dataset, "allows_horizontal_flip", False)))
            else:
                model = _build_user_model(model_builder, params, architecture, input_shape,
                                          num_classes)
            # A user's compiled model keeps its compile (and then has no cross-entropy metric).
            has_crossentropy = not getattr(model, "compiled", False)
            if has_crossentropy:
                learning_rate = training_values[LEARNING_RATE]
                model.compile(
                    optimizer=training_values["optimizer_class"](
                        **({} if learning_rate is None else {LEARNING_RATE: learning_rate})),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name=CROSSENTROPY)],
                )
            parameter_count = int(model.count_params())
            batch_size = training_values[BATCH_SIZE]
            subset = backend.make_dataset(x_train[:TRAIN_EVAL_EXAMPLES], y_train[:TRAIN_EVAL_EXAMPLES],
                                          batch_size, shuffle_seed=None)
            # The evaluation first: it adds its numbers to the logs the others read.
            callbacks: list[keras.callbacks.Callback] = [_TrainingSubsetEvaluation(subset), recorder, divergence]
            stopper = None
            if on_epoch is not None:
                callbacks.append(_ReportEpoch(on_epoch, recorder, int(epochs)))
            if should_stop is not None:
                # After the recorder (it reads this epoch's numbers), before early stopping.
                stopper = _StopWhenTold(should_stop, recorder, int(epochs))
                callbacks.append(stopper)
            if early_stopping_patience is not None:
                early_stopping = keras.callbacks.EarlyStopping(
                    monitor=VAL_CROSSENTROPY if has_crossentropy else VAL_LOSS, mode="min",
                    patience=int(early_stopping_patience), restore_best_weights=True)
                callbacks.append(early_stopping)
            if tensorboard_dir is not None:
                callbacks.append(backend.tensorboard_callback(Path(tensorboard_dir)))
            callbacks.extend(extra_callbacks)

            model.fit(
                backend.make_dataset(x_train, y_train, batch_size, shuffle_seed=int(seed)),
                validation_data=backend.make_dataset(x_val, y_val, batch_size, shuffle_seed=None),
                epochs=int(epochs),
                shuffle=False,  # the training pipeline shuffles, seeded
                callbacks=callbacks,
                verbose=verbose,
            )

            if divergence.diverged:
                logger.warning("training diverged (loss became NaN or infinite) after %d epoch(s)",
                               len(recorder.history[LOSS]))
                return result(TrialStatus.DIVERGED)

            epochs_run = len(recorder.history[LOSS])
            if early_stopping is not None and early_stopping.best_weights is not None:
                best_epoch = int(early_stopping.best_epoch)  # the epoch whose weights were restored
            else:
                best_epoch = epochs_run - 1
            saved = None
            if model_file is not None:
                model_file.parent.mkdir(parents=True, exist_ok=True)
                backend.save_model(model, model_file)
                saved = str(model_file)
            stop = {} if stopper is None or stopper.decision is None else {
                "stop_reason": stopper.decision[0], "stop_explanation": stopper.decision[1],
                "stop_epoch": stopper.decision[2]}
            return result(TrialStatus.PRUNED if stop else TrialStatus.COMPLETED,
                          val_loss=recorder.history[VAL_LOSS][best_epoch],
                          val_accuracy=recorder.history["val_accuracy"][best_epoch],
                          best_epoch=best_epoch, model_path=saved, **stop)
        except Exception as err:  # noqa: BLE001 - one failed training must not stop the run
            logger.exception("training failed")
            return result(TrialStatus.FAILED, error=f"{type(err).__name__}: {err}")


# ---------------------------------------------------------------------------------------------
# Training-free estimate: the loss of the untrained network over random weights (MRS)
# ---------------------------------------------------------------------------------------------

# How many training examples (the first ones, the same for every candidate of a run) the untrained
# network is evaluated on per weight draw, and how many draws: DLOPT's MRS samples its weights a
# few tens of times; 10 draws of 256 examples cost about a second on 2 CPU cores for the paper's
# CNN (docs/benchmarks.md measures it against a training).
RANDOM_WEIGHT_EXAMPLES = 256
RANDOM_WEIGHT_SAMPLES = 10


def _glorot_limit(shape: tuple[int, ...]) -> float:
    """Keras' Glorot-uniform limit sqrt(6 / (fan_in + fan_out)) of a kernel of `shape`."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return float(np.sqrt(6.0 / max(fan_in + fan_out, 1)))


def random_weight_losses(params: dict, architecture: Architecture, dataset, *, seed: int,
                         samples: int = RANDOM_WEIGHT_SAMPLES, examples: int = RANDOM_WEIGHT_EXAMPLES,
                         model_builder=None) -> RandomWeightLosses:
    """The cross-entropy of the untrained network of (params, architecture) on the first
    `examples` training examples, once for each of `samples` random draws of its weights.

    Every kernel (a weight of two or more dimensions) is drawn from Keras' default initialiser,
    Glorot uniform, from a generator seeded with `seed`; biases and batch-normalisation weights
    keep their initial values, and the network runs in inference mode (no dropout, no
    augmentation). This is what DLOPT's MRS samples, for a classifier: the distribution of the
    error of random weights, from which sdt/strategies/mrs.py scores a candidate before any
    training. Raises ConfigurationError for malformed params, like `train`.
    """
    input_shape = _check_input_shape(dataset.input_shape)
    _check_architecture(architecture, input_shape)
    num_classes = int(dataset.num_classes)
    network_values = _network_params(params, architecture) if model_builder is None else None
    x_train, y_train = _split(dataset, "train")
    x, y = x_train[:examples], y_train[:examples]
    rng = np.random.default_rng(int(seed))
    started = time.perf_counter()
    losses = []
    with backend.training_scope():
        backend.clear_session()
        if model_builder is None:
            model = _build(network_values, architecture, input_shape, num_classes,
                           bool(getattr(dataset, "allows_horizontal_flip", False)))
        else:
            model = _build_user_model(model_builder, params, architecture, input_shape, num_classes)
        kernels = [w for w in model.trainable_weights if len(w.shape) >= 2]
        for _ in range(int(samples)):
            for weight in kernels:
                shape = tuple(int(d) for d in weight.shape)
                limit = _glorot_limit(shape)
                weight.assign(rng.uniform(-limit, limit, size=shape).astype(np.float32))
            probabilities = np.asarray(model(x, training=False), dtype=np.float64)
            if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):    # a user's model giving logits
                shifted = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
                probabilities = shifted / shifted.sum(axis=1, keepdims=True)
            picked = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
            losses.append(float(-np.mean(np.log(picked))))
        backend.clear_session()
    return RandomWeightLosses(losses=tuple(losses), chance_loss=float(np.log(num_classes)),
                              seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Evaluation of a saved model
# ---------------------------------------------------------------------------------------------

def evaluate(model_path, x, y, *, batch_size: int = 256) -> dict[str, float]:
    """Loss and accuracy of the saved .keras model at `model_path` on (x, y).

    Meant to be called once, on the test set, for the best model of a run. The loss is the data
    cross-entropy without the L2 penalty, like the training and validation losses recorded.
    """
    path = Path(model_path)
    if not path.is_file():
        raise RunStateError(f"model file `{path}` does not exist")
    model = keras.models.load_model(path, compile=False)
    # Compile afresh: the evaluation needs only the loss and the metric, not the saved optimizer.
    model.compile(loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name=CROSSENTROPY)])
    data = backend.make_dataset(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64),
                                batch_size, shuffle_seed=None)
    scores = model.evaluate(data, verbose=0, return_dict=True)
    return {"loss": float(scores[CROSSENTROPY]), "accuracy": float(scores["accuracy"])}
