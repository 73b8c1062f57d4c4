"""Children in worker processes: same results as in-process, and a dead worker costs one trial."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from rlnas.data import DataSpec
from rlnas.exec.evaluator import LocalEvaluator, WorkerEvaluator
from rlnas.models.child import TrainSpec

ARCH = {"num_layers": 2, "units_0": 16, "units_1": 8, "activation": "tanh", "dropout": True, "lr": 0.01}


@pytest.fixture
def worker(tiny_npz):
    ev = WorkerEvaluator(DataSpec(str(tiny_npz)), TrainSpec(epochs=2, batch_size=32), children_per_worker=2)
    yield ev
    ev.close()


def _worker_pids() -> set[int]:
    """Worker processes only."""
    return {p.pid for p in psutil.Process().children(recursive=True) if "rlnas.exec.worker" in p.cmdline()}


def test_worker_matches_in_process_and_is_recycled(worker, tiny_npz):
    local = LocalEvaluator(DataSpec(str(tiny_npz)), TrainSpec(epochs=2, batch_size=32))
    expected = local.evaluate(ARCH, seed=7)
    assert expected.status == "ok"
    results = [worker.evaluate(ARCH, seed=7) for _ in range(3)]
    for r in results:
        assert r.status == "ok"
        assert r.val_accuracy == expected.val_accuracy  # same function, same seed, same split
        assert r.params == expected.params
    assert results[0].child_seconds >= results[0].fit_seconds + results[0].eval_seconds


@pytest.mark.slow  # three worker starts; a worker dying mid-child stays in the default suite
def test_worker_that_died_idle_is_replaced_without_a_failed_trial(worker):
    assert worker.evaluate(ARCH, seed=1).status == "ok"
    for pid in _worker_pids():  # the active worker and its standby
        psutil.Process(pid).kill()
    time.sleep(0.5)
    assert worker.evaluate(ARCH, seed=1).status == "ok"


def test_worker_that_dies_mid_child_costs_that_child_only(tiny_npz):
    slow = WorkerEvaluator(
        DataSpec(str(tiny_npz)), TrainSpec(epochs=400, batch_size=8), children_per_worker=50
    )
    try:
        slow.start()
        pids = set()
        while not pids:  # the worker appears as soon as it is spawned
            pids = _worker_pids()
        result: list = []
        thread = threading.Thread(target=lambda: result.append(slow.evaluate(ARCH, seed=1)))
        thread.start()
        time.sleep(4)  # killed during start-up or training: either way this child is lost
        for pid in pids:
            psutil.Process(pid).kill()
        thread.join()
        assert result[0].status == "failed" and "worker process died" in result[0].error
        slow.train = TrainSpec(epochs=1, batch_size=32)
        assert slow.evaluate(ARCH, seed=1).status == "ok"
    finally:
        slow.close()


def test_a_child_over_its_time_limit_fails_and_the_next_one_trains(tiny_npz):
    spec = DataSpec(str(tiny_npz))
    ev = WorkerEvaluator(spec, TrainSpec(epochs=2000, batch_size=8, time_limit=1.0), children_per_worker=50)
    try:
        slow = ev.evaluate(ARCH, seed=1)
        assert slow.status == "failed" and slow.error == "exceeded the time limit of 1 s"
        ev.train = TrainSpec(epochs=1, batch_size=32, time_limit=60.0)
        assert ev.evaluate(ARCH, seed=1).status == "ok"  # a fresh worker took over
    finally:
        ev.close()


def test_a_child_over_max_params_fails_without_training(tiny_npz):
    local = LocalEvaluator(DataSpec(str(tiny_npz)), TrainSpec(max_params=100))
    result = local.evaluate(ARCH, seed=0)
    assert result.status == "failed"
    assert "parameters exceed max_params=100" in result.error and result.fit_seconds == 0


def test_worker_evaluators_split_the_cores_and_start_nothing(tiny_npz):
    from rlnas.config import SearchConfig
    from rlnas.exec.evaluator import worker_evaluators
    from rlnas.models.child import train_spec
    from rlnas.resources import threads_per_worker

    config = SearchConfig(dataset=str(tiny_npz), epochs=3, early_stopping=1, workers=2, children_per_worker=7)
    made = worker_evaluators(config, "mlp")
    assert len(made) == 2 and all(e._active is None for e in made)  # processes start on start()
    assert {e.train for e in made} == {train_spec(config, "mlp", threads=threads_per_worker(2))}
    assert all(e.spec == config.data_spec() and e.children_per_worker == 7 for e in made)
    (one,) = worker_evaluators(config, "mlp", count=1)
    assert one.train == made[0].train  # one env's worker is sized as one of the search's


def test_one_factory_makes_the_runs_evaluators_for_every_face(tiny_npz):
    from rlnas.config import SearchConfig
    from rlnas.errors import ConfigError
    from rlnas.exec.factory import make_evaluators
    from rlnas.space import default_space

    config = SearchConfig(dataset=str(tiny_npz), workers=2, children_per_worker=7)
    made = make_evaluators(config, default_space(), start=False)
    assert [type(e) for e in made] == [WorkerEvaluator, WorkerEvaluator]
    assert all(e._active is None for e in made)  # start=False: no process yet
    (one,) = make_evaluators(config, default_space(), count=1, start=False, model="mlp")
    assert one.train == made[0].train
    ray = SearchConfig(dataset=str(tiny_npz), executor="ray")
    with pytest.raises(ConfigError, match=r"fit keywords \(callbacks\) do not reach Ray tasks"):
        make_evaluators(ray, default_space(), fit_kwargs={"callbacks": []})


def test_an_outside_evaluator_gets_the_protocols_start_and_kill(synthetic_evaluator):
    from rlnas.exec.evaluator import Evaluator, as_evaluator

    assert not isinstance(synthetic_evaluator, Evaluator)  # only evaluate and close
    wrapped = as_evaluator(synthetic_evaluator)
    assert isinstance(wrapped, Evaluator)
    wrapped.start()
    wrapped.kill()  # nothing to end: its children finish
    assert wrapped.evaluate({"num_layers": 1}, 0) == synthetic_evaluator.evaluate({"num_layers": 1}, 0)
    local = LocalEvaluator(DataSpec("mnist_5k"), TrainSpec())
    assert as_evaluator(local) is local  # a whole evaluator is used as it is
