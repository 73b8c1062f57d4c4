"""A stand-in for a real supernet (:mod:`rlnas.policy.supernet`), small and exact, for the one-shot
search's fast tests: numpy only, the Supernet protocol to the letter.

A softmax classifier on the flattened input whose weight matrix is the sum of one matrix per
(shared decision, value): a path uses the matrices of its values, so paths share weights exactly as
ENAS's children do, train each other's shared parts, and score differently. Inactive decisions
(``units_1`` of a one-layer net) add nothing. ``lr`` is fixed (the double cannot judge it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlnas.space import Decision, SearchSpace


def double_space() -> SearchSpace:
    """An mlp space with a conditional decision and one the supernet cannot judge (lr)."""
    return SearchSpace(
        [
            Decision("num_layers", (1, 2), "int"),
            Decision("units_0", (8, 16, 32), "int"),
            Decision("units_1", (8, 16), "int", when={"num_layers": (2,)}),
            Decision("lr", (1e-3, 1e-2), "float"),
        ],
        model="mlp",
    )


class DoubleSupernet:
    shared = ("num_layers", "units_0", "units_1")

    def __init__(
        self,
        space: SearchSpace,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        seed: int,
        lr: float = 0.5,
    ) -> None:
        self.space, self.lr = space, lr
        self.fixed: dict[str, Any] = {"lr": 1e-3}
        features = int(np.prod(input_shape))
        rng = np.random.default_rng(seed)
        self.weights = {
            (name, t): rng.normal(0, 0.01, (features, num_classes))
            for name in self.shared
            for t in range(space[name].size)
        }
        self.steps = 0
        self.calls: list[tuple[str, tuple[int, ...]]] = []  # (train|accuracy, tokens): what was asked

    def _parts(self, tokens: np.ndarray) -> list[tuple[str, int]]:
        mask = self.space.active_mask(tokens)
        names = self.space.names
        return [(n, int(tokens[names.index(n)])) for n in self.shared if mask[names.index(n)]]

    def _logits(self, x: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        w = sum(self.weights[p] for p in self._parts(tokens))
        return x.reshape(len(x), -1) @ w

    def train_step(self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray) -> tuple[float, float]:
        self.calls.append(("train", tuple(int(t) for t in tokens)))
        logits = self._logits(x, tokens)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
        accuracy = float(np.mean(p.argmax(axis=1) == y))
        p[np.arange(len(y)), y] -= 1
        grad = x.reshape(len(x), -1).T @ p / len(y)
        for part in self._parts(tokens):
            self.weights[part] = self.weights[part] - self.lr * grad
        self.steps += 1
        return loss, accuracy

    def accuracy(self, x: np.ndarray, y: np.ndarray, tokens: np.ndarray, *, batch_size: int = 512) -> float:
        self.calls.append(("accuracy", tuple(int(t) for t in tokens)))
        return float(np.mean(self._logits(x, tokens).argmax(axis=1) == y))

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        arrays = {f"{n}:{t}": w for (n, t), w in self.weights.items()}
        np.savez(path / "weights.npz", steps=np.array(self.steps), **arrays)

    def load(self, path: Path) -> None:
        with np.load(path / "weights.npz") as data:
            self.weights = {(k.split(":")[0], int(k.split(":")[1])): data[k] for k in data if ":" in k}
            self.steps = int(data["steps"])

    def param_bytes(self) -> int:
        return sum(w.nbytes for w in self.weights.values())


def blobs(n: int, *, seed: int = 0, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Separable (n, 4, 4) images of ``classes`` classes: what the double learns in a few steps."""
    centers = np.random.default_rng(12345).normal(0, 1, (classes, 16))  # one problem, whatever the seed
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(0, 0.8, (n, 16))
    return x.reshape(n, 4, 4).astype(np.float32), y.astype(np.int64)
