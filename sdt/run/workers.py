"""Who trains the trials: one at a time in this process, or several at once on Ray (issue 16).

The loop (sdt/run/loop.py) stays the single owner of the study: it proposes, records, diagnoses,
learns and edits. A worker pool only trains a dispatched trial (`RunningTrial`) and hands back
its `TrainingResult`, with the `host:pid` of the process that trained it:

    workers.submit(running)                       # while workers.free() > 0
    running, result, worker = workers.next_finished()
    workers.close()

`InProcessWorkers` (`--workers 1`, the default) trains in this process when asked for the next
finished trial, which is the sequential loop exactly. `RayWorkers` (`--workers N`,
`--ray-address`) keeps N Ray actors, each of which builds its trainer once with the callable the
loop hands over (sdt/run/loop.py `worker_trainer`: the run's inputs loaded and checked again in the
worker, the same dataset split from the run's seed) and trains what it is sent; each actor asks Ray for `--cpus-per-trial` CPUs and `--gpus-per-trial` GPUs, so a cluster
with GPUs gives each training its own. Ray is an optional extra (`pip install ".[ray]"`); this
module imports it only when a Ray pool is built. Every worker writes its trial's model and
TensorBoard logs into the run folder, so on a cluster of several machines the log folder must be
on a file system they all see (as Ray Tune's storage path).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable

from sdt.core.errors import ConfigurationError

# Who runs the trials of this process (TrialRecord.worker): the host and the process id.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def worker_name() -> str:
    """`host:pid` of the calling process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class InProcessWorkers:
    """One training at a time, in this process: `next_finished` trains the submitted trial."""

    size = 1

    def __init__(self, train: Callable[[dict[str, Any], Any, int], Any]):
        self._train = train
        self._submitted: list[Any] = []

    def free(self) -> int:
        return self.size - len(self._submitted)

    def running(self) -> int:
        return len(self._submitted)

    def submit(self, running) -> str:
        """Queue `running`; returns the worker that will train it."""
        self._submitted.append(running)
        return WORKER

    def next_finished(self) -> tuple[Any, Any, str]:
        running = self._submitted.pop(0)
        return running, self._train(running.params, running.architecture, running.index), WORKER

    def close(self) -> None:
        self._submitted.clear()


class _TrainingActor:
    """The body of one Ray actor: its trainer built once (the run's inputs loaded and checked in
    the actor's process), then one training per call."""

    def __init__(self, build_train: Callable[[], Callable[[dict[str, Any], Any, int], Any]]):
        self._train = build_train()
        self._name = worker_name()

    def name(self) -> str:
        return self._name

    def train(self, params: dict[str, Any], architecture, index: int):
        return self._train(params, architecture, index), self._name


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a `host:port` Ray address where nothing listens, at once (Ray itself retries for
    minutes); "auto" and other forms are left to Ray."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigurationError(f"--ray-address {address}: no Ray cluster there ({err.strerror or err})") from None


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ConfigurationError('--workers above 1 and --ray-address need Ray: pip install '
                                 '"symbolic-dnn-tuner[ray]" (or pip install -r requirements-ray.txt)') from err
    return ray


class RayWorkers:
    """`size` Ray actors training trials side by side (see the module docstring).

    `address`: None starts a local Ray instance for this run (stopped by close()); "auto" or
    "host:port" joins a running cluster (left running)."""

    def __init__(self, build_train: Callable[[], Callable[[dict[str, Any], Any, int], Any]], size: int,
                 address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0):
        ray = import_ray()
        self._ray = ray
        self.size = size
        # Workers import this package and the caller's modules (a user's model, a test's trainer)
        # from the driver's path.
        path = os.pathsep.join(p for p in sys.path if p and Path(p).exists())
        runtime_env = {"env_vars": {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}}
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"runtime_env": runtime_env, "include_dashboard": False,
                                       "log_to_driver": False, "logging_level": "ERROR"}
            if address is None:
                # A Ray instance of the run's own, even where another runs on this machine (plain
                # ray.init() would join that one, and refuses num_cpus there).
                options["address"] = "local"
                # Room for every worker, however few cores the machine has (2 here): Ray would
                # otherwise queue the second training behind the first.
                options["num_cpus"] = max(os.cpu_count() or 1, int(size * cpus_per_trial + 0.999))
            else:
                check_reachable(address)
                options["address"] = address
            try:
                ray.init(**options)
            except ConnectionError as err:
                raise ConfigurationError(f"--ray-address {address}: no Ray cluster there ({err})") from None
        actor = ray.remote(_TrainingActor).options(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)
        self._idle = [actor.remote(build_train) for _ in range(size)]
        # The actors load the run's inputs now: a failure there is reported before any training.
        try:
            self._names = dict(zip(self._idle, ray.get([a.name.remote() for a in self._idle])))
        except ray.exceptions.RayError as err:
            self.close()
            raise ConfigurationError(f"a Ray worker could not start: {err}") from None
        self._busy: dict[Any, tuple[Any, Any]] = {}       # result reference -> (actor, running trial)

    def free(self) -> int:
        return len(self._idle)

    def running(self) -> int:
        return len(self._busy)

    def submit(self, running) -> str:
        actor = self._idle.pop()
        reference = actor.train.remote(running.params, running.architecture, running.index)
        self._busy[reference] = (actor, running)
        return self._names[actor]

    def next_finished(self) -> tuple[Any, Any, str]:
        ready, _ = self._ray.wait(list(self._busy), num_returns=1)
        actor, running = self._busy.pop(ready[0])
        result, worker = self._ray.get(ready[0])
        self._idle.append(actor)
        return running, result, worker

    def close(self) -> None:
        for actor in self._idle + [actor for actor, _ in self._busy.values()]:
            try:
                self._ray.kill(actor)
            except Exception:       # already gone with its node: nothing to stop
                pass
        self._idle, self._busy = [], {}
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
