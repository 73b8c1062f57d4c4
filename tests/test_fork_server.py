"""Workers forked from a template (rlnas.exec.fork_server): safe to fork, and the same children as fresh ones.

Real processes throughout; the children are tiny except in the slow test.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rlnas.data import DataSpec
from rlnas.exec import fork_server
from rlnas.exec.evaluator import WorkerEvaluator
from rlnas.exec.worker import MARKER
from rlnas.exec.worker_process import WorkerProcess, worker_env
from rlnas.models.child import ChildResult, TrainSpec

ARCH = {"num_layers": 2, "units_0": 16, "units_1": 8, "activation": "tanh", "dropout": True, "lr": 0.01}
needs_fork = pytest.mark.skipif(
    not fork_server.forking_possible({"CUDA_VISIBLE_DEVICES": ""}), reason="workers are not forked here"
)


def _weights_hash(path: Path):
    """A Keras callback (made here, so it travels to the worker by value) that writes a hash of the
    trained weights to ``path``."""
    import keras

    class WeightsHash(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            weights = b"".join(np.asarray(w).tobytes() for w in self.model.get_weights())
            path.write_text(hashlib.sha256(weights).hexdigest())

    return WeightsHash()


def _train(spec: DataSpec, train: TrainSpec, arch: dict, out: Path) -> tuple[ChildResult, str, type]:
    ev = WorkerEvaluator(spec, train, fit_kwargs={"callbacks": [_weights_hash(out)]})
    try:
        result = ev.evaluate(arch, seed=5)
        kind = type(ev._active)
    finally:
        ev.close()
    return result, out.read_text(), kind


def _same_child_forked_and_fresh(spec, train, arch, tmp_path, monkeypatch) -> ChildResult:
    forked, forked_hash, forked_kind = _train(spec, train, arch, tmp_path / "forked")
    monkeypatch.setenv(fork_server.SWITCH, "0")
    fresh, fresh_hash, fresh_kind = _train(spec, train, arch, tmp_path / "fresh")
    assert (forked_kind, fresh_kind) == (fork_server.ForkedWorker, WorkerProcess)
    assert forked.status == fresh.status == "ok", (forked.error, fresh.error)
    assert forked_hash == fresh_hash  # the very same weights
    for field in ("val_accuracy", "val_loss", "train_loss", "params", "epochs_run"):
        assert getattr(forked, field) == getattr(fresh, field), field
    return forked


@needs_fork
def test_a_child_trained_in_a_forked_worker_equals_one_trained_in_a_fresh_worker(
    tiny_npz, tmp_path, monkeypatch
):
    train = TrainSpec(epochs=2, batch_size=32, threads=1)
    _same_child_forked_and_fresh(DataSpec(str(tiny_npz)), train, ARCH, tmp_path, monkeypatch)


@pytest.mark.slow  # a real child on mnist_5k, twice
@needs_fork
def test_a_real_child_forked_equals_fresh(tmp_path, monkeypatch):
    arch = {
        "num_layers": 2,
        "units_0": 128,
        "units_1": 64,
        "activation": "relu",
        "dropout": True,
        "lr": 0.001,
    }
    result = _same_child_forked_and_fresh(
        DataSpec("mnist_5k"), TrainSpec(epochs=2, threads=1), arch, tmp_path, monkeypatch
    )
    assert result.val_accuracy > 0.8


@needs_fork
def test_the_template_runs_no_tensorflow_op_and_forks_marked_single_threaded_workers(tiny_npz):
    lease = fork_server.lease(DataSpec(str(tiny_npz)), threads=1, marker="me:run", device="")
    assert lease is not None
    worker = lease.worker()
    try:
        worker.wait_ready()
        template = worker.template
        # it checked that no TensorFlow op ran (its eager context does not exist), and counted threads
        assert template.error == "" and template.ready == (template.proc.pid, 1)
        status = Path(f"/proc/{worker.pid}/status").read_text()
        assert f"PPid:\t{template.proc.pid}\n" in status  # forked from the template
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
        assert f"{MARKER}=me:run".encode() in environ and b"OMP_NUM_THREADS=1" in environ
        assert worker.ask(("nonsense",), None)[0] == "error"  # a bad request fails, the worker goes on
        assert worker.alive()
    finally:
        worker.stop(wait=True)
        lease.release()
    assert not worker.alive() and worker.exit_text() == "exit code 0"
    assert template.proc.poll() is not None  # the last lease ended the template


@needs_fork
def test_a_killed_template_takes_its_workers_along_and_the_next_worker_gets_a_new_one(tiny_npz):
    ev = WorkerEvaluator(DataSpec(str(tiny_npz)), TrainSpec(epochs=1, batch_size=32, threads=1))
    try:
        assert ev.evaluate(ARCH, seed=1).status == "ok"
        first = ev._active
        first.template.proc.kill()
        assert first.wait(10) and not first.alive()
        assert ev.evaluate(ARCH, seed=1).status == "ok"  # died idle: replaced, no failed child
        assert ev._active.template is not first.template
    finally:
        ev.close()


def test_a_worker_that_would_see_a_gpu_or_is_asked_to_be_fresh_is_not_forked(monkeypatch):
    monkeypatch.setenv("RLNAS_FAKE_GPUS", "0")
    assert not fork_server.forking_possible({"RLNAS_FAKE_GPUS": "0"})  # CUDA state must not be forked
    hidden = {"RLNAS_FAKE_GPUS": "0", "CUDA_VISIBLE_DEVICES": ""}
    assert fork_server.forking_possible(hidden) == fork_server.forking_possible({"CUDA_VISIBLE_DEVICES": ""})
    monkeypatch.setenv(fork_server.SWITCH, "0")
    assert not fork_server.forking_possible(hidden)
    assert fork_server.lease(DataSpec("mnist_5k"), threads=1, marker="", device="") is None


@needs_fork
def test_a_dataset_the_template_cannot_read_fails_the_child_with_the_reason(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    ev = WorkerEvaluator(DataSpec(str(bad)), TrainSpec(epochs=1, threads=1))
    try:
        result = ev.evaluate(ARCH, seed=1)
    finally:
        ev.close()
    assert result.status == "failed" and result.error.startswith("worker process died: could not start: ")


@needs_fork
def test_the_template_s_error_survives_its_exit_before_the_search_has_read_it(tmp_path, monkeypatch):
    """CI's race, made certain: the template fails and exits with our fork request unread, so Linux
    answers the search's first read with a connection reset ahead of the template's error message."""
    held = []

    class Held(threading.Thread):
        def start(self):  # the listener starts only once the template has exited
            held.append(self)

    monkeypatch.setattr(fork_server, "threading", SimpleNamespace(Thread=Held, Condition=threading.Condition))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    template = fork_server.Template(DataSpec(str(bad)), worker_env(1, "", ""))
    worker = template.fork()  # asked for long before the template's Python has started
    try:
        assert template.proc.wait(60) == 1
        threading.Thread.start(held[0])
        assert worker.wait(10)
        assert worker.exit_text().startswith("could not start: DataError: ")
    finally:
        template.close()
