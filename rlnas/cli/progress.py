"""Per-trial progress of a search: a live one-line bar on a terminal, plain lines everywhere else.

On a terminal the bar is redrawn in place (``\\r``) and ends with a newline; in CI logs, pipes and
tests (or with ``--verbose``) every finished child gets its own line, which is greppable and diffable.

A trial is named by the number the journal stores (``index``, 0-based, in the order the architectures
were sampled), as ``show``, ``export``, the report and TensorBoard name it; ``[done/total]`` is only
the count of finished children, which with several workers runs in another order.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

from rlnas.run.trial import Trial, objective_name, objective_value
from rlnas.text import format_arch

BAR_WIDTH = 24


class Progress:
    """Called with each Trial as it is journaled; :meth:`close` ends a live bar's line.

    Args:
        total: the trial budget.
        earlier: the trials finished before this process started (a resume): the count goes on from
            them, and the best so far is theirs until a new child beats it.
        stream: where to write (default: stdout).
        live: redraw one line in place; default: whether ``stream`` is a terminal.
        objective: the search's objective: each child and the best so far show its own value
            (default: the validation accuracy, shown as ``val_acc``).
    """

    def __init__(
        self,
        total: int,
        *,
        earlier: Sequence[Trial] = (),
        stream: TextIO | None = None,
        live: bool | None = None,
        objective: str | None = None,
    ) -> None:
        self.objective = objective
        name = objective_name(objective)
        self.name = "val_acc" if name == "val_accuracy" else name
        self._best_reward: float | None = None
        self.total = total
        self.done = len(earlier)  # trials finished before (a resume continues the count)
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.best: float | None = None
        self.failed = 0
        self._drawn = False
        for t in earlier:
            self._consider(t)

    def __call__(self, t: Trial) -> None:
        self._consider(t)
        self.done += 1  # children finish out of order with several workers: count, not index
        done = self.done
        eta = t.elapsed / max(t.index + 1, done) * (self.total - done)
        if self.live:
            self._draw(done, eta)
        else:
            self._line(t, done, eta)

    def _consider(self, t: Trial) -> None:
        """The best so far (ranked by the reward, shown as the objective's value), or one more failed."""
        if not t.ok:
            self.failed += 1
        elif self._best_reward is None or t.reward > self._best_reward:
            self._best_reward, self.best = t.reward, objective_value(t, self.objective)

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _line(self, t: Trial, done: int, eta: float) -> None:
        failed = f"FAILED {t.error[:60]}"
        outcome = f"{self.name} {objective_value(t, self.objective):.4f}" if t.ok else failed
        if t.cached:
            outcome += f" (repeat of trial {t.cached_from}, not retrained)"
        width = len(str(self.total))
        print(
            f"[{done:>{width}}/{self.total}] trial {t.index:>{width}}: {outcome}  "
            f"best {self.best or 0.0:.4f}  "
            f"eta {eta:4.0f}s  {format_arch(t.architecture)}",
            file=self.stream,
            flush=True,
        )

    def _draw(self, done: int, eta: float) -> None:
        filled = round(BAR_WIDTH * done / self.total) if self.total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        failed = f"  {self.failed} failed" if self.failed else ""
        best = "-" if self.best is None else f"{self.best:.4f}"
        text = f"[{bar}] {done}/{self.total} done  best {best}{failed}  eta {_duration(eta)}"
        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()
        self._drawn = True


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
