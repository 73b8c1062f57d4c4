"""benchmarks/weight_sharing.py: Kendall tau, random search at equal CPU time and one seed's measure,
with a fake one-shot strategy (no supernet is trained here)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.errors import ConfigError
from rlnas.space import Decision, SearchSpace
from rlnas.strategies.oneshot import Candidate
from rlnas.tables import lookup

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "weight_sharing.py"


def _script():
    spec = importlib.util.spec_from_file_location("weight_sharing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["weight_sharing"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ws = _script()
SPACE = SearchSpace(
    [Decision("op", ("a", "b", "c"), "choice"), Decision("width", (8, 16), "int")], model="mlp"
)


def _write_table(path: Path, rows: list[tuple[str, int, float, float]], *, seconds: bool = True) -> Path:
    names = [*lookup.header(SPACE)] if seconds else [*SPACE.names, "val_accuracy", "status"]
    lookup.append_rows(
        path,
        names,
        [
            {"op": op, "width": str(w), "val_accuracy": str(acc), "status": "ok"}
            | ({"fit_seconds": str(sec)} if seconds else {})
            for op, w, acc, sec in rows
        ],
    )
    return path


ROWS = [("a", 8, 0.5, 1.0), ("a", 16, 0.6, 1.0), ("b", 8, 0.7, 1.0), ("b", 16, 0.8, 1.0)]
ROWS += [("c", 8, 0.9, 1.0), ("c", 16, 0.3, 1.0), ("c", 16, 0.4, 3.0)]  # c-16 twice: averaged


@pytest.fixture
def tab(tmp_path: Path):
    return ws.read_table(_write_table(tmp_path / "t.csv", ROWS), SPACE)


def test_read_table_averages_repeated_rows_in_space_order(tab) -> None:
    assert tab.tokens.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]
    assert tab.accuracy == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 0.35])
    assert tab.cost == pytest.approx([1, 1, 1, 1, 1, 2])
    assert tab.best == pytest.approx(0.9)
    assert tab.accuracy_of([1, 1]) == pytest.approx(0.8)


def test_read_table_needs_fit_seconds_and_every_architecture(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks column fit_seconds"):
        ws.read_table(_write_table(tmp_path / "a.csv", ROWS, seconds=False), SPACE)
    with pytest.raises(ConfigError, match="lacks 1 of the space's 6 architectures"):
        ws.read_table(_write_table(tmp_path / "b.csv", ROWS[1:]), SPACE)


def test_kendall_tau_is_tau_b_over_the_architectures_scored_in_both() -> None:
    truth = [0.1, 0.2, 0.3, 0.4]
    assert ws.kendall_tau([1, 2, 3, 4], truth) == pytest.approx(1.0)
    assert ws.kendall_tau([4, 3, 2, 1], truth) == pytest.approx(-1.0)
    assert ws.kendall_tau([1, 2, 3, math.nan], [0.1, 0.2, math.nan, 0.4]) == pytest.approx(1.0)
    assert ws.kendall_tau([1, 1, 2, 2], truth) == pytest.approx(4 / math.sqrt(6 * 4))  # tau-b with ties
    assert ws.kendall_tau([0.5] * 4, truth) == 0.0  # a collapsed supernet ranks nothing


def test_random_at_cost_charges_each_draw_and_stops_before_the_budget() -> None:
    acc, cost = np.array([0.1, 0.9, 0.5, math.nan]), np.array([1.0, 1.0, 1.0, 1.0])
    found, n = ws.random_at_cost(acc, cost, 3.5, np.random.default_rng(7))
    draws = np.random.default_rng(7).integers(4, size=3)
    assert n == 3
    seen = [a for a in acc[draws] if not math.isnan(a)]
    assert found == (max(seen) if seen else found)
    assert ws.random_at_cost(acc, cost * 5, 3.5, np.random.default_rng(0)) == (
        pytest.approx(math.nan, nan_ok=True),
        0,
    )
    assert ws.random_at_cost(acc, cost, 1000.0, np.random.default_rng(0))[0] == pytest.approx(0.9)


class FakeOneShot:
    """Scores every architecture with ``score`` (index -> value) and charges one clock second a step."""

    name = "fake"

    def __init__(self, tab, score, clock: list[float]) -> None:
        self.tab, self.score, self.clock, self.batches = tab, score, clock, []

    def step(self, x_train, y_train, x_val, y_val):
        self.batches.append((x_train.copy(), x_val.copy()))
        self.clock[0] += 1.0
        return {"supernet/loss": 0.0}

    def evaluate(self, tokens, x, y):
        return np.array([self.score[self.tab._index[self.tab.space.key(list(t))]] for t in tokens])

    def candidates(self, k, x_val, y_val):
        s = self.evaluate(self.tab.tokens, x_val, y_val)
        return [Candidate(self.tab.tokens[i], float(s[i])) for i in np.argsort(-s)[:k]]


def _data() -> object:
    """Train rows 0..9 and val rows 100..105 (each row's value tells where it came from)."""
    x_train, x_val = np.arange(10.0)[:, None], 100 + np.arange(6.0)[:, None]
    return ws.Data(x_train, np.zeros(10, np.int64), x_val, np.ones(6, np.int64))


def test_measure_seed_trains_as_the_one_shot_loop_then_scores_a_perfect_supernet(tab) -> None:
    clock, made = [0.0], []

    def make(seed, settings):
        made.append((seed, settings))
        made.append(FakeOneShot(tab, tab.accuracy, clock))
        return made[-1]

    r = ws.measure_seed(
        make,
        {"x": 1},
        _data(),
        tab,
        seed=3,
        epochs=2,
        steps_per_epoch=2,
        batch_size=4,
        cost=np.ones(6),
        clock=lambda: clock[0],
    )
    batches = made[1].batches
    assert made[0] == (3, {"x": 1})
    assert len(batches) == 4 and all(xt.shape == (4, 1) and xv.shape == (4, 1) for xt, xv in batches)
    for epoch in (batches[:2], batches[2:]):  # each epoch: distinct train rows, val rows beside them
        rows = np.concatenate([xt[:, 0] for xt, _ in epoch])
        assert len(set(rows)) == 8 and rows.max() < 10
        assert all(xv.min() >= 100 for _, xv in epoch)
    assert [xt[:, 0].tolist() for xt, _ in batches[:2]] != [xt[:, 0].tolist() for xt, _ in batches[2:]]
    assert r["cpu_seconds"] == 4.0 and r["random_evaluations"] == 4  # one clock second a step, 1 s a child
    assert r["tau"] == pytest.approx(1.0)
    assert r["regret"] == 0.0 and r["pick"] == {"op": "c", "width": 8}
    assert r["regret_minus_random"] == pytest.approx(-r["random_regret"])


def test_measure_seed_with_a_reversed_supernet_picks_the_worst(tab) -> None:
    clock = [0.0]
    r = ws.measure_seed(
        lambda seed, s: FakeOneShot(tab, -tab.accuracy, clock),
        {},
        _data(),
        tab,
        seed=0,
        epochs=1,
        steps_per_epoch=2,
        batch_size=4,
        clock=lambda: clock[0],
    )
    assert r["tau"] == pytest.approx(-1.0)
    assert r["regret"] == pytest.approx(0.9 - 0.35)
    assert r["random_evaluations"] <= 2  # the table's fit_seconds (1 or 2 s) against 2 clock seconds


def test_tau_rows_scores_the_shared_weights_on_the_first_validation_rows(tab) -> None:
    seen = []

    class Spy(FakeOneShot):
        def evaluate(self, tokens, x, y):
            seen.append(x[:, 0].tolist())
            return super().evaluate(tokens, x, y)

    ws.measure_seed(
        lambda seed, s: Spy(tab, tab.accuracy, [0.0]),
        {},
        _data(),
        tab,
        seed=0,
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        tau_rows=2,
    )
    assert seen[-1] == [100.0, 101.0]  # tau on the first 2 rows; the pick (seen[0]) on all 6
    assert len(seen[0]) == 6


def test_summary_gives_intervals_and_the_paired_difference_per_variant(tab) -> None:
    def run(seed, tau, regret):
        return {
            "seed": seed,
            "tau": tau,
            "regret": regret,
            "random_regret": 0.1,
            "regret_minus_random": regret - 0.1,
            "cpu_seconds": 10.0,
            "random_evaluations": 3,
            "shared_min": 0.2,
            "shared_max": 0.4,
        }

    runs = {
        "default": [run(0, 0.5, 0.0), run(1, 0.3, 0.2)],
        "no warm-up": [run(0, 0.1, 0.1), run(1, 0.1, 0.3)],
    }
    text = ws.summarize("enas", tab, runs)
    assert "| default | 2 | 0.4000 [" in text
    assert "each variant minus 'default', paired by seed" in text
    assert "| no warm-up | 2 | -0.3000 [-1.5706, 0.9706] | 0.1000 [0.1000, 0.1000] |" in text


def test_settings_and_variants_parse_as_toml_values() -> None:
    assert ws.parse_settings(["a=0", "b=0.5", "c=true", "d=relu"]) == {
        "a": 0,
        "b": 0.5,
        "c": True,
        "d": "relu",
    }
    assert ws.parse_variant("no warm-up:warmup=0,entropy=0.1") == (
        "no warm-up",
        {"warmup": 0, "entropy": 0.1},
    )
    assert ws.parse_variant("default") == ("default", {})
    with pytest.raises(ConfigError, match="'oops' is not key=value"):
        ws.parse_settings(["oops"])
    with pytest.raises(ConfigError, match="has no label"):
        ws.parse_variant(":a=1")


def test_child_cpu_trains_distinct_table_architectures_as_tabulate_did(tab, monkeypatch) -> None:
    from rlnas import data
    from rlnas.config import make_config
    from rlnas.models import child

    trained = []
    monkeypatch.setattr(data, "load", lambda spec: ("dataset", spec.train_fraction))
    monkeypatch.setattr(
        child, "train_and_evaluate", lambda arch, ds, spec, seed: trained.append((arch, ds, spec))
    )
    config = make_config(epochs=3, batch_size=16, train_fraction=0.5)
    seconds = ws.child_cpu_seconds(config, tab, 3)
    assert seconds >= 0 and len(trained) == 3
    assert len({tuple(sorted(a.items())) for a, _, _ in trained}) == 3
    assert all(a in [SPACE.decode(t) for t in tab.tokens.tolist()] for a, _, _ in trained)
    assert {(ds, spec.epochs, spec.batch_size, spec.final) for _, ds, spec in trained} == {
        (("dataset", 0.5), 3, 16, False)
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--settings", "no_such_setting=1"], "weight_sharing: unknown setting 'no_such_setting'"),
        (
            ["--child-cpu", "zero"],
            "weight_sharing: --child-cpu 'zero' is invalid; use measure, fit or a number",
        ),
        (["--seeds", "0"], "weight_sharing: --seeds 0, --cpu-probes 3 and --tau-rows None must be positive"),
    ],
)
def test_bad_input_is_one_line_before_anything_is_written(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    table = _write_table(tmp_path / "t.csv", ROWS)
    config = tmp_path / "c.toml"
    config.write_text(
        '[space]\nmodel = "mlp"\n[[space.decisions]]\nname = "op"\nvalues = ["a", "b", "c"]\n'
        '[[space.decisions]]\nname = "width"\nvalues = [8, 16]\n'
    )
    out = tmp_path / "out" / "r.json"
    cmd = [sys.executable, str(SCRIPT), "--table", str(table), "--config", str(config), "--strategy", "enas"]
    proc = subprocess.run(
        [*cmd, *flags, "--out", str(out)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith(message) and len(proc.stderr.strip().splitlines()) == 1
    assert not out.parent.exists()
