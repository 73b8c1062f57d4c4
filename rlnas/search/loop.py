"""The search loop, readable top to bottom: ask for a batch, evaluate it through the env, tell, repeat.

    strategy.ask(m) -> tokens ─► NasEnv x N workers (one token per step; trains the child) ─► rewards
          ▲                                                                                   │
          └──────── strategy.tell: REINFORCE update / evolution's population / nothing ◄──────┘

Every child goes through :class:`envs.nas_env.NasEnv` (one code path for search, benchmarks and outside
agents); each finished trial is appended to ``trials.jsonl`` as soon as it finishes. With N workers,
N children of a batch train at once and finish in any order: each trial keeps the index of its place
in the batch, and the journal is read back in index order.

With ``pipeline = 2`` (asynchronous mode) the next batch is proposed before the current batch's update
and its children start as workers free up; each update still learns from exactly its own batch, with
importance weights for the policy that proposed it (docs/ray.md, "Asynchronous mode").

:meth:`_Loop.run` is the whole loop on one screen: the next finished position (evaluated through
the env pool, or answered without training) -> journal -> monitor -> tell each batch that is
complete -> ask for the next. The strategy is told in one place, asked in one place, and one stop
test says whether the search goes on. What to start next, which batch is complete, the reward cache,
repeats and resume are the I/O-free :class:`rlnas.search.schedule.Schedule` (which ``rlnas bench``
also drives); every side effect (training, journal, TensorBoard, update, checkpoint) happens in the
loop itself. (About 360 lines: the loop and the checkpoint/resume and monitoring steps it calls,
which read best next to it.)
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.nas_env import Episode, NasEnv
from rlnas.config import SearchConfig
from rlnas.errors import SearchAborted
from rlnas.exec.evaluator import Evaluator
from rlnas.exec.factory import make_evaluators
from rlnas.models.objectives import parse_objective
from rlnas.run.monitor import Monitor, batch_scalars
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, best, build_trial, repeat_of
from rlnas.search.pool import EnvPool, play, trial_seed
from rlnas.search.schedule import (
    WAIT,
    Batch,
    Job,
    Kind,
    Schedule,
    consecutive_failures,
    load_proposal,
    mean_reward,
    save_proposal,
)
from rlnas.space import SearchSpace
from rlnas.strategies import Proposal, make_strategy

POLICY_SAMPLES = 256
"""Architectures sampled (aside) after each update to estimate the policy's marginals for TensorBoard."""


@dataclass(frozen=True)
class SearchResult:
    trials: list[Trial]
    best: Trial | None
    seconds: float
    stopped_by: str  # "trials", "time" or "interrupted"


def run_search(
    config: SearchConfig,
    space: SearchSpace,
    store: RunStore,
    *,
    evaluator: Evaluator | Sequence[Evaluator] | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SearchResult:
    """Run the whole search phase into ``store``; returns every trial and the best one.

    Args:
        evaluator: trains the children: one evaluator, or several to train that many at once
            (default: ``config.workers`` worker processes on the configured dataset).
        on_trial: called with each :class:`~rlnas.run.trial.Trial` as it is written (progress display).
        should_stop: asked before each child; True ends the search after the children in training,
            without an update on the partial batch, so that a resume continues exactly there.
        resume: continue the interrupted search in ``store``: the strategy (controller, baseline,
            sampler) comes back from the last checkpoint, the batch in flight is asked again (the
            same architectures, by the restored RNG) and its children already in the journal are
            reused, never retrained. The budget counts what was already spent.

    Raises:
        RunError: on resume, the journal does not match what the checkpoint proposes again.
        SearchAborted: ``max_consecutive_failures`` children failed in a row.
    """
    loop = _Loop(config, space, store, _pool(config, space, evaluator), on_trial, should_stop)
    try:
        return loop.run(resume)
    finally:
        loop.close()


def _pool(
    config: SearchConfig, space: SearchSpace, evaluator: Evaluator | Sequence[Evaluator] | None
) -> EnvPool:
    """One env per concurrent child; worker processes start now, while the strategy is built."""
    if evaluator is None:
        evaluator = make_evaluators(config, space)
    evaluators = list(evaluator) if isinstance(evaluator, Sequence) else [evaluator]
    return EnvPool(
        [
            NasEnv(space, evaluator=e, failed_reward=config.failed_reward, objective=config.objective)
            for e in evaluators
        ]
    )


class _Loop:
    """One search: :meth:`run` is the loop; the bookkeeping (batches in flight, the reward cache,
    repeats, resume) is the I/O-free :class:`~rlnas.search.schedule.Schedule`; the side effects are
    all here."""

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        store: RunStore,
        pool: EnvPool,
        on_trial: Callable[[Trial], None] | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.config, self.space, self.store, self.pool = config, space, store, pool
        self.on_trial, self.should_stop = on_trial, should_stop
        self.objective = parse_objective(config.objective)
        self.strategy = make_strategy(config, space)
        self.checkpoint = store.checkpoint_path(config.strategy)
        self.monitor = Monitor(store.tb_dir)
        self.book = Schedule(
            space.key,
            trials=config.trials,
            m=config.archs_per_update,
            pipeline=config.pipeline,
            reuse=not config.reevaluate_repeats,
        )
        self.start = time.monotonic()
        self.deadline = math.inf
        self.ready: deque[tuple[Job, tuple[Episode, float]]] = deque()  # finished, not yet recorded

    def run(self, resume: bool) -> SearchResult:
        """ask -> evaluate through the env pool -> journal -> monitor -> tell, until the budget ends."""
        self._open(resume)
        try:
            while True:
                finished = self._next()  # evaluate: a position answered at once, or a child trained
                if finished is not None:
                    self._record(*finished)  # journal, monitor (a trained child's waiting repeats too)
                ended = finished is None
                while (batch := self._to_tell(ended)) is not None:
                    self._tell(batch)  # update, checkpoint
                    if not ended:
                        self._propose()  # ask: keep ``pipeline`` batches in flight
                if ended:
                    return self._result()
        finally:
            self.pool.abort()  # leaving early: nothing half-trained is recorded

    def _open(self, resume: bool) -> None:
        """Restore the interrupted run (or begin a new one), then fill the pipeline."""
        pending = self._restore() if resume else self._begin()
        if self.config.max_minutes:
            self.deadline = self.start + self.config.max_minutes * 60
        for proposal, stale in pending:
            self.book.push(proposal, stale)
        self._propose()

    def _stopped_by(self) -> str | None:
        """The one stop test: "interrupted" (``should_stop``: nothing more starts or is told, so that
        a resume continues exactly there), "time" (past ``max_minutes``: nothing more starts, what
        finishes is still told) or None."""
        if self.should_stop():
            return "interrupted"
        return "time" if time.monotonic() >= self.deadline else None

    def _next(self) -> tuple[Job, tuple[Episode, float] | None] | None:
        """The next finished position, with its child's episode if it trained: one the last wait
        returned, one answered without training (a repeat, a resumed position) or the next child to
        finish, after starting a child on every free worker. None: nothing trains and nothing starts.
        """
        if self.ready:
            return self.ready.popleft()
        while self.pool.free and self._stopped_by() is None:
            job = self.book.next_job()
            if job is WAIT and not self.pool.busy:
                raise RuntimeError("the search waits for a result, but no child is training")
            if not isinstance(job, Job):
                break
            if job.kind is not Kind.TRAIN:
                return job, None
            self.pool.start(job, self._play)
        if not self.pool.busy:
            return None
        self.strategy.think()  # its spare-time work (the reward model's imagined steps), while they train
        self.ready.extend(self.pool.wait())
        return self.ready.popleft()

    def _to_tell(self, ended: bool) -> Batch | None:
        """The next batch to learn from: the oldest once complete, or at the end one that a time
        limit cut short (perhaps fewer trials than asked); none after an interruption."""
        if self._stopped_by() == "interrupted":
            return None
        if ended:
            return self.book.pop_partial()
        return self.book.pop_complete() if self.book.head_complete else None

    def _record(self, job: Job, played: tuple[Episode, float] | None) -> None:
        """Journal, show and remember one finished position; a trained child's waiting repeats are
        answered from it at once (or handed out again, if it failed)."""
        self._keep(job, self._answer(job) if played is None else self._trained(job, *played))
        if job.kind is Kind.TRAIN:
            for waiter in self.book.release(job):
                self._keep(waiter, self._answer(waiter))

    def _keep(self, job: Job, trial: Trial) -> None:
        """Journal (on disk at once), show and remember one finished position."""
        if job.kind is not Kind.RESUMED:
            self.store.append_trial(trial)
            if job.kind is Kind.TRAIN:
                self.monitor.child(trial)
            if self.on_trial is not None:
                self.on_trial(trial)
        self.book.accept(job, trial)
        limit = self.config.max_consecutive_failures
        if consecutive_failures(self.book.trials, limit):
            raise SearchAborted(
                f"the last {limit} children all failed (last error: {self.book.trials[-1].error}); "
                "fix the cause or raise --max-consecutive-failures"
            )

    # -- proposals and updates -----------------------------------------------------------------
    def _propose(self) -> None:
        """Fill the pipeline (batch k+2 is asked right after update k, so it is told one update late)."""
        while self.book.wants_proposal:
            self.book.push(self.strategy.ask(self.config.archs_per_update), stale=self.config.pipeline > 1)

    def _tell(self, batch: Batch) -> None:
        """Update the strategy from the batch's trials (perhaps fewer than asked), then checkpoint."""
        tokens, rewards, log_probs, statuses = batch.told()
        stats = self.strategy.tell(tokens, rewards, log_probs=log_probs, statuses=statuses)
        self._checkpoint()
        step = self.book.next_index
        rows = [batch.trials[k] for k in sorted(batch.trials)]
        self.monitor.scalars(step, batch_scalars(rows, stats, self.book.trials, self.objective))
        self._log_policy(step)
        self.monitor.leaderboard(step, self.book.trials, self.objective)

    # -- trials --------------------------------------------------------------------------------
    def _play(self, env: NasEnv, job: Job) -> tuple[Episode, float]:
        """Play one proposed sequence through the env (in a pool thread); (its episode, elapsed)."""
        logs = self.store.tb_dir / "children" / f"{job.index:05d}" if self.config.child_logs else None
        play(env, job.tokens, trial_seed(self.config.seed, job.index), str(logs) if logs else None)
        assert env.last is not None
        return env.last, time.monotonic() - self.start

    def _trained(self, job: Job, episode: Episode, elapsed: float) -> Trial:
        """The trial of a trained child; with --reevaluate-repeats its reward is the mean of every
        evaluation's own reward (a failed one counts as ``failed_reward``, which the env gave it)."""
        again, reward = self.config.reevaluate_repeats, episode.reward
        return build_trial(
            index=job.index,
            update=job.index // self.config.archs_per_update,
            tokens=job.tokens,
            key=episode.key,
            architecture=episode.architecture,
            reward=mean_reward(self.book.evaluations(episode.key), reward) if again else reward,
            log_prob=job.log_prob,
            child=episode.result,
            seed=episode.child_seed,
            elapsed=elapsed,
            evaluation_reward=reward if again else None,
        )

    def _answer(self, job: Job) -> Trial:
        """A position answered without training: from the journal (resume) or the cache (a repeat)."""
        if job.kind is Kind.RESUMED:
            return self.book.resumed(job)
        return repeat_of(
            self.book.cached(job),
            index=job.index,
            update=job.index // self.config.archs_per_update,
            tokens=job.tokens,
            log_prob=job.log_prob,
            elapsed=time.monotonic() - self.start,
        )

    def _result(self) -> SearchResult:
        trials = sorted(self.book.trials, key=lambda t: t.index)
        stopped_by = "trials" if len(trials) >= self.config.trials else self._stopped_by() or "time"
        return SearchResult(trials, best(trials, self.objective), time.monotonic() - self.start, stopped_by)

    # -- checkpoints and monitoring ------------------------------------------------------------
    def _begin(self) -> list[tuple[Proposal, bool]]:
        """A new run: the config once as text, the HParams experiment, the policy before any update."""
        self.monitor.text("config", f"```\n{self.config.to_text()}\n```")
        self.monitor.hparams_config(self.space, self.objective)
        self._log_policy(0)
        return []

    def _checkpoint(self) -> None:
        """The strategy after an update, with the batches proposed before it that are still to come
        (pipeline 2): they cannot be asked again from the restored state, so they are saved."""
        state: dict[str, Any] = {
            "trials": self.book.next_index,
            "next_index": self.book.next_index,
            "elapsed": time.monotonic() - self.start,
            "strategy": self.config.strategy,
        }
        if self.book.inflight:
            state["pending"] = [save_proposal(b.proposal, b.stale) for b in self.book.inflight]
        self.strategy.save(self.checkpoint, meta=state)
        self.store.write_json("state.json", {k: v for k, v in state.items() if k != "pending"})

    def _restore(self) -> list[tuple[Proposal, bool]]:
        """Load the last checkpoint; split the journal into trials before it and after it. Returns the
        proposals that were in flight after the checkpointed update."""
        self.store.repair_journal()
        journal = self.store.trials()  # in index order
        self.book.check_journal(journal, self.store.path / "trials.jsonl")
        meta = self.strategy.restore(self.checkpoint) if self.checkpoint.exists() else {}
        self.book.restore(journal, int(meta.get("next_index", meta.get("trials", 0))))
        self.start -= max((t.elapsed for t in journal), default=0.0)
        return [load_proposal(p) for p in meta.get("pending", [])]

    def _log_policy(self, step: int) -> None:
        """Log the policy's marginals, estimated from samples drawn with their own generator (seeded by
        the run and the step): the search's sampler must not move, or the run would not reproduce."""
        probe = self.strategy.probe(POLICY_SAMPLES, np.random.default_rng([self.config.seed, step]))
        if probe is not None:
            self.monitor.policy(step, self.space, probe)

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.monitor.close()
