"""Tests of sdt/neural/backend.py, the only module of the tuner that knows TensorFlow.

The seam itself is checked by scanning the package: no other module may import TensorFlow or
TensorBoard, so a second Keras backend is a change of backend.py alone. The functions are then
checked one by one (the trainings that use them are in test_neural_network.py, the HParams
export built on them in test_exports.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdt.neural import backend

REPO_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_DIR / "sdt"
BACKEND_MODULE = PACKAGE_DIR / "neural" / "backend.py"
# The engine-specific libraries only the backend may import.
ENGINE_LIBRARIES = ("tensorflow", "tensorboard")


# ---------------------------------------------------------------------------------------------
# The seam
# ---------------------------------------------------------------------------------------------

def engine_imports(source: str) -> list[str]:
    """Every import of an ENGINE_LIBRARIES module in `source`, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in ENGINE_LIBRARIES]
    return found


def modules_importing_the_engine(package_dir: Path, allowed: Path) -> dict[str, list[str]]:
    return {str(path.relative_to(package_dir.parent)): imports
            for path in sorted(package_dir.rglob("*.py"))
            if path != allowed and (imports := engine_imports(path.read_text()))}


def test_only_the_backend_imports_tensorflow():
    assert modules_importing_the_engine(PACKAGE_DIR, BACKEND_MODULE) == {}
    assert "tensorflow" in engine_imports(BACKEND_MODULE.read_text())


def test_the_scan_catches_every_form_of_import(tmp_path):
    package = tmp_path / "sdt"
    (package / "neural").mkdir(parents=True)
    (package / "neural" / "backend.py").write_text("import tensorflow as tf\n")
    (package / "a.py").write_text("def f():\n    import tensorflow.compat.v1 as v1\n")
    (package / "b.py").write_text("from tensorflow.python.framework import ops\n")
    (package / "c.py").write_text("from tensorboard.plugins.hparams import api as hp\n")
    (package / "d.py").write_text("import keras\nimport numpy as np  # tensorflow in a comment\n")
    assert modules_importing_the_engine(package, package / "neural" / "backend.py") == {
        "sdt/a.py": ["tensorflow.compat.v1"],
        "sdt/b.py": ["tensorflow.python.framework"],
        "sdt/c.py": ["tensorboard.plugins.hparams"],
    }


def test_importing_the_backend_imports_neither_tensorflow_nor_keras():
    # The entry points import it to set the environment before TensorFlow is imported, and the
    # command line imports it on the --diagnose path too.
    code = ("import sys; import sdt.neural.backend, sdt.cli.main; "
            "bad = [m for m in ('tensorflow', 'keras', 'tensorboard') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# Start-up and determinism
# ---------------------------------------------------------------------------------------------

def test_prepare_environment_sets_defaults_and_keeps_explicit_settings(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")   # a setting of the user's
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    backend.prepare_environment()
    assert backend.os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.delenv("KERAS_BACKEND")
    backend.prepare_environment()
    backend.prepare_environment()   # harmless twice
    assert {name: backend.os.environ[name] for name in backend.STARTUP_ENVIRONMENT} == \
        backend.STARTUP_ENVIRONMENT


def test_configure_seeds_every_generator_and_can_be_repeated():
    import keras
    backend.configure(11)
    first = (np.random.rand(), float(keras.random.uniform((), seed=None)))
    backend.configure(11)
    assert (np.random.rand(), float(keras.random.uniform((), seed=None))) == first


def test_available_devices_are_names():
    devices = backend.available_devices()
    assert isinstance(devices, list) and all(isinstance(name, str) for name in devices)


# ---------------------------------------------------------------------------------------------
# Input pipeline
# ---------------------------------------------------------------------------------------------

def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(x), np.asarray(y)) for x, y in dataset]


def test_make_dataset_batches_in_order_without_a_seed():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10, dtype=np.int64)
    got = batches(backend.make_dataset(x, y, 4, shuffle_seed=None))
    assert [len(batch_y) for _, batch_y in got] == [4, 4, 2]
    assert np.concatenate([batch_y for _, batch_y in got]).tolist() == list(range(10))
    assert all((batch_x[:, 0] == batch_y).all() for batch_x, batch_y in got)   # pairs stay together


def test_make_dataset_shuffles_reproducibly_and_anew_each_epoch():
    x = np.arange(64, dtype=np.float32).reshape(64, 1)
    y = np.arange(64, dtype=np.int64)

    def epochs(seed: int, count: int = 2) -> list[list[int]]:
        dataset = backend.make_dataset(x, y, 16, shuffle_seed=seed)
        return [np.concatenate([batch_y for _, batch_y in batches(dataset)]).tolist()
                for _ in range(count)]

    first, second = epochs(3)
    assert sorted(first) == list(range(64)) and first != list(range(64))
    assert first != second                        # reshuffled every epoch
    assert epochs(3) == [first, second]           # the same seed, the same order
    assert epochs(4)[0] != first


# ---------------------------------------------------------------------------------------------
# Memory: the graph-registry workaround
# ---------------------------------------------------------------------------------------------

def custom_gradient_names() -> set[str]:
    registry = backend._custom_gradient_registry()
    assert registry is not None, "TensorFlow's gradient registry moved: the workaround is off"
    return {str(name) for name in registry if str(name).startswith("CustomGradient-")}


def trace_a_custom_gradient() -> None:
    """Trace, in graph mode, a function with a custom gradient: TensorFlow registers it globally."""
    import tensorflow as tf

    @tf.custom_gradient
    def identity(x):
        return tf.identity(x), lambda upstream: upstream

    tf.function(lambda x: identity(x))(tf.constant(1.0))


def test_training_scope_drops_the_custom_gradients_registered_inside_it():
    trace_a_custom_gradient()                     # outside: the registry keeps it (the leak)
    before = custom_gradient_names()
    assert before
    with backend.training_scope():
        trace_a_custom_gradient()
        assert len(custom_gradient_names()) == len(before) + 1
    assert custom_gradient_names() == before      # the new entry is gone, the old ones are kept


def test_training_scope_drops_them_when_the_training_raises():
    before = custom_gradient_names()
    with pytest.raises(RuntimeError):
        with backend.training_scope():
            trace_a_custom_gradient()
            raise RuntimeError("training failed")
    assert custom_gradient_names() == before


# ---------------------------------------------------------------------------------------------
# TensorBoard HParams (the export that uses them: test_exports.py)
# ---------------------------------------------------------------------------------------------

def test_has_summaries_only_after_something_was_written(tmp_path):
    folder = tmp_path / "logs"
    assert not backend.has_summaries(folder)
    backend.write_trial_hparams(folder / "trial_0000", "trial_0000", {"lr": 0.1}, {}, step=0)
    assert not backend.has_summaries(folder)      # only the folder's own files count
    backend.write_hparams_config(folder, [backend.HParamSpec("lr", low=0.0, high=1.0),
                                          backend.HParamSpec("units", low=1, high=8, integer=True),
                                          backend.HParamSpec("optimizer", choices=("Adam", "SGD"))],
                                 {"val_loss": "validation loss"})
    assert backend.has_summaries(folder) and backend.has_summaries(folder / "trial_0000")


def test_tensorboard_callback_is_a_keras_callback_on_its_folder(tmp_path):
    import keras
    callback = backend.tensorboard_callback(tmp_path / "logs" / "trial_0000")
    assert isinstance(callback, keras.callbacks.Callback)
    assert (tmp_path / "logs" / "trial_0000").is_dir()


def test_keras_is_imported_without_its_start_up_chatter_on_stderr():
    if backend.available_devices():
        pytest.skip("with a GPU visible the CUDA lines are the user's to see")
    code = ("from sdt.neural import backend; backend.prepare_environment(); backend.import_quietly(); "
            "import sys; print('imported', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_DIR)
    assert result.returncode == 0
    assert result.stderr == "imported\n", result.stderr
