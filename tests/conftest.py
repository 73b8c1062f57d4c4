"""Shared fixtures: tiny data and a synthetic evaluator, so tests train nothing unless they mean to."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Controllers eager unless a test asks for the traced one (``compiled_controllers``): a trace costs
# seconds per controller and most tests build a fresh one for a few updates (rlnas.strategies.reinforce).
# Subprocesses (the CLI, workers) inherit it. tests/test_golden.py runs everything compiled.
os.environ.setdefault("RLNAS_EAGER_CONTROLLER", "1")


MAX_TEST_PROCESSES = 4
"""``-n auto``'s ceiling: each test process imports TensorFlow (~1 GB with its workers), and past a few
the files' fixed costs, not the cores, bound the suite's time."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One test process a core, at most MAX_TEST_PROCESSES (pytest-xdist's ``-n auto``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_TEST_PROCESSES, cores))


class SyntheticEvaluator:
    """Reward = a deterministic function of the architecture; counts calls; can fail on demand."""

    def __init__(self, fail_when: dict | None = None, delay: float = 0.0) -> None:
        self.calls: list[dict] = []
        self.fail_when = fail_when or {}
        self.delay = delay  # seconds per child, so that a test can kill the search mid-child

    def evaluate(self, arch, seed):
        import time

        from rlnas.models.child import ChildResult, Status

        time.sleep(self.delay)
        self.calls.append(dict(arch))
        if self.fail_when and all(arch.get(k) == v for k, v in self.fail_when.items()):
            return ChildResult(Status.FAILED, error="synthetic failure")
        score = arch.get("num_layers", 1) / 3 * 0.5 + (arch.get("activation") == "tanh") * 0.3
        score += 0.2 * (arch.get("lr", 1e-3) == 1e-3)
        return ChildResult(Status.OK, val_accuracy=score, params=100 * arch.get("num_layers", 1))

    def close(self) -> None:
        pass


@pytest.fixture
def compiled_controllers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Controllers built as ``rlnas search`` builds them: traced (here and in subprocesses)."""
    monkeypatch.setenv("RLNAS_EAGER_CONTROLLER", "0")


@pytest.fixture
def synthetic_evaluator() -> SyntheticEvaluator:
    return SyntheticEvaluator()


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A learnable 3-class problem on 8x8 'images' (class = which third of the image is bright)."""
    rng = np.random.default_rng(0)
    n = 300
    y = np.arange(n) % 3
    x = rng.integers(0, 60, size=(n, 8, 8)).astype(np.uint8)
    for c in range(3):
        x[y == c, :, c * 2 : c * 2 + 3] += 150
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=y.astype(np.uint8))
    return path


class Interrupting(SyntheticEvaluator):
    """Raises KeyboardInterrupt (as a second Ctrl-C would) on its ``at``-th child."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def evaluate(self, arch, seed):
        if len(self.calls) + 1 == self.at:
            raise KeyboardInterrupt
        return super().evaluate(arch, seed)


def search_in(tmp_path, name, config, space, evaluator, *, should_stop=lambda: False, resume=False):
    """Run (or resume) a search into ``tmp_path/name`` as the CLI would lay it out; (store, result)."""
    from rlnas.run.store import RunStore
    from rlnas.search.loop import run_search

    if resume:
        store = RunStore(tmp_path / name)
    else:
        store = RunStore.create(tmp_path / name)
        store.write_config(config, space)
    result = run_search(config, space, store, evaluator=evaluator, should_stop=should_stop, resume=resume)
    return store, result
