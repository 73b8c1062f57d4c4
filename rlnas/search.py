"""The search loop, readable top to bottom: sample a batch, evaluate it through the env, update, repeat.

    controller.sample(m) -> tokens ─► NasEnv (one token per step; trains the child) ─► rewards
          ▲                                                                            │
          └──────────── REINFORCE update (moving-average baseline) ◄───────────────────┘

Every child goes through :class:`envs.nas_env.NasEnv` (one code path for search, benchmarks and outside
agents); each finished trial is appended to ``trials.jsonl`` before the next child starts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.nas_env import NasEnv
from rlnas import reinforce
from rlnas.config import SearchConfig
from rlnas.controller import Controller, Sample
from rlnas.errors import RunError, SearchAborted
from rlnas.evaluator import Evaluator, TrainSpec, WorkerEvaluator
from rlnas.monitor import Monitor
from rlnas.parallel import play, trial_seed
from rlnas.space import SearchSpace
from rlnas.store import RunStore

POLICY_SAMPLES = 256
"""Architectures sampled (aside) after each update to estimate the policy's marginals for TensorBoard."""


@dataclass(frozen=True)
class SearchResult:
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    seconds: float
    stopped_by: str  # "trials", "time" or "interrupted"


def make_controller(config: SearchConfig, space: SearchSpace) -> Controller:
    return Controller(
        space.vocab_sizes,
        units=config.lstm_units,
        layers=config.lstm_layers,
        init_range=config.init_range,
        learning_rate=config.controller_lr,
        temperature=config.temperature,
        tanh_constant=config.tanh_constant,
        seed=config.seed,
    )


def run_search(
    config: SearchConfig,
    space: SearchSpace,
    store: RunStore,
    *,
    evaluator: Evaluator | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SearchResult:
    """Run the whole search phase into ``store``; returns every trial and the best one.

    Args:
        evaluator: trains the children (default: a worker process on the configured dataset).
        on_trial: called with each trial record as it is written (progress display).
        should_stop: asked before each child; True ends the search there (a first Ctrl-C), without
            an update on the partial batch, so that a resume continues exactly where it stopped.
        resume: continue the interrupted search in ``store``: its controller, baseline and sampler
            come back from the last checkpoint, the batch in flight is sampled again (the same
            architectures, by the restored RNG) and its children already in the journal are reused,
            never retrained. The budget counts what was already spent.

    Raises:
        RunError: on resume, the journal does not match what the checkpoint samples again.
    """
    evaluator = evaluator or WorkerEvaluator(
        config.data_spec(),
        TrainSpec(
            epochs=config.epochs,
            batch_size=config.batch_size,
            max_params=config.max_params,
            time_limit=config.child_time_limit,
        ),
        children_per_worker=config.children_per_worker,
    )
    if hasattr(evaluator, "start"):
        evaluator.start()  # the first worker starts while the controller is built
    env = NasEnv(space, evaluator=evaluator, failed_reward=config.failed_reward)
    controller = make_controller(config, space)
    baseline = reinforce.Baseline(decay=config.baseline_decay)
    monitor = Monitor(store.tb_dir)
    monitor.text("config", "```\n" + "\n".join(f"{k} = {v!r}" for k, v in config.to_dict().items()) + "\n```")

    trials: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []  # journal records past the checkpoint: reused on resume
    spent = 0.0
    if resume:
        trials, finished, spent = _restore(store, controller, baseline)
    start = time.monotonic() - spent
    # Architectures trained successfully, by key: a repeat is answered from here, not retrained.
    cache = {t["key"]: t for t in reversed(trials) if t["status"] == "ok" and not t.get("cached")}
    deadline = start + config.max_minutes * 60 if config.max_minutes else math.inf
    try:
        if not trials:  # a fresh search; a resumed one has these in its event files already
            monitor.hparams_config(space)
            _log_policy(monitor, controller, space, 0, config.seed)
        while len(trials) < config.trials and time.monotonic() < deadline:
            # Always a whole batch: what is sampled must not depend on the budget, or a resume
            # with a larger --trials would sample differently from the run it continues.
            sample = controller.sample(config.archs_per_update)
            batch: list[dict[str, Any]] = []
            for k in range(len(sample.tokens)):
                if len(trials) >= config.trials or time.monotonic() >= deadline or should_stop():
                    break
                key = space.key(sample.tokens[k])
                if finished:
                    record = _reuse(finished.pop(0), sample.tokens[k])
                elif key in cache and not config.reevaluate_repeats:
                    mask = space.active_mask(sample.tokens[k])
                    record = _from_cache(cache[key], sample, k, mask, len(trials), config, start)
                    store.append_trial(record)
                    if on_trial is not None:
                        on_trial(record)
                else:
                    logs = store.tb_dir / "children" / f"{len(trials):05d}" if config.child_logs else None
                    record = _run_trial(env, sample, k, len(trials), config, start, logs)
                    if config.reevaluate_repeats:
                        record["reward"] = _mean_reward(trials, record, config.failed_reward)
                    store.append_trial(record)  # on disk before the next child starts
                    monitor.child(record)
                    if on_trial is not None:
                        on_trial(record)
                if record["status"] == "ok" and not record.get("cached"):
                    cache.setdefault(key, record)
                trials.append(record)
                batch.append(record)
                _check_failures(trials, config.max_consecutive_failures)
            if not batch or should_stop():
                break
            # The batch may be cut short by the time budget: update on what was evaluated.
            stats = reinforce.update(
                controller,
                sample.tokens[: len(batch)],
                np.array([space.active_mask(t) for t in sample.tokens[: len(batch)]]),
                np.array([t["reward"] for t in batch]),
                baseline,
                entropy_weight=config.entropy_weight,
                grad_clip=config.grad_clip,
            )
            state = {"trials": len(trials), "baseline": baseline.value, "elapsed": time.monotonic() - start}
            controller.save(store.controller_path, meta=state)
            store.write_json("state.json", state)  # for people; the checkpoint carries its own copy
            monitor.scalars(len(trials), _batch_scalars(batch, stats, best_trial(trials)))
            _log_policy(monitor, controller, space, len(trials), config.seed)
            monitor.leaderboard(len(trials), trials)
    finally:
        env.close()
        monitor.close()
    stopped_by = "trials" if len(trials) >= config.trials else "interrupted" if should_stop() else "time"
    return SearchResult(trials, best_trial(trials), time.monotonic() - start, stopped_by)


def _restore(
    store: RunStore, controller: Controller, baseline: reinforce.Baseline
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Load the last checkpoint; split the journal into trials before it and after it; time spent."""
    store.repair_journal()
    records = store.trials()
    if [t["index"] for t in records] != list(range(len(records))):
        raise RunError(f"{store.path / 'trials.jsonl'} is out of order; it cannot be resumed")
    meta = controller.restore(store.controller_path) if store.controller_path.exists() else {}
    done = int(meta.get("trials", 0))
    baseline.value = meta.get("baseline")
    spent = float(records[-1]["elapsed"]) if records else 0.0
    return records[:done], records[done:], spent


def _reuse(record: dict[str, Any], tokens: np.ndarray) -> dict[str, Any]:
    """A journal record for the architecture sampled again on resume; they must agree."""
    if record["tokens"] != [int(t) for t in tokens]:
        raise RunError(
            f"resume diverged at trial {record['index']}: the checkpoint samples {list(map(int, tokens))}, "
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
    return max(ok, key=lambda t: t["reward"]) if ok else None


def _run_trial(
    env: NasEnv,
    sample: Sample,
    k: int,
    index: int,
    config: SearchConfig,
    start: float,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Play sampled sequence ``k`` through the env and return the trial's journal record."""
    tokens = sample.tokens[k]
    reward, info = play(env, tokens, trial_seed(config.seed, index), str(log_dir) if log_dir else None)
    mask = env.space.active_mask(tokens)
    return {
        "index": index,
        "update": index // config.archs_per_update,
        "tokens": [int(t) for t in tokens],
        "key": info["key"],
        "architecture": info["architecture"],
        "reward": reward,
        "log_prob": float(np.sum(sample.log_probs[k][mask])),
        **info["metrics"],
        "seed": info["child_seed"],
        "elapsed": time.monotonic() - start,
    }


def _log_policy(monitor: Monitor, controller: Controller, space: SearchSpace, step: int, seed: int) -> None:
    """Log the policy's marginals, estimated from samples drawn with their own generator (seeded by
    the run and the step): the search's sampler must not move, or the run would not reproduce."""
    probe = controller.sample(POLICY_SAMPLES, rng=np.random.default_rng([seed, step]))
    monitor.policy(step, space, probe.tokens)


def _from_cache(
    first: dict[str, Any],
    sample: Sample,
    k: int,
    mask: Sequence[bool],
    index: int,
    config: SearchConfig,
    start: float,
) -> dict[str, Any]:
    """The record of a repeated architecture: the first evaluation's result, no training time."""
    return first | {
        "index": index,
        "update": index // config.archs_per_update,
        "tokens": [int(t) for t in sample.tokens[k]],
        "log_prob": float(np.sum(sample.log_probs[k][np.asarray(mask)])),
        "fit_seconds": 0.0,
        "eval_seconds": 0.0,
        "child_seconds": 0.0,
        "cached": True,
        "cached_from": first["index"],
        "elapsed": time.monotonic() - start,
    }  # fmt: skip


def _mean_reward(trials: Sequence[dict[str, Any]], record: dict[str, Any], failed_reward: float) -> float:
    """With --reevaluate-repeats: the reward is the mean over every evaluation of the architecture."""
    evaluations = [t for t in trials if t["key"] == record["key"] and not t.get("cached")] + [record]
    return float(np.mean([t["val_accuracy"] if t["status"] == "ok" else failed_reward for t in evaluations]))


def _batch_scalars(
    batch: list[dict[str, Any]], stats: reinforce.UpdateStats, best: dict[str, Any] | None
) -> dict[str, float]:
    """TensorBoard scalars of one REINFORCE batch, in CleanRL's fixed tag groups."""
    rewards = [t["reward"] for t in batch]
    return {
        "charts/reward_mean": float(np.mean(rewards)),
        "charts/reward_max": float(np.max(rewards)),
        "charts/best_val_accuracy": best["val_accuracy"] if best else 0.0,
        "charts/baseline": stats.baseline,
        "charts/failed_fraction": sum(t["status"] != "ok" for t in batch) / len(batch),
        "charts/cache_hits": sum(bool(t.get("cached")) for t in batch) / len(batch),
        "charts/children_per_minute": (batch[-1]["index"] + 1) / max(batch[-1]["elapsed"], 1e-9) * 60,
        "losses/loss": stats.loss,
        "losses/entropy": stats.entropy,
        "losses/grad_norm": stats.grad_norm,
        "losses/advantage_abs": stats.advantage_abs,
    }
