"""The RNN controller (Zoph & Le 2017): a 2-layer Keras LSTM that emits one token per decision.

Each decision has its own input embedding (of the previous decision's token; a learned start token
for the first) and its own softmax head, so decisions with different vocabularies share only the
recurrent state. The controller knows vocabulary sizes and nothing else of the search space: which
decisions are active in an architecture is the caller's business, passed in as a mask.

Sampling is always from the softmax (never argmax) and draws its randomness from a seeded numpy
generator whose state is checkpointed, so one seed reproduces the sequence of architectures.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from rlnas.errors import RunError


@dataclass(frozen=True)
class Sample:
    """A batch of sampled architectures: tokens and the per-decision log-probabilities and entropies.

    All arrays have shape (n, num_decisions); the caller sums the entries of active decisions.
    """

    tokens: np.ndarray
    log_probs: np.ndarray
    entropies: np.ndarray


class Controller:
    """Autoregressive LSTM policy over a sequence of categorical decisions.

    Args:
        vocab_sizes: number of values of each decision, in emission order.
        units: LSTM units per layer (35 in Zoph & Le).
        layers: number of stacked LSTM layers (2 in Zoph & Le).
        init_range: weights start uniform in [-init_range, init_range] (0.08 in Zoph & Le).
        learning_rate: Adam step size. Zoph & Le's 6e-4 was set for 12,800 samples; a laptop search
            sees a few hundred, so the default is larger (see benchmarks/search_progress.py).
        temperature: logits are divided by this before the softmax.
        tanh_constant: if set (non-zero), logits = C * tanh(logits / temperature), ENAS's bound on
            confidence that keeps a few hundred samples from collapsing the policy (search default 2.5).
        seed: seeds both the initial weights and the sampling generator.
    """

    def __init__(
        self,
        vocab_sizes: Sequence[int],
        *,
        units: int = 35,
        layers: int = 2,
        init_range: float = 0.08,
        learning_rate: float = 0.01,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        seed: int = 0,
    ) -> None:
        self.vocab_sizes = tuple(int(v) for v in vocab_sizes)
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.rng = np.random.default_rng(seed)
        self.units = units

        def init(k: int) -> keras.initializers.Initializer:
            return keras.initializers.RandomUniform(-init_range, init_range, seed=seed * 1000 + k)

        k = iter(range(10_000))
        self.cells = [
            keras.layers.LSTMCell(
                units,
                kernel_initializer=init(next(k)),
                recurrent_initializer=init(next(k)),
                bias_initializer=init(next(k)),
            )
            for _ in range(layers)
        ]
        # Decision i embeds the token of decision i-1; decision 0 embeds a single start token.
        in_vocab = (1, *self.vocab_sizes[:-1])
        self.embeddings = [
            keras.layers.Embedding(v, units, embeddings_initializer=init(next(k))) for v in in_vocab
        ]
        self.heads = [
            keras.layers.Dense(v, kernel_initializer=init(next(k)), bias_initializer=init(next(k)))
            for v in self.vocab_sizes
        ]
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self._run(tf.zeros((1, len(self.vocab_sizes)), tf.int32))  # build every variable
        self.optimizer.build(self.trainable_variables)

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        layers = [*self.cells, *self.embeddings, *self.heads]
        return [v for layer in layers for v in layer.trainable_variables]

    # -- the recurrent pass ----------------------------------------------------------------------
    def _logits(self, i: int, prev: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
        """One step: embed the previous token, run the LSTM stack, apply decision i's head."""
        x = self.embeddings[i](prev)
        new_states = []
        for cell, state in zip(self.cells, states, strict=True):
            x, state = cell(x, state)
            new_states.append(state)
        logits = self.heads[i](x) / self.temperature
        if self.tanh_constant:  # None or 0: off
            logits = self.tanh_constant * tf.tanh(logits)
        return logits, new_states

    def _initial_states(self, n: int) -> list:
        return [[tf.zeros((n, self.units)), tf.zeros((n, self.units))] for _ in self.cells]

    def _run(self, tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Teacher-forced pass: per-decision log-prob of ``tokens`` and entropy, each (n, D)."""
        n = tf.shape(tokens)[0]
        states = self._initial_states(n)
        prev = tf.zeros((n,), tf.int32)
        log_probs, entropies = [], []
        for i in range(len(self.vocab_sizes)):
            logits, states = self._logits(i, prev, states)
            logp_all = tf.nn.log_softmax(logits)
            tok = tokens[:, i]
            log_probs.append(tf.gather(logp_all, tok, batch_dims=1))
            entropies.append(-tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1))
            prev = tok
        return tf.stack(log_probs, axis=1), tf.stack(entropies, axis=1)

    # -- public API ------------------------------------------------------------------------------
    def sample(self, n: int, *, rng: np.random.Generator | None = None) -> Sample:
        """Sample ``n`` token sequences from the policy (autoregressively, never argmax).

        Args:
            rng: where the randomness comes from; default the controller's own checkpointed generator.
                Pass another one to look at the policy (monitoring) without moving the search's sampler.
        """
        rng = self.rng if rng is None else rng
        states = self._initial_states(n)
        prev = tf.zeros((n,), tf.int32)
        tokens = np.zeros((n, len(self.vocab_sizes)), np.int64)
        log_probs = np.zeros(tokens.shape, np.float64)
        entropies = np.zeros(tokens.shape, np.float64)
        for i in range(len(self.vocab_sizes)):
            logits, states = self._logits(i, prev, states)
            logp = tf.nn.log_softmax(logits).numpy().astype(np.float64)
            probs = np.exp(logp)
            cdf = np.cumsum(probs, axis=1)
            u = rng.random(n) * cdf[:, -1]
            tok = np.minimum((cdf <= u[:, None]).sum(axis=1), probs.shape[1] - 1)
            tokens[:, i] = tok
            log_probs[:, i] = logp[np.arange(n), tok]
            entropies[:, i] = -(probs * logp).sum(axis=1)
            prev = tf.constant(tok, tf.int32)
        return Sample(tokens, log_probs, entropies)

    def log_prob(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Differentiable log-probability and entropy of each sequence, summed over active decisions.

        Args:
            tokens: (n, D) sampled tokens, inactive positions included (they fed the next input).
            mask: (n, D) booleans, True where the decision is active; None means all active.

        Returns:
            (log_prob, entropy), each of shape (n,).
        """
        logp, ent = self._run(tf.constant(np.asarray(tokens), tf.int32))
        m = tf.ones_like(logp) if mask is None else tf.constant(np.asarray(mask), logp.dtype)
        return tf.reduce_sum(logp * m, axis=1), tf.reduce_sum(ent * m, axis=1)

    def probabilities(self, i: int, prefix: np.ndarray) -> np.ndarray:
        """Policy over decision ``i`` after the token prefix ``prefix`` (shape (i,)), for reports."""
        states = self._initial_states(1)
        prev = tf.zeros((1,), tf.int32)
        for j in range(i + 1):
            logits, states = self._logits(j, prev, states)
            if j < i:
                prev = tf.constant([int(prefix[j])], tf.int32)
        return tf.nn.softmax(logits)[0].numpy()

    # -- checkpoints -----------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Weights, optimizer slots and the sampler's RNG state, as named arrays."""
        state = {f"w{i}": v.numpy() for i, v in enumerate(self.trainable_variables)}
        state |= {f"o{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        rng = json.dumps(self.rng.bit_generator.state)
        state["rng"] = np.frombuffer(rng.encode(), np.uint8)
        state["vocab"] = np.array(self.vocab_sizes)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned; the vocabularies must match."""
        if tuple(state["vocab"].tolist()) != self.vocab_sizes:
            raise RunError(
                f"controller checkpoint is for vocabularies {tuple(state['vocab'].tolist())}, "
                f"this space has {self.vocab_sizes}"
            )
        for i, v in enumerate(self.trainable_variables):
            v.assign(state[f"w{i}"])
        for i, v in enumerate(self.optimizer.variables):
            v.assign(state[f"o{i}"])
        self.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())

    def save(self, path: str | Path, meta: dict | None = None) -> None:
        """Write the checkpoint atomically (a synced temporary file, then a rename).

        ``meta`` (JSON-able: the search's baseline and step) travels in the same file, so a crash
        can never leave the controller and the search state from different updates.
        """
        path = Path(path)
        state = self.get_state()
        state["meta"] = np.frombuffer(json.dumps(meta or {}).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **state)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def restore(self, path: str | Path) -> dict:
        """Load a checkpoint written by :meth:`save`; returns its ``meta``."""
        try:
            with np.load(path) as data:
                state = dict(data)
            self.set_state(state)
            return json.loads(bytes(state["meta"]).decode()) if "meta" in state else {}
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"cannot read controller checkpoint {str(path)!r}: {exc}") from None
