"""Keras backends other than TensorFlow (issue 15): the seam's JAX/PyTorch paths, and a real
tuning on JAX with TensorFlow made unimportable, as on a machine without it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdt.neural import backend
from tests.fake_training import tiny_npz

REPO = Path(__file__).resolve().parent.parent

requires_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                  reason='JAX is not installed (pip install ".[jax]")')
requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                    reason='PyTorch is not installed (pip install ".[torch]")')


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files directly in `folder`, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def test_an_event_file_written_without_tensorflow_is_read_by_tensorboard(tmp_path):
    events = backend.EventFile(tmp_path)
    for step, value in enumerate((2.0, 1.5, 0.75)):
        events.scalar("epoch_loss", value, step)
    events.close()
    (written,) = tmp_path.glob("events.out.tfevents.*.v2")
    assert read_scalars(tmp_path) == {"epoch_loss": [(0, 2.0), (1, 1.5), (2, 0.75)]}
    assert written.stat().st_size > 0


def test_a_model_saved_with_a_backends_own_optimizer_class_is_recorded_to_load_on_any_backend(tmp_path):
    import zipfile

    import keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    path = tmp_path / "model.keras"
    backend.save_model(model, path)
    before = path.read_bytes()
    backend.record_optimizer_portably(path)                 # already portable: left as it is
    assert path.read_bytes() == before

    def edit_config(edit) -> None:                          # as Keras on PyTorch records its optimizer
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        config = json.loads(members["config.json"])
        edit(config)
        members["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    edit_config(lambda config: config["compile_config"]["optimizer"].update(
        module="keras.src.backend.torch.optimizers.torch_rmsprop"))
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
    backend.record_optimizer_portably(path)
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json"))["compile_config"]["optimizer"]["module"] == "keras.optimizers"
        assert sorted(archive.namelist()) == names          # the weights and metadata kept
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras.optimizers.RMSprop)
    assert loaded.optimizer.learning_rate.numpy() == pytest.approx(0.01)
    np.testing.assert_allclose(loaded.get_weights()[0], model.get_weights()[0])


def test_array_batches_reshuffle_every_epoch_from_the_seed_and_cover_every_example(monkeypatch):
    monkeypatch.setattr(backend, "active", lambda: "jax")   # the JAX/PyTorch pipeline; Keras is whatever runs
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    batches = backend.make_dataset(x, y, 4, shuffle_seed=3)
    assert len(batches) == 3

    def epoch() -> list[int]:
        labels = [int(label) for index in range(len(batches)) for label in batches[index][1]]
        batches.on_epoch_end()
        return labels
    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    again = backend.make_dataset(x, y, 4, shuffle_seed=3)
    assert [int(v) for i in range(len(again)) for v in again[i][1]] == first      # reproducible
    ordered = backend.make_dataset(x, y, 4, shuffle_seed=None)
    assert [int(v) for i in range(len(ordered)) for v in ordered[i][1]] == list(range(10))
    assert [len(ordered[i][0]) for i in range(3)] == [4, 4, 2]


def test_an_unknown_or_missing_backend_is_one_clear_error(tmp_path):
    def main_py(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "main.py"), "--dataset", "digits", "--max-evals", "1",
                               "--log-folder", str(tmp_path / "run"), *arguments], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **environment})
    unknown = main_py("--backend", "mxnet")
    assert unknown.returncode == 2 and "invalid choice: 'mxnet'" in unknown.stderr
    if importlib.util.find_spec("torch") is None:
        missing = main_py(KERAS_BACKEND="torch")
        assert missing.returncode == 2, missing.stderr[-2000:]
        assert missing.stderr.strip().splitlines()[-1] == (
            'error: the Keras backend torch (KERAS_BACKEND or --backend) is not installed: '
            'pip install "symbolic-dnn-tuner[torch]"')
    assert not (tmp_path / "run").exists()


# Run in a subprocess: TensorFlow cannot be imported there (as where it is not installed), and
# Keras runs on the backend given in argv[1].
WITHOUT_TENSORFLOW = """
import importlib.machinery, sys

class PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):
    # The path finder, blind to TensorFlow: find_spec answers None and `import tensorflow` raises
    # ModuleNotFoundError, exactly as where the package is not installed.
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        return super().find_spec(name, path, target)

sys.meta_path = [PathFinderWithoutTensorFlow if finder is importlib.machinery.PathFinder else finder
                 for finder in sys.meta_path]
import importlib.util
assert importlib.util.find_spec("tensorflow") is None
from sdt.cli.main import main
status = main(sys.argv[2:] + ["--backend", sys.argv[1]])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
sys.exit(status)
"""


@pytest.mark.slow
@pytest.mark.parametrize("keras_backend", [pytest.param("jax", marks=requires_jax),
                                           pytest.param("torch", marks=requires_torch)])
def test_a_tuning_without_tensorflow_writes_tensorboard_logs_and_a_loadable_best_model(tmp_path, keras_backend):
    folder = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, keras_backend, "--dataset",
                             str(tiny_npz(tmp_path / "tiny.npz")), "--max-evals", "2", "--epochs", "2",
                             "--initial-points", "1", "--log-folder", str(folder)],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"training with Keras on {keras_backend} on CPU" in result.stdout
            or f"training with Keras on {keras_backend} on GPU" in result.stdout)
    summary = json.loads((folder / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["completed", "completed"]
    assert summary["best"]["test_accuracy"] is not None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def hparams_tags(path: Path) -> set[str]:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        return set(accumulator.PluginTagToContent("hparams"))
    for trial in summary["trials"]:
        trial_logs = folder / "logs" / f"trial_{trial['index']:04d}"
        # Keras' per-epoch curves, as its TensorBoard callback names them, in train/ and validation/.
        train, validation = read_scalars(trial_logs / "train"), read_scalars(trial_logs / "validation")
        assert [step for step, _ in train["epoch_loss"]] == [0, 1]
        assert [step for step, _ in validation["epoch_accuracy"]] == [0, 1]
        assert trial["val_accuracy"] in [pytest.approx(value) for _, value in validation["epoch_accuracy"]]
        # The trial's HParams: its values and its metrics.
        metrics = read_scalars(trial_logs)
        assert metrics["val_loss"][0][1] == pytest.approx(trial["val_loss"])
        assert metrics["val_accuracy"][0][1] == pytest.approx(trial["val_accuracy"])
        assert "_hparams_/session_start_info" in hparams_tags(trial_logs)
    assert "_hparams_/experiment" in hparams_tags(folder / "logs")
    # The best model loads and predicts on the backend it trained on, with its optimizer ...
    loaded = subprocess.run([sys.executable, "-c", "import keras, sys\n"
                             "model = keras.models.load_model(sys.argv[1])\n"
                             "print(keras.backend.backend(), type(model.optimizer).__name__)",
                             str(folder / "best_model.keras")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": keras_backend})
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    backend_name, optimizer_class = loaded.stdout.split()[-2:]
    assert backend_name == keras_backend and optimizer_class.endswith(summary["best"]["params"]["optimizer"])
    # ... and here, on the suite's backend, without importing the one it trained on.
    import keras
    model = keras.models.load_model(folder / "best_model.keras")
    assert model.predict(np.zeros((1, 12, 12, 1), dtype=np.float32), verbose=0).shape == (1, 3)
    if keras_backend == "torch":
        assert "torch" not in sys.modules


@pytest.mark.slow
@pytest.mark.processes
def test_the_backend_check_compares_the_tuners_epoch_with_a_bare_fit(tmp_path):
    keras_backend = os.environ.get("KERAS_BACKEND") or "tensorflow"     # the suite's (CI also runs it on JAX)
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "backend_check.py"), "--backends", keras_backend,
                             "--epochs", "2", "--dataset", str(tiny_npz(tmp_path / "tiny.npz")), "--side-by-side", "2",
                             "--repeats", "2"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(result.stdout.splitlines()[0])
    assert row["backend"] == keras_backend and row["device"].startswith(f"{keras_backend} on ")
    assert row["examples"] == 180 and row["epochs"] == 2       # 200 less the validation tenth
    assert row["tuner_epoch_seconds"] > 0 and row["bare_epoch_seconds"] > 0
    # Two runs, one with each training first: the medians of their epoch times and of their ratios.
    assert row["repeats"] == 2 and len(row["ratios"]) == 2
    assert row["ratio"] == pytest.approx(sum(row["ratios"]) / 2)
    medians_ratio = row["tuner_epoch_seconds"] / row["bare_epoch_seconds"]     # of two runs: between theirs
    assert min(row["ratios"]) * 0.9999 <= medians_ratio <= max(row["ratios"]) * 1.0001
    assert "measuring (2 of 2, the bare fit first)" in result.stderr
    assert f"| {keras_backend} | {keras_backend} on " in result.stdout
    # Two trainings at once: their summed throughput, against one alone.
    assert row["side_by_side"] == 2 and row["side_by_side_images_per_second"] > 0
    assert row["alone_images_per_second"] == pytest.approx(180 / row["tuner_epoch_seconds"])
    assert row["side_by_side_gain"] == pytest.approx(row["side_by_side_images_per_second"]
                                                     / row["alone_images_per_second"])
    assert "| 2 | " in result.stdout and ("(no GPU: they share the CPU)" in result.stdout) == ("on CPU" in row["device"])


def test_the_backend_check_refuses_an_unknown_backend_or_a_single_side_by_side_training(tmp_path):
    def backend_check(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "scripts" / "backend_check.py"), *arguments],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    result = backend_check("--backends", "mxnet")
    assert result.returncode == 2 and "unknown backend(s) mxnet" in result.stderr
    result = backend_check("--side-by-side", "1")
    assert result.returncode == 2 and "--side-by-side must be 0 (off) or at least 2" in result.stderr
    result = backend_check("--repeats", "0")
    assert result.returncode == 2 and "--repeats must be at least 1" in result.stderr
