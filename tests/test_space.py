"""Tests for rlnas.space: sizes by brute force, encode/decode round trips, keys, every ConfigError."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

from rlnas.config import space_from_dict
from rlnas.errors import ConfigError
from rlnas.space import INACTIVE, Decision, SearchSpace, default_space, log_grid

UNITS = tuple(range(32, 513, 32))
LR_GRID = (1e-4, 2.15e-4, 4.64e-4, 1e-3, 2.15e-3, 4.64e-3, 1e-2)


def layered_space() -> SearchSpace:
    """num_layers with per-layer widths that exist only for deep enough networks."""
    return SearchSpace(
        [
            Decision("n", (1, 2, 3), "int"),
            Decision("u0", (8, 16), "int"),
            Decision("u1", (8, 16, 32), "int", {"n": (2, 3)}),
            Decision("u2", (8, 16), "int", {"n": (3,)}),
            Decision("act", ("relu", "tanh")),
        ]
    )


def chained_space() -> SearchSpace:
    """A condition on a conditional decision, a bool parent and a decision with two parents."""
    return SearchSpace(
        [
            Decision("opt", ("adam", "sgd", "rmsprop")),
            Decision("momentum", (0.0, 0.5, 0.9), "float", {"opt": ("sgd", "rmsprop")}),
            Decision("nesterov", (False, True), "bool", {"momentum": (0.5, 0.9)}),
            Decision("clip", (False, True), "bool"),
            Decision("clip_norm", (1.0, 5.0), "float", {"clip": True}),
            Decision("decay", ("none", "cosine"), "choice", {"opt": ("sgd",), "clip": (True,)}),
        ]
    )


def flat_space() -> SearchSpace:
    return SearchSpace([Decision("a", (1, 2), "int"), Decision("b", ("x", "y", "z"))])


SMALL_SPACES = {
    "layered": layered_space,
    "chained": chained_space,
    "flat": flat_space,
    "default_2_layers": lambda: default_space(lr_grid=2, max_layers=2),
    "default_1_layer": lambda: default_space(lr_grid=3, max_layers=1),
}


def brute_force_size(space: SearchSpace) -> int:
    """Distinct canonical forms over every token tuple: the definition of the space's size."""
    every = itertools.product(*(range(v) for v in space.vocab_sizes))
    return len({tuple(space.canonical_tokens(t)) for t in every})


def random_tokens(space: SearchSpace, rng: np.random.Generator) -> list[int]:
    return [int(rng.integers(v)) for v in space.vocab_sizes]


# -- the default space -------------------------------------------------------------------------------
def test_default_space_has_122304_architectures() -> None:
    space = default_space()
    assert space.size() == 122_304 == (16 + 16**2 + 16**3) * 2 * 2 * 7
    assert space.names == ("num_layers", "units_0", "units_1", "units_2", "activation", "dropout", "lr")
    assert space.vocab_sizes == (3, 16, 16, 16, 2, 2, 7)
    assert len(space) == 7
    assert space.model == "mlp"


def test_default_space_decisions() -> None:
    space = default_space()
    assert space["num_layers"].values == (1, 2, 3)
    for i in range(3):
        assert space[f"units_{i}"].values == UNITS
        assert space[f"units_{i}"].kind == "int"
    assert dict(space["units_0"].when) == {}
    assert dict(space["units_1"].when) == {"num_layers": (2, 3)}
    assert dict(space["units_2"].when) == {"num_layers": (3,)}
    assert space["activation"].values == ("relu", "tanh")
    assert space["dropout"].values == (False, True)
    assert space["dropout"].kind == "bool"


def test_lr_grid_is_seven_log_spaced_values_from_1e4_to_1e2() -> None:
    lr = default_space()["lr"]
    assert lr.kind == "float"
    assert lr.values == LR_GRID
    assert all(isinstance(v, float) for v in lr.values)
    ratios = [b / a for a, b in itertools.pairwise(lr.values)]
    # Rounding to 3 significant digits moves a value by at most 0.5%, so each ratio is 10**(1/3) +- 1%.
    assert ratios == pytest.approx([10 ** (1 / 3)] * 6, rel=0.01)


@pytest.mark.parametrize("max_layers", [1, 2, 4])
@pytest.mark.parametrize("lr_grid", [2, 5])
def test_default_space_size_formula(max_layers: int, lr_grid: int) -> None:
    space = default_space(lr_grid=lr_grid, max_layers=max_layers)
    assert len(space) == max_layers + 4
    assert space.size() == sum(16**k for k in range(1, max_layers + 1)) * 2 * 2 * lr_grid


def test_log_grid() -> None:
    assert log_grid(1e-4, 1e-2, 3) == (1e-4, 1e-3, 1e-2)
    assert log_grid(1.0, 2.0, 2) == (1.0, 2.0)
    assert len(log_grid(1e-5, 1.0, 11)) == 11


@pytest.mark.parametrize(
    ("low", "high", "num"), [(0.0, 1.0, 3), (-1.0, 1.0, 3), (1e-2, 1e-4, 7), (1.0, 1.0, 3), (1e-4, 1e-2, 1)]
)
def test_log_grid_rejects_bad_arguments(low: float, high: float, num: int) -> None:
    with pytest.raises(ConfigError, match=r"log grid needs 0 < low < high and num >= 2, got "):
        log_grid(low, high, num)


# -- size ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_size_equals_brute_force_enumeration(name: str) -> None:
    space = SMALL_SPACES[name]()
    assert space.size() == brute_force_size(space)


def test_size_of_hand_counted_spaces() -> None:
    # n=1: 2 * 2; n=2: 2 * 3 * 2; n=3: 2 * 3 * 2 * 2
    assert layered_space().size() == 4 + 12 + 24
    # opt adam: 1; sgd: momentum 0.0 -> 1, 0.5/0.9 -> 2 each: 5; rmsprop likewise: 5.
    # clip off: 1, clip on: 2 norms, and decay (2) only for sgd.
    opt_without_decay = 1 + 5 + 5
    assert chained_space().size() == opt_without_decay * 1 + (1 + 5 * 2 + 5) * 2
    assert flat_space().size() == 6


# -- encode / decode -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*sorted(SMALL_SPACES), "default"])
def test_encode_decode_round_trip(name: str) -> None:
    space = default_space() if name == "default" else SMALL_SPACES[name]()
    rng = np.random.default_rng(7)
    for _ in range(300):
        tokens = random_tokens(space, rng)
        arch = space.decode(tokens)
        assert space.decode(space.encode(arch)) == arch
        assert space.encode(arch) == space.canonical_tokens(tokens)
        assert list(arch) == [n for n, on in zip(space.names, space.active_mask(tokens), strict=True) if on]


def test_decode_leaves_out_inactive_decisions() -> None:
    space = default_space()
    one = space.decode([0, 3, 15, 15, 1, 1, 6])
    assert one == {"num_layers": 1, "units_0": 128, "activation": "tanh", "dropout": True, "lr": 1e-2}
    two = space.decode([1, 0, 1, 2, 0, 0, 0])
    assert two == {
        "num_layers": 2,
        "units_0": 32,
        "units_1": 64,
        "activation": "relu",
        "dropout": False,
        "lr": 1e-4,
    }
    three = space.decode([2, 0, 1, 2, 0, 0, 3])
    assert three["units_2"] == 96
    assert three["lr"] == 1e-3


def test_decoded_values_have_their_kinds_type() -> None:
    arch = default_space().decode([2, 0, 1, 2, 1, 0, 3])
    assert type(arch["num_layers"]) is int
    assert type(arch["units_2"]) is int
    assert type(arch["activation"]) is str
    assert type(arch["dropout"]) is bool
    assert type(arch["lr"]) is float


def test_decode_ignores_inactive_tokens_even_out_of_range() -> None:
    space = default_space()
    arch = space.decode([0, 3, 99, -5, 1, 1, 6])
    assert arch == space.decode([0, 3, 0, 0, 1, 1, 6])


def test_encode_writes_inactive_for_missing_decisions() -> None:
    space = default_space()
    arch = {"num_layers": 1, "units_0": 64, "activation": "relu", "dropout": False, "lr": 1e-3}
    assert space.encode(arch) == [0, 1, INACTIVE, INACTIVE, 0, 0, 3]
    assert INACTIVE == -1


def test_encode_accepts_an_int_for_a_float_value() -> None:
    space = SearchSpace([Decision("rate", (0.0, 0.5, 1.0), "float")])
    assert space.encode({"rate": 1}) == [2]
    assert space.decode([2]) == {"rate": 1.0}


def test_active_mask() -> None:
    space = default_space()
    assert space.active_mask([0, 0, 0, 0, 0, 0, 0]) == [True, True, False, False, True, True, True]
    assert space.active_mask([1, 0, 0, 0, 0, 0, 0]) == [True, True, True, False, True, True, True]
    assert space.active_mask([2, 0, 0, 0, 0, 0, 0]) == [True] * 7
    assert space.active_mask(np.array([2, 1, 1, 1, 1, 1, 1])) == [True] * 7


def test_active_mask_follows_chained_conditions() -> None:
    space = chained_space()
    # adam: no momentum, so no nesterov (whatever its token says); clip on: clip_norm; decay needs sgd.
    assert space.active_mask([0, 2, 1, 1, 0, 1]) == [True, False, False, True, True, False]
    # sgd with momentum 0.0: nesterov stays off; clip off: no clip_norm, no decay.
    assert space.active_mask([1, 0, 1, 0, 1, 1]) == [True, True, False, True, False, False]
    # sgd, momentum 0.9, clip on: everything exists.
    assert space.active_mask([1, 2, 1, 1, 0, 1]) == [True] * 6
    assert space.decode([1, 2, 1, 1, 0, 1]) == {
        "opt": "sgd",
        "momentum": 0.9,
        "nesterov": True,
        "clip": True,
        "clip_norm": 1.0,
        "decay": "cosine",
    }


def test_canonical_tokens() -> None:
    space = default_space()
    assert space.canonical_tokens([0, 5, 9, 9, 1, 0, 2]) == [0, 5, INACTIVE, INACTIVE, 1, 0, 2]
    assert space.canonical_tokens([2, 5, 9, 9, 1, 0, 2]) == [2, 5, 9, 9, 1, 0, 2]
    assert all(type(t) is int for t in space.canonical_tokens(np.array([1, 5, 9, 9, 1, 0, 2])))


# -- keys ------------------------------------------------------------------------------------------
def test_key_ignores_inactive_positions() -> None:
    space = default_space()
    a = space.key([0, 3, 1, 2, 1, 0, 4])
    assert a == space.key([0, 3, 15, 7, 1, 0, 4]) == "0-3-x-x-1-0-4"
    assert space.key([1, 3, 1, 2, 1, 0, 4]) == space.key([1, 3, 1, 9, 1, 0, 4]) == "1-3-1-x-1-0-4"
    assert space.key(space.decode([0, 3, 1, 2, 1, 0, 4])) == a


def test_key_differs_when_an_active_token_differs() -> None:
    space = default_space()
    rng = np.random.default_rng(3)
    for _ in range(200):
        tokens = random_tokens(space, rng)
        mask = space.active_mask(tokens)
        i = int(rng.choice([j for j, on in enumerate(mask) if on]))
        other = list(tokens)
        other[i] = (other[i] + 1 + int(rng.integers(space.vocab_sizes[i] - 1))) % space.vocab_sizes[i]
        assert space.key(other) != space.key(tokens)


@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_keys_are_one_to_one_with_architectures(name: str) -> None:
    space = SMALL_SPACES[name]()
    keys: dict[str, dict] = {}
    for t in itertools.product(*(range(v) for v in space.vocab_sizes)):
        arch = space.decode(t)
        assert keys.setdefault(space.key(t), arch) == arch
        assert space.key(arch) == space.key(t)
    assert len(keys) == space.size()


# -- summary ---------------------------------------------------------------------------------------
def test_summary_lists_every_decision_and_the_size() -> None:
    space = default_space()
    text = space.summary()
    lines = text.splitlines()
    assert lines[0].split() == ["decision", "kind", "values", "condition"]
    assert set(lines[1]) <= {"-", " "}
    for name in space.names:
        assert any(line.startswith(name) for line in lines), name
    assert "32..512 step 32 (16 values)" in text
    assert "num_layers in {2, 3}" in text
    assert "num_layers in {3}" in text
    assert "relu, tanh" in text
    assert "False, True" in text
    assert "0.0001, 0.000215, 0.000464, 0.001, 0.00215, 0.00464, 0.01" in text
    assert lines[-1] == "7 decisions, model 'mlp': 122,304 distinct architectures"


def test_summary_of_a_small_space() -> None:
    text = chained_space().summary()
    for name in chained_space().names:
        assert name in text
    assert "opt in {'sgd', 'rmsprop'}" in text
    assert "opt in {'sgd'} and clip in {True}" in text
    assert text.endswith(f"6 decisions, model 'mlp': {chained_space().size():,} distinct architectures")


def test_condition_text() -> None:
    assert default_space()["units_0"].condition_text() == ""
    assert default_space()["units_2"].condition_text() == "num_layers in {3}"


# -- serialisation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*sorted(SMALL_SPACES), "default"])
def test_to_dict_round_trips_through_space_from_dict(name: str) -> None:
    space = default_space() if name == "default" else SMALL_SPACES[name]()
    again = space_from_dict(space.to_dict())
    assert again == space
    assert hash(again) == hash(space)
    assert again.names == space.names
    assert [d.values for d in again.decisions] == [d.values for d in space.decisions]
    assert [dict(d.when) for d in again.decisions] == [dict(d.when) for d in space.decisions]
    # The plain data survives JSON too (it is what a run directory stores).
    assert space_from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_to_dict_shape() -> None:
    data = layered_space().to_dict()
    assert data["model"] == "mlp"
    assert data["decisions"][0] == {"name": "n", "kind": "int", "values": [1, 2, 3]}
    assert data["decisions"][2] == {"name": "u1", "kind": "int", "values": [8, 16, 32], "when": {"n": [2, 3]}}


def test_space_from_toml_equals_the_python_space(tmp_path) -> None:
    from rlnas.config import load_config

    path = tmp_path / "space.toml"
    path.write_text(
        """
[space]
model = "mlp"

[[space.decisions]]
name = "num_layers"
kind = "int"
values = [1, 2, 3]

[[space.decisions]]
name = "units_0"
range = [32, 512, 32]

[[space.decisions]]
name = "units_1"
kind = "int"
range = [32, 512, 32]
when = { num_layers = [2, 3] }

[[space.decisions]]
name = "units_2"
range = [32, 512, 32]
when = { num_layers = 3 }

[[space.decisions]]
name = "activation"
values = ["relu", "tanh"]

[[space.decisions]]
name = "dropout"
values = [false, true]

[[space.decisions]]
name = "lr"
log_range = [1e-4, 1e-2, 7]
"""
    )
    _, space, _ = load_config(path)
    assert space == default_space()
    assert space.size() == 122_304
    assert [d.kind for d in space.decisions] == ["int", "int", "int", "int", "choice", "bool", "float"]


def test_equality() -> None:
    assert default_space() == default_space()
    assert default_space() != default_space(lr_grid=5)
    assert default_space() != "not a space"
    assert SearchSpace(layered_space().decisions, model="cnn") != layered_space()


# -- Decision --------------------------------------------------------------------------------------
def test_decision_normalises_values_and_conditions() -> None:
    d = Decision("rate", [0, 0.5, 1], "float", {"n": 3})
    assert d.values == (0.0, 0.5, 1.0)
    assert all(type(v) is float for v in d.values)
    assert dict(d.when) == {"n": (3,)}
    assert d.size == 3
    assert d.index(0.5) == 1
    assert d.index(1) == 2
    with pytest.raises(TypeError):
        d.when["m"] = (1,)  # type: ignore[index]


def test_decision_is_frozen() -> None:
    d = Decision("a", (1, 2), "int")
    with pytest.raises(AttributeError):
        d.name = "b"  # type: ignore[misc]


def test_decision_default_kind_is_choice() -> None:
    assert Decision("act", ["relu"]).kind == "choice"


# -- every validation message ----------------------------------------------------------------------
def test_empty_space() -> None:
    with pytest.raises(ConfigError, match=r"^the search space has no decisions; declare at least one$"):
        SearchSpace([])


def test_duplicate_decision_name() -> None:
    with pytest.raises(ConfigError, match=r"^decision 'a' is declared twice$"):
        SearchSpace([Decision("a", (1,), "int"), Decision("b", ("x",)), Decision("a", (2,), "int")])


@pytest.mark.parametrize(
    ("kind", "values", "shown"),
    [
        ("int", (1, 2, 1), "1"),
        ("choice", ("relu", "tanh", "relu"), "'relu'"),
        ("bool", (True, False, True), "True"),
        ("float", (0.5, 1, 1.0), "1.0"),
    ],
)
def test_duplicate_value(kind: str, values: tuple, shown: str) -> None:
    with pytest.raises(ConfigError, match=rf"^decision 'a': value {re.escape(shown)} appears twice$"):
        Decision("a", values, kind)


@pytest.mark.parametrize("values", [(), []])
def test_empty_values(values) -> None:
    with pytest.raises(ConfigError, match=r"^decision 'a' has no values; give at least one$"):
        Decision("a", values, "int")


@pytest.mark.parametrize("values", ["abc", b"abc", 3, None, {1, 2}])
def test_values_must_be_a_list(values) -> None:
    with pytest.raises(ConfigError, match=r"^decision 'a': values must be a list, got "):
        Decision("a", values, "choice")


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("int", "8"),
        ("int", True),
        ("int", False),
        ("int", 1.5),
        ("int", None),
        ("float", "0.1"),
        ("float", True),
        ("float", None),
        ("bool", 1),
        ("bool", 0),
        ("bool", "true"),
        ("choice", 3),
        ("choice", None),
        ("choice", True),
    ],
)
def test_ill_typed_value(kind: str, bad: object) -> None:
    with pytest.raises(
        ConfigError, match=rf"^decision 'a': value {re.escape(repr(bad))} is not of kind '{kind}'$"
    ):
        Decision("a", (bad,), kind)


def test_ill_typed_value_among_good_ones() -> None:
    with pytest.raises(ConfigError, match=r"^decision 'units': value '64' is not of kind 'int'$"):
        Decision("units", (32, "64", 128), "int")
    with pytest.raises(ConfigError, match=r"^decision 'units': value True is not of kind 'int'$"):
        Decision("units", (32, True), "int")


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_float(bad: float) -> None:
    with pytest.raises(ConfigError, match=r"^decision 'lr': value .* is not finite$"):
        Decision("lr", (1e-3, bad), "float")


@pytest.mark.parametrize(("kind", "guess"), [("flaot", "float"), ("integer", "int"), ("boo", "bool")])
def test_unknown_kind_with_did_you_mean(kind: str, guess: str) -> None:
    allowed = "allowed: int, float, choice, bool"
    msg = rf"^decision 'a': unknown kind '{kind}'; {allowed} \(did you mean '{guess}'\?\)$"
    with pytest.raises(ConfigError, match=msg):
        Decision("a", (1,), kind)


def test_unknown_kind_without_a_close_match() -> None:
    with pytest.raises(
        ConfigError, match=r"^decision 'a': unknown kind 'xyz'; allowed: int, float, choice, bool$"
    ):
        Decision("a", (1,), "xyz")


@pytest.mark.parametrize("name", ["", "2layers", "units-0", "a b", None, 3])
def test_decision_name_must_be_an_identifier(name) -> None:
    with pytest.raises(ConfigError, match=r"must be a non-empty identifier$"):
        Decision(name, (1,), "int")  # type: ignore[arg-type]


def test_condition_naming_a_missing_decision_suggests_one() -> None:
    msg = (
        r"^decision 'units_1': condition refers to 'num_layer', which is no decision of the space "
        r"\(did you mean 'num_layers'\?\); conditions may only name earlier decisions$"
    )
    with pytest.raises(ConfigError, match=msg):
        SearchSpace(
            [
                Decision("num_layers", (1, 2), "int"),
                Decision("units_1", (32, 64), "int", {"num_layer": (2,)}),
            ]
        )


def test_condition_naming_a_missing_decision_without_a_close_match() -> None:
    msg = r"^decision 'b': condition refers to 'zzz', which is no decision of the space; conditions may"
    with pytest.raises(ConfigError, match=msg):
        SearchSpace([Decision("a", (1,), "int"), Decision("b", (1,), "int", {"zzz": (1,)})])


def test_condition_naming_a_later_decision() -> None:
    msg = (
        r"^decision 'units_1': condition refers to 'num_layers', which is a later decision; "
        r"conditions may only name earlier decisions$"
    )
    with pytest.raises(ConfigError, match=msg):
        SearchSpace(
            [
                Decision("units_1", (32, 64), "int", {"num_layers": (2,)}),
                Decision("num_layers", (1, 2), "int"),
            ]
        )


def test_condition_value_the_parent_lacks() -> None:
    with pytest.raises(ConfigError, match=re.escape("num_layers=5 is not one of [1, 2, 3]")):
        SearchSpace(
            [
                Decision("num_layers", (1, 2, 3), "int"),
                Decision("units_1", (32, 64), "int", {"num_layers": (2, 5)}),
            ]
        )
    with pytest.raises(ConfigError, match=re.escape("act='gelu' is not one of ['relu', 'tanh']")):
        SearchSpace([Decision("act", ("relu", "tanh")), Decision("alpha", (0.1,), "float", {"act": "gelu"})])
    with pytest.raises(ConfigError, match=re.escape("num_layers='2' is not one of [1, 2, 3]")):
        SearchSpace(
            [Decision("num_layers", (1, 2, 3), "int"), Decision("u", (1,), "int", {"num_layers": ("2",)})]
        )


def test_unknown_decision_lookup_suggests_one() -> None:
    with pytest.raises(ConfigError, match=r"^unknown decision 'unit_0' \(did you mean 'units_0'\?\)$"):
        default_space()["unit_0"]
    with pytest.raises(ConfigError, match=r"^unknown decision 'zzz'$"):
        default_space()["zzz"]


@pytest.mark.parametrize("tokens", [[0, 1, 2], [0] * 8, []])
def test_wrong_number_of_tokens(tokens: list[int]) -> None:
    space = default_space()
    with pytest.raises(ConfigError, match=rf"^expected 7 tokens, got {len(tokens)}$"):
        space.decode(tokens)
    with pytest.raises(ConfigError, match=rf"^expected 7 tokens, got {len(tokens)}$"):
        space.key(tokens)


@pytest.mark.parametrize(
    ("tokens", "msg"),
    [
        ([3, 0, 0, 0, 0, 0, 0], r"^token 3 out of range for 'num_layers' \(0\.\.2\)$"),
        ([0, 16, 0, 0, 0, 0, 0], r"^token 16 out of range for 'units_0' \(0\.\.15\)$"),
        ([2, 0, 0, -1, 0, 0, 0], r"^token -1 out of range for 'units_2' \(0\.\.15\)$"),
        ([0, 0, 0, 0, 0, 0, 7], r"^token 7 out of range for 'lr' \(0\.\.6\)$"),
    ],
)
def test_active_token_out_of_range(tokens: list[int], msg: str) -> None:
    space = default_space()
    with pytest.raises(ConfigError, match=msg):
        space.decode(tokens)
    with pytest.raises(ConfigError, match=msg):
        space.canonical_tokens(tokens)


def test_encode_errors() -> None:
    space = default_space()
    good = {"num_layers": 2, "units_0": 64, "units_1": 32, "activation": "relu", "dropout": False, "lr": 1e-3}
    assert space.encode(good) == [1, 1, 0, INACTIVE, 0, 0, 3]
    with pytest.raises(ConfigError, match=r"^architecture lacks active decision 'units_1'$"):
        space.encode({k: v for k, v in good.items() if k != "units_1"})
    with pytest.raises(
        ConfigError, match=re.escape("architecture sets inactive or unknown decisions: ['units_2']")
    ):
        space.encode(good | {"units_2": 32})
    with pytest.raises(ConfigError, match=re.escape("inactive or unknown decisions: ['colour', 'units_2']")):
        space.encode(good | {"units_2": 32, "colour": "red"})
    with pytest.raises(ConfigError, match=re.escape("units_0=65 is not one of [32, 64, 96")):
        space.encode(good | {"units_0": 65})
    with pytest.raises(ConfigError, match=re.escape("units_0='64' is not one of [32, 64")):
        space.encode(good | {"units_0": "64"})
    with pytest.raises(ConfigError, match=re.escape("dropout=0 is not one of [False, True]")):
        space.encode(good | {"dropout": 0})
    with pytest.raises(ConfigError, match=re.escape("lr=0.002 is not one of [0.0001, 0.000215")):
        space.encode(good | {"lr": 2e-3})


def test_condition_on_itself_is_named_as_such():
    with pytest.raises(ConfigError, match="refers to 'a', which is itself"):
        SearchSpace([Decision("a", (1, 2), "int", {"a": (1,)})])
