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

:meth:`_Loop.run` is the whole loop on one screen: ask -> evaluate through the env pool -> journal ->
monitor -> tell when a batch is complete. What to start next, which batch is complete, the reward
cache, repeats and resume are the I/O-free :class:`rlnas.search.schedule.Schedule` (which ``rlnas bench`` also
drives); every side effect (training, journal, TensorBoard, update, checkpoint) happens in the loop
itself, never inside an iterator that the pool pulls from. (About 320 lines: the loop and the
checkpoint/resume and monitoring steps it calls, which read best next to it.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.nas_env import NasEnv
from rlnas.config import SearchConfig
from rlnas.errors import SearchAborted
from rlnas.exec.evaluator import Evaluator, start_workers
from rlnas.exec.parallel import EnvPool, play, trial_seed
from rlnas.models.objectives import parse_objective
from rlnas.run.monitor import Monitor, batch_scalars
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, best, build_trial, repeat_of
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
    if evaluator is None and config.executor == "ray":
        from rlnas.exec.ray_evaluator import make_ray_evaluators

        evaluator = make_ray_evaluators(config, space)
    if evaluator is None:
        evaluator = start_workers(config, space)
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

    def run(self, resume: bool) -> SearchResult:
        """ask -> evaluate through the env pool -> journal -> monitor -> tell, until the budget ends."""
        pending = self._restore() if resume else self._begin()
        if self.config.max_minutes:
            self.deadline = self.start + self.config.max_minutes * 60
        for proposal, stale in pending:
            self.book.push(proposal, stale)
        self._propose()
        try:
            while True:
                self._start_children()  # ask the schedule for a child per free worker
                if not self.pool.busy:
                    break
                self._think()  # the strategy's spare-time work, while the children train
                for job, (reward, info, elapsed) in self.pool.wait():  # evaluate
                    self._record(job, self._trained(job, reward, info, elapsed))  # journal, monitor
                    for waiter in self.book.release(job):
                        self._record(waiter, self._answer(waiter))
                    self._tell_complete()  # tell
        finally:
            self.pool.abort()  # leaving early: nothing half-trained is recorded
        if not self.should_stop():  # a time limit cut batches short: learn from what was evaluated
            while (batch := self.book.pop_partial()) is not None:
                self._tell(batch)
        return self._result()

    def _stopping(self) -> bool:
        return self.should_stop() or time.monotonic() >= self.deadline

    def _start_children(self) -> None:
        """Start a child on every free worker; repeats and resumed positions are answered on the way
        (and may complete a batch, told at once: the next batch's children may wait for it)."""
        while self.pool.free and not self._stopping():
            job = self.book.next_job()
            if job is WAIT and not self.pool.busy:
                raise RuntimeError("the search waits for a result, but no child is training")
            if not isinstance(job, Job):
                return
            if job.kind is Kind.TRAIN:
                self.pool.start(job, self._play)
            else:
                self._record(job, self._answer(job))
                self._tell_complete()

    def _record(self, job: Job, trial: Trial) -> None:
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

    def _think(self) -> None:
        """Let the strategy do the work its next proposal does not wait for (the reward model's
        imagined steps), now that the workers are busy; a strategy without it has nothing to do."""
        think = getattr(self.strategy, "think", None)
        if think is not None:
            think()

    def _tell_complete(self) -> None:
        """Tell every finished batch at the head of the pipeline (in order), each followed by the next
        proposal; after a stop nothing is told, so that a resume continues exactly there."""
        while self.book.head_complete and not self.should_stop():
            self._tell(self.book.pop_complete())
            self._propose()

    def _tell(self, batch: Batch) -> None:
        """Update the strategy from the batch's trials (perhaps fewer than asked), then checkpoint."""
        tokens, rewards, log_probs = batch.told()
        stats = self.strategy.tell(tokens, rewards, log_probs=log_probs)
        self._checkpoint()
        step = self.book.next_index
        rows = [batch.trials[k] for k in sorted(batch.trials)]
        self.monitor.scalars(step, batch_scalars(rows, stats, self.book.trials, self.objective))
        self._log_policy(step)
        self.monitor.leaderboard(step, self.book.trials, self.objective)

    # -- trials --------------------------------------------------------------------------------
    def _play(self, env: NasEnv, job: Job) -> tuple[float, dict[str, Any], float]:
        """Play one proposed sequence through the env (in a pool thread); (reward, info, elapsed)."""
        logs = self.store.tb_dir / "children" / f"{job.index:05d}" if self.config.child_logs else None
        seed = trial_seed(self.config.seed, job.index)
        reward, info = play(env, job.tokens, seed, str(logs) if logs else None)
        return reward, info, time.monotonic() - self.start

    def _trained(self, job: Job, reward: float, info: dict[str, Any], elapsed: float) -> Trial:
        """The trial of a trained child; with --reevaluate-repeats its reward is the mean of every
        evaluation's own reward (a failed one counts as ``failed_reward``, which the env gave it)."""
        again = self.config.reevaluate_repeats
        return build_trial(
            index=job.index,
            update=job.index // self.config.archs_per_update,
            tokens=job.tokens,
            key=info["key"],
            architecture=info["architecture"],
            reward=mean_reward(self.book.evaluations(info["key"]), reward) if again else reward,
            log_prob=job.log_prob,
            child=info["metrics"],
            seed=info["child_seed"],
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
        stopped_by = (
            "trials" if len(trials) >= self.config.trials else "interrupted" if self.should_stop() else "time"
        )
        return SearchResult(trials, best(trials, self.objective), time.monotonic() - self.start, stopped_by)

    # -- checkpoints and monitoring ------------------------------------------------------------
    def _begin(self) -> list[tuple[Proposal, bool]]:
        """A new run: the config once as text, the HParams experiment, the policy before any update."""
        self.monitor.text("config", f"```\n{self.config.to_text()}\n```")
        self.monitor.hparams_config(self.space)
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
