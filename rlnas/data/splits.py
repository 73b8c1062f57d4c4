"""The one split rule of every reader: seeded row indices of test, val and train.

Its own module so that the readers of folders and tables (:mod:`rlnas.data.folder`,
:mod:`rlnas.data.table`) share it with :func:`rlnas.data.make_splits` without importing the package
that dispatches to them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlnas.errors import DataError


def count(n: int, fraction: float, split: str) -> int:
    """round(n * fraction), or DataError naming the empty split and the fractions to change."""
    size = round(n * fraction)
    if size < 1:
        fix = "lower val_fraction/test_fraction or raise" if split == "train" else "raise"
        raise DataError(
            f"{split} split is empty: {n} samples x {split}_fraction={fraction} rounds to 0; "
            f"{fix} {split}_fraction, or use more data"
        )
    return size


def split_rows(n: int, spec: Any, *, with_test: bool = True) -> tuple[np.ndarray, ...]:
    """(test, val, train) row indices of ``n`` samples, shuffled by ``spec.split_seed``: the one
    split rule of every reader. ``with_test`` false: no test rows (the data has an official test).
    The train rows are the whole train split; :func:`kept_train` applies ``train_fraction``."""
    order = np.random.default_rng(spec.split_seed).permutation(n)
    n_test = count(n, spec.test_fraction, "test") if with_test else 0
    n_val = count(n, spec.val_fraction, "val")
    return tuple(np.split(order, [n_test, n_test + n_val]))


def kept_train(rows: np.ndarray, spec: Any) -> np.ndarray:
    """The first ``train_fraction`` of the (already shuffled) train rows: a low-fidelity search."""
    return rows[: count(len(rows), spec.train_fraction, "train")]
