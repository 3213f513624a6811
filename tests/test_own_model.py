"""Your own model (--model module:function) and your own data (--dataset module:function).

Loop tests use the fake trainer; real Keras tests are tiny and marked slow.
"""

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sdt.run import loop as tuner
from sdt.core import user_code
from sdt.core.errors import ConfigurationError, DatasetError, SearchSpaceError
from sdt.run.storage import RunStorage
from tests.fake_training import FakeTrainer, fake_factory

REPO = Path(__file__).resolve().parent.parent
MLP = f"{REPO / 'examples' / 'mlp.py'}:build_mlp"
MLP_SPACE = str(REPO / "examples" / "mlp_space.json")
ARCHITECTURE_ACTIONS = {"reg_l2", "add_batch_norm", "data_augmentation", "new_fc_layer", "new_conv_layer"}


def config(**changes):
    base = dict(dataset="digits", max_evals=6, epochs=3, seed=1, initial_points=2, model=MLP,
                search_space_path=MLP_SPACE)
    base.update(changes)
    return tuner.RunConfig(**base)


def fake_run(folder, trainer, **changes):
    return tuner.run(config(**changes), folder, make_train=fake_factory(trainer))


def alternating(params, architecture, index):
    # Overfitting wants reg_l2, then data_augmentation (0.6) over inc_dropout (0.4);
    # underfitting wants inc_neurons, then new_fc_layer / new_conv_layer (0.45 each).
    return "overfitting" if index % 2 == 0 else "underfitting"


def applied_actions(summary):
    return [action for trial in summary["trials"] for action in trial["actions"]]


# ---------------------------------------------------------------------------------------
# Unsupported architecture actions
# ---------------------------------------------------------------------------------------

def test_unsupported_architecture_actions_are_never_applied(tmp_path):
    summary = fake_run(tmp_path / "own", FakeTrainer(alternating), max_evals=8)
    applied = applied_actions(summary)
    assert "data_augmentation" not in applied and "new_conv_layer" not in applied
    assert {"reg_l2", "new_fc_layer"} & set(applied)          # what the model declares may apply
    assert "inc_dropout" in applied                             # the rules fell back for overfitting
    assert all(t["architecture"]["augmentation"] is False and t["architecture"]["extra_conv_blocks"] == 0
               for t in summary["trials"])
    # The built-in CNN on the same curves does take data augmentation: the test can tell.
    builtin = tuner.run(tuner.RunConfig(dataset="digits", max_evals=8, epochs=3, seed=1, initial_points=2),
                        tmp_path / "builtin", make_train=fake_factory(FakeTrainer(alternating)))
    assert "data_augmentation" in applied_actions(builtin)


def test_a_model_that_cannot_grow_gets_no_width_dimensions_for_layers(tmp_path):
    context = tuner.prepare(config(), tmp_path)
    assert context.unsupported_actions == {"data_augmentation", "new_conv_layer"}
    assert context.limits.max_extra_conv_blocks == 0
    names = context.domain.hyper_parameters.names
    assert "unit_c3" not in names and "unit_d2" in names and "l2_factor" in names
    assert not {"unit_c1", "unit_c2", "dr1_2"} & set(names)    # the built-in network's names need not be there


def test_a_model_without_supports_takes_no_architecture_action(tmp_path):
    module = tmp_path / "fixed.py"
    module.write_text("def build(params, architecture, input_shape, num_classes):\n    raise AssertionError\n")
    summary = fake_run(tmp_path / "run", FakeTrainer(alternating), model=f"{module}:build")
    assert not ARCHITECTURE_ACTIONS & set(applied_actions(summary))
    assert applied_actions(summary)                             # search-space actions still apply


def test_the_builtin_model_still_needs_its_nine_parameters(tmp_path):
    with pytest.raises(SearchSpaceError, match="unit_c1"):
        tuner.prepare(config(model=None), tmp_path)


# ---------------------------------------------------------------------------------------
# Loading module:function
# ---------------------------------------------------------------------------------------

def write_module(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("spec, message", [
    ("no_colon", "must be module:function"),                    # no colon
    ("sdt_no_such_module_xyz:build", "no module named 'sdt_no_such_module_xyz'"),
    ("examples/no_such_file.py:build", "no such file"),
    ("examples/mlp.py:missing", "has no attribute 'missing'"),
    ("examples/mlp.py:keras", "expected a function"),          # a module attribute that is no function
])
def test_bad_model_specs_are_configuration_errors(spec, message, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigurationError, match=message):
        user_code.load_callable(spec)


def test_import_errors_and_bad_supports_are_configuration_errors(tmp_path):
    broken = write_module(tmp_path, "broken", "import sdt_surely_missing_dependency\n")
    with pytest.raises(ConfigurationError, match="raised ModuleNotFoundError"):
        user_code.load_callable(f"{broken}:build")
    # `supports` naming an action that does not exist
    bad = write_module(tmp_path, "bad_supports", """
        def build(params, architecture, input_shape, num_classes):
            pass
        build.supports = {"reg_l2", "fly"}
    """)
    with pytest.raises(ConfigurationError, match=r"unknown action\(s\) \['fly'\]"):
        tuner.prepare(config(model=f"{bad}:build"), tmp_path)


def test_a_dotted_module_is_found_in_the_working_directory(tmp_path, monkeypatch):
    write_module(tmp_path, "my_models_for_test", """
        def build(params, architecture, input_shape, num_classes):
            pass
        build.supports = ["new_fc_layer"]
    """)
    monkeypatch.chdir(tmp_path)
    function = user_code.load_callable("my_models_for_test:build")
    assert user_code.unsupported_actions(function) == {"reg_l2", "add_batch_norm", "data_augmentation",
                                                        "new_conv_layer"}
    assert user_code.normalise_spec("my_models_for_test:build") == "my_models_for_test:build"
    assert user_code.normalise_spec("examples/mlp.py:build_mlp") == f"{tmp_path}/examples/mlp.py:build_mlp"


def cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("option, value, message", [
    ("--model", "examples/mlp.py", "--model must be module:function"),
    ("--model", "examples/mlp.py:nothing_here", "has no attribute 'nothing_here'"),
    ("--model", "sdt_no_such_module_xyz:build", "no module named"),
    ("--dataset", "sdt_no_such_module_xyz:load", "no module named"),
])
def test_cli_bad_spec_gives_one_error_line_before_anything_is_written(tmp_path, option, value, message):
    result = cli("--dataset", "digits", "--model", "examples/mlp.py:build_mlp", option, value,
                 "--search-space", MLP_SPACE, "--log-folder", str(tmp_path / "run"), cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # Importing a model module that imports Keras lets TensorFlow 2.21 print its C++ start-up
    # lines first (TF_CPP_MIN_LOG_LEVEL does not silence them); the tuner says one thing.
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and result.stderr.strip().endswith(errors[0])
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------
# Your own data
# ---------------------------------------------------------------------------------------

DATA_MODULE = """
    import numpy as np

    def load():
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(60, 6, 6), dtype=np.uint8)
        y = np.arange(60) % 3
        return x[:48], x[48:], y[:48], y[48:], 3
    load.allows_horizontal_flip = True

    def four():
        return 1, 2, 3, 4

    def boom():
        raise RuntimeError("no\\ndata")
"""


def test_a_dataset_function_gives_a_dataset(tmp_path, monkeypatch):
    from sdt.data.datasets import load_dataset
    path = write_module(tmp_path, "my_data_for_test", DATA_MODULE)
    dataset = load_dataset(f"{path}:load", seed=0)
    assert dataset.num_classes == 3 and dataset.input_shape == (6, 6, 1) and dataset.allows_horizontal_flip
    assert len(dataset.y_train) + len(dataset.y_val) == 48 and len(dataset.y_test) == 12
    assert float(dataset.x_train.max()) <= 1.0
    monkeypatch.chdir(tmp_path)                                  # by module name from the working directory
    assert load_dataset("my_data_for_test:load").num_classes == 3


@pytest.mark.parametrize("function, message", [
    ("four", r"must return \(x_train, x_test, y_train, y_test, num_classes\), got tuple of length 4"),
    ("boom", "raised RuntimeError: no data"),
    ("absent", "has no attribute 'absent'"),
])
def test_dataset_function_faults_are_dataset_errors(tmp_path, function, message):
    from sdt.data.datasets import load_dataset
    path = write_module(tmp_path, "my_bad_data_for_test", DATA_MODULE)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"{path}:{function}")


# ---------------------------------------------------------------------------------------
# Real Keras
# ---------------------------------------------------------------------------------------

class TinyDataset:
    """Enough of datasets.Dataset for neural_network.train."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.x_train = rng.random((40, 4, 4, 1), dtype=np.float32)
        self.y_train = np.arange(40) % 2
        self.x_val, self.y_val = self.x_train[:10], self.y_train[:10]
        self.num_classes = 2
        self.input_shape = (4, 4, 1)


def test_a_model_function_that_returns_no_model_fails_the_trial_clearly():
    from sdt.neural import network as neural_network
    from sdt.core.records import Architecture

    def not_a_model(params, architecture, input_shape, num_classes):
        return "a string"
    result = neural_network.train({"units": 3}, Architecture(), TinyDataset(), epochs=1, seed=0,
                                  tensorboard_dir=None, model_path=None, model_builder=not_a_model)
    assert result.status == "failed"
    assert result.error == ("TypeError: the model function test_a_model_function_that_returns_no_model_fails_the_"
                            "trial_clearly.<locals>.not_a_model returned a str, expected a keras.Model")


@pytest.mark.slow
def test_a_compiled_model_keeps_its_compile_and_an_uncompiled_one_gets_the_params_optimizer(tmp_path):
    import keras

    from sdt.neural import network as neural_network
    from sdt.core.records import Architecture
    seen = {}

    def build(params, architecture, input_shape, num_classes, compiled=False):
        seen["params"] = params
        inputs = keras.Input(shape=input_shape)
        model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(
            keras.layers.Flatten()(inputs)))
        if compiled:
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
        return model
    params = {"units": np.int64(3), "learning_rate": 0.004, "optimizer": "RMSprop", "batch_size": 8}
    for compiled, expected in ((False, "RMSprop"), (True, "SGD")):
        path = tmp_path / f"{compiled}.keras"
        result = neural_network.train(
            params, Architecture(), TinyDataset(), epochs=2, seed=0, tensorboard_dir=None, model_path=path,
            model_builder=lambda p, a, s, k, c=compiled: build(p, a, s, k, c))
        assert result.status == "completed" and len(result.history["val_accuracy"]) == 2
        # a user's model is evaluated on the training subset in inference mode too
        assert all(len(result.history[key]) == 2 and all(np.isfinite(result.history[key]))
                   for key in ("train_eval_loss", "train_eval_accuracy"))
        optimizer = keras.models.load_model(path).optimizer
        assert type(optimizer).__name__ == expected
        if not compiled:
            assert float(optimizer.learning_rate) == pytest.approx(0.004)
    assert type(seen["params"]["units"]) is int                 # plain Python values, not numpy


@pytest.mark.slow
def test_the_example_model_runs_end_to_end_through_the_cli(tmp_path):
    folder = tmp_path / "tmp"
    result = cli("--dataset", "digits", "--model", "examples/mlp.py:build_mlp", "--search-space",
                 "examples/mlp_space.json", "--max-evals", "2", "--epochs", "2", "--log-folder", str(folder),
                 cwd=REPO)
    assert result.returncode == 0, result.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["trials"]) == 2 and summary["best"]["test_accuracy"] is not None
    assert all(t["status"] == "completed" for t in summary["trials"])
    assert not {"data_augmentation", "new_conv_layer"} & set(applied_actions(summary))
    with open(folder / "trials.csv", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 2
    assert (folder / "best_model.keras").is_file()
    with RunStorage.open(folder, read_only=True) as storage:
        assert storage.run_value("config")["model"] == f"{REPO / 'examples' / 'mlp.py'}:build_mlp"
    # TensorBoard's HParams dashboard finds every trial with its hyper-parameters.
    from tests.test_exports import hparams_events, session_hparams
    assert [kind for kind, _, _ in hparams_events(folder / "logs")] == ["experiment"]
    for trial in summary["trials"]:
        [(kind, data, scalars)] = hparams_events(folder / "logs" / f"trial_{trial['index']:04d}")
        values = session_hparams(data)
        assert values["unit_d"] == trial["params"]["unit_d"]
        assert values["optimizer"] == trial["params"]["optimizer"]
        assert scalars["val_loss"] == pytest.approx(trial["val_loss"])
