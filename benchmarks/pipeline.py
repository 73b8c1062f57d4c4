"""Synchronous vs pipelined search (``pipeline = 1`` vs ``2``): throughput, idle workers, and regret.

What it measures
    1. Throughput, real children: the same REINFORCE search (mnist_5k, 1 epoch, 2 worker processes,
       m = 4, ``--trials`` children) with pipeline 1 and 2, in ABBA order (``--repeats`` pairs), in
       this process through ``run_search``. Per run: trained children per minute of the search loop,
       and the workers' idle fraction: 1 - (time the workers spent in children) / (workers x the
       span from the first child's start to the last child's end). Children's costs differ by
       architecture (1 to 3 layers, 32 to 512 units), which is what leaves workers idle at the end
       of a synchronous batch.
    2. Throughput, synthetic children: the same with children that sleep a random 0.1-0.5 s (2 and 4
       workers), so that the effect is seen without TensorFlow's noise.
    3. Regret on the lookup table (``--table``, ``--seeds`` x ``--budget``): the pipelined order of
       asks and tells (batch k+1 asked before batch k is told, told with its sampling log-probs)
       against the synchronous order of ``rlnas.bench.runner.run_strategy``, with importance weights (c = 1)
       and without (c = 0, the plain stale gradient).

Why
    Pipelining keeps workers busy at the cost of a policy one update stale; (1) and (2) show what it
    buys, (3) whether the staleness costs anything in search quality.

How to run
    .venv/bin/python benchmarks/pipeline.py                   # a few minutes
    .venv/bin/python benchmarks/pipeline.py --trials 16 --repeats 1 --seeds 5
    Results: benchmarks/results/pipeline/pipeline_vs_synchronous.{json,md}. The machine is shared:
    the load average is recorded with each real-children run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit, parser, quiet, table

M = 4


class Timed:
    """An evaluator that records when each of its children started and ended (busy intervals)."""

    def __init__(self, inner: Any, spans: list[tuple[float, float]]) -> None:
        self.inner, self.spans = inner, spans

    def evaluate(self, arch, seed, **kw):
        start = time.monotonic()
        try:
            return self.inner.evaluate(arch, seed, **kw)
        finally:
            self.spans.append((start, time.monotonic()))

    def kill(self) -> None:
        getattr(self.inner, "kill", lambda: None)()

    def close(self) -> None:
        pass  # the worker processes serve every run; main() closes them at the end


class Sleeper:
    """A synthetic child: sleeps a random 0.1-0.5 s (from its own generator), reward from the layers."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def evaluate(self, arch, seed, **kw):
        from rlnas.models.child import ChildResult, Status

        time.sleep(float(self.rng.uniform(0.1, 0.5)))
        return ChildResult(Status.OK, val_accuracy=0.3 + 0.2 * arch["num_layers"], params=1)

    def close(self) -> None:
        pass


def one_search(config, space, evaluators: list) -> dict[str, Any]:
    """Run a search on ``evaluators`` (wrapped in Timed); throughput and idle fraction."""
    from rlnas.run.store import RunStore
    from rlnas.search.loop import run_search

    spans: list[tuple[float, float]] = []
    timed = [Timed(e, spans) for e in evaluators]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = run_search(config, space, RunStore.create(Path(tmp) / "run"), evaluator=timed)
    trained = len(spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    busy = sum(e - s for s, e in spans)
    return {
        "pipeline": config.pipeline,
        "workers": len(evaluators),
        "trained": trained,
        "seconds": result.seconds,
        "children_per_min": trained / result.seconds * 60,
        "idle_fraction": 1 - busy / (len(evaluators) * span),
        "mean_child_s": busy / trained,
        "best_reward": result.best.reward if result.best else None,
        "load_1min": load,
    }


def real_children(args) -> list[dict[str, Any]]:
    from rlnas.config import SearchConfig
    from rlnas.exec.factory import make_evaluators
    from rlnas.space import default_space

    space = default_space()
    base = SearchConfig(
        dataset="mnist_5k", epochs=1, trials=args.trials, archs_per_update=M, workers=2, seed=0
    )
    workers = make_evaluators(base, space)  # one pair of processes for every run: no start-up in the numbers
    runs = []
    try:
        for pipeline in [1, 2, 2, 1] * args.repeats:
            run = one_search(dataclasses.replace(base, pipeline=pipeline), space, workers)
            print(f"real children, pipeline {pipeline}: {run}", flush=True)
            runs.append(run)
    finally:
        for w in workers:
            w.close()
    return runs


def synthetic_children(args) -> list[dict[str, Any]]:
    from rlnas.config import SearchConfig
    from rlnas.space import default_space

    runs = []
    for workers in (2, 4):
        for pipeline in (1, 2):
            config = SearchConfig(
                trials=12 * workers, archs_per_update=2 * workers, seed=0, pipeline=pipeline
            )
            run = one_search(config, default_space(), [Sleeper(i) for i in range(workers)])
            run["m"] = config.archs_per_update
            print(f"synthetic, {workers} workers, pipeline {pipeline}: {run}", flush=True)
            runs.append(run)
    return runs


# -- regret on the table ---------------------------------------------------------------------------
def run_pipelined(strategy, reward_fn, budget: int, m: int, depth: int) -> np.ndarray:
    """The search loop's order of asks and tells with ``depth`` batches in flight, on a table: a batch
    asked while another is in flight is told with its sampling log-probs (stale by one update)."""
    inflight: deque = deque()
    rewards: list[float] = []
    while len(rewards) < budget:
        while len(inflight) < depth:
            inflight.append((strategy.ask(m), bool(inflight)))
        proposal, stale = inflight.popleft()
        tokens = proposal.tokens[: budget - len(rewards)]
        r = np.array([float(reward_fn(t)) for t in tokens])
        r[np.isnan(r)] = 0.0
        log_probs = proposal.log_probs[: len(tokens)] if stale and proposal.log_probs is not None else None
        strategy.tell(tokens, r, log_probs=log_probs)
        rewards.extend(r)
    return np.asarray(rewards)


def regret(args) -> dict[str, Any]:
    from envs.tabular_env import TabularNasEnv
    from rlnas.bench import report as bench_report
    from rlnas.bench import runner as bench
    from rlnas.config import load_config
    from rlnas.search.pool import play
    from rlnas.strategies import make_strategy
    from rlnas.tables.lookup import load_table

    config, space, _ = load_config(args.table_config)
    config = dataclasses.replace(config, archs_per_update=M)
    table = load_table(args.table, space)
    env = TabularNasEnv(table)

    def reward(tokens) -> float:
        return play(env, tokens, 0)[0]

    variants = {"pipeline 1": (1, 1.0), "pipeline 2, c = 1": (2, 1.0), "pipeline 2, c = 0 (stale)": (2, 0.0)}
    results: dict[str, list[np.ndarray]] = {}
    start = time.monotonic()
    for name, (depth, clip) in variants.items():
        strategy = make_strategy(config.with_settings(importance_clip=clip), space)
        results[name] = []
        for seed in range(args.seeds):
            strategy.reset(seed)  # keeps importance_clip: it replaces only the seed
            results[name].append(run_pipelined(strategy, reward, args.budget, M, depth))
    # The synchronous order here must be exactly rlnas.bench.runner's (and so the search loop's).
    check = make_strategy(dataclasses.replace(config, seed=0), space)
    same = bench.run_strategy(check, reward, args.budget, M).rewards
    assert np.array_equal(same, results["pipeline 1"][0]), "pipeline 1 must be bench.run_strategy"
    best = float(table.best)
    final = {name: np.array([best - r.max() for r in runs]) for name, runs in results.items()}
    base = final["pipeline 1"]
    rows = {
        name: {
            "mean_regret": float(f.mean()),
            "ci": bench_report.mean_ci(f),
            "diff_vs_pipeline_1": bench_report.diff_ci(f, base) if name != "pipeline 1" else None,
        }
        for name, f in final.items()
    }
    summary = bench_report.summarize(results, table.values, budgets=(25, 50, 100, args.budget))
    return {"rows": rows, "summary": summary, "seconds": time.monotonic() - start}


# -- report ----------------------------------------------------------------------------------------
def _mean(runs: list[dict], pipeline: int, key: str) -> float:
    return float(np.mean([r[key] for r in runs if r["pipeline"] == pipeline]))


def report(args, real: list[dict], synthetic: list[dict], tab: dict | None) -> str:
    lines = ["# Pipelined search (pipeline = 2) vs synchronous (pipeline = 1)", ""]
    if real:
        lines += _real_section(args, real)
    lines += [
        "## Synthetic children: sleep 0.1-0.5 s each (uniform), reinforce, 12 batches of m = 2 x workers",
        "",
        table(
            ["workers", "m", "pipeline", "seconds", "children/min", "idle fraction"],
            [
                [r["workers"], r["m"], r["pipeline"], r["seconds"], r["children_per_min"], r["idle_fraction"]]
                for r in synthetic
            ],
        ),
    ]
    if tab is not None:
        lines += _regret_section(args, tab)
    return "\n".join(lines) + "\n"


def _real_section(args, real: list[dict]) -> list[str]:
    return [
        f"## Real children: mnist_5k, 1 epoch, 2 worker processes, m = {M}, {args.trials} trials per run",
        "",
        "Runs in ABBA order on one pair of worker processes (start-up excluded). "
        "Idle = 1 - busy / (workers x span of the children). Shared 2-core machine: load average (1 min) "
        "at the start of each run in the last column.",
        "",
        table(
            [
                "run",
                "pipeline",
                "trained",
                "seconds",
                "children/min",
                "idle fraction",
                "mean child s",
                "load",
            ],
            [
                [
                    i + 1,
                    r["pipeline"],
                    r["trained"],
                    r["seconds"],
                    r["children_per_min"],
                    r["idle_fraction"],
                    r["mean_child_s"],
                    r["load_1min"],
                ]
                for i, r in enumerate(real)
            ],
        ),
        "",
        table(
            ["pipeline", "mean children/min", "mean idle fraction"],
            [[p, _mean(real, p, "children_per_min"), _mean(real, p, "idle_fraction")] for p in (1, 2)],
        ),
        "",
    ]


def _regret_section(args, tab: dict) -> list[str]:
    rows = tab["rows"]
    return [
        "",
        f"## Regret on {args.table} ({args.seeds} seeds x {args.budget} evaluations, m = {M})",
        "",
        "Final regret = table best - best found; difference from pipeline 1 with a 95% Welch interval "
        "(an interval around 0: no measurable cost of staleness).",
        "",
        table(
            ["variant", "mean final regret", "95% interval", "diff vs pipeline 1 [95%]"],
            [
                [
                    name,
                    r["mean_regret"],
                    f"[{r['ci'][1]:.4f}, {r['ci'][2]:.4f}]",
                    "-"
                    if r["diff_vs_pipeline_1"] is None
                    else "{:+.4f} [{:+.4f}, {:+.4f}]".format(*r["diff_vs_pipeline_1"]),
                ]
                for name, r in rows.items()
            ],
        ),
        "",
        "```",
        tab["summary"],
        "```",
    ]


def main() -> None:
    p = parser("pipeline", __doc__, "pipeline/pipeline_vs_synchronous.json")
    p.add_argument("--trials", type=int, default=24, help="children per real-children run")
    p.add_argument("--repeats", type=int, default=1, help="ABBA groups of real-children runs")
    p.add_argument("--table", default="benchmarks/tables/mnist_5k_mlp.csv")
    p.add_argument("--table-config", default="benchmarks/tables/mlp_coarse.toml")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--skip-real", action="store_true", help="only the synthetic and table parts")
    args = p.parse_args()
    quiet()
    tab = regret(args) if args.seeds else None
    synthetic = synthetic_children(args)
    real = [] if args.skip_real else real_children(args)
    markdown = report(args, real, synthetic, tab)
    emit(args.out, "pipeline", markdown, {"real": real, "synthetic": synthetic, "regret": tab})
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
