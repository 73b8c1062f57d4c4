"""Lookup tables: the CSV format, its validation, `rlnas tabulate` (resumable) and the tabular env."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.tabular_env import TabularNasEnv
from rlnas.bench.tabulate import tabulate
from rlnas.config import SearchConfig
from rlnas.errors import ConfigError, SearchAborted
from rlnas.search.pool import play
from rlnas.space import Decision, SearchSpace
from rlnas.tables import lookup as lookup_table
from tests.conftest import SyntheticEvaluator


def small_space() -> SearchSpace:
    return SearchSpace(
        [
            Decision("num_layers", (1, 2), "int"),
            Decision("units_0", (16, 32), "int"),
            Decision("units_1", (16,), "int", {"num_layers": (2,)}),
            Decision("activation", ("relu", "tanh")),
            Decision("dropout", (False, True), "bool"),
            Decision("lr", (1e-3, 0.01), "float"),
        ]
    )


def write_table(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or [*small_space().names, "val_accuracy"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def full_rows(space: SearchSpace) -> list[dict]:
    rows = []
    for i, tokens in enumerate(space.architectures()):
        arch = space.decode(tokens)
        rows.append(
            {n: lookup_table.format_cell(arch.get(n)) for n in space.names} | {"val_accuracy": i / 100}
        )
    return rows


def test_space_enumerates_every_architecture_once():
    space = small_space()
    archs = list(space.architectures())
    assert len(archs) == space.size() == 2 * 2 * 2 * 2 + 2 * 2 * 2 * 2  # units_1 has one value
    assert len({space.key(t) for t in archs}) == len(archs)
    assert all(space.canonical_tokens(t) == t for t in archs)


def test_cells_are_written_as_python_prints_them_and_read_back():
    space = small_space()
    tokens = space.encode({"num_layers": 1, "units_0": 32, "activation": "tanh", "dropout": True, "lr": 0.01})
    row = lookup_table.result_row(space, tokens, {"status": "ok", "val_accuracy": 0.5, "params": 10})
    assert (
        row["units_1"] == "" and row["dropout"] == "True" and row["lr"] == "0.01" and row["units_0"] == "32"
    )
    assert lookup_table.row_tokens(space, row, 2) == tokens
    assert lookup_table.parse_cell(space["lr"], "1e-3") == 0.001
    assert lookup_table.parse_cell(space["lr"], "0.0010000000000000002") == 0.001  # within 1e-9
    failed = lookup_table.result_row(
        space, tokens, {"status": "failed", "val_accuracy": 0.0, "error": "boom"}
    )
    assert failed["val_accuracy"] == "" and failed["error"] == "boom"


def test_load_table_reads_a_complete_table_and_averages_repeats(tmp_path):
    space = small_space()
    rows = full_rows(space)
    rows.append(rows[0] | {"val_accuracy": 0.5})  # a second seed of the first architecture
    table = lookup_table.load_table(write_table(tmp_path / "t.csv", rows), space)
    first = next(space.architectures())
    assert table.val_accuracy(first) == pytest.approx(0.25)
    assert table.best == pytest.approx((len(rows) - 2) / 100)
    assert len(table.values) == space.size()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda rows: rows[:-1], r"lacks 1 of the space's 32 architectures \(first: "),
        (lambda rows: [rows[0] | {"lr": "0.5"}, *rows[1:]], r"line 2: '0.5' is not a value of decision 'lr'"),
        (
            lambda rows: [rows[0] | {"units_0": "abc"}, *rows[1:]],
            r"'abc' is not a value of decision 'units_0'",
        ),
        (
            lambda rows: [rows[0] | {"dropout": "yes"}, *rows[1:]],
            r"'yes' is not a value of decision 'dropout'",
        ),
        (
            lambda rows: [rows[0] | {"units_1": "16"}, *rows[1:]],
            r"line 2: units_1=16 is set but the decision",
        ),
        (lambda rows: [rows[0] | {"activation": ""}, *rows[1:]], r"activation is empty but active"),
        (
            lambda rows: [rows[0] | {"val_accuracy": "high"}, *rows[1:]],
            r"val_accuracy 'high' is not a number",
        ),
    ],
)
def test_load_table_rejects_bad_tables_with_one_line(tmp_path, edit, match):
    space = small_space()
    path = write_table(tmp_path / "t.csv", edit(full_rows(space)))
    with pytest.raises(ConfigError, match=match):
        lookup_table.load_table(path, space)


def test_load_table_names_missing_columns_and_files(tmp_path):
    space = small_space()
    rows = [{k: v for k, v in r.items() if k != "lr"} for r in full_rows(space)]
    header = [n for n in space.names if n != "lr"] + ["val_accuracy"]
    with pytest.raises(ConfigError, match=r"lacks column\(s\) lr"):
        lookup_table.load_table(write_table(tmp_path / "t.csv", rows, header), space)
    with pytest.raises(ConfigError, match="does not exist"):
        lookup_table.load_table(tmp_path / "nope.csv", space)


def test_tabular_env_is_registered_deterministic_and_answers_from_the_table(tmp_path):
    space = small_space()
    path = write_table(tmp_path / "t.csv", full_rows(space))
    env = gym.make(envs.TABULAR_ENV_ID, table=str(path), space=space.to_dict())
    assert isinstance(env.unwrapped, TabularNasEnv) and not env.spec.nondeterministic
    check_env(env.unwrapped)
    table = lookup_table.load_table(path, space)
    for tokens in list(space.architectures())[::5]:
        reward, info = play(env.unwrapped, tokens, seed=0)
        assert reward == pytest.approx(table.val_accuracy(tokens))
        assert info["metrics"]["status"] == "ok"


def test_tabular_env_gives_failed_reward_for_a_failed_row(tmp_path):
    space = small_space()
    rows = full_rows(space)
    rows[3]["val_accuracy"] = ""
    env = TabularNasEnv(write_table(tmp_path / "t.csv", rows), space, failed_reward=-1.0)
    reward, info = play(env, list(space.architectures())[3], seed=0)
    assert reward == -1.0 and info["metrics"]["status"] == "failed"


def test_tabulate_trains_everything_once_then_only_what_is_missing(tmp_path):
    space, out = small_space(), tmp_path / "table.csv"
    evaluators: list[SyntheticEvaluator] = []

    def make():
        evaluators.append(SyntheticEvaluator())
        return evaluators[-1]

    config = SearchConfig()
    first = tabulate(config, space, out, workers=2, evaluator=make, should_stop=lambda: len(_rows(out)) >= 10)
    assert not first.complete and 10 <= first.trained < space.size()
    partial = {tuple(r.items()) for r in _rows(out)}
    with out.open("a") as fh:
        fh.write("2,32,16,re")  # a torn last line, as a crash mid-write leaves it
    second = tabulate(config, space, out, workers=1, evaluator=make)
    assert second.complete and second.done_before == first.trained
    assert first.trained + second.trained == space.size()
    rows = _rows(out)
    assert partial <= {tuple(r.items()) for r in rows}  # nothing written before was lost
    table = lookup_table.load_table(out, space)
    expected = SyntheticEvaluator()
    for tokens in space.architectures():
        assert table.val_accuracy(tokens) == pytest.approx(
            expected.evaluate(space.decode(tokens), 0).val_accuracy
        )
    assert len(evaluators) == 3  # one per worker and build


def test_tabulate_retries_failed_rows_and_stops_when_everything_fails(tmp_path):
    space, out = small_space(), tmp_path / "table.csv"
    config = SearchConfig(max_consecutive_failures=100)
    always = SyntheticEvaluator()
    always.fail_when = {"units_0": 16}
    first = tabulate(config, space, out, evaluator=lambda: always)
    assert first.complete and first.failed == space.size() // 2
    second = tabulate(config, space, out, evaluator=SyntheticEvaluator)
    assert second.trained == space.size() // 2 and second.failed == 0  # only the failed ones again
    broken = SyntheticEvaluator()
    broken.fail_when = {"num_layers": 1}
    with pytest.raises(SearchAborted, match="the last 3 children all failed"):
        strict = SearchConfig(max_consecutive_failures=3)
        tabulate(strict, space, tmp_path / "other.csv", evaluator=lambda: broken)


def test_tabulate_refuses_a_file_of_another_space(tmp_path):
    path = write_table(tmp_path / "t.csv", [], header=["a", "b"])
    with pytest.raises(ConfigError, match="exists with other columns"):
        tabulate(SearchConfig(), small_space(), path, evaluator=SyntheticEvaluator)


def _rows(path: Path) -> list[dict]:
    return lookup_table.read_rows(path)[1] if path.exists() else []


@pytest.mark.slow  # trains real children for a table
def test_cli_tabulate_builds_a_table_the_env_loads(tmp_path, tiny_npz):
    config = tmp_path / "space.toml"
    config.write_text(
        '[space]\nmodel = "mlp"\n'
        '[[space.decisions]]\nname = "units_0"\nvalues = [8, 16]\n'
        '[[space.decisions]]\nname = "lr"\nvalues = [0.001, 0.01]\n'
    )
    out = tmp_path / "table.csv"
    cmd = [sys.executable, "-m", "rlnas.cli", "tabulate", "--config", str(config), "--out", str(out)]
    cmd += ["--dataset", str(tiny_npz), "--epochs", "1", "--workers", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "4 architectures" in done.stdout
    from rlnas.config import load_config

    _, space, _ = load_config(config)
    table = lookup_table.load_table(out, space)
    assert np.all((table.values > 0) & (table.values <= 1))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # complete: trains nothing
    assert again.returncode == 0 and "0 trained now" in again.stdout
    bad = subprocess.run([*cmd[:-2], "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "workers must be positive" in bad.stderr
