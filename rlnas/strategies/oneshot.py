"""The one-shot interface: strategies that train one shared network instead of one network per child.

ENAS (Pham et al., 2018) and DARTS (Liu et al., 2019) do not fit ``ask``/``tell``: no child is trained
on its own while they search. Both train a *supernet* whose weights every architecture of the space
shares, alternating a step on the shared weights (a training minibatch) with a step on the
architecture distribution (a validation minibatch: REINFORCE on the LSTM controller for ENAS, a
gradient on the softmax weights ``alpha`` for DARTS). The one-shot search loop owns the data, the
budget, the journal, TensorBoard, checkpoints and Ctrl-C; a one-shot strategy owns only its supernet
and its architecture distribution, behind this protocol. At the end the loop asks for the best
architectures under the shared weights and journals them, and the usual replay retrains them from
scratch and scores them once on test.

Arrays: ``x`` as the child models take them (images ``(n, H, W, C)`` or ``(n, H, W)``, tables
``(n, features)``), ``y`` integer class labels ``(n,)``. Token arrays have one column per decision
of the space, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """An architecture the one-shot search proposes for replay.

    Attributes:
        tokens: (len(space),) int64, in range at every decision (inactive ones ignored by the space).
        shared_accuracy: its validation accuracy with the supernet's shared weights, the only score a
            one-shot search has; it ranks candidates, it is not a stand-alone accuracy.
    """

    tokens: np.ndarray
    shared_accuracy: float


class OneShotStrategy(Protocol):
    """What the one-shot search loop needs of ENAS or DARTS."""

    name: str

    def step(
        self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> dict[str, float]:
        """One round: shared-weight step(s) on the training minibatch, then an architecture step on the
        validation minibatch. Returns scalars for TensorBoard, named ``supernet/<name>`` (loss,
        accuracy) and ``controller/<name>`` (entropy, reward, baseline, alpha entropy...)."""
        ...

    def evaluate(self, tokens: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) accuracy of each row's architecture with the shared weights on ``(x, y)``."""
        ...

    def candidates(self, k: int, x_val: np.ndarray, y_val: np.ndarray) -> list[Candidate]:
        """The ``k`` architectures to replay, best first by shared accuracy on ``(x_val, y_val)``.

        ENAS samples architectures from its controller (never argmax) and keeps the best ``k`` distinct
        ones; DARTS derives its one architecture (argmax per edge) and returns at most ``k``."""
        ...

    def save(self, directory: Path, meta: dict) -> None:
        """Write everything needed to continue exactly (shared weights, optimizer slots, the
        architecture distribution, random generators) with the caller's JSON-able ``meta``,
        atomically: a crash leaves the previous checkpoint or the new one."""
        ...

    def restore(self, directory: Path) -> dict:
        """Load what :meth:`save` wrote into a strategy built from the same config; returns ``meta``."""
        ...

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` token rows drawn from the current architecture distribution with ``rng`` (policy
        charts), leaving the strategy's own generators alone."""
        ...
