"""Evaluators: where a child architecture is trained and scored, in this process or in a worker.

TensorFlow does not give memory back: one process that trained ~150 small children grew to 1.7 GB
even with ``clear_session()``. So the search trains children in a worker process that is replaced
after ``children_per_worker`` children, and a worker that dies costs one failed trial, not the search.
Both evaluators run the very same :func:`rlnas.models.child.train_and_evaluate` on the same splits.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from rlnas import data, devices
from rlnas.errors import ChildError
from rlnas.exec import fork_server
from rlnas.exec.worker_process import Worker, WorkerDied, WorkerProcess
from rlnas.models import is_function
from rlnas.models.child import ChildResult, Status, TrainingConfig, TrainSpec, train_and_evaluate, train_spec
from rlnas.resources import default_workers, threads_per_worker
from rlnas.space.discovery import unimportable_function


class WorkerConfig(TrainingConfig, Protocol):
    """What :func:`worker_evaluators` reads of a config (:class:`rlnas.config.SearchConfig` has it all);
    a protocol, so that this layer imports nothing above it."""

    workers: int | None
    children_per_worker: int  # and ``gpus`` (:func:`rlnas.devices.choose_gpus`), read if present

    def data_spec(self) -> data.DataSpec: ...


@runtime_checkable
class Evaluator(Protocol):
    """Anything that turns an architecture and a seed into a :class:`ChildResult`.

    ``start`` and ``kill`` let the search overlap a worker's start-up with its own and end a child in
    training at once (a second Ctrl-C, an error elsewhere); an evaluator with nothing to start or to
    end mid-child makes them no-ops (:class:`BaseEvaluator`). An outside evaluator that has only
    ``evaluate`` and ``close`` is given them by :func:`as_evaluator`.
    """

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        """Train and score ``arch``; ``log_dir``, if given, receives its training curves."""
        ...

    def start(self) -> None:
        """Get ready for the first child now (idempotent)."""
        ...

    def kill(self) -> None:
        """End the child in training now (callable from another thread)."""
        ...

    def close(self) -> None: ...


class BaseEvaluator:
    """The protocol's no-op ``start``, ``kill`` and ``close``, for evaluators with nothing to start,
    interrupt or release."""

    def start(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Plain(BaseEvaluator):
    """An outside evaluator with only ``evaluate`` and ``close``: it starts with nothing and its
    children are not interrupted (they finish and are discarded when the search leaves early)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        # log_dir only when asked, so that evaluators written without it keep working.
        extra = {"log_dir": log_dir} if log_dir else {}
        return self.inner.evaluate(arch, seed, **extra)

    def close(self) -> None:
        self.inner.close()


def as_evaluator(evaluator: Any) -> Evaluator:
    """``evaluator`` itself if it implements the whole :class:`Evaluator` protocol, else wrapped so
    that it does (the env and the search accept anything with ``evaluate`` and ``close``)."""
    return evaluator if isinstance(evaluator, Evaluator) else _Plain(evaluator)


class LocalEvaluator(BaseEvaluator):
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


_STANDBY_LEAD = 3
"""Children before retirement at which the standby worker starts: enough to hide a fresh start-up
(a forked worker is ready within a child: its standby starts one child before)."""
FORKED_RECYCLING = 10
"""Children after which a forked worker is replaced, if ``children_per_worker`` is larger: a fork
costs ~0.1 s and a new worker's first trace ~0.2 s, and each child leaves ~10 MB that TensorFlow keeps.
Measured on the default search, 200 children (benchmarks/memory.py): the peak memory of all processes
(summed PSS) was 1,232 MB, against 2,818 MB for forked workers replaced every 100 and 3,118 MB for
fresh ones, at 25.5 children/min against 24.5 and 21.2 (2 cores shared with other jobs)."""
_UNSET: Any = object()


class WorkerEvaluator:
    """Trains children in a worker process that is replaced every ``children_per_worker`` children
    (forked workers every :data:`FORKED_RECYCLING`, if that is fewer).

    Where it is safe (:mod:`rlnas.exec.fork_server`) workers are forked from a template process that has
    imported TensorFlow and loaded the dataset, ready in a fraction of a second; elsewhere a fresh
    start costs seconds. Either way a standby worker is started before the active one is retired and
    takes over from it: the search never waits for a start-up but the first (and :meth:`start` lets
    that one overlap other work).
    A worker that crashes (segfault, out of memory, killed) turns into a failed trial and a fresh
    worker takes over; the search goes on. The workers run :mod:`rlnas.exec.worker`, never this
    process's ``__main__``, and receive the model function by value: one defined in a script, a
    notebook cell or a closure trains there too. ``run_dir`` goes into each worker's marker
    (:data:`rlnas.exec.worker.MARKER`); ``fit_kwargs`` (a tuner's ``callbacks``) reach every child's ``fit``.
    ``device``: the GPU of every worker of this evaluator (:func:`rlnas.devices.assign`).
    """

    def __init__(
        self,
        spec: data.DataSpec,
        train: TrainSpec,
        *,
        children_per_worker: int = 100,
        run_dir: str | os.PathLike[str] = "",
        fit_kwargs: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        data.check_spec(spec)
        self.spec, self.train, self.children_per_worker = spec, train, children_per_worker
        self.device = device
        self.marker = f"{os.getpid()}:{os.fspath(run_dir)}"
        self.fit_kwargs = dict(fit_kwargs or {})
        self._active: Worker | None = None
        self._standby: Worker | None = None
        self._done_by_active = 0
        self._lease: fork_server.TemplateLease | None = _UNSET
        self._lease_threads: int | None = None
        self._leases: list[fork_server.TemplateLease | None] = []  # earlier ones, for other settings

    def _spawn(self) -> Worker:
        how = {"threads": self.train.threads, "marker": self.marker, "device": self.device}
        if self._lease is not _UNSET and self._lease_threads != self.train.threads:  # a new train
            self._leases.append(self._lease)  # released on close: its workers may still be training
            self._lease = _UNSET
        if self._lease is _UNSET:  # a template serves one worker environment: these settings
            self._lease, self._lease_threads = fork_server.lease(self.spec, **how), self.train.threads
        return self._lease.worker() if self._lease is not None else WorkerProcess(self.spec, **how)

    def start(self) -> None:
        """Start the first worker now (e.g. while the controller is being built); idempotent."""
        if self._active is None:
            self._active, self._done_by_active = self._standby or self._spawn(), 0
            self._standby = None

    def _retire_active(self) -> None:
        if self._active is not None:
            self._active.stop(wait=False)
        self._active = None

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        limit = (
            min(self.children_per_worker, FORKED_RECYCLING) if self._forked() else self.children_per_worker
        )
        if self._active is not None and self._done_by_active >= limit:
            self._retire_active()
        worker = self._live_worker()
        self._done_by_active += 1
        lead = 1 if self._forked() else _STANDBY_LEAD
        if self._standby is None and self._done_by_active >= limit - lead:
            self._standby = self._spawn()
        request = (shippable(self.train), dict(arch), seed, log_dir, self.fit_kwargs)
        try:
            worker.wait_ready()  # the limit starts once the worker is up
            kind, value = worker.ask(request, self.train.time_limit)
        except WorkerDied as exc:  # the worker died during this child: it costs this child only
            self._retire_active()
            return ChildResult(Status.FAILED, error=f"worker process died: {exc}"[:500])
        except TimeoutError:  # a hung or too slow child: end its worker, fail the child, go on
            self._kill_active()
            return ChildResult(Status.FAILED, error=f"exceeded the time limit of {self.train.time_limit:g} s")
        except KeyboardInterrupt:  # stop now: do not wait for the child
            self._kill_active()
            raise
        return value if kind == "ok" else ChildResult(Status.FAILED, error=f"in the worker: {value}"[-500:])

    def _live_worker(self) -> Worker:
        """The active worker; one that died while idle is replaced, not blamed on a child."""
        for _ in range(3):  # the active worker, the standby, then a fresh one
            self.start()
            assert self._active is not None
            if self._active.alive():
                return self._active
            self._retire_active()
        raise ChildError("could not start a worker process three times in a row")

    def _kill_active(self) -> None:
        assert self._active is not None
        self._active.kill()
        self._retire_active()

    def kill(self) -> None:
        """End every worker at once (a second Ctrl-C while another thread waits on a child)."""
        for worker in (self._active, self._standby):
            if worker is not None:
                worker.kill()

    def close(self) -> None:
        for worker in (self._active, self._standby):
            if worker is not None:
                worker.stop(wait=True)
        self._active = self._standby = None
        self._release()

    def _forked(self) -> bool:
        return self._lease is not None and self._lease is not _UNSET

    def _release(self) -> None:
        for lease in [*self._leases, self._lease]:
            if lease is not None and lease is not _UNSET:
                lease.release()
        self._lease, self._leases = _UNSET, []  # the next worker leases again


def shippable(train: TrainSpec) -> TrainSpec:
    """``train`` with a model function no import finds (a script's, a notebook's) as the function
    itself, which cloudpickle sends by value; an importable one stays a name."""
    if isinstance(train.model, str) and is_function(train.model):
        fn = unimportable_function(train.model)
        if fn is not None:
            return dataclasses.replace(train, model=fn)
    return train


def worker_evaluators(
    config: WorkerConfig,
    model: str | Callable[..., Any],
    *,
    count: int | None = None,
    run_dir: str | os.PathLike[str] = "",
    fit_kwargs: Mapping[str, Any] | None = None,
) -> list[WorkerEvaluator]:
    """The search's local worker evaluators, not started yet.

    There are ``config.workers`` of them (or the machine's default: one per GPU when GPUs are used),
    each with its share of the cores and its GPU, round-robin (``config.gpus``,
    :mod:`rlnas.devices`); ``count`` makes fewer of the same (the env builds one, sized as one of the
    search's). ``run_dir`` names the run in the workers' marker.
    """
    gpus = devices.choose_gpus(getattr(config, "gpus", None), devices.visible_gpus())
    workers = config.workers or devices.default_workers(gpus) or default_workers()
    train = train_spec(config, model, threads=threads_per_worker(workers))
    return [
        WorkerEvaluator(
            config.data_spec(),
            train,
            children_per_worker=config.children_per_worker,
            run_dir=run_dir,
            fit_kwargs=fit_kwargs,
            device=device,
        )
        for device in devices.assign(gpus, count or workers)
    ]
