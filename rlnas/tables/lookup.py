"""Lookup tables of a whole (finite) search space: every architecture trained once, its result stored.

A table turns a comparison of search strategies from hours of training into milliseconds of lookups,
with every strategy scored on exactly the same numbers (the NAS-Bench idea, Ying et al. 2019).

The format is a CSV file anyone can write or read: one column per decision, named as in the space, an
empty cell where the decision is inactive, booleans as ``True``/``False``, numbers as Python prints
them; then ``val_accuracy`` (empty for a child that failed) and optional columns (``status``,
``params``, ``val_loss``, ``fit_seconds``, ...) that readers ignore. A float cell matches the space's
value if equal or within a relative 1e-9 (``0.001`` matches ``1e-3``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import ConfigError
from rlnas.models.child import ChildResult, Status
from rlnas.space import INACTIVE, Decision, SearchSpace, Value

RESULT_COLUMNS = ("val_accuracy", "status", "params", "val_loss", "fit_seconds", "seed", "error")
"""Columns :func:`result_row` writes after the decisions; only ``val_accuracy`` is required to read."""


def format_cell(value: Value | None) -> str:
    """A value as the table writes it: '' for an inactive decision, Python's own text otherwise."""
    return "" if value is None else str(value)


def parse_cell(decision: Decision, text: str) -> Value:
    """The space value a cell names; ConfigError (with the allowed values) if the space lacks it."""
    text = text.strip()
    try:
        if decision.kind == "bool":
            if text not in ("True", "False", "true", "false"):
                raise ValueError
            value: Value = text.lower() == "true"
        elif decision.kind == "int":
            value = int(float(text)) if float(text).is_integer() else float(text)
        elif decision.kind == "float":
            value = float(text)
        else:
            value = text
    except ValueError:
        value = text
    for known in decision.values:
        if type(known) is type(value) and (
            known == value or (isinstance(known, float) and math.isclose(known, value, rel_tol=1e-9))
        ):
            return known
    allowed = ", ".join(format_cell(v) for v in decision.values)
    raise ConfigError(f"{text!r} is not a value of decision {decision.name!r} (values: {allowed})")


def result_row(space: SearchSpace, tokens: Sequence[int], metrics: Mapping[str, Any]) -> dict[str, str]:
    """One table row: the architecture's cells, then its results (``val_accuracy`` '' if it failed)."""
    arch = space.decode(tokens)
    row = {d.name: format_cell(arch.get(d.name)) for d in space.decisions}
    ok = metrics.get("status") == Status.OK
    row["val_accuracy"] = format_cell(metrics["val_accuracy"]) if ok else ""
    for name in RESULT_COLUMNS[1:]:
        value = metrics.get(name)
        row[name] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return row


def header(space: SearchSpace) -> list[str]:
    return [*space.names, *RESULT_COLUMNS]


def read_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a table CSV; a torn last line (a crash mid-write) is dropped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"table {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"table {str(p)!r} cannot be read: {exc}") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        raise ConfigError(f"table {str(p)!r} is empty; it needs a header row")
    return list(reader.fieldnames), list(reader)


def append_rows(path: Path, fieldnames: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    """Append rows (writing the header first if the file is new), flushed to disk before returning."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def repair(path: Path) -> None:
    """Cut a torn last line so that appending continues at a line boundary."""
    if path.exists():
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            path.write_bytes(raw[: raw.rfind(b"\n") + 1])


def row_tokens(space: SearchSpace, row: Mapping[str, str | None], line: int) -> list[int]:
    """Canonical tokens of one row; ConfigError naming the line for unknown or misplaced values."""
    arch: dict[str, Value] = {}
    tokens: list[int] = []
    for d in space.decisions:
        cell = (row.get(d.name) or "").strip()
        if not d.is_active(arch):
            if cell:
                raise ConfigError(f"line {line}: {d.name}={cell} is set but the decision is inactive there")
            tokens.append(INACTIVE)
            continue
        if not cell:
            raise ConfigError(f"line {line}: {d.name} is empty but active for this architecture")
        try:
            arch[d.name] = parse_cell(d, cell)
        except ConfigError as exc:
            raise ConfigError(f"line {line}: {exc}") from None
        tokens.append(d.index(arch[d.name]))
    return tokens


@dataclass(frozen=True)
class Table:
    """Validation accuracy of every architecture of a space (NaN for a child that failed)."""

    space: SearchSpace
    accuracy: Mapping[str, float]  # architecture key -> val accuracy (mean over repeated rows)

    def val_accuracy(self, tokens: Sequence[int]) -> float:
        return self.accuracy[self.space.key(tokens)]

    @property
    def values(self) -> np.ndarray:
        """Every architecture's accuracy (failed ones left out): the distribution quantiles come from."""
        v = np.fromiter(self.accuracy.values(), float)
        return v[~np.isnan(v)]

    @property
    def best(self) -> float:
        return float(self.values.max())


def load_table(path: str | Path, space: SearchSpace) -> Table:
    """Read and check a table against ``space``: every architecture present, every value known.

    Rows repeating an architecture are averaged (tables may hold several seeds per architecture).

    Raises:
        ConfigError: missing columns, unknown values, or architectures of the space absent from it.
    """
    names, rows = read_rows(path)
    missing = [c for c in [*space.names, "val_accuracy"] if c not in names]
    if missing:
        raise ConfigError(f"table {str(path)!r} lacks column(s) {', '.join(missing)}")
    scores: dict[str, list[float]] = {}
    for line, row in enumerate(rows, start=2):
        key = space.key(row_tokens(space, row, line))
        cell = (row["val_accuracy"] or "").strip()
        try:
            scores.setdefault(key, []).append(float(cell) if cell else math.nan)
        except ValueError:
            raise ConfigError(f"line {line}: val_accuracy {cell!r} is not a number") from None
    absent = [t for t in space.architectures() if space.key(t) not in scores]
    if absent:
        raise ConfigError(
            f"table {str(path)!r} lacks {len(absent):,} of the space's {space.size():,} architectures "
            f"(first: {space.decode(absent[0])}); build it with `rlnas tabulate`"
        )
    accuracy = {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for k, v in scores.items()}
    return Table(space, accuracy)


class TableEvaluator:
    """An evaluator that answers from a table at once: same interface as the training evaluators."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        acc = self.table.accuracy[self.table.space.key(arch)]
        if math.isnan(acc):
            return ChildResult(Status.FAILED, error="failed when the table was built")
        return ChildResult(Status.OK, val_accuracy=acc)

    def start(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass
