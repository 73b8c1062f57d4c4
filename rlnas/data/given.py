"""What ``ReinforceSearch.search`` was given, made into ``tf.data`` splits ready to save.

``model.fit`` takes arrays, dicts of arrays, a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``;
here each becomes a ``tf.data.Dataset`` and a layout (batches, unbatched elements, or arrays to
reshuffle each epoch) for :func:`rlnas.data.saved.save`, checked as ``fit`` would check it, before
anything is written: a bare Python generator (it may be endless and cannot be read twice) and a
PyDataset without a length are refused with the way out, elements that are not ``(x, y)`` pairs
and inputs that do not fit the model are one line each. Nothing here imports TensorFlow at module
import.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from rlnas.data.saved import first_line, sample_shape
from rlnas.errors import DataError


def is_arrays(x: Any) -> bool:
    """True for what ``data.npz`` holds: an array or a list (not a dict, a dataset, a generator)."""
    return isinstance(x, np.ndarray | list) or (hasattr(x, "__array__") and not _is_tf_dataset(x))


def _is_tf_dataset(x: Any) -> bool:
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def _is_py_dataset(x: Any) -> bool:
    return any(c.__name__ == "PyDataset" and c.__module__.startswith("keras") for c in type(x).__mro__)


def check_shippable(x: Any, what: str) -> None:
    """Refuse, in one line with the way out, what cannot be saved for the children.

    Raises:
        DataError: a Python generator or iterator, or a PyDataset without a length.
    """
    if isinstance(x, types.GeneratorType | Iterator) and not _is_tf_dataset(x):
        raise DataError(
            f"{what} is a Python generator, which cannot be sent to the children nor read twice; wrap it "
            "in tf.data.Dataset.from_generator(...) or a keras.utils.PyDataset with a length: the search "
            "then reads it once into the run directory"
        )
    if _is_py_dataset(x):
        try:
            n = len(x)
        except Exception:  # a PyDataset without num_batches raises various errors for len()
            n = None
        if not n:
            raise DataError(
                f"{what} is a PyDataset without a length (num_batches), so it cannot be read once "
                "into the run directory; give it __len__ or pass a tf.data.Dataset"
            )


def to_tf_dataset(x: Any, y: Any, *, what: str) -> tuple[Any, str]:
    """(``tf.data.Dataset``, its layout) for a dataset, a PyDataset, or arrays / dicts of arrays
    with their labels ``y``. The layout: ``"batches"``, ``"elements"`` (an unbatched dataset) or
    ``"arrays"`` (elements, reshuffled each epoch when read back as ``fit`` does for arrays).

    Raises:
        DataError: a generator, a PyDataset without a length, or elements that are not ``(x, y)``.
    """
    import tensorflow as tf

    check_shippable(x, what)
    if _is_tf_dataset(x):
        ds = x
    elif _is_py_dataset(x):
        ds = _from_py_dataset(x, what)
    else:
        if y is None:
            raise DataError(f"{what}: arrays need their labels (y, or the pair (x_val, y_val))")
        try:
            ds = tf.data.Dataset.from_tensor_slices((_as_arrays(x), np.asarray(y)))
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{what}: {first_line(exc)}; give arrays (or dicts of arrays) of equal length"
            ) from None
        return ds, "arrays"
    spec = ds.element_spec
    if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
        raise DataError(
            f"{what} yields {_describe(spec)}, not (x, y) pairs; "
            "map it to pairs, e.g. ds.map(lambda e: (e['image'], e['label']))"
        )
    return ds, "batches" if _is_batched(spec) else "elements"


def input_mismatch(model: Any, spec: Any, batched: bool) -> str:
    """Why elements of ``spec`` (a dataset's ``element_spec``) cannot feed ``model``, or '' when they
    can or it cannot be told (a model without an ``Input`` yet, several unnamed inputs): the one
    line that is said before training rather than in every child's failure."""
    offered = sample_shape(spec[0], batched)
    try:
        wanted = model.input  # a functional model's: a tensor, or a dict of named ones
    except Exception:  # a Sequential's is in .inputs, if it has an Input at all
        try:
            inputs = list(model.inputs or ())
        except Exception:  # not built: Keras says what is wrong when it trains
            return ""
        if len(inputs) != 1:
            return ""
        wanted = inputs[0]
    if isinstance(wanted, Mapping) != isinstance(offered, Mapping):
        return f"the data gives {_shown(offered)} but the model takes {_shown(wanted)}"
    if isinstance(wanted, Mapping):
        missing = sorted(set(wanted) - set(offered))
        if missing:
            names = ", ".join(map(repr, offered))
            return f"the data has no input named {', '.join(map(repr, missing))} (it has {names})"
        pairs = [(name, offered[name], tuple(wanted[name].shape[1:])) for name in wanted]
    elif isinstance(wanted, list | tuple):
        return ""
    else:
        pairs = [("x", offered, tuple(wanted.shape[1:]))]
    for name, have, need in pairs:
        if len(have) != len(need) or any(
            a is not None and b is not None and a != b for a, b in zip(have, need, strict=True)
        ):
            return f"the data's {name} has shape {_shown(have)} per sample but the model takes {_shown(need)}"
    return ""


def _shown(shape: Any) -> str:
    if isinstance(shape, Mapping):
        return "{" + ", ".join(f"{k!r}: {_shown(v)}" for k, v in shape.items()) + "}"
    if hasattr(shape, "shape"):
        return _shown(tuple(shape.shape[1:]))
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _as_arrays(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): np.asarray(v) for k, v in x.items()}
    return np.asarray(x)


def _from_py_dataset(py: Any, what: str) -> Any:
    """The PyDataset's batches as a tf.data.Dataset; its batches are read once, when it is saved."""
    import tensorflow as tf

    try:
        first = py[0]
    except Exception as exc:  # the user's __getitem__ may raise anything
        raise DataError(f"{what}: reading its first batch failed: {first_line(exc)}") from None
    if not (isinstance(first, tuple) and len(first) in (2, 3)):
        raise DataError(
            f"{what} yields {type(first).__name__} batches, not (x, y) pairs; return (x, y) from __getitem__"
        )
    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)), first
    )

    def batches() -> Iterator[Any]:
        for i in range(len(py)):
            yield tuple(py[i])

    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def _is_batched(spec: tuple) -> bool:
    """Whether the elements are batches: every part has a leading dimension and they agree
    (``(None, 28, 28)`` and ``(None,)``); an unbatched dataset's labels are scalars or its parts'
    first dimensions differ (``(28, 28)`` and ``(10,)``)."""
    import tensorflow as tf

    shapes = [s.shape for s in tf.nest.flatten(spec[:2])]
    if any(s.rank is None or s.rank == 0 for s in shapes):
        return False
    return len({s[0] for s in shapes if s[0] is not None}) <= 1


def _describe(spec: Any) -> str:
    if isinstance(spec, Mapping):
        return "dicts with keys " + ", ".join(map(str, spec))
    if isinstance(spec, tuple):
        return f"tuples of {len(spec)}"
    return "single tensors"
