"""Evaluators: where a child architecture is trained and scored, in this process or in a worker.

TensorFlow does not give memory back: one process that trained ~150 small children grew to 1.7 GB
even with ``clear_session()``. So the search trains children in a worker process that is replaced
after ``children_per_worker`` children, and a worker that dies costs one failed trial, not the search.
Both evaluators run the very same :func:`rlnas.child.train_and_evaluate` on the same splits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from rlnas import data
from rlnas.child import ChildResult, TrainingConfig, TrainSpec, train_and_evaluate, train_spec
from rlnas.errors import ChildError
from rlnas.quiet import quiet_tensorflow
from rlnas.resources import default_workers, threads_per_worker

if TYPE_CHECKING:
    from rlnas.space import SearchSpace


class WorkerConfig(TrainingConfig, Protocol):
    """What :func:`worker_evaluators` reads of a config (:class:`rlnas.config.SearchConfig` has it all);
    a protocol, so that this layer imports nothing above it."""

    workers: int | None
    children_per_worker: int

    def data_spec(self) -> data.DataSpec: ...


class Evaluator(Protocol):
    """Anything that turns an architecture and a seed into a :class:`ChildResult`."""

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        """Train and score ``arch``; ``log_dir``, if given, receives its training curves."""
        ...

    def close(self) -> None: ...


class LocalEvaluator:
    """Trains children in this process; simplest, used by the env when no evaluator is given.

    The dataset is loaded on the first evaluation, so constructing an env stays cheap.
    """

    def __init__(self, spec: data.DataSpec, train: TrainSpec) -> None:
        data.check_spec(spec)
        self.spec, self.train = spec, train
        self._dataset: data.Dataset | None = None

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        if self._dataset is None:
            self._dataset = data.load(self.spec)
        return train_and_evaluate(arch, self._dataset, self.train, seed=seed, log_dir=log_dir)

    def close(self) -> None:
        self._dataset = None


_WORKER_DATASET: data.Dataset | None = None


def _init_worker(spec: data.DataSpec, threads: int | None = None) -> None:
    global _WORKER_DATASET
    # Ctrl-C reaches the whole process group: the search decides what it means (finish this child
    # and stop, or stop now and kill the worker), not the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:  # N workers on C cores: each gets C/N threads instead of all of them fighting over C
        # oneDNN's OpenMP pool does not follow TensorFlow's settings: without OMP_NUM_THREADS each of
        # N workers may start a pool as large as the machine (Ray sets it for its workers too).
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(threads)
    quiet_tensorflow()  # read by TensorFlow when its runtime starts, here
    _WORKER_DATASET = data.load(spec)


def _worker_evaluate(
    train: TrainSpec, arch: Mapping[str, Any], seed: int, log_dir: str | None
) -> ChildResult:
    assert _WORKER_DATASET is not None, "worker initializer did not run"
    return train_and_evaluate(arch, _WORKER_DATASET, train, seed=seed, log_dir=log_dir)


_STANDBY_LEAD = 3
"""Children before retirement at which the standby worker starts: enough to hide its start-up."""


def _ready() -> int:
    """A first task: submitting it makes a pool spawn and initialise its worker now; returns its pid."""
    return os.getpid()


class WorkerEvaluator:
    """Trains children in a worker process that is replaced every ``children_per_worker`` children.

    Starting a worker costs seconds (TensorFlow's import, the dataset), so a standby worker is
    started a few children before the active one is retired and takes over from it: the search
    never waits for a start-up but the first (and :meth:`start` lets that one overlap other work).
    A worker that crashes (segfault, out of memory, killed) turns into a failed trial and a fresh
    worker takes over; the search goes on.
    """

    def __init__(self, spec: data.DataSpec, train: TrainSpec, *, children_per_worker: int = 100) -> None:
        data.check_spec(spec)
        self.spec, self.train, self.children_per_worker = spec, train, children_per_worker
        self._active: ProcessPoolExecutor | None = None
        self._standby: ProcessPoolExecutor | None = None
        self._done_by_active = 0
        self._pids: dict[ProcessPoolExecutor, Future] = {}  # pool -> future of its worker's pid

    def _spawn(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.spec, self.train.threads),
        )
        self._pids[pool] = pool.submit(_ready)
        return pool

    def start(self) -> None:
        """Start the first worker now (e.g. while the controller is being built); idempotent."""
        if self._active is None:
            self._active, self._done_by_active = self._standby or self._spawn(), 0
            self._standby = None

    def _retire_active(self) -> None:
        if self._active is not None:
            _stop(self._active, wait=False)
            self._pids.pop(self._active, None)
        self._active = None

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        if self._active is not None and self._done_by_active >= self.children_per_worker:
            self._retire_active()
        future = self._submit(_worker_evaluate, self.train, dict(arch), seed, log_dir)
        self._done_by_active += 1
        if self._standby is None and self._done_by_active >= self.children_per_worker - _STANDBY_LEAD:
            self._standby = self._spawn()
        try:
            self._pids[self._active].result()  # the limit starts once the worker is up
            return future.result(timeout=self.train.time_limit)
        except BrokenProcessPool as exc:  # the worker died during this child: it costs this child only
            self._retire_active()
            return ChildResult("failed", error=f"worker process died: {exc}"[:500])
        except TimeoutError:  # a hung or too slow child: end its worker, fail the child, go on
            self._kill_active()
            return ChildResult("failed", error=f"exceeded the time limit of {self.train.time_limit:g} s")
        except KeyboardInterrupt:  # stop now: do not wait for the child
            self._kill_active()
            raise

    def _kill_active(self) -> None:
        assert self._active is not None
        with contextlib.suppress(Exception):  # the worker may be gone already
            os.kill(self._pids[self._active].result(timeout=1), signal.SIGKILL)
        self._retire_active()

    def kill(self) -> None:
        """End every worker at once (a second Ctrl-C while another thread waits on a child)."""
        for pool in (self._active, self._standby):
            if pool is not None and pool in self._pids:
                with contextlib.suppress(Exception):
                    os.kill(self._pids[pool].result(timeout=1), signal.SIGKILL)

    def _submit(self, *args: Any) -> Future:
        """Submit to a live worker; a worker that died while idle is replaced, not blamed on a child."""
        for _ in range(3):  # the active worker, the standby, then a fresh one
            self.start()
            assert self._active is not None
            try:
                return self._active.submit(*args)
            except BrokenProcessPool:
                self._retire_active()
        raise ChildError("could not start a worker process three times in a row")

    def close(self) -> None:
        for pool in (self._active, self._standby):
            if pool is not None:
                _stop(pool, wait=True)
        self._active = self._standby = None
        self._pids.clear()


def worker_evaluators(
    config: WorkerConfig, model: str | Callable[..., Any], *, count: int | None = None
) -> list[WorkerEvaluator]:
    """The search's local worker evaluators, not started yet.

    There are ``config.workers`` of them (or the machine's default), each with its share of the
    cores; ``count`` makes fewer of the same (the env builds one, sized as one of the search's).
    """
    workers = config.workers or default_workers()
    train = train_spec(config, model, threads=threads_per_worker(workers))
    return [
        WorkerEvaluator(config.data_spec(), train, children_per_worker=config.children_per_worker)
        for _ in range(count or workers)
    ]


def start_workers(config: WorkerConfig, space: SearchSpace) -> list[WorkerEvaluator]:
    """The search's local worker processes (``config.workers``, or the machine's default), started now.

    Each worker imports TensorFlow and loads the dataset, seconds that the first child would otherwise
    wait for. The CLI calls this before it imports TensorFlow itself, so that both imports (and the
    controller's construction and trace) overlap on separate cores instead of running one after the other.
    """
    started = worker_evaluators(config, space.model)
    for evaluator in started:
        evaluator.start()
    return started


def _stop(pool: ProcessPoolExecutor, *, wait: bool) -> None:
    """End a pool's worker at once: it holds nothing worth saving, and a normal interpreter
    shutdown after a hundred children (finalising TensorFlow's leftovers) took seconds."""
    with contextlib.suppress(BrokenProcessPool, RuntimeError):
        pool.submit(os._exit, 0)
    pool.shutdown(wait=wait)  # not cancel_futures: that would cancel the exit itself
