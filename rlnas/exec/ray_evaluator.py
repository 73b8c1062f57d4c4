"""Children as Ray tasks: the worker processes' training, on the cores and GPUs of a Ray cluster.

The search loop does not change. :func:`make_ray_evaluators` returns one :class:`RayEvaluator` per
child that fits on the cluster at once, and the loop's ``EnvPool`` drives them from threads exactly
as it drives worker processes. The driver keeps the controller, the run directory and TensorBoard;
the dataset goes into Ray's object store once and every task reads it from there (zero-copy on the
node that holds it), instead of each worker loading it again.

Faults cost one child: a worker or node that dies is retried by Ray (``max_retries``), and after the
retries the child is a failed trial like any other. Ray is an optional extra, imported only here and
only when a cluster is made, so ``rlnas`` without it works as before.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rlnas import data
from rlnas.devices import user_visibility
from rlnas.errors import ConfigError
from rlnas.exec.evaluator import BaseEvaluator, shippable
from rlnas.models.child import ChildResult, Status, TrainSpec, train_and_evaluate, train_spec
from rlnas.quiet import quiet_tensorflow

if TYPE_CHECKING:  # only for hints
    from rlnas.exec.evaluator import WorkerConfig
    from rlnas.space import SearchSpace

INSTALL = "pip install 'rlnas[ray]'"
DEFAULT_RETRIES = 2
"""Ray retries of a child whose worker or node died; a child that crashes its worker every time
(out of memory) then fails after three tries instead of stalling the search."""
_POLL = 0.5
"""Seconds a waiting evaluate() sleeps between checks, so that Ctrl-C and the time limit are seen."""


def require_ray() -> ModuleType:
    """Import Ray, or fail with the one line that says how to install it.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray: {INSTALL}") from None
    return ray


def check_resources(cpus_per_child: float, gpus_per_child: float) -> None:
    """Reject resources Ray could never schedule, before anything starts.

    Raises:
        ConfigError: ``cpus_per_child`` not > 0, or ``gpus_per_child`` negative or not a number.
    """
    for name, value, low in (
        ("cpus_per_child", cpus_per_child, "> 0"),
        ("gpus_per_child", gpus_per_child, ">= 0"),
    ):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (value == 0 and name == "cpus_per_child"):
            raise ConfigError(f"{name} must be a number {low}, got {value!r}")


def _prepare_worker(threads: int | None) -> None:
    """Configure TensorFlow before a Ray worker's first child loads it; later children reuse it."""
    if "tensorflow" in sys.modules:
        return
    if threads:  # the task holds C cores: TensorFlow uses C threads, not every core of the node
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    # With gpus_per_child < 1 several children share a GPU: none may take all of its memory.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    quiet_tensorflow()


def _run_child(
    dataset: data.Dataset, train: TrainSpec, arch: dict[str, Any], seed: int, log_dir: str | None
) -> ChildResult:
    """The body of one Ray task: the very training the local worker processes run."""
    _prepare_worker(train.threads)
    return train_and_evaluate(arch, dataset, train, seed=seed, log_dir=log_dir)


class RayCluster:
    """Ray for one search: started here (local) or joined, the dataset put once, the child task defined.

    Args:
        spec: the dataset; loaded here, in the driver, and put in the object store.
        train: how children train; its ``threads`` is replaced by ``cpus_per_child`` (at least 1).
        address: ``None`` starts a local Ray (on ``num_cpus`` cores, default all); ``"auto"`` joins the
            cluster of this node; ``"ray://HOST:PORT"`` connects through Ray Client. A Ray already
            initialised in this process is used as it is (and left running by :meth:`close`).
        cpus_per_child, gpus_per_child: Ray resources of each child task (fractions allowed).
        max_retries: Ray's retries of a child whose worker or node died.
        children_per_worker: a Ray worker process is replaced after this many children (TensorFlow
            does not give memory back, as in the local executor).
    """

    def __init__(
        self,
        spec: data.DataSpec,
        train: TrainSpec,
        *,
        address: str | None = None,
        cpus_per_child: float = 1.0,
        gpus_per_child: float = 0.0,
        num_cpus: int | None = None,
        max_retries: int = DEFAULT_RETRIES,
        children_per_worker: int = 100,
    ) -> None:
        check_resources(cpus_per_child, gpus_per_child)
        data.check_spec(spec)
        self.ray = ray = require_ray()
        self.cpus_per_child, self.gpus_per_child = float(cpus_per_child), float(gpus_per_child)
        self.max_retries = max_retries
        # Ray ships functions with cloudpickle too: a script's or a notebook's model function by value.
        self.train = shippable(dataclasses.replace(train, threads=max(1, math.floor(cpus_per_child))))
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            local = {"num_cpus": num_cpus} if address is None else {}
            # log_to_driver=False: the children's TensorFlow output would interleave with the progress
            # lines; a child's failure reaches the journal as its error text instead.
            # logging_level: Ray's INFO lines ("Started a local Ray instance") are not the user's business.
            with user_visibility():  # the GPUs a local Ray counts are the user's, not the search's none
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    **local,
                )
        self.open_evaluators = 0
        try:
            self.data_ref = ray.put(data.load(spec))
            self._task = ray.remote(
                num_cpus=self.cpus_per_child,
                num_gpus=self.gpus_per_child,
                max_retries=max_retries,
                max_calls=children_per_worker,
            )(_run_child)
        except BaseException:
            self.close()
            raise

    def slots(self) -> int:
        """Children that fit at once: per alive node, its CPUs / C (and GPUs / G), summed.

        Raises:
            ConfigError: not even one child fits on any node (e.g. GPUs asked of a CPU-only cluster).
        """
        total = 0
        for node in self.ray.nodes():
            if node.get("Alive"):
                res = node.get("Resources", {})
                fit = math.floor(res.get("CPU", 0) / self.cpus_per_child + 1e-9)
                if self.gpus_per_child:
                    fit = min(fit, math.floor(res.get("GPU", 0) / self.gpus_per_child + 1e-9))
                total += fit
        if total < 1:
            raise ConfigError(
                f"no node of the Ray cluster has {self.cpus_per_child:g} CPUs and "
                f"{self.gpus_per_child:g} GPUs for a child (cluster: {self.ray.cluster_resources()}); "
                "lower --cpus-per-child or --gpus-per-child, or add nodes"
            )
        return total

    def evaluators(self, n: int) -> list[RayEvaluator]:
        """``n`` evaluators sharing this cluster; Ray is shut down when the last one is closed."""
        return [RayEvaluator(self) for _ in range(n)]

    def submit(self, arch: Mapping[str, Any], seed: int, log_dir: str | None) -> Any:
        """Start one child task; returns its ObjectRef."""
        return self._task.remote(self.data_ref, self.train, dict(arch), seed, log_dir)

    def release(self) -> None:
        """One evaluator is done with the cluster; the last one closes it."""
        self.open_evaluators -= 1
        if self.open_evaluators <= 0:
            self.close()

    def close(self) -> None:
        """Drop the dataset from the object store; shut Ray down if this object started it."""
        self.data_ref = None
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns_ray = False


class RayEvaluator(BaseEvaluator):
    """One child at a time as a Ray task: the :class:`rlnas.exec.evaluator.Evaluator` of ``--executor ray``.

    The time limit (``TrainSpec.time_limit``) counts from submission, so it includes the task's wait
    for a free worker and the first child's TensorFlow import in that worker; a child over it is
    cancelled (its worker killed) and fails.
    """

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster
        self._running: Any = None  # the ObjectRef of the child in training
        self._closed = False
        cluster.open_evaluators += 1

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        """Train ``arch`` as a Ray task and wait for it; worker deaths and time-outs become failures."""
        ref = self._running = self.cluster.submit(arch, seed, log_dir)
        try:
            return self._result(ref)
        except KeyboardInterrupt:  # stop now: do not wait for the child
            self.kill()
            raise
        finally:
            self._running = None

    def _result(self, ref: Any) -> ChildResult:
        ray = self.cluster.ray
        limit = self.cluster.train.time_limit
        deadline = time.monotonic() + limit if limit else math.inf
        while not ray.wait([ref], timeout=min(_POLL, max(deadline - time.monotonic(), 0.0)))[0]:
            if time.monotonic() >= deadline:
                ray.cancel(ref, force=True)
                return ChildResult(Status.FAILED, error=f"exceeded the time limit of {limit:g} s")
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return ChildResult(Status.FAILED, error="cancelled (the search was stopped)")
        except ray.exceptions.RayTaskError as exc:  # the task itself raised: rlnas broken on that node?
            return ChildResult(Status.FAILED, error=f"Ray task raised: {exc.cause!r}"[:500])
        except ray.exceptions.RayError as exc:  # worker or node died on every try
            tries = self.cluster.max_retries + 1
            died = f"Ray worker or node died ({tries} tries): {type(exc).__name__}: {exc}"
            return ChildResult(Status.FAILED, error=died[:500])

    def kill(self) -> None:
        """Cancel the child in training now (a second Ctrl-C while another thread waits on it)."""
        ref = self._running
        if ref is not None:
            self.cluster.ray.cancel(ref, force=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cluster.release()


def make_ray_evaluators(
    config: WorkerConfig,
    space: SearchSpace,
    *,
    num_cpus: int | None = None,
    model: str | Callable[..., Any] | None = None,
    count: int | None = None,
) -> list[RayEvaluator]:
    """The evaluators of ``rlnas search --executor ray``: one per child that fits on the cluster at once.

    Reads ``config.address``, ``config.cpus_per_child`` and ``config.gpus_per_child`` (defaults: a
    local Ray, 1 CPU, no GPU) and ``config.workers`` (default: as many as fit); ``count`` makes that
    many instead. ``num_cpus`` sizes a local Ray (default: every core). ``model``: what the children
    build (default: the space's).

    Raises:
        ConfigError: Ray is missing, the resources are invalid, or no child fits on the cluster.
    """
    cpus, gpus = getattr(config, "cpus_per_child", 1.0), getattr(config, "gpus_per_child", 0.0)
    check_resources(cpus, gpus)
    train = train_spec(config, space.model if model is None else model)
    cluster = RayCluster(
        config.data_spec(),
        train,
        address=getattr(config, "address", None),
        cpus_per_child=cpus,
        gpus_per_child=gpus,
        num_cpus=num_cpus,
        children_per_worker=config.children_per_worker,
    )
    try:
        return cluster.evaluators(count or config.workers or cluster.slots())
    except BaseException:
        cluster.close()
        raise
