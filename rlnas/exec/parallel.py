"""Several children at once: one env (with its own worker process) per concurrent child.

Each env owns one evaluator, so N envs train N children in N processes; the threads here only wait
on those processes (the GIL is free while they wait). Jobs are taken from the caller's iterator one
at a time, only when an env is free, so a budget or a first Ctrl-C checked by that iterator stops
new children without cancelling the ones in training. The iterator may also answer
:data:`NOT_YET` ("nothing to start until a child in training finishes"): the pipelined search loop
says so when its next batch waits for an update that the next result will make. With a single env
everything runs in the calling thread, exactly as before there was a pool.
"""

from __future__ import annotations

import contextlib
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

from envs.nas_env import NasEnv

J = TypeVar("J")
R = TypeVar("R")

_END = object()


class _NotYet:
    def __repr__(self) -> str:
        return "NOT_YET"


NOT_YET: Any = _NotYet()
"""What a job iterator yields when it has no job now but may have one after the next result."""


def trial_seed(seed: int, index: int) -> int:
    """Seed of trial ``index``: independent streams per trial, the same for the same run seed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def play(
    env: NasEnv, tokens: Sequence[int], seed: int, log_dir: str | None = None
) -> tuple[float, dict[str, Any]]:
    """Feed one token sequence to the env, skipping decisions the env does not ask; (reward, info)."""
    _, info = env.reset(seed=seed, options={"log_dir": log_dir} if log_dir else None)
    mask = env.space.active_mask(tokens)
    reward, terminated = 0.0, False
    for token, active in zip(tokens, mask, strict=True):
        if active:
            _obs, reward, terminated, _, info = env.step(int(token))
    assert terminated, "the env must end on the last active decision"
    return float(reward), info


class EnvPool:
    """Plays jobs on as many envs as it holds, concurrently: :meth:`start` a job on a free env,
    :meth:`wait` for those that finished. With one env, :meth:`wait` plays the started job in the
    calling thread."""

    def __init__(self, envs: Sequence[NasEnv]) -> None:
        if not envs:
            raise ValueError("an EnvPool needs at least one env")
        self.envs = list(envs)
        self._free: queue.SimpleQueue[NasEnv] = queue.SimpleQueue()
        for env in self.envs:
            self._free.put(env)
        self._threads = ThreadPoolExecutor(len(envs), "rlnas-child") if len(envs) > 1 else None
        self._pending: dict[Future, Any] = {}  # job of each child in training
        self._deferred: deque[tuple[Any, Callable[[NasEnv, Any], Any]]] = deque()  # one env: not started

    def __len__(self) -> int:
        return len(self.envs)

    @property
    def busy(self) -> int:
        """Jobs started and not yet returned by :meth:`wait`."""
        return len(self._pending) + len(self._deferred)

    @property
    def free(self) -> int:
        return len(self.envs) - self.busy

    def start(self, job: J, play: Callable[[NasEnv, J], R]) -> None:
        """Play ``job`` on a free env (the caller checks :attr:`free`)."""
        if self.free < 1:
            raise RuntimeError("no free env: wait for a child to finish first")
        if self._threads is None:
            self._deferred.append((job, play))
        else:
            self._pending[self._threads.submit(self._play_on_free_env, play, job)] = job

    def wait(self) -> list[tuple[Any, Any]]:
        """Block until at least one started job finished; ``(job, result)`` of each that did.

        Raises:
            whatever ``play`` raised for a finished job.
        """
        if self._deferred:
            job, play = self._deferred.popleft()
            return [(job, play(self.envs[0], job))]
        if not self._pending:
            raise RuntimeError("nothing is training: start a job before waiting")
        done: set[Future] = set()
        while not done:  # a timeout keeps the main thread responsive to Ctrl-C while children train
            done, _ = wait(self._pending, timeout=0.25, return_when=FIRST_COMPLETED)
        finished = [(self._pending.pop(f), f) for f in self._pending.copy() if f in done]
        return [(job, f.result()) for job, f in finished]

    def abort(self) -> None:
        """End the children in training now (leaving early): nothing half-trained is recorded."""
        self._deferred.clear()
        if self._pending:
            self.kill()
            wait(self._pending)
            self._pending.clear()

    def run(self, jobs: Iterable[J], play: Callable[[NasEnv, J], R]) -> Iterator[tuple[J, R]]:
        """Yield ``(job, result)`` as each child finishes (completion order, not job order).

        ``jobs`` is asked for a job whenever an env is free; it may yield :data:`NOT_YET` to wait
        for the next result (and is asked again after it).

        Leaving early (an exception, a second Ctrl-C, the caller stopping the iteration) ends the
        children still in training by killing their workers: nothing half-trained is recorded.

        Raises:
            RuntimeError: ``jobs`` yields NOT_YET while no child is training (it would wait forever).
        """
        source = iter(jobs)
        ready: deque[tuple[Any, Any]] = deque()  # finished, not yet handed to the caller
        exhausted = False

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and self.free:
                job = next(source, _END)
                if job is _END:
                    exhausted = True
                elif _check_waiting(job, self.busy + len(ready)):
                    return
                else:
                    self.start(job, play)

        try:
            while True:
                fill()
                if not ready:
                    if not self.busy:
                        return
                    ready.extend(self.wait())
                    if self._threads is not None:
                        fill()  # start the next children before the caller handles these results
                yield ready.popleft()
        finally:
            self.abort()

    def _play_on_free_env(self, play: Callable[[NasEnv, J], R], job: J) -> R:
        env = self._free.get()
        try:
            return play(env, job)
        finally:
            self._free.put(env)

    def kill(self) -> None:
        """End every child in training now (their workers are replaced when next needed)."""
        for env in self.envs:
            kill = getattr(env.evaluator, "kill", None)
            if kill is not None:
                with contextlib.suppress(Exception):
                    kill()

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        for env in self.envs:
            env.close()


def _check_waiting(job: Any, training: int) -> bool:
    """True if the job source said NOT_YET; an error if nothing in training could ever answer it."""
    if job is not NOT_YET:
        return False
    if not training:
        raise RuntimeError("the job source waits for a result, but no child is training")
    return True
