"""Named datasets -> one :class:`Dataset` with fixed train/val/test splits.

Children are scored on val and reported on test, so splits are fixed by ``split_seed``. Nothing here
imports TensorFlow/Keras at import (the CLI validates before TF loads): even the Keras cache files
(``mnist.npz``, ``fashion-mnist/*.gz``) are read with numpy, so loading never downloads. A folder of
images (:mod:`rlnas.data.folder`) and a CSV table (:mod:`rlnas.data.table`) have readers of their own.

(About 390 lines, over the usual 300: locating a named dataset, its three file formats and the split
rules belong together, since every reader must hand :func:`make_splits` the same checked arrays; the
readers are private and tested through :func:`load`.)
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import math
import numbers
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.data import saved
from rlnas.data.splits import kept_train, split_rows
from rlnas.errors import DataError, did_you_mean

DATASETS = ("mnist_5k", "mnist", "fashion_mnist")
DEFAULT_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_NPZ_KEYS = "`x`,`y` or `x_train`,`y_train`,`x_test`,`y_test` or `x_train`,`y_train`,`x_val`,`y_val`"
PRESPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val")
"""A .npz holding these (and optionally ``x_test``, ``y_test``) is used as split, never re-split."""
_CHOICES = "use one of " + ", ".join(DATASETS) + ", a .npz file, a folder of class subfolders or a .csv table"
COLOR_MODES = ("grayscale", "rgb", "rgba")
Pair = tuple[np.ndarray, np.ndarray]


def _fraction(field: str, value: Any, *, allow_one: bool = False) -> None:
    """Reject non-numbers and values outside (0, 1) (or (0, 1] when ``allow_one``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 < value < 1 or (allow_one and value == 1)):
        bounds = "(0, 1]" if allow_one else "(0, 1)"
        raise DataError(f"{field}={value!r} is invalid; it must be a number in {bounds}")


@dataclass(frozen=True)
class DataSpec:
    """Picklable description of the data; worker processes call :func:`load` on it themselves."""

    name: str = "mnist_5k"
    data_dir: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    train_fraction: float = 1.0
    target: str | None = None
    """A .csv table's column to predict (:mod:`rlnas.data.table`)."""
    image_size: tuple[int, int] | None = None
    """A folder of images: (height, width) every image is resized to (:mod:`rlnas.data.folder`)."""
    color_mode: str | None = None
    """A folder of images: grayscale, rgb (the default) or rgba."""

    def __post_init__(self) -> None:
        """Fail at construction, so a bad spec never reaches a worker process."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataError(f"dataset name {self.name!r} is empty; {_CHOICES}")
        if self.color_mode is not None and self.color_mode not in COLOR_MODES:
            allowed = ", ".join(COLOR_MODES)
            raise DataError(f"color_mode={self.color_mode!r} is invalid; use one of {allowed}")
        size = self.image_size
        if size is not None and (len(size) != 2 or not all(type(v) is int and v > 0 for v in size)):
            raise DataError(f"image_size={size!r} is invalid; give HEIGHTxWIDTH in pixels, e.g. 28x28")
        _fraction("val_fraction", self.val_fraction)
        _fraction("test_fraction", self.test_fraction)
        _fraction("train_fraction", self.train_fraction, allow_one=True)
        if self.val_fraction + self.test_fraction >= 1:
            raise DataError(
                f"val_fraction={self.val_fraction} + test_fraction={self.test_fraction} >= 1 "
                "leaves no training data; lower one of them"
            )
        seed = self.split_seed
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise DataError(f"split_seed={seed!r} is invalid; use an integer >= 0")


@dataclass(frozen=True, eq=False)  # eq=False: `==` on array fields would be ambiguous
class Dataset:
    """The three splits, already scaled: x float32 (uint8 images in [0, 1]); y int64 class labels
    (classification) or float32 targets (regression: ``num_classes`` is then 0)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] = ()
    """Names of classes 0..num_classes-1 where the data has them (a folder's subfolders, a table's
    target values); empty for arrays labelled by number."""
    raw_input: Any = None
    """How a user's raw sample maps to a row of x, for data read from a folder
    (:class:`rlnas.data.folder.ImageInput`) or a table (:class:`rlnas.data.table.TableInput`): a
    replayed model is saved to take the raw sample. None for arrays used as given."""

    @property
    def task(self) -> str:
        """``"regression"`` for float targets, else ``"classification"``: what decides a built-in
        child's head (softmax or linear), its loss and which metrics it logs."""
        return "regression" if np.issubdtype(self.y_train.dtype, np.floating) else "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, which the child network's input layer needs."""
        return tuple(self.x_train.shape[1:])

    def summary(self) -> str:
        """One line for logs, e.g. 'mnist_5k: 3000 train / 1000 val / 1000 test, 28x28, ...'."""
        shape = "x".join(str(d) for d in self.input_shape)
        task = f"{self.num_classes} classes" if self.task == "classification" else "regression"
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / "
            f"{len(self.x_test)} test, {shape}, {task}"
        )


def _keras_datasets_dir() -> Path:
    """Where keras.datasets caches downloads: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def _idx_path(directory: Path, stem: str) -> Path | None:
    """The gzip or plain IDX file ``stem`` in ``directory``, or None."""
    for path in (directory / f"{stem}.gz", directory / stem):
        if path.is_file():
            return path
    return None


def _has_idx(directory: Path) -> bool:
    """True when all four IDX files are in ``directory``."""
    return all(_idx_path(directory, stem) for stem in IDX_FILES.values())


def _missing_message(name: str) -> str:
    """Say where we looked and the ways to get the data without a network here."""
    cache = _keras_datasets_dir()
    if name == "fashion_mnist":
        return (
            f"fashion_mnist not found: no IDX files in {DEFAULT_FASHION_DIR} or the Keras cache "
            f"{cache / 'fashion-mnist'}; run `apt-get install dataset-fashion-mnist`, pass "
            "--data-dir DIR holding the IDX files, or on a machine with network run "
            "keras.datasets.fashion_mnist.load_data() once and copy that cache here"
        )
    return (
        f"mnist not found: no Keras cache file {cache / 'mnist.npz'}; pass --data-dir DIR holding "
        "the MNIST IDX files, or on a machine with network run keras.datasets.mnist.load_data() "
        "once and copy that cache here (or use the bundled mnist_5k)"
    )


def _locate(spec: DataSpec) -> tuple[str, Any]:
    """Resolve a spec to ('npz', file), ('idx', directory), ('folder', its image files) or ('table',
    file) without reading any arrays (a folder is listed, a table's header read)."""
    name = spec.name
    if spec.data_dir is not None and name not in ("mnist", "fashion_mnist"):
        raise DataError(f"data_dir is only used by mnist and fashion_mnist, not {name!r}; drop it")
    is_table = name.lower().endswith(".csv")
    is_folder = (
        not is_table
        and name not in DATASETS
        and not saved.is_saved(name)
        and Path(name).expanduser().is_dir()
    )  # a run's saved tf.data directory is no folder of images
    if not is_table:
        _only_for(spec, "target", "a .csv table (--data table.csv --target COLUMN)")
    if not is_folder:
        _only_for(spec, "image_size", "a folder of images (--data DIR)")
        _only_for(spec, "color_mode", "a folder of images (--data DIR)")
    if is_table:
        from rlnas.data import table

        return "table", table.locate(spec)
    if is_folder:
        from rlnas.data import folder

        return "folder", folder.locate(spec)
    if name == "mnist_5k":
        return "npz", importlib.resources.files("rlnas") / "bundled" / "mnist_5k.npz"
    if saved.is_saved(name):
        return "saved", Path(name)
    if name.lower().endswith(".npz"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"dataset file {name} does not exist; give an existing .npz path")
        return "npz", path
    if os.sep in name or name.startswith("."):
        raise DataError(
            f"dataset {name} does not exist; give a folder of class subfolders or an existing file"
        )
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; {_CHOICES}")
    if spec.data_dir is not None:
        directory = Path(spec.data_dir).expanduser()
        if not _has_idx(directory):
            files = ", ".join(IDX_FILES.values())
            raise DataError(f"data_dir {directory} lacks the IDX files {files} (.gz or plain)")
        return "idx", directory
    cache = _keras_datasets_dir()
    if name == "fashion_mnist":
        for directory in (Path(DEFAULT_FASHION_DIR), cache / "fashion-mnist"):
            if _has_idx(directory):
                return "idx", directory
    elif (cache / "mnist.npz").is_file():
        return "npz", cache / "mnist.npz"
    raise DataError(_missing_message(name))


def _only_for(spec: DataSpec, field: str, kind: str) -> None:
    """A setting of one kind of data given with another is a mistake worth one line, not a no-op."""
    if getattr(spec, field) is not None:
        raise DataError(f"{field} is only used with {kind}, not with dataset {spec.name!r}; drop it")


def check_spec(spec: DataSpec) -> str:
    """Validate cheaply (no arrays read), so the CLI can fail before starting TF or workers.

    Returns:
        the kind of data: "npz", "idx", "folder" or "table".
    """
    return _locate(spec)[0]


def is_downloadable(spec: DataSpec) -> bool:
    """True for mnist / fashion_mnist with no --data-dir: keras.datasets can fetch them."""
    return spec.name in ("mnist", "fashion_mnist") and spec.data_dir is None


def download(spec: DataSpec) -> None:
    """Fetch mnist or fashion_mnist into the Keras cache with keras.datasets (needs the network).

    Afterwards :func:`load` reads the cache like any local copy. Call it only when
    :func:`check_spec` found nothing: it imports Keras (and TensorFlow).

    Raises:
        DataError: the download failed; the message lists the offline alternatives.
    """
    if not is_downloadable(spec):
        raise DataError(f"{spec.name!r} cannot be downloaded; {_CHOICES}")
    import keras

    try:
        getattr(keras.datasets, spec.name).load_data()
    except Exception as exc:  # any failure (no network, a bad hash) means the same to the user
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        raise DataError(f"{_missing_message(spec.name)} (the download failed: {reason})") from None
    _locate(spec)  # the cache now holds it, or this says why not


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read a gzip or plain IDX file with numpy, checking magic number, rank and size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path} ({exc}); reinstall or re-copy it") from exc
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] != ndim:
        raise DataError(f"{path} is not a {ndim}-D IDX file (bad magic number); replace it")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"IDX file {path} is truncated or corrupt ({len(raw)} bytes, header implies "
            f"{expected}); replace it"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _read_idx_dir(directory: Path) -> tuple[Pair, Pair]:
    """The official (train, test) pairs from the four IDX files in ``directory``."""
    arrays = {
        key: read_idx(_idx_path(directory, stem), ndim=3 if key.startswith("x") else 1)
        for key, stem in IDX_FILES.items()
    }
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_npz(source: Any) -> tuple[Pair, Pair | None]:
    """(train, official test or None) from a .npz holding x,y or x_train,y_train,x_test,y_test."""
    try:
        with source.open("rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DataError(f"{source} holds one .npy array; expected a .npz with {_NPZ_KEYS}")
            with data:
                keys = set(data.files)
                if {"x_train", "y_train", "x_test", "y_test"} <= keys:
                    return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
                if {"x", "y"} <= keys:
                    return (data["x"], data["y"]), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"cannot read {source} ({exc}); expected a .npz with {_NPZ_KEYS}") from exc
    raise DataError(f"{source} has arrays {sorted(keys)}; expected {_NPZ_KEYS}")


def _check_pair(x: Any, y: Any, what: str) -> Pair:
    """Arrays of equal length, x at least 2-D; y 1-D non-negative integer class labels (float ones
    that are all 0 or 1 too: binary labels), or finite float regression targets (one per sample, or
    a row of them)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{what}: x has shape {x.shape}; need (samples, ...) with >= 1 sample")
    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x)} samples but y has {len(y)}; make them equal")
    if np.issubdtype(y.dtype, np.floating) and y.ndim == 1 and len(y) and np.isin(y, (0, 1)).all():
        y = y.astype(np.int64)  # float 0/1 labels (a sigmoid's binary cross-entropy) are two classes
    if np.issubdtype(y.dtype, np.floating):
        if y.ndim not in (1, 2):
            raise DataError(
                f"{what}: y is {y.dtype} {y.shape}; need one regression target per sample (or a row)"
            )
        if not np.isfinite(y).all():
            bad = int(np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))[0])
            raise DataError(
                f"{what}: y has a NaN or infinite target (sample {bad}); drop or fill those samples"
            )
        return x, y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{what}: y is {y.dtype} {y.shape}; need 1-D integer class labels or float regression targets"
        )
    if y.min() < 0:
        raise DataError(f"{what}: y has label {y.min()}; labels must be 0..num_classes-1")
    return x, y


def _targets(y: np.ndarray) -> np.ndarray:
    """Labels as int64, regression targets as float32."""
    return y.astype(np.float32) if np.issubdtype(y.dtype, np.floating) else y.astype(np.int64)


def _num_classes(what: str, *ys: np.ndarray) -> int:
    """The number of classes the labels show (0 for regression targets).

    Raises:
        DataError: labels of one class only, or splits that mix labels and regression targets.
    """
    floats = {np.issubdtype(y.dtype, np.floating) for y in ys}
    if len(floats) > 1:
        raise DataError(f"{what}: some splits hold integer labels and others float targets; use one kind")
    if floats == {True}:
        return 0
    num_classes = int(max(y.max() for y in ys)) + 1
    if num_classes < 2:
        raise DataError(f"{what}: only {num_classes} class (label 0); need >= 2 classes")
    return num_classes


def _scale(x: np.ndarray, what: str) -> np.ndarray:
    """uint8 -> float32 / 255; float kept (but must be finite); anything else is rejected."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{what}: x has dtype {x.dtype}; convert it to uint8 (0-255) or float")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: x contains NaN or inf; clean the data")
    return x.astype(np.float32)


def make_splits(x: Any, y: Any, *, spec: DataSpec, test: Pair | None = None) -> Dataset:
    """Shuffle with ``spec.split_seed`` and split; pure, so the same spec gives the same split.

    Without ``test``: test_fraction / val_fraction of all samples, rest train. With an official
    ``test`` pair: it is kept as test (test_fraction unused) and val is carved out of ``x, y``.
    Then only the first ``train_fraction`` of train is kept (val and test are untouched).
    """
    x, y = _check_pair(x, y, spec.name)
    x_test, y_test = _check_pair(*test, f"{spec.name} test") if test is not None else (x, y)
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{spec.name}: test samples {x_test.shape[1:]} != train {x.shape[1:]}")
    num_classes = _num_classes(spec.name, y, y_test)
    test_idx, val_idx, rest = split_rows(len(y), spec, with_test=test is None)
    train_idx = kept_train(rest, spec)
    if test is None:
        x_test, y_test = x[test_idx], y[test_idx]
    return Dataset(
        name=spec.name,
        x_train=_scale(x[train_idx], spec.name),
        y_train=_targets(y[train_idx]),
        x_val=_scale(x[val_idx], spec.name),
        y_val=_targets(y[val_idx]),
        x_test=_scale(x_test, spec.name),
        y_test=_targets(y_test),
        num_classes=num_classes,
    )


def _labels(y: Any, what: str) -> tuple[np.ndarray, int | None]:
    """Integer labels from integer or one-hot ``y``; the one-hot width is the number of classes.
    Float ``y`` that is not one-hot is a regression target and stays as it is."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] >= 2 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1).astype(np.int64), int(y.shape[1])
    if y.ndim == 2 and not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{what}: y is {y.dtype} {y.shape} but not one-hot; give 1-D labels or one-hot rows")
    return y, None


def from_splits(
    train: Pair, val: Pair, test: Pair | None = None, *, name: str = "arrays", train_fraction: float = 1.0
) -> Dataset:
    """A Dataset from splits the caller already made (used as given: a keras-tuner user's
    ``x, y, validation_data``). Labels may be integers or one-hot; the Dataset holds integers.

    Without ``test`` the validation split doubles as test, so a test score is then not independent.
    ``train_fraction`` keeps a seeded random subset of train (val and test untouched).
    """
    _fraction("train_fraction", train_fraction, allow_one=True)
    pairs, widths = {}, set()
    for split, pair in (("train", train), ("val", val), ("test", test if test is not None else val)):
        y, width = _labels(pair[1], f"{name} {split}")
        pairs[split] = _check_pair(pair[0], y, f"{name} {split}")
        widths |= {width} if width else set()
    shapes = {split: x.shape[1:] for split, (x, _) in pairs.items()}
    if len(set(shapes.values())) > 1 or len(widths) > 1:
        raise DataError(f"{name}: splits disagree on sample shape {shapes} or one-hot width {sorted(widths)}")
    ys = [y for _, y in pairs.values()]
    num_classes = widths.pop() if widths else _num_classes(name, *ys)
    if num_classes and (num_classes < 2 or max(y.max() for y in ys) >= num_classes):
        raise DataError(f"{name}: need >= 2 classes with labels below {num_classes}")
    x_train, y_train = pairs["train"]
    keep = np.sort(
        np.random.default_rng(0).permutation(len(y_train))[: max(1, round(len(y_train) * train_fraction))]
    )
    return Dataset(
        name=name,
        x_train=_scale(x_train[keep], name),
        y_train=_targets(y_train[keep]),
        x_val=_scale(pairs["val"][0], name),
        y_val=_targets(pairs["val"][1]),
        x_test=_scale(pairs["test"][0], name),
        y_test=_targets(pairs["test"][1]),
        num_classes=num_classes,
    )


def _read_presplit(source: Any) -> dict[str, np.ndarray] | None:
    """The arrays of a pre-split .npz (see :data:`PRESPLIT_KEYS`), or None for any other file."""
    try:
        with source.open("rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                return None
            with data:
                if not set(PRESPLIT_KEYS) <= set(data.files):
                    return None
                return {k: data[k] for k in data.files if k in (*PRESPLIT_KEYS, "x_test", "y_test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # _load_npz reports what is wrong with the file


def load(spec: DataSpec) -> Dataset | saved.SavedDataset:
    """Locate, read and split the dataset ``spec`` names (never downloads; TensorFlow only to decode
    a folder of images the first time, :mod:`rlnas.data.folder`, or to open a saved dataset).

    A directory a tuner search saved a tf.data dataset into (``<run>/data``) gives its
    :class:`rlnas.data.saved.SavedDataset`, which each child reads lazily from disk.

    A pre-split .npz (``x_train``, ``y_train``, ``x_val``, ``y_val``, optionally ``x_test``,
    ``y_test``) is used as given: val_fraction and test_fraction do not apply to it.
    """
    kind, source = _locate(spec)
    if kind == "saved":
        return saved.read(source)
    if kind == "table":
        from rlnas.data import table

        return Dataset(name=spec.name, **table.load(source, spec))
    if kind == "folder":
        from rlnas.data import folder

        x, y, class_names, image = folder.read(source, spec)
        return dataclasses.replace(make_splits(x, y, spec=spec), class_names=class_names, raw_input=image)
    arrays = _read_presplit(source) if kind == "npz" else None
    if arrays is not None:
        test = (arrays["x_test"], arrays["y_test"]) if "x_test" in arrays and "y_test" in arrays else None
        train, val = (arrays["x_train"], arrays["y_train"]), (arrays["x_val"], arrays["y_val"])
        return from_splits(train, val, test, name=spec.name, train_fraction=spec.train_fraction)
    train, test = _read_idx_dir(source) if kind == "idx" else _load_npz(source)
    return make_splits(*train, spec=spec, test=test)


def describe(ds: Dataset) -> dict[str, Any]:
    """JSON-ready record of a dataset: its splits' sizes, class names and, for a folder or a table,
    the raw input (image size and colour mode; columns with their encoders' statistics)."""
    record: dict[str, Any] = {
        "name": ds.name,
        "train": len(ds.x_train),
        "val": len(ds.x_val),
        "test": len(ds.x_test),
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
    }
    raw = ds.raw_input
    if hasattr(raw, "to_dict"):
        record["table"] = raw.to_dict()
    elif raw is not None:
        record["image"] = {"image_size": list(raw.image_size), "color_mode": raw.color_mode}
    return record
