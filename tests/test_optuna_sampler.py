"""rlnas.optuna.ReinforceSampler in Optuna's own loop: reproducible, conditional spaces, enqueued
trials, threads, two processes on one journal, a resumed study, NaN, minimize, discretization."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from rlnas.errors import ConfigError  # noqa: E402
from rlnas.models.child import Status  # noqa: E402
from rlnas.optuna import ROW_ATTR, ReinforceSampler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def toy(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", 0, 7)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    return -((x - 5) ** 2) + {"a": 0.0, "b": 1.0, "c": 0.5}[c]


def run(objective=toy, n: int = 13, seed: int = 0, direction: str = "maximize", **kw) -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=ReinforceSampler(seed=seed), **kw)
    study.optimize(objective, n_trials=n)
    return study


def params(study: optuna.Study) -> list[dict]:
    return [t.params for t in study.trials]


def test_same_seed_same_trials_and_another_seed_differs():
    assert params(run(seed=3)) == params(run(seed=3))
    assert params(run(seed=3)) != params(run(seed=4))


def test_rows_come_in_batches_of_four_and_are_told_in_order():
    study = run(n=13)
    rows = [t.system_attrs.get(ROW_ATTR) for t in study.trials]
    assert rows[0] is None  # the first trial runs before the study has a space: random
    assert [r[1:3] for r in rows[1:]] == [[b, i] for b in range(3) for i in range(4)]
    assert [r[3] for r in rows[1:]] == [0] * 4 + [1] * 4 + [2] * 4  # each batch after the last's tell
    sampler = study.sampler
    assert sampler._handout.told == 3


def test_conditional_parameters_outside_the_intersection_are_sampled():
    def branchy(trial):
        kind = trial.suggest_categorical("kind", ["linear", "tree"])
        if kind == "linear":
            return -abs(trial.suggest_float("alpha", 0.0, 1.0, step=0.25) - 0.5)
        return -abs(trial.suggest_int("depth", 1, 6) - 4) / 4

    study = run(branchy, n=16)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {"alpha", "depth"} <= {k for t in study.trials for k in t.params}
    assert ROW_ATTR in study.trials[-1].system_attrs  # "kind" is searched by the controller


def test_enqueued_trial_is_honoured_and_told():
    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(toy, n_trials=5)
    study.enqueue_trial({"x": 5, "c": "b"})
    study.optimize(toy, n_trials=8)
    enqueued = study.trials[5]
    assert enqueued.params == {"x": 5, "c": "b"} and ROW_ATTR not in enqueued.system_attrs
    told = [row for e in study.sampler._handout.events if e[0] == "tell" for row in e[1].tolist()]
    assert [1, 5] in told  # decisions in name order: c="b" is token 1, x=5 token 5: it was told


def test_two_threads_complete_without_duplicate_rows():
    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(toy, n_trials=16, n_jobs=2)
    assert len(study.trials) == 16
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    rows = [tuple(t.system_attrs[ROW_ATTR][1:3]) for t in study.trials if ROW_ATTR in t.system_attrs]
    assert len(rows) == len(set(rows)) >= 12


def _journal(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def test_resumed_study_continues_as_the_uninterrupted_one(tmp_path):
    whole = run(n=18, seed=1)
    storage = _journal(tmp_path / "journal.log")
    first = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", sampler=ReinforceSampler(seed=1)
    )
    first.optimize(toy, n_trials=7)  # stops inside a batch
    again = optuna.load_study(
        study_name="s", storage=_journal(tmp_path / "journal.log"), sampler=ReinforceSampler(seed=1)
    )
    again.optimize(toy, n_trials=11)
    assert params(again) == params(whole)


WORKER = """
import sys, optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from rlnas.optuna import ReinforceSampler
sys.path.insert(0, {tests!r})
from test_optuna_sampler import toy
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = JournalStorage(JournalFileBackend({path!r}))
study = optuna.load_study(study_name="shared", storage=storage, sampler=ReinforceSampler(seed=0))
study.optimize(toy, n_trials=8)
"""


def test_two_processes_share_a_journal(tmp_path):
    path = tmp_path / "journal.log"
    optuna.create_study(study_name="shared", storage=_journal(path), direction="maximize")
    code = WORKER.format(tests=str(ROOT / "tests"), path=str(path))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=_journal(path))
    assert len(study.trials) == 16
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_nan_and_failed_trials_are_told_as_failed_rows_with_the_worst_reward():
    def sometimes_nan(trial):
        value = toy(trial)
        if trial.params["c"] == "a":
            return math.nan
        if trial.params["c"] == "c":
            raise RuntimeError("child crashed")
        return value

    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0))
    study.optimize(sometimes_nan, n_trials=13, catch=(RuntimeError,))
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.FAIL in states
    tells = [e for e in study.sampler._handout.events if e[0] == "tell"]
    statuses = [s for e in tells for s in e[3]]
    rewards = np.concatenate([e[2] for e in tells])
    assert Status.FAILED in statuses and np.isfinite(rewards).all()
    ok = [r for r, s in zip(rewards, statuses, strict=True) if s == Status.OK]
    failed = [r for r, s in zip(rewards, statuses, strict=True) if s == Status.FAILED]
    assert ok and max(failed) <= min(ok)  # never rewarded above a real result


def test_minimize_is_the_same_search_as_maximizing_the_negation():
    def loss(trial):
        return -toy(trial)

    mini = run(loss, n=17, direction="minimize", seed=2)
    maxi = run(toy, n=17, direction="maximize", seed=2)
    assert params(mini) == params(maxi)
    assert mini.best_value == -maxi.best_value


def test_a_float_without_step_is_discretized_with_one_warning():
    def lr(trial):
        return -abs(math.log10(trial.suggest_float("lr", 1e-4, 1e-1, log=True)) + 2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = run(lr, n=13)
    mine = [w for w in caught if "ReinforceSampler searches 'lr'" in str(w.message)]
    assert len(mine) == 1
    grid = np.geomspace(1e-4, 1e-1, 16)
    for t in study.trials[1:]:
        assert np.isclose(grid, t.params["lr"]).any()


def test_bad_arguments_and_multi_objective_are_one_line_errors():
    with pytest.raises(ConfigError, match="batch must be a positive integer, got 0"):
        ReinforceSampler(batch=0)
    with pytest.raises(ConfigError, match="grid_points must be an integer of at least 2, got 1"):
        ReinforceSampler(grid_points=1)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=ReinforceSampler())
    with pytest.raises(ConfigError, match="searches one objective"):
        study.optimize(lambda t: (t.suggest_int("x", 0, 3), 1.0), n_trials=2)


BLOCKED = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == {name!r} or name.startswith({name!r} + "."):
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
import {module}
"""


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [("rlnas.optuna", "optuna", "rlnas[optuna]"), ("rlnas.tune", "ray", "rlnas[tune]")],
)
def test_missing_extra_names_it_in_one_line(module, blocked, extra):
    code = textwrap.dedent(BLOCKED.format(name=blocked, module=module))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1] == f"ImportError: {module} needs " + (
        f"Optuna: pip install '{extra}'" if blocked == "optuna" else f"Ray Tune: pip install '{extra}'"
    )
