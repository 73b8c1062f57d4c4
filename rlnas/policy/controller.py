"""The RNN controller (Zoph & Le 2017): a 2-layer Keras LSTM that emits one token per decision.

Each decision has its own input embedding (of the previous decision's token; a learned start token
for the first) and its own softmax head, so decisions with different vocabularies share only the
recurrent state. The controller knows vocabulary sizes and nothing else of the search space: which
decisions are active in an architecture is the caller's business, passed in as a mask.

Sampling is always from the softmax (never argmax) and draws its randomness from a seeded numpy
generator whose state is checkpointed, so one seed reproduces the sequence of architectures: the
generator supplies the uniforms, the graph only turns them into tokens by inverting each softmax's CDF.

Speed: run eagerly, one batch of samples costs tens of milliseconds in Python op dispatch. With
``compiled=True`` (the default) sampling is one ``tf.function`` traced once per controller, with a
``None`` batch dimension so a batch cut short by the budget does not retrace; the eager path runs the
very same Python function, so both give the same numbers (benchmarks/controller_speed.py).

(About 340 lines: both policies, sampling, log-probabilities and the checkpoint share one set of
layers and one traced graph, so they are one class rather than pieces that would each need it all.)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rlnas.errors import RunError
from rlnas.policy.controller_kinds import CONTROLLERS
from rlnas.run.store import atomic_write_bytes


@dataclass(frozen=True)
class Sample:
    """A batch of sampled architectures: tokens and the per-decision log-probabilities and entropies.

    All arrays have shape (n, num_decisions); the caller sums the entries of active decisions.
    """

    tokens: np.ndarray
    log_probs: np.ndarray
    entropies: np.ndarray


class PolicyPass(NamedTuple):
    """The differentiable teacher-forced pass over a batch of token sequences (tf tensors).

    Attributes:
        log_prob: (n,) log-probability of each sequence, summed over its active decisions.
        entropy: (n,) entropy of the policy along each sequence, summed over its active decisions.
        watched: (n, k) probability of token t at decision d for each (d, t) in ``watch``, whether
            active or not (the caller masks): what a penalty on one choice, like a skip density, needs.
    """

    log_prob: Any
    entropy: Any
    watched: Any


class Controller:
    """Autoregressive LSTM policy over a sequence of categorical decisions (or a factorized one).

    Args:
        vocab_sizes: number of values of each decision, in emission order.
        kind: ``"lstm"``, or ``"factorized"``: no recurrent state, decision i's logits are a free
            vector of its own (independent decisions). The simplest policy REINFORCE can train; with a
            few hundred samples it learns where the LSTM barely moves from random search
            (BENCHMARKS.md, "Sample efficiency"). ``units`` and ``layers`` do not apply to it.
        units: LSTM units per layer (35 in Zoph & Le).
        layers: number of stacked LSTM layers (2 in Zoph & Le).
        init_range: weights start uniform in [-init_range, init_range] (0.08 in Zoph & Le).
        learning_rate: Adam step size. Zoph & Le's 6e-4 was set for 12,800 samples; a laptop search
            sees a few hundred, so the default is larger (see benchmarks/search_progress.py).
        temperature: logits are divided by this before the softmax.
        tanh_constant: if set (non-zero), logits = C * tanh(logits / temperature), ENAS's bound on
            confidence that keeps a few hundred samples from collapsing the policy (search default 2.5).
        seed: seeds both the initial weights and the sampling generator.
        compiled: sample through a traced ``tf.function`` (same numbers, a few times faster after a
            one-off trace); False runs the same code eagerly.

    Attributes:
        compiled_steps: traced training steps that callers (``rlnas.policy.gradient``) build over this
            controller's variables, keyed by what they were traced for; kept here, as Keras keeps a
            model's ``train_function``, so a trace lives exactly as long as the variables it captured.
    """

    def __init__(
        self,
        vocab_sizes: Sequence[int],
        *,
        kind: str = "lstm",
        units: int = 35,
        layers: int = 2,
        init_range: float = 0.08,
        learning_rate: float = 0.01,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        seed: int = 0,
        compiled: bool = True,
    ) -> None:
        if kind not in CONTROLLERS:
            raise ValueError(f"controller kind must be one of {CONTROLLERS}, got {kind!r}")
        self.vocab_sizes = tuple(int(v) for v in vocab_sizes)
        self.kind = kind
        self._settings = {
            "kind": kind,
            "units": units,
            "layers": layers,
            "init_range": init_range,
            "learning_rate": learning_rate,
            "temperature": temperature,
            "tanh_constant": tanh_constant,
        }
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.rng = np.random.default_rng(seed)
        self.units = units

        self._make_layers(units, layers, init_range, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self._run(tf.zeros((1, len(self.vocab_sizes)), tf.int32))  # build every variable
        self.optimizer.build(self.trainable_variables)
        self.compiled = compiled
        self.compiled_steps: dict[Any, Any] = {}
        self._sample_tokens = self._sample_graph
        if compiled:
            spec = tf.TensorSpec((len(self.vocab_sizes), None), tf.float64)
            self._sample_tokens = tf.function(self._sample_graph, input_signature=[spec], autograph=False)

    def _make_layers(self, units: int, layers: int, init_range: float, seed: int) -> None:
        """The policy's layers, each initializer seeded from ``seed`` in a fixed order (a seed is a run)."""

        def init(k: int) -> keras.initializers.Initializer:
            return keras.initializers.RandomUniform(-init_range, init_range, seed=seed * 1000 + k)

        k = iter(range(10_000))
        self.cells: list[Any] = []
        self.embeddings: list[Any] = []
        if self.kind == "factorized":  # decision i's logits: row 0 of a one-row embedding, looked up by 0
            self.heads = [
                keras.layers.Embedding(1, v, embeddings_initializer=init(next(k))) for v in self.vocab_sizes
            ]
        else:
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

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        layers = [*self.cells, *self.embeddings, *self.heads]
        return [v for layer in layers for v in layer.trainable_variables]

    # -- the recurrent pass ----------------------------------------------------------------------
    def _logits(self, i: int, prev: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
        """One step: embed the previous token, run the LSTM stack, apply decision i's head (factorized:
        decision i's own logits, whatever came before)."""
        if self.cells:
            x = self.embeddings[i](prev)
            new_states = []
            for cell, state in zip(self.cells, states, strict=True):
                x, state = cell(x, state)
                new_states.append(state)
            logits = self.heads[i](x)
        else:
            logits, new_states = self.heads[i](tf.zeros_like(prev)), states
        logits = logits / self.temperature
        if self.tanh_constant:  # None or 0: off
            logits = self.tanh_constant * tf.tanh(logits)
        return logits, new_states

    def _initial_states(self, n: int) -> list:
        return [[tf.zeros((n, self.units)), tf.zeros((n, self.units))] for _ in self.cells]

    def _run(
        self, tokens: tf.Tensor, watch: tuple[tuple[int, int], ...] = ()
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Teacher-forced pass: per-decision log-prob of ``tokens`` and entropy, each (n, D), and the
        probability of each watched (decision, token), (n, len(watch))."""
        n = tf.shape(tokens)[0]
        states = self._initial_states(n)
        prev = tf.zeros((n,), tf.int32)
        log_probs, entropies, watched = [], [], {}
        for i in range(len(self.vocab_sizes)):
            logits, states = self._logits(i, prev, states)
            logp_all = tf.nn.log_softmax(logits)
            tok = tokens[:, i]
            log_probs.append(tf.gather(logp_all, tok, batch_dims=1))
            entropies.append(-tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1))
            watched |= {(d, t): tf.exp(logp_all[:, t]) for d, t in watch if d == i}
            prev = tok
        watched_probs = tf.stack([watched[w] for w in watch], axis=1) if watch else tf.zeros((n, 0))
        return tf.stack(log_probs, axis=1), tf.stack(entropies, axis=1), watched_probs

    def _sample_graph(self, uniforms: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Tokens, log-probs and entropies (each (n, D)) from uniforms of shape (D, n), one per draw.

        Inverse-CDF sampling in float64, as numpy did it before this was a graph: token = how many
        CDF entries lie at or below u * total (capped at the last token against round-off).
        """
        n = tf.shape(uniforms)[1]
        states = self._initial_states(n)
        prev = tf.zeros((n,), tf.int32)
        tokens, log_probs, entropies = [], [], []
        for i, v in enumerate(self.vocab_sizes):
            logits, states = self._logits(i, prev, states)
            logp = tf.cast(tf.nn.log_softmax(logits), tf.float64)
            probs = tf.exp(logp)
            cdf = tf.cumsum(probs, axis=1)
            below = tf.cast(cdf <= (uniforms[i] * cdf[:, -1])[:, None], tf.int32)
            tok = tf.minimum(tf.reduce_sum(below, axis=1), v - 1)
            tokens.append(tok)
            log_probs.append(tf.gather(logp, tok, batch_dims=1))
            entropies.append(-tf.reduce_sum(probs * logp, axis=1))
            prev = tok
        return tf.stack(tokens, axis=1), tf.stack(log_probs, axis=1), tf.stack(entropies, axis=1)

    # -- public API ------------------------------------------------------------------------------
    def sample(self, n: int, *, rng: np.random.Generator | None = None) -> Sample:
        """Sample ``n`` token sequences from the policy (autoregressively, never argmax).

        Args:
            rng: where the randomness comes from; default the controller's own checkpointed generator.
                Pass another one to look at the policy (monitoring) without moving the search's sampler.
        """
        rng = self.rng if rng is None else rng
        # Row i holds decision i's n draws: the generator advances exactly as n draws per decision did.
        uniforms = rng.random((len(self.vocab_sizes), n))
        tokens, log_probs, entropies = self._sample_tokens(tf.constant(uniforms))
        return Sample(tokens.numpy().astype(np.int64), log_probs.numpy(), entropies.numpy())

    def log_prob(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Differentiable log-probability and entropy of each sequence, summed over active decisions.

        Args:
            tokens: (n, D) sampled tokens, inactive positions included (they fed the next input).
            mask: (n, D) booleans, True where the decision is active; None means all active.

        Returns:
            (log_prob, entropy), each of shape (n,).
        """
        out = self.policy(tokens, mask)
        return out.log_prob, out.entropy

    def policy(
        self, tokens: Any, mask: Any | None = None, *, watch: Sequence[tuple[int, int]] = ()
    ) -> PolicyPass:
        """:meth:`log_prob` plus the probability of chosen (decision, token) pairs, in one pass.

        Args:
            tokens, mask: as for :meth:`log_prob` (numpy arrays or tensors, so a traced step can call it).
            watch: (decision index, token) pairs whose probability to return, e.g. "skip = True".

        Raises:
            ValueError: a watched pair outside the vocabularies.
        """
        watch = tuple((int(d), int(t)) for d, t in watch)
        for d, t in watch:
            if not (0 <= d < len(self.vocab_sizes) and 0 <= t < self.vocab_sizes[d]):
                raise ValueError(
                    f"watched (decision, token) {(d, t)} is outside vocabularies {self.vocab_sizes}"
                )
        logp, ent, watched = self._run(tf.cast(tokens, tf.int32), watch)
        m = tf.ones_like(logp) if mask is None else tf.cast(mask, logp.dtype)
        return PolicyPass(tf.reduce_sum(logp * m, axis=1), tf.reduce_sum(ent * m, axis=1), watched)

    def probabilities(self, i: int, prefix: np.ndarray) -> np.ndarray:
        """Policy over decision ``i`` after the token prefix ``prefix`` (shape (i,)), for reports."""
        states = self._initial_states(1)
        prev = tf.zeros((1,), tf.int32)
        for j in range(i + 1):
            logits, states = self._logits(j, prev, states)
            if j < i:
                prev = tf.constant([int(prefix[j])], tf.int32)
        return tf.nn.softmax(logits)[0].numpy()

    def reset(self, seed: int) -> None:
        """Become exactly the controller ``seed`` would build (weights, a fresh Adam, the sampler), keeping
        the traced functions: a benchmark of many seeds then pays for one trace instead of one per seed."""
        fresh = Controller(self.vocab_sizes, **self._settings, seed=seed, compiled=False)
        self.set_state(fresh.get_state())

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
        atomic_write_bytes(path, buf.getvalue())

    def restore(self, path: str | Path) -> dict:
        """Load a checkpoint written by :meth:`save`; returns its ``meta``."""
        try:
            with np.load(path) as data:
                state = dict(data)
            self.set_state(state)
            return json.loads(bytes(state["meta"]).decode()) if "meta" in state else {}
        except (OSError, ValueError, KeyError) as exc:
            raise RunError(f"cannot read controller checkpoint {str(path)!r}: {exc}") from None
