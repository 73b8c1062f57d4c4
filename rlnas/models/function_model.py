"""Training what a keras-tuner model function builds: its model, its labels, its own metrics.

A ``model`` written ``"module:function"`` (or given as the function itself) compiles its own model,
with the user's loss, optimizer and metrics. :mod:`rlnas.models.child` trains it like any child; this module
holds what differs: replaying the architecture through the function, handing labels over in the form
its loss expects, and scoring it by its own accuracy metric. The function's search space (recording
``hp`` calls) is :mod:`rlnas.space.keras_tuner`, a layer below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlnas.errors import ChildError
from rlnas.space.discovery import load_function
from rlnas.space.keras_tuner import HyperParameters


def build_from_function(fn: Callable[[HyperParameters], Any] | str, arch: Mapping[str, Any]) -> Any:
    """Replay ``arch`` (active decision name -> value) through the model function; its model comes
    back as the function compiled it (its loss, optimizer and metrics are the user's).

    Raises:
        ChildError: the function returned something that is not a Keras model.
    """
    function = load_function(fn) if isinstance(fn, str) else fn
    model = function(HyperParameters(arch))
    if not (hasattr(model, "fit") and hasattr(model, "evaluate")):
        raise ChildError(f"the model function returned {type(model).__name__}, not a compiled keras Model")
    return model


def loss_name(model: Any) -> str:
    """The compiled loss as a lowercase name ('' for none, or one per output)."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return loss.lower()
    if loss is None or isinstance(loss, Mapping | Sequence):
        return ""
    return str(getattr(loss, "name", None) or getattr(loss, "__name__", "") or type(loss).__name__).lower()


def fit_labels(model: Any, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels in the form the user's loss expects: the run stores integer labels, a keras-tuner
    function often compiles ``categorical_crossentropy`` (one-hot) and some data comes one-hot.
    One-hot rows are as wide as the model's output (a 10-way softmax on data that shows 3 classes)."""
    y = np.asarray(y)
    name = loss_name(model).replace("_", "")
    if "categorical" in name and "sparse" not in name and y.ndim == 1:
        return np.eye(max(num_classes, _output_width(model)), dtype=np.float32)[y.astype(np.int64)]
    if "sparse" in name and y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return y


def _output_width(model: Any) -> int:
    """The last dimension of a single-output model's output, or 0 if it has no known one."""
    try:
        shape = model.output_shape
    except Exception:  # not built, several outputs, a subclassed model: Keras raises various errors
        return 0
    last = shape[-1] if isinstance(shape, tuple) and shape else None
    return last if isinstance(last, int) else 0


ACCURACY_KEYS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


def scalars(logs: Mapping[str, Any]) -> dict[str, float]:
    """The scalar values of Keras logs (``evaluate(return_dict=True)``, one epoch of a History), as
    floats; a metric that returns a vector (an un-averaged F1 score per class) is left out."""
    out = {}
    for name, value in logs.items():
        array = np.asarray(value)
        if array.size == 1 and np.issubdtype(array.dtype, np.number):
            out[str(name)] = float(array.reshape(()))
    return out


def evaluation(
    model: Any, x: Any, y: Any, *, classification: bool, batch_size: int = 1024
) -> dict[str, float]:
    """Every scalar the model logs on ``(x, y)`` (``y`` as :func:`fit_labels` gave it), or on a
    ``tf.data.Dataset`` of ``(x, y)`` batches ``x`` (``y`` None), by its own name: ``loss`` and each
    compiled metric (``mean_absolute_error``, ``auc``, a custom metric's name).

    A classifier also gets ``accuracy``: the model's own accuracy metric when it has one, else the
    argmax agreement of its predictions, so every classification child is ranked by the same measure.
    """
    batch = {} if y is None else {"batch_size": batch_size}  # a dataset yields its own batches
    logs = scalars(model.evaluate(x, y, verbose=0, return_dict=True, **batch))
    if classification and "accuracy" not in logs:
        accuracy = next((logs[k] for k in ACCURACY_KEYS if k in logs), None)
        if accuracy is None:
            predicted = np.asarray(model.predict(x, verbose=0, **batch)).argmax(axis=-1)
            if y is None:  # the dataset's labels, in its (unshuffled) order
                y = np.concatenate([np.asarray(element[1]) for element in x.as_numpy_iterator()])
            labels = y.argmax(axis=1) if np.ndim(y) == 2 else np.asarray(y)
            accuracy = float(np.mean(predicted == labels))
        logs["accuracy"] = accuracy
    return logs


def loss_and_accuracy(
    model: Any, x: Any, y: np.ndarray | None, *, batch_size: int = 1024
) -> tuple[float, float]:
    """(loss, accuracy) of a user-compiled classifier on ``(x, y)`` (see :func:`evaluation`)."""
    logs = evaluation(model, x, y, classification=True, batch_size=batch_size)
    return logs["loss"], logs["accuracy"]
