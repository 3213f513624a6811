"""The tuner's only TensorFlow-specific module: everything Keras itself does not make backend-neutral.

The network (sdt/neural/network.py) is plain Keras 3 and the run (sdt/run) plain Python; what
they need from the engine underneath Keras goes through the functions here:

  prepare_environment()                       start-up settings, before TensorFlow is imported
  configure(seed)                             seeds and deterministic ops
  available_devices()                         the accelerators training will use
  make_dataset(x, y, batch_size, shuffle_seed)  the input pipeline fed to model.fit / evaluate
  clear_session()                             drop the previous trainings' graphs and layers
  training_scope()                            the memory workaround around one training
  tensorboard_callback(folder)                the per-epoch TensorBoard logs of one training
  has_summaries(folder)                       whether a folder already holds TensorBoard events
  write_hparams_config(folder, hparams, metrics)  TensorBoard HParams: the experiment
  write_trial_hparams(folder, trial_id, values, metrics, step)  TensorBoard HParams: one trial

A JAX or PyTorch version of the tuner implements these same functions (and sets KERAS_BACKEND
in prepare_environment); nothing else changes.

TensorFlow is imported inside the functions, never when this module is imported: the entry
points call prepare_environment() before anything imports TensorFlow, and the symbolic path
(`main.py --diagnose`) must not import it at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

# The Keras backend this module is written for.
KERAS_BACKEND = "tensorflow"

# Environment settings read by TensorFlow/Keras at import; an explicit setting by the user wins.
#   TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ start-up chatter (CPU instruction sets, plugin
#   registration) is noise to a user; its errors still show.
#   KERAS_BACKEND: Keras runs on the engine this module drives, whatever ~/.keras/keras.json says.
STARTUP_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": KERAS_BACKEND,
}

# The prefix of the names TensorFlow registers graph-mode custom gradients under (see training_scope).
_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


# ---------------------------------------------------------------------------------------------
# Start-up and determinism
# ---------------------------------------------------------------------------------------------

def prepare_environment() -> None:
    """Set the start-up environment (STARTUP_ENVIRONMENT) where the user has not set it.

    Must run before TensorFlow or Keras is first imported, so every entry point (the command line,
    the Python API, the benchmark, the test drivers) calls it first. Imports nothing; calling it
    again is harmless.
    """
    for name, value in STARTUP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


# Lines TensorFlow's C++ side writes to stderr while it is imported, before its logging reads
# TF_CPP_MIN_LOG_LEVEL: start-up chatter, never an error of the user's.
_IMPORT_CHATTER = ("All log messages before absl::InitializeLog() is called", "cudart_stub.cc",
                   "cpu_feature_guard.cc", "To enable the following instructions", "rebuild TensorFlow with")


# Written when the engine first looks for a GPU and the machine has none: noise on a CPU machine.
_NO_GPU_CHATTER = ("failed call to cuInit", "cuda_platform.cc")


def import_quietly() -> None:
    """Import Keras and its engine, and let the engine look for GPUs, with their C++ start-up
    chatter kept off stderr, so that a refused input after it is still one `error:` line. Every
    other line they write is passed on (the CUDA initialisation error too when a GPU is visible).
    Does nothing once Keras is imported."""
    if "keras" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):           # no real stderr (an embedded interpreter): import plainly
        import keras  # noqa: F401
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        devices = None
        try:
            import keras  # noqa: F401
            devices = available_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            chatter = _IMPORT_CHATTER + (_NO_GPU_CHATTER if devices == [] else ())
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(text in line for text in chatter)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def configure(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make the backend's ops deterministic.

    Safe to call repeatedly. Deterministic ops can be slower (on GPU especially) and make a few
    ops raise instead of running non-deterministically; the caller decides whether to pay that.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def available_devices() -> list[str]:
    """Names of the accelerators (GPUs) visible to the backend; empty when training runs on CPU."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


# ---------------------------------------------------------------------------------------------
# Input pipeline
# ---------------------------------------------------------------------------------------------

def make_dataset(x, y, batch_size: int, *, shuffle_seed: int | None):
    """The batches of (x, y) that model.fit / model.evaluate iterate, prefetched.

    With a shuffle_seed the examples are reshuffled every epoch, reproducibly for that seed (the
    caller then passes shuffle=False to fit); with None they keep their order (validation, test).
    Augmentation is not done here: it is part of the model (Keras' random layers), so it is the
    same on every backend.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=int(shuffle_seed), reshuffle_each_iteration=True)
    return data.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# Memory over many trainings in one process
# ---------------------------------------------------------------------------------------------

def clear_session() -> None:
    """Drop the graphs, layers and name counters left by previous trainings (call before building)."""
    import keras

    keras.backend.clear_session()


def _custom_gradient_registry() -> dict | None:
    """TensorFlow's global registry of gradient functions, or None if its internals changed."""
    try:  # private API, used only for the workaround in training_scope
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - a TensorFlow without it simply keeps the leak
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def training_scope() -> Iterator[None]:
    """Run one training and drop the graph-mode custom gradients TensorFlow registered meanwhile.

    Every traced train step goes through the optimizer's all-reduce, a `tf.custom_gradient` that
    in graph mode registers its gradient function, under a fresh "CustomGradient-N" name, in a
    global registry that is never cleared; the closure holds the whole traced graph, so each
    training leaked 10-20 MB whatever clear_session did (tensorflow/tensorflow#97697,
    keras-team/keras#17458). The entries are only needed to differentiate those graphs again, and
    nothing does once the training is over. If TensorFlow's internals change, this does nothing.
    """
    registry = _custom_gradient_registry()
    if registry is None:
        yield
        return
    before = set(registry)
    try:
        yield
    finally:
        for name in [name for name in registry
                     if name not in before and str(name).startswith(_CUSTOM_GRADIENT_PREFIX)]:
            registry.pop(name, None)


# ---------------------------------------------------------------------------------------------
# TensorBoard HParams
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class HParamSpec:
    """One hyper-parameter of an experiment, as TensorBoard's HParams dashboard lists it.

    Either `choices` (a discrete domain) or the interval [low, high], of integers when `integer`.
    """

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False


def tensorboard_callback(folder: Path):
    """The Keras callback that writes one training's per-epoch TensorBoard logs into `folder` (created).

    Keras' TensorBoard callback writes through tf.summary whatever the Keras backend, and its
    profiler is TensorFlow's (switched off here: profile_batch=0), so it is chosen here.
    """
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return keras.callbacks.TensorBoard(log_dir=str(folder), profile_batch=0)


def has_summaries(folder: Path) -> bool:
    """Whether `folder` already holds a TensorBoard event file (directly, not in sub-folders)."""
    folder = Path(folder)
    return folder.is_dir() and any(folder.glob("events.out.tfevents.*"))


def _hparam_domain(spec: HParamSpec, hp):
    if spec.choices is not None:
        return hp.Discrete(list(spec.choices))
    if spec.integer:
        return hp.IntInterval(int(spec.low), int(spec.high))
    return hp.RealInterval(float(spec.low), float(spec.high))


@contextlib.contextmanager
def _summary_writer(folder: Path) -> Iterator[None]:
    """A TensorBoard event writer on `folder` (created), default inside the block, then closed."""
    import tensorflow as tf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    try:
        with writer.as_default():
            yield
        writer.flush()
    finally:
        writer.close()


def write_hparams_config(folder: Path, hparams: Sequence[HParamSpec],
                         metrics: Mapping[str, str]) -> None:
    """Write the experiment into `folder`: its hyper-parameters and its metrics (tag -> display name)."""
    from tensorboard.plugins.hparams import api as hp

    config_hparams = [hp.HParam(spec.name, _hparam_domain(spec, hp)) for spec in hparams]
    config_metrics = [hp.Metric(tag, display_name=display) for tag, display in metrics.items()]
    with _summary_writer(folder):
        hp.hparams_config(hparams=config_hparams, metrics=config_metrics)


def write_trial_hparams(folder: Path, trial_id: str, values: Mapping[str, bool | int | float | str],
                        metrics: Mapping[str, float], step: int) -> None:
    """Write one trial into `folder`: its hyper-parameter values and its metrics as scalars at `step`."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with _summary_writer(folder):
        hp.hparams(dict(values), trial_id=trial_id)
        for tag, value in metrics.items():
            tf.summary.scalar(tag, float(value), step=int(step))
