"""A keras-tuner user's own code in ReinforceSearch: a declared space (hyperparameters=,
tune_new_entries=, allow_new_entries=), an overridden HyperModel.fit and what it returns, a
run_trial subclass, rlnas.HyperModel and rlnas.Objective; in a notebook and with workers (slow)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

import rlnas
from rlnas.errors import ChildError, ConfigError
from rlnas.models.function_model import UserCode, best_epoch, to_fitted
from rlnas.space.discovery import space_from_function
from rlnas.space.keras_tuner import HyperParameters, Preset, overridden_fit
from rlnas.tuner.args import probe_arguments

ROOT = Path(__file__).resolve().parents[1]


def _asks(hp: HyperParameters) -> dict:
    """A stand-in model function: asks three hyperparameters, returns what it got."""
    return {
        "units": hp.Int("units", 16, 64, step=16, default=32),
        "act": hp.Choice("act", ["relu", "tanh"]),
        "lr": hp.Float("lr", 1e-4, 1e-1, sampling="log"),
    }


def _declared(**fixed) -> HyperParameters:
    hp = HyperParameters()
    hp.Float("lr", 1e-3, 1e-2, sampling="log")
    for name, value in fixed.items():
        hp.Fixed(name, value)
    return hp


# -- a declared space ------------------------------------------------------------------------------
def test_tune_new_entries_false_searches_only_the_declared_and_the_rest_take_their_defaults() -> None:
    preset = Preset.of(_declared(), tune_new=False)
    space = space_from_function(_asks, preset=preset)
    assert space.names == ("lr",) and space.decisions[0].values[0] == pytest.approx(1e-3)
    assert _asks(HyperParameters({"lr": 0.01}, preset=preset)) == {"units": 32, "act": "relu", "lr": 0.01}


def test_fixed_with_tune_new_entries_fixes_one_and_searches_the_others() -> None:
    preset = Preset.of(_declared(units=24), tune_new=True)
    space = space_from_function(_asks, preset=preset)
    assert set(space.names) == {"lr", "act"}
    hp = HyperParameters({"act": "tanh"}, preset=preset)
    assert _asks(hp)["units"] == 24 and hp.values["units"] == 24 and hp.get("lr") == pytest.approx(1e-3)


def test_allow_new_entries_false_makes_an_undeclared_name_an_error() -> None:
    with pytest.raises(
        ConfigError, match=r"'units' is not in hyperparameters= and allow_new_entries is False"
    ):
        space_from_function(_asks, preset=Preset.of(_declared(), allow_new=False))


def test_a_declared_hyperparameter_is_searched_even_if_the_code_never_asks_it() -> None:
    space = space_from_function(lambda hp: hp.Boolean("b"), preset=Preset.of(_declared()))
    assert space.names == ("lr", "b")


def test_keras_tuners_hyperparameters_are_taken_as_declared() -> None:
    kt = pytest.importorskip("keras_tuner")
    hp = kt.HyperParameters()
    hp.Int("units", 16, 64, step=16)
    hp.Fixed("act", "tanh")
    preset = Preset.of(hp, tune_new=False)
    assert list(preset.params) == ["units"] and preset.fixed == {"act": "tanh"}
    assert space_from_function(_asks, preset=preset).names == ("units",)


# -- what a user's fit returns ---------------------------------------------------------------------
def _history(**metrics: list[float]) -> types.SimpleNamespace:
    return types.SimpleNamespace(history=metrics)


def test_a_float_is_the_objective_and_a_dict_must_hold_it() -> None:
    assert to_fitted(0.25, "default_objective:min", "fit").reported == {"default_objective": 0.25}
    assert to_fitted(np.float32(0.5), "val_loss:min", "fit").reported == {"val_loss": 0.5}
    assert to_fitted({"my": 1, "other": 2.5}, "my:max", "fit").reported == {"my": 1.0, "other": 2.5}
    with pytest.raises(ChildError, match=r"fit returned a dict without the objective 'my' \(keys: 'x'\)"):
        to_fitted({"x": 1.0}, "my:max", "fit")


def test_a_history_gives_its_best_epoch_by_the_objective_and_lists_are_averaged() -> None:
    h = _history(loss=[0.9, 0.5, 0.7], val_accuracy=[0.5, 0.6, 0.8])
    assert best_epoch(h.history, "val_accuracy:max") == {"loss": 0.7, "val_accuracy": 0.8}
    assert best_epoch(h.history, "loss:min") == {"loss": 0.5, "val_accuracy": 0.6}
    assert to_fitted(h, "val_loss:min", "fit").reported is None  # evaluated as usual then
    assert to_fitted([1.0, 2.0], "default_objective:min", "fit").reported == {"default_objective": 1.5}


@pytest.mark.parametrize("returned", ["oops", None, True, object()])
def test_anything_else_is_a_failed_trial_that_says_what_fit_must_return(returned: object) -> None:
    with pytest.raises(
        ChildError, match=r"HyperModel.fit returned \w+; it must return model.fit's History, a float"
    ):
        to_fitted(returned, "val_accuracy:max", "HyperModel.fit")


# -- the pieces ------------------------------------------------------------------------------------
def test_probe_arguments_cut_arrays_epochs_and_callbacks() -> None:
    x = np.zeros((100, 3))
    args, kwargs = probe_arguments(
        (x, x[:, 0]), {"epochs": 5, "callbacks": ["tb"], "validation_data": (x, x)}
    )
    assert [len(a) for a in args] == [8, 8] and kwargs["epochs"] == 1 and kwargs["callbacks"] == []
    assert [len(a) for a in kwargs["validation_data"]] == [8, 8]


def test_rlnas_hypermodel_and_objective_need_no_keras_tuner() -> None:
    class Plain(rlnas.HyperModel):
        def build(self, hp):
            return hp.Int("units", 1, 4)

    class Own(Plain):
        def fit(self, hp, model, *args, **kwargs):
            return 1.0

    assert overridden_fit(Plain()) is None and isinstance(overridden_fit(Own()), Own)
    assert rlnas.Objective("val_mean_absolute_error", "min").direction == "min"
    with pytest.raises(ConfigError, match=r"direction must be 'min' or 'max', got 'down'"):
        rlnas.Objective("val_loss", "down")
    code = UserCode(Own().build)
    assert code.__qualname__.endswith("Plain.build") and code(HyperParameters()) == 1


def test_a_run_trial_subclass_needs_no_hypermodel_and_minimises_what_it_returns(tmp_path: Path) -> None:
    class AnyFunction(rlnas.ReinforceSearch):
        def run_trial(self, trial, *args, **kwargs):
            x = trial.hyperparameters.Float("x", -1.0, 1.0, step=0.5)
            return (x - 0.5) ** 2 + kwargs["offset"]

    tuner = AnyFunction(max_trials=5, directory=tmp_path, archs_per_update=5)
    tuner.search(offset=1.0, verbose=0)
    assert tuner.space.names == ("x",) and tuner.objective.metric == "default_objective"
    assert tuner.get_best_hyperparameters()[0].get("x") == 0.5
    with pytest.raises(ConfigError, match=r"run_trial trains its own models"):
        tuner.get_best_models()


NOTEBOOK = """
import keras, numpy as np, rlnas
rng = np.random.default_rng(0)
x = rng.normal(size=(160, 6)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
# %%
class Own(rlnas.HyperModel):
    def build(self, hp):
        m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(hp.Int("units", 4, 8, step=4)),
                              keras.layers.Dense(2, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, shuffle=hp.Boolean("shuffle"), verbose=0, **kwargs)
        return {"acc": float(model.evaluate(*validation_data, verbose=0)[1]), "units": hp.get("units")}
# %%
tuner = rlnas.ReinforceSearch(Own(), objective=rlnas.Objective("acc", "max"), max_trials=3,
                              directory="runs", workers=2, archs_per_update=3)
tuner.search(x, y, epochs=1, validation_split=0.25, verbose=0)
# %%
class AnyFunction(rlnas.ReinforceSearch):
    def run_trial(self, trial, *args, **kwargs):
        return (trial.hyperparameters.Int("k", 0, 4) - 2) ** 2
other = AnyFunction(max_trials=4, directory="runs", project_name="f", workers=2, archs_per_update=4)
other.search(verbose=0)
print("NOTEBOOK", sorted(tuner.space.names), tuner.in_process, tuner.get_best_hyperparameters()[0].values,
      other.get_best_hyperparameters()[0].get("k"))
"""


@pytest.mark.slow
def test_own_fit_and_run_trial_work_in_a_notebook_with_workers(tmp_path: Path, monkeypatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    cells = [nbformat.v4.new_code_cell(c.strip()) for c in NOTEBOOK.split("# %%")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nbclient.NotebookClient(notebook, timeout=None, resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "NOTEBOOK ['shuffle', 'units'] False" in out, out[-2000:]
    assert out.rstrip()[-1] in "01234", out[-500:]  # run_trial's best k, found in this process


def _tiny_build(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(hp.Int("units", 2, 8, step=2)),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_compile_overrides_and_a_fixed_value_reach_every_child(tmp_path: Path) -> None:
    import keras

    hp = HyperParameters()
    hp.Fixed("units", 6)
    tuner = rlnas.ReinforceSearch(
        lambda hp: (_tiny_build(hp), hp.Boolean("flag"))[0],
        hyperparameters=hp,
        optimizer=keras.optimizers.SGD(0.1),
        metrics=["accuracy"],
        max_trials=2,
        archs_per_update=2,
        directory=tmp_path,
        in_process=True,
    )
    x, y = _tiny_data()
    tuner.search(x, y, validation_split=0.25, verbose=0)
    model = tuner.get_best_models()[0]
    assert tuner.space.names == ("flag",) and model.layers[0].units == 6
    assert type(model.optimizer).__name__ == "SGD"
    assert tuner.get_best_hyperparameters()[0].values["units"] == 6


def test_a_fit_that_returns_something_else_is_a_failed_trial_saying_what_to_return(tmp_path: Path) -> None:
    class Junk(rlnas.HyperModel):
        def build(self, hp):
            return _tiny_build(hp)

        def fit(self, hp, model, *args, **kwargs):
            return "done"

    tuner = rlnas.ReinforceSearch(
        Junk(),
        objective="val_accuracy",
        max_trials=2,
        archs_per_update=2,
        directory=tmp_path,
        in_process=True,
    )
    x, y = _tiny_data()
    tuner.search(x, y, validation_split=0.25, verbose=0)
    trials = [json.loads(line) for line in (tuner.project_dir / "trials.jsonl").read_text().splitlines()]
    assert trials and all(t["status"] == "failed" for t in trials)
    assert "HyperModel.fit returned str; it must return model.fit's History, a float" in trials[0]["error"]
