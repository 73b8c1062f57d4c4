"""The search loop, readable top to bottom: ask for a batch, evaluate it through the env, tell, repeat.

    strategy.ask(m) -> tokens ─► NasEnv x N workers (one token per step; trains the child) ─► rewards
          ▲                                                                                   │
          └──────── strategy.tell: REINFORCE update / evolution's population / nothing ◄──────┘

Every child goes through :class:`envs.nas_env.NasEnv` (one code path for search, benchmarks and outside
agents); each finished trial is appended to ``trials.jsonl`` as soon as it finishes. With N workers,
N children of a batch train at once and finish in any order: each trial keeps the index of its place
in the batch, and the journal is read back in index order.
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
from rlnas.errors import RunError, SearchAborted
from rlnas.evaluator import Evaluator, WorkerEvaluator, train_spec
from rlnas.monitor import Monitor
from rlnas.parallel import EnvPool, default_workers, play, threads_per_worker, trial_seed
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
        workers = config.workers or default_workers()
        train = train_spec(config, space, threads=threads_per_worker(workers))
        spec = config.data_spec()
        evaluator = [
            WorkerEvaluator(spec, train, children_per_worker=config.children_per_worker)
            for _ in range(workers)
        ]
        for e in evaluator:
            e.start()
    evaluators = list(evaluator) if isinstance(evaluator, Sequence) else [evaluator]
    return EnvPool(
        [
            NasEnv(space, evaluator=e, failed_reward=config.failed_reward, objective=config.objective)
            for e in evaluators
        ]
    )


class _Loop:
    """The state of one search: strategy, journal, reward cache, budget. ``run`` is the loop."""

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
        self.trials: list[dict[str, Any]] = []
        self.finished: dict[int, dict[str, Any]] = {}  # journal records past the checkpoint (resume)
        self.next_index = 0
        self.start = time.monotonic()
        self.deadline = math.inf
        self.cache: dict[str, dict[str, Any]] = {}  # key -> first successful record: repeats reuse it

    def run(self, resume: bool) -> SearchResult:
        config = self.config
        if resume:
            self._restore()
        else:
            settings = "\n".join(f"{k} = {v!r}" for k, v in config.to_dict().items())
            self.monitor.text("config", f"```\n{settings}\n```")
            self.monitor.hparams_config(self.space)
            self._log_policy(0)
        if config.max_minutes:
            self.deadline = self.start + config.max_minutes * 60
        while len(self.trials) < config.trials and time.monotonic() < self.deadline:
            # Always a whole batch: what is proposed must not depend on the budget, or a resume
            # with a larger --trials would propose differently from the run it continues.
            proposal = self.strategy.ask(config.archs_per_update)
            batch = self._evaluate(proposal)
            if not batch or self.should_stop():
                break
            # The batch may be cut short by the budget: learn from what was evaluated.
            ks = [t["index"] - self.next_index for t in batch]
            stats = self.strategy.tell(proposal.tokens[ks], np.array([t["reward"] for t in batch]))
            self.next_index += max(ks) + 1  # positions a budget cut off were never used: no gap
            self._checkpoint()
            self.monitor.scalars(len(self.trials), _batch_scalars(batch, stats, best_trial(self.trials)))
            self._log_policy(len(self.trials))
            self.monitor.leaderboard(len(self.trials), self.trials)
        stopped_by = (
            "trials" if len(self.trials) >= config.trials else "interrupted" if self.should_stop() else "time"
        )
        trials = sorted(self.trials, key=lambda t: t["index"])
        return SearchResult(trials, best_trial(trials), time.monotonic() - self.start, stopped_by)

    # -- one batch ---------------------------------------------------------------------------------
    def _evaluate(self, proposal: Proposal) -> list[dict[str, Any]]:
        """Evaluate the proposal's architectures (at most the budget left); records in index order."""
        limit = min(len(proposal.tokens), self.config.trials - len(self.trials))
        records: dict[int, dict[str, Any]] = {}
        todo = list(range(limit))
        while todo:  # a second round only for repeats of a child that was training at the same time
            todo = self._round(proposal, todo, records)
        return [records[k] for k in sorted(records)]

    def _round(
        self, proposal: Proposal, positions: list[int], records: dict[int, dict[str, Any]]
    ) -> list[int]:
        """Train (N at a time) or answer from the cache each position; returns the positions that
        repeat an architecture trained in this very round, to answer once it has finished."""
        deferred: list[int] = []
        training: set[str] = set()
        reuse = not self.config.reevaluate_repeats

        def jobs():
            for k in positions:
                if self.should_stop() or time.monotonic() >= self.deadline:
                    return
                index, key = self.next_index + k, self.space.key(proposal.tokens[k])
                if index in self.finished:  # resume: this child finished before the interruption
                    self._accept(records, k, _reuse(self.finished.pop(index), proposal.tokens[k]), new=False)
                elif reuse and key in self.cache:
                    self._accept(records, k, self._from_cache(proposal, k))
                elif reuse and key in training:
                    deferred.append(k)
                else:
                    training.add(key)
                    yield k

        for k, record in self.pool.run(jobs(), lambda env, k: self._train(env, proposal, k)):
            if self.config.reevaluate_repeats:
                record["reward"] = _mean_reward(self.trials, record, self.config.failed_reward)
            self._accept(records, k, record, trained=True)
        return deferred

    def _accept(
        self, records: dict, k: int, record: dict[str, Any], *, new: bool = True, trained: bool = False
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
        records[k] = record
        self.trials.append(record)
        _check_failures(self.trials, self.config.max_consecutive_failures)

    def _train(self, env: NasEnv, proposal: Proposal, k: int) -> dict[str, Any]:
        """Play proposed sequence ``k`` through the env (in a pool thread) and return its record."""
        index, tokens = self.next_index + k, proposal.tokens[k]
        logs = self.store.tb_dir / "children" / f"{index:05d}" if self.config.child_logs else None
        reward, info = play(env, tokens, trial_seed(self.config.seed, index), str(logs) if logs else None)
        return {
            "index": index,
            "update": index // self.config.archs_per_update,
            "tokens": [int(t) for t in tokens],
            "key": info["key"],
            "architecture": info["architecture"],
            "reward": reward,
            "log_prob": _log_prob(proposal, k),
            **info["metrics"],
            "seed": info["child_seed"],
            "elapsed": time.monotonic() - self.start,
        }

    def _from_cache(self, proposal: Proposal, k: int) -> dict[str, Any]:
        """The record of a repeated architecture: the first evaluation's result, no training time."""
        index = self.next_index + k
        first = self.cache[self.space.key(proposal.tokens[k])]
        return first | {
            "index": index,
            "update": index // self.config.archs_per_update,
            "tokens": [int(t) for t in proposal.tokens[k]],
            "log_prob": _log_prob(proposal, k),
            "fit_seconds": 0.0,
            "eval_seconds": 0.0,
            "child_seconds": 0.0,
            "cached": True,
            "cached_from": first["index"],
            "elapsed": time.monotonic() - self.start,
        }  # fmt: skip

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        state = {
            "trials": len(self.trials),
            "next_index": self.next_index,
            "elapsed": time.monotonic() - self.start,
            "strategy": self.config.strategy,
        }
        self.strategy.save(self.checkpoint, meta=state)
        self.store.write_json("state.json", state)  # for people; the checkpoint carries its own copy

    def _restore(self) -> None:
        """Load the last checkpoint; split the journal into trials before it and after it."""
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
