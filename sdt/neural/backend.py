"""The tuner's only backend-specific module: everything Keras itself does not make backend-neutral.

The network (sdt/neural/network.py) is plain Keras 3 and the run (sdt/run) plain Python; what
they need from the engine underneath Keras goes through the functions here:

  prepare_environment()                       start-up settings, before TensorFlow is imported
  configure(seed)                             seeds and deterministic ops
  available_devices()                         the accelerators training will use
  device_summary()                            the backend and its devices, in words
  make_dataset(x, y, batch_size, shuffle_seed)  the input pipeline fed to model.fit / evaluate
  clear_session()                             drop the previous trainings' graphs and layers
  training_scope()                            the memory workaround around one training
  tensorboard_callback(folder)                the per-epoch TensorBoard logs of one training
  has_summaries(folder)                       whether a folder already holds TensorBoard events
  write_hparams_config(folder, hparams, metrics)  TensorBoard HParams: the experiment
  write_trial_hparams(folder, trial_id, values, metrics, step)  TensorBoard HParams: one trial

Keras backends (issue 15): TensorFlow (the default), JAX and PyTorch, chosen with KERAS_BACKEND
or `--backend` (prepare_environment). Each function does what its backend needs: TensorFlow keeps
tf.data, its deterministic ops, the graph-registry workaround and tf.summary; JAX and PyTorch get
the arrays in seeded batches (a keras PyDataset), their own determinism settings, and TensorBoard
event files written by this module through the `tensorboard` package's protocol buffers, so a run
on them never imports TensorFlow.

The engines are imported inside the functions, never when this module is imported: the entry
points call prepare_environment() before anything imports Keras, and the symbolic path
(`main.py --diagnose`) must not import it at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

# The Keras backends the tuner runs on (KERAS_BACKEND's values), each with the module it needs
# and what installs it; TensorFlow is the default and comes with the package.
DEFAULT_BACKEND = "tensorflow"
BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
BACKEND_INSTALL = {"tensorflow": 'pip install "symbolic-dnn-tuner"',
                   "jax": 'pip install "symbolic-dnn-tuner[jax]"',
                   "torch": 'pip install "symbolic-dnn-tuner[torch]"'}
# Kept for callers of the first version: the default backend.
KERAS_BACKEND = DEFAULT_BACKEND

# Environment settings read by TensorFlow/Keras at import; an explicit setting by the user wins.
#   TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ start-up chatter (CPU instruction sets, plugin
#   registration) is noise to a user; its errors still show.
#   KERAS_BACKEND: TensorFlow unless the user chose another, whatever ~/.keras/keras.json says.
STARTUP_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": DEFAULT_BACKEND,
}
# JAX on a GPU: XLA's deterministic kernels (XLA on a CPU is deterministic already).
JAX_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"

# The prefix of the names TensorFlow registers graph-mode custom gradients under (see training_scope).
_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


# ---------------------------------------------------------------------------------------------
# Start-up and determinism
# ---------------------------------------------------------------------------------------------

def prepare_environment(keras_backend: str | None = None) -> None:
    """Set the start-up environment (STARTUP_ENVIRONMENT) where the user has not set it, and
    `keras_backend` (`--backend`) when given, which wins over KERAS_BACKEND.

    Must run before Keras is first imported, so every entry point (the command line, the Python
    API, the benchmark, the test drivers) calls it first. Imports nothing; calling it again is
    harmless. A backend other than the one Keras already runs on in this process is refused.
    """
    if keras_backend is not None:
        check_name(keras_backend)
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() != keras_backend:
            from sdt.core.errors import ConfigurationError
            raise ConfigurationError(f"--backend {keras_backend}: Keras already runs on "
                                     f"{sys.modules['keras'].backend.backend()} in this process")
        os.environ["KERAS_BACKEND"] = keras_backend
    for name, value in STARTUP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if os.environ["KERAS_BACKEND"] == "jax" and "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + JAX_DETERMINISM_FLAG).strip()


def check_name(keras_backend: str) -> str:
    """`keras_backend` if the tuner runs on it, else ConfigurationError naming the choices."""
    if keras_backend not in BACKEND_MODULES:
        from sdt.core.errors import ConfigurationError
        raise ConfigurationError(f"--backend must be one of {', '.join(BACKEND_MODULES)}, got {keras_backend!r}")
    return keras_backend


def active() -> str:
    """The Keras backend of this process: Keras' own once it is imported, else KERAS_BACKEND."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)


def check_installed() -> str:
    """The backend's name, once its engine is importable; ConfigurationError naming what installs
    it otherwise (before anything is written)."""
    keras_backend = check_name(active())
    if importlib.util.find_spec(BACKEND_MODULES[keras_backend]) is None:
        from sdt.core.errors import ConfigurationError
        raise ConfigurationError(f"the Keras backend {keras_backend} (KERAS_BACKEND or --backend) is not "
                                 f"installed: {BACKEND_INSTALL[keras_backend]}")
    return keras_backend


# Lines TensorFlow's C++ side writes to stderr while it is imported, before its logging reads
# TF_CPP_MIN_LOG_LEVEL: start-up chatter, never an error of the user's. The oneDNN notice is
# written (twice, at INFO level) only on CPUs where TensorFlow turns its oneDNN kernels on.
_IMPORT_CHATTER = ("All log messages before absl::InitializeLog() is called", "cudart_stub.cc",
                   "cpu_feature_guard.cc", "To enable the following instructions", "rebuild TensorFlow with",
                   "oneDNN custom operations are on")


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

    keras.utils.set_random_seed(int(seed))
    keras_backend = active()
    if keras_backend == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    elif keras_backend == "torch":
        import torch
        # warn_only: an op without a deterministic kernel warns instead of failing the training.
        torch.use_deterministic_algorithms(True, warn_only=True)
    # JAX: XLA is deterministic on a CPU; on a GPU prepare_environment set XLA's deterministic ops.


def available_devices() -> list[str]:
    """Names of the accelerators (GPUs) visible to the backend; empty when training runs on CPU."""
    keras_backend = active()
    if keras_backend == "jax":
        import jax
        return [str(device) for device in jax.devices() if device.platform == "gpu"]
    if keras_backend == "torch":
        import torch
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def device_summary() -> str:
    """What trains in this process, in words: `tensorflow on CPU`, `jax on GPU: cuda:0`."""
    devices = available_devices()
    return f"{active()} on {'GPU: ' + ', '.join(devices) if devices else 'CPU'}"


# ---------------------------------------------------------------------------------------------
# Input pipeline
# ---------------------------------------------------------------------------------------------

def make_dataset(x, y, batch_size: int, *, shuffle_seed: int | None):
    """The batches of (x, y) that model.fit / model.evaluate iterate, prefetched.

    With a shuffle_seed the examples are reshuffled every epoch, reproducibly for that seed (the
    caller then passes shuffle=False to fit); with None they keep their order (validation, test).
    Augmentation is not done here: it is part of the model (Keras' random layers), so it is the
    same on every backend. TensorFlow: a tf.data pipeline; JAX and PyTorch: the arrays in batches
    (ArrayBatches).
    """
    if active() != "tensorflow":
        return _array_batches()(x, y, batch_size, shuffle_seed)
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=int(shuffle_seed), reshuffle_each_iteration=True)
    return data.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)


def _array_batches():
    """The ArrayBatches class (defined on first use: it subclasses a Keras class)."""
    global _ARRAY_BATCHES
    if _ARRAY_BATCHES is None:
        import keras
        import numpy as np

        class ArrayBatches(keras.utils.PyDataset):
            """(x, y) in batches for JAX and PyTorch: reshuffled every epoch from (seed, epoch),
            or in order without a seed."""

            def __init__(self, x, y, batch_size: int, shuffle_seed: int | None):
                super().__init__()
                self.x, self.y = x, y
                self.batch_size = int(batch_size)
                self.shuffle_seed = shuffle_seed
                self.epoch = 0
                self.order = self._order()

            def _order(self):
                if self.shuffle_seed is None:
                    return np.arange(len(self.x))
                return np.random.default_rng([int(self.shuffle_seed), self.epoch]).permutation(len(self.x))

            def __len__(self) -> int:
                return -(-len(self.x) // self.batch_size)

            def __getitem__(self, index: int):
                rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
                return self.x[rows], self.y[rows]

            def on_epoch_end(self) -> None:
                self.epoch += 1
                self.order = self._order()
        _ARRAY_BATCHES = ArrayBatches
    return _ARRAY_BATCHES


_ARRAY_BATCHES = None


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
    registry = _custom_gradient_registry() if active() == "tensorflow" else None
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
# Saved models that load on every backend
# ---------------------------------------------------------------------------------------------

_BACKEND_MODULE_PREFIX = "keras.src.backend."


def save_model(model, path: Path) -> None:
    """Save `model` as a .keras file that loads on any Keras backend, not only the one it trained on.

    On PyTorch, Keras' optimizers are backend classes (`TorchAdam`, ...) and the saved compile
    config names their module (`keras.src.backend.torch.optimizers.torch_adam`): loading the model
    elsewhere would import PyTorch, or fail where it is not installed. The optimizer is recorded
    under `keras.optimizers` instead, where every backend finds its own class of the same name.
    """
    path = Path(path)
    model.save(path)
    record_optimizer_portably(path)


def record_optimizer_portably(path: Path) -> None:
    """Rewrite a saved .keras file whose optimizer is recorded under a backend's own module so
    that it is recorded under `keras.optimizers` (nothing to do otherwise)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        optimizer = (config.get("compile_config") or {}).get("optimizer")
        if not (isinstance(optimizer, dict)
                and str(optimizer.get("module", "")).startswith(_BACKEND_MODULE_PREFIX)):
            return
        optimizer["module"] = "keras.optimizers"
        members = [(info, archive.read(info)) for info in archive.infolist()]
    rewritten = path.with_name(path.name + ".portable")
    with zipfile.ZipFile(rewritten, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, json.dumps(config) if info.filename == "config.json" else data)
    os.replace(rewritten, path)


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
    profiler is TensorFlow's (switched off here: profile_batch=0): it is used on TensorFlow. On
    JAX and PyTorch an equivalent callback writes the same per-epoch scalars (`epoch_loss`, ...
    in `train/`, and the `val_` ones in `validation/`) without TensorFlow.
    """
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if active() != "tensorflow":
        return _epoch_scalars()(folder)
    return keras.callbacks.TensorBoard(log_dir=str(folder), profile_batch=0)


def _epoch_scalars():
    """The EpochScalars callback class (defined on first use: it subclasses a Keras class)."""
    global _EPOCH_SCALARS
    if _EPOCH_SCALARS is None:
        import keras

        class EpochScalars(keras.callbacks.Callback):
            """Keras' TensorBoard epoch scalars, written with EventFile (no TensorFlow)."""

            def __init__(self, folder: Path):
                super().__init__()
                self.folder = Path(folder)
                self.files: dict[str, EventFile] = {}

            def on_epoch_end(self, epoch, logs=None):
                for key, value in (logs or {}).items():
                    part, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                    if part not in self.files:
                        self.files[part] = EventFile(self.folder / part)
                    self.files[part].scalar(f"epoch_{tag}", float(value), epoch)
                for events in self.files.values():
                    events.flush()

            def on_train_end(self, logs=None):
                for events in self.files.values():
                    events.close()
                self.files = {}
        _EPOCH_SCALARS = EpochScalars
    return _EPOCH_SCALARS


_EPOCH_SCALARS = None
_EVENT_FILE_NUMBERS = itertools.count()


class EventFile:
    """A TensorBoard event file written without TensorFlow: the TFRecord framing of the
    `tensorboard` package's RecordWriter around its Event protocol buffers."""

    def __init__(self, folder: Path):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._event = Event
        file_name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}."
                     f"{next(_EVENT_FILE_NUMBERS)}.v2")
        self._records = RecordWriter(open(folder / file_name, "wb"))
        self._records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def summary(self, summary, step: int) -> None:
        self._records.write(self._event(wall_time=time.time(), step=int(step), summary=summary).SerializeToString())

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        self.summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


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
    if active() != "tensorflow":
        # The HParams protocol buffers without TensorFlow (the plugin's `api` module imports it).
        from tensorboard.plugins.hparams import summary_v2 as hp
    else:
        from tensorboard.plugins.hparams import api as hp

    config_hparams = [hp.HParam(spec.name, _hparam_domain(spec, hp)) for spec in hparams]
    config_metrics = [hp.Metric(tag, display_name=display) for tag, display in metrics.items()]
    if active() != "tensorflow":
        events = EventFile(folder)
        try:
            events.summary(hp.hparams_config_pb(hparams=config_hparams, metrics=config_metrics), 0)
        finally:
            events.close()
        return
    with _summary_writer(folder):
        hp.hparams_config(hparams=config_hparams, metrics=config_metrics)


def write_trial_hparams(folder: Path, trial_id: str, values: Mapping[str, bool | int | float | str],
                        metrics: Mapping[str, float], step: int) -> None:
    """Write one trial into `folder`: its hyper-parameter values and its metrics as scalars at `step`."""
    if active() != "tensorflow":
        from tensorboard.plugins.hparams import summary_v2
        events = EventFile(folder)
        try:
            events.summary(summary_v2.hparams_pb(dict(values), trial_id=trial_id), 0)
            for tag, value in metrics.items():
                events.scalar(tag, float(value), step)
        finally:
            events.close()
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with _summary_writer(folder):
        hp.hparams(dict(values), trial_id=trial_id)
        for tag, value in metrics.items():
            tf.summary.scalar(tag, float(value), step=int(step))
