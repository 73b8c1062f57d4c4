"""Pre-split arrays: a .npz with x_train, y_train, x_val, y_val (and maybe a test pair) is used as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlnas import data
from rlnas.errors import DataError


def _arrays(n: int, *, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 4, 4)).astype(np.uint8), np.arange(n) % classes


def _save(path: Path, **arrays: np.ndarray) -> data.DataSpec:
    np.savez(path, **arrays)
    return data.DataSpec(name=str(path), val_fraction=0.5, test_fraction=0.3)


def test_splits_are_used_as_given_not_re_split(tmp_path: Path) -> None:
    (xt, yt), (xv, yv), (xs, ys) = _arrays(10), _arrays(4, seed=1), _arrays(6, seed=2)
    spec = _save(tmp_path / "s.npz", x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)
    ds = data.load(spec)  # val_fraction / test_fraction of the spec do not apply
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (10, 4, 6)
    np.testing.assert_array_equal(ds.y_val, yv)
    np.testing.assert_allclose(ds.x_test, xs / 255, rtol=1e-6)
    assert ds.num_classes == 3 and ds.x_train.dtype == np.float32


def test_without_a_test_pair_validation_doubles_as_test(tmp_path: Path) -> None:
    (xt, yt), (xv, yv) = _arrays(10), _arrays(4, seed=1)
    ds = data.load(_save(tmp_path / "s.npz", x_train=xt, y_train=yt, x_val=xv, y_val=yv))
    np.testing.assert_array_equal(ds.x_test, ds.x_val)


def test_one_hot_labels_become_integers_and_keep_their_width(tmp_path: Path) -> None:
    (xt, yt), (xv, yv) = _arrays(6, classes=2), _arrays(4, classes=2, seed=1)
    eye = np.eye(5, dtype=np.float32)  # 5 classes declared, only 2 present
    ds = data.load(_save(tmp_path / "s.npz", x_train=xt, y_train=eye[yt], x_val=xv, y_val=eye[yv]))
    np.testing.assert_array_equal(ds.y_train, yt)
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 5


def test_train_fraction_keeps_a_subset_of_train_only() -> None:
    ds = data.from_splits(_arrays(20), _arrays(5, seed=1), train_fraction=0.5)
    assert (len(ds.x_train), len(ds.x_val)) == (10, 5)


@pytest.mark.parametrize(
    ("train", "val", "message"),
    [
        (
            _arrays(6),
            (np.zeros((4, 4, 4)), np.full((4, 3), 0.5)),
            r"arrays: some splits hold integer labels and others float targets",
        ),
        (_arrays(6), (np.zeros((4, 5, 5)), np.arange(4) % 3), r"splits disagree on sample shape"),
        (
            _arrays(6, classes=5),
            (np.zeros((4, 4, 4)), np.eye(3)[[0, 1, 2, 0]]),
            r"need >= 2 classes with labels below 3",
        ),
        (_arrays(6), (np.zeros((3, 4, 4)), np.arange(4) % 3), r"arrays val: x has 3 samples but y has 4"),
        (
            (np.zeros((2, 4, 4)), np.zeros(2, int)),
            (np.zeros((2, 4, 4)), np.zeros(2, int)),
            r"need >= 2 classes",
        ),
    ],
)
def test_inconsistent_splits_are_rejected(train, val, message: str) -> None:
    with pytest.raises(DataError, match=message):
        data.from_splits(train, val)


def test_other_npz_files_are_still_split_as_before(tmp_path: Path) -> None:
    x, y = _arrays(20)
    ds = data.load(_save(tmp_path / "plain.npz", x=x, y=y))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (4, 10, 6)
