"""The shared-weight networks ENAS samples paths through: support check, one trace, learning,
determinism, save/load, memory estimate."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.errors import ConfigError
from rlnas.policy.supernet import (
    SUPPORTED_MODELS,
    check_memory,
    check_supported,
    estimate_bytes,
    make_supernet,
)
from rlnas.space import Decision, SearchSpace, cell_space, conv_space, default_space, skip_space


def small_conv(**kw) -> SearchSpace:
    space = conv_space(max_layers=2, filters=(4, 8), kernels=(1, 3), lr_grid=3, **kw)
    return space


def halves(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is their brightness (any path, gap or flatten, can separate them)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, size, size)).astype(np.float32)
    x += y[:, None, None].astype(np.float32)
    return x, y


def random_tokens(space: SearchSpace, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.integers(d.size) for d in space.decisions])


def test_refuses_spaces_it_cannot_share_in_one_line():
    table = SearchSpace([Decision("row", (0, 1), "int")], model="table")
    with pytest.raises(
        ConfigError, match=r"model 'table'; it supports the built-in spaces conv, skip, cell, mlp"
    ):
        check_supported(table)
    function = SearchSpace([Decision("units", (8, 16), "int")], model="my_models:build")
    with pytest.raises(ConfigError, match=r"model function builds its own network; it supports the built-in"):
        make_supernet(function, (8, 8), 2, seed=0)
    odd = SearchSpace([Decision("num_layers", (1,), "int"), Decision("colour", ("red",))], model="conv")
    with pytest.raises(ConfigError, match=r"cannot cover this conv space .*'colour'.*supports the built-in"):
        check_supported(odd)
    assert SUPPORTED_MODELS == ("conv", "skip", "cell", "mlp")


def test_fixed_holds_training_only_decisions_and_shared_the_rest():
    space = small_conv()
    net = make_supernet(space, (8, 8), 2, seed=0)
    assert net.fixed == {"lr": 1e-3, "dropout": False}
    assert set(net.shared) | set(net.fixed) == set(space.names)
    assert not set(net.shared) & set(net.fixed)


def test_one_trace_serves_every_path_and_a_path_learns():
    space = small_conv()
    net = make_supernet(space, (8, 8), 2, seed=0)
    x, y = halves(256)
    rng = np.random.default_rng(1)
    for step in range(60):
        i = (step * 32) % 224
        net.train_step(x[i : i + 32], y[i : i + 32], random_tokens(space, rng))
    assert net.traces == 1
    xv, yv = halves(200, seed=2)
    accs = [net.accuracy(xv, yv, random_tokens(space, rng)) for _ in range(3)]
    assert max(accs) > 0.8, accs


def test_skip_chain_trains_paths_with_and_without_skips():
    space = skip_space(max_layers=4, filters=(4, 8), kernels=(1, 3), lr_grid=3)
    net = make_supernet(space, (8, 8, 1), 2, seed=0)
    x, y = halves(64)
    x = x[..., None]
    every_skip = {**space.decode(random_tokens(space, np.random.default_rng(0))), "num_layers": 4}
    arch = space.decode(space.encode(_fill(space, every_skip, True)))
    loss, acc = net.train_step(x, y, np.array(space.encode(arch)))
    assert np.isfinite(loss) and 0 <= acc <= 1
    loss, _ = net.train_step(x, y, np.array(space.encode(_fill(space, every_skip, False))))
    assert np.isfinite(loss) and net.traces == 1


def _fill(space: SearchSpace, base: dict, skip: bool) -> dict:
    """``base`` with every active decision set (skips to ``skip``), inactive ones dropped."""
    out = {}
    for d in space.decisions:
        if d.is_active(out):
            out[d.name] = skip if d.name.startswith("skip_") else base.get(d.name, d.values[0])
    return out


def test_flatten_head_and_hidden_units_paths():
    space = small_conv()
    net = make_supernet(space, (8, 8), 2, seed=0)
    x, y = halves(64)
    for head in ("gap", "flatten"):
        for units in (0, 64):
            arch = {**space.decode([0] * len(space)), "head": head, "head_units": units, "num_layers": 2}
            loss, _ = net.train_step(x, y, np.array(space.encode(_fill(space, arch, False))))
            assert np.isfinite(loss)
    assert net.traces == 1


def test_same_seed_and_steps_give_the_same_weights():
    space = small_conv()
    x, y = halves(64)
    paths = [random_tokens(space, np.random.default_rng(s)) for s in range(4)]
    nets = [make_supernet(space, (8, 8), 2, seed=7) for _ in range(2)]
    for net in nets:
        for p in paths:
            net.train_step(x, y, p)
    for name, w in nets[0].weights.items():
        np.testing.assert_allclose(w.numpy(), nets[1].weights[name].numpy(), atol=1e-5, err_msg=name)
    other = make_supernet(space, (8, 8), 2, seed=8)
    assert not np.allclose(
        other.weights["conv0/k-1"].numpy(),
        make_supernet(space, (8, 8), 2, seed=7).weights["conv0/k-1"].numpy(),
    )


def test_save_then_load_continues_exactly(tmp_path):
    space = small_conv()
    x, y = halves(64)
    tokens = random_tokens(space, np.random.default_rng(0))
    net = make_supernet(space, (8, 8), 2, seed=0)
    net.train_step(x, y, tokens)
    net.save(tmp_path / "supernet.npz")
    copy = make_supernet(space, (8, 8), 2, seed=1)
    copy.load(tmp_path / "supernet.npz")
    assert net.train_step(x, y, tokens) == pytest.approx(copy.train_step(x, y, tokens), abs=1e-5)
    for name, m in net.slots.items():
        np.testing.assert_allclose(m.numpy(), copy.slots[name].numpy(), atol=1e-5)
    wrong = make_supernet(conv_space(max_layers=1, filters=(4,), kernels=(3,), lr_grid=3), (8, 8), 2, seed=0)
    with pytest.raises(ConfigError, match="not a checkpoint of this supernet"):
        wrong.load(tmp_path / "supernet.npz")


def test_memory_estimate_and_its_one_line_refusal():
    fashion_like = conv_space(max_layers=4, filters=(32, 64), kernels=(3, 5), lr_grid=3)
    need = estimate_bytes(fashion_like, (28, 28), 10, 128)
    assert 10 * 2**20 < need < 2 * 2**30
    huge = conv_space(max_layers=8, filters=(1024,), kernels=(7,), lr_grid=3)
    with pytest.raises(
        ConfigError, match=r"needs about .* GB at batch size 128 .*lower --batch-size or use a smaller"
    ):
        check_memory(huge, (64, 64, 3), 10, 128)
    with pytest.raises(ConfigError, match="lower --batch-size"):
        make_supernet(huge, (64, 64, 3), 10, seed=0, batch_size=128)
    assert estimate_bytes(huge, (64, 64, 3), 10, 1) < estimate_bytes(huge, (64, 64, 3), 10, 128)


def test_mlp_supernet_slices_widest_layers_and_learns():
    space = default_space(lr_grid=3, max_layers=2)
    net = make_supernet(space, (8, 8), 2, seed=0)
    assert net.fixed["dropout"] is False and "units_1" in net.shared
    x, y = halves(256)
    rng = np.random.default_rng(0)
    for step in range(60):
        i = (step * 32) % 224
        net.train_step(x[i : i + 32], y[i : i + 32], random_tokens(space, rng))
    xv, yv = halves(200, seed=3)
    assert max(net.accuracy(xv, yv, random_tokens(space, rng)) for _ in range(3)) > 0.8
    assert net.traces == 1


def test_tokens_of_the_wrong_length_are_refused():
    space = small_conv()
    net = make_supernet(space, (8, 8), 2, seed=0)
    x, y = halves(8)
    with pytest.raises(ConfigError, match="needs 14 tokens"):
        net.train_step(x, y, np.zeros(3, int))


@pytest.mark.slow  # the cell graph takes long to trace: minutes on a busy 2-core machine
def test_cell_supernet_trains_every_path_in_one_trace_and_learns():
    space = cell_space(num_nodes=2, filters=(4, 8), num_cells=(1, 2), lr_grid=3)
    net = make_supernet(space, (8, 8), 2, seed=0)
    assert set(net.shared) == set(space.names) - {"lr", "dropout"}
    x, y = halves(256)
    rng = np.random.default_rng(0)
    for step in range(40):
        i = (step * 32) % 224
        loss, _ = net.train_step(x[i : i + 32], y[i : i + 32], random_tokens(space, rng))
        assert np.isfinite(loss)
    assert net.traces == 1
    xv, yv = halves(200, seed=3)
    assert max(net.accuracy(xv, yv, random_tokens(space, rng)) for _ in range(3)) > 0.8
