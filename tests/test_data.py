"""Tests for rlnas.data: fixed splits, file formats, every DataError message; no TF, no network."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas import data
from rlnas.data import DATASETS, DataSpec, check_spec, load, make_splits, read_idx
from rlnas.errors import DataError


@pytest.fixture(autouse=True)
def no_machine_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Keras cache and Debian dir at empty places, so tests never see real files."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(data, "DEFAULT_FASHION_DIR", str(tmp_path / "no_debian_fashion"))


@pytest.fixture(scope="module")
def bundled() -> data.Dataset:
    return load(DataSpec())


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as a uint8 IDX file, gzipped when ``path`` ends in .gz."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())
    return path


def tiny_official(n_train: int = 20, n_test: int = 6) -> dict[str, np.ndarray]:
    """Small 4x4 'images' with 3 classes and a separate official test split."""
    rng = np.random.default_rng(1)
    return {
        "x_train": rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 3,
        "x_test": rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 3,
    }


def write_idx_dir(directory: Path, arrays: dict[str, np.ndarray], *, gz: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in data.IDX_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return directory


def row_hashes(x: np.ndarray) -> set[str]:
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in x}


def arange_data(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """x holds each sample's own index, so splits can be compared by index."""
    return np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n) % 4


# --- bundled mnist_5k -------------------------------------------------------------------------


def test_bundled_default_sizes_types_and_summary(bundled: data.Dataset) -> None:
    assert (len(bundled.x_train), len(bundled.x_val), len(bundled.x_test)) == (3000, 1000, 1000)
    assert bundled.num_classes == 10
    assert bundled.input_shape == (28, 28)
    assert bundled.summary() == "mnist_5k: 3000 train / 1000 val / 1000 test, 28x28, 10 classes"
    for x, y in [
        (bundled.x_train, bundled.y_train),
        (bundled.x_val, bundled.y_val),
        (bundled.x_test, bundled.y_test),
    ]:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))


def test_bundled_splits_are_disjoint(bundled: data.Dataset) -> None:
    train, val, test = (row_hashes(s) for s in (bundled.x_train, bundled.x_val, bundled.x_test))
    assert len(train) + len(val) + len(test) == 5000  # no duplicate images in the file
    assert not (train & val) and not (train & test) and not (val & test)


def test_make_splits_partitions_indices() -> None:
    x, y = arange_data(100)
    ds = make_splits(x, y, spec=DataSpec())
    parts = [ds.x_train.ravel(), ds.x_val.ravel(), ds.x_test.ravel()]
    assert [len(p) for p in parts] == [60, 20, 20]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert np.array_equal(ds.y_train, ds.x_train.ravel().astype(int) % 4)  # labels follow x


def test_same_seed_same_split_other_seed_other_split() -> None:
    x, y = arange_data(100)
    a, b = make_splits(x, y, spec=DataSpec()), make_splits(x, y, spec=DataSpec())
    c = make_splits(x, y, spec=DataSpec(split_seed=1))
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_test, c.x_test)


def test_same_seed_same_split_on_bundled(bundled: data.Dataset) -> None:
    again = load(DataSpec())
    assert np.array_equal(bundled.x_test, again.x_test)
    assert np.array_equal(bundled.y_train, again.y_train)
    assert not np.array_equal(bundled.y_test, load(DataSpec(split_seed=7)).y_test)


def test_train_fraction_shrinks_train_only(bundled: data.Dataset) -> None:
    half = load(DataSpec(train_fraction=0.5))
    assert len(half.x_train) == 1500
    assert np.array_equal(half.x_val, bundled.x_val) and np.array_equal(half.x_test, bundled.x_test)
    assert row_hashes(half.x_train) <= row_hashes(bundled.x_train)


def test_float_input_is_kept_not_rescaled() -> None:
    x, y = arange_data(10)
    ds = make_splits(x * 3, y, spec=DataSpec())
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() > 1  # left as is, not /255


def test_dataspec_is_picklable() -> None:
    spec = DataSpec(name="fashion_mnist", data_dir="/d", train_fraction=0.5)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_module_import_and_load_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from rlnas.data import load, DataSpec; load(DataSpec()); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --- .npz files ---------------------------------------------------------------------------------


def test_npz_with_x_y_round_trip(tmp_path: Path) -> None:
    x = np.arange(40 * 9, dtype=np.uint8).reshape(40, 3, 3)
    y = np.arange(40) % 2
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    ds = load(DataSpec(name=str(path)))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (24, 8, 8)
    assert ds.input_shape == (3, 3) and ds.num_classes == 2
    got = np.concatenate([ds.x_train, ds.x_val, ds.x_test]) * 255
    assert row_hashes(np.rint(got).astype(np.uint8)) == row_hashes(x)


def test_npz_with_official_test_keeps_it(tmp_path: Path) -> None:
    arrays = tiny_official()
    path = tmp_path / "split.npz"
    np.savez(path, **arrays)
    ds = load(DataSpec(name=str(path), test_fraction=0.5))  # test_fraction unused here
    assert np.array_equal(ds.x_test, arrays["x_test"] / np.float32(255))
    assert np.array_equal(ds.y_test, arrays["y_test"])
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (16, 4, 6)


# --- IDX files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_data_dir_official_split(tmp_path: Path, name: str, gz: bool) -> None:
    arrays = tiny_official()
    directory = write_idx_dir(tmp_path / "idx", arrays, gz=gz)
    spec = DataSpec(name=name, data_dir=str(directory))
    check_spec(spec)
    ds = load(spec)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (16, 4, 6)
    assert np.array_equal(ds.x_test, arrays["x_test"] / np.float32(255))
    assert np.array_equal(ds.y_test, arrays["y_test"])
    seen = row_hashes(np.rint(np.concatenate([ds.x_train, ds.x_val]) * 255).astype(np.uint8))
    assert seen == row_hashes(arrays["x_train"])
    assert ds.num_classes == 3 and ds.input_shape == (4, 4)


def test_read_idx_shapes(tmp_path: Path) -> None:
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i.gz", images), ndim=3), images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / "l", labels), ndim=1), labels)


def test_fashion_found_in_debian_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = write_idx_dir(tmp_path / "debian", tiny_official(), gz=True)
    monkeypatch.setattr(data, "DEFAULT_FASHION_DIR", str(directory))
    assert len(load(DataSpec(name="fashion_mnist")).x_test) == 6


def test_fashion_found_in_keras_cache(tmp_path: Path) -> None:
    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", tiny_official(), gz=True)
    assert len(load(DataSpec(name="fashion_mnist")).x_test) == 6


def test_mnist_found_in_keras_cache(tmp_path: Path) -> None:
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", **tiny_official())
    assert len(load(DataSpec(name="mnist")).x_test) == 6


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_truncated_idx_names_the_file(tmp_path: Path, suffix: str) -> None:
    arrays = tiny_official()
    directory = write_idx_dir(tmp_path / "idx", arrays, gz=bool(suffix))
    victim = directory / (data.IDX_FILES["x_train"] + suffix)
    raw = gzip.decompress(victim.read_bytes()) if suffix else victim.read_bytes()
    victim.write_bytes(gzip.compress(raw[:-5]) if suffix else raw[:-5])
    with pytest.raises(DataError, match=re.escape(f"IDX file {victim} is truncated or corrupt")):
        load(DataSpec(name="mnist", data_dir=str(directory)))


def test_cut_gzip_stream_names_the_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.arange(50))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=re.escape(f"cannot read IDX file {path}")):
        read_idx(path, ndim=1)


def test_trailing_bytes_are_corrupt(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.arange(5))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match=re.escape(f"IDX file {path} is truncated or corrupt (14")):
        read_idx(path, ndim=1)


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.arange(50))
    with pytest.raises(DataError, match=re.escape(f"{path} is not a 3-D IDX file (bad magic")):
        read_idx(path, ndim=3)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(path, ndim=1)


# --- DataSpec validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "dataset name '' is empty; use one of mnist_5k, mnist, fashion_mnist"),
        ({"name": "  "}, "is empty"),
        ({"val_fraction": 0}, "val_fraction=0 is invalid; it must be a number in (0, 1)"),
        ({"val_fraction": 1.0}, "val_fraction=1.0 is invalid"),
        ({"val_fraction": float("nan")}, "val_fraction=nan is invalid"),
        ({"val_fraction": "0.2"}, "val_fraction='0.2' is invalid"),
        ({"test_fraction": -0.1}, "test_fraction=-0.1 is invalid"),
        ({"test_fraction": True}, "test_fraction=True is invalid"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "leaves no training data; lower one"),
        ({"train_fraction": 0}, "train_fraction=0 is invalid; it must be a number in (0, 1]"),
        ({"train_fraction": 1.5}, "train_fraction=1.5 is invalid"),
        ({"split_seed": -1}, "split_seed=-1 is invalid; use an integer >= 0"),
        ({"split_seed": 1.5}, "split_seed=1.5 is invalid"),
    ],
)
def test_dataspec_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        DataSpec(**kwargs)


def test_dataspec_accepts_edges() -> None:
    DataSpec(val_fraction=0.5, test_fraction=0.49, train_fraction=1, split_seed=np.int64(3))


# --- check_spec / load: locating data ---------------------------------------------------------


def test_unknown_name_lists_choices_and_suggests() -> None:
    with pytest.raises(DataError, match="did you mean 'mnist'") as info:
        check_spec(DataSpec(name="mnsit"))
    assert all(name in str(info.value) for name in DATASETS)
    assert "a .npz file, a folder of class subfolders or a .csv table" in str(info.value)


def test_missing_npz_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset file .*nope\.npz does not exist"):
        check_spec(DataSpec(name=str(tmp_path / "nope.npz")))


def test_fashion_missing_says_how_to_get_it() -> None:
    with pytest.raises(DataError, match="fashion_mnist not found") as info:
        check_spec(DataSpec(name="fashion_mnist"))
    for hint in ("apt-get install dataset-fashion-mnist", "--data-dir", "with network"):
        assert hint in str(info.value)


def test_mnist_missing_says_how_to_get_it() -> None:
    with pytest.raises(DataError, match="mnist not found") as info:
        load(DataSpec(name="mnist"))
    for hint in ("mnist.npz", "--data-dir", "with network", "mnist_5k"):
        assert hint in str(info.value)


def test_data_dir_without_idx_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data_dir .* lacks the IDX files train-images-idx3-ubyte"):
        check_spec(DataSpec(name="fashion_mnist", data_dir=str(tmp_path)))


def test_data_dir_for_a_dataset_that_ignores_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data_dir is only used by mnist and fashion_mnist"):
        check_spec(DataSpec(name="mnist_5k", data_dir=str(tmp_path)))


def test_corrupt_npz_names_file_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(DataError, match=re.escape(f"cannot read {path}")) as info:
        load(DataSpec(name=str(path)))
    assert "`x`,`y` or `x_train`,`y_train`,`x_test`,`y_test`" in str(info.value)


def test_npz_holding_plain_npy(tmp_path: Path) -> None:
    path = tmp_path / "single.npz"
    with path.open("wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(DataError, match=re.escape("holds one .npy array; expected a .npz with `x`,`y`")):
        load(DataSpec(name=str(path)))


def test_npz_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.npz"
    np.savez(path, images=np.zeros((4, 2, 2)), y=np.arange(4))
    with pytest.raises(DataError, match=r"has arrays \['images', 'y'\]; expected `x`,`y` or"):
        load(DataSpec(name=str(path)))


# --- make_splits validation -------------------------------------------------------------------


def xy(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 2, 2), dtype=np.uint8), np.arange(n) % 2


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (xy()[0], np.arange(19) % 2, "x has 20 samples but y has 19; make them equal"),
        (xy()[0], (np.arange(20) % 2).reshape(20, 1), "need 1-D integer class labels"),
        (xy()[0], np.where(np.arange(20) == 3, np.nan, 1.0), "y has a NaN or infinite target (sample 3)"),
        (xy()[0], np.arange(20) % 2 - 1, "y has label -1; labels must be 0..num_classes-1"),
        (xy()[0], np.zeros(20, dtype=int), "only 1 class (label 0); need >= 2 classes"),
        (np.zeros(20), xy()[1], "x has shape (20,); need (samples, ...)"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "x has shape (0, 2); need (samples, ...)"),
        (np.full((20, 2), np.nan), xy()[1], "x contains NaN or inf"),
        (np.zeros((20, 2), dtype=np.uint16), xy()[1], "x has dtype uint16; convert it to uint8"),
    ],
)
def test_make_splits_rejects_bad_arrays(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        make_splits(x, y, spec=DataSpec())


@pytest.mark.parametrize(
    ("n", "kwargs", "message"),
    [
        (5, {"val_fraction": 0.05}, "val split is empty: 5 samples x val_fraction=0.05"),
        (5, {"test_fraction": 0.05}, "test split is empty: 5 samples x test_fraction=0.05"),
        (3, {"train_fraction": 0.1}, "train split is empty: 1 samples x train_fraction=0.1"),
        (2, {"val_fraction": 0.4, "test_fraction": 0.4}, "lower val_fraction/test_fraction"),
    ],
)
def test_impossible_split_names_split_and_fraction(n: int, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        make_splits(*xy(n), spec=DataSpec(**kwargs))


def test_official_test_shape_must_match_train() -> None:
    test = (np.zeros((4, 3, 3), dtype=np.uint8), np.arange(4) % 2)
    with pytest.raises(DataError, match=re.escape("test samples (3, 3) != train (2, 2)")):
        make_splits(*xy(), spec=DataSpec(), test=test)


def test_failed_download_is_one_data_error_naming_the_offline_ways(monkeypatch):
    import keras

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist.*download failed: OSError"):
        data.download(DataSpec("fashion_mnist"))
    with pytest.raises(DataError, match="cannot be downloaded"):
        data.download(DataSpec("mnist_5k"))
