"""Training what a keras-tuner model function builds: its model, its labels, its own metrics.

A ``model`` written ``"module:function"`` (or given as the function itself) compiles its own model,
with the user's loss, optimizer and metrics. :mod:`rlnas.models.child` trains it like any child; this module
holds what differs: replaying the architecture through the function, handing labels over in the form
its loss expects, and scoring it by its own accuracy metric. The function's search space (recording
``hp`` calls) is :mod:`rlnas.space.keras_tuner`, a layer below.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlnas.errors import ChildError
from rlnas.space.discovery import load_function
from rlnas.space.keras_tuner import HyperParameters, Preset

_HP_OF: weakref.WeakKeyDictionary[Any, HyperParameters] = weakref.WeakKeyDictionary()
"""The ``hp`` each model was built with, so that ``HyperModel.fit`` gets the same one (its
``hp.get`` then finds the build's values, its own calls the architecture's)."""


@dataclass
class UserCode:
    """The user's code one child runs, beyond a plain model function: sent to the worker processes
    by value (cloudpickle), so a HyperModel of a script's ``__main__`` or a notebook trains there.

    Calling it builds a model as the model function does (with the compile overrides applied).

    Args:
        build: ``build_model(hp)`` or a HyperModel's bound ``build``.
        hypermodel: the HyperModel whose overridden ``fit(hp, model, *args, **kwargs)`` trains
            the child; None: ``model.fit``.
        preset: keras-tuner's ``hyperparameters=`` and ``tune_new_entries=``.
        compile: the tuner's ``optimizer=``, ``loss=``, ``metrics=`` overrides (given ones only).
        objective: the objective's name: what a float returned by ``fit`` is.
        passed: the ``search()`` keywords the user gave among ``epochs``, ``batch_size`` and
            ``verbose``, which ``fit`` receives as keras-tuner's does (rlnas's own defaults do not).
    """

    build: Callable[[HyperParameters], Any]
    hypermodel: Any = None
    preset: Preset | None = None
    compile: Mapping[str, Any] = field(default_factory=dict)
    objective: str = "val_accuracy:max"  # name:min|max
    passed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Named as the user's build: a run's config.json and worker errors say whose code it is.
        self.__module__ = getattr(self.build, "__module__", None) or __name__
        self.__qualname__ = getattr(self.build, "__qualname__", type(self.build).__name__)

    def __call__(self, hp: HyperParameters) -> Any:
        model = self.build(hp)
        if self.compile and hasattr(model, "compile"):
            recompile(model, self.compile)
        return model


def recompile(model: Any, overrides: Mapping[str, Any]) -> None:
    """Compile ``model`` again with the tuner's ``optimizer``/``loss``/``metrics`` in place of its
    own (what it was compiled with stays for the others), as keras-tuner's compile overrides do.
    An optimizer object is copied from its config: each child needs fresh slots."""
    import keras

    config = dict(getattr(getattr(model, "_compile_config", None), "config", None) or {})
    kwargs = {k: config.get(k) for k in ("optimizer", "loss", "metrics") if config.get(k) is not None}
    kwargs.update(overrides)
    optimizer = kwargs.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, str):
        kwargs["optimizer"] = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    model.compile(**kwargs)


def build_from_function(fn: Callable[[HyperParameters], Any] | str, arch: Mapping[str, Any]) -> Any:
    """Replay ``arch`` (active decision name -> value) through the model function; its model comes
    back as the function compiled it (its loss, optimizer and metrics are the user's).

    Raises:
        ChildError: the function returned something that is not a Keras model.
    """
    function = load_function(fn) if isinstance(fn, str) else fn
    hp = HyperParameters(arch, preset=getattr(function, "preset", None))
    model = function(hp)
    if not (hasattr(model, "fit") and hasattr(model, "evaluate")):
        raise ChildError(f"the model function returned {type(model).__name__}, not a compiled keras Model")
    with contextlib.suppress(TypeError):  # not weakly referable: a fit then gets a fresh hp
        _HP_OF[model] = hp
    return model


# -- fitting: model.fit, or the user's HyperModel.fit ----------------------------------------------
@dataclass(frozen=True)
class Fitted:
    """What fitting a child gave: the History (``model.fit``'s, or the one a user's fit returned)
    and, when the user's code reported the objective itself, its metrics (then nothing more is
    evaluated: the code may have trained on cropped or normalized inputs the raw split would not fit)."""

    history: Any = None
    reported: dict[str, float] | None = None

    @property
    def scored(self) -> bool:
        return self.reported is not None


def fit_model(
    code: Any,
    net: Any,
    x: Any,
    y: Any,
    *,
    eval_data: Any,
    epochs: int,
    verbose: Any = 0,
    batch: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Fitted:
    """Fit a child: ``net.fit`` (with ``epochs`` and ``batch``: the batch size, or no shuffle for
    a dataset), or the user's ``HyperModel.fit(hp, net, x, y, **kwargs)`` (``y`` left out for a
    dataset) when the :class:`UserCode` has one. That fit gets what keras-tuner's would: the
    search's keywords (``epochs`` and ``batch_size`` only where the user gave them to ``search``),
    ``validation_data`` (the validation split), and ``callbacks`` (the user's and rlnas's own).

    Raises:
        ChildError: the user's fit returned neither a History, a float nor a dict (with the objective).
    """
    hypermodel = getattr(code, "hypermodel", None)
    if hypermodel is None:
        return Fitted(net.fit(x, y, epochs=epochs, verbose=verbose, **{**(batch or {}), **kwargs}))
    hp = _HP_OF.get(net) or HyperParameters({}, preset=getattr(code, "preset", None))
    kwargs = {**dict(getattr(code, "passed", {})), **kwargs}
    kwargs.setdefault("callbacks", [])
    if eval_data is not None:
        kwargs.setdefault("validation_data", eval_data)
    returned = hypermodel.fit(hp, net, *((x,) if y is None else (x, y)), **kwargs)
    return to_fitted(returned, getattr(code, "objective", "val_accuracy"), "HyperModel.fit")


def to_fitted(returned: Any, objective: str, where: str) -> Fitted:
    """keras-tuner's reading of what ``HyperModel.fit`` or ``run_trial`` returned: a History (its
    epoch best by the objective, as keras-tuner's; without the objective, the model is evaluated
    as usual), a number (the objective's value), a dict of metrics (holding the objective), or a
    list of these (executions: averaged).

    Raises:
        ChildError: anything else, or a dict without the objective: the reason says what to return.
    """
    if isinstance(returned, list | tuple) and returned:
        parts = [to_fitted(r, objective, where) for r in returned]
        if all(p.scored for p in parts):
            keys = set.intersection(*(set(p.reported or {}) for p in parts))
            mean = {k: float(np.mean([p.reported[k] for p in parts])) for k in keys}  # type: ignore[index]
            return Fitted(parts[-1].history, mean)
        return parts[-1]
    name = _alias(objective)
    if isinstance(returned, numbers.Real) and not isinstance(returned, bool):
        return Fitted(None, {name: float(returned)})
    if isinstance(returned, Mapping):
        metrics = {str(k): _number(v, k, where) for k, v in returned.items()}
        if name not in metrics:
            raise ChildError(
                f"{where} returned a dict without the objective {name!r} (keys: "
                f"{', '.join(map(repr, metrics)) or 'none'}); return a dict that holds it, or a float"
            )
        return Fitted(None, metrics)
    history = getattr(returned, "history", None)
    if isinstance(history, Mapping):
        return Fitted(returned, best_epoch(history, objective))
    raise ChildError(
        f"{where} returned {type(returned).__name__}; it must return model.fit's History, a float "
        f"(the objective {name!r}) or a dict of metrics holding {name!r}"
    )


def best_epoch(history: Mapping[str, Sequence[float]], objective: str) -> dict[str, float] | None:
    """Every metric at the epoch where the objective was best (keras-tuner's reading of a History);
    None when the History never logged the objective."""
    key = _alias(objective)
    values = [float(v) for v in history.get(key) or []]
    finite = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    epoch = values.index((min if _direction(objective) == "min" else max)(finite)) if finite else -1
    return {k: float(v[epoch]) for k, v in history.items() if len(v) == len(values)}


def _alias(objective: str) -> str:
    """The History/dict key of an objective text (``name[:min|max]``): rlnas calls the training
    loss ``train_loss``, keras ``loss``."""
    name = objective.partition(":")[0]
    return "loss" if name == "train_loss" else name


def _direction(objective: str) -> str:
    """``min`` or ``max``: the caller writes the objective with its direction (``val_loss:min``)."""
    direction = objective.partition(":")[2]
    return direction if direction in ("min", "max") else "max"


def _number(value: Any, key: Any, where: str) -> float:
    try:
        return float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise ChildError(f"{where} returned {key!r}: {value!r}, which is not a number") from None


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
