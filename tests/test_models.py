"""Child builders of every model: spaces check, every sampled architecture builds, a tiny fit trains."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.config import load_config
from rlnas.errors import ConfigError
from rlnas.models.child import TrainSpec, build_model, check_input_shape, check_space, train_and_evaluate
from rlnas.space import Decision, SearchSpace, cell_space, conv_space, default_space, skip_space
from tests.arrays import as_dataset

FACTORIES = {"conv": conv_space, "skip": skip_space, "cell": cell_space}


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    """``n`` architectures drawn uniformly token by token, as a random controller would."""
    rng = np.random.default_rng(seed)
    return [space.decode([int(rng.integers(d.size)) for d in space.decisions]) for _ in range(n)]


def build_all(model: str, archs: list[dict], shape: tuple[int, ...]) -> list[int]:
    import keras

    params = []
    for arch in archs:
        keras.backend.clear_session(free_memory=False)
        net = build_model(arch, shape, 10, model=model)
        assert net.output_shape == (None, 10), arch
        params.append(net.count_params())
    return params


def space(model: str, *decisions: Decision) -> SearchSpace:
    return SearchSpace(list(decisions), model=model)


# -- the shipped spaces --------------------------------------------------------------------------
@pytest.mark.parametrize("model", FACTORIES)
def test_example_config_is_the_factory_space_and_checks(model):
    _, from_toml, _ = load_config(f"examples/{model}.toml")
    assert from_toml == FACTORIES[model]()
    assert from_toml.model == model
    check_space(from_toml)


def test_fashion_conv_example_checks_and_every_sampled_architecture_builds():
    """examples/conv_fashion.toml: a narrowed conv chain; its samples build on 28x28 and on 5x5."""
    config, conv_fashion, _ = load_config("examples/conv_fashion.toml")
    check_space(conv_fashion)
    assert conv_fashion.model == "conv" and conv_fashion.size() == 1_677_312
    assert config.max_params == 300_000
    for shape in ((28, 28), (5, 5)):
        assert min(build_all("conv", sample(conv_fashion, 12), shape)) > 0


def test_rlnas_space_prints_an_example(capsys):
    from rlnas.cli import main

    assert main(["space", "examples/conv.toml"]) == 0
    assert "model 'conv': 34,639,084,800 distinct architectures" in capsys.readouterr().out


@pytest.mark.parametrize("model, n", [("conv", 20), ("skip", 20), ("cell", 6)])
@pytest.mark.parametrize("shape", [(28, 28), (5, 5)])
def test_sampled_architectures_build(model, n, shape):
    params = build_all(model, sample(FACTORIES[model](), n), shape)
    assert min(params) > 0


@pytest.mark.slow
@pytest.mark.parametrize("model, n", [("conv", 200), ("skip", 200), ("cell", 50)])
@pytest.mark.parametrize("shape", [(28, 28), (5, 5)])
def test_many_sampled_architectures_build(model, n, shape):
    params = build_all(model, sample(FACTORIES[model](), n, seed=1), shape)
    assert min(params) > 0


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (3, 7, 2)])
def test_deepest_downsampling_builds_on_tiny_inputs(shape):
    """Four stride-2 layers each followed by a pool, on maps that are 1 pixel long and after."""
    arch = {"num_layers": 4} | {f"stride_{i}": 2 for i in range(4)} | {f"pool_{i}": "max" for i in range(4)}
    skips = {"skip_2_0": True, "skip_3_0": True, "skip_3_1": True}
    cells = {"reductions": 3, "num_cells": 2} | {"node0_in0": "prev", "node0_in1": "prev_prev"}
    cells |= {"node0_op0": "sep5x5", "node0_op1": "max3x3"}
    for model, a in (("conv", arch), ("skip", arch | skips), ("cell", cells)):
        assert build_all(model, [a], shape)[0] > 0


# -- what the builders build ---------------------------------------------------------------------
def test_skip_concatenates_an_earlier_layer_pooled_to_the_current_size():
    import keras

    arch = {
        "num_layers": 3,
        "filters_0": 4,
        "filters_1": 8,
        "filters_2": 16,
        "pool_0": "max",
        "pool_1": "max",
    }
    without = build_model(arch, (9, 9), 10, model="skip")
    net = build_model(arch | {"skip_2_0": True}, (9, 9), 10, model="skip")
    concat = [layer for layer in net.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concat) == 1 and not any(isinstance(x, keras.layers.Concatenate) for x in without.layers)
    # layer 1's 8 channels (3x3 after two pools) + layer 0's 4 channels (5x5, pooled once more)
    assert concat[0].output.shape[1:] == (3, 3, 12)
    assert net.count_params() - without.count_params() == 3 * 3 * 4 * 16  # layer 2 reads 4 more channels


def test_conv_ignores_skip_free_chain_and_adds_a_channel_axis():
    net = build_model({"num_layers": 2, "filters_0": 4, "filters_1": 6}, (6, 6), 3, model="conv")
    assert net.input_shape == (None, 6, 6)
    assert net.count_params() == (9 * 1 * 4 + 4) + 4 * 4 + (9 * 4 * 6 + 6) + 4 * 6 + (6 * 3 + 3)


@pytest.mark.parametrize(
    "reads, concatenated",
    [
        (("prev", "prev", "node0", "node0", "node0", "node1"), 0),  # only node2 unused: no concat
        (("prev", "prev", "prev", "prev", "prev", "prev"), 1),  # all three unused: one concat
    ],
)
def test_cell_output_concatenates_the_unused_nodes(reads, concatenated):
    import keras

    arch = {"num_cells": 1, "reductions": 0}
    for b in range(3):
        arch |= {f"node{b}_in0": reads[2 * b], f"node{b}_in1": reads[2 * b + 1]}
        arch |= {f"node{b}_op0": "identity", f"node{b}_op1": "conv1x1"}
    net = build_model(arch, (8, 8), 10, model="cell")
    concats = [x for x in net.layers if isinstance(x, keras.layers.Concatenate)]
    assert len(concats) == concatenated
    if concats:
        assert concats[0].output.shape[-1] == 3 * 16


# -- check_space ---------------------------------------------------------------------------------
LAYERS = Decision("num_layers", (1, 2, 3), "int")
PARTS = ("in0", "in1", "op0", "op1")


def node0(source: str, op: str, parts: tuple[str, ...] = PARTS) -> list[Decision]:
    return [Decision(f"node0_{p}", (source,) if p.startswith("in") else (op,)) for p in parts]


BAD_SPACES = [
    (space("convv", LAYERS), r"unknown model 'convv'; this version builds: 'mlp', 'conv', 'skip', 'cell'"),
    (space("convv", LAYERS), r"\(did you mean 'conv'\?\)"),
    (
        space("conv", LAYERS, Decision("filter_0", (8,), "int")),
        r"the conv model does not use decision 'filter_0' \(did you mean 'filters_<i>'\?\); it reads num_",
    ),
    (
        space("conv", LAYERS, Decision("skip_2_0", (True,), "bool")),
        "conv model does not use decision 'skip_2_0'",
    ),
    (
        space("conv", LAYERS, Decision("pool_0", ("median",))),
        r"decision 'pool_0': value 'median' is not usable by the conv model; allowed: none, max, avg",
    ),
    (space("conv", Decision("stride_0", (1, 3), "int")), r"value 3 is not usable .* allowed: 1, 2$"),
    (space("skip", Decision("activation", ("relu", "relux"))), r"value 'relux' .* allowed: relu, tanh"),
    (space("conv", Decision("dropout", (0.0, 1.5), "float")), r"value 1\.5 .* a rate in \[0, 1\)"),
    (
        space("conv", LAYERS, Decision("filters_3", (8,), "int")),
        r"'filters_3' can never be used: num_layers is at most 3, so layer indices run 0\.\.2",
    ),
    (
        space("skip", LAYERS, Decision("skip_2_1", (True,), "bool")),
        r"'skip_2_1': skip_<i>_<j> needs j < i - 1",
    ),
    (space("skip", LAYERS, Decision("skip_3_0", (True,), "bool")), "'skip_3_0' can never be used"),
    (space("cell", Decision("filters", (8,), "int")), "the cell model needs at least node0_in0"),
    (
        space("cell", *node0("prev", "identity", PARTS[:3])),
        r"cell node 0 lacks decision 'node0_op1'; each node b needs node<b>_in0, node<b>_in1, node<b>_op0",
    ),
    (
        space("cell", *node0("prev", "sep7x7")),
        r"'node0_op0': value 'sep7x7' .* allowed: identity, sep3x3, sep5x5, max3x3, avg3x3, conv1x1",
    ),
    (
        space("cell", *node0("node0", "identity")),
        r"'node0_in0': input 'node0' is not h-1, h-2 or an earlier node; allowed: prev, prev_prev$",
    ),
]


@pytest.mark.parametrize("bad, message", BAD_SPACES)
def test_check_space_rejects(bad, message):
    with pytest.raises(ConfigError, match=message):
        check_space(bad)


def test_check_space_accepts_the_mlp_space_and_a_sparse_conv_space():
    check_space(default_space())
    check_space(space("conv", Decision("filters_0", (8, 16), "int")))  # other decisions take defaults


def test_image_models_reject_flat_inputs():
    check_input_shape("mlp", (784,))
    with pytest.raises(ConfigError, match=r"the cell model needs images .* got \(784,\); use the mlp model"):
        check_input_shape("cell", (784,))


# -- training ------------------------------------------------------------------------------------
def images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: a bright left or right half."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0, 0.3, (n, size, size)).astype(np.float32)
    for c in (0, 1):
        x[y == c, :, c * size // 2 : (c + 1) * size // 2] += 0.7
    return x, y


# skip and cell: slow (the largest graphs); test_models builds every sampled architecture of both
@pytest.mark.parametrize(
    "model",
    [
        "mlp",
        "conv",
        pytest.param("skip", marks=pytest.mark.slow),
        pytest.param("cell", marks=pytest.mark.slow),
    ],
)
def test_tiny_fit_of_each_model(model):
    x, y = images(64, 10, 0)
    arch = sample(FACTORIES[model](), 1)[0] if model in FACTORIES else sample(default_space(), 1)[0]
    spec = TrainSpec(epochs=1, batch_size=32, model=model)
    r = train_and_evaluate(arch, as_dataset(x, y, x[:16], y[:16], 2), spec, seed=0)
    assert r.status == "ok", r.error
    assert r.params > 0 and r.epochs_run == 1 and 0 <= r.val_accuracy <= 1


def test_wrong_model_for_the_architecture_is_a_failed_child_not_a_crash():
    x, y = images(8, 6, 0)
    flat = as_dataset(x.reshape(8, -1), y, x[:4].reshape(4, -1), y[:4], 2)
    r = train_and_evaluate({"num_layers": 1}, flat, TrainSpec(epochs=1, batch_size=8, model="conv"), seed=0)
    assert r.status == "failed" and "needs images" in r.error


def test_early_stopping_stops_when_validation_loss_rises_and_keeps_the_best_weights():
    """The eval labels are the train labels flipped: the better the fit, the worse the eval loss."""
    x, y = images(96, 6, 0)
    arch = {"num_layers": 1, "units_0": 16, "lr": 0.01}
    flipped = as_dataset(x, y, x, 1 - y, 2)
    full = train_and_evaluate(arch, flipped, TrainSpec(epochs=12, batch_size=16), seed=0)
    stopped = train_and_evaluate(arch, flipped, TrainSpec(epochs=12, batch_size=16, early_stopping=1), seed=0)
    assert full.epochs_run == 12
    assert stopped.status == "ok" and stopped.epochs_run == 2  # epoch 2 was worse than epoch 1: stop
    assert stopped.val_loss < full.val_loss


# -- the replay's learning-rate schedule ---------------------------------------------------------
def test_cosine_decay_starts_at_the_rate_and_halves_at_the_middle():
    from rlnas.models.child import cosine_decay

    assert cosine_decay(0.01, 0, 10) == 0.01
    assert cosine_decay(0.01, 5, 10) == pytest.approx(0.005)
    assert 0 < cosine_decay(0.01, 9, 10) < 0.0003


COSINE_LAST = 0.02 * 0.5 * (1 + np.cos(np.pi * 3 / 4))  # epoch 3 of 4


@pytest.mark.parametrize("schedule, last", [("cosine", COSINE_LAST), ("constant", 0.02)])
def test_training_with_a_schedule_ends_at_its_last_epochs_rate(schedule, last):
    x, y = images(32, 6, 0)
    rates = []

    def keep_rate(net):
        rates.append(float(net.optimizer.learning_rate.numpy()))

    arch = {"num_layers": 1, "units_0": 8, "lr": 0.02}
    spec = TrainSpec(epochs=4, batch_size=16, schedule=schedule)
    r = train_and_evaluate(arch, as_dataset(x, y, x, y, 2), spec, seed=0, on_model=keep_rate)
    assert r.status == "ok", r.error
    assert rates == [pytest.approx(last, rel=1e-5)]


# -- how a child is trained: one TrainSpec from the run's config ----------------------------------
def test_train_spec_of_the_search_and_of_the_final_training():
    from rlnas.config import SearchConfig
    from rlnas.models.child import train_spec

    config = SearchConfig(
        epochs=3, batch_size=64, max_params=5000, child_time_limit=30.0, early_stopping=2,
        replay_epochs=7, replay_schedule="constant",
    )  # fmt: skip
    search = train_spec(config, "conv", threads=2)
    assert search == TrainSpec(3, 64, 5000, 30.0, 2, "conv", early_stopping=2)
    final = train_spec(config, "conv", final=True)
    # Replay never stops early (it would select on test) nor applies max_params or the time limit.
    assert final == TrainSpec(epochs=7, batch_size=64, model="conv", schedule="constant", final=True)


def test_train_spec_refuses_early_stopping_on_test_and_unknown_schedules():
    with pytest.raises(ConfigError, match=r"final training.*cannot stop early"):
        TrainSpec(final=True, early_stopping=2)
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'; allowed: constant, cosine"):
        TrainSpec(schedule="cosin")


def test_the_final_training_fits_on_train_and_validation_and_scores_on_test():
    from rlnas.data import Dataset
    from rlnas.models.child import _splits

    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    ds = Dataset("d", x[:6], np.zeros(6), x[6:8], np.ones(2), x[8:], np.full(2, 2), 3)
    (fit_x, fit_y), (eval_x, eval_y) = _splits(ds, final=False)
    assert fit_x.tolist() == x[:6].tolist() and eval_y.tolist() == [1, 1]
    (fit_x, fit_y), (eval_x, eval_y) = _splits(ds, final=True)
    assert fit_x.tolist() == x[:8].tolist() and fit_y.tolist() == [0] * 6 + [1, 1]
    assert eval_x.tolist() == x[8:].tolist() and eval_y.tolist() == [2, 2]
