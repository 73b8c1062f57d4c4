"""Optuna's TPE sampler (Bergstra et al. 2011; Watanabe 2023) as an rlnas strategy: the peer users pick.

It runs Optuna's own ask-and-tell on an in-memory study that maximises reward, with Optuna 5's
defaults for ``TPESampler(seed=...)``: multivariate TPE, 10 random start-up trials, and the constant
liar, which counts proposals still being evaluated as bad so that a batch spreads out. A proposal
costs about 4 ms at 50 evaluations, 7 ms at 200 and 18 ms at 1,000 (TPE refits on the whole history).

Each decision is one categorical parameter over its token indices, suggested define-by-run in the
space's order and only when active, as an Optuna user writes a conditional space; inactive positions
of a proposal are filled from the strategy's own generator (in range, ignored by the space, as the
other strategies do) and never reach the study.

``tell`` completes the asked trials whose rows it gets (matched by the architecture's key); rows it
never asked for are added as finished trials. A row whose child failed is told to Optuna as a failed
trial (which TPE ignores), not as a completed one with the failed reward, as an Optuna user reports
an exception. Once a batch has been told, its remaining trials (cut short by a budget) are marked
failed likewise. Optuna is an optional dependency (the
``bench`` extra), imported only when this strategy is built.

Resume is exact: the checkpoint keeps the study's finished and running trials in order and the states
of the three generators (ours, TPE's and its start-up random sampler's, the last two Optuna private
attributes). A restored study holds only those trials, renumbered, which TPE cannot tell apart (it
orders trials but never reads their numbers). If a future Optuna moves those generators, ``save``
records that and ``restore`` refuses the checkpoint rather than continue differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from rlnas.errors import ConfigError, RunError
from rlnas.models.child import Status
from rlnas.space import SearchSpace
from rlnas.strategies.base import (
    Proposal,
    check_ask,
    check_batch,
    read_state,
    uniform_tokens,
    write_json_atomic,
)

EXTRA_HINT = "pip install -e '.[bench]'"
PROBE_DRAWS = 32
"""Real TPE draws behind one :meth:`TPEStrategy.probe` (the policy-marginals chart)."""


def _optuna() -> ModuleType:
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"strategy 'tpe' needs the optional package optuna: {EXTRA_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    return optuna


class TPEStrategy:
    """Optuna's ``TPESampler`` behind ``ask``/``tell``.

    Args:
        space: the search space.
        seed: seeds the sampler and the generator of inactive positions.
        constant_liar: Optuna's default (True) spreads a batch; :meth:`probe` turns it off in its copy.

    Raises:
        ConfigError: optuna is not installed (the message names the extra).
    """

    name = "tpe"

    def __init__(self, space: SearchSpace, *, seed: int = 0, constant_liar: bool = True) -> None:
        self.optuna = _optuna()
        self.space = space
        self.constant_liar = constant_liar
        self.distributions = {
            d.name: self.optuna.distributions.CategoricalDistribution(tuple(range(d.size)))
            for d in space.decisions
        }
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Start over as a fresh strategy of ``seed`` would (the benchmark reuses one instance)."""
        self.seed = seed
        self.sampler = self.optuna.samplers.TPESampler(seed=seed, constant_liar=self.constant_liar)
        self.study = self.optuna.create_study(direction="maximize", sampler=self.sampler)
        self.rng = np.random.default_rng(seed)
        self.pending: dict[int, tuple[int, np.ndarray]] = {}  # trial number -> (ask index, tokens)
        self.asks = 0

    # -- ask / tell ------------------------------------------------------------------------------
    def ask(self, n: int) -> Proposal:
        check_ask(n)
        rows = []
        for _ in range(n):
            trial = self.study.ask()
            row = self._suggest(trial)
            self.pending[trial.number] = (self.asks, row)
            rows.append(row)
        self.asks += 1
        return Proposal(np.stack(rows), None)

    def _suggest(self, trial: Any) -> np.ndarray:
        """One proposal: the active decisions from the trial, in order; the rest from our generator
        (a whole row always, so our stream does not depend on which decisions were active)."""
        row = uniform_tokens(self.space, 1, self.rng)[0]
        chosen: dict[str, Any] = {}
        for i, d in enumerate(self.space.decisions):
            if d.is_active(chosen):
                row[i] = trial.suggest_categorical(d.name, self.distributions[d.name].choices)
                chosen[d.name] = d.values[row[i]]
        return row

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray | None = None,
        statuses: Sequence[Status] | None = None,
    ) -> dict[str, float]:
        """Complete the asked trials of these rows, or fail those whose child failed (``log_probs``
        ignored: TPE has no policy)."""
        tokens, rewards = check_batch(self.space, tokens, rewards, log_probs, statuses)
        failed = [s == Status.FAILED for s in statuses] if statuses is not None else [False] * len(rewards)
        told: list[int] = []
        for row, reward, fail in zip(tokens, rewards, failed, strict=True):
            number = self._match(row)
            if number is None:
                if not fail:  # a failed row never asked for: nothing for TPE to learn
                    self.study.add_trial(self._finished(row, float(reward)))
                continue
            told.append(self.pending.pop(number)[0])
            if fail:
                self.study.tell(number, state=self.optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(number, float(reward))
        if told:  # those batches are done: what they did not evaluate will never come back
            done = max(told)
            for number in [k for k, (a, _) in self.pending.items() if a <= done]:
                del self.pending[number]
                self.study.tell(number, state=self.optuna.trial.TrialState.FAIL)
        return {}

    def think(self) -> None:
        """Nothing to do while children train: TPE refits at each ``ask``."""

    def _match(self, row: np.ndarray) -> int | None:
        key = self.space.key(row)
        return next((k for k, (_, t) in self.pending.items() if self.space.key(t) == key), None)

    def _params(self, row: np.ndarray) -> dict[str, int]:
        mask = self.space.active_mask(row)
        return {d.name: int(t) for d, t, on in zip(self.space.decisions, row, mask, strict=True) if on}

    def _finished(self, row: np.ndarray, value: float | None, running: bool = False) -> Any:
        params = self._params(row)
        state = self.optuna.trial.TrialState
        return self.optuna.trial.create_trial(
            state=state.RUNNING if running else state.COMPLETE,
            params=params,
            distributions={k: self.distributions[k] for k in params},
            value=value,
        )

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` proposals for monitoring, from a copy of the study seeded from ``rng``: what TPE would
        propose now, each draw independent given the history (no constant liar in the copy).

        Each TPE draw rebuilds its density estimators (about 6 ms at 200 trials), so only
        :data:`PROBE_DRAWS` are real draws and the rest are resampled from them: 256 real draws would
        add 1.5 s to every batch of the search loop, whose own asks take 30 ms.
        """
        copy = TPEStrategy(self.space, seed=int(rng.integers(2**31)), constant_liar=False)
        copy._load(self._records())
        drawn = copy.ask(min(n, PROBE_DRAWS)).tokens
        return drawn if n <= PROBE_DRAWS else drawn[rng.integers(0, PROBE_DRAWS, size=n)]

    # -- checkpoints -----------------------------------------------------------------------------
    def _records(self) -> list[dict[str, Any]]:
        """The trials TPE reads (finished and running), in trial order, as plain data."""
        state = self.optuna.trial.TrialState
        records = []
        for t in self.study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING)):
            if t.number in self.pending:
                ask, row = self.pending[t.number]
                records.append({"tokens": [int(x) for x in row], "ask": ask})
            else:
                row = [int(t.params[d.name]) if d.name in t.params else 0 for d in self.space.decisions]
                records.append({"tokens": row, "value": float(t.value)})
        return records

    def _load(self, records: list[dict[str, Any]]) -> None:
        """Add ``records`` to a fresh study: trial ``i`` gets number ``i``."""
        for number, r in enumerate(records):
            row = np.asarray(r["tokens"], np.int64)
            running = "ask" in r
            self.study.add_trial(self._finished(row, r.get("value"), running=running))
            if running:
                self.pending[number] = (int(r["ask"]), row)

    def _generators(self) -> dict[str, Any] | None:
        try:
            states = [self.sampler._rng.rng.get_state(), self.sampler._random_sampler._rng.rng.get_state()]
        except AttributeError:
            return None
        return {"tpe": _jsonable(states[0]), "startup": _jsonable(states[1])}

    def save(self, path: Path, meta: dict) -> None:
        state = {
            "strategy": self.name,
            "vocab": list(self.space.vocab_sizes),
            "seed": self.seed,
            "asks": self.asks,
            "trials": self._records(),
            "rng": self.rng.bit_generator.state,
            "optuna": self._generators(),
            "meta": meta,
        }
        write_json_atomic(path, state)

    def restore(self, path: Path) -> dict:
        data = read_state(path, self.name, self.space)
        if data.get("optuna") is None:
            raise RunError(
                f"tpe checkpoint {str(path)!r} lacks the sampler's generator states (this Optuna keeps "
                "them elsewhere), so the run cannot continue exactly; start a new run"
            )
        self.reset(int(data["seed"]))
        self._load(data["trials"])
        self.asks = int(data["asks"])
        self.rng.bit_generator.state = data["rng"]
        try:  # last: rebuilding the study may have drawn from them
            self.sampler._rng.rng.set_state(_state_tuple(data["optuna"]["tpe"]))
            self.sampler._random_sampler._rng.rng.set_state(_state_tuple(data["optuna"]["startup"]))
        except AttributeError:
            raise RunError(
                f"tpe checkpoint {str(path)!r}: this Optuna keeps the sampler's generators elsewhere, "
                "so the run cannot continue exactly; start a new run"
            ) from None
        return data["meta"]


def _jsonable(state: tuple) -> list:
    """A numpy RandomState state tuple as JSON data (its key array as a list)."""
    name, keys, pos, has_gauss, gauss = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)]


def _state_tuple(data: list) -> tuple:
    name, keys, pos, has_gauss, gauss = data
    return (name, np.asarray(keys, np.uint32), pos, has_gauss, gauss)
