"""keras-tuner model functions (``[space] model = "module:function"``) through the ordinary machinery:
check_space, train_and_evaluate, a worker process, run_search's default evaluator and replay.

The functions live in module files written to tmp_path, which becomes the current directory: the
user's situation (``rlnas search --model mymodel:build`` in the directory holding ``mymodel.py``).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rlnas.config import make_config
from rlnas.errors import ConfigError
from rlnas.models.child import TrainSpec, build_model, check_input_shape, check_space, train_and_evaluate
from rlnas.space import Decision, SearchSpace
from rlnas.space.discovery import space_from_function
from tests.arrays import as_dataset

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
import keras


def build(hp):
    model = keras.Sequential([keras.layers.Flatten()])  # no Input: rlnas builds it before counting
    model.add(keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    optimizer = keras.optimizers.SGD(learning_rate=hp.Choice("lr", [0.0, 0.5]))
    model.compile(optimizer, "categorical_crossentropy", metrics=["mse", "accuracy"])
    return model
"""


@pytest.fixture
def function_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path as the current directory, holding fm_small.py and fm_tutorial.py (the tutorial's
    function); sys.path and the imported modules are restored afterwards."""
    (tmp_path / "fm_small.py").write_text(SMALL)
    shutil.copy(ROOT / "examples" / "keras_tuner_model.py", tmp_path / "fm_tutorial.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in ("fm_small", "fm_tutorial"):
        sys.modules.pop(name, None)


def _ten_classes(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """8x8 uint8 'images': class c lights row c % 8 (classes 8, 9 also light a column)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 8, 8)).astype(np.uint8)
    x[np.arange(n), y % 8, :] += 200
    x[y >= 8, :, 0] += 200
    return x, y


def _space(model: str) -> SearchSpace:
    return SearchSpace([Decision("units", (4, 8), "int"), Decision("lr", (0.0, 0.5), "float")], model=model)


# -- checks ------------------------------------------------------------------------------------------
def test_check_space_imports_the_function_from_the_current_directory(function_dir: Path) -> None:
    check_space(_space("fm_small:build"))
    check_input_shape("fm_small:build", (784,))  # its inputs are the function's business
    with pytest.raises(ConfigError, match=r"cannot import module 'fm_missing' of model function"):
        check_space(_space("fm_missing:build"))
    with pytest.raises(ConfigError, match=r"module 'fm_small' has no 'buld' \(did you mean 'build'\?\)"):
        check_space(_space("fm_small:buld"))


def test_build_model_refuses_a_model_function(function_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"build_model cannot build model function 'fm_small:build'.*"):
        build_model({"units": 4, "lr": 0.5}, (8, 8), 10, model="fm_small:build")


# -- training in this process ----------------------------------------------------------------------
def test_train_and_evaluate_trains_the_function_as_it_compiled_it(function_dir: Path) -> None:
    x, y = _ten_classes()
    kept, logs = [], function_dir / "logs"
    ds = as_dataset(x[:80] / 255, y[:80], x[80:] / 255, y[80:], 10)
    spec = TrainSpec(epochs=3, batch_size=16, model="fm_small:build")
    r = train_and_evaluate({"units": 8, "lr": 0.5}, ds, spec, seed=0, on_model=kept.append, log_dir=str(logs))
    assert r.status == "ok", r.error
    assert r.params == 8 * 8 * 8 + 8 + 8 * 10 + 10 and r.epochs_run == 3
    assert 0.0 <= r.val_accuracy <= 1.0 and r.val_accuracy > 0.2  # well above chance (0.1)
    (model,) = kept
    assert model.loss == "categorical_crossentropy" and float(model.optimizer.learning_rate) == 0.5
    assert any(logs.rglob("events.out.tfevents.*"))


def test_early_stopping_and_max_params_apply_to_model_functions(function_dir: Path) -> None:
    x, y = _ten_classes(40)
    ds, spec = as_dataset(x, y, x, y, 10), TrainSpec(batch_size=16, model="fm_small:build")
    # Learning rate 0: the validation loss never improves, so patience 1 ends the fit after 2 epochs.
    patient = dataclasses.replace(spec, epochs=6, early_stopping=1)
    frozen = train_and_evaluate({"units": 4, "lr": 0.0}, ds, patient, seed=0)
    assert frozen.status == "ok" and frozen.epochs_run == 2
    small = dataclasses.replace(spec, epochs=1, max_params=100)
    big = train_and_evaluate({"units": 8, "lr": 0.5}, ds, small, seed=0)
    assert big.status == "failed" and "610 parameters exceed max_params=100" in big.error


# -- worker processes, the search, replay ------------------------------------------------------------
def test_a_worker_process_imports_the_function_from_the_current_directory(function_dir: Path) -> None:
    from rlnas.data import DataSpec
    from rlnas.exec.evaluator import WorkerEvaluator

    x, y = _ten_classes(60)
    np.savez("tiny.npz", x_train=x[:40], y_train=y[:40], x_val=x[40:], y_val=y[40:])
    train = TrainSpec(epochs=1, batch_size=16, threads=1, model="fm_small:build")
    evaluator = WorkerEvaluator(DataSpec(name=str(function_dir / "tiny.npz")), train)
    try:
        result = evaluator.evaluate({"units": 4, "lr": 0.5}, seed=1)
    finally:
        evaluator.close()
    assert result.status == "ok", result.error
    assert result.params == 8 * 8 * 4 + 4 + 4 * 10 + 10
    assert "fm_small" not in sys.modules  # it was imported by the worker only


@pytest.mark.slow  # a CLI search plus replay; test_workers runs the tutorial function in workers
def test_search_with_workers_and_replay_of_the_tutorial_function(function_dir: Path) -> None:
    """What ``rlnas search --model fm_tutorial:build_model`` then ``rlnas replay`` do."""
    from rlnas.run.store import RunStore
    from rlnas.search.loop import run_search
    from rlnas.search.replay import replay

    x, y = _ten_classes(100)
    np.savez("tiny10.npz", x=x, y=y)
    space = space_from_function("fm_tutorial:build_model")
    assert space.model == "fm_tutorial:build_model" and "units_2" in space.names
    config = make_config(
        {"dataset": str(function_dir / "tiny10.npz"), "trials": 4, "epochs": 1, "batch_size": 16,
         "workers": 1, "archs_per_update": 2, "replay_epochs": 1, "seed": 2}
    )  # fmt: skip
    store = RunStore.create(function_dir / "run")
    store.write_config(config, space)
    result = run_search(config, space, store)  # evaluator=None: the CLI's worker processes
    assert [t.status for t in result.trials] == ["ok"] * 4, [t.error for t in result.trials]
    assert all(space.encode(t.architecture) is not None for t in result.trials)
    (replayed,) = replay(store, top=1)
    assert replayed.status == "ok", replayed.error
    assert replayed.architecture == result.best.architecture and 0 <= replayed.test_accuracy <= 1
    assert Path(replayed.model_path).is_file()


# -- the package's face ------------------------------------------------------------------------------
def test_importing_rlnas_stays_cheap_and_exports_the_tuner_lazily() -> None:
    code = (
        "import sys, rlnas\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert 'rlnas.tuner' not in sys.modules\n"
        "from rlnas.space import discovery, keras_tuner\n"
        "assert rlnas.HyperParameters is keras_tuner.HyperParameters\n"
        "assert rlnas.space_from_function is discovery.space_from_function\n"
        "import rlnas.tuner\n"
        "assert rlnas.ReinforceSearch is rlnas.tuner.ReinforceSearch\n"
        "assert 'tensorflow' not in sys.modules\n"
        "try:\n    rlnas.NoSuchThing\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "module 'rlnas' has no attribute 'NoSuchThing'" in out.stdout
