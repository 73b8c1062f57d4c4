"""The strategy interface (after Optuna's samplers): ``ask`` for architectures, ``tell`` their rewards.

The search loop owns evaluation, journal and budget; a strategy owns only how the next batch is
chosen and what it learns from the last one. Keeping that seam narrow is what lets random search,
regularized evolution and the REINFORCE controller run through the same loop and the same benchmark.

Resume contract: the loop calls ``ask(m)`` for a whole batch, evaluates (perhaps only part of it),
calls ``tell`` on the evaluated rows, then ``save``. After ``restore`` into a fresh instance built from
the same config, ``ask(m)`` returns exactly the batch the interrupted run asked for next. So every
strategy draws all its randomness from its own checkpointed generator, and ``probe`` (monitoring)
draws from a generator it is given. (With ``pipeline = 2`` the loop asks for batch k+1 before it
tells batch k; it keeps that proposal in its own checkpoint meta, so the contract stays the same.)

Token arrays have one column per decision of the space. Strategies here always return in-range
tokens, even at inactive decisions, so that code reading a column (policy marginals) needs no special
case; the space ignores inactive entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlnas.errors import RunError
from rlnas.models.child import Status
from rlnas.run.store import atomic_write_text
from rlnas.space import SearchSpace


@dataclass(frozen=True)
class Proposal:
    """A batch of proposed architectures.

    Attributes:
        tokens: (n, len(space)) int64.
        log_probs: (n,) log-probability of each architecture under the policy that proposed it, summed
            over its active decisions; None for strategies without an explicit policy.
    """

    tokens: np.ndarray
    log_probs: np.ndarray | None = None


class Strategy(Protocol):
    """What the search loop and the benchmark need of a search strategy."""

    name: str

    def ask(self, n: int) -> Proposal:
        """Propose ``n`` architectures (deterministic given the strategy's state)."""
        ...

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray | None = None,
        statuses: Sequence[Status] | None = None,
    ) -> dict[str, float]:
        """Learn from evaluated rows (possibly fewer than asked); scalars for TensorBoard, maybe empty.

        ``log_probs`` are the rows' ``Proposal.log_probs`` when the policy may have moved since it
        proposed them (a pipelined batch, proposed before the previous update): a strategy that learns
        a policy weights by them; None means the rows are on-policy. ``statuses`` say how each row's
        child ended (None: all OK); a failed row's reward is the failed reward, which the policy and
        the population learn from as from any other, while TPE tells Optuna the trial failed.
        """
        ...

    def think(self) -> float | None:
        """Spare-time work the search loop gives the strategy while a batch's children train (the
        reward model's imagined steps); returns a scalar for TensorBoard, or None (nothing to do)."""
        ...

    def save(self, path: Path, meta: dict) -> None:
        """Atomically write everything needed to continue exactly, with the caller's JSON-able ``meta``."""
        ...

    def restore(self, path: Path) -> dict:
        """Load what :meth:`save` wrote; returns its ``meta``."""
        ...

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` proposals drawn with ``rng`` (monitoring), leaving the strategy's own generator alone."""
        ...


def uniform_tokens(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, D) tokens, each decision uniform and independent (keras-tuner's RandomSearch).

    Every column is drawn, active or not, so the number of draws never depends on the values: that
    keeps a generator's stream, and hence a resumed run, independent of which decisions got activated.
    """
    sizes = np.asarray(space.vocab_sizes, np.int64)
    return rng.integers(0, sizes, size=(n, len(sizes)), dtype=np.int64)


def check_batch(
    space: SearchSpace,
    tokens: np.ndarray,
    rewards: np.ndarray,
    log_probs: np.ndarray | None = None,
    statuses: Sequence[Status] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``tell`` batch: one row of len(space) tokens per reward, rewards finite, and (if
    given) one log-probability and one status per row."""
    tokens = np.asarray(tokens, np.int64)
    rewards = np.asarray(rewards, np.float64)
    if tokens.ndim != 2 or tokens.shape[1] != len(space) or rewards.shape != (tokens.shape[0],):
        raise ValueError(
            f"tell needs tokens of shape (k, {len(space)}) and k rewards, "
            f"got tokens {tokens.shape} and rewards {rewards.shape}"
        )
    if not np.all(np.isfinite(rewards)):
        raise ValueError(f"rewards must be finite (give failed children the failed reward), got {rewards}")
    if log_probs is not None and np.shape(log_probs) != rewards.shape:
        raise ValueError(f"tell needs one log-probability per row, got shape {np.shape(log_probs)}")
    if statuses is not None and len(statuses) != len(rewards):
        raise ValueError(f"tell needs one status per row, got {len(statuses)} for {len(rewards)} rows")
    return tokens, rewards


def active_masks(space: SearchSpace, tokens: np.ndarray) -> np.ndarray:
    """(n, D) booleans: which decisions each row's architecture has."""
    return np.array([space.active_mask(t) for t in tokens], bool).reshape(len(tokens), len(space))


def check_ask(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"ask needs a positive number of architectures, got {n!r}")


# -- checkpoints of the numpy-only strategies -------------------------------------------------------
def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a synced temporary file, then rename: a crash leaves the old file or the new one."""
    atomic_write_text(Path(path), json.dumps(data))


def read_state(path: Path, name: str, space: SearchSpace) -> dict[str, Any]:
    """Read a checkpoint written by :func:`write_json_atomic` for strategy ``name`` on ``space``.

    Raises:
        RunError: unreadable, written by another strategy, or for a space with other vocabularies.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"cannot read {name} checkpoint {str(path)!r}: {exc}") from None
    if not isinstance(data, dict) or data.get("strategy") != name:
        found = data.get("strategy") if isinstance(data, dict) else None
        raise RunError(f"checkpoint {str(path)!r} is for strategy {found!r}, not {name!r}")
    if list(data.get("vocab", [])) != list(space.vocab_sizes):
        raise RunError(
            f"checkpoint {str(path)!r} is for vocabularies {data.get('vocab')}, "
            f"this space has {list(space.vocab_sizes)}"
        )
    return data
