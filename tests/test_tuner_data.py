"""search() takes what model.fit takes: a tf.data pipeline (image_dataset_from_directory's too), a
PyDataset, dicts of arrays for a model with two inputs; saved once in the run, read by every child.

Tiny data (a few hundred 8-value samples whose class is the bright position), one epoch, two trials.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rlnas import data as rlnas_data
from rlnas.errors import ConfigError, DataError
from rlnas.tuner import ReinforceSearch

ROOT = Path(__file__).resolve().parent.parent


def _arrays(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.random((n, 8)).astype(np.float32) * 0.3
    x[np.arange(n), y] += 1
    return x, y.astype(np.int64)


def _datasets(batch: int | None = 32):
    import tensorflow as tf

    x, y = _arrays()
    train = tf.data.Dataset.from_tensor_slices((x[:180], y[:180]))
    val = tf.data.Dataset.from_tensor_slices((x[180:], y[180:]))
    return (train.batch(batch), val.batch(batch)) if batch else (train, val)


def build(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_two_inputs(hp):
    import keras

    left, right = keras.Input((8,), name="left"), keras.Input((2,), name="right")
    joined = keras.layers.Concatenate()([left, right])
    hidden = keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu")(joined)
    model = keras.Model({"left": left, "right": right}, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_images(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _tuner(directory: Path, fn=build, **kwargs) -> ReinforceSearch:
    kwargs = {"max_trials": 2, "archs_per_update": 2, "in_process": True, "seed": 3} | kwargs
    return ReinforceSearch(fn, directory=directory, project_name="p", **kwargs)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> ReinforceSearch:
    train, val = _datasets()
    tuner = _tuner(tmp_path_factory.mktemp("tfdata"))
    tuner.search(train, validation_data=val, epochs=2, verbose=0)
    return tuner


def test_a_tf_data_search_saves_the_data_once_in_the_run(searched: ReinforceSearch) -> None:
    config = json.loads((searched.project_dir / "config.json").read_text())
    assert config["search"]["dataset"] == str((searched.project_dir / "data").resolve())
    record = json.loads((searched.project_dir / "data" / "rlnas-dataset.json").read_text())
    assert record["task"] == "classification" and record["num_classes"] == 3
    assert record["input_shape"] == [8] and record["splits"]["train"]["elements"] == 6  # 180 / 32 batches
    assert not (searched.project_dir / "data.npz").exists()
    assert [t.ok for t in searched._trials] == [True, True]
    assert max(t.metrics["val_accuracy"] for t in searched._trials) > 0.6  # it learnt


def test_best_model_and_replay_of_a_tf_data_run(searched: ReinforceSearch) -> None:
    from rlnas.run.store import RunStore
    from rlnas.search.replay import replay

    _, val = _datasets()
    (model,) = searched.get_best_models(1)
    best = max(t.metrics["val_accuracy"] for t in searched._trials)
    assert model.evaluate(val, verbose=0, return_dict=True)["accuracy"] == pytest.approx(best, abs=1e-6)
    (result,) = replay(RunStore(searched.project_dir), top=1, epochs=1)
    assert result.ok, result.error
    assert result.model_path.endswith(".keras")


@pytest.mark.slow
def test_resume_of_a_tf_data_run_trains_the_rest_from_the_saved_data(searched: ReinforceSearch) -> None:
    from rlnas.cli import main

    assert main(["search", "--resume", str(searched.project_dir), "--trials", "3", "--workers", "1"]) == 0
    lines = (searched.project_dir / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["status"] == "ok", lines[-1]


def test_an_unbatched_dataset_is_batched_with_the_search_batch_size(tmp_path: Path) -> None:
    train, val = _datasets(batch=None)
    tuner = _tuner(tmp_path, max_trials=1, archs_per_update=1)
    tuner.search(train, validation_data=val, epochs=1, batch_size=45, verbose=0)
    record = json.loads((tuner.project_dir / "data" / "rlnas-dataset.json").read_text())
    assert record["splits"]["train"] == {"batch": 45, "shuffle": False, "elements": 180}
    assert tuner._trials[0].ok, tuner._trials[0].error


def test_dicts_of_arrays_train_a_two_input_model(tmp_path: Path) -> None:
    x, y = _arrays()
    inputs = {"left": x, "right": x[:, :2]}
    tuner = _tuner(tmp_path, fn=build_two_inputs)
    tuner.search(inputs, y, validation_split=0.25, epochs=2, verbose=0)
    record = json.loads((tuner.project_dir / "data" / "rlnas-dataset.json").read_text())
    assert record["input_shape"] == {"left": [8], "right": [2]} and record["splits"]["train"]["shuffle"]
    assert all(t.ok for t in tuner._trials), [t.error for t in tuner._trials]
    (model,) = tuner.get_best_models(1)
    assert model.predict({"left": x[:4], "right": x[:4, :2]}, verbose=0).shape == (4, 3)


def test_a_py_dataset_is_read_once_into_the_run(tmp_path: Path) -> None:
    import keras

    x, y = _arrays()

    class Batches(keras.utils.PyDataset):
        reads = 0

        def __init__(self, lo: int, hi: int) -> None:
            super().__init__()
            self.lo, self.hi = lo, hi

        def __len__(self) -> int:
            return (self.hi - self.lo) // 30

        def __getitem__(self, i: int):
            Batches.reads += 1
            s = slice(self.lo + 30 * i, self.lo + 30 * (i + 1))
            return x[s], y[s]

    tuner = _tuner(tmp_path)
    tuner.search(Batches(0, 180), validation_data=Batches(180, 240), epochs=1, verbose=0)
    assert all(t.ok for t in tuner._trials), [t.error for t in tuner._trials]
    assert Batches.reads == 2 + 6 + 2  # the first batch of each for its shapes, then each batch once


def test_image_dataset_from_directory(tmp_path: Path) -> None:
    import keras
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cats", "dogs")):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random((8, 8)) * 100 + 150 * label).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / "images" / name / f"{i}.png")
    common = dict(image_size=(8, 8), color_mode="grayscale", batch_size=4, seed=1, validation_split=0.3)
    train = keras.utils.image_dataset_from_directory(tmp_path / "images", subset="training", **common)
    val = keras.utils.image_dataset_from_directory(tmp_path / "images", subset="validation", **common)
    tuner = _tuner(tmp_path / "runs", fn=build_images)
    tuner.search(train, validation_data=val, epochs=1, verbose=0)
    record = json.loads((tuner.project_dir / "data" / "rlnas-dataset.json").read_text())
    assert record["input_shape"] == [8, 8, 1] and record["num_classes"] == 2
    assert all(t.ok for t in tuner._trials), [t.error for t in tuner._trials]
    # its float32 pixels (whole numbers 0-255) are stored as bytes, and read back as the same floats
    assert record["splits"]["train"]["pixels"] == "float32"
    saved = rlnas_data.load(rlnas_data.DataSpec(str(tuner.project_dir / "data")))
    given = np.concatenate([x for x, _ in train.as_numpy_iterator()])
    back = np.concatenate([x for x, _ in saved.split("train").as_numpy_iterator()])
    assert back.dtype == np.float32 and np.array_equal(np.sort(back.ravel()), np.sort(given.ravel()))


def test_float_targets_in_a_dataset_are_a_regression_searched_for_val_loss(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    x, _ = _arrays()
    y = (x @ np.linspace(-1, 1, 8)).astype(np.float32)

    def regressor(hp):
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(hp.Choice("units", [4, 8])), keras.layers.Dense(1)]
        )
        model.compile("adam", "mse", metrics=["mae"])
        return model

    train = tf.data.Dataset.from_tensor_slices((x[:180], y[:180])).batch(32)
    val = tf.data.Dataset.from_tensor_slices((x[180:], y[180:])).batch(32)
    tuner = _tuner(tmp_path, fn=regressor)
    tuner.search(train, validation_data=val, epochs=1, verbose=0)
    config = json.loads((tuner.project_dir / "config.json").read_text())["search"]
    assert config["objective"] == "val_loss" and config["failed_reward"] < 0
    assert json.loads((tuner.project_dir / "data" / "rlnas-dataset.json").read_text())["task"] == "regression"
    assert all(t.ok and "val_mae" in t.metrics for t in tuner._trials), [t.error for t in tuner._trials]


# -- bad input: one line before anything is written, or a failed trial with its reason ------------------


def _bad(tmp_path: Path, error: type, match: str, x, **kwargs) -> None:
    with pytest.raises(error, match=match) as caught:
        _tuner(tmp_path).search(x, epochs=1, verbose=0, **kwargs)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_a_python_generator_is_refused_with_the_way_out(tmp_path: Path) -> None:
    x, y = _arrays()
    batches = ((x[i : i + 30], y[i : i + 30]) for i in range(0, 180, 30))
    _bad(tmp_path, DataError, r"Python generator.*from_generator", batches, validation_data=_datasets()[1])


def test_validation_split_with_a_dataset_names_validation_data(tmp_path: Path) -> None:
    _bad(
        tmp_path,
        ConfigError,
        "validation_split is not supported.*validation_data=",
        _datasets()[0],
        validation_split=0.2,
    )


def test_y_with_a_dataset_is_refused(tmp_path: Path) -> None:
    train, val = _datasets()
    with pytest.raises(ConfigError, match="drop y"):
        _tuner(tmp_path).search(train, np.zeros(3), validation_data=val, verbose=0)


def test_elements_that_are_not_pairs_are_refused(tmp_path: Path) -> None:
    train, val = _datasets()
    only_x = train.map(lambda x, y: x)
    _bad(tmp_path, DataError, r"^x yields single tensors, not \(x, y\) pairs", only_x, validation_data=val)


def test_nan_targets_are_one_line_and_leave_no_run(tmp_path: Path) -> None:
    import tensorflow as tf

    x, _ = _arrays()
    y = np.linspace(0, 1, len(x)).astype(np.float32)
    y[5] = np.nan
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    _bad(tmp_path, DataError, "the train labels hold NaN or infinite values", train, validation_data=train)


def test_a_pipeline_that_fails_while_it_is_read_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    import tensorflow as tf

    def batches():
        yield np.zeros((4, 8), np.float32), np.zeros(4, np.int64)
        raise ConnectionResetError("the socket closed")

    signature = (tf.TensorSpec((None, 8), tf.float32), tf.TensorSpec((None,), tf.int64))
    broken = tf.data.Dataset.from_generator(batches, output_signature=signature)
    _bad(
        tmp_path,
        DataError,
        "^cannot save the train dataset into .*socket closed",
        broken,
        validation_data=broken,
    )


def test_elements_that_do_not_match_the_model_are_one_line_before_training(tmp_path: Path) -> None:
    import tensorflow as tf

    x, y = _arrays()
    wide = tf.data.Dataset.from_tensor_slices((np.hstack([x, x]), y)).batch(32)
    _bad(
        tmp_path,
        DataError,
        r"^x does not fit the model's input: .*\(16\) per sample .* takes \(8\)$",
        wide,
        validation_data=wide,
    )


def test_a_missing_input_name_is_one_line_before_training(tmp_path: Path) -> None:
    x, y = _arrays()
    with pytest.raises(DataError, match=r"the data has no input named 'right' \(it has 'left', 'other'\)"):
        _tuner(tmp_path, fn=build_two_inputs).search(
            {"left": x, "other": x[:, :2]}, y, validation_split=0.25, verbose=0
        )
    assert not (tmp_path / "p").exists()


# -- as a script, in two worker processes ---------------------------------------------------------------

SCRIPT = """
import numpy as np
import tensorflow as tf
import rlnas
from tests.test_tuner_data import _datasets, build

train, val = _datasets()
tuner = rlnas.ReinforceSearch(build, max_trials=4, archs_per_update=2, workers=2, directory={directory!r},
                              project_name="p", seed=3)
tuner.search(train, validation_data=val, epochs=1, verbose=0)
print("trials", [str(t.status) for t in tuner._trials], tuner.in_process)
"""


@pytest.mark.slow
def test_a_script_searches_a_tf_data_pipeline_with_two_workers(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(SCRIPT.format(directory=str(tmp_path))))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, env=_env(), check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trials ['ok', 'ok', 'ok', 'ok'] False" in done.stdout
    files = sorted(p.relative_to(tmp_path / "p") for p in (tmp_path / "p" / "data").rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[1:2] == ("train",) and f.suffix == ".snapshot"]) >= 1
    assert not any("trial" in str(f) for f in files)  # written once, for the search, not per child


def _env() -> dict[str, str]:
    import os

    return os.environ | {"PYTHONPATH": str(ROOT)}
