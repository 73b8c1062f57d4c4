"""Per-trial overhead of the search: the share of wall time that is not the children's own training.

What it measures
    One real search (default config, ``--trials`` 96, the default worker-process evaluator). Every
    child records ``child_seconds`` (everything inside the worker: clear_session, build, fit,
    evaluate) and ``fit_seconds`` + ``eval_seconds``. The script times the whole
    ``run_search`` call and wraps the loop's other steps (controller sampling and update, checkpoint,
    journal, TensorBoard, the evaluator round trip) with ``perf_counter`` timers.

Why
    The target: everything but the child's own fit/evaluate under 5% of the search's wall
    time. Worker processes (which keep memory flat, see memory.py) cost a process start and a
    TensorFlow import every ``children_per_worker`` children; the evaluator hides that behind a
    standby worker started a few children early. This shows what is left of it.

How to read it
    ``overhead (child)`` = 1 - sum(child_seconds) / wall: what the search itself adds.
    ``overhead (fit+eval)`` = 1 - sum(fit + eval) / wall: the stricter figure; it also counts
    the child's build and clean-up. The breakdown lists each cost in seconds and as % of wall. The
    evaluator round trip minus child_seconds is split into: the wait for the first worker (spawn,
    TensorFlow import, data load not hidden by the controller's construction), the hand-overs to a
    new worker (0 if the standby is ready in time), and plain IPC. A standby starting up competes
    for the CPU with the running child: compare the child_seconds of the children that ran while
    one started with the rest (a rough signal: architectures differ). Ratios, not absolute times,
    are comparable across machines.

Fixed cost (``--fixed N``, instead of the above)
    What a user waits for beyond training: ``rlnas search --trials 4 --epochs 1 --replay-top 0``
    as a command, ``N`` times with workers forked from a template and ``N`` times with fresh ones
    (``RLNAS_FORK_WORKERS=0``), alternating; for each, the wall time of the whole command minus the
    children's whole cost (``child_seconds``, from the journal). With the default two workers two
    children train at once, so ``wall - sum(child)`` understates what is fixed; ``wall - sum/workers``
    (the children's cost as if spread evenly over the workers) is printed beside it, and
    ``--workers 1`` makes the two equal. Beside them, the parts measured alone: the interpreter
    with ``import rlnas.cli``, TensorFlow's import with its first op, the data load; worker start
    and first trace are ``benchmarks/worker_start.py``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, emit, parser, patched, quiet, table, temp_store, timing

SPAWN = "worker spawn calls"
OVERLAPPED = "while children train"
"""Marks a timed step that runs beside the children, not between them: not part of the wall's sum."""
OVERLAP = 2
"""Children counted as running while a standby worker starts (its start-up takes one or two)."""


def breakdown(
    trials: list[Any], calls: dict[str, list[float]], wall: float, setup: float, per_worker: int
) -> list[tuple[str, float]]:
    """(item, seconds) for every measured cost; the rest of the wall time is 'unaccounted'."""
    rt = calls["evaluator round trip"]
    gaps = [r - t.child_seconds for r, t in zip(rt, trials, strict=True)]
    handover = [g for i, g in enumerate(gaps) if i and i % per_worker == 0]
    items = [
        ("child: fit + evaluate", sum(t.fit_seconds + t.eval_seconds for t in trials)),
        (
            "child: build, clear_session",
            sum(t.child_seconds - t.fit_seconds - t.eval_seconds for t in trials),
        ),
        ("wait for the first worker (round trip - child, trial 0)", gaps[0]),
        (f"worker hand-overs ({len(handover)}: round trip - child)", sum(handover)),
        ("IPC (round trip - child, other trials)", sum(gaps[1:]) - sum(handover)),
        ("setup before the loop (controller, TensorBoard)", setup),
    ]
    items += [(name, sum(c)) for name, c in calls.items() if name not in ("evaluator round trip", SPAWN)]
    serial = sum(s for name, s in items if OVERLAPPED not in name)  # the rest overlaps the children
    items.append(("unaccounted (env steps, decode, records)", wall - serial))
    return items


def dissect(config: Any, archs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean seconds of the child's own non-training steps, re-timed in this process for ``archs``.

    Mirrors ``train_and_evaluate`` (``clear_session(free_memory=False)``, build and compile, fit,
    evaluate) with fit and evaluate on one small batch. The worker cannot be timed without library
    changes, and this process also holds the controller: the numbers are indicative.
    """
    import keras
    import tensorflow as tf

    from rlnas import data
    from rlnas.models.child import build_model

    tf.get_logger().setLevel("ERROR")  # one-batch fits of fresh models warn about retracing
    ds = data.load(config.data_spec())
    x, y = ds.x_train[: config.batch_size], ds.y_train[: config.batch_size]
    steps = ("clear_session(free_memory=False)", "build_model (incl. compile)")
    times: dict[str, list[float]] = {k: [] for k in steps}
    for arch in archs:
        t0 = time.perf_counter()
        keras.backend.clear_session(free_memory=False)
        t1 = time.perf_counter()
        model = build_model(arch, ds.x_train.shape[1:], ds.num_classes)
        t2 = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=config.batch_size, verbose=0)
        model.evaluate(x, y, verbose=0)
        for key, dt in zip(steps, (t1 - t0, t2 - t1), strict=True):
            times[key].append(dt)
    return {k: statistics.fmean(v) for k, v in times.items()}


def _fixed_command(fork: str, workers: int | None) -> dict[str, float]:
    """One ``rlnas search --trials 4 --epochs 1`` as a command: its wall time and its children's cost."""
    with tempfile.TemporaryDirectory(prefix="rlnas-fixed-") as tmp:
        args = ["search", "--trials", "4", "--epochs", "1", "--replay-top", "0", "--runs-dir", tmp]
        args += ["--name", "f", "--quiet"] + (["--workers", str(workers)] if workers else [])
        env = {**os.environ, "RLNAS_FORK_WORKERS": fork, "TF_CPP_MIN_LOG_LEVEL": "3"}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rlnas.cli", *args], env=env, check=True)
        wall = time.perf_counter() - t
        lines = (Path(tmp) / "f" / "trials.jsonl").read_text().splitlines()
        child = sum(json.loads(line)["child_seconds"] for line in lines)
    return {"wall": wall, "child": child}


def _alone(code: str) -> float:
    """Seconds a fresh interpreter takes to run ``code``: one part of the fixed cost, measured alone."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - t


def _fixed_parts() -> dict[str, float]:
    """The start-up's parts, each timed alone: the interpreter and the CLI, TensorFlow, the data."""
    return {
        "python + import rlnas.cli": _alone("import rlnas.cli"),
        "+ TensorFlow, Keras, first op": _alone(
            "import rlnas.cli; from rlnas.quiet import quiet_tensorflow as q; q()"
        ),
        "+ the data (mnist_5k)": _alone(
            "import rlnas.cli; from rlnas.quiet import quiet_tensorflow as q; q(); "
            "from rlnas import data; data.load(data.DataSpec('mnist_5k'))"
        ),
    }


def _fixed_rows(runs: dict[str, list[dict[str, float]]], n: int) -> list[tuple[Any, ...]]:
    """Per worker mode, the medians: wall, children's cost, and what is fixed (plain and per worker)."""
    rows = []
    for mode, found in runs.items():
        wall = statistics.median(r["wall"] for r in found)
        child = statistics.median(r["child"] for r in found)
        fixed = statistics.median(r["wall"] - r["child"] for r in found)
        spread = statistics.median(r["wall"] - r["child"] / n for r in found)
        rows.append((mode, wall, child, fixed, spread))
    return rows


def fixed_cost(repeats: int, workers: int | None) -> tuple[str, dict[str, Any]]:
    """The ``--fixed`` measurement (module docstring): markdown and results."""
    from rlnas.config import SearchConfig
    from rlnas.resources import default_workers

    n = workers or SearchConfig().workers or default_workers()
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {"forked": [], "fresh": []}
    for _ in range(repeats):
        runs["forked"].append(_fixed_command("1", workers))
        runs["fresh"].append(_fixed_command("0", workers))
    parts = _fixed_parts()
    load_after = os.getloadavg()
    headers = [
        "workers",
        "wall (s)",
        "sum child (s)",
        "wall - sum child (s)",
        "wall - sum child / workers (s)",
    ]
    md = (
        f"### Fixed cost of `rlnas search --trials 4 --epochs 1 --replay-top 0` ({n} workers, "
        f"median of {repeats})\n\n"
        + table(headers, _fixed_rows(runs, n))
        + "\n\nParts, each alone (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        + f"\n\nLoad average (1, 5, 15 min) before: {load_before}, after: {load_after}"
    )
    results = {"runs": runs, "parts": parts, "workers": n}
    return md, {**results, "load_before": load_before, "load_after": load_after}


def _arguments() -> argparse.Namespace:
    p = parser("overhead", __doc__, "overhead/one_worker_steps.json")
    p.set_defaults(out=None)  # default: overhead/one_worker_steps.json, or fixed_cost.json with --fixed
    p.add_argument("--trials", type=int, default=96, help="children to train (default 96)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--children-per-worker", type=int, default=None, help="default: the config's (40)")
    p.add_argument("--dissect", type=int, default=8, help="re-time build/clean-up of this many children")
    p.add_argument("--fixed", type=int, default=0, help="measure the fixed cost instead, this many times")
    p.add_argument("--workers", type=int, default=None, help="the search's workers (default: the config's)")
    args = p.parse_args()
    name = "fixed_cost.json" if args.fixed else "one_worker_steps.json"
    args.out = args.out or RESULTS_DIR / "overhead" / name
    return args


def _wrapped() -> dict[str, tuple[Any, str]]:
    """The loop's steps to time: (owner, method) by the name the breakdown gives each."""
    from rlnas.exec.evaluator import WorkerEvaluator
    from rlnas.run.monitor import Monitor
    from rlnas.run.store import RunStore
    from rlnas.strategies.reinforce import ReinforceStrategy

    return {
        "store.append_trial": (RunStore, "append_trial"),
        "store.write_json": (RunStore, "write_json"),
        "monitor.scalars": (Monitor, "scalars"),
        "monitor.leaderboard": (Monitor, "leaderboard"),
        "strategy.ask (pool of samples, the model's pick)": (ReinforceStrategy, "ask"),
        "strategy.tell (REINFORCE update, reward model refit)": (ReinforceStrategy, "tell"),
        "strategy.think (imagined steps, while children train)": (ReinforceStrategy, "think"),
        "strategy.save (checkpoint)": (ReinforceStrategy, "save"),
        "strategy.probe (policy marginals for TensorBoard)": (ReinforceStrategy, "probe"),
        "evaluator round trip": (WorkerEvaluator, "evaluate"),
        "worker shutdown (close)": (WorkerEvaluator, "close"),
    }


def _timed_search(config: Any) -> tuple[Any, float, dict[str, list[float]], list[int]]:
    """Run the search with every step of :func:`_wrapped` timed: result, wall, step times, spawns."""
    from rlnas.exec.evaluator import WorkerEvaluator
    from rlnas.search.loop import run_search
    from rlnas.space import default_space

    wrapped = _wrapped()
    calls: dict[str, list[float]] = {name: [] for name in wrapped}
    calls[SPAWN] = []
    spawned_at: list[int] = []  # trial index running when each worker was spawned

    def note_spawn(original: Any) -> Any:
        def spawn(*a: Any) -> Any:
            spawned_at.append(len(calls["evaluator round trip"]))
            t = time.perf_counter()
            pool = original(*a)
            calls[SPAWN].append(time.perf_counter() - t)
            return pool

        return spawn

    with temp_store() as store, ExitStack() as timers:
        for name, (owner, attr) in wrapped.items():
            timers.enter_context(timing(owner, attr, calls[name]))
        if hasattr(WorkerEvaluator, "_spawn"):  # the standby-worker evaluator; absent in older versions
            timers.enter_context(patched(WorkerEvaluator, "_spawn", note_spawn))
        t0 = time.perf_counter()
        result = run_search(config, default_space(), store)
        wall = time.perf_counter() - t0
    return result, wall, calls, spawned_at


def _summary(trials: list[Any], wall: float, spawned_at: list[int]) -> tuple[dict[str, Any], int]:
    """The run's headline figures, and how many children ran while a standby worker started."""
    child = sum(t.child_seconds for t in trials)
    fit_eval = sum(t.fit_seconds + t.eval_seconds for t in trials)
    cs = [t.child_seconds for t in trials]
    overlap = {i for k in spawned_at if k > 0 for i in range(k, k + OVERLAP) if i < len(cs)}
    during = [cs[i] for i in sorted(overlap)]
    rest = [c for i, c in enumerate(cs) if i not in overlap]
    return {
        "trials": len(trials),
        "failed": sum(not t.ok for t in trials),
        "wall_seconds": wall,
        "sum_child_seconds": child,
        "sum_fit_eval_seconds": fit_eval,
        "overhead_child": 1 - child / wall,
        "overhead_fit_eval": 1 - fit_eval / wall,
        "overhead_per_trial_seconds": (wall - child) / len(trials),
        "workers_spawned_at_trials": spawned_at,
        "children_during_standby_start": len(overlap),
        "child_seconds_mean_during_standby_start": statistics.fmean(during) if during else None,
        "child_seconds_mean_other": statistics.fmean(rest) if rest else None,
        "target_met_fit_eval_under_5pct": 1 - fit_eval / wall < 0.05,
    }, len(overlap)


def _markdown(
    summary: dict[str, Any], items: list[tuple[str, float]], spawn_seconds: float, config: Any, overlap: int
) -> str:
    """The report: the headline table, then where the wall time goes."""
    wall, n = summary["wall_seconds"], summary["trials"]
    measures = [
        ("wall time (s)", wall),
        ("sum child_seconds (s)", summary["sum_child_seconds"]),
        ("sum fit + eval (s)", summary["sum_fit_eval_seconds"]),
        ("overhead = 1 - child/wall", f"{summary['overhead_child']:.2%}"),
        ("overhead = 1 - (fit+eval)/wall (target < 5%)", f"{summary['overhead_fit_eval']:.2%}"),
        ("overhead per trial (s, wall - child)", summary["overhead_per_trial_seconds"]),
        ("workers spawned (at trial)", ", ".join(map(str, summary["workers_spawned_at_trials"])) or "-"),
        ("spawn calls in this process (s, in setup and round trips)", spawn_seconds),
        (
            f"child_seconds mean, {overlap} children while a standby starts",
            summary["child_seconds_mean_during_standby_start"],
        ),
        ("child_seconds mean, other children", summary["child_seconds_mean_other"]),
    ]
    return "\n\n".join(
        [
            f"### Search overhead ({n} trials, epochs={config.epochs}, "
            f"children_per_worker={config.children_per_worker})",
            table(["measure", "value"], measures),
            "### Where the wall time goes",
            table(
                ["item", "seconds", "% of wall", "per trial (ms)"],
                [(k, s, f"{s / wall:.2%}", 1000 * s / n) for k, s in items],
            ),
        ]
    )


def main() -> None:
    args = _arguments()
    if args.fixed:
        md, results = fixed_cost(args.fixed, args.workers)
        emit(args.out, "overhead_fixed", md, results)
        return
    quiet()
    from rlnas.config import SearchConfig

    config = SearchConfig(trials=args.trials, seed=args.seed)
    if args.workers:
        config = dataclasses.replace(config, workers=args.workers)
    if args.children_per_worker:
        config = dataclasses.replace(config, children_per_worker=args.children_per_worker)
    result, wall, calls, spawned_at = _timed_search(config)
    trials = result.trials
    items = breakdown(trials, calls, wall, wall - result.seconds, config.children_per_worker)
    summary, overlap = _summary(trials, wall, spawned_at)
    parts = dissect(config, [t.architecture for t in trials[: args.dissect]]) if args.dissect else {}
    md = _markdown(summary, items, sum(calls[SPAWN]), config, overlap)
    if parts:
        n = min(args.dissect, len(trials))
        md += f"\n\nInside 'build, clear_session', re-timed here for {n} children (mean s): "
        md += ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
    results = {"summary": summary, "breakdown": dict(items), "dissect": parts, "config": config.to_dict()}
    emit(args.out, "overhead", md, results)


if __name__ == "__main__":
    main()
