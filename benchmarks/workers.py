"""How many worker processes ``rlnas search`` should use: children per minute for each --workers
(and each --pipeline: synchronous batches, or the next batch training during the update).

What it measures
    ``rlnas search --dataset D --trials N --epochs E --replay-top 0 --quiet --workers W`` as a
    subprocess (the CLI users run, process start-up included), for each W of ``--workers-list``,
    ``--repeats`` times in alternating order (so a drift of the machine does not favour one W).
    Each worker gets ``threads_per_worker(W)`` TensorFlow threads (rlnas/resources.py: the cores
    split evenly), listed in the table. From each run's trials.jsonl: trained children (cache hits
    excluded), ``elapsed`` of the last trial (the search loop, after start-up) and the children's
    own ``fit_seconds + eval_seconds``.

Why
    ``default_workers`` picks W when the user does not; this is the measurement behind it. With one
    worker it also gives the overhead figure: total wall time over the sum of the children's
    fit+evaluate time (target <= 1.05). With W > 1 children overlap, so that ratio falls below 1
    and is a parallel speed-up, not an overhead.

How to run
    .venv/bin/python benchmarks/workers.py                        # mnist_5k, 32 children, epochs 2
    .venv/bin/python benchmarks/workers.py --repeats 2 --workers-list 1,2
    .venv/bin/python benchmarks/workers.py --trials 96 --workers-list 1 --pipeline-list 1,2
    Results: benchmarks/results/overhead/workers.{json,md}. Run it on an otherwise idle machine.

How to read it
    ``children/min`` = trained children / wall minutes (the user's view); ``loop children/min`` uses
    the search loop's own seconds instead. ``wall / fit+eval`` and ``loop / fit+eval``: the
    overhead ratios (one worker) or parallel efficiency (several). The best default on this machine
    is the W with the most children per minute of wall time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import emit, parser, table
from vs_keras_tuner import run_rlnas

OVERHEAD_TARGET = 1.05


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the repeats of one W (and the spread of the wall time)."""
    walls = [r["wall_seconds"] for r in runs]

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in runs)

    return {
        "workers": runs[0]["workers"],
        "pipeline": runs[0]["pipeline"],
        "threads_per_worker": runs[0]["threads_per_worker"],
        "repeats": len(runs),
        "wall_seconds": statistics.fmean(walls),
        "wall_seconds_min_max": [min(walls), max(walls)],
        "search_loop_seconds": mean("search_loop_seconds"),
        "cpu_seconds": mean("cpu_seconds"),
        "load_before_after": [runs[0]["load_before_after"][0], runs[-1]["load_before_after"][1]],
        "trained": mean("trained"),
        "cached": mean("cached"),
        "sum_fit_eval_seconds": mean("sum_fit_eval_seconds"),
        "sum_child_seconds": mean("sum_child_seconds"),
        "children_per_minute": statistics.fmean(60 * r["trained"] / r["wall_seconds"] for r in runs),
        "loop_children_per_minute": statistics.fmean(
            60 * r["trained"] / r["search_loop_seconds"] for r in runs
        ),
        "wall_over_fit_eval": mean("wall_over_fit_eval"),
        "loop_over_fit_eval": mean("loop_over_fit_eval"),
        "best_val_accuracy": mean("best_val_accuracy"),
    }


HEADERS = [
    "--workers", "--pipeline", "TF threads each", "runs", "wall (s)", "loop (s)", "CPU (s)", "trained",
    "children/min", "loop children/min", "wall / fit+eval", "loop / fit+eval", "best val_acc", "load",
]  # fmt: skip


def _table_row(r: dict[str, Any]) -> tuple[Any, ...]:
    """One setting's figures, in the order of :data:`HEADERS`."""
    return (
        r["workers"],
        r["pipeline"],
        r["threads_per_worker"],
        r["repeats"],
        r["wall_seconds"],
        r["search_loop_seconds"],
        r["cpu_seconds"],
        r["trained"],
        r["children_per_minute"],
        r["loop_children_per_minute"],
        r["wall_over_fit_eval"],
        r["loop_over_fit_eval"],
        r["best_val_accuracy"],
        "{:.1f} / {:.1f}".format(*r["load_before_after"]),
    )


def _one_worker(one: dict[str, Any]) -> list[str]:
    """A one-worker setting: where its time goes, and its overhead against the target."""
    met = one["wall_over_fit_eval"] <= OVERHEAD_TARGET
    return [
        _where_the_time_goes(one),
        f"One worker, --pipeline {one['pipeline']}: wall / sum(fit+eval) = "
        f"{one['wall_over_fit_eval']:.3f} including process start-up, {one['loop_over_fit_eval']:.3f} "
        f"for the search loop alone (target <= {OVERHEAD_TARGET}: {'met' if met else 'not met'} by "
        "the wall figure).",
    ]


def report(dataset: str, trials: int, epochs: int, rows: list[dict[str, Any]]) -> str:
    best = max(rows, key=lambda r: r["children_per_minute"])
    lines = [
        f"### rlnas search throughput by --workers: {dataset}, {trials} trials, epochs={epochs}, "
        f"{os.cpu_count()} CPUs",
        table(HEADERS, [_table_row(r) for r in rows]),
        f"Most children per minute of wall time: --workers {best['workers']} --pipeline "
        f"{best['pipeline']} ({best['children_per_minute']:.1f}/min).",
        "CPU = user + system seconds of the search and its workers; load = 1-minute load average "
        f"before the first / after the last run (above {os.cpu_count()}: other jobs shared the machine).",
    ]
    for one in (r for r in rows if r["workers"] == 1):
        lines += _one_worker(one)
    return "\n\n".join(lines)


def _where_the_time_goes(r: dict[str, Any]) -> str:
    """One worker: the seconds outside the children's fit+evaluate, split by where they are spent."""
    fit_eval, child, loop = r["sum_fit_eval_seconds"], r["sum_child_seconds"], r["search_loop_seconds"]
    per_child = 1000 * (child - fit_eval) / r["trained"]
    parts = {
        "before and after the search loop (process start, TensorFlow's import, exit)": r["wall_seconds"]
        - loop,
        f"in the worker around each fit ({per_child:.0f} ms a child: Keras build, compile, clean-up)": (
            child - fit_eval
        ),
        "in the search loop between children (updates, checkpoints, logging, the first child's wait "
        "for its worker)": loop - child,
    }
    share = ", ".join(f"{x:.1f} s {where} = {100 * x / fit_eval:.1f}%" for where, x in parts.items())
    return (
        f"One worker, --pipeline {r['pipeline']}, outside the children's fit+evaluate ({fit_eval:.1f} s): "
        f"{share}."
    )


def main() -> None:
    p = parser("workers", __doc__, "overhead/workers.json")
    p.add_argument("--dataset", default="mnist_5k")
    p.add_argument("--trials", type=int, default=32, help="trials of each search (default 32)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers-list", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--pipeline-list", default="1", help="comma-separated --pipeline values (default 1)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each setting (default 1)")
    args = p.parse_args()
    pipelines = [int(x) for x in args.pipeline_list.split(",")]
    settings = [(int(w), pipe) for w in args.workers_list.split(",") for pipe in pipelines]
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="rlnas-workers-") as tmp:
        for rep in range(args.repeats):
            for w, pipe in settings if rep % 2 == 0 else settings[::-1]:
                extra = ["--pipeline", str(pipe)]
                r = run_rlnas(args.dataset, args.trials, args.epochs, w, args.seed, Path(tmp), extra)
                runs[w, pipe].append(r | {"pipeline": pipe})
                print(f"--workers {w} --pipeline {pipe}: {r['wall_seconds']:.1f}s", file=sys.stderr)
    rows = [summarise(runs[s]) for s in settings]
    md = report(args.dataset, args.trials, args.epochs, rows)
    raw = {f"{w}x{pipe}": r for (w, pipe), r in runs.items()}
    emit(args.out, "workers", md, {"summary": rows, "runs": raw, "overhead_target": OVERHEAD_TARGET})
    args.out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
