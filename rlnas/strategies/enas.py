"""ENAS (Pham et al., 2018): an LSTM controller samples children as paths through one supernet whose
weights they all share, and learns by REINFORCE from the paths' accuracy with those weights.

One :meth:`EnasStrategy.step` per training minibatch:

1. the shared weights take one SGD step through one path: a uniform random path during the warm-up
   (``enas_warmup`` steps) and, after it, with probability ``enas_path_dropout``; else the
   controller's sample (never its argmax);
2. after the warm-up, ``enas_controller_steps`` times per epoch (spread evenly over its steps): the
   controller samples ``enas_paths`` paths, each is scored by its accuracy on the validation
   minibatch with the shared weights, and one REINFORCE step (moving-average baseline, entropy
   bonus: :mod:`rlnas.policy.gradient`) follows.

The controller decides only the supernet's ``shared`` decisions; it is Zoph & Le's controller
(:class:`rlnas.policy.controller.Controller`) over those vocabularies, with ENAS's one 64-unit LSTM
layer and logits bounded by 2.5 tanh. A decision the supernet cannot judge (a learning rate, a
dropout) takes ``supernet.fixed``'s value in every row, so every token row still has one column per
decision of the space and replays as any other.

Randomness: the controller's generator (its samples), the strategy's own (uniform paths, path
dropout) and the supernet's; all three are in the checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.errors import RunError
from rlnas.policy import gradient as policy_gradient
from rlnas.policy.controller import Controller
from rlnas.run.durable import atomic_write_text
from rlnas.run.snapshots import latest_snapshot, save_snapshot
from rlnas.settings import EnasSettings
from rlnas.space import SearchSpace
from rlnas.strategies.base import active_masks
from rlnas.strategies.oneshot import Candidate

if TYPE_CHECKING:
    from rlnas.policy.supernet import Supernet

LSTM_UNITS, LSTM_LAYERS, INIT_RANGE, TANH_CONSTANT, GRAD_CLIP = 64, 1, 0.1, 2.5, 5.0
"""ENAS's controller: one LSTM layer of 64 units, weights uniform in [-0.1, 0.1], logits bounded by
2.5 tanh (the bound that keeps a few hundred samples from collapsing the policy), gradients clipped."""
EAGER_ENV = "RLNAS_EAGER_CONTROLLER"
"""As for reinforce (:data:`rlnas.strategies.reinforce.EAGER_ENV`): set, the controller is not traced."""


class EnasStrategy:
    """ENAS over a supernet: see the module's docstring.

    Args:
        space: the search space; the supernet judges its ``shared`` decisions.
        settings: the warm-up, the controller's steps, paths and loss, path dropout, the candidates.
        supernet: the shared-weight network (:mod:`rlnas.policy.supernet`), built for ``space``.
        steps_per_epoch: training minibatches per epoch, over which the controller's steps are spread.
        seed: seeds the controller (weights, sampler) and the strategy's own generator.
    """

    name = "enas"

    def __init__(
        self,
        space: SearchSpace,
        settings: EnasSettings,
        supernet: Supernet,
        *,
        steps_per_epoch: int,
        seed: int = 0,
        compiled: bool | None = None,
    ) -> None:
        self.space, self.settings, self.supernet = space, settings, supernet
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.columns = [space.names.index(name) for name in supernet.shared]
        self.template = _template(space, supernet)
        if compiled is None:
            compiled = os.environ.get(EAGER_ENV, "") in ("", "0")
        self.controller = Controller(
            [space.vocab_sizes[i] for i in self.columns],
            units=LSTM_UNITS,
            layers=LSTM_LAYERS,
            init_range=INIT_RANGE,
            learning_rate=settings.enas_controller_lr,
            tanh_constant=TANH_CONSTANT,
            seed=seed,
            compiled=compiled,
        )
        self.baseline = policy_gradient.Baseline(decay=settings.enas_baseline_decay)
        self.rng = np.random.default_rng([seed, 0xE7A5])
        self.train_steps = 0
        policy_gradient.prepare(self.controller)  # the update's trace now, not in the first step

    # -- rows ------------------------------------------------------------------------------------
    def _rows(self, shared: np.ndarray) -> np.ndarray:
        """Full token rows: the controller's columns in place, the fixed decisions' tokens elsewhere."""
        rows = np.repeat(self.template[None, :], len(shared), axis=0)
        rows[:, self.columns] = shared
        return rows

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, len(space)) tokens sampled from the controller (its own generator unless ``rng``)."""
        return self._rows(self.controller.sample(n, rng=rng).tokens)

    def uniform(self, n: int) -> np.ndarray:
        """(n, len(space)) tokens, each shared decision uniform (the fixed ones as always)."""
        sizes = np.asarray(self.controller.vocab_sizes, np.int64)
        return self._rows(self.rng.integers(0, sizes, size=(n, len(sizes)), dtype=np.int64))

    # -- the one-shot interface ------------------------------------------------------------------
    def step(
        self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> dict[str, float]:
        s = self.settings
        warm = self.train_steps < s.enas_warmup
        # Drawn every step, warm or not, so the generator's stream does not depend on the settings' phase.
        dropped = self.rng.random() < s.enas_path_dropout
        path = self.uniform(1) if warm or dropped else self.sample(1)
        loss, accuracy = self.supernet.train_step(x_train, y_train, path[0])
        scalars = {"supernet/loss": float(loss), "supernet/accuracy": float(accuracy)}
        scalars["supernet/uniform_path"] = float(warm or dropped)
        updates = 0 if warm else self._updates_due()
        self.train_steps += 1
        for _ in range(updates):
            scalars |= self._controller_step(x_val, y_val)
        return scalars

    def _updates_due(self) -> int:
        """Controller updates at this step: ``enas_controller_steps`` per epoch, evenly spread (step t of
        an epoch of S steps does floor((t+1) C / S) - floor(t C / S) of them)."""
        t, steps, c = (
            self.train_steps % self.steps_per_epoch,
            self.steps_per_epoch,
            self.settings.enas_controller_steps,
        )
        return (t + 1) * c // steps - t * c // steps

    def _controller_step(self, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
        """Sample paths, score each on the validation minibatch with shared weights, one REINFORCE step."""
        s = self.settings
        shared = self.controller.sample(s.enas_paths).tokens
        rows = self._rows(shared)
        rewards = self.evaluate(rows, x_val, y_val)
        mask = active_masks(self.space, rows)[:, self.columns]
        stats = policy_gradient.update(
            self.controller,
            shared,
            mask,
            rewards,
            self.baseline,
            entropy_weight=s.enas_entropy,
            grad_clip=GRAD_CLIP,
        )
        return {
            "controller/reward": float(np.mean(rewards)),
            "controller/reward_max": float(np.max(rewards)),
            "controller/baseline": stats.baseline,
            "controller/loss": stats.loss,
            "controller/entropy": stats.entropy,
            "controller/grad_norm": stats.grad_norm,
            "controller/advantage_abs": stats.advantage_abs,
        }

    def evaluate(self, tokens: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([self.supernet.accuracy(x, y, row) for row in np.asarray(tokens)], np.float64)

    def candidates(self, k: int, x_val: np.ndarray, y_val: np.ndarray) -> list[Candidate]:
        """Sample ``enas_candidates`` architectures from the controller (never argmax), keep one row per
        architecture (the first sampled), score each on the whole validation set with the shared
        weights, and return the ``k`` best, best first (the earlier sampled on ties)."""
        rows = self.sample(self.settings.enas_candidates)
        distinct: dict[str, np.ndarray] = {}
        for row in rows:
            distinct.setdefault(self.space.key(row), row)
        unique = np.array(list(distinct.values()), np.int64)
        scores = self.evaluate(unique, x_val, y_val)
        order = sorted(range(len(unique)), key=lambda i: (-scores[i], i))[:k]
        return [Candidate(unique[i].copy(), float(scores[i])) for i in order]

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.sample(n, rng=rng)

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, directory: Path, meta: dict) -> None:
        """Controller (weights, Adam, sampler), baseline, the strategy's generator and step count, the
        supernet and the caller's ``meta``, as one checkpoint directory (:mod:`rlnas.run.snapshots`)."""
        state = {
            "strategy": self.name,
            "meta": meta,
            "baseline": self.baseline.value,
            "train_steps": self.train_steps,
            "rng": self.rng.bit_generator.state,
            "shared": list(self.supernet.shared),
        }

        def write(path: Path) -> None:
            self.controller.save(path / "controller.npz")
            self.supernet.save(path / "supernet")
            atomic_write_text(path / "state.json", json.dumps(state))

        save_snapshot(directory, write)

    def restore(self, directory: Path) -> dict:
        path = latest_snapshot(directory)
        if path is None:
            raise RunError(f"{str(directory)!r} holds no completed ENAS checkpoint")
        try:
            state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot read {str(path / 'state.json')!r}: {exc}") from None
        if state.get("strategy") != self.name or state.get("shared") != list(self.supernet.shared):
            raise RunError(f"checkpoint {str(path)!r} is not an ENAS checkpoint of this space's supernet")
        self.controller.restore(path / "controller.npz")
        self.supernet.load(path / "supernet")
        self.baseline.value = state["baseline"]
        self.train_steps = int(state["train_steps"])
        self.rng.bit_generator.state = state["rng"]
        return dict(state["meta"])


def _template(space: SearchSpace, supernet: Any) -> np.ndarray:
    """The token row of the fixed decisions (the shared columns are overwritten per sample).

    Raises:
        ValueError: the supernet leaves a decision neither shared nor fixed (a supernet bug).
    """
    row = np.zeros(len(space), np.int64)
    for i, d in enumerate(space.decisions):
        if d.name in supernet.shared:
            continue
        if d.name not in supernet.fixed:
            raise ValueError(f"the supernet neither shares nor fixes decision {d.name!r}")
        row[i] = d.index(supernet.fixed[d.name])
    return row
