"""Tests of neural_network.py: the network built for each architecture, and real (tiny) trainings.

Building tests are fast; tests that train are marked slow and use a few dozen synthetic images
(a class-dependent bright band, so something is learnable), 1-3 epochs and widths of 4-8.
The dataset is a stand-in with the attributes of datasets.Dataset (duck typing), except for the
one test on the default dataset, which is skipped until data/fashion_mnist_small.npz exists.
"""

from __future__ import annotations

import gc
import logging
import math
from dataclasses import dataclass, replace

import keras
import numpy as np
import psutil
import pytest
import tensorflow as tf

from sdt.neural.network import (
    BATCH_NORM_MOMENTUM,
    OPTIMIZERS,
    build_model,
    configure_determinism,
    evaluate,
    max_extra_conv_blocks,
    optimizer_class,
    train,
)
from sdt.core.errors import ConfigurationError, RunStateError
from sdt.core.records import (
    L2_FACTOR,
    MAX_EXTRA_CONV_BLOCKS,
    Architecture,
    TrainingResult,
    extra_conv_width_name,
    extra_dense_width_name,
)
from sdt.core.vocabulary import (
    ACCURACY, HISTORY_KEYS, TRAIN_EVAL_ACCURACY, TRAIN_EVAL_KEYS, TRAIN_EVAL_LOSS, TrialStatus,
)

NUM_CLASSES = 3

# Small widths keep every build and training fast; the structure is what is tested.
TINY_PARAMS = {
    "unit_c1": 4, "dr1_2": 0.1, "unit_c2": 4, "unit_d": 8, "dr_f": 0.1,
    "learning_rate": 1e-3, "batch_size": 32, "optimizer": "Adam", "activation": "relu",
    "unit_c3": 4, "unit_c4": 4, "unit_c5": 4, "unit_d2": 6, "unit_d3": 5, "unit_d4": 5,
    L2_FACTOR: 1e-3,
}

# Listing 3 defaults used for the timing and the default-dataset training.
PAPER_PARAMS = {
    "unit_c1": 32, "dr1_2": 0.15, "unit_c2": 96, "unit_d": 384, "dr_f": 0.25,
    "learning_rate": 1e-3, "batch_size": 64, "optimizer": "Adam", "activation": "relu",
}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

@dataclass
class ToyDataset:
    """Stand-in for datasets.Dataset with the attributes the neural block reads."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    allows_horizontal_flip: bool = True
    class_names: tuple[str, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(side) for side in self.x_train.shape[1:])


def banded_images(count: int, side: int, channels: int, rng: np.random.Generator):
    """Noise images where class c has a bright horizontal band in the c-th third of the rows."""
    labels = rng.integers(0, NUM_CLASSES, count).astype(np.int64)
    images = rng.random((count, side, side, channels), dtype=np.float32) * 0.4
    band = max(1, side // NUM_CLASSES)
    for index, label in enumerate(labels):
        images[index, label * band:(label + 1) * band] += 0.6
    return np.clip(images, 0.0, 1.0), labels


def toy_dataset(n_train: int = 64, n_val: int = 32, side: int = 28, channels: int = 1,
                seed: int = 0, allows_horizontal_flip: bool = True) -> ToyDataset:
    rng = np.random.default_rng(seed)
    x_train, y_train = banded_images(n_train, side, channels, rng)
    x_val, y_val = banded_images(n_val, side, channels, rng)
    x_test, y_test = banded_images(n_val, side, channels, rng)
    return ToyDataset("toy", x_train, y_train, x_val, y_val, x_test, y_test, NUM_CLASSES,
                      allows_horizontal_flip)


def tiny_model(architecture: Architecture = Architecture(), input_shape=(28, 28, 1),
               allows_horizontal_flip: bool = True, **overrides) -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model({**TINY_PARAMS, **overrides}, architecture, input_shape, NUM_CLASSES,
                       allows_horizontal_flip)


def layers_of(model: keras.Model, layer_type: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


def tiny_train(dataset=None, architecture: Architecture = Architecture(), *, tmp_path=None,
               epochs: int = 1, seed: int = 0, **kwargs) -> TrainingResult:
    params = {**TINY_PARAMS, **kwargs.pop("params", {})}
    return train(params, architecture, dataset or toy_dataset(), epochs=epochs, seed=seed,
                 tensorboard_dir=kwargs.pop("tensorboard_dir", None),
                 model_path=kwargs.pop("model_path", None), **kwargs)


def rss_megabytes() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


# ---------------------------------------------------------------------------------------------
# Optimizers and determinism
# ---------------------------------------------------------------------------------------------

def test_optimizer_names_are_the_contract():
    assert set(OPTIMIZERS) == {"Adam", "Adamax", "RMSprop", "Adadelta", "SGD"}
    assert OPTIMIZERS["RMSprop"] is keras.optimizers.RMSprop


@pytest.mark.parametrize("name", ["adam", "ADAMAX", "rmsprop", "AdaDelta", "sgd", " Adam "])
def test_optimizer_lookup_ignores_case(name):
    assert optimizer_class(name) is OPTIMIZERS[{k.lower(): k for k in OPTIMIZERS}[
        name.strip().lower()]]


@pytest.mark.parametrize("name", ["Nadam", "", "keras.optimizers.Adam", "__import__('os')", None])
def test_unknown_optimizer_is_a_configuration_error(name):
    # Not a registered name: no eval, no attribute lookup on keras.optimizers.
    with pytest.raises(ConfigurationError, match="optimizer"):
        optimizer_class(name)


def test_configure_determinism_seeds_and_can_be_repeated():
    configure_determinism(7)
    first = (np.random.rand(), float(tf.random.uniform(())))
    configure_determinism(7)  # a second call must not raise
    second = (np.random.rand(), float(tf.random.uniform(())))
    assert first == second


# ---------------------------------------------------------------------------------------------
# Network structure
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra_conv, extra_dense",
                         [(0, 0), (1, 0), (2, 0), (0, 2), (2, 2), (1, 3)])
def test_layer_counts_follow_the_architecture(extra_conv, extra_dense):
    model = tiny_model(Architecture(extra_conv_blocks=extra_conv, extra_dense_layers=extra_dense))
    blocks = 2 + extra_conv
    hidden_dense = 1 + extra_dense
    assert len(layers_of(model, keras.layers.Conv2D)) == 2 * blocks
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == 2   # only the paper's blocks pool
    assert len(layers_of(model, keras.layers.Dense)) == hidden_dense + 1
    assert len(layers_of(model, keras.layers.Activation)) == 2 * blocks + hidden_dense
    assert len(layers_of(model, keras.layers.Dropout)) == blocks + hidden_dense
    assert not layers_of(model, keras.layers.BatchNormalization)
    assert model.output_shape == (None, NUM_CLASSES)


def test_added_layers_take_their_widths_from_the_extra_hyper_parameters():
    model = tiny_model(Architecture(extra_conv_blocks=2, extra_dense_layers=2),
                       unit_c3=5, unit_c4=7, unit_d2=9, unit_d3=11)
    assert model.get_layer("block_extra1_conv1").filters == 5
    assert model.get_layer("block_extra2_conv2").filters == 7
    assert model.get_layer("dense_extra1").units == 9
    assert model.get_layer("dense_extra2").units == 11
    assert model.get_layer("block_extra1_conv2").padding == "same"


def test_every_hidden_dense_layer_is_followed_by_its_activation():
    # The original inserted dense layers without an activation: each must have one.
    model = tiny_model(Architecture(extra_dense_layers=2), activation="elu")
    hidden = [layer for layer in layers_of(model, keras.layers.Dense) if layer.name != "output"]
    assert [layer.name for layer in hidden] == ["dense", "dense_extra1", "dense_extra2"]
    for layer in hidden:
        activation = model.get_layer(f"{layer.name}_act")
        assert activation.input is layer.output
        assert activation.get_config()["activation"] == "elu"
    assert model.get_layer("output").get_config()["activation"] == "softmax"


def test_output_is_a_probability_per_class():
    model = tiny_model(Architecture(extra_conv_blocks=1, extra_dense_layers=1))
    probabilities = model(np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32))
    assert probabilities.shape == (5, NUM_CLASSES)
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1), (16, 16, 1), (3, 3, 1),
                                         (512, 512, 3)])
def test_max_extra_conv_blocks_is_the_hard_limit_for_every_input(input_shape):
    # Added blocks do not pool (issue 13), so no input is too small for them.
    assert max_extra_conv_blocks(input_shape) == MAX_EXTRA_CONV_BLOCKS


def test_max_extra_conv_blocks_still_checks_the_input_shape():
    with pytest.raises(ConfigurationError, match="input_shape"):
        max_extra_conv_blocks((28, 28))


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (8, 8, 1)])
def test_an_added_conv_block_adds_parameters_and_keeps_the_features_reaching_the_dense_layer(input_shape):
    # Added blocks used to end with a 2x2 max-pool: on 28x28 the network then shrank (1.06M ->
    # 0.45M parameters at the paper's widths) and 8x8 inputs could take no block at all.
    models = [tiny_model(Architecture(extra_conv_blocks=extra), input_shape=input_shape)
              for extra in range(MAX_EXTRA_CONV_BLOCKS + 1)]
    counts = [model.count_params() for model in models]
    assert all(fewer < more for fewer, more in zip(counts, counts[1:])), counts
    flattened = {model.get_layer("flatten").output.shape[-1] for model in models}
    assert len(flattened) == 1, flattened
    for extra, model in enumerate(models[1:], start=1):
        block = model.get_layer(f"block_extra{extra}_dropout")
        assert block.output.shape == model.get_layer("block2_dropout").output.shape


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1), (16, 16, 1), (64, 48, 3)])
def test_every_allowed_number_of_extra_blocks_builds(input_shape):
    for extra in range(max_extra_conv_blocks(input_shape) + 1):
        model = tiny_model(Architecture(extra_conv_blocks=extra), input_shape=input_shape)
        assert model.output_shape == (None, NUM_CLASSES)


def test_small_digits_input_builds_and_runs():
    model = tiny_model(input_shape=(8, 8, 1))
    assert model(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (8, 8, 1), (32, 32, 3)])
def test_too_many_extra_conv_blocks_is_a_configuration_error(input_shape):
    # More added blocks than the hard limit: the build must refuse, whatever the input.
    with pytest.raises(ConfigurationError, match="extra_conv_blocks"):
        tiny_model(Architecture(extra_conv_blocks=MAX_EXTRA_CONV_BLOCKS + 1), input_shape=input_shape)


def test_numpy_scalars_from_scikit_optimize_are_accepted():
    params = {**TINY_PARAMS, "unit_c1": np.int64(6), "unit_c2": np.int32(5),
              "unit_d": np.int64(7), "dr1_2": np.float64(0.2), "dr_f": np.float32(0.3),
              "activation": np.str_("selu"), "unit_d2": np.int64(3), L2_FACTOR: np.float64(1e-4)}
    model = build_model(params, Architecture(extra_dense_layers=1, l2=True), (28, 28, 1),
                        np.int64(NUM_CLASSES))
    conv = model.get_layer("block1_conv1")
    assert conv.filters == 6 and type(conv.filters) is int
    assert model.get_layer("dense_extra1").units == 3
    assert model.get_layer("block1_dropout").rate == pytest.approx(0.2)


@pytest.mark.parametrize("architecture, missing", [
    (Architecture(), "unit_c1"),
    (Architecture(), "dr_f"),
    (Architecture(), "activation"),
    (Architecture(extra_conv_blocks=1), extra_conv_width_name(0)),
    (Architecture(extra_dense_layers=2), extra_dense_width_name(1)),
    (Architecture(l2=True), L2_FACTOR),
])
def test_missing_hyper_parameter_is_named(architecture, missing):
    params = {key: value for key, value in TINY_PARAMS.items() if key != missing}
    with pytest.raises(ConfigurationError, match=missing):
        build_model(params, architecture, (28, 28, 1), NUM_CLASSES)


@pytest.mark.parametrize("key, value", [
    ("unit_c1", 0), ("unit_d", 2.5), ("unit_c2", "64"), ("dr1_2", 1.0), ("dr_f", -0.1),
    ("activation", "no_such_activation"), ("activation", 3),
])
def test_malformed_hyper_parameter_is_a_configuration_error(key, value):
    # Zero or fractional widths, dropout outside [0, 1), unknown activation.
    with pytest.raises(ConfigurationError, match=key):
        tiny_model(**{key: value})


def test_l2_penalty_reaches_the_loss_and_scales_with_the_factor():
    assert tiny_model(Architecture()).losses == []
    architecture = Architecture(l2=True, extra_conv_blocks=1, extra_dense_layers=1)
    weak = tiny_model(architecture, **{L2_FACTOR: 1e-4})
    strong = tiny_model(architecture, **{L2_FACTOR: 1e-2})
    kernels = len(layers_of(weak, keras.layers.Conv2D)) + len(layers_of(weak, keras.layers.Dense))
    assert len(weak.losses) == kernels  # every conv and dense kernel, output layer included
    weak_penalty = float(sum(weak.losses))
    strong_penalty = float(sum(strong.losses))
    assert weak_penalty > 0
    # Same seed, same weights: the penalty is proportional to the factor.
    assert strong_penalty == pytest.approx(100 * weak_penalty, rel=1e-3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_batch_norm_after_every_hidden_activation_iff_switched_on(batch_norm):
    model = tiny_model(Architecture(batch_norm=batch_norm, extra_conv_blocks=1,
                                    extra_dense_layers=1))
    norms = layers_of(model, keras.layers.BatchNormalization)
    activations = layers_of(model, keras.layers.Activation)
    if not batch_norm:
        assert norms == []
        return
    assert len(norms) == len(activations)
    for activation in activations:
        assert model.get_layer(activation.name.replace("_act", "_bn")).input is activation.output
    # moving statistics warmed up within 20 optimiser steps, so short trainings validate correctly
    assert {norm.momentum for norm in norms} == {BATCH_NORM_MOMENTUM}
    assert BATCH_NORM_MOMENTUM ** 20 < 0.15


@pytest.mark.parametrize("augmentation, allows_flip, expected", [
    (False, True, set()),
    (True, True, {"augment_translate", "augment_flip"}),
    (True, False, {"augment_translate"}),  # mirrored digits change class: no flip
])
def test_augmentation_layers_present_iff_switched_on(augmentation, allows_flip, expected):
    model = tiny_model(Architecture(augmentation=augmentation), allows_horizontal_flip=allows_flip)
    random_types = (keras.layers.RandomTranslation, keras.layers.RandomFlip)
    random_layers = {layer.name for layer in model.layers if isinstance(layer, random_types)}
    assert random_layers == expected


@pytest.mark.parametrize("allows_flip", [True, False])
def test_augmentation_acts_in_training_only(allows_flip):
    images = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    # No dropout, so augmentation is the only thing that differs between the two modes.
    plain = tiny_model(Architecture(), dr1_2=0.0, dr_f=0.0)
    np.testing.assert_allclose(plain(images, training=True), plain(images, training=False),
                               rtol=1e-5, atol=1e-6)

    model = tiny_model(Architecture(augmentation=True), allows_horizontal_flip=allows_flip,
                       dr1_2=0.0, dr_f=0.0)
    inference = model(images, training=False).numpy()
    np.testing.assert_array_equal(inference, model(images, training=False).numpy())
    assert not np.allclose(model(images, training=True).numpy(), inference, rtol=1e-5, atol=1e-6)

    augmented = keras.Model(model.input, model.get_layer("augment_translate").output)
    np.testing.assert_array_equal(augmented(images, training=False).numpy(), images)
    assert not np.allclose(augmented(images, training=True).numpy(), images)


# ---------------------------------------------------------------------------------------------
# Configuration errors from train: raised before any training
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, match", [
    ({"optimizer": "NoSuchOptimizer"}, "optimizer"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
])
def test_train_raises_configuration_errors(params, match, tmp_path):
    with pytest.raises(ConfigurationError, match=match):
        tiny_train(params=params, model_path=tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_train_names_a_missing_training_hyper_parameter():
    params = {key: value for key, value in TINY_PARAMS.items() if key != "batch_size"}
    with pytest.raises(ConfigurationError, match="batch_size"):
        train(params, Architecture(), toy_dataset(), epochs=1, seed=0, tensorboard_dir=None,
              model_path=None)


def test_train_refuses_too_many_conv_blocks():
    with pytest.raises(ConfigurationError, match="extra_conv_blocks"):
        tiny_train(toy_dataset(side=8), Architecture(extra_conv_blocks=MAX_EXTRA_CONV_BLOCKS + 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"),
    ({"model_path": "model.h5"}, "model_path"),
    ({"early_stopping_patience": -1}, "early_stopping_patience"),
])
def test_train_checks_its_arguments(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        tiny_train(**kwargs)


def test_evaluate_of_a_missing_model_file(tmp_path):
    with pytest.raises(RunStateError, match="does not exist"):
        evaluate(tmp_path / "missing.keras", np.zeros((1, 28, 28, 1)), np.zeros(1))


def test_exception_inside_fit_gives_failed_not_raised(monkeypatch, caplog):
    def out_of_memory(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(keras.Model, "fit", out_of_memory)
    with caplog.at_level(logging.ERROR, logger="neural_network"):
        result = tiny_train()
    assert result.status == TrialStatus.FAILED
    assert result.error == "ResourceExhaustedError: OOM when allocating tensor"
    assert math.isnan(result.val_loss) and result.epochs_run == 0
    assert result.parameter_count > 0  # the model was built before fit failed
    assert any(record.exc_info for record in caplog.records if record.levelno == logging.ERROR)


# ---------------------------------------------------------------------------------------------
# Real trainings (tiny)
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_short_training_returns_a_complete_result(tmp_path):
    dataset = toy_dataset()
    model_path = tmp_path / "not" / "yet" / "there" / "model.keras"
    tensorboard_dir = tmp_path / "tensorboard" / "trial_0"
    result = tiny_train(dataset, Architecture(batch_norm=True, l2=True, augmentation=True),
                        epochs=2, model_path=model_path, tensorboard_dir=tensorboard_dir)

    assert result.status == TrialStatus.COMPLETED and result.completed
    assert set(result.history) == set(HISTORY_KEYS) | set(TRAIN_EVAL_KEYS)
    assert all(len(values) == 2 for values in result.history.values())
    assert all(type(value) is float and math.isfinite(value)
               for values in result.history.values() for value in values)
    assert result.epochs_run == 2
    assert result.best_epoch == int(np.argmin(result.history["val_loss"]))
    assert result.val_loss == result.history["val_loss"][result.best_epoch]
    assert result.val_accuracy == result.history["val_accuracy"][result.best_epoch]
    assert result.duration_seconds > 0
    assert result.model_path == str(model_path) and model_path.is_file()
    assert result.error is None
    assert TrainingResult.from_dict(result.to_dict()) == result

    loaded = keras.models.load_model(model_path)
    assert loaded.count_params() == result.parameter_count > 0
    assert loaded.get_layer("augment_translate") is not None
    # The saved weights are the ones the reported validation numbers describe.
    scores = evaluate(model_path, dataset.x_val, dataset.y_val)
    assert scores["loss"] == pytest.approx(result.val_loss, rel=1e-4)
    assert scores["accuracy"] == pytest.approx(result.val_accuracy, abs=1e-6)

    assert list(tensorboard_dir.rglob("events.out.tfevents.*")), "no TensorBoard event file"


@pytest.mark.slow
def test_a_short_training_with_batch_norm_validates_with_its_moving_statistics():
    # Issue 13: validation (inference mode) uses batch norm's moving statistics. With Keras'
    # momentum 0.99 they still mostly hold their initial values after 50 optimiser steps, and a
    # model that learned validated near chance (measured here: 0.15 against 0.79 with batch
    # statistics; 0.15 against 0.97 in the issue). Dropout is 0, so batch norm is the only layer
    # that differs between the two modes.
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, y_train, x_val, y_val = x[:1600], y[:1600], x[1600:], y[1600:]
    keras.utils.set_random_seed(0)
    model = build_model({**TINY_PARAMS, "unit_c1": 8, "unit_c2": 8, "unit_d": 32, "dr1_2": 0.0, "dr_f": 0.0},
                        Architecture(batch_norm=True), (8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=1, steps_per_epoch=50, shuffle=True, verbose=0)

    def accuracy(training: bool) -> float:
        return float(np.mean(np.argmax(model(x_val, training=training).numpy(), axis=1) == y_val))

    with_batch_statistics = accuracy(training=True)
    assert with_batch_statistics > 0.5               # the model learned: the comparison means something
    assert accuracy(training=False) > with_batch_statistics - 0.1


@pytest.mark.slow
def test_training_metrics_are_also_measured_without_dropout_on_a_fixed_training_subset(monkeypatch, tmp_path):
    # Issue 13: Keras' accuracy is measured with dropout on and averaged over the epoch. After every
    # epoch the first TRAIN_EVAL_EXAMPLES training examples are evaluated in inference mode too.
    from sdt.neural import network
    from sdt.symbolic.statistics import history_statistics, validate_history
    monkeypatch.setattr(network, "TRAIN_EVAL_EXAMPLES", 16)
    dataset = toy_dataset(n_train=256)
    model_path = tmp_path / "model.keras"
    result = tiny_train(dataset, epochs=3, early_stopping_patience=None, model_path=model_path,
                        params={"dr1_2": 0.5, "dr_f": 0.7, "learning_rate": 3e-3, "batch_size": 16,
                                "unit_c1": 8, "unit_c2": 8, "unit_d": 32})
    assert result.status == TrialStatus.COMPLETED, result.error
    history = result.history
    assert all(len(history[key]) == 3 for key in TRAIN_EVAL_KEYS)
    # With this much dropout Keras' number understates the fit in every epoch (measured: 0.41,
    # 0.61, 0.86 against 1.0 each time).
    assert all(clean > keras_accuracy + 0.05
               for clean, keras_accuracy in zip(history[TRAIN_EVAL_ACCURACY], history[ACCURACY]))
    # The last epoch's numbers are those of the saved (last) weights on the first 16 training
    # examples, in inference mode, as `evaluate` measures them.
    scores = evaluate(model_path, dataset.x_train[:16], dataset.y_train[:16])
    assert history[TRAIN_EVAL_LOSS][-1] == pytest.approx(scores["loss"], rel=1e-4)
    assert history[TRAIN_EVAL_ACCURACY][-1] == pytest.approx(scores["accuracy"], abs=1e-6)
    assert TrainingResult.from_dict(result.to_dict()) == result
    # The diagnosis's training accuracy and loss are these (mean of the final window: the last epoch).
    stats = history_statistics(validate_history(history, NUM_CLASSES))
    assert stats["final_train_accuracy"] == pytest.approx(history[TRAIN_EVAL_ACCURACY][-1])
    assert stats["final_train_loss"] == pytest.approx(history[TRAIN_EVAL_LOSS][-1])
    assert stats["last_train_loss"] == pytest.approx(history["loss"][-1])    # the curve stays Keras'


class ScrambleWeightsAtEpoch(keras.callbacks.Callback):
    """Replaces every kernel with large random values when epoch `epoch` begins, so that epoch
    ends far worse than the ones before it and the best weights are not the last ones."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            rng = np.random.default_rng(0)
            self.model.set_weights([rng.normal(0.0, 3.0, weight.shape).astype(weight.dtype)
                                    for weight in self.model.get_weights()])


@pytest.mark.slow
@pytest.mark.parametrize("patience", [5, None])
def test_reported_validation_metrics_describe_the_kept_weights(patience, tmp_path):
    # Three epochs, the last one wrecked. With early stopping (not triggered: patience 5 > 1 bad
    # epoch) Keras must restore the best epoch at the end of training; without it the last
    # epoch's weights are kept. Either way the saved model scores what the result reports.
    dataset = toy_dataset()
    model_path = tmp_path / "model.keras"
    result = tiny_train(dataset, epochs=3, model_path=model_path,
                        early_stopping_patience=patience,
                        extra_callbacks=[ScrambleWeightsAtEpoch(2)])
    assert result.status == TrialStatus.COMPLETED and result.epochs_run == 3
    val_losses = result.history["val_loss"]
    assert val_losses[2] > 2 * min(val_losses[:2])  # the scrambling really hurt
    expected_epoch = int(np.argmin(val_losses)) if patience is not None else 2
    assert result.best_epoch == expected_epoch
    assert result.val_loss == val_losses[expected_epoch]
    assert evaluate(model_path, dataset.x_val, dataset.y_val)["loss"] == pytest.approx(
        result.val_loss, rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_trains_one_epoch(name, tmp_path):
    model_path = tmp_path / "model.keras"
    result = tiny_train(params={"optimizer": name.lower(), "learning_rate": 1e-2},
                        model_path=model_path)
    assert result.status == TrialStatus.COMPLETED, result.error
    assert math.isfinite(result.history["loss"][0])
    # The saved model was compiled with the optimizer the name refers to.
    assert type(keras.models.load_model(model_path).optimizer) is OPTIMIZERS[name]


@pytest.mark.slow
def test_absurd_learning_rate_is_reported_as_diverged(tmp_path, caplog):
    # SGD with a learning rate of 1e6 overflows the weights within the first steps
    # (loss inf or NaN for every seed and architecture tried).
    model_path = tmp_path / "model.keras"
    with caplog.at_level(logging.WARNING, logger="neural_network"):
        result = tiny_train(params={"optimizer": "SGD", "learning_rate": 1e6}, epochs=3,
                            model_path=model_path)
    assert result.status == TrialStatus.DIVERGED
    assert result.epochs_run == 1  # stopped in the first epoch, not run to the end
    # The epoch's mean training loss may still be finite when the validation loss is not.
    assert not (math.isfinite(result.history["loss"][-1])
                and math.isfinite(result.history["val_loss"][-1]))
    assert math.isnan(result.val_loss) and math.isnan(result.val_accuracy)
    assert result.model_path is None and not model_path.exists()
    assert result.to_dict()["val_loss"] is None
    assert "diverged" in caplog.text


@pytest.mark.slow
def test_exception_during_an_epoch_keeps_the_history_so_far(caplog):
    class FailInSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM in epoch 2")

    with caplog.at_level(logging.ERROR, logger="neural_network"):
        result = tiny_train(epochs=3, extra_callbacks=[FailInSecondEpoch()])
    assert result.status == TrialStatus.FAILED
    assert result.error == "ResourceExhaustedError: OOM in epoch 2"
    assert result.epochs_run == 1 and len(result.history["val_loss"]) == 1
    assert "training failed" in caplog.text


@pytest.mark.slow
def test_digits_sized_input_trains():
    result = tiny_train(toy_dataset(side=8, allows_horizontal_flip=False),
                        Architecture(augmentation=True, batch_norm=True), epochs=1)
    assert result.status == TrialStatus.COMPLETED, result.error
    assert result.best_epoch == 0


@pytest.mark.slow
def test_same_seed_same_history_other_seed_other_history():
    configure_determinism(0)
    first = tiny_train(seed=3)
    again = tiny_train(seed=3)
    other = tiny_train(seed=4)
    assert first.history == again.history
    assert first.history != other.history


@pytest.mark.slow
def test_memory_stays_flat_across_trainings(tmp_path):
    # Each training clears the Keras session and drops the custom gradients TensorFlow registers
    # for the traced train step. Without the latter every training leaked its whole traced graph:
    # 12-22 MB per training of this tiny model, 120-220 MB over ten (measured, TF 2.21).
    # With it, ten trainings grew RSS by under 10 MB after a warm-up (TensorFlow's one-off
    # allocations); 60 MB leaves room for allocator noise yet fails on any leak of >= 6 MB
    # per training.
    dataset = toy_dataset(n_train=32, n_val=16)

    def one_training(index: int) -> None:
        result = tiny_train(dataset, seed=index,
                            tensorboard_dir=tmp_path / f"tensorboard_{index}",
                            model_path=tmp_path / f"model_{index}.keras")
        assert result.status == TrialStatus.COMPLETED, result.error

    for index in range(2):
        one_training(index)
    before = rss_megabytes()
    for index in range(2, 12):
        one_training(index)
    growth = rss_megabytes() - before
    assert growth < 60, f"RSS grew by {growth:.0f} MB over 10 trainings"


@pytest.mark.slow
def test_short_training_on_the_default_dataset():
    datasets = pytest.importorskip("datasets")
    try:
        dataset = datasets.load_dataset("fashion_mnist_small", seed=0)
    except (FileNotFoundError, ConfigurationError) as err:
        pytest.skip(f"default dataset not available yet: {err}")
    # A quarter of the training images and two epochs: 0.67-0.71 validation accuracy measured
    # (seeds 0, 1); 0.5 is five times chance (0.1) with room for platform differences.
    subset = replace(dataset, x_train=dataset.x_train[:1350], y_train=dataset.y_train[:1350])
    result = train(PAPER_PARAMS, Architecture(), subset, epochs=2, seed=0, tensorboard_dir=None,
                   model_path=None)
    assert result.status == TrialStatus.COMPLETED, result.error
    assert result.val_accuracy > 0.5
    assert result.parameter_count == build_model(
        PAPER_PARAMS, Architecture(), dataset.input_shape, dataset.num_classes).count_params()


@pytest.mark.slow
def test_recorded_losses_are_the_data_cross_entropy_without_the_l2_penalty(tmp_path):
    # A large L2 factor makes Keras' loss (cross-entropy + penalty) far larger than the
    # cross-entropy; the tuner must record and compare the cross-entropy alone.
    class KerasLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.logs = dict(logs)

    keras_logs = KerasLogs()
    dataset = toy_dataset()
    result = tiny_train(dataset, Architecture(l2=True, batch_norm=True), early_stopping_patience=None,
                        params={L2_FACTOR: 0.5}, model_path=tmp_path / "model.keras",
                        extra_callbacks=[keras_logs])
    assert result.status == TrialStatus.COMPLETED
    logs = keras_logs.logs
    assert logs["loss"] - result.history["loss"][0] > 1.0            # Keras' loss carries the penalty...
    assert logs["val_loss"] - result.val_loss > 1.0
    assert result.history["loss"][0] == pytest.approx(logs["crossentropy"])   # ...the record does not
    assert result.val_loss == pytest.approx(logs["val_crossentropy"])
    evaluated = evaluate(tmp_path / "model.keras", dataset.x_val, dataset.y_val)
    assert evaluated["loss"] == pytest.approx(result.val_loss, abs=1e-3)


def test_every_epoch_is_told_as_it_ends_and_a_failing_report_costs_nothing(caplog):
    told = []
    result = tiny_train(epochs=3, early_stopping_patience=None,
                        on_epoch=lambda epoch, epochs, numbers: told.append((epoch, epochs, numbers)))
    assert result.status == TrialStatus.COMPLETED
    assert [(epoch, epochs) for epoch, epochs, _ in told] == [(1, 3), (2, 3), (3, 3)]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss"):
        assert [numbers[key] for _, _, numbers in told] == pytest.approx(result.history[key]), key

    def broken(epoch, epochs, numbers):
        raise RuntimeError("the terminal went away")
    result = tiny_train(epochs=2, early_stopping_patience=None, on_epoch=broken)
    assert result.status == TrialStatus.COMPLETED and result.epochs_run == 2
    assert "the epoch report failed after epoch 1" in caplog.text
