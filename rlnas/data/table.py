"""A CSV table -> the fields of a Dataset (``rlnas search --data table.csv --target COLUMN``).

Read with the csv module: the first line names the columns. A column whose every cell reads as a
number is numeric; one with no number is categorical (text); one that mixes them is an error
naming a cell of each. The target column decides the task: integers or text are classes (mapped to
0..k-1 in sorted order, the names kept), numbers with a fraction or exponent ("151.0") are a
regression target.

The columns are encoded by Keras preprocessing layers inside each child
(:mod:`rlnas.models.table`), with statistics computed once, here, from the train split: a numeric
column's mean and variance (``Normalization``), a categorical column's vocabulary (one-hot). So
that the arrays path serves tables as it serves images (workers, Ray, the cache, replay), x holds
one float per column: a numeric column's raw value, a categorical column's index in the vocabulary
(0 for a value not seen in training, as ``StringLookup`` numbers them). A replayed model is saved
with a ``StringLookup`` in front, so it takes raw rows: a dict of column name -> values.

Missing values are not imputed: an empty, NaN or infinite cell of a numeric column is an error
naming the column and the line. In a text column an empty cell is the category "".
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.data.splits import kept_train, split_rows
from rlnas.errors import DataError, did_you_mean

NUMERIC, CATEGORICAL = "numeric", "categorical"
CLASSIFICATION, REGRESSION = "classification", "regression"


@dataclass(frozen=True)
class Column:
    """One input column and what its encoding layer needs (computed on the train split)."""

    name: str
    kind: str  # NUMERIC or CATEGORICAL
    mean: float = 0.0
    variance: float = 1.0
    vocabulary: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """Floats this column becomes inside the child: 1, or its one-hot width (+1 for unseen)."""
        return 1 if self.kind == NUMERIC else len(self.vocabulary) + 1


@dataclass(frozen=True)
class TableInput:
    """What a raw row is (the columns, in x's order) and what is predicted."""

    columns: tuple[Column, ...]
    target: str
    task: str  # CLASSIFICATION or REGRESSION
    class_names: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the run directory's record."""
        return {
            "target": self.target,
            "task": self.task,
            "class_names": list(self.class_names),
            "columns": [{f.name: getattr(c, f.name) for f in fields(Column)} for c in self.columns],
        }


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read table {path} ({exc}); give a UTF-8 CSV file") from None


def locate(spec: Any) -> Path:
    """Check the file, its header and the target column without reading the rows.

    Raises:
        DataError: no such file, no ``target``, a target that is no column, a duplicate column name.
    """
    path = Path(spec.name).expanduser()
    if not path.is_file():
        raise DataError(f"table {spec.name} does not exist; give an existing .csv file")
    header = [h.strip() for h in _header(path)]
    shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    if spec.target is None:
        raise DataError(f"table {spec.name} needs --target COLUMN, the column to predict: one of {shown}")
    if len(header) < 2:
        raise DataError(f"table {spec.name} has columns [{shown}]; need the target and >= 1 input column")
    dup = next((h for h in header if header.count(h) > 1), None)
    if dup is not None:
        raise DataError(f"table {spec.name} has two columns named {dup!r}; rename one")
    if spec.target not in header:
        hint = did_you_mean(spec.target, header)
        raise DataError(f"table {spec.name} has no column {spec.target!r}{hint}; its columns: {shown}")
    return path


def read_columns(path: Path) -> dict[str, list[str]]:
    """Each column's cells as text (stripped), by name; a row of the wrong length is an error."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read table {path} ({exc}); give a UTF-8 CSV file") from None
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]  # blank lines are no rows
    if not body:
        raise DataError(f"table {path} has a header but no rows")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) and any(c.strip() for c in row):
            raise DataError(f"table {path}: line {i} has {len(row)} cells, the header {len(header)}")
    return {name: [r[j].strip() for r in body] for j, name in enumerate(header)}


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def parse_column(name: str, cells: list[str], where: str) -> tuple[str, np.ndarray]:
    """(NUMERIC, float64 values) or (CATEGORICAL, str values) of one column.

    Raises:
        DataError: numbers mixed with text, or a numeric column's empty, NaN or infinite cell.
    """
    numbers = [_number(c) for c in cells]
    text = [i for i, (c, v) in enumerate(zip(cells, numbers, strict=True)) if v is None and c]
    numeric = [i for i, v in enumerate(numbers) if v is not None]
    if text and numeric:
        a, b = numeric[0], text[0]
        raise DataError(
            f"{where}: column {name!r} mixes numbers and text (line {a + 2}: {cells[a]!r}, line {b + 2}: "
            f"{cells[b]!r}); make it all numbers or all text"
        )
    if text or not numeric:
        return CATEGORICAL, np.array(cells, dtype=object)
    bad = next((i for i, v in enumerate(numbers) if v is None or not math.isfinite(v)), None)
    if bad is not None:
        shown = repr(cells[bad]) if cells[bad] else "empty"
        raise DataError(
            f"{where}: column {name!r} is {shown} at line {bad + 2}; numeric columns need a finite "
            "number in every row (fill or drop missing values)"
        )
    return NUMERIC, np.array(numbers, dtype=np.float64)


def _target(name: str, cells: list[str], where: str) -> tuple[str, np.ndarray, tuple[str, ...]]:
    """(task, y, class names): integer or text classes are classification, other numbers regression."""
    kind, values = parse_column(name, cells, f"{where} target")
    if kind == NUMERIC and not all(_is_integer(c) for c in cells):
        return REGRESSION, values.astype(np.float32), ()
    classes = sorted(set(values.tolist()))
    if len(classes) < 2:
        raise DataError(f"{where}: target {name!r} has one class ({classes[0]!r}); need >= 2 classes")
    index = {c: i for i, c in enumerate(classes)}
    names = tuple(str(int(c)) if kind == NUMERIC else str(c) for c in classes)
    return CLASSIFICATION, np.array([index[v] for v in values.tolist()], dtype=np.int64), names


def _is_integer(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def fit_column(name: str, kind: str, values: np.ndarray, train: np.ndarray) -> Column:
    """The column's encoding statistics, from the train rows only (val and test never leak in)."""
    if kind == NUMERIC:
        v = values[train]
        return Column(name, NUMERIC, mean=float(v.mean()), variance=float(v.var()))
    counts = Counter(values[train].tolist())
    vocabulary = tuple(sorted(counts, key=lambda c: (-counts[c], c)))  # StringLookup.adapt's order
    return Column(name, CATEGORICAL, vocabulary=vocabulary)


def encode(column: Column, values: np.ndarray) -> np.ndarray:
    """One float per row: the raw number, or the vocabulary index (1..k; 0 for an unseen value)."""
    if column.kind == NUMERIC:
        return values.astype(np.float32)
    index = {v: i for i, v in enumerate(column.vocabulary, start=1)}
    return np.array([index.get(v, 0) for v in values.tolist()], dtype=np.float32)


def load(path: Path, spec: Any) -> dict[str, Any]:
    """Read, split (``spec``'s seeded fractions) and encode the table: the fields of its Dataset (whose
    ``task`` follows y: float32 for regression, int64 classes). The
    encoders are fitted on the whole train split, so a low-fidelity search (``train_fraction``) and
    its replay share them."""
    where = f"table {spec.name}"
    cells = read_columns(path)
    task, y, class_names = _target(spec.target, cells.pop(spec.target), where)
    parsed = {name: parse_column(name, column, where) for name, column in cells.items()}
    test, val, train = split_rows(len(y), spec)
    columns = tuple(fit_column(name, kind, values, train) for name, (kind, values) in parsed.items())
    x = np.stack([encode(c, parsed[c.name][1]) for c in columns], axis=1)
    keep = kept_train(train, spec)
    raw = TableInput(columns, spec.target, task, class_names)
    return dict(
        x_train=x[keep],
        y_train=y[keep],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        num_classes=len(class_names),
        class_names=class_names,
        raw_input=raw,
    )
