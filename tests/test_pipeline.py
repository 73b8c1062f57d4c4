"""pipeline = 2: the next batch trains while the current one is told; runs still reproduce and resume."""

from __future__ import annotations

import importlib.util
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import rlnas.search.loop
from rlnas.cli import main
from rlnas.config import SearchConfig, make_config
from rlnas.errors import ConfigError, SearchAborted
from rlnas.policy.gradient import importance_weights, reinforce_loss
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import Decision, SearchSpace, default_space
from rlnas.strategies import make_strategy
from tests.conftest import Interrupting, SyntheticEvaluator, search_in

BASE = {"trials": 24, "archs_per_update": 4, "seed": 3, "pipeline": 2}


class Jittery(SyntheticEvaluator):
    """A synthetic evaluator whose children take a random time each, from its own generator: two runs
    with different generators finish their children in different orders."""

    def __init__(self, seed: int, **kw) -> None:
        super().__init__(**kw)
        self.rng = np.random.default_rng(seed)

    def evaluate(self, arch, seed):
        time.sleep(float(self.rng.uniform(0, 0.03)))
        return super().evaluate(arch, seed)


def _search(tmp_path, name, evaluator, *, resume=False, should_stop=lambda: False, space=None, **overrides):
    space = space or default_space()
    config = make_config(**(BASE | overrides))
    return search_in(tmp_path, name, config, space, evaluator, should_stop=should_stop, resume=resume)


def _summary(trials):
    return [(t.index, list(t.tokens), t.reward, t.log_prob) for t in trials]


# -- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pipeline": 3}, r"^pipeline must be 1 \(synchronous\) or 2 \(.*\), got 3$"),
        ({"pipeline": 0}, r"pipeline must be 1 .* got 0"),
        ({"pipeline": 2.0}, r"pipeline must be 1 .* got 2\.0"),
        ({"pipeline": True}, r"pipeline must be 1 .* got True"),
        ({"importance_clip": -1.0}, r"^importance_clip must be >= 0 \(0 turns the weights off\), got -1\.0$"),
        ({"importance_clip": float("inf")}, r"importance_clip must be >= 0 .* got inf"),
        ({"importance_clip": "1"}, r"importance_clip must be >= 0 .* got '1'"),
    ],
)
def test_pipeline_settings_are_validated(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**settings)


def test_pipeline_is_a_flag_of_rlnas_search(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--pipeline", "3"]) == 2
    assert "pipeline must be 1 (synchronous) or 2" in capsys.readouterr().err
    assert main(["search", "--importance-clip", "-2"]) == 2
    assert "importance_clip must be >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_search_with_pipeline_2_and_two_workers(tmp_path, tiny_npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["search", "--dataset", str(tiny_npz), "--trials", "6", "--archs-per-update", "2",
            "--epochs", "1", "--batch-size", "32", "--replay-top", "0", "--workers", "2",
            "--pipeline", "2", "--name", "p"]  # fmt: skip
    assert main(argv) == 0
    store = RunStore(tmp_path / "runs" / "p")
    assert [t.index for t in store.trials()] == list(range(6))
    assert store.read_json("config.json")["search"]["pipeline"] == 2


# -- the importance weights ------------------------------------------------------------------------
def test_weights_are_constants_in_the_gradient_and_truncated_at_the_cap():
    logp = tf.Variable([-1.0, -2.0, -3.0])
    old = tf.constant([-1.0, -2.5, -2.0], tf.float64)  # ratios 1, e^0.5, e^-1
    with tf.GradientTape() as tape:
        w, clipped = importance_weights(logp, old, tf.constant(1.0, tf.float64))
        loss = reinforce_loss(logp, tf.zeros(3), np.array([0.3, -0.6, 0.9]), 0.0, w)
    np.testing.assert_allclose(w.numpy(), [1.0, 1.0, np.exp(-1.0)], rtol=1e-6)
    assert clipped.numpy().tolist() == [0.0, 1.0, 0.0]  # a ratio of exactly the cap is not truncated
    # d loss / d logp_k = -w_k * A_k / m: w is a constant, not differentiated through exp(logp - old).
    expected = -np.array([1.0, 1.0, np.exp(-1.0)]) * [0.3, -0.6, 0.9] / 3
    np.testing.assert_allclose(tape.gradient(loss, logp).numpy(), expected, rtol=1e-6)


@pytest.mark.slow  # two controllers; the weights' arithmetic is tested above on tensors
def test_an_unchanged_policy_gives_weights_of_one_and_the_unweighted_update():
    space = default_space()
    config = SearchConfig(seed=4, archs_per_update=8)
    weighted, plain = make_strategy(config, space), make_strategy(config, space)
    proposal = weighted.ask(8)
    assert np.array_equal(plain.ask(8).tokens, proposal.tokens)
    rewards = np.linspace(0.1, 0.9, 8)
    stats = weighted.tell(proposal.tokens, rewards, log_probs=proposal.log_probs)
    assert stats["losses/importance_weight"] == pytest.approx(1.0, abs=1e-6)
    assert stats["losses/importance_clipped"] == 0.0
    unweighted = plain.tell(proposal.tokens, rewards)
    assert "losses/importance_weight" not in unweighted  # no weights in the loss, none in TensorBoard
    for a, b in zip(
        weighted.controller.trainable_variables, plain.controller.trainable_variables, strict=True
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


# the truncated case is slow (a controller each); the capped-below case stays in the default suite
@pytest.mark.parametrize(
    ("shift", "weight", "clipped"),
    [pytest.param(-5.0, 2.0, 1.0, marks=pytest.mark.slow), (5.0, np.exp(-5.0), 0.0)],
)
def test_a_moved_policy_is_weighted_and_capped(shift, weight, clipped):
    space = default_space()
    strategy = make_strategy(make_config(seed=4, importance_clip=2.0), space)
    proposal = strategy.ask(4)
    stats = strategy.tell(proposal.tokens, np.ones(4), log_probs=proposal.log_probs + shift)
    assert stats["losses/importance_weight"] == pytest.approx(weight, rel=1e-4)
    assert stats["losses/importance_clipped"] == clipped


@pytest.mark.slow  # a controller trace for one flag
def test_importance_clip_0_turns_the_weights_off():
    strategy = make_strategy(make_config(seed=4, importance_clip=0.0), default_space())
    proposal = strategy.ask(4)
    stats = strategy.tell(proposal.tokens, np.ones(4), log_probs=proposal.log_probs - 5.0)
    assert "losses/importance_weight" not in stats and "losses/importance_clipped" not in stats


@pytest.mark.parametrize(
    "strategy", ["random", "evolution", pytest.param("reinforce", marks=pytest.mark.slow)]
)
def test_tell_checks_one_log_prob_per_row(strategy):
    s = make_strategy(SearchConfig(strategy=strategy), default_space())
    tokens = s.ask(3).tokens
    with pytest.raises(ValueError, match="one log-probability per row"):
        s.tell(tokens, np.ones(3), log_probs=np.zeros(2))


# -- the loop --------------------------------------------------------------------------------------
class Recording:
    """A strategy wrapper that records what the loop tells it."""

    def __init__(self, inner):
        self.inner, self.told = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def tell(self, tokens, rewards, log_probs=None):
        self.told.append((tokens.copy(), rewards.copy(), None if log_probs is None else log_probs.copy()))
        return self.inner.tell(tokens, rewards, log_probs=log_probs)


@pytest.fixture
def recorded(monkeypatch):
    made = []

    def make(config, space):
        made.append(Recording(make_strategy(config, space)))
        return made[-1]

    monkeypatch.setattr(rlnas.search.loop, "make_strategy", make)
    return made


@pytest.mark.slow  # two full searches
@pytest.mark.parametrize("pipeline", [1, 2])
def test_each_update_gets_its_own_batch_and_stale_batches_their_sampling_log_probs(
    tmp_path, recorded, pipeline
):
    _, result = _search(tmp_path, "r", [Jittery(1), Jittery(2)], pipeline=pipeline)
    told = recorded[0].told
    assert len(told) == 6
    for k, (tokens, rewards, log_probs) in enumerate(told):
        batch = result.trials[4 * k : 4 * k + 4]  # exactly batch k's four results, in index order
        assert tokens.tolist() == [list(t.tokens) for t in batch]
        assert rewards.tolist() == [t.reward for t in batch]
        if pipeline == 1:  # proposed by the policy that learns from it: no weights at all
            assert log_probs is None
        else:  # weighted against the policy that proposed it (batch 0: the same one, weights 1)
            assert log_probs.tolist() == [t.log_prob for t in batch]


BEFORE_PIPELINING = [
    "0-2-x-x-1-1-2",
    "1-14-9-x-1-0-4",
    "1-1-5-x-1-1-1",
    "0-2-x-x-1-1-5",
    "2-1-10-0-1-0-0",
    "0-14-x-x-1-1-0",
    "1-7-14-x-0-0-6",
    "0-2-x-x-0-1-4",
    "0-0-x-x-0-1-1",
    "0-13-x-x-0-1-6",
    "0-7-x-x-0-0-6",
    "0-2-x-x-1-0-2",
    "1-1-11-x-0-1-6",
    "0-6-x-x-1-0-0",
    "2-4-10-2-1-0-1",
    "0-13-x-x-1-0-2",
    "0-8-x-x-0-0-4",
    "2-1-1-10-1-1-0",
    "1-9-8-x-1-1-5",
    "0-3-x-x-0-1-4",
]
"""Keys of a REINFORCE search (seed 11, m 4, 20 trials, two synthetic workers) run with the loop as it
was before pipelining (commit a0df255)."""


@pytest.mark.slow  # test_golden's reinforce_p1 pins the same journal
def test_pipeline_1_proposes_what_the_loop_proposed_before_pipelining(tmp_path):
    workers = [SyntheticEvaluator(delay=0.01), SyntheticEvaluator()]
    _, result = _search(tmp_path, "s", workers, pipeline=1, seed=11, trials=20)
    assert [t.key for t in result.trials] == BEFORE_PIPELINING


@pytest.mark.slow  # a whole pipelined search for one TensorBoard tag
def test_importance_weights_are_logged_to_tensorboard_for_stale_batches(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    store, _ = _search(tmp_path, "tb", [Jittery(1), Jittery(2)], trials=16)
    events = EventAccumulator(str(store.tb_dir), size_guidance={"tensors": 0})
    events.Reload()
    logged = {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in ("losses/importance_weight", "losses/importance_clipped")
    }
    assert [step for step, _ in logged["losses/importance_weight"]] == [4, 8, 12, 16]
    assert logged["losses/importance_weight"][0][1] == pytest.approx(1.0, abs=1e-6)  # batch 0: on-policy
    assert all(0 < w <= 1.0 for _, w in logged["losses/importance_weight"])  # importance_clip = 1
    assert all(0 <= f <= 1 for _, f in logged["losses/importance_clipped"])


@pytest.mark.slow  # three pipelined searches; test_golden's reinforce_p2 pins the pipelined journal
def test_the_same_seed_gives_the_same_journal_whatever_order_children_finish(tmp_path):
    _, one = _search(tmp_path, "a", [Jittery(1), Jittery(2)])
    _, two = _search(tmp_path, "b", [Jittery(3), Jittery(4)])
    _, serial = _search(tmp_path, "c", SyntheticEvaluator())
    assert _summary(one.trials) == _summary(two.trials) == _summary(serial.trials)
    assert [t.index for t in one.trials] == list(range(24))


class Gate(SyntheticEvaluator):
    """Shared by two workers: the first child to start trains until the other worker has finished
    ``after`` children, so a pipelined search must train the next batch meanwhile."""

    lock = threading.Lock()

    def __init__(self, shared: dict, after: int) -> None:
        super().__init__()
        self.shared, self.after = shared, after

    def evaluate(self, arch, seed):
        with Gate.lock:
            first = not self.shared.setdefault("started", False)
            self.shared["started"] = True
        if first:
            self.shared["opened"] = self.shared["event"].wait(30)
        result = super().evaluate(arch, seed)
        with Gate.lock:
            self.shared["done"] = self.shared.get("done", 0) + 1
            if self.shared["done"] >= self.after:
                self.shared["event"].set()
        return result


def test_workers_train_the_next_batch_while_a_slow_child_holds_up_the_update(tmp_path):
    shared = {"event": threading.Event()}
    store, result = _search(tmp_path, "g", [Gate(shared, 5), Gate(shared, 5)], strategy="random", trials=12)
    assert shared["opened"]  # the other worker finished five children: one batch and more
    journal = [t["index"] for t in _journal_order(store)]
    # The held child is released when five others have finished; their records may reach the journal
    # after its own (they are appended as the pool hands results over), but at least four precede it.
    held = next(i for i in range(4) if i not in journal[:4])
    assert any(i >= 4 for i in journal[: journal.index(held)])  # batch 1 finished before batch 0 did
    assert [t.index for t in result.trials] == list(range(12))


def _journal_order(store):
    import json

    return [json.loads(line) for line in (store.path / "trials.jsonl").read_text().splitlines()]


# -- resume ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "stop_after"),
    [("reinforce", 7), pytest.param("reinforce", 14, marks=pytest.mark.slow), ("evolution", 11)],
)
def test_a_pipelined_run_resumes_exactly_as_it_would_have_gone_on(tmp_path, strategy, stop_after):
    settings = {"strategy": strategy, "population_size": 8, "tournament_size": 3, "trials": 32}
    _, whole = _search(tmp_path, "whole", [Jittery(1), Jittery(2)], **settings)
    first = [Jittery(3), Jittery(4)]
    store, cut = _search(
        tmp_path, "cut", first, should_stop=lambda: sum(len(e.calls) for e in first) >= stop_after, **settings
    )
    assert cut.stopped_by == "interrupted" and len(cut.trials) < 32
    meta_pending = store.read_json("state.json")  # people's copy of the checkpoint, without proposals
    assert "pending" not in meta_pending and meta_pending["next_index"] % 4 == 0
    again = [Jittery(5), Jittery(6)]
    _, rest = _search(tmp_path, "cut", again, resume=True, **settings)
    assert _summary(rest.trials) == _summary(whole.trials)
    assert [t.index for t in store.trials()] == list(range(32))  # nothing lost, nothing twice
    trained_before = {t.index for t in cut.trials if not t.cached}
    assert sum(len(e.calls) for e in again) == sum(
        1 for t in whole.trials if not t.cached and t.index not in trained_before
    )


@pytest.mark.slow  # two searches; test_golden resumes at each pipeline depth
def test_a_pipelined_run_killed_mid_batch_resumes_exactly(tmp_path):
    _, whole = _search(tmp_path, "whole", SyntheticEvaluator())
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "ctrl-c", Interrupting(at=11))
    _, rest = _search(tmp_path, "ctrl-c", SyntheticEvaluator(), resume=True)
    assert _summary(rest.trials) == _summary(whole.trials)


# -- budget, time, faults, repeats -----------------------------------------------------------------
@pytest.mark.slow  # two pipelined searches; test_resume covers extending a run
def test_a_budget_that_cuts_a_batch_and_its_extension_leave_no_gap(tmp_path):
    store, result = _search(tmp_path, "b", [Jittery(1), Jittery(2)], trials=10)
    assert [t.index for t in result.trials] == list(range(10)) and result.stopped_by == "trials"
    _, more = _search(tmp_path, "b", [Jittery(1), Jittery(2)], resume=True, trials=21)
    assert [t.index for t in store.trials()] == list(range(21)) and len(more.trials) == 21


def test_a_time_limit_stops_a_pipelined_search_and_it_resumes_without_a_gap(tmp_path):
    slow = [SyntheticEvaluator(delay=0.05), SyntheticEvaluator(delay=0.05)]
    store, result = _search(tmp_path, "t", slow, strategy="random", max_minutes=0.004)  # 0.24 s
    assert result.stopped_by == "time" and 0 < len(result.trials) < 24
    assert [t.index for t in result.trials] == list(range(len(result.trials)))
    _search(tmp_path, "t", [SyntheticEvaluator()], resume=True, strategy="random", max_minutes=None)
    assert [t.index for t in store.trials()] == list(range(24))


class Failing(SyntheticEvaluator):
    def evaluate(self, arch, seed):
        from rlnas.models.child import ChildResult, Status

        self.calls.append(dict(arch))
        return ChildResult(Status.FAILED, error="synthetic failure")


@pytest.mark.slow  # test_search covers the abort without a pipeline
def test_consecutive_failures_abort_a_pipelined_search(tmp_path):
    with pytest.raises(SearchAborted, match="the last 5 children all failed"):
        _search(tmp_path, "f", [Failing(), Failing()], max_consecutive_failures=5)


def test_a_repeat_of_a_child_training_in_the_previous_batch_waits_for_it(tmp_path):
    space = SearchSpace([Decision("num_layers", (1,), "int"), Decision("units_0", (32, 64), "int")])
    workers = [SyntheticEvaluator(delay=0.02), SyntheticEvaluator(delay=0.02)]
    _, result = _search(tmp_path, "r", workers, space=space, strategy="random", trials=16)
    trained = [t for t in result.trials if not t.cached]
    assert sum(len(e.calls) for e in workers) == len(trained) == 2  # each architecture trained once
    assert all(t.ok for t in result.trials)


# -- Ray -------------------------------------------------------------------------------------------
@pytest.mark.slow  # Ray plus two workers: test_ray.py covers Ray in the default suite
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is an optional extra")
def test_a_pipelined_search_on_ray_gives_the_trials_of_the_worker_processes(tiny_npz, tmp_path):
    import ray

    from rlnas.exec.evaluator import TrainSpec, WorkerEvaluator
    from rlnas.exec.ray_evaluator import make_ray_evaluators

    config = SearchConfig(dataset=str(tiny_npz), trials=6, archs_per_update=2, epochs=1, batch_size=32,
                          seed=3, pipeline=2)  # fmt: skip
    space = default_space()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_search(
            config, space, RunStore.create(tmp_path / "ray"), evaluator=make_ray_evaluators(config, space)
        )
    finally:
        ray.shutdown()
    local = [WorkerEvaluator(config.data_spec(), TrainSpec(epochs=1, batch_size=32, threads=1))]
    in_workers = run_search(config, space, RunStore.create(tmp_path / "local"), evaluator=local)
    assert [(t.index, t.key) for t in on_ray.trials] == [(t.index, t.key) for t in in_workers.trials]
    for a, b in zip(on_ray.trials, in_workers.trials, strict=True):
        assert a.metrics["val_accuracy"] == pytest.approx(b.metrics["val_accuracy"], abs=1e-6)
