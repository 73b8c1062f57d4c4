"""Several children at once, and every strategy, through the search loop's public API."""

from __future__ import annotations

import threading

import pytest

from rlnas.config import make_config
from rlnas.models.child import ChildResult, Status
from rlnas.resources import default_workers, threads_per_worker
from rlnas.run.store import RunStore
from rlnas.space import Decision, SearchSpace, default_space
from tests.conftest import Interrupting, SyntheticEvaluator, search_in


class Concurrency(SyntheticEvaluator):
    """A synthetic evaluator that records how many children were training at the same moment."""

    lock = threading.Lock()
    running = 0
    peak = 0

    def evaluate(self, arch, seed):
        with Concurrency.lock:
            Concurrency.running += 1
            Concurrency.peak = max(Concurrency.peak, Concurrency.running)
        try:
            return super().evaluate(arch, seed)
        finally:
            with Concurrency.lock:
                Concurrency.running -= 1


def _search(tmp_path, name, evaluator, space=None, should_stop=lambda: False, resume=False, **overrides):
    space = space or default_space()
    config = make_config(**({"trials": 24, "archs_per_update": 8, "seed": 3} | overrides))
    return search_in(tmp_path, name, config, space, evaluator, should_stop=should_stop, resume=resume)


def _summary(trials):
    return [(t.index, t.key, t.reward, bool(t.cached)) for t in trials]


@pytest.mark.slow  # test_golden's two-worker journal covers it
def test_two_workers_train_at_once_and_give_the_same_trials_as_one(tmp_path):
    _, one = _search(tmp_path, "one", SyntheticEvaluator())
    Concurrency.peak = 0
    store, two = _search(tmp_path, "two", [Concurrency(delay=0.02), Concurrency(delay=0.01)])
    assert Concurrency.peak == 2
    assert _summary(two.trials) == _summary(one.trials)
    assert [t.index for t in store.trials()] == list(range(24))  # read back in index order


# reinforce: slow (three searches of 40); test_golden resumes reinforce at each pipeline depth
@pytest.mark.parametrize(
    "strategy", ["random", "evolution", pytest.param("reinforce", marks=pytest.mark.slow)]
)
def test_every_strategy_runs_through_the_loop_and_resumes_exactly(tmp_path, strategy):
    settings = {"strategy": strategy, "population_size": 8, "tournament_size": 3, "trials": 40}
    _, whole = _search(tmp_path, "whole", SyntheticEvaluator(), **settings)
    assert len(whole.trials) == 40 and whole.best is not None
    if strategy == "reinforce":
        assert all(t.log_prob < 0 for t in whole.trials)
    else:
        assert all(t.log_prob is None for t in whole.trials)
    evaluator = SyntheticEvaluator()
    store, first = _search(
        tmp_path, "cut", evaluator, should_stop=lambda: len(evaluator.calls) >= 21, **settings
    )
    assert first.stopped_by == "interrupted" and len(first.trials) < 40
    _, rest = _search(tmp_path, "cut", SyntheticEvaluator(), resume=True, **settings)
    assert [t.key for t in rest.trials] == [t.key for t in whole.trials]
    assert [t.key for t in store.trials()] == [t.key for t in whole.trials]


def test_a_repeat_of_a_child_in_training_waits_for_it_instead_of_training_twice(tmp_path):
    space = SearchSpace([Decision("num_layers", (1,), "int"), Decision("units_0", (32, 64), "int")])
    evaluator = [SyntheticEvaluator(delay=0.01), SyntheticEvaluator(delay=0.01)]
    _, result = _search(tmp_path, "r", evaluator, space=space, strategy="random", trials=16)
    trained = [t for t in result.trials if not t.cached]
    assert sorted(t.key for t in trained) == sorted({t.key for t in result.trials})
    assert sum(len(e.calls) for e in evaluator) == len(trained) <= 2
    assert all(t.cached_from in {x.index for x in trained} for t in result.trials if t.cached)


def test_resume_after_a_stop_with_children_finished_out_of_order(tmp_path):
    # The slow worker is still training trial k while the fast one finished k+1: the journal has a
    # gap when the search stops; the resume trains only what is missing and ends like a whole run.
    settings = {"strategy": "random", "trials": 24, "workers": 2}
    _, whole = _search(tmp_path, "whole", SyntheticEvaluator(), **settings)
    fast, slow = SyntheticEvaluator(), SyntheticEvaluator(delay=0.05)
    _search(tmp_path, "cut", [slow, fast], should_stop=lambda: len(fast.calls) >= 6, **settings)
    store = RunStore(tmp_path / "cut")
    before = {t.index for t in store.trials()}
    again = SyntheticEvaluator()
    _, rest = _search(tmp_path, "cut", again, resume=True, **settings)
    assert _summary(rest.trials) == _summary(whole.trials)
    retrained = len(again.calls)
    assert retrained == len([t for t in whole.trials if not t.cached]) - len(
        [i for i in before if not whole.trials[i].cached]
    )


class Killable(SyntheticEvaluator):
    def __init__(self) -> None:
        super().__init__()
        self.killed = threading.Event()

    def evaluate(self, arch, seed):
        self.killed.wait(5)  # "trains" until killed
        return ChildResult(Status.FAILED, error="killed")

    def start(self) -> None:
        pass

    def kill(self) -> None:
        self.killed.set()


def test_leaving_the_search_early_kills_the_children_in_training(tmp_path):
    slow = Killable()
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C, while the other child still trains
        _search(tmp_path, "k", [slow, Interrupting(at=1)], strategy="random")
    assert slow.killed.is_set()  # ended by kill(), not by its own 5 s timeout


def test_default_workers_and_threads_share_the_cores():
    assert default_workers(1) == 1 and default_workers(2) == 2 and default_workers(8) == 4
    assert threads_per_worker(1, 2) == 2 and threads_per_worker(2, 2) == 1 and threads_per_worker(3, 2) == 1


def test_extending_a_budget_that_cut_a_batch_short_leaves_no_gap_in_the_indices(tmp_path):
    settings = {"strategy": "random", "archs_per_update": 4}
    _search(tmp_path, "r", SyntheticEvaluator(), trials=10, **settings)  # the third batch is cut at 2
    store, result = _search(tmp_path, "r", SyntheticEvaluator(), resume=True, trials=20, **settings)
    assert [t.index for t in store.trials()] == list(range(20))
    assert len(result.trials) == 20
