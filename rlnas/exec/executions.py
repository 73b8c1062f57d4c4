"""keras-tuner's ``executions_per_trial`` and ``max_retries_per_trial`` around any evaluator.

keras-tuner trains each trial's model ``executions_per_trial`` times from different initial weights
and scores the trial by the mean of the objective, which makes its ranking less hostage to one lucky
(or unlucky) initialisation; a trial whose training raises is tried again up to
``max_retries_per_trial`` times before it counts as failed. :class:`Executions` does both for an
rlnas evaluator (a worker process, an in-process evaluator, Ray), so the search loop, the journal and
the controller see one child with one result, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlnas.exec.evaluator import Evaluator
from rlnas.models.child import ChildResult, Status

SEED_RANGE = 2**31 - 1
"""Execution seeds stay in the range the env draws child seeds from."""


def execution_seed(seed: int, execution: int) -> int:
    """The seed of execution ``execution`` (0-based) of a trial seeded ``seed``: the first is the
    trial's own, so one execution trains exactly what a plain search trains; the others are derived
    from it by numpy's SeedSequence, which spreads neighbouring seeds apart."""
    if execution == 0:
        return seed
    return int(np.random.SeedSequence([seed, execution]).generate_state(1)[0] % SEED_RANGE)


@dataclasses.dataclass(frozen=True)
class MeanResult(ChildResult):
    """A trial of several executions: the metrics are their means (times their sums), and each
    execution's validation accuracy and loss are kept, in order, in the trial's record."""

    execution_val_accuracy: tuple[float, ...] = ()
    execution_val_loss: tuple[float, ...] = ()
    attempts: int = 1


def mean_result(results: Sequence[ChildResult], attempts: int = 1) -> ChildResult:
    """One result for a trial's successful executions (a single one with no retry is kept as is)."""
    if len(results) == 1 and attempts == 1:
        return results[0]
    first = results[0]

    def mean(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in results]))

    def total(name: str) -> float:
        return float(sum(getattr(r, name) for r in results))

    return MeanResult(
        Status.OK,
        val_accuracy=mean("val_accuracy"),
        val_loss=mean("val_loss"),
        train_loss=mean("train_loss"),
        params=first.params,
        fit_seconds=total("fit_seconds"),
        eval_seconds=total("eval_seconds"),
        child_seconds=total("child_seconds"),
        epochs_run=round(mean("epochs_run")),
        metrics={
            k: float(np.mean([r.metrics[k] for r in results]))
            for k in first.metrics
            if all(k in r.metrics for r in results)
        },
        execution_val_accuracy=tuple(r.val_accuracy for r in results),
        execution_val_loss=tuple(r.val_loss for r in results),
        attempts=attempts,
    )


class Executions:
    """``inner``, with each trial trained ``executions`` times and retried up to ``retries`` times.

    A retry trains the failed execution again with the same seed (as keras-tuner retries a trial);
    the executions that already succeeded are kept. A trial still failing after its retries returns
    the last failure, its error saying how many attempts were made.
    """

    def __init__(self, inner: Evaluator, *, executions: int = 1, retries: int = 0) -> None:
        self.inner, self.executions, self.retries = inner, executions, retries

    def evaluate(self, arch: Mapping[str, Any], seed: int, log_dir: str | None = None) -> ChildResult:
        done: list[ChildResult] = []
        attempts = 1
        while len(done) < self.executions:
            extra = {"log_dir": log_dir} if log_dir and not done else {}  # curves of the first only
            result = self.inner.evaluate(arch, execution_seed(seed, len(done)), **extra)
            if result.ok:
                done.append(result)
            elif attempts > self.retries:
                tried = f" (after {attempts} attempts)" if attempts > 1 else ""
                return dataclasses.replace(result, error=f"{result.error}{tried}"[:500])
            else:
                attempts += 1
        return mean_result(done, attempts)

    def start(self) -> None:
        self.inner.start()

    def kill(self) -> None:
        self.inner.kill()

    def close(self) -> None:
        self.inner.close()
