"""The search loop through its public API, with a synthetic evaluator (fast, deterministic)."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.config import PLAIN_REINFORCE, make_config
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space
from tests.conftest import SyntheticEvaluator


def _search(tmp_path, name, evaluator=None, **overrides):
    config = make_config(**({"trials": 24, "archs_per_update": 8, "seed": 3} | overrides))
    store = RunStore.create(tmp_path / name)
    store.write_config(config, default_space())
    result = run_search(config, default_space(), store, evaluator=evaluator or SyntheticEvaluator())
    return store, result


def test_search_writes_every_trial_checkpoint_and_tensorboard(tmp_path):
    store, result = _search(tmp_path, "a")
    trials = store.trials()
    assert [t.index for t in trials] == list(range(24))
    assert [(t.key, t.reward) for t in trials] == [(t.key, t.reward) for t in result.trials]
    assert trials[0].metrics["val_loss"] is None  # NaN (no loss from the synthetic child) is stored as null
    for t in trials:
        record = t.to_dict()  # the journal line
        assert set(record) >= {"tokens", "architecture", "reward", "val_accuracy", "params", "status", "key"}
        assert default_space().key(list(t.tokens)) == t.key
        # a batch holding a mutant or uniform row (picked from the default's pool) has no sampling
        # probability to record; a batch of the policy's own samples records each row's
        assert t.log_prob is None or t.log_prob < 0
    assert any(t.log_prob is not None for t in trials)
    assert result.best.reward == max(t.reward for t in trials)
    assert store.controller_path.is_file()
    assert store.read_json("state.json")["trials"] == 24
    assert list(store.tb_dir.glob("events.out.tfevents.*"))


@pytest.mark.slow  # three searches; test_golden pins same-seed journals
def test_same_seed_same_architectures_other_seed_different(tmp_path):
    _, a = _search(tmp_path, "a")
    _, b = _search(tmp_path, "b")
    _, c = _search(tmp_path, "c", seed=4)
    keys = [[t.key for t in r.trials] for r in (a, b, c)]
    assert keys[0] == keys[1]
    assert keys[0] != keys[2]


def test_failed_children_are_recorded_and_the_search_goes_on(tmp_path):
    evaluator = SyntheticEvaluator(fail_when={"activation": "relu"})
    # Not the abort's test (test_faults): the default's reward model, fitted to the first 8 rows (6
    # of them relu), picks relu for the whole second batch, 10 failures in a row.
    _, result = _search(tmp_path, "f", evaluator=evaluator, failed_reward=-1.0, max_consecutive_failures=24)
    failed = [t for t in result.trials if not t.ok]
    assert failed and len(result.trials) == 24
    assert all(t.reward == -1.0 and t.error == "synthetic failure" for t in failed)


def test_time_budget_stops_early(tmp_path):
    _, result = _search(tmp_path, "t", trials=1000, max_minutes=1e-6)
    assert result.stopped_by == "time"
    assert len(result.trials) < 1000


@pytest.mark.usefixtures("compiled_controllers")  # 30 updates: traced beats eager here
def test_controller_moves_toward_rewarded_architectures(tmp_path):
    """The synthetic reward prefers 3 layers, tanh and lr=1e-3: later batches must find them more."""
    _, result = _search(tmp_path, "l", trials=240)
    rewards = np.array([t.reward for t in result.trials])
    assert rewards[-48:].mean() > rewards[:48].mean() + 0.1


def test_existing_run_directory_is_refused(tmp_path):
    _search(tmp_path, "x")
    with pytest.raises(
        Exception,
        match="already exists; continue it with --resume, choose another --name or pass --overwrite",
    ):
        RunStore.create(tmp_path / "x")


def test_search_stops_after_too_many_failures_in_a_row_keeping_the_journal(tmp_path):
    from rlnas.errors import SearchAborted

    class AlwaysFails(SyntheticEvaluator):
        def evaluate(self, arch, seed):
            from rlnas.models.child import ChildResult, Status

            return ChildResult(Status.FAILED, error="CUDA out of memory")

    with pytest.raises(SearchAborted, match=r"last 5 children all failed \(last error: CUDA out of memory\)"):
        _search(tmp_path, "doomed", evaluator=AlwaysFails(), max_consecutive_failures=5)
    assert len(RunStore(tmp_path / "doomed").trials()) == 5


def test_tensorboard_scalars_are_written_per_update(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    store, result = _search(tmp_path, "tb")
    events = EventAccumulator(str(store.tb_dir), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    expected = {"charts/reward_mean", "charts/reward_max", "charts/baseline", "charts/best_val_accuracy"}
    assert expected | {"losses/loss", "losses/entropy", "config"} <= tags
    steps = [e.step for e in events.Tensors("charts/reward_mean")]
    assert steps == [8, 16, 24]  # one point per update, against architectures sampled
    first_batch = [t.reward for t in result.trials[:8]]
    value = float(tensor_util.make_ndarray(events.Tensors("charts/reward_mean")[0].tensor_proto))
    assert value == pytest.approx(sum(first_batch) / 8, rel=1e-6)


@pytest.mark.usefixtures("compiled_controllers")  # 30 updates: traced beats eager here
def test_a_repeated_architecture_is_answered_from_the_cache(tmp_path):
    evaluator = SyntheticEvaluator()  # plain REINFORCE: the default proposes no repeats (novel_only)
    store, result = _search(tmp_path, "cache", evaluator=evaluator, trials=240, **PLAIN_REINFORCE)
    cached = [t for t in result.trials if t.cached]
    assert cached, "a converging controller repeats architectures"
    assert len(evaluator.calls) == 240 - len(cached)  # repeats were not retrained
    by_index = {t.index: t for t in result.trials}
    for t in cached:
        first = by_index[t.cached_from]
        assert t.key == first.key and t.reward == first.reward and not first.cached
        assert t.child_seconds == 0.0
    assert [t.cached for t in store.trials()] == [t.cached for t in result.trials]


@pytest.mark.usefixtures("compiled_controllers")  # 30 updates: traced beats eager here
def test_reevaluate_repeats_trains_every_sample_and_averages(tmp_path):
    class Noisy(SyntheticEvaluator):
        def evaluate(self, arch, seed):
            from dataclasses import replace

            return replace(super().evaluate(arch, seed), val_accuracy=seed % 1000 / 1000)

    evaluator = Noisy()
    _, result = _search(
        tmp_path, "again", evaluator=evaluator, trials=240, reevaluate_repeats=True, **PLAIN_REINFORCE
    )  # plain REINFORCE: the default proposes no repeats
    assert len(evaluator.calls) == 240 and not any(t.cached for t in result.trials)
    seen: dict[str, list[float]] = {}
    for t in result.trials:
        seen.setdefault(t.key, []).append(t.metrics["val_accuracy"])
        assert t.reward == pytest.approx(sum(seen[t.key]) / len(seen[t.key]))
    assert any(len(v) > 1 for v in seen.values())
