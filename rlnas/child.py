"""Child networks: build a Keras model from an architecture, train it, measure it.

``build_model`` is pure (architecture in, uncompiled-free model out; no global state beyond Keras's
own) and ``train_and_evaluate`` never raises for a bad child: whatever goes wrong becomes a result
with ``status="failed"`` and a reason, because one exploding network must not end a search.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from rlnas.errors import ChildError, ConfigError
from rlnas.space import SearchSpace

DROPOUT_RATE = 0.25
MLP_DEFAULTS: dict[str, Any] = {"num_layers": 1, "activation": "relu", "dropout": False, "lr": 1e-3}
"""Values used when the space fixes a decision by leaving it out."""


@dataclass(frozen=True)
class ChildResult:
    """What one child's training produced; ``reward`` is filled in by the caller's objective."""

    status: str  # "ok" or "failed"
    val_accuracy: float = 0.0
    val_loss: float = math.nan
    train_loss: float = math.nan
    params: int = 0
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    child_seconds: float = 0.0  # everything the child cost: build, fit, evaluate, clean-up
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_space(space: SearchSpace) -> None:
    """Fail early if the child builder cannot interpret architectures of ``space``."""
    if space.model != "mlp":
        raise ConfigError(f"unknown model {space.model!r}; this version builds: 'mlp'")
    known = {"num_layers", "activation", "dropout", "lr"}
    for d in space.decisions:
        if d.name.startswith("units_") and d.name[6:].isdigit():
            continue
        if d.name not in known:
            raise ConfigError(
                f"the mlp model does not use decision {d.name!r}; "
                "it reads num_layers, units_<i>, activation, dropout, lr"
            )
    layers = space["num_layers"].values if "num_layers" in space.names else (1,)
    for i in range(max(int(v) for v in layers)):  # type: ignore[call-overload]
        if f"units_{i}" not in space.names:
            raise ConfigError(f"num_layers can be {max(layers)} but the space has no units_{i}")


def build_model(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
    """A compiled MLP: Flatten, ``num_layers`` Dense layers, optional Dropout(0.25), softmax."""
    import keras

    a = MLP_DEFAULTS | dict(arch)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(int(a["num_layers"])):
        x = keras.layers.Dense(int(a[f"units_{i}"]), activation=a["activation"])(x)
    if a["dropout"]:
        x = keras.layers.Dropout(DROPOUT_RATE)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(a["lr"])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_and_evaluate(
    arch: Mapping[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    num_classes: int,
    epochs: int,
    batch_size: int,
    seed: int,
    max_params: int | None = None,
    on_model: Callable[[Any], None] | None = None,
    log_dir: str | None = None,
) -> ChildResult:
    """Train a fresh child on (x_train, y_train) and score it on (x_eval, y_eval).

    Keras's global state is cleared first and the child is seeded, so equal inputs give equal
    results. ``on_model`` receives the trained model (replay uses it to save the model).
    ``log_dir``: write this child's training curves there (TensorBoard; the evaluation data is
    then also scored after every epoch, which costs time but changes no weight).
    Never raises for a bad child: returns ``status="failed"`` with the reason instead.
    """
    import keras

    start = time.perf_counter()
    # free_memory=False skips a full gc.collect() (0.1-0.3 s a child, a quarter of a small child's
    # time) that does not stop TensorFlow's growth anyway: workers are recycled for that.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    try:
        model = build_model(arch, x_train.shape[1:], num_classes)
        params = int(model.count_params())
        if max_params is not None and params > max_params:
            raise ChildError(f"{params:,} parameters exceed max_params={max_params:,}")
        t0 = time.perf_counter()
        curves = (
            {"validation_data": (x_eval, y_eval), "callbacks": [keras.callbacks.TensorBoard(log_dir)]}
            if log_dir
            else {}
        )
        hist = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0, **curves)
        t1 = time.perf_counter()
        val_loss, val_acc = model.evaluate(x_eval, y_eval, batch_size=1024, verbose=0)
        t2 = time.perf_counter()
        train_loss = float(hist.history["loss"][-1])
        if not all(math.isfinite(v) for v in (train_loss, val_loss, val_acc)):
            raise ChildError(f"non-finite loss (train {train_loss}, val {val_loss})")
        if on_model is not None:
            on_model(model)
        result = ChildResult("ok", float(val_acc), float(val_loss), train_loss, params, t1 - t0, t2 - t1)
    except Exception as exc:
        result = ChildResult("failed", error=f"{type(exc).__name__}: {exc}"[:500])
    return replace(result, child_seconds=time.perf_counter() - start)
