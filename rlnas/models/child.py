"""Child networks: build a Keras model from an architecture, train it, measure it.

The builders themselves live in :mod:`rlnas.models`, one per ``[space] model``; this module compiles,
trains and measures whatever they build, the same way for all. ``build_model`` is pure (architecture
in, compiled model out; no global state beyond Keras's own) and ``train_and_evaluate`` never raises
for a bad child: whatever goes wrong becomes a result with ``Status.FAILED`` and a reason, because
one exploding network must not end a search.

There is one way to train a child, ``train_and_evaluate(arch, dataset, spec, seed=...)``, and one
:class:`TrainSpec` that says how; :func:`train_spec` derives it from a run's config for every caller
(the worker processes, Ray, the env, the tuner, ``rlnas tabulate`` and replay).

A ``model`` written ``"module:function"`` (or given as the function itself) is a keras-tuner model
function: it is replayed with the architecture (:func:`rlnas.models.function_model.build_from_function`)
and trained as its author compiled it (loss, optimizer, metrics); labels are handed over in the
form its loss expects, and it is scored by its own accuracy metric.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np

from rlnas.data import Dataset
from rlnas.data.saved import SavedDataset
from rlnas.data.table import TableInput
from rlnas.errors import ChildError, ConfigError
from rlnas.models import MODELS, check_input_shape, get_model, is_function
from rlnas.models.common import DROPOUT_RATE
from rlnas.models.function_model import (
    Fitted,
    build_from_function,
    evaluation,
    fit_labels,
    fit_model,
    loss_name,
    scalars,
)
from rlnas.models.mlp import DEFAULTS as MLP_DEFAULTS
from rlnas.models.table import build as table_child
from rlnas.models.table import check_table_model
from rlnas.space import SearchSpace
from rlnas.space.discovery import load_function

__all__ = [
    "DROPOUT_RATE",
    "MLP_DEFAULTS",
    "MODELS",
    "ChildResult",
    "Status",
    "TrainSpec",
    "build_model",
    "check_input_shape",
    "check_space",
    "train_and_evaluate",
    "train_spec",
]


class Status(enum.StrEnum):
    """How a child ended; the value is what the journal stores (a ``str``, so old comparisons hold)."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class ChildResult:
    """What one child's training produced; ``reward`` is filled in by the caller's objective.

    The named fields are what every child reports; ``metrics`` holds everything else its model
    logged, so that any of it can be the objective: each value of the evaluation on the eval split
    as ``val_<name>`` (``val_mean_absolute_error``, ``val_auc``, a custom metric's ``val_<name>``),
    each training metric of the last epoch as ``<name>``, and what a user's own ``fit`` returned.
    ``val_accuracy`` is NaN for a regression child: it has no accuracy.
    """

    status: Status
    val_accuracy: float = 0.0
    val_loss: float = math.nan
    train_loss: float = math.nan
    params: int = 0
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    child_seconds: float = 0.0  # everything the child cost: build, fit, evaluate, clean-up
    error: str = ""
    epochs_run: int = 0  # epochs actually trained: fewer than asked when early stopping ended the fit
    metrics: dict[str, float] = field(default_factory=dict)  # everything else the child logged

    def __post_init__(self) -> None:
        # a status given as its journal string becomes the enum: ``is Status.OK`` holds for every result
        object.__setattr__(self, "status", Status(self.status))

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reported(self) -> dict[str, Any]:
        """Every value this child reported, in one flat dict (what an objective reads): the named
        fields first, then the logged metrics that do not repeat one of them."""
        flat = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metrics"}
        return flat | {k: v for k, v in self.metrics.items() if k not in flat}


def check_space(space: SearchSpace) -> None:
    """Fail early, with a ConfigError, if the child builder cannot interpret architectures of ``space``
    (for a ``module:function`` model: if the function cannot be imported)."""
    if is_function(space.model):
        load_function(space.model)
    else:
        get_model(space.model).check(space)


def build_model(
    arch: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    model: str = "mlp",
    raw_input: Any = None,
    target: tuple[float, float] | None = None,
):
    """The compiled child: ``model``'s network and Adam(``lr``); a classifier (``num_classes`` >= 2)
    with sparse categorical cross-entropy and accuracy, a regressor (``num_classes`` 0) with mean
    squared error and mean absolute error (logged as ``mae``: ``val_mae`` on the validation split).

    ``target`` (a regressor's training targets' mean and standard deviation): the network's linear
    unit is followed by a fixed ``Rescaling`` to the target's units, so it learns a standardised
    target (weights near their initial scale reach it; a house price of 300,000 in two epochs does
    not) while its loss, metrics and predictions, and the saved model's, are in the data's units.

    ``raw_input``: the Dataset's; a table's child starts with its column encoder (:mod:`rlnas.models.table`).

    Raises:
        ConfigError: unknown ``model``, inputs it cannot read (a conv model given flat vectors), or a
            ``module:function`` model (it compiles its own model; nothing is left to do here).
    """
    import keras

    if is_function(model):
        raise ConfigError(
            f"build_model cannot build model function {model!r}: it compiles its own model; "
            "use rlnas.models.function_model.build_from_function(model, arch)"
        )
    if isinstance(raw_input, TableInput):
        check_table_model(model)
        net = table_child(arch, raw_input, num_classes, get_model(model).build)
    else:
        net = get_model(model).build(arch, tuple(input_shape), num_classes)
    regression = num_classes == 0
    if regression and target is not None:
        mean, std = target
        net = keras.Model(
            net.inputs, keras.layers.Rescaling(scale=std, offset=mean, dtype="float32")(net.outputs[0])
        )
    net.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(arch.get("lr", 1e-3))),
        loss="mse" if regression else "sparse_categorical_crossentropy",
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")] if regression else ["accuracy"],
    )
    return net


SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainSpec:
    """How a child is trained: the one description every executor, the env, replay and the tuner use."""

    epochs: int = 2
    batch_size: int = 128
    max_params: int | None = None
    time_limit: float | None = None  # seconds; enforced by WorkerEvaluator (it kills the worker)
    threads: int | None = None  # TensorFlow threads per worker process (None: TensorFlow decides)
    model: str | Callable[..., Any] = "mlp"  # the space's builder, "module:function", or the function
    early_stopping: int | None = None  # patience in epochs on the eval split's loss
    schedule: str = "constant"  # or "cosine": decay the learning rate over the epochs (cosine_decay)
    final: bool = False  # replay's training: on train+val, scored once on test (never early-stopped)
    mixed_precision: bool = False  # float16 compute, float32 weights (check_mixed_precision)

    def __post_init__(self) -> None:
        if self.mixed_precision:
            check_mixed_precision(self.model)
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if self.final and self.early_stopping:
            raise ConfigError("a final training (scored on test) cannot stop early: it would select on test")


class TrainingConfig(Protocol):
    """What :func:`train_spec` reads of a config; :class:`rlnas.config.SearchConfig` has it all.

    A protocol rather than the config class itself, so that this layer imports nothing above it.
    """

    epochs: int
    batch_size: int
    max_params: int | None
    child_time_limit: float | None
    early_stopping: int | None
    replay_epochs: int
    replay_schedule: str
    # and ``mixed_precision``, read if present (configs of older callers lack it)


def train_spec(
    config: TrainingConfig,
    model: str | Callable[..., Any],
    *,
    threads: int | None = None,
    final: bool = False,
) -> TrainSpec:
    """How a run's children are trained, from its config: the one place every caller gets it from.

    ``final``: replay's training instead of the search's: ``replay_epochs`` with ``replay_schedule``
    on train+val, scored on test, with neither early stopping (it would select on test) nor
    ``max_params`` (the architecture passed it during the search) nor a time limit.
    """
    mixed = bool(getattr(config, "mixed_precision", False))
    if final:
        return TrainSpec(
            epochs=config.replay_epochs,
            batch_size=config.batch_size,
            model=model,
            schedule=config.replay_schedule,
            final=True,
            mixed_precision=mixed,
        )
    return TrainSpec(
        mixed_precision=mixed,
        epochs=config.epochs,
        batch_size=config.batch_size,
        max_params=config.max_params,
        time_limit=config.child_time_limit,
        threads=threads,
        model=model,
        early_stopping=config.early_stopping,
    )


def train_and_evaluate(
    arch: Mapping[str, Any],
    dataset: Dataset,
    spec: TrainSpec,
    *,
    seed: int,
    log_dir: str | None = None,
    on_model: Callable[[Any], None] | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> ChildResult:
    """Train a fresh child of ``arch`` on ``dataset`` as ``spec`` says, and score it.

    The search's training (``spec.final`` false) fits on the train split and scores on the
    validation split; replay's (``spec.final``) fits on train+val and scores on the test split.
    Keras's global state is cleared first and the child is seeded, so equal inputs give equal
    results. ``on_model`` receives the trained model (replay uses it to save the model).
    ``log_dir``: write this child's training curves there (TensorBoard; the evaluation data is
    then also scored after every epoch, which costs time but changes no weight).
    ``fit_kwargs``: more keywords for ``fit`` (a keras-tuner ``search``'s ``callbacks``, ``shuffle``).
    Never raises for a bad child: returns ``Status.FAILED`` with the reason instead.
    """
    import keras

    start = time.perf_counter()
    # free_memory=False skips a full gc.collect() (0.1-0.3 s a child, a quarter of a small child's
    # time) that does not stop TensorFlow's growth anyway: workers are recycled for that.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    try:
        with _precision(spec.mixed_precision):
            net, result = _fit_and_score(arch, dataset, spec, log_dir, fit_kwargs)
            if on_model is not None:
                on_model(net)
    except Exception as exc:
        result = ChildResult(Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
    return replace(result, child_seconds=time.perf_counter() - start)


MIXED_PRECISION_MODELS = ("conv", "skip", "cell")
"""Models whose children may train in mixed precision: convolutions are where a GPU's float16 units
pay. The MLP's few small dense layers gain little and a model function compiles its own model (it
may set a policy itself), so both are refused rather than silently changed."""


def check_mixed_precision(model: str | Callable[..., Any]) -> None:
    """Raise ConfigError unless ``model`` may train in mixed precision (:data:`MIXED_PRECISION_MODELS`)."""
    if model not in MIXED_PRECISION_MODELS:
        shown = model if isinstance(model, str) else getattr(model, "__name__", "a model function")
        raise ConfigError(
            f"--mixed-precision is for the {', '.join(MIXED_PRECISION_MODELS)} models, not {shown!r}"
        )


@contextlib.contextmanager
def _precision(mixed: bool) -> Iterator[None]:
    """Keras's global dtype policy ``mixed_float16`` while a child is built and trained, then the
    previous one again: the policy is process-wide, and the next child may not want it."""
    if not mixed:
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")  # compile() then adds loss scaling itself
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cosine_decay(lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of ``epoch`` (0-based): ``lr`` at the start, half-cosine down towards 0 at the end.

    The search trains each child at its sampled constant rate, which ranks architectures; the final
    training should end at a small rate instead. Measured on full Fashion-MNIST (train split,
    validation split, 20 epochs, the best MLP of a search): validation accuracy 0.9057 with this
    decay, 0.8916 with the constant rate.
    """
    return 0.5 * lr * (1 + math.cos(math.pi * epoch / epochs))


def cosine_callback(epochs: int) -> Any:
    """A Keras callback that sets :func:`cosine_decay` at each epoch, from the rate the model was
    compiled with (a built-in model: the architecture's ``lr``; a model function: its optimizer's own
    rate). A model compiled with a schedule of its own keeps it."""
    import keras

    class CosineDecay(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            rate = self.model.optimizer.learning_rate
            self.start = float(rate.numpy()) if hasattr(rate, "assign") else None

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self.start is not None:
                self.model.optimizer.learning_rate.assign(cosine_decay(self.start, epoch, epochs))

    return CosineDecay()


def _fit_and_score(
    arch: Mapping[str, Any],
    dataset: Dataset,
    spec: TrainSpec,
    log_dir: str | None,
    fit_kwargs: Mapping[str, Any] | None,
) -> tuple[Any, ChildResult]:
    """(trained model, its result); raises for a bad child, which the caller records as failed."""
    (x_train, y_train), (x_eval, y_eval) = _splits(dataset, final=spec.final)
    target = None if y_train is None else _target(y_train)  # a built-in regressor's (arrays only)
    raw_input = getattr(dataset, "raw_input", None)  # a folder's or a table's (arrays only)
    net = _compiled(spec.model, arch, dataset.input_shape, dataset.num_classes, target, raw_input)
    params = int(net.count_params())
    if spec.max_params is not None and params > spec.max_params:
        raise ChildError(f"{params:,} parameters exceed max_params={spec.max_params:,}")
    loss = loss_name(net)
    if dataset.task == "regression" and ("crossentropy" in loss or "hinge" in loss):
        # Keras would cast the float targets to classes without a word: 3.7 would train as class 3
        raise ChildError(
            f"the targets are floats (a regression) but the model compiles {loss!r}, a classification "
            "loss: give integer class labels, or compile a regression loss such as 'mse'"
        )
    if y_train is not None:  # arrays; a saved dataset yields its labels as the user made them
        # Labels as the loss wants them: a model function may compile a one-hot loss.
        y_train = fit_labels(net, y_train, dataset.num_classes)
        y_eval = fit_labels(net, y_eval, dataset.num_classes)
    eval_data = x_eval if y_eval is None else (x_eval, y_eval)
    extras = _fit_extras(eval_data, log_dir, spec.early_stopping)
    if (fit_kwargs or {}).get("callbacks") and not spec.final:
        # A keras-tuner user's EarlyStopping watches val_loss: fit must see the validation split.
        extras.setdefault("validation_data", eval_data)
    kwargs = {**(fit_kwargs or {}), **extras}
    kwargs["callbacks"] = [*(fit_kwargs or {}).get("callbacks", []), *extras.get("callbacks", [])]
    if spec.schedule == "cosine":
        kwargs["callbacks"].append(cosine_callback(spec.epochs))
    t0 = time.perf_counter()
    # A dataset yields its own batches (and Keras ignores, with a warning, shuffle for it).
    batch = {"shuffle": False} if y_train is None else {"batch_size": spec.batch_size}
    fitted = fit_model(
        spec.model,
        net,
        x_train,
        y_train,
        eval_data=None if spec.final else (x_eval if y_eval is None else (x_eval, y_eval)),
        epochs=spec.epochs,
        verbose=0,
        batch=batch,
        **kwargs,
    )
    t1 = time.perf_counter()
    if fitted.reported is not None:  # the user's fit scored itself: on its own inputs, not the raw split
        return net, reported_result(fitted, params, t1 - t0)
    hist = fitted.history
    classification = dataset.task == "classification"
    scores = evaluation(net, x_eval, y_eval, classification=classification)  # a function may add metrics
    t2 = time.perf_counter()
    return net, _result(hist.history, scores, params=params, fit_seconds=t1 - t0, eval_seconds=t2 - t1)


def _result(
    history: Mapping[str, list[Any]],
    scores: Mapping[str, float],
    *,
    params: int,
    fit_seconds: float,
    eval_seconds: float,
) -> ChildResult:
    """A trained child's result: its named fields and every metric it logged, ``val_<name>`` for
    the eval split's and ``<name>`` for the last training epoch's (a value ``fit`` also scored on
    the validation data, ``val_<name>`` in the history, is the evaluation's, which is final).

    Raises:
        ChildError: a non-finite loss or accuracy (a diverged child).
    """
    train = scalars({k: v[-1] for k, v in history.items() if v and not k.startswith("val_")})
    train_loss = train.pop("loss", math.nan)  # reported as train_loss
    logged = train | {f"val_{k}": v for k, v in scores.items()}
    val_loss = scores["loss"]
    val_acc = scores.get("accuracy", math.nan)  # a regression child has none
    checked = (train_loss, val_loss) + ((val_acc,) if "accuracy" in scores else ())
    if not all(math.isfinite(v) for v in checked):
        raise ChildError(f"non-finite loss (train {train_loss}, val {val_loss})")
    epochs_run = len(history.get("loss", ()))
    named = {"val_accuracy", "val_loss"}
    return ChildResult(
        Status.OK,
        val_acc,
        val_loss,
        train_loss,
        params,
        fit_seconds,
        eval_seconds,
        epochs_run=epochs_run,
        metrics={k: v for k, v in logged.items() if k not in named},
    )


def reported_result(fitted: Fitted, params: int = 0, seconds: float = 0.0) -> ChildResult:
    """The result of a child whose own code (``HyperModel.fit``, a tuner's ``run_trial``) returned
    its metrics: named as :func:`_result` names a trained child's (``loss`` is ``train_loss``).

    Raises:
        ChildError: a non-finite metric.
    """
    metrics = dict(fitted.reported or {})
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise ChildError(f"non-finite metrics {bad}")
    losses = (getattr(fitted.history, "history", None) or {}).get("loss", [])
    named = {"val_accuracy", "val_loss", "loss"}
    return ChildResult(
        Status.OK,
        val_accuracy=metrics.get("val_accuracy", math.nan),
        val_loss=metrics.get("val_loss", math.nan),
        train_loss=metrics.get("loss", math.nan),
        params=params,
        fit_seconds=seconds,
        epochs_run=len(losses),
        metrics={k: v for k, v in metrics.items() if k not in named},
    )


def _splits(dataset: Dataset | SavedDataset, *, final: bool) -> tuple[tuple[Any, Any], ...]:
    """(fit split, eval split): train and validation during the search; train+validation and test
    for the final training, the only place the test split is touched. Each is ``(x, y)``, or
    ``(tf.data.Dataset, None)`` for a saved dataset, read from disk as it trains."""
    if isinstance(dataset, SavedDataset):
        fit_data, eval_data = dataset.fit_and_eval(final=final)
        return (fit_data, None), (eval_data, None)
    if not final:
        return (dataset.x_train, dataset.y_train), (dataset.x_val, dataset.y_val)
    fit = (np.concatenate([dataset.x_train, dataset.x_val]), np.concatenate([dataset.y_train, dataset.y_val]))
    return fit, (dataset.x_test, dataset.y_test)


def _target(y: np.ndarray) -> tuple[float, float] | None:
    """Mean and standard deviation of one regression target (None for class labels, several
    targets, or a constant one), from the split the child fits: never from the data it is scored on."""
    if not np.issubdtype(y.dtype, np.floating) or (y.ndim == 2 and y.shape[1] != 1):
        return None
    std = float(np.std(y))
    return (float(np.mean(y)), std) if std > 0 else None


def _compiled(
    model: str | Callable[..., Any],
    arch: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    target: tuple[float, float] | None = None,
    raw_input: Any = None,
) -> Any:
    """The child ready to fit: a builder's network compiled here, or what the model function built
    and compiled, built on ``input_shape`` if it has no Input yet (count_params needs the weights)."""
    if not callable(model) and not is_function(model):
        return build_model(arch, input_shape, num_classes, model=model, target=target, raw_input=raw_input)
    net = build_from_function(model if callable(model) else load_function(model), arch)
    if not net.built and isinstance(input_shape, tuple):
        net.build((None, *input_shape))
    return net


def _fit_extras(eval_data: Any, log_dir: str | None, patience: int | None) -> dict:
    """Validation data and callbacks for ``fit``: only when curves or early stopping need them, since
    scoring the eval data after every epoch costs time."""
    import keras

    callbacks: list[Any] = []
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir))
    if patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        )
    return {"validation_data": eval_data, "callbacks": callbacks} if callbacks else {}
