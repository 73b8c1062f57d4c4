"""Helpers shared by the benchmark scripts: the ``--out`` flag, Markdown tables, the JSON result file,
a command timed as a whole process (``timed``).

Not a benchmark itself (the leading underscore); each script imports it from its own folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import wraps
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlnas.run.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024


def parser(name: str, doc: str | None, out: str) -> argparse.ArgumentParser:
    """An argument parser whose help is the script's docstring, with the common ``--out`` flag; ``out``
    is the default result file under ``benchmarks/results/``, in the folder of its study."""
    p = argparse.ArgumentParser(
        prog=f"benchmarks/{name}.py", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR / out, help="where to write the JSON results")
    return p


def quiet() -> None:
    """Load TensorFlow with its start-up noise muted (as the CLI does); call before importing the search."""
    from rlnas.quiet import quiet_tensorflow

    quiet_tensorflow()


def cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get four significant digits."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(out: Path, name: str, markdown: str, results: dict[str, Any]) -> None:
    """Print ``markdown`` and write it, the results and a description of the machine to ``out``."""
    print(markdown)
    payload = {
        "benchmark": name,
        "argv": sys.argv[1:],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": metadata.version("tensorflow"),
            "platform": platform.platform(),
        },
        "markdown": markdown,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\n(written to {out})", file=sys.stderr)


def table_figures(runs: Sequence[Any], random_runs: Sequence[Any], values: Any) -> dict[str, Any]:
    """What the lookup-table scripts report for one policy, from each seed's rewards in evaluation order:
    mean final regret, its difference from random search's (Welch interval), and for the top 1% and
    0.1% of the table the median evaluations to reach it (a seed that never does counts as budget + 1),
    its ratio to random search's with a bootstrap interval, and how many seeds got there."""
    import numpy as np

    from rlnas.bench import report as bench

    best = float(np.nanmax(values))
    final = np.array([best - np.max(r) for r in runs])
    out: dict[str, Any] = {
        "regret": float(final.mean()),
        "diff": bench.diff_ci(final, [best - np.max(r) for r in random_runs]),
    }
    for frac in (0.01, 0.001):
        t = bench.top_threshold(values, frac)
        mine, theirs = bench.evals_to_top(runs, t), bench.evals_to_top(random_runs, t)
        ratio = bench.median_ratio_ci(mine, theirs)
        out[f"top{frac:g}"] = float(np.median(mine))
        out[f"top{frac:g}_ratio"], out[f"top{frac:g}_ratio_ci"] = ratio[0], ratio[1:]
        out[f"top{frac:g}_reached"] = sum(bench.evals_to_reach(r, t) is not None for r in runs)
    return out


def write_report(name: str, lines: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Write a lookup-table report as results/lookup_tables/NAME.md (``lines``) and NAME.json (``rows``),
    and print it."""
    folder = RESULTS_DIR / "lookup_tables"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


@contextmanager
def temp_store() -> Iterator[RunStore]:
    """A fresh run directory in a temporary folder, removed afterwards."""
    from rlnas.run.store import RunStore

    with tempfile.TemporaryDirectory(prefix="rlnas-bench-") as tmp:
        yield RunStore.create(Path(tmp) / "run")


@contextmanager
def patched(
    owner: Any, attr: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """Temporarily replace ``owner.attr`` (a function or method) by ``make(original)``."""
    original = getattr(owner, attr)
    setattr(owner, attr, wraps(original)(make(original)))
    try:
        yield
    finally:
        setattr(owner, attr, original)


def timing(owner: Any, attr: str, calls: list[float]) -> AbstractContextManager[None]:
    """Temporarily append the seconds of each call of ``owner.attr`` to ``calls``.

    The wrapper costs two ``perf_counter`` calls, far below anything it measures.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - t)

        return timed

    return patched(owner, attr, make)


def timed(cmd: list[str]) -> tuple[dict[str, Any], str]:
    """Wall and CPU seconds of ``cmd`` (start to exit), the load around it, and its stdout.

    CPU seconds (user + system of the process and the workers it waited for) are what each side
    costs even when other jobs share the machine; the 1-minute load average before and after says
    whether they did. Raises with stderr if the command fails.
    """
    before, load0 = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    times = {"wall_seconds": wall, "cpu_seconds": cpu, "load_before_after": [load0, os.getloadavg()[0]]}
    return times, proc.stdout
