"""Worker processes as a user meets them: a script without a main guard, a notebook, a SIGKILLed search.

Every test here runs real processes and trains real (tiny) children: the faults are the real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from rlnas.exec.worker import MARKER
from rlnas.run.store import RunStore

ROOT = Path(__file__).resolve().parent.parent

TUTORIAL = """\
import json
import keras
import numpy as np
import rlnas
from rlnas.data import DataSpec, load

data = load(DataSpec("mnist_5k"))
x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val


def build_model(hp):
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten()])
    units, act = hp.Int("units", 32, 128, step=32), hp.Choice("act", ["relu", "tanh"])
    model.add(keras.layers.Dense(units, activation=act))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("lr", 1e-3, 1e-2, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


tuner = rlnas.ReinforceSearch(
    build_model, max_trials=2, directory={directory!r}, project_name="helloworld", overwrite=True,
    archs_per_update=2, workers=1, seed=1,
)
tuner.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), batch_size=64, verbose=0)
trials = [json.loads(line) for line in open(tuner.project_dir / "trials.jsonl")]
best = trials[0]
_, again = tuner._evaluator.train(best["architecture"], best["seed"])  # in this process, same seed
print("RESULT " + json.dumps({{
    "in_process": tuner.in_process, "trials": trials, "again": again.val_accuracy,
    "model": json.load(open(tuner.project_dir / "config.json"))["space"]["model"],
}}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _check_tutorial(result: dict) -> None:
    assert result["model"] == "__main__:build_model" and result["in_process"] is False
    trials = result["trials"]
    assert len(trials) == 2 and all(t["status"] == "ok" for t in trials), trials
    assert all(t["val_accuracy"] > 0.5 for t in trials), [t["val_accuracy"] for t in trials]
    # the same child trained in this process instead of a worker: the same score (same seed, same data)
    assert abs(result["again"] - trials[0]["val_accuracy"]) < 0.01, (result["again"], trials[0])


def test_a_script_without_a_main_guard_trains_its_own_function_in_workers(tmp_path: Path) -> None:
    script = tmp_path / "tutorial.py"
    script.write_text(TUTORIAL.format(directory=str(tmp_path / "my_dir")))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "worker process died" not in proc.stdout, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    _check_tutorial(json.loads(line.removeprefix("RESULT ")))


@pytest.mark.slow
def test_a_notebook_trains_its_cell_function_in_workers(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + TUTORIAL.format(
        directory=str(tmp_path / "nb")
    )
    cells = [nbformat.v4.new_code_cell(part) for part in source.split("\n\n\n")]  # one cell per block
    notebook = nbformat.v4.new_notebook(cells=cells)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    out = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    (line,) = [x for x in out.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    # a notebook's functions live in __main__ (the kernel's) and reach the worker by value
    _check_tutorial(result)


# -- workers die with the search ------------------------------------------------------------------
def marked_processes(prefix: str) -> list[int]:
    """Pids of live processes whose environment carries the worker marker starting with ``prefix``
    (scanned in /proc, not by name: what a leaked worker cannot hide from)."""
    found = []
    needle = f"{MARKER}={prefix}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone, or not ours to read
            continue
        if state != "Z" and any(var.startswith(needle) for var in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def _wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sigkill_of_a_search_ends_its_workers_mid_child_and_resume_completes(tmp_path, tiny_npz) -> None:
    runs, trials = tmp_path / "runs", 6
    command = [
        sys.executable, "-m", "rlnas.cli", "search", "--dataset", str(tiny_npz), "--trials", str(trials),
        "--archs-per-update", "2", "--epochs", "1", "--batch-size", "16", "--replay-top", "0",
        "--workers", "2", "--name", "k", "--runs-dir", str(runs),
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = runs / "k" / "trials.jsonl"
    try:
        # two workers up and the first children done: the next ones are in training
        started = _wait_until(lambda: proc.poll() is not None or _lines(journal) >= 1, 300)
        assert started and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        workers = marked_processes(f"{proc.pid}:")
        assert len(workers) >= 2 and all(str(runs / "k") in _marker(p) for p in workers)
        # nothing else to orphan: the search's only children are its workers (no resource tracker)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert {c.pid for c in children} == set(workers), [c.cmdline() for c in children]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        assert _wait_until(lambda: not marked_processes(f"{proc.pid}:"), 10), marked_processes(f"{proc.pid}:")
        assert time.monotonic() - killed_at < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    resume = [sys.executable, "-m", "rlnas.cli", "search", "--resume", "k", "--runs-dir", str(runs)]
    done = subprocess.run(resume, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t.index for t in RunStore(runs / "k").trials()] == list(range(trials))
    assert all(t.ok for t in RunStore(runs / "k").trials())


def _marker(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v.decode() for v in environ if v.startswith(MARKER.encode()))


def test_a_worker_whose_parent_dies_exits_within_seconds(tmp_path: Path, tiny_npz: Path) -> None:
    """The parent here is a small process that starts a worker in training and is then SIGKILLed;
    the worker notices through PR_SET_PDEATHSIG (Linux) or its watchdog, mid-child."""
    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(f"""\
        import threading
        from rlnas.models.child import TrainSpec
        from rlnas.data import DataSpec
        from rlnas.exec.evaluator import WorkerEvaluator

        train = TrainSpec(epochs=10000, batch_size=8)
        ev = WorkerEvaluator(DataSpec({str(tiny_npz)!r}), train, run_dir="orphan")
        # from a thread that ends at once: the parent-death signal must not follow that thread
        thread = threading.Thread(target=ev.start)
        thread.start()
        thread.join()
        arch = {{"num_layers": 1, "units_0": 8, "activation": "relu", "dropout": False, "lr": 0.01}}
        ev.evaluate(arch, seed=0)
        """)
    )
    proc = subprocess.Popen([sys.executable, str(parent)], env=_env())
    try:
        # the worker, and where workers are forked (rlnas.exec.fork_server), its template, whose child it is
        assert _wait_until(lambda: len(_worker_tree(proc.pid)) == 1 + _forking(), 120), _worker_tree(proc.pid)
        time.sleep(2 if _forking() else 8)  # TensorFlow imported, data loaded, the child in training
        assert proc.poll() is None and len(_worker_tree(proc.pid)) == 1 + _forking()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _wait_until(lambda: not marked_processes(f"{proc.pid}:"), 5)


def _forking() -> bool:
    from rlnas.exec.fork_server import forking_possible

    return forking_possible(os.environ)


def _worker_tree(parent: int) -> list[int]:
    """The marked processes of ``parent`` that are its children or its children's children."""
    generation = {}
    for pid in marked_processes(f"{parent}:orphan"):
        with contextlib.suppress(psutil.NoSuchProcess):
            generation[pid] = psutil.Process(pid).ppid()
    return [p for p, pp in generation.items() if pp == parent or generation.get(pp) == parent]


def test_a_command_rlnas_starts_with_its_pid_in_its_environment_ends_with_it(tmp_path: Path) -> None:
    """The replay on a GPU after a search runs as ``rlnas replay`` in a process of its own, started with
    ``RLNAS_DIE_WITH=<search pid>``; ``rlnas.cli.main`` follows it. Here the starter is SIGKILLed."""
    from rlnas.exec.worker import FOLLOW_ENV

    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(f"""\
        import os, subprocess, sys, time
        code = ("import os, time; from rlnas.exec.worker import follow_parent_from_env; "
                "follow_parent_from_env(); print(os.environ.get({FOLLOW_ENV!r}), flush=True); "
                "time.sleep(120)")
        env = dict(os.environ, {FOLLOW_ENV}=str(os.getpid()), RLNAS_WORKER_OF=f"{{os.getpid()}}:follow")
        subprocess.Popen([sys.executable, "-c", code], env=env)
        time.sleep(120)
        """)
    )
    proc = subprocess.Popen([sys.executable, str(parent)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert _wait_until(lambda: len(marked_processes(f"{proc.pid}:follow")) == 1, 60)
        assert proc.stdout.readline().strip() == "None"  # removed: what it starts follows it, not us
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _wait_until(lambda: not marked_processes(f"{proc.pid}:follow"), 5)
