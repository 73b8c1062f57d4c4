"""keras-tuner model functions: recording, replaying, discretizing, discovering conditions, loading.

Most tests use plain Python model functions (no Keras); the last ones run the tutorial function.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from rlnas.errors import ConfigError
from rlnas.models.function_model import build_from_function, fit_labels
from rlnas.space import default_space, log_grid
from rlnas.space.discovery import function_name, importable, load_function, space_from_function
from rlnas.space.keras_tuner import HyperParameters

TUTORIAL = "examples.keras_tuner_model:build_model"


# -- recording and replaying -----------------------------------------------------------------------
def test_recording_returns_defaults_and_fills_values() -> None:
    hp = HyperParameters()
    assert hp.Int("layers", 1, 3) == 1
    assert hp.Int("width", 8, 64, step=8, default=32) == 32
    assert hp.Float("lr", 1e-4, 1e-2, sampling="log") == 1e-4
    assert hp.Choice("act", ["relu", "tanh"]) == "relu"
    assert hp.Boolean("dropout") is False
    assert hp.Fixed("classes", 10) == 10
    assert hp.values == {"layers": 1, "width": 32, "lr": 1e-4, "act": "relu", "dropout": False, "classes": 10}
    assert hp.get("act") == "relu"
    with pytest.raises(ConfigError, match=r"hyperparameter 'ac' is not active or was never asked.*'act'"):
        hp.get("ac")


def test_replaying_returns_the_given_values_and_defaults_for_the_rest() -> None:
    hp = HyperParameters({"layers": 3, "act": "tanh"})
    assert hp.Int("layers", 1, 3) == 3
    assert hp.Choice("act", ["relu", "tanh"]) == "tanh"
    assert hp.Boolean("dropout", default=True) is True


def test_asking_the_same_name_again_returns_the_same_value() -> None:
    hp = HyperParameters({"act": "tanh"})
    assert [hp.Choice("act", ["relu", "tanh"]) for _ in range(3)] == ["tanh"] * 3


def test_conflicting_definitions_of_one_name_are_an_error() -> None:
    hp = HyperParameters()
    hp.Int("units", 32, 512, step=32)
    with pytest.raises(ConfigError, match=r"hyperparameter 'units' is defined twice differently"):
        hp.Int("units", 32, 256, step=32)
    with pytest.raises(ConfigError, match=r"'units' is defined twice differently \(int .* then choice"):
        hp.Choice("units", ["a", "b"])


# -- conditions ------------------------------------------------------------------------------------
def test_conditional_scope_returns_none_when_inactive() -> None:
    hp = HyperParameters()
    kind = hp.Choice("kind", ["mlp", "cnn"])
    with hp.conditional_scope("kind", ["cnn"]):
        assert hp.Int("filters", 8, 32, step=8) is None
    with hp.conditional_scope("kind", "mlp"):
        assert hp.Int("units", 8, 32, step=8) == 8
    assert kind == "mlp" and "filters" not in hp.values and hp.values["units"] == 8


def test_parent_keywords_work_like_a_scope() -> None:
    hp = HyperParameters({"kind": "cnn"})
    hp.Choice("kind", ["mlp", "cnn"])
    assert hp.Int("filters", 8, 32, step=8, parent_name="kind", parent_values=["cnn"]) == 8
    assert hp.Boolean("bn", parent_name="kind", parent_values="mlp") is None
    assert hp.Fixed("pool", 2, parent_name="kind", parent_values="mlp") is None


@pytest.mark.parametrize("use", ["scope", "keyword"])
def test_a_scope_on_an_unknown_parent_is_an_error(use: str) -> None:
    hp = HyperParameters()
    hp.Choice("kind", ["mlp", "cnn"])
    with pytest.raises(ConfigError, match=r"conditional scope on unknown parent 'knd'.*did you mean 'kind'"):
        if use == "scope":
            with hp.conditional_scope("knd", ["cnn"]):
                pass
        else:
            hp.Int("filters", 8, 32, parent_name="knd", parent_values=["cnn"])


def _scoped(hp: HyperParameters) -> None:
    kind = hp.Choice("kind", ["mlp", "cnn"])
    with hp.conditional_scope("kind", ["cnn"]):
        hp.Int("filters", 8, 32, step=8)
        with hp.conditional_scope("kind", ["cnn", "mlp"]):
            hp.Boolean("pool")
    if kind == "mlp":
        hp.Fixed("flatten", True)


def test_scopes_become_conditions_and_nested_scopes_intersect() -> None:
    space = space_from_function(_scoped)
    assert space.names == ("kind", "filters", "pool")  # Fixed is a constant, not a decision
    assert dict(space["filters"].when) == {"kind": ("cnn",)}
    assert dict(space["pool"].when) == {"kind": ("cnn",)}
    assert space.size() == 1 + 4 * 2


# -- value kinds and grids -------------------------------------------------------------------------
def _kinds(hp: HyperParameters) -> None:
    hp.Choice("act", ["relu", "tanh"])
    hp.Choice("width", [16, 32, 64])
    hp.Choice("rate", [0, 0.25, 0.5])
    hp.Choice("flag", [True, False])
    hp.Boolean("bn")
    hp.Int("few", 1, 4)
    hp.Int("many", 1, 1000)
    hp.Int("log_step", 32, 512, step=2, sampling="log")
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    hp.Float("drop", 0.0, 0.5, step=0.1)
    hp.Float("mom", 0.5, 0.9)


def test_choices_and_ranges_become_discrete_decisions() -> None:
    space = space_from_function(_kinds, grid=5)
    kinds = {d.name: (d.kind, d.values) for d in space.decisions}
    assert kinds["act"] == ("choice", ("relu", "tanh"))
    assert kinds["width"] == ("int", (16, 32, 64))
    assert kinds["rate"] == ("float", (0.0, 0.25, 0.5))
    assert kinds["flag"] == ("bool", (True, False))
    assert kinds["bn"] == ("bool", (False, True))
    assert kinds["few"] == ("int", (1, 2, 3, 4))
    assert kinds["many"] == ("int", (1, 251, 500, 750, 1000))
    assert kinds["log_step"] == ("int", (32, 64, 128, 256, 512))
    assert kinds["lr"] == ("float", log_grid(1e-4, 1e-2, 5))
    assert kinds["drop"] == ("float", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5))
    assert kinds["mom"] == ("float", (0.5, 0.6, 0.7, 0.8, 0.9))
    assert space.model == f"{__name__}:_kinds"


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        (lambda hp: hp.Int("n", 5, 1), r"Int 'n': need numbers min_value <= max_value, got 5, 1"),
        (lambda hp: hp.Int("n", 1.5, 3), r"Int 'n': need numbers min_value <= max_value, got 1.5, 3"),
        (lambda hp: hp.Int("n", 1, 5, step=0), r"Int 'n': step must be a positive number, got 0"),
        (lambda hp: hp.Float("x", 0, 1, sampling="lg"), r"unknown sampling 'lg'; allowed: linear, log"),
        (lambda hp: hp.Float("x", 0.0, 1.0, sampling="log"), r"Float 'x': log sampling needs min_value > 0"),
        (lambda hp: hp.Choice("c", []), r"Choice 'c': values must be a non-empty list, got \[\]"),
        (lambda hp: hp.Choice("c", "ab"), r"Choice 'c': values must be a non-empty list, got 'ab'"),
        (lambda hp: hp.Choice("c", ["a", 1]), r"Choice 'c': values \['a', 1\] mix types"),
        (lambda hp: hp.Choice("c", [1, 1]), r"Choice 'c': values \[1, 1\] repeat a value"),
        (lambda hp: hp.Int("units/0", 1, 3), r"hyperparameter name 'units/0' must be an identifier"),
    ],
)
def test_bad_definitions_are_rejected_with_the_bad_value(ask, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ask(HyperParameters())


def test_grid_must_allow_two_points() -> None:
    with pytest.raises(ConfigError, match=r"grid must be a whole number >= 2, got 1"):
        HyperParameters(grid=1)


# -- discovery -------------------------------------------------------------------------------------
def _looped(hp: HyperParameters) -> None:
    """The tutorial's structure without Keras, plus a name that vanishes when a flag is off."""
    for i in range(hp.Int("num_layers", 1, 3)):
        hp.Int(f"units_{i}", 32, 512, step=32)
        hp.Choice("activation", ["relu", "tanh"])
    if hp.Boolean("batchnorm", default=True):
        hp.Float("momentum", 0.9, 0.99, step=0.09)
    hp.Float("lr", 1e-4, 1e-2, sampling="log")


def test_discovery_finds_what_loops_and_branches_hide() -> None:
    space = space_from_function(_looped, grid=7)
    assert space.names == (
        "num_layers",
        "units_0",
        "activation",
        "units_1",
        "units_2",
        "batchnorm",
        "momentum",
        "lr",
    )
    conditions = {d.name: dict(d.when) for d in space.decisions if d.when}
    assert conditions == {
        "units_1": {"num_layers": (2, 3)},
        "units_2": {"num_layers": (3,)},
        "momentum": {"batchnorm": (True,)},
    }
    assert space.size() == (16 + 16**2 + 16**3) * 2 * (1 + 2) * 7


def test_discovery_stops_at_max_runs_and_warns() -> None:
    with pytest.warns(UserWarning, match=r"stopped exploring after 2 runs"):
        space = space_from_function(_looped, max_runs=2)
    assert "units_2" not in space.names


def test_a_function_failing_with_its_defaults_is_a_config_error() -> None:
    def broken(hp: HyperParameters) -> None:
        hp.Int("n", 1, 3)
        raise ValueError("bad shapes")

    with pytest.raises(ConfigError, match=r"the model function raised ValueError: bad shapes"):
        space_from_function(broken)


def test_a_function_asking_nothing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"asks no hyperparameter"):
        space_from_function(lambda hp: hp.Fixed("n", 1))


def test_a_probe_that_breaks_the_function_is_skipped() -> None:
    def fragile(hp: HyperParameters) -> None:
        if hp.Int("depth", 1, 3) == 3:
            raise ValueError("too deep for this input")
        hp.Choice("act", ["relu", "tanh"])

    space = space_from_function(fragile)
    assert space.names == ("depth", "act")
    assert dict(space["act"].when) == {"depth": (1, 2)}


# -- loading ---------------------------------------------------------------------------------------
def test_load_function_finds_the_tutorial_function() -> None:
    assert load_function(TUTORIAL).__name__ == "build_model"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.keras_tuner_model", r"must be written module:function \(e.g. examples"),
        (":build_model", r"must be written module:function"),
        (
            "no_such_module_xyz:build_model",
            r"cannot import module 'no_such_module_xyz'.*run from the directory",
        ),
        ("examples.keras_tuner_model:build_modle", r"has no 'build_modle' \(did you mean 'build_model'\?\)"),
        ("examples.keras_tuner_model:keras", r"is a module, not a function"),
        ("rlnas.settings.bounds:INT_LIMIT", r"is an int, not a function"),
    ],
)
def test_load_function_errors_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_function(spec)


def test_only_functions_a_fresh_process_can_import_count_as_importable() -> None:
    from examples.keras_tuner_model import build_model

    def nested(hp):
        return hp.Int("units", 1, 2)

    assert importable(build_model) and function_name(build_model) == TUTORIAL
    assert not importable(nested) and not importable(lambda hp: hp.Int("a", 1, 2))
    main = types.FunctionType(nested.__code__, {"__name__": "__main__"}, "build")
    main.__qualname__ = "build"  # a script's top-level function: a spawned worker re-runs __main__
    assert main.__module__ == "__main__" and not importable(main)


def test_a_script_run_with_dash_m_names_its_functions_by_module(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "fm_script.py").write_text(
        "from rlnas.space.discovery import function_name, importable\n"
        "def build(hp):\n    return hp.Int('a', 1, 2)\n"
        "if __name__ == '__main__':\n    print(function_name(build), importable(build))\n"
    )
    run = [sys.executable, "-m", "fm_script"], [sys.executable, "fm_script.py"]
    out = [subprocess.run(r, capture_output=True, text=True, cwd=tmp_path, check=True).stdout for r in run]
    assert out == ["fm_script:build True\n", "__main__:build False\n"]


def test_a_nested_function_is_found_by_name_in_the_process_that_discovered_it() -> None:
    def nested_model(hp):
        return hp.Int("units", 1, 2)

    name = function_name(nested_model)
    assert "<locals>" in name
    with pytest.raises(ConfigError, match=r"has no 'test_a_nested"):
        load_function(name)
    assert space_from_function(nested_model).model == name
    assert load_function(name) is nested_model


# -- labels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("loss", "y", "expected"),
    [
        ("categorical_crossentropy", np.array([0, 2]), np.array([[1, 0, 0], [0, 0, 1]])),
        ("sparse_categorical_crossentropy", np.array([[0, 1, 0], [1, 0, 0]]), np.array([1, 0])),
        ("sparse_categorical_crossentropy", np.array([1, 2]), np.array([1, 2])),
        ("categorical_crossentropy", np.array([[0, 1, 0]]), np.array([[0, 1, 0]])),
        ("mse", np.array([1, 2]), np.array([1, 2])),
    ],
)
def test_fit_labels_matches_the_loss(loss: str, y: np.ndarray, expected: np.ndarray) -> None:
    out = fit_labels(types.SimpleNamespace(loss=loss), y, 3)
    np.testing.assert_array_equal(out, expected)


def test_one_hot_labels_are_as_wide_as_the_models_output() -> None:
    model = types.SimpleNamespace(loss="categorical_crossentropy", output_shape=(None, 10))
    assert fit_labels(model, np.array([0, 2]), 3).shape == (2, 10)


# -- the tutorial function, with Keras -------------------------------------------------------------
def test_the_tutorial_function_declares_the_default_space() -> None:
    space = space_from_function(TUTORIAL, grid=7)
    reference = default_space(lr_grid=7)
    assert space.model == TUTORIAL
    assert sorted(space.decisions, key=lambda d: d.name) == sorted(reference.decisions, key=lambda d: d.name)
    assert space.size() == reference.size() == 122_304


def test_build_from_function_replays_an_architecture_with_the_users_compile() -> None:
    import keras

    arch = {"num_layers": 2, "units_0": 64, "activation": "tanh", "units_1": 96, "dropout": True, "lr": 0.01}
    model = build_from_function(TUTORIAL, arch)
    model.build((None, 8, 8))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [64, 96, 10]
    assert dense[0].activation.__name__ == "tanh"
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert model.loss == "categorical_crossentropy"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert fit_labels(model, np.array([3]), 10).shape == (1, 10)
