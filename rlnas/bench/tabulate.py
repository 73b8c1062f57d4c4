"""``rlnas tabulate``: train every architecture of a finite space once and write the lookup table.

Each child goes through the env like any search trial (same builder, same training, same splits),
``workers`` at a time. Every finished row is appended and flushed at once, so an interrupted build
loses only the children in training: running the same command again trains only what is missing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.nas_env import NasEnv
from rlnas.config import SearchConfig
from rlnas.errors import ConfigError, SearchAborted
from rlnas.exec.evaluator import Evaluator, WorkerEvaluator
from rlnas.models.child import Status, train_spec
from rlnas.resources import threads_per_worker
from rlnas.search.pool import EnvPool, play, trial_seed
from rlnas.space import SearchSpace
from rlnas.tables import lookup as lookup_table


@dataclass(frozen=True)
class TabulateResult:
    total: int  # architectures in the space
    done_before: int  # architectures with a successful row when this build started
    trained: int  # children trained by this build
    failed: int  # of those, how many failed
    seconds: float
    complete: bool  # every architecture of the space has a row now


def existing_keys(space: SearchSpace, out: Path, *, ok_only: bool = True) -> set[str]:
    """Architectures already in a partial table ``out`` (by default those that trained successfully:
    a failed row is retried by the next build, since a dead worker is not a property of the network);
    ConfigError if ``out`` is not a table of ``space``."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    lookup_table.repair(out)
    names, rows = lookup_table.read_rows(out)
    if names != lookup_table.header(space):
        raise ConfigError(
            f"{str(out)!r} exists with other columns than a table of this space has; "
            "choose another --out or delete it"
        )
    return {
        space.key(lookup_table.row_tokens(space, row, line))
        for line, row in enumerate(rows, start=2)
        if not ok_only or row.get("status") == Status.OK
    }


def tabulate(
    config: SearchConfig,
    space: SearchSpace,
    out: str | Path,
    *,
    workers: int = 1,
    evaluator: Callable[[], Evaluator] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TabulateResult:
    """Train what ``out`` lacks of ``space`` (all of it for a new file), ``workers`` children at a time.

    Args:
        config: data, epochs, batch size, seed and child limits (the same settings a search uses).
        evaluator: makes one evaluator per worker (default: a worker process on ``config``'s data).
        on_row: called with each finished row (progress display).
        should_stop: asked before each child; True stops after the children in training.
    """
    out = Path(out)
    start = time.monotonic()
    archs = list(space.architectures())
    done = existing_keys(space, out)
    todo = deque((i, t) for i, t in enumerate(archs) if space.key(t) not in done)
    make = evaluator or _worker_factory(config, space, workers, out)
    pool = EnvPool(
        [NasEnv(space, evaluator=make(), failed_reward=config.failed_reward) for _ in range(workers)]
    )
    rows = _Rows(space, out, config, on_row, len(done), len(archs))
    try:
        _train(pool, todo, config.seed, should_stop, rows.write)
    finally:
        pool.abort()  # leaving early: the children in training are ended, their rows not written
        pool.close()
    complete = len(existing_keys(space, out, ok_only=False)) == len(archs)
    seconds = time.monotonic() - start
    return TabulateResult(len(archs), len(done), rows.trained, rows.failed, seconds, complete)


def _train(
    pool: EnvPool,
    todo: deque[tuple[int, list[int]]],
    seed: int,
    should_stop: Callable[[], bool],
    write: Callable[[list[int], dict[str, Any]], None],
) -> None:
    """Start a child on every free env (as the search does) and write each row as its child finishes,
    until ``todo`` is empty or ``should_stop`` says so and the children in training are done."""

    def train(env: NasEnv, job: tuple[int, list[int]]) -> dict[str, Any]:
        i, tokens = job
        _, info = play(env, tokens, trial_seed(seed, i))
        return info["metrics"] | {"seed": info["child_seed"]}

    while True:
        while todo and pool.free and not should_stop():
            pool.start(todo.popleft(), train)
        if not pool.busy:
            return
        for (_, tokens), metrics in pool.wait():
            write(tokens, metrics)


class _Rows:
    """Appends each finished child's row as it comes (an interrupted table keeps them) and counts
    the children trained and failed."""

    def __init__(
        self,
        space: SearchSpace,
        out: Path,
        config: SearchConfig,
        on_row: Callable[[dict[str, Any]], None] | None,
        done: int,
        total: int,
    ) -> None:
        self.space, self.out, self.config, self.on_row = space, out, config, on_row
        self.done, self.total = done, total
        self.trained = self.failed = self.streak = 0

    def write(self, tokens: list[int], metrics: dict[str, Any]) -> None:
        """Append one row.

        Raises:
            SearchAborted: ``max_consecutive_failures`` children failed in a row.
        """
        row = lookup_table.result_row(self.space, tokens, metrics)
        lookup_table.append_rows(self.out, lookup_table.header(self.space), [row])
        self.trained += 1
        ok = metrics["status"] == Status.OK
        self.failed += not ok
        self.streak = 0 if ok else self.streak + 1
        if self.on_row is not None:
            self.on_row(row | {"done": self.done + self.trained, "total": self.total})
        if self.streak >= self.config.max_consecutive_failures:
            raise SearchAborted(
                f"the last {self.streak} children all failed (last error: {metrics['error']}); fix the "
                "cause and run the command again (failed rows are retried)"
            )


def _worker_factory(
    config: SearchConfig, space: SearchSpace, workers: int, out: Path
) -> Callable[[], Evaluator]:
    """Worker processes marked with the table's path (they die with this process, like a search's)."""
    train = train_spec(config, space.model, threads=threads_per_worker(workers))
    return lambda: WorkerEvaluator(
        config.data_spec(), train, children_per_worker=config.children_per_worker, run_dir=out.resolve()
    )
