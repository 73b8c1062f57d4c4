"""A strategy's batches handed out one row at a time, for loops that run one trial at a time.

Optuna and Ray Tune ask a sampler for one configuration per trial and report each trial alone, in any
order; rlnas's strategies ask for a batch and learn from the whole batch. :class:`Handout` sits
between: it asks the strategy for a batch of ``batch`` rows, gives them to the next trials, and tells
the strategy a batch once every row of it has a result, batches in the order they were asked. A
trial run one at a time therefore sees exactly what ``rlnas bench`` sees: ask 4, evaluate 4, tell 4.

A row whose trial failed (an exception, a NaN, a pruned trial) is told with the failed reward: the
worst reward told so far or in the same tell, 0.0 before any (rlnas's searches give a failed child the
worst reward, so the policy learns to avoid it rather than learning nothing).

Rows the handout did not propose (a trial enqueued by hand, one from before the space was known, one
from another process's duplicate) are *foreign*: :meth:`Handout.add_foreign` queues them and the next
tell includes them, so the strategy learns from every result.

Everything the strategy was told is kept as a list of events; replaying it into a fresh strategy of
the same seed rebuilds the same strategy (:meth:`Handout.replay`): Ray Tune's save/restore.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rlnas.models.child import Status
from rlnas.strategies.base import Strategy


@dataclass
class Batch:
    """One asked batch: its rows, how many batches had been told when it was asked, and per row the
    claimant (a trial id) and its result (a reward, or None for a failed trial)."""

    rows: np.ndarray
    told_before: int
    claims: dict[int, object] = field(default_factory=dict)
    results: dict[int, float | None] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.rows)


class Handout:
    """Rows of a strategy's batches, one per trial, and the batches told back in order.

    Args:
        strategy: an rlnas strategy (``ask``/``tell``).
        batch: rows per ask (rlnas's ``archs_per_update``; 4 by default there).
    """

    def __init__(self, strategy: Strategy, batch: int = 4) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.strategy = strategy
        self.batch = batch
        self.batches: list[Batch] = []
        self.told = 0
        self.foreign: list[tuple[np.ndarray, float | None]] = []
        self.events: list[tuple] = []  # ("ask",) or ("tell", rows, rewards, statuses)
        self.worst: float | None = None  # the worst reward told so far

    # -- handing out -----------------------------------------------------------------------------
    def ask(self) -> int:
        """Ask the strategy for a new batch (after telling what is ready); returns its index."""
        self.tell_ready()
        rows = np.asarray(self.strategy.ask(self.batch).tokens, np.int64)
        self.events.append(("ask",))
        self.batches.append(Batch(rows, self.told))
        return len(self.batches) - 1

    def next_row(self, claimant: object, taken: Callable[[int, int], bool] | None = None) -> tuple[int, int]:
        """The first unclaimed row of an untold batch, claimed for ``claimant`` (a new batch if none);
        ``taken(b, r)`` marks rows claimed elsewhere (another process)."""
        for b in range(self.told, len(self.batches)):
            batch = self.batches[b]
            for r in range(len(batch.rows)):
                if r not in batch.claims and not (taken and taken(b, r)):
                    batch.claims[r] = claimant
                    return b, r
        b = self.ask()
        self.batches[b].claims[0] = claimant
        return b, 0

    def row(self, b: int, r: int) -> np.ndarray:
        return self.batches[b].rows[r]

    # -- results ---------------------------------------------------------------------------------
    def finish(self, b: int, r: int, reward: float | None) -> None:
        """Record row ``r`` of batch ``b``: a finite reward, or None (failed, NaN, pruned)."""
        if reward is not None and not math.isfinite(reward):
            reward = None
        self.batches[b].results.setdefault(r, reward)

    def add_foreign(self, row: np.ndarray, reward: float | None) -> None:
        """A result for a row no batch proposed: told with the next batch."""
        if reward is not None and not math.isfinite(reward):
            reward = None
        self.foreign.append((np.asarray(row, np.int64), reward))

    def tell_ready(self, until: int | None = None) -> None:
        """Tell every complete batch in order (stopping at the first incomplete one, or at ``until``)."""
        while self.told < len(self.batches) and (until is None or self.told < until):
            batch = self.batches[self.told]
            if not batch.complete:
                return
            rows = [batch.rows[r] for r in range(len(batch.rows))]
            results = [batch.results[r] for r in range(len(batch.rows))]
            rows += [row for row, _ in self.foreign]
            results += [reward for _, reward in self.foreign]
            self.foreign = []
            self.told += 1
            self._tell(np.stack(rows), results)

    def _tell(self, rows: np.ndarray, results: list[float | None]) -> None:
        seen = [x for x in results if x is not None] + ([] if self.worst is None else [self.worst])
        self.worst = min(seen, default=None)
        failed = 0.0 if self.worst is None else self.worst
        rewards = np.array([failed if x is None else x for x in results], np.float64)
        statuses = [Status.FAILED if x is None else Status.OK for x in results]
        self.events.append(("tell", rows, rewards, statuses))
        self.strategy.tell(rows, rewards, statuses=statuses)

    # -- save / restore --------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything but the strategy (rebuilt by :meth:`replay`)."""
        return {
            "batch": self.batch,
            "batches": self.batches,
            "told": self.told,
            "foreign": self.foreign,
            "events": self.events,
            "worst": self.worst,
        }

    @classmethod
    def replay(cls, strategy: Strategy, state: dict) -> Handout:
        """A handout over a fresh ``strategy`` (same seed as the saved one's) brought to ``state`` by
        replaying its asks and tells: the same strategy, without a checkpoint format of its own."""
        handout = cls(strategy, state["batch"])
        for event in state["events"]:
            if event[0] == "ask":
                strategy.ask(handout.batch)
            else:
                strategy.tell(event[1], event[2], statuses=event[3])
        handout.batches = state["batches"]
        handout.told = state["told"]
        handout.foreign = state["foreign"]
        handout.events = list(state["events"])
        handout.worst = state["worst"]
        return handout
