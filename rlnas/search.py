"""The search loop, readable top to bottom: sample a batch, evaluate it through the env, update, repeat.

    controller.sample(m) -> tokens ─► NasEnv (one token per step; trains the child) ─► rewards
          ▲                                                                            │
          └──────────── REINFORCE update (moving-average baseline) ◄───────────────────┘

Every child goes through :class:`envs.nas_env.NasEnv` (one code path for search, benchmarks and outside
agents); each finished trial is appended to ``trials.jsonl`` before the next child starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.nas_env import NasEnv
from rlnas import reinforce
from rlnas.config import SearchConfig
from rlnas.controller import Controller
from rlnas.evaluator import Evaluator, TrainSpec, WorkerEvaluator
from rlnas.monitor import Monitor
from rlnas.space import SearchSpace
from rlnas.store import RunStore


@dataclass(frozen=True)
class SearchResult:
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    seconds: float
    stopped_by: str  # "trials" or "time"


def trial_seed(seed: int, index: int) -> int:
    """Seed of trial ``index``: independent streams per trial, the same for the same run seed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


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


def play(env: NasEnv, tokens: Sequence[int], seed: int) -> tuple[float, dict[str, Any]]:
    """Feed one sampled token sequence to the env, skipping decisions the env does not ask."""
    _, info = env.reset(seed=seed)
    mask = env.space.active_mask(tokens)
    reward, terminated = 0.0, False
    for token, active in zip(tokens, mask, strict=True):
        if active:
            _obs, reward, terminated, _, info = env.step(int(token))
    assert terminated, "the env must end on the last active decision"
    return float(reward), info


def run_search(
    config: SearchConfig,
    space: SearchSpace,
    store: RunStore,
    *,
    evaluator: Evaluator | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Run the whole search phase into ``store``; returns every trial and the best one.

    Args:
        evaluator: trains the children (default: a worker process on the configured dataset).
        on_trial: called with each trial record as it is written (progress display).
    """
    evaluator = evaluator or WorkerEvaluator(
        config.data_spec(),
        TrainSpec(epochs=config.epochs, batch_size=config.batch_size),
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
    best: dict[str, Any] | None = None
    start = time.monotonic()
    deadline = start + config.max_minutes * 60 if config.max_minutes else None
    stopped_by = "trials"
    try:
        while len(trials) < config.trials:
            sample = controller.sample(min(config.archs_per_update, config.trials - len(trials)))
            rewards: list[float] = []
            for tokens, logp in zip(sample.tokens, sample.log_probs, strict=True):
                if deadline is not None and time.monotonic() > deadline:
                    stopped_by = "time"
                    break
                index = len(trials)
                reward, info = play(env, tokens, trial_seed(config.seed, index))
                mask = space.active_mask(tokens)
                record = {
                    "index": index,
                    "update": index // config.archs_per_update,
                    "tokens": [int(t) for t in tokens],
                    "key": info["key"],
                    "architecture": info["architecture"],
                    "reward": reward,
                    "log_prob": float(np.sum(logp[mask])),
                    **info["metrics"],
                    "seed": info["child_seed"],
                    "elapsed": time.monotonic() - start,
                }
                store.append_trial(record)
                trials.append(record)
                rewards.append(reward)
                if record["status"] == "ok" and (best is None or reward > best["reward"]):
                    best = record
                if on_trial is not None:
                    on_trial(record)
            if not rewards:
                break
            n = len(rewards)
            masks = np.array([space.active_mask(t) for t in sample.tokens[:n]])
            stats = reinforce.update(
                controller,
                sample.tokens[:n],
                masks,
                np.array(rewards),
                baseline,
                entropy_weight=config.entropy_weight,
                grad_clip=config.grad_clip,
            )
            controller.save(store.controller_path)
            store.write_json("state.json", {"trials": len(trials), "baseline": baseline.value})
            batch = trials[-n:]
            monitor.scalars(
                len(trials),
                {
                    "charts/reward_mean": float(np.mean(rewards)),
                    "charts/reward_max": float(np.max(rewards)),
                    "charts/best_val_accuracy": best["val_accuracy"] if best else 0.0,
                    "charts/baseline": stats.baseline,
                    "charts/failed_fraction": sum(t["status"] != "ok" for t in batch) / n,
                    "losses/loss": stats.loss,
                    "losses/entropy": stats.entropy,
                    "losses/grad_norm": stats.grad_norm,
                    "losses/advantage_abs": stats.advantage_abs,
                },
            )
            if stopped_by == "time":
                break
    finally:
        env.close()
        monitor.close()
    return SearchResult(trials, best, time.monotonic() - start, stopped_by)
