"""First-order DARTS on the cell space: its settings, the refusal of other spaces, alpha's direction,
derivation into the space's tokens, shared-weight evaluation, checkpoints, and (slow) a real search."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from rlnas.errors import ConfigError, RunError
from rlnas.settings.darts import DartsSettings
from rlnas.settings.evolution import EvolutionSettings
from rlnas.settings.reinforce import ReinforceSettings
from rlnas.space import Decision, SearchSpace, cell_space, conv_space, default_space, skip_space

TINY = {"num_nodes": 2, "filters": (4, 8), "num_cells": (1, 2), "lr_grid": 3}


def stripes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images: vertical stripes (class 0) or horizontal ones (class 1), plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = (np.arange(8) % 2).astype(np.float32)
    x = np.where(y[:, None, None] == 0, base[None, None, :], base[None, :, None])
    return (x + 0.3 * rng.standard_normal((n, 8, 8))).astype(np.float32), y


def make(space: SearchSpace | None = None, seed: int = 0, steps_per_epoch: int = 10, **settings):
    from rlnas.strategies.darts import DartsStrategy

    return DartsStrategy(
        space or cell_space(**TINY),
        DartsSettings(**settings),
        (8, 8),
        2,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
    )


# -- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("darts_epochs", 0, r"darts_epochs must be positive, got 0"),
        ("darts_epochs", 1.5, r"darts_epochs must be a whole number, got 1.5"),
        ("darts_lr", -0.1, r"darts_lr must be positive, got -0.1"),
        ("darts_lr_min", -1.0, r"darts_lr_min must be >= 0, got -1.0"),
        ("darts_momentum", 1.0, r"darts_momentum must be in \[0, 1\), got 1.0"),
        ("darts_weight_decay", float("nan"), r"darts_weight_decay must be >= 0, got nan"),
        ("darts_grad_clip", 0, r"darts_grad_clip must be positive, got 0"),
        ("alpha_lr", "fast", r"alpha_lr must be a number, got 'fast'"),
        ("alpha_weight_decay", -1e-3, r"alpha_weight_decay must be >= 0, got -0.001"),
        ("darts_warmup_epochs", -1, r"darts_warmup_epochs must be >= 0 \(0: alpha moves .*\), got -1"),
        ("darts_filters", 0, r"darts_filters must be a whole number in 1..1024, got 0"),
        ("darts_cells", 17, r"darts_cells must be a whole number in 1..16, got 17"),
        ("darts_cells", True, r"darts_cells must be a whole number in 1..16, got True"),
    ],
)
def test_settings_are_validated_with_one_line(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DartsSettings(**{field: value})


def test_settings_refuse_a_cosine_that_would_rise() -> None:
    with pytest.raises(ConfigError, match=r"darts_lr_min \(0.1\) must be at most darts_lr \(0.025\)"):
        DartsSettings(darts_lr_min=0.1)


def test_settings_names_are_unique_across_strategies() -> None:
    """A flat ``[search]`` setting finds its owner by name, so no two strategies may share one."""
    ours = {f.name for f in fields(DartsSettings)}
    others = {f.name for kind in (ReinforceSettings, EvolutionSettings) for f in fields(kind)}
    assert ours and not ours & others
    assert all(name.startswith(("darts_", "alpha_")) for name in ours)


# -- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "space",
    [
        conv_space(),
        skip_space(),
        default_space(),
        SearchSpace([Decision("units", (32, 64), "int")], model="examples.keras_tuner_model:build_model"),
    ],
    ids=["conv", "skip", "mlp", "model-function"],
)
def test_spaces_without_per_edge_operations_are_refused(space: SearchSpace) -> None:
    with pytest.raises(
        ConfigError, match=r"darts needs the cell space's per-edge operations.*model = \"cell\""
    ):
        make(space)


def test_the_refusal_needs_no_tensorflow() -> None:
    """The config refuses the space before TensorFlow loads and before a run directory exists."""
    code = (
        "import sys\n"
        "from rlnas.errors import ConfigError\n"
        "from rlnas.settings.darts import check_darts_space\n"
        "from rlnas.space import skip_space, cell_space\n"
        "check_darts_space(cell_space())\n"
        "try:\n    check_darts_space(skip_space())\nexcept ConfigError as e:\n    print(e)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "--strategy darts needs the cell space's per-edge operations; the 'skip' space has none: "
        'use [space] model = "cell" (e.g. --config examples/cell.toml)',
        "False",
    ]


def test_regression_and_flat_inputs_are_refused() -> None:
    from rlnas.strategies.darts import DartsStrategy

    with pytest.raises(ConfigError, match="searches classifiers"):
        DartsStrategy(cell_space(**TINY), DartsSettings(), (8, 8), 0, seed=0, steps_per_epoch=1)
    with pytest.raises(ConfigError, match=r"the cell model needs images .*got \(13,\)"):
        DartsStrategy(cell_space(**TINY), DartsSettings(), (13,), 2, seed=0, steps_per_epoch=1)


# -- alpha follows the evidence ---------------------------------------------------------------------
@pytest.mark.parametrize("favoured", ["sep3x3", "conv1x1"])
def test_alpha_moves_toward_the_operation_the_weights_make_better(favoured: str) -> None:
    """Train the weights with alpha held (warm-up) almost all on one operation, so that only that
    operation's weights learn the task; then reset alpha to uniform and let it move: it must prefer
    the trained operation on every edge, whichever of the two it was."""
    space = cell_space(num_nodes=1, filters=(4,), num_cells=(1,), ops=("sep3x3", "conv1x1"), lr_grid=2)
    st = make(space, steps_per_epoch=30, darts_warmup_epochs=1.0, alpha_lr=0.05, darts_lr=0.1)
    k = st.net.ops.index(favoured)
    st.net.alpha.assign(np.where(np.arange(2) == k, 6.0, -6.0)[None, :].repeat(len(st.net.edges), 0))
    x, y = stripes(64)
    xv, yv = stripes(64, seed=1)
    for _ in range(30):
        out = st.step(x, y, xv, yv)
        assert "supernet/val_loss" not in out  # the warm-up holds alpha
    assert out["supernet/accuracy"] > 0.9
    st.net.alpha.assign(np.zeros(st.net.mask.shape, np.float32))
    for _ in range(5):
        out = st.step(x, y, xv, yv)
    w = st.weights()
    assert np.all(w[:, k] > w[:, 1 - k]), w
    assert out["controller/alpha_entropy"] < np.log(2)


# -- derivation, evaluation, probes ----------------------------------------------------------------
def restricted_space() -> SearchSpace:
    """Node 1 must read node 0 on its first input and h-1 or h-2 on its second; ops differ per slot."""
    ops = ("identity", "sep3x3", "max3x3", "conv1x1")
    return SearchSpace(
        [
            Decision("node0_in0", ("prev",)),
            Decision("node0_in1", ("prev", "prev_prev")),
            Decision("node0_op0", ("sep3x3", "identity")),
            Decision("node0_op1", ops),
            Decision("node1_in0", ("node0",)),
            Decision("node1_in1", ("prev", "prev_prev")),
            Decision("node1_op0", ops),
            Decision("node1_op1", ("max3x3", "conv1x1")),
            Decision("filters", (4, 8), "int"),
            Decision("num_cells", (1, 2), "int"),
            Decision("dropout", (False, True), "bool"),
            Decision("lr", (1e-4, 1e-3, 1e-2), "float"),
        ],
        model="cell",
    )


@pytest.fixture(scope="module")
def searched():
    """A strategy on the restricted space after a few steps (one trace for the tests below)."""
    st = make(restricted_space(), seed=3)
    x, y = stripes(32)
    for _ in range(3):
        st.step(x, y, *stripes(32, seed=1))
    return st


def test_derived_cell_is_valid_and_respects_restricted_inputs(searched) -> None:
    space = searched.space
    arch = space.decode(searched.derived())
    assert arch["node1_in0"] == "node0"
    assert arch["node0_in0"] == "prev" and arch["node0_in1"] == "prev_prev"  # distinct sources
    assert arch["node0_op0"] in ("sep3x3", "identity") and arch["node1_op1"] in ("max3x3", "conv1x1")
    # what DARTS does not search: the child's largest width and cells, lr nearest 1e-3, no dropout
    assert (arch["filters"], arch["num_cells"], arch["lr"], arch["dropout"]) == (8, 2, 1e-3, False)


def test_derived_cell_takes_each_nodes_strongest_operations(searched) -> None:
    w, net = searched.weights(), searched.net
    arch = searched.space.decode(searched.derived())
    e = net.edges.index(type(net.edges[0])(0, "prev"))
    allowed = [net.ops.index(o) for o in ("sep3x3", "identity")]
    best = net.ops[max(allowed, key=lambda k: w[e, k])]
    assert arch["node0_op0"] == best


def test_candidates_are_distinct_valid_and_ranked_by_shared_accuracy(searched) -> None:
    x, y = stripes(40, seed=2)
    cands = searched.candidates(5, x, y)
    assert len(cands) == 5
    keys = {searched.space.key(c.tokens) for c in cands}
    assert len(keys) == 5
    accs = [c.shared_accuracy for c in cands]
    assert accs == sorted(accs, reverse=True) and all(0 <= a <= 1 for a in accs)
    assert searched.space.key(searched.derived()) in keys
    assert np.allclose(searched.evaluate(np.stack([c.tokens for c in cands]), x, y), accs)


def test_evaluate_scores_any_architecture_of_the_space(searched) -> None:
    space = searched.space
    rows = np.array(list(space.architectures())[:: max(1, space.size() // 7)][:6])
    x, y = stripes(300, seed=4)  # more than one evaluation batch
    accs = searched.evaluate(rows, x, y)
    assert accs.shape == (len(rows),) and np.all((accs >= 0) & (accs <= 1))
    assert 0 <= searched.relaxed_accuracy(x, y) <= 1


def test_probe_samples_valid_rows_without_touching_the_strategy(searched) -> None:
    space, before = searched.space, searched.weights()
    rows = searched.probe(50, np.random.default_rng(0))
    assert rows.shape == (50, len(space))
    archs = [space.decode(r) for r in rows]
    assert all(a["node1_in0"] == "node0" and a["node1_op1"] in ("max3x3", "conv1x1") for a in archs)
    assert len({space.key(r) for r in rows}) > 1  # sampled, not the argmax
    assert np.array_equal(rows, searched.probe(50, np.random.default_rng(0)))
    assert np.array_equal(before, searched.weights())


def test_step_reports_the_scalars_of_both_steps(searched) -> None:
    out = searched.step(*stripes(16), *stripes(16, seed=1))
    assert set(out) >= {
        "supernet/loss",
        "supernet/accuracy",
        "supernet/val_loss",
        "controller/alpha_entropy",
        "controller/alpha_max",
    }
    assert 0 <= out["supernet/accuracy"] <= 1 and 0 < out["controller/alpha_max"] <= 1


# -- checkpoints ------------------------------------------------------------------------------------
def test_save_restore_continues_identically(tmp_path) -> None:
    x, y = stripes(16)
    xv, yv = stripes(16, seed=1)
    a = make(seed=5, darts_epochs=1)
    for _ in range(3):
        a.step(x, y, xv, yv)
    a.save(tmp_path / "ckpt", {"step": 3})
    after_a = [a.step(x, y, xv, yv) for _ in range(2)]
    b = make(seed=6, darts_epochs=1)  # another seed: everything must come from the checkpoint
    assert b.restore(tmp_path / "ckpt") == {"step": 3}
    after_b = [b.step(x, y, xv, yv) for _ in range(2)]
    assert after_a == after_b
    assert np.array_equal(a.weights(), b.weights())
    assert [f.name for f in (tmp_path / "ckpt").iterdir()] == ["darts.npz"]


def test_restore_refuses_another_space(tmp_path) -> None:
    make().save(tmp_path, {})
    with pytest.raises(RunError, match=r"cannot read DARTS checkpoint .*vocabularies"):
        make(cell_space(num_nodes=3, filters=(4,), num_cells=(1,), lr_grid=3)).restore(tmp_path)


# -- a real search ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_epoch_on_mnist_derives_a_cell_far_above_chance() -> None:
    from rlnas.data import DataSpec, load
    from rlnas.strategies.darts import DartsStrategy

    data = load(DataSpec("mnist_5k"))
    batch = 64
    steps = len(data.x_train) // batch
    st = DartsStrategy(
        cell_space(),
        DartsSettings(darts_epochs=1, darts_lr=0.1),  # one epoch: a faster start than DARTS's 0.025
        data.input_shape,
        10,
        seed=0,
        steps_per_epoch=steps,
    )
    rng = np.random.default_rng(0)
    order, val = rng.permutation(len(data.x_train)), rng.permutation(len(data.x_val))
    for i in range(steps):
        t, v = order[i * batch : (i + 1) * batch], val[(i * batch) % len(val) :][:batch]
        st.step(data.x_train[t], data.y_train[t], data.x_val[v], data.y_val[v])
    assert st.relaxed_accuracy(data.x_val, data.y_val) > 0.4  # chance is 0.1
    best = st.candidates(1, data.x_val, data.y_val)[0]
    cell_space().decode(best.tokens)
    # the derived path on weights trained for the mixture: far below the relaxed network (DARTS's
    # discretisation gap), still well above chance (0.1; +-0.01 on 1000 images)
    assert best.shared_accuracy > 0.15
