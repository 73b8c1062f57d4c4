"""A user's dataset saved once into the run directory in tf.data's own format, loaded lazily by each child.

A ``tf.data.Dataset``, a ``keras.utils.PyDataset`` or dicts of arrays cannot travel to the worker
processes or Ray tasks as arrays do (a pipeline may read files, call Python, or be larger than
memory), and rebuilding it in every child would repeat its whole cost per child. So the search
iterates it once, here, and writes each split with ``tf.data.Dataset.save`` under ``<run>/data/``;
a child opens it with ``tf.data.Dataset.load``, which reads from disk as it trains (data larger
than memory stays on disk). The labels are scanned once at save time, from the saved copy, so the
user's pipeline runs exactly once: integer labels (or one-hot rows, or 0/1 floats) mean
classification with max+1 classes, other float labels regression; NaN or infinite labels are refused.

What the user gave becomes savable splits in :mod:`rlnas.data.given` (which refuses, with the way
out, what cannot be saved); a pipeline that fails while it is read here is one line.

Nothing here imports TensorFlow at module import: :func:`read` only reads the small JSON record,
so the CLI and the fork template load a saved dataset before TensorFlow starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import DataError

RECORD = "rlnas-dataset.json"
"""The file that marks a directory as a saved dataset and describes it."""
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SavedDataset:
    """The splits of a dataset saved with ``tf.data.Dataset.save`` under ``name`` (a directory).

    ``splits`` says, per split, how to read it back: ``batch`` (batch it with this size when it was
    given unbatched or as arrays, else None), ``shuffle`` (reshuffle each epoch: arrays, as
    ``fit`` does for them) and ``elements`` (how many elements were saved).
    """

    name: str
    input_shape: tuple[int | None, ...] | dict[str, tuple[int | None, ...]]
    num_classes: int
    task: str  # "classification", "regression" or "multi-output" (labels a dict: the model's own)
    splits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        sizes = " / ".join(f"{info['elements']} {name}" for name, info in self.splits.items())
        what = f"{self.num_classes} classes" if self.task == "classification" else self.task
        return f"{self.name}: tf.data ({sizes} elements), {what}"

    def split(self, name: str) -> Any:
        """The split as a ``tf.data.Dataset`` of batches, read lazily from disk."""
        import tensorflow as tf

        info = self.splits[name]
        ds = tf.data.Dataset.load(str(Path(self.name) / name))
        if info.get("shuffle"):
            ds = ds.shuffle(int(info["elements"]), reshuffle_each_iteration=True)
        if info.get("batch"):
            ds = ds.batch(int(info["batch"]))
        if info.get("pixels"):  # stored as bytes: the float values the pipeline yielded, exactly
            dtype = tf.as_dtype(info["pixels"])
            ds = ds.map(lambda x, y: (tf.cast(x, dtype), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def fit_and_eval(self, *, final: bool) -> tuple[Any, Any]:
        """(fit data, eval data): train and validation during the search; train+validation and test
        (validation when no test split was saved) for the final training."""
        if not final:
            return self.split("train"), self.split("val")
        held_out = "test" if "test" in self.splits else "val"
        return self.split("train").concatenate(self.split("val")), self.split(held_out)


def is_saved(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a saved dataset."""
    return (Path(path) / RECORD).is_file()


def read(path: str | Path) -> SavedDataset:
    """The saved dataset at ``path`` (reads its record only; no TensorFlow)."""
    try:
        record = json.loads((Path(path) / RECORD).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the saved dataset {path} ({exc}); search again to write it") from None
    shape = record["input_shape"]
    shape = {k: tuple(v) for k, v in shape.items()} if isinstance(shape, dict) else tuple(shape)
    return SavedDataset(str(path), shape, int(record["num_classes"]), record["task"], record["splits"])


def sample_shape(spec: Any, batched: bool) -> Any:
    """One sample's shape (or a dict of them) from the inputs' ``element_spec``."""
    import tensorflow as tf

    def one(s: Any) -> tuple[int | None, ...]:
        dims = s.shape.as_list() if s.shape.rank is not None else []
        return tuple(dims[1:] if batched else dims)

    if isinstance(spec, Mapping):
        return {k: one(v) for k, v in spec.items()}
    flat = tf.nest.flatten(spec)
    return one(flat[0]) if len(flat) == 1 else {str(i): one(s) for i, s in enumerate(flat)}


def save(
    directory: str | Path,
    splits: Mapping[str, tuple[Any, str]],
    *,
    batch_size: int,
) -> tuple[SavedDataset, dict[str, np.ndarray]]:
    """Write each split ``name -> (tf.data.Dataset, layout)`` (:func:`to_tf_dataset`) with
    ``Dataset.save`` under ``directory/<name>``, scan its labels once from the saved copy, and
    write the record. Returns the saved dataset and each split's labels (for the search's own use:
    a regression objective's scale; empty for several outputs).

    Unbatched splits are saved as elements and batched with ``batch_size`` when read back; the
    train split of arrays is also reshuffled every epoch, as ``fit`` does for arrays.

    Raises:
        DataError: saving failed (the pipeline raised, or cannot be serialized), the labels are NaN or
            infinite, or the splits disagree on their input.
    """
    import tensorflow as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict[str, Any]] = {}
    specs = {}
    for name, (ds, layout) in splits.items():
        batched = layout == "batches"
        failed: list[BaseException] = []
        try:
            _guarded(ds, failed).save(str(directory / name))
        except Exception as exc:  # a pipeline fails in the user's code in any way: one line
            failed.append(exc)
        if failed:
            raise DataError(
                f"cannot save the {name} dataset into {directory / name}: {first_line(failed[0])}"
            )
        specs[name] = (ds.element_spec, batched)
        info[name] = {
            "batch": None if batched else batch_size,
            "shuffle": name == "train" and layout == "arrays",
            "elements": 0,
        }
    shapes = {name: sample_shape(spec[0], batched) for name, (spec, batched) in specs.items()}
    if len({json.dumps(_loose(s)) for s in shapes.values()}) > 1:
        raise DataError(f"the splits disagree on their input: {shapes}; give them the same shape")
    labels = _Labels()
    for name in splits:
        pixels = True
        for element in tf.data.Dataset.load(str(directory / name)).as_numpy_iterator():
            info[name]["elements"] += 1
            labels.add(element[1], name)
            pixels = pixels and _is_pixels(element[0])
        if pixels and info[name]["elements"]:
            info[name]["pixels"] = _store_as_bytes(directory / name)
    task, num_classes = labels.task()
    record = {
        "input_shape": shapes["train"],
        "num_classes": num_classes,
        "task": task,
        "splits": info,
    }
    (directory / RECORD).write_text(json.dumps(record, indent=1))
    return read(directory), labels.arrays()


def _is_pixels(x: Any) -> bool:
    """Whether ``x`` is one float array of whole numbers in 0-255: pixels, as
    ``image_dataset_from_directory`` yields them, that one byte each holds exactly."""
    return (
        isinstance(x, np.ndarray)
        and x.dtype.kind == "f"
        and x.size > 0
        and bool(np.all((x >= 0) & (x <= 255) & (x == np.round(x))))
    )


def _store_as_bytes(path: Path) -> str:
    """Rewrite the saved split at ``path`` with its inputs as ``uint8`` (from the saved copy: the
    user's pipeline is not read again); returns the float dtype :meth:`SavedDataset.split` casts
    them back to. A child reads a quarter of the bytes for the same values: on 60,000 28x28 images
    the reading share of a small child's fit falls from about 12% to about 3%
    (BENCHMARKS.md, A tf.data pipeline as input)."""
    import shutil

    import tensorflow as tf

    saved = tf.data.Dataset.load(str(path))
    dtype = saved.element_spec[0].dtype.name
    packed = path.with_name(path.name + ".bytes")
    saved.map(lambda x, y: (tf.cast(x, tf.uint8), y)).save(str(packed))
    shutil.rmtree(path)
    packed.rename(path)
    return dtype


def _guarded(ds: Any, failed: list[BaseException]) -> Any:
    """``ds`` read element by element here, its first error kept in ``failed`` and ending it.

    ``Dataset.save`` hangs for good when its input raises (a generator's socket closes, a file is
    missing); reading through this generator turns any error into the dataset's end, which the
    caller then reports. It costs a Python step per element, once per search.
    """
    import tensorflow as tf

    def elements() -> Iterator[Any]:
        iterator = iter(ds)
        while True:
            try:
                element = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # the user's pipeline may raise anything
                failed.append(exc)
                return
            yield element

    return tf.data.Dataset.from_generator(elements, output_signature=ds.element_spec)


def _loose(shape: Any) -> Any:
    """A shape with unknown dimensions left out of the comparison (images of varying size)."""
    if isinstance(shape, Mapping):
        return {k: _loose(v) for k, v in sorted(shape.items())}
    return [d if d is not None else -1 for d in shape]


class _Labels:
    """What the labels say, gathered batch by batch in one pass: the task and the class count."""

    def __init__(self) -> None:
        self.integer, self.one_hot, self.largest, self.width, self.smallest = True, True, -1, 0, 0
        self.several = False
        self.seen: dict[str, list[np.ndarray]] = {}  # the labels themselves: small beside the inputs

    def add(self, y: Any, split: str) -> None:
        if isinstance(y, Mapping):  # several outputs: the model's own losses say what they are
            self.integer = self.one_hot = False
            self.several = True
            return
        y = np.asarray(y)
        if y.size == 0:
            return
        self.seen.setdefault(split, []).append(y)
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise DataError(f"the {split} labels hold NaN or infinite values; drop or fix those samples")
        if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
            self.largest = max(self.largest, int(y.max()))
            self.smallest = min(self.smallest, int(y.min()))
            self.one_hot = False
            return
        if np.isin(y, (0, 1)).all() and (y.ndim == 1 or y.shape[-1] == 1):  # binary labels as floats
            self.largest, self.one_hot = max(self.largest, 1), False
            return
        self.integer = False
        rows = y.reshape(-1, y.shape[-1]) if y.ndim >= 1 and y.shape[-1] >= 2 else None
        if rows is None or not (np.isin(rows, (0, 1)).all() and (rows.sum(axis=1) == 1).all()):
            self.one_hot = False
        else:
            self.width = max(self.width, rows.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """Each split's labels in one array (none for a model with several outputs)."""
        if self.several:
            return {}
        return {
            split: np.concatenate([np.atleast_1d(b) for b in parts]) for split, parts in self.seen.items()
        }

    def task(self) -> tuple[str, int]:
        if self.several:
            return "multi-output", 0
        if self.integer and self.largest >= 0 and self.smallest >= 0:
            return "classification", self.largest + 1
        if self.one_hot and self.width:
            return "classification", self.width
        return "regression", 0


def first_line(exc: BaseException) -> str:
    """An error as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


__all__ = ["RECORD", "SavedDataset", "first_line", "is_saved", "read", "sample_shape", "save"]
