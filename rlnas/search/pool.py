"""Several children at once: one env (with its own worker process) per concurrent child.

Each env owns one evaluator, so N envs train N children in N processes; the threads here only wait
on those processes (the GIL is free while they wait). The caller decides what to start and when:
:meth:`EnvPool.start` a job on a free env, :meth:`EnvPool.wait` for those that finished, and
:meth:`EnvPool.abort` the rest when leaving early. With a single env everything runs in the calling
thread, exactly as without a pool.
"""

from __future__ import annotations

import contextlib
import queue
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

from envs.nas_env import NasEnv

J = TypeVar("J")
R = TypeVar("R")


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

    def _play_on_free_env(self, play: Callable[[NasEnv, J], R], job: J) -> R:
        env = self._free.get()
        try:
            return play(env, job)
        finally:
            self._free.put(env)

    def kill(self) -> None:
        """End every child in training now (their workers are replaced when next needed)."""
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.evaluator.kill()

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        for env in self.envs:
            env.close()
