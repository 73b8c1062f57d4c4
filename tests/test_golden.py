"""Golden journals: a redesign must not change what a search proposes or what it scores.

Each scenario runs a synthetic search and compares, trial by trial, the index, tokens, key, architecture
and reward against a journal recorded on main before the redesign (``tests/golden/*.json``). Rewards are
compared as the exact floats JSON round-trips. Regenerate only for an intended change of behaviour:
``RLNAS_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from rlnas.config import PLAIN_REINFORCE, SearchConfig, make_config
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space
from tests.conftest import Interrupting, SyntheticEvaluator

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _traced(compiled_controllers: None) -> None:
    """The journals were recorded, and are checked, as users run: controllers traced."""


FIELDS = ("index", "tokens", "key", "architecture", "reward", "status", "cached_from")

SCENARIOS = {
    # Zoph & Le's plain REINFORCE, one flag set away from the default.
    "reinforce_p1": make_config(trials=24, archs_per_update=4, seed=3, **PLAIN_REINFORCE),
    "reinforce_p2": make_config(trials=24, archs_per_update=4, seed=3, pipeline=2, **PLAIN_REINFORCE),
    # The reward model with Thompson sampling in every slot of a batch (--model-select thompson).
    "thompson_p1": make_config(trials=24, archs_per_update=4, seed=3, model_select="thompson"),
    "thompson_p2": make_config(trials=24, archs_per_update=4, seed=3, pipeline=2, model_select="thompson"),
    # The default: the batch's first slot the model's best mean, the rest Thompson.
    "default_p1": SearchConfig(trials=24, archs_per_update=4, seed=3),
    "default_p2": SearchConfig(trials=24, archs_per_update=4, seed=3, pipeline=2),
    "random_p1": SearchConfig(trials=20, archs_per_update=4, seed=4, strategy="random"),
    "evolution_p1": make_config(
        trials=24, archs_per_update=4, seed=5, strategy="evolution", population_size=8, tournament_size=3
    ),
    "evolution_p2": make_config(
        trials=24,
        archs_per_update=4,
        seed=5,
        strategy="evolution",
        population_size=8,
        tournament_size=3,
        pipeline=2,
    ),
    "factorized_p1": make_config(
        trials=16, archs_per_update=4, seed=6, controller="factorized", **PLAIN_REINFORCE
    ),
}


def _store(tmp_path: Path, name: str, config: SearchConfig) -> RunStore:
    store = RunStore.create(tmp_path / name)
    store.write_json("config.json", {"search": config.to_dict(), "space": default_space().to_dict()})
    return store


def _rows(store: RunStore) -> list[dict]:
    """The journal as written on disk (read directly, so that the test does not depend on the API)."""
    lines = (store.path / "trials.jsonl").read_text().splitlines()
    records = sorted((json.loads(line) for line in lines if line.strip()), key=lambda t: t["index"])
    return [{f: t.get(f) for f in FIELDS} for t in records]


def _check(name: str, rows: list[dict]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(rows, indent=1, sort_keys=True) + "\n"
    if os.environ.get("RLNAS_WRITE_GOLDEN"):
        path.write_text(text)
    assert json.loads(text) == json.loads(path.read_text()), f"{name} differs from {path}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_search_proposes_and_scores_what_it_did_before_the_redesign(tmp_path, name):
    config = SCENARIOS[name]
    store = _store(tmp_path, name, config)
    run_search(config, default_space(), store, evaluator=SyntheticEvaluator())
    _check(name, _rows(store))


@pytest.mark.parametrize("kind", ["reinforce", "thompson", "default"])
@pytest.mark.parametrize("pipeline", [1, 2])
def test_a_resumed_search_matches_its_golden_journal(tmp_path, pipeline, kind):
    config = dataclasses.replace(SCENARIOS[f"{kind}_p1"], pipeline=pipeline)
    store = _store(tmp_path, "resumed", config)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, default_space(), store, evaluator=Interrupting(at=10))
    run_search(config, default_space(), store, evaluator=SyntheticEvaluator(), resume=True)
    _check(f"{kind}_p{pipeline}", _rows(store))


@pytest.mark.parametrize("kind", ["reinforce", "default"])
def test_two_workers_score_what_one_worker_scores(tmp_path, kind):
    config = SCENARIOS[f"{kind}_p1"]
    store = _store(tmp_path, "two", config)
    run_search(config, default_space(), store, evaluator=[SyntheticEvaluator(), SyntheticEvaluator()])
    _check(f"{kind}_p1", _rows(store))


def test_bench_runs_every_strategy_as_it_did_before_the_redesign(tmp_path):
    """``rlnas bench`` on a project table: every evaluation's reward, per strategy and seed."""
    from rlnas.cli import main

    root = Path(__file__).parent.parent / "benchmarks" / "tables"
    out = tmp_path / "runs.json"
    code = main(
        [
            "bench",
            "--table",
            str(root / "fashion_mlp_small.csv"),
            "--config",
            str(root / "mlp_small_fashion.toml"),
            "--budget",
            "24",
            "--seeds",
            "2",
            "--strategies",
            "reinforce,random,evolution",
            "--lstm-units",
            "8",
            "--no-novel-only",
            "--model-steps",
            "0",
            "--explore-mix",
            "0",
            "--plot",
            str(tmp_path / "bench.png"),
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    _check("bench_fashion", json.loads(out.read_text())["runs"])
