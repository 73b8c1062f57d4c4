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
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.nas_env import NasEnv
from rlnas.config import SearchConfig
from rlnas.errors import RunError, SearchAborted
from rlnas.evaluator import Evaluator, start_workers
from rlnas.monitor import Monitor
from rlnas.parallel import NOT_YET, EnvPool, play, trial_seed
from rlnas.space import SearchSpace
from rlnas.store import RunStore
from rlnas.strategies import Proposal, Strategy, make_strategy

POLICY_SAMPLES = 256
"""Architectures sampled (aside) after each update to estimate the policy's marginals for TensorBoard."""


@dataclass(frozen=True)
class SearchResult:
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    seconds: float
    stopped_by: str  # "trials", "time" or "interrupted"


def run_search(
    config: SearchConfig,
    space: SearchSpace,
    store: RunStore,
    *,
    evaluator: Evaluator | Sequence[Evaluator] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SearchResult:
    """Run the whole search phase into ``store``; returns every trial and the best one.

    Args:
        evaluator: trains the children: one evaluator, or several to train that many at once
            (default: ``config.workers`` worker processes on the configured dataset).
        on_trial: called with each trial record as it is written (progress display).
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
        from rlnas.ray_evaluator import make_ray_evaluators

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


@dataclass(eq=False)
class _Batch:
    """One proposal in flight: its place in the run and its children's records as they finish.

    Attributes:
        start: index of its first architecture; the batch is the index range [start, start + m).
        stale: told with its sampling log-probs, for importance weights: with ``pipeline = 2`` a batch
            is proposed while the one ahead of it is untold, so it is told one update after the policy
            that proposed it. Every batch of a pipelined run is (the first one's weights are 1 to
            round-off), so that one traced update step serves them all.
        limit: positions within the budget; the rest of the batch is never used.
        todo: positions not yet started (or answered from the cache, or waiting for a repeat).
    """

    proposal: Proposal
    start: int
    stale: bool
    limit: int
    todo: deque[int]
    records: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return 0 < self.limit == len(self.records)


class _Loop:
    """The state of one search: strategy, journal, reward cache, budget. ``run`` is the loop.

    With ``pipeline = 2`` two batches are in flight: batch k+1 is proposed before batch k's update
    and its children start as workers free up; when batch k's results are all in, the strategy is told
    exactly those, and batch k+2 is proposed. What is proposed depends only on the strategy's state,
    never on which child finished first. ``pipeline = 1`` is the same loop with one batch in flight.
    """

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        store: RunStore,
        pool: EnvPool,
        on_trial: Callable[[dict[str, Any]], None] | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.config, self.space, self.store, self.pool = config, space, store, pool
        self.on_trial, self.should_stop = on_trial, should_stop
        self.strategy: Strategy = make_strategy(config, space)
        self.checkpoint = store.checkpoint_path(config.strategy)
        self.monitor = Monitor(store.tb_dir)
        self.trials: list[dict[str, Any]] = []  # in the order they finished
        self.finished: dict[int, dict[str, Any]] = {}  # journal records past the checkpoint (resume)
        self.next_index = 0  # first index of the oldest batch not yet told
        self.start = time.monotonic()
        self.deadline = math.inf
        self.cache: dict[str, dict[str, Any]] = {}  # key -> first successful record: repeats reuse it
        self.inflight: deque[_Batch] = deque()  # proposed, not yet told; the oldest first
        self.training: set[str] = set()  # keys of the children in training
        self.waiting: dict[str, list[tuple[_Batch, int]]] = {}  # repeats of a key in training

    def run(self, resume: bool) -> SearchResult:
        config = self.config
        pending = self._restore() if resume else []
        if not resume:
            settings = "\n".join(f"{k} = {v!r}" for k, v in config.to_dict().items())
            self.monitor.text("config", f"```\n{settings}\n```")
            self.monitor.hparams_config(self.space)
            self._log_policy(0)
        if config.max_minutes:
            self.deadline = self.start + config.max_minutes * 60
        for proposal, stale in pending:
            self._push(proposal, stale)
        # Always whole batches, and always `pipeline` of them: what is proposed must not depend on the
        # budget, or a resume with a larger --trials would propose differently from the run it continues.
        self._propose()
        for (batch, k), record in self.pool.run(self._jobs(), self._train):
            key = self.space.key(batch.proposal.tokens[k])
            self.training.discard(key)
            if config.reevaluate_repeats:
                record["reward"] = _mean_reward(self.trials, record, config.failed_reward)
            self._accept(batch, k, record, trained=True)
            self._release(key)
            self._advance()
        if not self.should_stop():  # a time limit cut batches short: learn from what was evaluated
            while self.inflight and self.inflight[0].records:
                self._tell(self.inflight.popleft())
        stopped_by = (
            "trials" if len(self.trials) >= config.trials else "interrupted" if self.should_stop() else "time"
        )
        trials = sorted(self.trials, key=lambda t: t["index"])
        return SearchResult(trials, best_trial(trials), time.monotonic() - self.start, stopped_by)

    # -- batches in flight ---------------------------------------------------------------------
    def _push(self, proposal: Proposal, stale: bool) -> None:
        m = self.config.archs_per_update
        start = self.inflight[-1].start + m if self.inflight else self.next_index
        limit = max(0, min(len(proposal.tokens), self.config.trials - start))
        self.inflight.append(_Batch(proposal, start, stale, limit, deque(range(limit))))

    def _propose(self) -> None:
        """Fill the pipeline (batch k+2 is asked right after update k, so it is told one update late)."""
        while len(self.inflight) < self.config.pipeline:
            self._push(self.strategy.ask(self.config.archs_per_update), stale=self.config.pipeline > 1)

    def _advance(self) -> None:
        """Tell every finished batch at the head of the pipeline (in order), each followed by the next
        proposal; after a stop nothing is told, so that a resume continues exactly there."""
        while self.inflight and self.inflight[0].complete and not self.should_stop():
            self._tell(self.inflight.popleft())
            self._propose()

    def _tell(self, batch: _Batch) -> None:
        """Update the strategy from the batch's rows (perhaps fewer than asked), then checkpoint."""
        ks = sorted(batch.records)
        rows = [batch.records[k] for k in ks]
        log_probs = batch.proposal.log_probs
        stats = self.strategy.tell(
            batch.proposal.tokens[ks],
            np.array([t["reward"] for t in rows]),
            log_probs=log_probs[ks] if batch.stale and log_probs is not None else None,
        )
        self.next_index = batch.start + ks[-1] + 1  # positions a budget cut off were never used: no gap
        self._checkpoint()
        step = self.next_index
        self.monitor.scalars(step, _batch_scalars(rows, stats, best_trial(self.trials)))
        self._log_policy(step)
        self.monitor.leaderboard(step, self.trials)

    # -- children ------------------------------------------------------------------------------
    def _jobs(self) -> Iterator[tuple[_Batch, int] | Any]:
        """The children to train, in batch and position order, as workers free up (a generator that
        ``EnvPool.run`` pulls from); NOT_YET while the next batch waits for an update."""
        while not self.should_stop() and time.monotonic() < self.deadline:
            job = self._next_job()
            if job is not None:
                yield job
            elif self.waiting or self.inflight[-1].start + self.config.archs_per_update < self.config.trials:
                yield NOT_YET
            else:
                return  # every position within the budget has been started or answered

    def _next_job(self) -> tuple[_Batch, int] | None:
        """The next position to train; repeats are answered from the cache (or the journal, on
        resume) on the way, and a repeat of a child in training waits for it instead of training twice."""
        reuse = not self.config.reevaluate_repeats
        while (batch := next((b for b in self.inflight if b.todo), None)) is not None:
            k = batch.todo.popleft()
            index, key = batch.start + k, self.space.key(batch.proposal.tokens[k])
            if index in self.finished:  # resume: this child finished before the interruption
                record = _reuse(self.finished.pop(index), batch.proposal.tokens[k])
                self._accept(batch, k, record, new=False)
            elif reuse and key in self.cache:
                self._accept(batch, k, self._from_cache(batch, k))
            elif reuse and key in self.training:
                self.waiting.setdefault(key, []).append((batch, k))
                continue
            else:
                self.training.add(key)
                return batch, k
            self._advance()
        return None

    def _release(self, key: str) -> None:
        """A child finished: answer its waiting repeats from the cache, or (it failed) train them."""
        waiters = self.waiting.pop(key, [])
        if key in self.cache:
            for batch, k in waiters:
                self._accept(batch, k, self._from_cache(batch, k))
        else:
            for batch, k in reversed(waiters):
                batch.todo.appendleft(k)

    def _accept(
        self, batch: _Batch, k: int, record: dict[str, Any], *, new: bool = True, trained: bool = False
    ) -> None:
        """Journal (on disk at once), show and remember one finished trial."""
        if new:
            self.store.append_trial(record)
            if trained:
                self.monitor.child(record)
            if self.on_trial is not None:
                self.on_trial(record)
        if record["status"] == "ok" and not record.get("cached"):
            self.cache.setdefault(record["key"], record)
        batch.records[k] = record
        self.trials.append(record)
        _check_failures(self.trials, self.config.max_consecutive_failures)

    def _train(self, env: NasEnv, job: tuple[_Batch, int]) -> dict[str, Any]:
        """Play proposed sequence ``k`` of a batch through the env (in a pool thread); its record."""
        batch, k = job
        index, tokens = batch.start + k, batch.proposal.tokens[k]
        logs = self.store.tb_dir / "children" / f"{index:05d}" if self.config.child_logs else None
        reward, info = play(env, tokens, trial_seed(self.config.seed, index), str(logs) if logs else None)
        return {
            "index": index,
            "update": index // self.config.archs_per_update,
            "tokens": [int(t) for t in tokens],
            "key": info["key"],
            "architecture": info["architecture"],
            "reward": reward,
            "log_prob": _log_prob(batch.proposal, k),
            **info["metrics"],
            "seed": info["child_seed"],
            "elapsed": time.monotonic() - self.start,
        }

    def _from_cache(self, batch: _Batch, k: int) -> dict[str, Any]:
        """The record of a repeated architecture: the first evaluation's result, no training time."""
        index, tokens = batch.start + k, batch.proposal.tokens[k]
        first = self.cache[self.space.key(tokens)]
        return first | {
            "index": index,
            "update": index // self.config.archs_per_update,
            "tokens": [int(t) for t in tokens],
            "log_prob": _log_prob(batch.proposal, k),
            "fit_seconds": 0.0,
            "eval_seconds": 0.0,
            "child_seconds": 0.0,
            "cached": True,
            "cached_from": first["index"],
            "elapsed": time.monotonic() - self.start,
        }  # fmt: skip

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """The strategy after an update, with the batches proposed before it that are still to come
        (pipeline 2): they cannot be asked again from the restored state, so they are saved."""
        state: dict[str, Any] = {
            "trials": self.next_index,
            "next_index": self.next_index,
            "elapsed": time.monotonic() - self.start,
            "strategy": self.config.strategy,
        }
        if self.inflight:
            state["pending"] = [_save_proposal(b.proposal, b.stale) for b in self.inflight]
        self.strategy.save(self.checkpoint, meta=state)
        self.store.write_json("state.json", {k: v for k, v in state.items() if k != "pending"})

    def _restore(self) -> list[tuple[Proposal, bool]]:
        """Load the last checkpoint; split the journal into trials before it and after it. Returns the
        proposals that were in flight after the checkpointed update."""
        self.store.repair_journal()
        records = self.store.trials()  # in index order
        indices = [t["index"] for t in records]
        if len(set(indices)) != len(indices):
            raise RunError(f"{self.store.path / 'trials.jsonl'} repeats a trial index; it cannot be resumed")
        meta = self.strategy.restore(self.checkpoint) if self.checkpoint.exists() else {}
        self.next_index = int(meta.get("next_index", meta.get("trials", 0)))
        self.trials = [t for t in records if t["index"] < self.next_index]
        self.finished = {t["index"]: t for t in records if t["index"] >= self.next_index}
        self.start -= max((float(t["elapsed"]) for t in records), default=0.0)
        self.cache = {
            t["key"]: t for t in reversed(self.trials) if t["status"] == "ok" and not t.get("cached")
        }
        return [_load_proposal(p) for p in meta.get("pending", [])]

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


def _save_proposal(proposal: Proposal, stale: bool) -> dict[str, Any]:
    """A proposal as JSON (Python writes floats exactly: the log-probs come back bit for bit)."""
    log_probs = None if proposal.log_probs is None else [float(x) for x in proposal.log_probs]
    return {"tokens": proposal.tokens.tolist(), "log_probs": log_probs, "stale": stale}


def _load_proposal(saved: dict[str, Any]) -> tuple[Proposal, bool]:
    log_probs = None if saved["log_probs"] is None else np.asarray(saved["log_probs"], np.float64)
    return Proposal(np.asarray(saved["tokens"], np.int64), log_probs), bool(saved["stale"])


def _log_prob(proposal: Proposal, k: int) -> float | None:
    return None if proposal.log_probs is None else float(proposal.log_probs[k])


def _reuse(record: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    """A journal record for the architecture proposed again on resume; they must agree."""
    if record["tokens"] != [int(t) for t in tokens]:
        raise RunError(
            f"resume diverged at trial {record['index']}: the checkpoint proposes {list(map(int, tokens))}, "
            f"the journal has {record['tokens']} (was the run changed by hand?)"
        )
    return record


def _check_failures(trials: Sequence[dict[str, Any]], limit: int) -> None:
    """Stop a search whose children keep failing: something is wrong that more trials won't fix."""
    recent = trials[-limit:]
    if len(recent) == limit and all(t["status"] != "ok" for t in recent):
        raise SearchAborted(
            f"the last {limit} children all failed (last error: {recent[-1]['error']}); "
            "fix the cause or raise --max-consecutive-failures"
        )


def best_trial(trials: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The successful trial with the highest reward (the earliest on ties), or None."""
    ok = [t for t in trials if t["status"] == "ok"]
    return max(ok, key=lambda t: (t["reward"], -t["index"])) if ok else None


def _mean_reward(trials: Sequence[dict[str, Any]], record: dict[str, Any], failed_reward: float) -> float:
    """With --reevaluate-repeats: the reward is the mean of every evaluation's own reward (a failed
    one counts as ``failed_reward``, which the env already gave it)."""
    record["evaluation_reward"] = record["reward"]
    evaluations = [t for t in trials if t["key"] == record["key"] and not t.get("cached")] + [record]
    return float(np.mean([t.get("evaluation_reward", t["reward"]) for t in evaluations]))


def _batch_scalars(
    batch: list[dict[str, Any]], stats: dict[str, float], best: dict[str, Any] | None
) -> dict[str, float]:
    """TensorBoard scalars of one batch, in CleanRL's fixed tag groups; the strategy adds its own."""
    rewards = [t["reward"] for t in batch]
    last = max(batch, key=lambda t: t["elapsed"])
    return {
        "charts/reward_mean": float(np.mean(rewards)),
        "charts/reward_max": float(np.max(rewards)),
        "charts/best_val_accuracy": best["val_accuracy"] if best else 0.0,
        "charts/failed_fraction": sum(t["status"] != "ok" for t in batch) / len(batch),
        "charts/cache_hits": sum(bool(t.get("cached")) for t in batch) / len(batch),
        "charts/children_per_minute": (last["index"] + 1) / max(last["elapsed"], 1e-9) * 60,
        **stats,
    }
