"""Arrays as a :class:`rlnas.data.Dataset`, for tests that train a child on data made on the spot."""

from __future__ import annotations

import numpy as np

from rlnas.data import Dataset


def as_dataset(
    x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, num_classes: int
) -> Dataset:
    """Train on (x_train, y_train); the search scores on (x_eval, y_eval), so does a final training
    (the eval arrays are the test split too)."""
    return Dataset("arrays", x_train, y_train, x_eval, y_eval, x_eval, y_eval, num_classes)
