"""Tests for rlnas.config: TOML loading, SearchConfig validation and every ConfigError message."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from rlnas.config import FIELD_TYPES, SearchConfig, load_config, make_config, read_toml, space_from_dict
from rlnas.data import DataSpec
from rlnas.errors import ConfigError
from rlnas.settings import PLAIN_REINFORCE, SETTINGS, EvolutionSettings
from rlnas.space import Decision, SearchSpace, default_space


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_decision(**decision) -> SearchSpace:
    return space_from_dict({"decisions": [decision]})


# -- SearchConfig ----------------------------------------------------------------------------------
def test_defaults_are_valid_and_frozen() -> None:
    cfg = SearchConfig()
    assert cfg.trials == 96
    assert cfg.archs_per_update == 4
    own = cfg.reinforce
    assert (own.controller, own.controller_lr, own.policy_lr) == ("lstm", None, 0.005)
    assert cfg.reinforce.baseline_decay == 0.8
    assert cfg.reinforce.entropy_weight == 1e-3
    assert cfg.reinforce.grad_clip == 5.0
    assert cfg.reinforce.tanh_constant == 2.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trials = 3  # type: ignore[misc]


def test_every_setting_has_a_help_line_and_one_flat_name() -> None:
    own = [f for kind in SETTINGS.values() for f in dataclasses.fields(kind)]
    for f in (*dataclasses.fields(SearchConfig), *own):
        assert f.metadata.get("help"), f.name
    shared = {f.name for f in dataclasses.fields(SearchConfig)} - set(SETTINGS)
    assert len(own) == len({f.name for f in own})  # a flat name finds its one owner
    assert set(FIELD_TYPES) == shared | {f.name for f in own}
    assert not shared & {f.name for f in own}


def test_to_dict_round_trips_through_make_config() -> None:
    cfg = make_config(trials=5, epochs=1, tanh_constant=2.5, max_minutes=1.5, dataset="fashion_mnist")
    assert make_config(cfg.to_dict()) == cfg
    assert cfg.to_dict()["reinforce"]["tanh_constant"] == 2.5  # in its strategy's table


def test_make_config_sets_values() -> None:
    cfg = make_config({"trials": 3, "controller_lr": 0.01, "seed": 7})
    assert (cfg.trials, cfg.reinforce.controller_lr, cfg.seed) == (3, 0.01, 7)
    assert make_config({}) == SearchConfig()


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("trails", "trials"),
        ("epoch", "epochs"),
        ("batchsize", "batch_size"),
        ("controler_lr", "controller_lr"),
    ],
)
def test_make_config_rejects_unknown_keys_with_did_you_mean(key: str, suggestion: str) -> None:
    msg = rf"^unknown setting '{key}' in \[search\] \(did you mean '{suggestion}'\?\); run `rlnas search"
    with pytest.raises(ConfigError, match=msg):
        make_config({"trials": 3, key: 1})


def test_make_config_rejects_unknown_keys_without_a_close_match() -> None:
    with pytest.raises(
        ConfigError, match=r"^unknown setting 'zzz' in \[search\]; run `rlnas search --help` for"
    ):
        make_config({"zzz": 1})


def test_data_spec_carries_the_fractions() -> None:
    cfg = SearchConfig(
        dataset="mnist", data_dir="/data", val_fraction=0.1, test_fraction=0.3, train_fraction=0.5
    )
    spec = cfg.data_spec()
    assert spec == DataSpec(
        name="mnist", data_dir="/data", val_fraction=0.1, test_fraction=0.3, train_fraction=0.5
    )
    assert SearchConfig().data_spec() == DataSpec()


@pytest.mark.parametrize("name", ["trials", "epochs", "batch_size", "archs_per_update", "lstm_units"])
@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_integers(name: str, bad: int) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be positive, got {bad}$"):
        make_config(**{name: bad})


@pytest.mark.parametrize(
    "name", ["trials", "epochs", "batch_size", "lstm_layers", "children_per_worker", "replay_epochs"]
)
@pytest.mark.parametrize("bad", [2.5, "3", True, None])
def test_integers_must_be_whole_numbers(name: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be a whole number, got {re.escape(repr(bad))}$"):
        make_config(**{name: bad})


@pytest.mark.parametrize("name", ["controller_lr", "temperature", "init_range", "grad_clip"])
@pytest.mark.parametrize("bad", [0, -0.5, 0.0, math.inf, math.nan])
def test_non_positive_floats(name: str, bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be positive, got {re.escape(repr(bad))}$"):
        make_config(**{name: bad})


def test_controller_and_its_default_step() -> None:
    assert make_config(controller="factorized").reinforce.policy_lr == 0.02
    assert make_config(controller="factorized", controller_lr=0.01).reinforce.policy_lr == 0.01
    assert make_config(controller_lr=0.02).reinforce.policy_lr == 0.02
    with pytest.raises(
        ConfigError, match=r"^unknown controller 'factorised'; allowed: lstm, factorized.*factorized"
    ):
        make_config(controller="factorised")


@pytest.mark.parametrize("name", ["controller_lr", "temperature"])
def test_floats_must_be_numbers(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be a number, got '0.1'$"):
        make_config(**{name: "0.1"})


def test_max_minutes_is_optional_and_positive() -> None:
    assert SearchConfig(max_minutes=2).max_minutes == 2
    assert SearchConfig(max_minutes=None).max_minutes is None
    with pytest.raises(ConfigError, match=r"^max_minutes must be positive, got 0$"):
        SearchConfig(max_minutes=0)


def test_tanh_constant_zero_or_none_turns_it_off() -> None:
    assert make_config(tanh_constant=0).reinforce.tanh_constant == 0
    assert make_config(tanh_constant=None).reinforce.tanh_constant is None
    with pytest.raises(ConfigError, match=r"^tanh_constant must be >= 0 \(0 turns it off\), got -1$"):
        make_config(tanh_constant=-1)


@pytest.mark.parametrize("bad", [1, 1.0, 1.5, -0.01, math.nan])
def test_baseline_decay_out_of_range(bad: float) -> None:
    with pytest.raises(
        ConfigError, match=rf"^baseline_decay must be in \[0, 1\), got {re.escape(repr(bad))}$"
    ):
        make_config(baseline_decay=bad)


def test_baseline_decay_bounds() -> None:
    assert make_config(baseline_decay=0).reinforce.baseline_decay == 0
    assert make_config(baseline_decay=0.999).reinforce.baseline_decay == 0.999


@pytest.mark.parametrize("bad", [-1e-3, math.nan])
def test_entropy_weight_must_be_non_negative(bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"^entropy_weight must be >= 0, got {re.escape(repr(bad))}$"):
        make_config(entropy_weight=bad)
    assert make_config(entropy_weight=0).reinforce.entropy_weight == 0


def test_replay_schedule_is_cosine_by_default_and_checked() -> None:
    assert SearchConfig().replay_schedule == "cosine"
    assert SearchConfig(replay_schedule="constant").replay_schedule == "constant"
    with pytest.raises(
        ConfigError,
        match=r"^unknown replay_schedule 'cosin'; allowed: cosine, constant \(did you mean 'cosine'\?\)$",
    ):
        SearchConfig(replay_schedule="cosin")


def test_replay_top_must_be_non_negative() -> None:
    with pytest.raises(ConfigError, match=r"^replay_top must be >= 0, got -1$"):
        SearchConfig(replay_top=-1)
    assert SearchConfig(replay_top=0).replay_top == 0


@pytest.mark.parametrize("bad", [0, -0.1, 1.01, math.nan])
def test_train_fraction_range(bad: float) -> None:
    with pytest.raises(
        ConfigError, match=rf"^train_fraction must be in \(0, 1\], got {re.escape(repr(bad))}$"
    ):
        SearchConfig(train_fraction=bad)
    assert SearchConfig(train_fraction=1).train_fraction == 1


# -- TOML files ------------------------------------------------------------------------------------
def test_search_table_values_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[search]
trials = 12
epochs = 1
batch_size = 32
controller_lr = 0.005
dataset = "fashion_mnist"
tanh_constant = 2.5
baseline_decay = 0.9
""",
    )
    cfg, space, raw = load_config(path)
    assert cfg == make_config(
        trials=12,
        epochs=1,
        batch_size=32,
        controller_lr=0.005,
        dataset="fashion_mnist",
        tanh_constant=2.5,
        baseline_decay=0.9,
    )
    assert space == default_space()
    assert raw == {
        "trials": 12,
        "epochs": 1,
        "batch_size": 32,
        "controller_lr": 0.005,
        "dataset": "fashion_mnist",
        "tanh_constant": 2.5,
        "baseline_decay": 0.9,
    }


def test_no_file_and_empty_file_give_defaults(tmp_path: Path) -> None:
    assert load_config(None) == (SearchConfig(), default_space(), {})
    assert load_config(write(tmp_path, "")) == (SearchConfig(), default_space(), {})
    assert read_toml(write(tmp_path, "[search]\ntrials = 2\n", "b.toml")) == {"search": {"trials": 2}}


def test_load_config_accepts_a_str_path(tmp_path: Path) -> None:
    cfg, _, _ = load_config(str(write(tmp_path, "[search]\nseed = 3\n")))
    assert cfg.seed == 3


def test_search_values_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^trials must be positive, got 0$"):
        load_config(write(tmp_path, "[search]\ntrials = 0\n"))
    with pytest.raises(ConfigError, match=r"^epochs must be a whole number, got 1.5$"):
        load_config(write(tmp_path, "[search]\nepochs = 1.5\n"))
    with pytest.raises(
        ConfigError, match=r"^unknown setting 'trails' in \[search\] \(did you mean 'trials'\?\)"
    ):
        load_config(write(tmp_path, "[search]\ntrails = 3\n"))


def test_unknown_table_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "[serach]\ntrials = 3\n")
    msg = (
        rf"^unknown table 'serach' in {re.escape(repr(str(path)))}; "
        r"allowed: \[search\], \[space\] \(did you mean 'search'\?\)$"
    )
    with pytest.raises(ConfigError, match=msg):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^unknown table 'zzz' in .*; allowed: \[search\], \[space\]$"):
        load_config(write(tmp_path, "zzz = 1\n"))


def test_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[search\ntrials = \n")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(repr(str(path)))} is not valid TOML: "):
        load_config(path)


def test_binary_garbage_is_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "garbage.toml"
    path.write_bytes(b"\xff\xfe\x00 not toml")
    with pytest.raises(ConfigError, match=r"is not valid TOML: "):
        read_toml(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(repr(str(path)))} does not exist$"):
        load_config(path)


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        read_toml(tmp_path)


def test_search_and_space_must_be_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[search\] must be a table$"):
        load_config(write(tmp_path, "search = 5\n"))
    with pytest.raises(ConfigError, match=r"^\[space\] must be a table$"):
        load_config(write(tmp_path, "space = 5\n"))


# -- [space] ---------------------------------------------------------------------------------------
def test_space_table_without_decisions_is_the_default_space() -> None:
    assert space_from_dict({}) == default_space()
    assert space_from_dict({"model": "mlp", "lr_grid": 3}) == default_space(lr_grid=3)


def test_space_lr_grid_must_be_a_whole_number() -> None:
    with pytest.raises(
        ConfigError, match=r"^\[space\] lr_grid must be a whole number of grid points, got 'x'$"
    ):
        space_from_dict({"lr_grid": "x"})
    with pytest.raises(ConfigError, match=r"^log grid needs 0 < low < high and num >= 2, got"):
        space_from_dict({"lr_grid": 1})


def test_other_models_need_decisions() -> None:
    msg = r"^\[space\] model 'cnn' needs its decisions listed in \[\[space.decisions\]\]$"
    with pytest.raises(ConfigError, match=msg):
        space_from_dict({"model": "cnn"})
    space = space_from_dict({"model": "cnn", "decisions": [{"name": "filters", "values": [8, 16]}]})
    assert space.model == "cnn"


@pytest.mark.parametrize(
    ("key", "suggestion"), [("decision", "decisions"), ("modle", "model"), ("lrgrid", "lr_grid")]
)
def test_unknown_key_in_space(key: str, suggestion: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^unknown key '{key}' in \[space\] \(did you mean '{suggestion}'\?\)$"
    ):
        space_from_dict({key: 1})


def test_unknown_key_in_space_from_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[space]\nmodel = 'mlp'\nsize = 3\n")
    with pytest.raises(ConfigError, match=r"^unknown key 'size' in \[space\]$"):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("valeus", "values"), ("when_", "when"), ("kinds", "kind"), ("log_rang", "log_range")],
)
def test_unknown_key_in_a_decision(key: str, suggestion: str) -> None:
    msg = rf"^decision #2: unknown key '{key}' \(did you mean '{suggestion}'\?\)$"
    with pytest.raises(ConfigError, match=msg):
        space_from_dict({"decisions": [{"name": "a", "values": [1]}, {"name": "b", "values": [1], key: 1}]})


def test_unknown_key_in_a_decision_from_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[[space.decisions]]\nname = "a"\nvalues = [1, 2]\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"^decision #1: unknown key 'colour'$"):
        load_config(path)


def test_decisions_must_be_an_array_of_tables() -> None:
    with pytest.raises(
        ConfigError, match=r"^\[space\] decisions must be an array of tables \(\[\[space.decisions\]\]\)$"
    ):
        space_from_dict({"decisions": {"name": "a"}})
    with pytest.raises(ConfigError, match=r"^decision #2 must be a table, got 5$"):
        space_from_dict({"decisions": [{"name": "a", "values": [1]}, 5]})


def test_empty_decision_list() -> None:
    with pytest.raises(ConfigError, match=r"^the search space has no decisions; declare at least one$"):
        space_from_dict({"decisions": []})


@pytest.mark.parametrize("decision", [{"values": [1]}, {"name": "", "values": [1]}])
def test_decision_needs_a_name(decision: dict) -> None:
    with pytest.raises(ConfigError, match=r"^decision #1 has no name$"):
        space_from_dict({"decisions": [decision]})


@pytest.mark.parametrize(
    "decision",
    [
        {"name": "u", "values": [1, 2], "range": [1, 2]},
        {"name": "u", "range": [1, 2], "log_range": [1e-3, 1e-2, 3]},
        {"name": "u", "values": [1.0], "log_range": [1e-3, 1e-2, 3]},
        {"name": "u"},
        {"name": "u", "kind": "int", "when": {}},
    ],
)
def test_exactly_one_of_values_range_log_range(decision: dict) -> None:
    with pytest.raises(ConfigError, match=r"^decision 'u': give exactly one of values, range, log_range$"):
        space_from_dict({"decisions": [decision]})


def test_range_expands_inclusively() -> None:
    assert one_decision(name="u", range=[32, 512, 32]).decisions[0].values == tuple(range(32, 513, 32))
    assert one_decision(name="u", range=[1, 4]).decisions[0].values == (1, 2, 3, 4)
    assert one_decision(name="u", range=[5, 5]).decisions[0].values == (5,)
    assert one_decision(name="u", range=[1, 4]).decisions[0].kind == "int"


@pytest.mark.parametrize("bad", [[32], [1, 2, 3, 4], [1.0, 4], [1, 4.0], "1..4", 5, [1, True], [[1], 2]])
def test_range_malformed(bad: object) -> None:
    msg = rf"^decision 'u': range is \[first, last\] or \[first, last, step\], got {re.escape(repr(bad))}$"
    with pytest.raises(ConfigError, match=msg):
        one_decision(name="u", range=bad)


@pytest.mark.parametrize("bad", [[512, 32, 32], [1, 4, 0], [1, 4, -1], [5, 4]])
def test_range_empty(bad: list[int]) -> None:
    msg = rf"^decision 'u': range {re.escape(repr(bad))} is empty; need first <= last, step > 0$"
    with pytest.raises(ConfigError, match=msg):
        one_decision(name="u", range=bad)


def test_log_range_expands() -> None:
    d = one_decision(name="lr", log_range=[1e-4, 1e-2, 7]).decisions[0]
    assert d.values == default_space()["lr"].values
    assert d.kind == "float"
    assert one_decision(name="lr", log_range=[1, 100, 3]).decisions[0].values == (1.0, 10.0, 100.0)


@pytest.mark.parametrize(
    "bad",
    [[1e-4, 1e-2], [1e-4, 1e-2, 7, 8], "1e-4..1e-2", 7, ["a", 1e-2, 7], [1e-4, [1], 7], [1e-4, 1e-2, 7.5]],
)
def test_log_range_malformed(bad: object) -> None:
    msg = rf"^decision 'lr': log_range is \[low, high, count\], got {re.escape(repr(bad))}$"
    with pytest.raises(ConfigError, match=msg):
        one_decision(name="lr", log_range=bad)


@pytest.mark.parametrize("bad", [[1e-2, 1e-4, 7], [0, 1e-2, 7], [-1, 1, 3], [1e-4, 1e-2, 1]])
def test_log_range_out_of_order_or_too_short(bad: list) -> None:
    with pytest.raises(ConfigError, match=r"^log grid needs 0 < low < high and num >= 2, got "):
        one_decision(name="lr", log_range=bad)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2], "int"),
        ([0.1, 0.2], "float"),
        ([0, 0.25, 0.5], "float"),
        ([True, False], "bool"),
        (["relu", "tanh"], "choice"),
    ],
)
def test_kind_is_guessed_from_values(values: list, kind: str) -> None:
    assert one_decision(name="d", values=values).decisions[0].kind == kind


def test_explicit_kind_wins_and_is_checked() -> None:
    assert one_decision(name="d", kind="float", values=[1, 2]).decisions[0].values == (1.0, 2.0)
    with pytest.raises(ConfigError, match=r"^decision 'd': value 'a' is not of kind 'int'$"):
        one_decision(name="d", kind="int", values=[1, "a"])
    with pytest.raises(ConfigError, match=r"^decision 'd': value 1 is not of kind 'choice'$"):
        one_decision(name="d", values=["a", 1])
    with pytest.raises(
        ConfigError, match=r"unknown kind 'integr'; allowed: int, float, choice, bool \(did you mean 'int"
    ):
        one_decision(name="d", kind="integr", values=[1])


def test_decision_errors_come_through_from_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[[space.decisions]]\nname = "u"\nkind = "int"\nvalues = [1, 1]\n')
    with pytest.raises(ConfigError, match=r"^decision 'u': value 1 appears twice$"):
        load_config(path)
    path = write(tmp_path, '[[space.decisions]]\nname = "u"\nkind = "int"\nvalues = []\n')
    with pytest.raises(ConfigError, match=r"^decision 'u' has no values; give at least one$"):
        load_config(path)


def test_when_must_be_a_table() -> None:
    msg = r"^decision 'u': when must be a table like \{ num_layers = \[2, 3\] \}$"
    with pytest.raises(ConfigError, match=msg):
        space_from_dict(
            {"decisions": [{"name": "n", "values": [1, 2]}, {"name": "u", "values": [8], "when": ["n"]}]}
        )


def test_when_in_toml_is_checked_against_earlier_decisions(tmp_path: Path) -> None:
    text = """
[[space.decisions]]
name = "num_layers"
values = [1, 2]
[[space.decisions]]
name = "units_1"
range = [8, 64, 8]
when = { num_layer = [2] }
"""
    with pytest.raises(
        ConfigError, match=r"which is no decision of the space \(did you mean 'num_layers'\?\)"
    ):
        load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=re.escape("num_layers=3 is not one of [1, 2]")):
        load_config(write(tmp_path, text.replace("num_layer = [2]", "num_layers = [3]")))


def test_space_from_dict_builds_conditions() -> None:
    space = space_from_dict(
        {
            "decisions": [
                {"name": "opt", "values": ["adam", "sgd"]},
                {"name": "momentum", "values": [0.0, 0.9], "when": {"opt": "sgd"}},
                {"name": "nesterov", "values": [False, True], "when": {"momentum": [0.9]}},
            ]
        }
    )
    assert space == SearchSpace(
        [
            Decision("opt", ("adam", "sgd")),
            Decision("momentum", (0.0, 0.9), "float", {"opt": ("sgd",)}),
            Decision("nesterov", (False, True), "bool", {"momentum": (0.9,)}),
        ]
    )
    assert space.size() == 1 + 1 + 2


def test_split_fractions_are_checked_when_the_config_is_built():
    from rlnas.errors import DataError

    with pytest.raises(DataError, match="val_fraction"):
        SearchConfig(val_fraction=0.0)
    with pytest.raises(DataError, match="test_fraction"):
        SearchConfig(val_fraction=0.5, test_fraction=0.6)


def test_child_logs_is_a_boolean_switch() -> None:
    assert SearchConfig(child_logs=True).child_logs is True
    with pytest.raises(ConfigError, match="child_logs must be true or false, got 'yes'"):
        SearchConfig(child_logs="yes")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "evolutoin"}, r"unknown strategy 'evolutoin'; allowed: reinforce, random, evolution"),
        ({"workers": 0}, r"^workers must be positive, got 0$"),
        ({"workers": 1.5}, r"^workers must be a whole number, got 1.5$"),
        ({"population_size": 0}, r"^population_size must be positive"),
        ({"tournament_size": -2}, r"^tournament_size must be positive"),
        ({"early_stopping": 0}, r"^early_stopping must be positive"),
        ({"executor": "rey"}, r"unknown executor 'rey'; allowed: local, ray \(did you mean 'ray'\?\)"),
        ({"cpus_per_child": 0}, r"^cpus_per_child must be positive"),
        ({"gpus_per_child": -1}, r"^gpus_per_child must be >= 0"),
        ({"skip_weight": -0.1}, r"^skip_weight must be >= 0"),
        ({"skip_target": 1.0}, r"^skip_target must be in \(0, 1\)"),
        (
            {"objective": "val_acc:upward"},
            r"objective 'val_acc:upward': direction 'upward' must be min or max",
        ),
    ],
)
def test_strategy_worker_executor_and_objective_settings_are_validated(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**settings)


@pytest.mark.parametrize("model", ["conv", "skip", "cell"])
def test_a_model_without_decisions_gets_its_standard_space(model) -> None:
    from rlnas import space as spaces

    assert space_from_dict({"model": model}) == getattr(spaces, f"{model}_space")()


def test_every_rule_names_a_field_in_field_order() -> None:
    from rlnas.config import _RULES

    names = [f.name for f in dataclasses.fields(SearchConfig)]
    assert [n for n in names if n in _RULES] == list(_RULES)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train_fraction": "half"}, r"^train_fraction must be in \(0, 1\], got 'half'$"),
        ({"skip_target": None}, r"^skip_target must be in \(0, 1\), got None$"),
        ({"pipeline": 2.0}, r"^pipeline must be 1 \(synchronous\) or 2"),
        ({"importance_clip": True}, r"^importance_clip must be >= 0 \(0 turns the weights off\), got True$"),
    ],
)
def test_a_value_of_the_wrong_type_gets_its_rule_not_a_type_error(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**settings)


# -- the TOML space front end and the model registry ------------------------------------------------
def test_the_space_parser_needs_the_registry_only_for_a_model_named_alone() -> None:
    from rlnas.models import MODELS, standard_space
    from rlnas.space import toml as space_toml

    stored = default_space().to_dict()
    assert space_toml.space_from_dict(stored) == default_space()
    with pytest.raises(ConfigError, match=r"^\[space\] model 'conv' needs its decisions listed"):
        space_toml.space_from_dict({"model": "conv"})
    assert (
        space_toml.space_from_dict({"model": "conv"}, standard_space=standard_space) == MODELS["conv"].space()
    )
    assert standard_space("mlp", 3) == default_space(lr_grid=3)
    assert standard_space("cnn") is None


# -- resolve: file, flags, a resumed run -------------------------------------------------------------
def test_resolve_flags_win_over_the_file_which_wins_over_the_defaults(tmp_path: Path) -> None:
    from rlnas.resolve import resolve

    path = write(tmp_path, "[search]\ntrials = 12\nepochs = 3\n[space]\nmodel = 'mlp'\nlr_grid = 3\n")
    config, space = resolve(path, {"epochs": 1})
    assert (config.trials, config.epochs, config.batch_size) == (12, 1, 128)
    assert space == default_space(lr_grid=3)
    assert resolve() == (SearchConfig(), default_space())
    assert resolve(flags={"tanh_constant": None}).config.reinforce.tanh_constant is None  # None is a value


def test_resolve_reports_the_files_mistake_even_when_a_flag_overrides_it(tmp_path: Path) -> None:
    from rlnas.resolve import resolve

    with pytest.raises(ConfigError, match=r"^trials must be positive, got 0$"):
        resolve(write(tmp_path, "[search]\ntrials = 0\n"), {"trials": 5})
    with pytest.raises(ConfigError, match=r"unknown setting 'trails' in \[search\].*'trials'"):
        resolve(flags={"trails": 5})


def test_resolve_a_model_function_and_a_space_table_conflict(tmp_path: Path) -> None:
    from rlnas.resolve import resolve

    path = write(tmp_path, "[space]\nmodel = 'mlp'\n")
    called = []
    with pytest.raises(
        ConfigError, match=r"^--model pkg:build declares the search space; remove the \[space\]"
    ):
        resolve(path, model="pkg:build", before_model=lambda: called.append(1))
    assert not called  # refused before anything imports Keras


def test_resolve_a_resumed_run_may_change_only_the_resumable_settings() -> None:
    from rlnas.resolve import RESUMABLE, resolve

    stored = {"search": SearchConfig(trials=8, epochs=2).to_dict(), "space": default_space().to_dict()}
    config, space = resolve(flags={"trials": 20, "workers": 2, "epochs": 2}, resume_from=stored, run="runs/r")
    assert (config.trials, config.workers, config.epochs) == (20, 2, 2) and space == default_space()
    assert {"trials", "max_minutes", "workers", "executor", "replay_top"} <= set(RESUMABLE)
    with pytest.raises(
        ConfigError, match=r"^--resume cannot change epochs \(the run used 2\); only trials, "
    ):
        resolve(flags={"epochs": 3}, resume_from=stored)
    with pytest.raises(ConfigError, match=r"keeps its own config and space"):
        resolve("x.toml", resume_from=stored)


def test_resolve_a_stored_config_from_an_incompatible_rlnas_is_one_line() -> None:
    from rlnas.resolve import resolve

    stored = {"search": {"warmup_epochs": 3}, "space": default_space().to_dict()}
    with pytest.raises(
        ConfigError, match=r"^run 'runs/old' was made by an incompatible rlnas: .*warmup_epochs"
    ):
        resolve(resume_from=stored, run="runs/old")
    with pytest.raises(ConfigError, match=r"incompatible rlnas"):
        resolve(resume_from={"search": {}}, run="runs/old")
    # a run from before a setting existed gets its default
    assert resolve(resume_from={"search": {}, "space": default_space().to_dict()}).config == SearchConfig()


def test_a_minimised_objective_needs_a_failed_reward_below_zero() -> None:
    """reward = -fit_seconds <= 0: the default failed reward 0 would make every failure the best child.
    A validation loss or error gets one derived from the data instead (tests/test_task.py)."""
    from rlnas.resolve import resolve

    with pytest.raises(ConfigError, match=r"objective fit_seconds is minimised .* failed child's reward 0"):
        resolve(flags={"objective": "fit_seconds"})
    assert resolve(flags={"objective": "fit_seconds", "failed_reward": -10.0}).config.failed_reward == -10.0
    assert resolve(flags={"objective": "val_loss"}).config.failed_reward == 0.0  # derived from the data later
    assert resolve(flags={"objective": "mnas:target=100000"}).config.failed_reward == 0.0  # maximised


# -- each strategy's own table ---------------------------------------------------------------------
def test_a_strategy_table_and_flat_keys_make_the_same_config(tmp_path: Path) -> None:
    table = write(
        tmp_path, "[search]\ntrials = 8\n[search.reinforce]\nmodel_steps = 0\ncontroller = 'factorized'\n"
    )
    flat = tmp_path / "flat.toml"
    flat.write_text("[search]\ntrials = 8\nmodel_steps = 0\ncontroller = 'factorized'\n")
    config = load_config(table)[0]
    assert config == load_config(flat)[0]
    assert (config.reinforce.model_steps, config.reinforce.controller, config.trials) == (0, "factorized", 8)
    evolution = load_config(write(tmp_path, "[search.evolution]\npopulation_size = 7\n"))[0].evolution
    assert evolution == EvolutionSettings(population_size=7)


def test_a_flag_overrides_the_files_strategy_table(tmp_path: Path) -> None:
    from rlnas.resolve import resolve

    path = write(tmp_path, "[search.reinforce]\nmodel_steps = 3\nlstm_units = 8\n")
    config = resolve(path, {"model_steps": 0}).config
    assert (config.reinforce.model_steps, config.reinforce.lstm_units) == (0, 8)


WRONG_TABLES = [
    ("[search.evolution]\nmodel_steps = 0\n", r"^model_steps is a setting of reinforce, not of evolution: "
     r"move it to \[search.reinforce\]$"),
    ("[search.reinforce]\nmodel_step = 0\n", r"^unknown setting 'model_step' in \[search.reinforce\] "
     r"\(did you mean 'model_steps'\?\)$"),
    ("[search.reinforce]\ntrials = 3\n", r"^trials is shared by every strategy: move it from "
     r"\[search.reinforce\] to \[search\]$"),
    ("[search.tpe]\nseed = 3\n", r"^seed is shared by every strategy"),
    ("[search.tpe]\nbandwidth = 3\n", r"^unknown setting 'bandwidth' in \[search.tpe\]; tpe has no "
     r"settings of its own$"),
    ("[search.reinforse]\nmodel_steps = 0\n", r"^unknown setting 'reinforse' in \[search\] "
     r"\(did you mean 'reinforce'\?\)"),
    ("[search]\nmodel_steps = 1\n[search.reinforce]\nmodel_steps = 2\n",
     r"^model_steps is given twice, in \[search\] and in \[search.reinforce\]; keep one$"),
    ("[search]\nreinforce = 3\n", r"^\[search.reinforce\] must be a table of reinforce's settings, "
     r"got 3$"),
    ("[search.reinforce]\nmodel_steps = -1\n", r"^model_steps must be a whole number >= 0 "
     r"\(0: no model\), got -1$"),
]  # fmt: skip


@pytest.mark.parametrize("text, message", WRONG_TABLES)
def test_a_strategy_table_with_a_wrong_key_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_a_run_stored_with_flat_settings_still_resumes() -> None:
    """config.json written before the strategies had tables: every setting flat in "search"."""
    from rlnas.resolve import resolve

    nested = make_config(trials=8, model_steps=0, population_size=9).to_dict()
    flat = {k: v for k, v in nested.items() if k not in SETTINGS}
    for table in SETTINGS:
        flat |= nested[table]
    stored = {"search": flat, "space": default_space().to_dict()}
    config = resolve(flags={"trials": 12}, resume_from=stored).config
    assert config == make_config(trials=12, model_steps=0, population_size=9)
    with pytest.raises(ConfigError, match=r"^--resume cannot change model_steps \(the run used 0\)"):
        resolve(flags={"model_steps": 5}, resume_from=stored)


def test_with_settings_changes_a_strategys_own_and_shared_settings_alike() -> None:
    config = make_config(seed=2).with_settings(pqt_k=2, trials=4, evolution={"tournament_size": 3})
    assert (config.reinforce.pqt_k, config.trials, config.evolution.tournament_size, config.seed) == (
        2,
        4,
        3,
        2,
    )
    assert config.setting("pqt_k") == 2 and config.setting("trials") == 4
    with pytest.raises(ConfigError, match=r"^pqt_k must be a whole number >= 0 \(0: off\), got -1$"):
        config.with_settings(pqt_k=-1)


def test_a_tournament_larger_than_its_population_is_an_error_only_for_evolution() -> None:
    with pytest.raises(ConfigError, match=r"^tournament_size \(6\) must be at most population_size \(5\)"):
        make_config(strategy="evolution", population_size=5, tournament_size=6)
    assert make_config(strategy="random", population_size=5, tournament_size=6).evolution.tournament_size == 6


def test_to_text_lists_the_shared_settings_then_each_strategys_table() -> None:
    lines = make_config(trials=5, model_steps=0).to_text().splitlines()
    assert "trials = 5" in lines and lines.index("[search.reinforce]") < lines.index("model_steps = 0")
    assert lines.index("seed = 0") < lines.index("[search.reinforce]") < lines.index("[search.evolution]")


def test_plain_reinforce_is_zoph_and_les_update_alone() -> None:
    plain = make_config(**PLAIN_REINFORCE).reinforce
    assert not plain.uses_history  # no reward model, novelty filter, mixing or risk-seeking
    assert make_config().reinforce.uses_history  # the default: the controller plus the reward model
