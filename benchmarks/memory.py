"""Memory growth over many children: why the search trains them in recycled worker processes.

What it measures
    Resident memory (RSS, psutil) during a search of ``--children`` children (default 200, epochs=1),
    once per mode: ``worker`` (the default worker evaluator: workers forked from a template where
    that is possible, rlnas.exec.fork_server, and replaced every ``FORKED_RECYCLING`` children),
    ``fresh`` (the same with every worker started afresh, ``RLNAS_FORK_WORKERS=0``, replaced every
    ``--children-per-worker``) and ``local`` (``LocalEvaluator``: every child trained in the search
    process); ``worker:20`` or ``fresh:20`` recycles every 20 children instead. Each mode
    runs in a fresh Python process so none inherits another's heap. A background thread samples the
    RSS and the PSS of the search process and of its worker processes (the template too) every
    ``--interval`` seconds; the search process's RSS is also read after every child. The evaluator
    keeps a standby worker starting while the active one finishes its last children, so more
    workers than ``workers`` can be alive at once: the peak of main + workers is what the machine
    must hold. The load average before and after each mode is recorded (other jobs share the machine).

Why
    TensorFlow does not return memory to the OS: a process that trains child after child keeps
    growing even with ``clear_session()``. The target: the search process grows less than
    150 MB over 200 children. Workers are replaced every ``children_per_worker`` children, so their
    growth is bounded too.

How to read it
    ``growth`` = search-process RSS after the last child minus after the first ``--warmup`` children
    (TensorFlow's one-off start-up allocations land before that). Worker mode should show small
    growth and a bounded ``peak worker``; local mode's growth is what the workers avoid. ``workers``
    counts distinct worker processes seen (replacement at work), and in brackets the most alive at
    one sample. MB are MiB; a process's RSS counts shared libraries once per process, and a forked
    worker's RSS counts again every page it still shares with its template: summed RSS then
    overstates what the machine holds. PSS (proportional set size) divides each shared page among
    the processes that map it, so summed PSS is the memory all processes hold together: the figure
    the target (peak memory of all processes <= 1.5 GB) is read on.
"""

from __future__ import annotations

import argparse
import json
import os
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
        self.main_peak = self.total_peak = self.total_pss_peak = self.most_alive = 0
        self.workers: dict[int, list[int]] = {}  # pid -> RSS samples

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            main, alive = self.me.memory_full_info(), []
            for proc in self.me.children(recursive=True):
                try:
                    if "resource_tracker" not in " ".join(proc.cmdline()):
                        alive.append((proc.pid, proc.memory_full_info()))
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            for pid, info in alive:
                self.workers.setdefault(pid, []).append(info.rss)
            self.main_peak = max(self.main_peak, main.rss)
            self.total_peak = max(self.total_peak, main.rss + sum(info.rss for _, info in alive))
            self.total_pss_peak = max(self.total_pss_peak, main.pss + sum(info.pss for _, info in alive))
            self.most_alive = max(self.most_alive, len(alive))


def measure(
    mode: str, children: int, interval: float, seed: int, per_worker: int, exact: bool
) -> dict[str, Any]:
    """One search in this process; returns RSS figures in MB."""
    _set_mode(mode, per_worker, exact)
    from rlnas.config import SearchConfig
    from rlnas.exec.evaluator import LocalEvaluator, TrainSpec
    from rlnas.search.loop import run_search
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
    return _figures(mode, result.trials, wall, start_rss, after, sampler)


def _set_mode(mode: str, per_worker: int, exact: bool) -> None:
    """Load TensorFlow and set up the worker mode: fresh workers, or forked ones recycled every N."""
    quiet()
    from rlnas.exec import fork_server

    if mode == "fresh":
        os.environ[fork_server.SWITCH] = "0"
    if mode == "worker" and exact:  # worker:N: forked workers recycled every N, not FORKED_RECYCLING
        import rlnas.exec.evaluator

        rlnas.exec.evaluator.FORKED_RECYCLING = per_worker


def _figures(
    mode: str, trials: list[Any], wall: float, start_rss: int, after: list[int], sampler: RssSampler
) -> dict[str, Any]:
    """One search's RSS figures in MB, from the samples taken while it ran."""
    return {
        "mode": mode,
        "children": len(trials),
        "failed": sum(not t.ok for t in trials),
        "wall_seconds": wall,
        "main_rss_start_mb": start_rss / MB,
        "main_rss_after_each_child_mb": [r / MB for r in after],
        "main_peak_mb": max(sampler.main_peak, *after) / MB,
        "total_peak_mb": max(sampler.total_peak, *after) / MB,
        "total_pss_peak_mb": sampler.total_pss_peak / MB,
        "workers": len(sampler.workers),
        "workers_alive_at_once": sampler.most_alive,
        "worker_peaks_mb": [max(s) / MB for s in sampler.workers.values()],
    }


def run_isolated(mode: str, args: Any) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter so each mode starts from the same memory;
    ``mode`` may end in ``:N``, its children per worker."""
    mode, _, per_worker = mode.partition(":")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--_mode", mode, "--_result", str(out)]
        for flag in ("children", "interval", "seed"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        cmd += ["--children-per-worker", per_worker or str(args.children_per_worker)]
        subprocess.run(cmd + (["--_exact"] if per_worker else []), check=True)
        result = json.loads(out.read_text())
    result["per_worker"] = int(per_worker or args.children_per_worker)
    if mode == "worker" and not per_worker:
        from rlnas.exec.evaluator import FORKED_RECYCLING

        result["per_worker"] = min(FORKED_RECYCLING, result["per_worker"])
    result["load_before"], result["load_after"] = load, os.getloadavg()
    return result


def row(r: dict[str, Any], warmup: int) -> dict[str, Any]:
    after = r["main_rss_after_each_child_mb"]
    k = min(warmup, len(after)) - 1
    return {
        "mode": f"{r['mode']}, recycled every {r['per_worker']}" if r["mode"] != "local" else "local",
        "children": r["children"],
        f"main RSS after {k + 1} (MB)": after[k],
        "main RSS at end (MB)": after[-1],
        "growth (MB)": after[-1] - after[k],
        "peak main (MB)": r["main_peak_mb"],
        "peak worker (MB)": max(r["worker_peaks_mb"], default=None),
        "peak main + workers, RSS (MB)": r["total_peak_mb"],
        "peak main + workers, PSS (MB)": r.get("total_pss_peak_mb"),
        "workers (most at once)": f"{r['workers']} ({r['workers_alive_at_once']})",
        "wall (s)": r["wall_seconds"],
        "children/min": 60 * r["children"] / r["wall_seconds"],
        "load before, after (1 min)": f"{r['load_before'][0]:.1f}, {r['load_after'][0]:.1f}",
    }


def ratios(rows: list[dict[str, Any]]) -> str:
    """Each mode's peak (PSS) and throughput against the first mode's."""
    base = rows[0]
    lines = [f"\n\nAgainst {base['mode']}:"]
    for r in rows[1:]:
        pss = r["peak main + workers, PSS (MB)"] / base["peak main + workers, PSS (MB)"]
        speed = r["children/min"] / base["children/min"]
        lines.append(f"- {r['mode']}: peak PSS x{pss:.2f}, children/min x{speed:.2f}")
    for r in rows:
        if r["mode"] != "local":
            met = r["peak main + workers, PSS (MB)"] <= 1536
            lines.append(
                f"- {r['mode']}: peak memory of all processes (PSS) <= 1.5 GB: {'met' if met else 'NOT met'}"
            )
    return "\n".join(lines)


def main() -> None:
    p = parser("memory", __doc__, "memory/peak_by_worker_mode.json")
    p.add_argument("--children", type=int, default=200, help="children per search (default 200)")
    p.add_argument(
        "--modes",
        default="fresh,worker:100,worker",
        help="comma list of worker, fresh, local; worker:N or fresh:N recycles every N children",
    )
    p.add_argument("--warmup", type=int, default=10, help="growth is measured from after this many children")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--children-per-worker", type=int, default=None, help="worker recycling (default: the config's)"
    )
    p.add_argument("--_mode", help=argparse.SUPPRESS)
    p.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_exact", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.children_per_worker is None:
        from rlnas.config import SearchConfig

        args.children_per_worker = SearchConfig().children_per_worker
    if args._mode:
        r = measure(
            args._mode, args.children, args.interval, args.seed, args.children_per_worker, args._exact
        )
        args._result.write_text(json.dumps(r))
        return
    runs = [run_isolated(m.strip(), args) for m in args.modes.split(",") if m.strip()]
    rows = [row(r, args.warmup) for r in runs]
    verdict = ""
    worker = next((r for r in rows if r["mode"].startswith("worker")), None)
    if worker is not None:
        ok = worker["growth (MB)"] < 150 * worker["children"] / 200
        verdict = (
            f"\n\nTarget: worker-mode growth < 150 MB over 200 children "
            f"(pro rata here: {150 * worker['children'] / 200:.0f} MB): {'met' if ok else 'NOT met'}."
        )
    md = f"### RSS over {args.children} children (epochs=1, children_per_worker={args.children_per_worker})"
    md += "\n\n"
    md += table(list(rows[0]), [list(r.values()) for r in rows]) + verdict + ratios(rows)
    emit(args.out, "memory", md, {"rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
