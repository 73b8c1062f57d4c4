"""Helpers shared by the benchmark scripts: the ``--out`` flag, Markdown tables, the JSON result file.

Not a benchmark itself (the leading underscore); each script imports it from its own folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    from rlnas.store import RunStore

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is the script's docstring, with the common ``--out`` flag."""
    p = argparse.ArgumentParser(
        prog=f"benchmarks/{name}.py", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="where to write the JSON results"
    )
    return p


def quiet() -> None:
    """Load TensorFlow with its start-up noise muted (as the CLI does); call before importing rlnas.search."""
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


@contextmanager
def temp_store() -> Iterator[RunStore]:
    """A fresh run directory in a temporary folder, removed afterwards."""
    from rlnas.store import RunStore

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
