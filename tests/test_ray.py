"""--executor ray: children as Ray tasks on a local 2-CPU Ray; same trials as the worker processes, and
a Ray worker killed mid-child costs that child only."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time

import psutil
import pytest

from rlnas.config import SearchConfig, make_config
from rlnas.data import DataSpec
from rlnas.errors import ConfigError
from rlnas.exec.evaluator import WorkerEvaluator
from rlnas.exec.ray_evaluator import RayCluster, check_resources, make_ray_evaluators, require_ray
from rlnas.models.child import TrainSpec
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is an optional extra: pip install -e '.[ray]'"
)
ARCH = {"num_layers": 2, "units_0": 16, "units_1": 8, "activation": "tanh", "dropout": True, "lr": 0.01}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the whole module (starting it costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _running_children() -> list[psutil.Process]:
    """Ray worker processes in the middle of a child (Ray titles a busy worker after its task)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if (p.info["cmdline"] or [""])[0].startswith("ray::_run_child"):
            found.append(p)
    return found


def _kill_first_running_child(stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set() and not killed:
        for p in _running_children():
            p.kill()
            killed.append(p.pid)
            break
        time.sleep(0.02)


def _config(tiny_npz, **kw) -> SearchConfig:
    base = dict(dataset=str(tiny_npz), trials=4, archs_per_update=2, epochs=1, batch_size=32, seed=3)
    return make_config(**(base | kw))


def test_missing_ray_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ConfigError, match=r"^--executor ray needs Ray: pip install 'rlnas\[ray\]'$"):
        require_ray()


@pytest.mark.parametrize(
    ("cpus", "gpus", "message"),
    [
        (0, 0, r"cpus_per_child must be a number > 0, got 0"),
        (1, -1, r"gpus_per_child must be a number >= 0, got -1"),
        ("2", 0, r"cpus_per_child must be a number > 0, got '2'"),
        (1, float("nan"), r"gpus_per_child must be a number >= 0, got nan"),
    ],
)
def test_resources_are_validated(cpus, gpus, message):
    with pytest.raises(ConfigError, match=message):
        check_resources(cpus, gpus)


@pytest.mark.slow  # a Ray cluster per test: one Ray search stays in the default suite
@needs_ray
def test_a_ray_it_started_is_shut_down_after_the_last_evaluator(tiny_npz):
    import ray

    if ray.is_initialized():  # runs before the module's shared Ray starts (file order)
        pytest.skip("a Ray is already running in this process")
    cluster = RayCluster(DataSpec(str(tiny_npz)), TrainSpec(epochs=1, batch_size=32), num_cpus=1)
    first, second = cluster.evaluators(2)
    assert first.evaluate(ARCH, seed=1).status == "ok"
    first.close()
    assert ray.is_initialized()  # the other evaluator still needs it
    second.close()
    assert not ray.is_initialized()


@needs_ray
def test_search_on_ray_gives_the_trials_of_the_worker_processes(local_ray, tiny_npz, tmp_path):
    config = _config(tiny_npz)
    space = default_space()
    evaluators = make_ray_evaluators(config, space)
    assert len(evaluators) == 2  # 2 CPUs, 1 per child
    on_ray = run_search(config, space, RunStore.create(tmp_path / "ray"), evaluator=evaluators)
    assert local_ray.is_initialized()  # a Ray it did not start is left running

    train = TrainSpec(epochs=1, batch_size=32, threads=1)  # Ray's children use cpus_per_child=1 thread
    local = [WorkerEvaluator(config.data_spec(), train)]
    in_workers = run_search(config, space, RunStore.create(tmp_path / "local"), evaluator=local)

    assert [t.status for t in on_ray.trials] == ["ok"] * config.trials
    assert [(t.index, t.key) for t in on_ray.trials] == [(t.index, t.key) for t in in_workers.trials]
    for a, b in zip(on_ray.trials, in_workers.trials, strict=True):
        assert a.metrics["val_accuracy"] == pytest.approx(b.metrics["val_accuracy"], abs=1e-6)


@pytest.mark.slow  # a Ray cluster per test: one Ray search stays in the default suite
@needs_ray
def test_a_killed_worker_is_retried_and_the_search_goes_on(local_ray, tiny_npz, tmp_path):
    config = _config(tiny_npz, strategy="random", epochs=10, batch_size=8)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_running_child, args=(stop, killed))
    killer.start()
    try:
        result = run_search(
            config,
            default_space(),
            RunStore.create(tmp_path / "run"),
            evaluator=make_ray_evaluators(config, default_space()),
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no child was seen training"
    assert len(result.trials) == config.trials
    assert all(t.ok for t in result.trials)  # the killed child was retried


@needs_ray
def test_a_child_whose_worker_dies_on_every_try_fails_alone(local_ray, tiny_npz):
    cluster = RayCluster(DataSpec(str(tiny_npz)), TrainSpec(epochs=20, batch_size=8), max_retries=0)
    [evaluator] = cluster.evaluators(1)
    try:
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_first_running_child, args=(stop, killed))
        killer.start()
        failed = evaluator.evaluate(ARCH, seed=1)
        stop.set()
        killer.join()
        assert killed
        assert failed.status == "failed"
        assert failed.error.startswith("Ray worker or node died (1 tries)")
        assert evaluator.evaluate(ARCH, seed=1).status == "ok"  # a fresh worker takes the next child
    finally:
        evaluator.close()


@needs_ray
def test_child_over_the_time_limit_is_cancelled_and_fails(local_ray, tiny_npz):
    cluster = RayCluster(DataSpec(str(tiny_npz)), TrainSpec(epochs=1000, batch_size=8, time_limit=1.0))
    [evaluator] = cluster.evaluators(1)
    try:
        result = evaluator.evaluate(ARCH, seed=1)
        assert result.status == "failed"
        assert result.error == "exceeded the time limit of 1 s"
    finally:
        evaluator.close()


@needs_ray
def test_gpus_asked_of_a_cpu_only_cluster_is_a_config_error(local_ray, tiny_npz):
    cluster = RayCluster(DataSpec(str(tiny_npz)), TrainSpec(), gpus_per_child=1)
    try:
        with pytest.raises(
            ConfigError, match=r"no node of the Ray cluster has 1 CPUs and 1 GPUs for a child"
        ):
            cluster.slots()
    finally:
        cluster.close()
