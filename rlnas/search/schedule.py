"""The search's bookkeeping, without I/O: which child to start next, which batch is complete.

The loop in :mod:`rlnas.search.loop` (and ``rlnas bench``) asks a :class:`Schedule` what to do and does it;
the schedule never trains, journals, tells or writes anything, so it is tested on its own and the
loop's side effects are all in the loop.

A batch is one proposal of ``archs_per_update`` architectures, the index range
``[start, start + m)`` of the run. Its positions are handed out in order, each as a :class:`Job`:

- ``TRAIN``: a child to evaluate;
- ``RESUMED``: on resume, a child that finished before the interruption (its trial is in the journal);
- ``CACHED``: a repeat of an architecture already evaluated successfully (unless
  ``reevaluate_repeats``): it reuses that result; a repeat of a child still in training waits for it
  and is answered when it finishes (or trained itself, if that child failed).

With ``pipeline = 2`` two batches are in flight: batch k+1 is proposed before batch k is told and
its children start as workers free up; batches are told strictly in order, each with exactly its
own results, so what is proposed never depends on which child finished first.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rlnas.errors import RunError
from rlnas.models.child import Status
from rlnas.run.trial import Trial
from rlnas.strategies.base import Proposal


class Kind(enum.Enum):
    TRAIN = "train"
    RESUMED = "resumed"
    CACHED = "cached"


class Job(NamedTuple):
    """Position ``k`` of ``batch``: run index ``batch.start + k``; ``key`` its architecture's key."""

    kind: Kind
    batch: Batch
    k: int
    key: str

    @property
    def index(self) -> int:
        return self.batch.start + self.k

    @property
    def tokens(self) -> np.ndarray:
        return self.batch.proposal.tokens[self.k]

    @property
    def log_prob(self) -> float | None:
        log_probs = self.batch.proposal.log_probs
        return None if log_probs is None else float(log_probs[self.k])


WAIT = "wait"
"""Nothing to start until a child in training finishes (its repeats, or the update it completes)."""
DONE = "done"
"""Every position within the budget has been started or answered."""


@dataclass(eq=False)
class Batch:
    """One proposal in flight and its trials as they finish.

    Attributes:
        start: index of its first architecture.
        stale: told with its sampling log-probs (importance weights): with ``pipeline = 2`` every batch
            is, the first one's weights being 1 to round-off, so that one update step serves them all.
        limit: positions within the budget; the rest of the batch is never used.
        todo: positions not yet handed out (or handed back: a repeat whose first evaluation failed).
    """

    proposal: Proposal
    start: int
    stale: bool
    limit: int
    todo: deque[int]
    trials: dict[int, Trial] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return 0 < self.limit == len(self.trials)

    def told(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[Status]]:
        """What the strategy is told: (tokens, rewards, log-probs if stale, statuses) of the finished
        positions, in position order (perhaps fewer than asked, when a time limit cut the batch short)."""
        ks = sorted(self.trials)
        log_probs = self.proposal.log_probs
        rewards = np.array([self.trials[k].reward for k in ks])
        weights = log_probs[ks] if self.stale and log_probs is not None else None
        return self.proposal.tokens[ks], rewards, weights, [self.trials[k].status for k in ks]

    @property
    def end(self) -> int:
        """One past the last index used: positions a budget cut off were never used (no gap)."""
        return self.start + max(self.trials) + 1


class Schedule:
    """Batches in flight, the reward cache, repeats waiting on a child, and the resumed trials.

    Args:
        key: the canonical key of a token sequence (equal keys: the same network).
        trials: the budget (indices ``0 .. trials-1``).
        m: architectures per batch.
        pipeline: batches in flight (1 or 2).
        reuse: answer repeats from the cache (False with ``reevaluate_repeats``).
    """

    def __init__(
        self, key: Callable[[np.ndarray], str], *, trials: int, m: int, pipeline: int, reuse: bool = True
    ) -> None:
        self.key, self.budget, self.m, self.pipeline, self.reuse = key, trials, m, pipeline, reuse
        self.next_index = 0  # first index of the oldest batch not yet told
        self.inflight: deque[Batch] = deque()  # proposed, not yet told; the oldest first
        self.trials: list[Trial] = []  # in the order they finished
        self.cache: dict[str, Trial] = {}  # key -> first successful evaluation
        self.training: set[str] = set()
        self.waiting: dict[str, list[Job]] = {}
        self.finished: dict[int, Trial] = {}  # resume: journal trials past the checkpoint

    # -- proposals -----------------------------------------------------------------------------
    @property
    def wants_proposal(self) -> bool:
        """Always ``pipeline`` whole batches in flight: what is proposed must not depend on the
        budget, or a resume with a larger budget would propose differently from the run it continues."""
        return len(self.inflight) < self.pipeline

    def push(self, proposal: Proposal, stale: bool) -> Batch:
        start = self.inflight[-1].start + self.m if self.inflight else self.next_index
        limit = max(0, min(len(proposal.tokens), self.budget - start))
        batch = Batch(proposal, start, stale, limit, deque(range(limit)))
        self.inflight.append(batch)
        return batch

    @property
    def head_complete(self) -> bool:
        """All the oldest batch's children are in: it is to be told now."""
        return bool(self.inflight) and self.inflight[0].complete

    def pop_complete(self) -> Batch:
        if not self.head_complete:
            raise RuntimeError("the oldest batch in flight is not complete")
        return self._pop()

    def pop_partial(self) -> Batch | None:
        """The head batch if any of its children finished (the search ended before the rest)."""
        if self.inflight and self.inflight[0].trials:
            return self._pop()
        return None

    def _pop(self) -> Batch:
        batch = self.inflight.popleft()
        self.next_index = batch.end
        return batch

    # -- children ------------------------------------------------------------------------------
    def next_job(self) -> Job | str:
        """The next position to hand out, in batch and position order; or WAIT, or DONE."""
        while (batch := next((b for b in self.inflight if b.todo), None)) is not None:
            k = batch.todo.popleft()
            key = self.key(batch.proposal.tokens[k])
            if batch.start + k in self.finished:
                return Job(Kind.RESUMED, batch, k, key)
            if self.reuse and key in self.cache:
                return Job(Kind.CACHED, batch, k, key)
            if self.reuse and key in self.training:
                self.waiting.setdefault(key, []).append(Job(Kind.CACHED, batch, k, key))
                continue
            self.training.add(key)
            return Job(Kind.TRAIN, batch, k, key)
        more = self.inflight and self.inflight[-1].start + self.m < self.budget
        return WAIT if self.waiting or more else DONE

    def resumed(self, job: Job) -> Trial:
        """The journal's trial for a position proposed again on resume; they must agree."""
        trial = self.finished.pop(job.index)
        if list(trial.tokens) != [int(t) for t in job.tokens]:
            raise RunError(
                f"resume diverged at trial {trial.index}: the checkpoint proposes "
                f"{[int(t) for t in job.tokens]}, the journal has {list(trial.tokens)} "
                "(was the run changed by hand?)"
            )
        return trial

    def cached(self, job: Job) -> Trial:
        """The first successful evaluation of a repeated position's architecture."""
        return self.cache[job.key]

    def accept(self, job: Job, trial: Trial) -> None:
        """Remember one finished position (trained, resumed or answered from the cache)."""
        if job.kind is Kind.TRAIN:
            self.training.discard(job.key)
        if trial.ok and not trial.cached:
            self.cache.setdefault(trial.key, trial)
        job.batch.trials[job.k] = trial
        self.trials.append(trial)

    def release(self, job: Job) -> list[Job]:
        """A child finished (and was accepted): its waiting repeats, to answer from the cache now; if
        it failed, they are handed out again (the first of them trains)."""
        waiters = self.waiting.pop(job.key, [])
        if job.key in self.cache:
            return waiters
        for job in reversed(waiters):
            job.batch.todo.appendleft(job.k)
        return []

    def evaluations(self, key: str) -> list[Trial]:
        """Every evaluation of ``key`` so far (repeats answered from the cache excluded)."""
        return [t for t in self.trials if t.key == key and not t.cached]

    # -- resume --------------------------------------------------------------------------------
    @staticmethod
    def check_journal(journal: Sequence[Trial], source: object) -> None:
        """A journal can be resumed only if each index appears once (RunError naming ``source``)."""
        indices = [t.index for t in journal]
        if len(set(indices)) != len(indices):
            raise RunError(f"{source} repeats a trial index; it cannot be resumed")

    def restore(self, journal: Sequence[Trial], next_index: int) -> None:
        """Continue after a checkpoint at ``next_index``: journal trials before it are done, the ones
        after it are reused when their positions are proposed again."""
        self.check_journal(journal, "the journal")
        self.next_index = next_index
        self.trials = [t for t in journal if t.index < next_index]
        self.finished = {t.index: t for t in journal if t.index >= next_index}
        self.cache = {t.key: t for t in reversed(self.trials) if t.ok and not t.cached}


def mean_reward(evaluations: Iterable[Trial], reward: float) -> float:
    """With ``reevaluate_repeats``: the mean of every evaluation's own reward, this one's included."""
    own = [t.evaluation_reward if t.evaluation_reward is not None else t.reward for t in evaluations]
    return float(np.mean([*own, reward]))


def consecutive_failures(trials: Sequence[Trial], limit: int) -> bool:
    """True when the last ``limit`` trials all failed: something is wrong that more won't fix."""
    recent = trials[-limit:]
    return len(recent) == limit and not any(t.ok for t in recent)


def save_proposal(proposal: Proposal, stale: bool) -> dict[str, Any]:
    """A proposal in flight as JSON, for the checkpoint (Python writes floats exactly: the log-probs
    come back bit for bit)."""
    log_probs = None if proposal.log_probs is None else [float(x) for x in proposal.log_probs]
    return {"tokens": proposal.tokens.tolist(), "log_probs": log_probs, "stale": stale}


def load_proposal(saved: dict[str, Any]) -> tuple[Proposal, bool]:
    log_probs = None if saved["log_probs"] is None else np.asarray(saved["log_probs"], np.float64)
    return Proposal(np.asarray(saved["tokens"], np.int64), log_probs), bool(saved["stale"])
