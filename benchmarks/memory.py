"""Memory growth over many children: why the search trains them in recycled worker processes.

What it measures
    Resident memory (RSS, psutil) during a search of ``--children`` children (default 200, epochs=1),
    once with the default worker evaluator and once with ``LocalEvaluator`` (every child trained in the
    search process). Each mode runs in a fresh Python process so neither inherits the other's heap.
    A background thread samples the RSS of the search process and of its worker processes every
    ``--interval`` seconds; the search process's RSS is also read after every child. The evaluator
    keeps a standby worker starting while the active one finishes its last children, so two
    workers can be alive at once: the peak of main + workers is what the machine must hold.

Why
    TensorFlow does not return memory to the OS: a process that trains child after child keeps
    growing even with ``clear_session()``. The issue's target: the search process grows less than
    150 MB over 200 children. Workers are replaced every ``children_per_worker`` children, so their
    growth is bounded too.

How to read it
    ``growth`` = search-process RSS after the last child minus after the first ``--warmup`` children
    (TensorFlow's one-off start-up allocations land before that). Worker mode should show small
    growth and a bounded ``peak worker``; local mode's growth is what the workers avoid. ``workers``
    counts distinct worker processes seen (replacement at work), and in brackets the most alive at
    one sample. MB are MiB; a process's RSS counts shared libraries once per process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _common import MB, emit, parser, quiet, table, temp_store


class RssSampler(threading.Thread):
    """Samples the RSS of this process and of its worker processes until stopped."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.me = psutil.Process()
        self.main_peak = self.total_peak = self.most_alive = 0
        self.workers: dict[int, list[int]] = {}  # pid -> RSS samples

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            main, alive = self.me.memory_info().rss, []
            for proc in self.me.children(recursive=True):
                try:
                    if "resource_tracker" not in " ".join(proc.cmdline()):
                        alive.append((proc.pid, proc.memory_info().rss))
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            for pid, rss in alive:
                self.workers.setdefault(pid, []).append(rss)
            self.main_peak = max(self.main_peak, main)
            self.total_peak = max(self.total_peak, main + sum(rss for _, rss in alive))
            self.most_alive = max(self.most_alive, len(alive))


def measure(mode: str, children: int, interval: float, seed: int, per_worker: int) -> dict[str, Any]:
    """One search in this process; returns RSS figures in MB."""
    quiet()
    from rlnas.config import SearchConfig
    from rlnas.evaluator import LocalEvaluator, TrainSpec
    from rlnas.search import run_search
    from rlnas.space import default_space

    config = SearchConfig(trials=children, epochs=1, seed=seed, children_per_worker=per_worker)
    evaluator = None
    if mode == "local":
        evaluator = LocalEvaluator(config.data_spec(), TrainSpec(epochs=1, batch_size=config.batch_size))
    me = psutil.Process()
    after: list[int] = []
    sampler = RssSampler(interval)
    start_rss = me.memory_info().rss
    sampler.start()
    t0 = time.perf_counter()
    with temp_store() as store:
        result = run_search(
            config,
            default_space(),
            store,
            evaluator=evaluator,
            on_trial=lambda _: after.append(me.memory_info().rss),
        )
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    return {
        "mode": mode,
        "children": len(result.trials),
        "failed": sum(t["status"] != "ok" for t in result.trials),
        "wall_seconds": wall,
        "main_rss_start_mb": start_rss / MB,
        "main_rss_after_each_child_mb": [r / MB for r in after],
        "main_peak_mb": max(sampler.main_peak, *after) / MB,
        "total_peak_mb": max(sampler.total_peak, *after) / MB,
        "workers": len(sampler.workers),
        "workers_alive_at_once": sampler.most_alive,
        "worker_peaks_mb": [max(s) / MB for s in sampler.workers.values()],
    }


def run_isolated(mode: str, args: Any) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter so each mode starts from the same memory."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--_mode", mode, "--_result", str(out)]
        for flag in ("children", "interval", "seed", "children_per_worker"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def row(r: dict[str, Any], warmup: int) -> dict[str, Any]:
    after = r["main_rss_after_each_child_mb"]
    k = min(warmup, len(after)) - 1
    return {
        "mode": r["mode"],
        "children": r["children"],
        f"main RSS after {k + 1} (MB)": after[k],
        "main RSS at end (MB)": after[-1],
        "growth (MB)": after[-1] - after[k],
        "peak main (MB)": r["main_peak_mb"],
        "peak worker (MB)": max(r["worker_peaks_mb"], default=None),
        "peak main + workers (MB)": r["total_peak_mb"],
        "workers (most at once)": f"{r['workers']} ({r['workers_alive_at_once']})",
        "wall (s)": r["wall_seconds"],
    }


def main() -> None:
    p = parser("memory", __doc__)
    p.add_argument("--children", type=int, default=200, help="children per search (default 200)")
    p.add_argument("--modes", default="worker,local", help="comma list of worker, local")
    p.add_argument("--warmup", type=int, default=10, help="growth is measured from after this many children")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--children-per-worker", type=int, default=None, help="worker recycling (default: the config's)"
    )
    p.add_argument("--_mode", help=argparse.SUPPRESS)
    p.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.children_per_worker is None:
        from rlnas.config import SearchConfig

        args.children_per_worker = SearchConfig().children_per_worker
    if args._mode:
        r = measure(args._mode, args.children, args.interval, args.seed, args.children_per_worker)
        args._result.write_text(json.dumps(r))
        return
    runs = [run_isolated(m.strip(), args) for m in args.modes.split(",") if m.strip()]
    rows = [row(r, args.warmup) for r in runs]
    verdict = ""
    worker = next((r for r in rows if r["mode"] == "worker"), None)
    if worker is not None:
        ok = worker["growth (MB)"] < 150 * worker["children"] / 200
        verdict = (
            f"\n\nTarget: worker-mode growth < 150 MB over 200 children "
            f"(pro rata here: {150 * worker['children'] / 200:.0f} MB): {'met' if ok else 'NOT met'}."
        )
    md = f"### RSS over {args.children} children (epochs=1, children_per_worker={args.children_per_worker})"
    md += "\n\n"
    md += table(list(rows[0]), [list(r.values()) for r in rows]) + verdict
    emit(args.out, "memory", md, {"rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
