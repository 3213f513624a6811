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
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoTensorFlow())
from sdt.cli.main import main
status = main(sys.argv[2:] + ["--backend", sys.argv[1]])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
sys.exit(status)
"""


@pytest.mark.slow
@requires_jax
def test_a_tuning_on_jax_without_tensorflow_writes_tensorboard_logs_and_a_loadable_best_model(tmp_path):
    folder = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "jax", "--dataset",
                             str(tiny_npz(tmp_path / "tiny.npz")), "--max-evals", "2", "--epochs", "2",
                             "--initial-points", "1", "--log-folder", str(folder)],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training with Keras on jax on CPU" in result.stdout or "training with Keras on jax on GPU" in result.stdout
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
    # The best model, saved by Keras on JAX, loads and predicts here (on TensorFlow).
    import keras
    model = keras.models.load_model(folder / "best_model.keras")
    assert model.predict(np.zeros((1, 12, 12, 1), dtype=np.float32), verbose=0).shape == (1, 3)


@pytest.mark.slow
def test_the_backend_check_compares_the_tuners_epoch_with_a_bare_fit(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "backend_check.py"), "--backends", "tensorflow",
                             "--epochs", "2", "--dataset", str(tiny_npz(tmp_path / "tiny.npz"))],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(result.stdout.splitlines()[0])
    assert row["backend"] == "tensorflow" and row["device"].startswith("tensorflow on ")
    assert row["examples"] == 180 and row["epochs"] == 2       # 200 less the validation tenth
    assert row["tuner_epoch_seconds"] > 0 and row["bare_epoch_seconds"] > 0
    assert row["ratio"] == pytest.approx(row["tuner_epoch_seconds"] / row["bare_epoch_seconds"])
    assert "| tensorflow | tensorflow on " in result.stdout


def test_the_backend_check_refuses_an_unknown_backend(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "backend_check.py"), "--backends", "mxnet"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and "unknown backend(s) mxnet" in result.stderr
