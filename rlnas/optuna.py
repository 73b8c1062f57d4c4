"""rlnas's default search as an Optuna sampler: ``optuna.create_study(sampler=ReinforceSampler(seed=0))``.

The space is the study's: the intersection of the completed trials' distributions (as Optuna's
relative samplers take it), in name order, or the ``search_space`` given. Each distribution becomes
an rlnas decision (:func:`to_decision`); parameters outside it (conditional ones, those of the first
trial, which runs before any space is known) are drawn at random, from a generator seeded by the
sampler's seed, the trial's number and the name, so that a resumed study draws what it would have.

One :class:`~rlnas.strategies.reinforce.ReinforceStrategy` proposes batches of ``batch`` rows; the
next trials take them in turn, and a batch is told once all its trials have finished
(:class:`~rlnas.strategies.handout.Handout`), in ``after_trial``. A study run one trial at a time
is then the same search as ``rlnas bench``: ask 4, evaluate 4, tell 4. A minimized study's values are
negated (the controller maximizes); a failed or pruned trial, or a NaN value, is told as a failed row
with the worst reward seen so far.

State lives in the storage, not beside it. Each trial that takes a row records it in a system
attribute (:data:`ROW_ATTR`: the space's fingerprint, the batch, the row and how many batches had
been told when the batch was asked). Another process, or a sampler on a study loaded again, replays
those records in order into a fresh strategy of the same seed: the same asks, the same tells, so the
same controller, with no file to keep next to the storage. A process sees another's rows through
the storage before it takes one; two taking the same row at the same instant both evaluate it and
the later one is told as an extra (foreign) row. Trials run one after another, a study resumed from
its storage continues exactly as the uninterrupted one would have (tests/test_optuna_sampler.py).

Optuna is the optional extra ``rlnas[optuna]``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlnas.errors import ConfigError
from rlnas.space import Decision, SearchSpace
from rlnas.space.grids import DEFAULT_POINTS, choice_decision, numeric_values
from rlnas.strategies.handout import Handout

try:
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.search_space import IntersectionSearchSpace
    from optuna.study import StudyDirection
    from optuna.trial import FrozenTrial, TrialState
except ImportError:
    raise ImportError("rlnas.optuna needs Optuna: pip install 'rlnas[optuna]'") from None

__all__ = ["ROW_ATTR", "ReinforceSampler", "to_decision"]

ROW_ATTR = "rlnas:row"
"""Trial system attribute: [space fingerprint, batch, row, batches told before the batch was asked]."""
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def to_decision(name: str, dist: BaseDistribution, points: int = DEFAULT_POINTS) -> tuple[Decision, bool]:
    """An Optuna distribution as an rlnas decision, and whether its range had to be discretized (a
    float without step, an int or stepped float range of more than ``points`` values)."""
    if isinstance(dist, CategoricalDistribution):
        return choice_decision(name, tuple(dist.choices)), False
    if isinstance(dist, IntDistribution | FloatDistribution):
        integer = isinstance(dist, IntDistribution)
        grid = numeric_values(
            dist.low, dist.high, step=dist.step, log=dist.log, integer=integer, points=points
        )
        return Decision(name, grid.values, kind="int" if integer else "float"), grid.discretized
    raise ConfigError(f"parameter {name!r}: ReinforceSampler cannot search {type(dist).__name__}")


class ReinforceSampler(BaseSampler):
    """rlnas's default search (the LSTM controller, its reward model and imagined steps) for Optuna.

    Args:
        seed: seeds the controller, its reward model and the draws of parameters outside the space.
        batch: rows per controller update (rlnas's ``archs_per_update``).
        settings: a :class:`rlnas.settings.ReinforceSettings` (default: rlnas's default search).
        search_space: the distributions to search from the first trial on, in this order (default:
            the intersection of the completed trials', known from the second trial).
        grid_points: values a continuous range is searched on (a warning says so, once per parameter).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        batch: int = 4,
        settings: Any = None,
        search_space: dict[str, BaseDistribution] | None = None,
        grid_points: int = DEFAULT_POINTS,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 2:
            raise ConfigError(f"grid_points must be an integer of at least 2, got {grid_points!r}")
        self.seed = seed
        self.batch = batch
        self.settings = settings
        self.fixed_space = dict(search_space) if search_space is not None else None
        self.grid_points = grid_points
        self._intersection = IntersectionSearchSpace()
        self._lock = threading.RLock()
        self._warned: set[str] = set()
        self._space: SearchSpace | None = None
        self._dists: dict[str, BaseDistribution] = {}
        self._print = ""
        self._handout: Handout | None = None
        self._strategy: Any = None
        self._seen: set[int] = set()  # trial numbers whose results the handout has
        self._finished: dict[int, tuple[TrialState, float | None]] = {}  # from after_trial

    # -- Optuna's sampler interface --------------------------------------------------------------
    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) > 1:
            raise ConfigError("ReinforceSampler searches one objective; this study has several")
        if self.fixed_space is not None:
            return dict(self.fixed_space)
        space = self._intersection.calculate(study)
        return {k: d for k, d in space.items() if not d.single()}

    def sample_relative(
        self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or "fixed_params" in trial.system_attrs:
            return {}  # no space yet, or an enqueued trial: told as a foreign row when it finishes
        with self._lock:
            self._use_space(search_space)
            assert self._handout is not None
            trials = study._get_trials(deepcopy=False, use_cache=False)
            self._catch_up(study, trials)
            taken = self._taken(trials)
            b, r = self._handout.next_row(trial.number, taken=lambda b, r: (b, r) in taken)
            told_before = self._handout.batches[b].told_before
            study._storage.set_trial_system_attr(trial._trial_id, ROW_ATTR, [self._print, b, r, told_before])
            return self._params(self._handout.row(b, r))

    def sample_independent(
        self, study: Any, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        seq = np.random.SeedSequence([self.seed, trial.number, _crc(param_name)])
        sampler = RandomSampler(seed=int(seq.generate_state(1)[0]))
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Any, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        with self._lock:
            value = float(values[0]) if values and state == TrialState.COMPLETE else None
            self._finished[trial.number] = (state, value)
            if self._handout is not None:
                self._catch_up(study, study._get_trials(deepcopy=False, use_cache=False))

    def reseed_rng(self) -> None:
        """Nothing to reseed: every draw comes from the seed, the trial number and the name (so the
        n_jobs threads and processes sharing a study draw what one process would)."""

    # -- the space -------------------------------------------------------------------------------
    def _use_space(self, dists: dict[str, BaseDistribution]) -> None:
        """Build the strategy for this space, or keep it when the space is the one it has."""
        fingerprint = hashlib.sha1(repr(sorted((k, repr(d)) for k, d in dists.items())).encode()).hexdigest()
        if fingerprint[:12] == self._print:
            return
        decisions = []
        for name, dist in dists.items():
            decision, discretized = to_decision(name, dist, self.grid_points)
            decisions.append(decision)
            if discretized and name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    f"ReinforceSampler searches {name!r} ({dist}) on {decision.size} values "
                    f"({', '.join(f'{v:.4g}' for v in decision.values[:3])}, ...): give it a step, "
                    "or grid_points=, to choose them",
                    stacklevel=4,
                )
        self._space = SearchSpace(decisions, model="optuna")
        self._dists = dict(dists)
        self._print = fingerprint[:12]
        self._strategy = self._make_strategy(self._space)
        self._handout = Handout(self._strategy, self.batch)
        self._seen = set()

    def _make_strategy(self, space: SearchSpace) -> Any:
        from rlnas.settings import ReinforceSettings
        from rlnas.strategies.reinforce import ReinforceStrategy

        settings = self.settings if self.settings is not None else ReinforceSettings()
        return ReinforceStrategy(space, settings, seed=self.seed)

    def _params(self, row: np.ndarray) -> dict[str, Any]:
        out = {}
        for d, t in zip(self._space.decisions, row, strict=True):  # type: ignore[union-attr]
            dist = self._dists[d.name]
            out[d.name] = (
                dist.choices[int(t)] if isinstance(dist, CategoricalDistribution) else d.values[int(t)]
            )
        return out

    def _tokens(self, params: dict[str, Any]) -> np.ndarray | None:
        """A trial's params as a row of this space (nearest grid value), or None if it lacks one."""
        row = []
        for d in self._space.decisions:  # type: ignore[union-attr]
            if d.name not in params:
                return None
            dist, value = self._dists[d.name], params[d.name]
            if isinstance(dist, CategoricalDistribution):
                if value not in dist.choices:
                    return None
                row.append(dist.choices.index(value))
            else:
                scale = math.log if getattr(dist, "log", False) else float
                row.append(int(np.argmin([abs(scale(v) - scale(value)) for v in d.values])))
        return np.asarray(row, np.int64)

    # -- replaying the storage -------------------------------------------------------------------
    def _reward(self, study: Any, trial: FrozenTrial) -> tuple[bool, float | None]:
        """(finished, reward) of a trial: its stored state, or what after_trial saw; None = failed."""
        if trial.state in FINISHED:
            state, value = trial.state, trial.value if trial.state == TrialState.COMPLETE else None
        elif trial.number in self._finished:
            state, value = self._finished[trial.number]
        else:
            return False, None
        if state != TrialState.COMPLETE or value is None or not math.isfinite(value):
            return True, None
        return True, value if study.direction == StudyDirection.MAXIMIZE else -value

    def _claims(self, trials: list[FrozenTrial]) -> dict[tuple[int, int], tuple[FrozenTrial, int]]:
        """(batch, row) -> (the lowest-numbered trial that took it, told_before), for this space."""
        claims: dict[tuple[int, int], tuple[FrozenTrial, int]] = {}
        for t in trials:
            attr = t.system_attrs.get(ROW_ATTR)
            if attr and attr[0] == self._print and (attr[1], attr[2]) not in claims:
                claims[(attr[1], attr[2])] = (t, attr[3])
        return claims

    def _taken(self, trials: list[FrozenTrial]) -> set[tuple[int, int]]:
        return set(self._claims(trials))

    def _catch_up(self, study: Any, trials: list[FrozenTrial]) -> None:
        """Bring the handout to what the storage holds: the batches other processes (or an earlier
        run) asked, in order, each after the tells it came after, and every finished result."""
        handout = self._handout
        assert handout is not None
        claims = self._claims(trials)
        owners = {t.number for t, _ in claims.values()}
        asked = {b: told for (b, r), (_, told) in claims.items()}
        while True:
            for (b, r), (t, _) in claims.items():
                if b < len(handout.batches) and t.number not in self._seen:
                    done, reward = self._reward(study, t)
                    if done:
                        self._seen.add(t.number)
                        handout.finish(b, r, reward)
            mine = [t.number for (b, _), (t, _) in claims.items() if b < len(handout.batches)]
            self._foreign(study, trials, owners, max(mine, default=-1))
            nxt = len(handout.batches)
            if nxt not in asked:
                break
            handout.tell_ready(until=asked[nxt])
            handout.ask()
        handout.tell_ready()

    def _foreign(self, study: Any, trials: list[FrozenTrial], owners: set[int], before: int) -> None:
        """Finished trials numbered below ``before`` that took no row (enqueued, random, duplicates)
        but have the space's params: queued for the next tell, once each, in trial order. (A trial
        run one at a time is told with the first batch whose last trial came after it, live and on
        replay alike.)"""
        for t in trials:
            if t.number >= before or t.number in self._seen or t.number in owners:
                continue
            done, reward = self._reward(study, t)
            row = self._tokens(t.params) if done else None
            if done:
                self._seen.add(t.number)
            if row is not None:
                self._handout.add_foreign(row, reward)  # type: ignore[union-attr]


def _crc(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "little")
