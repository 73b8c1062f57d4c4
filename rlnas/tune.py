"""rlnas's default search as a Ray Tune searcher: ``tune.TuneConfig(search_alg=ReinforceSearcher(seed=0))``.

The space is the ``param_space`` Tune passes (``set_search_properties``) or the one given: each
``tune.choice`` / ``randint`` / ``qrandint`` / ``uniform`` / ``loguniform`` / ``quniform`` ... becomes an
rlnas decision (a continuous range a grid of ``grid_points`` values, with a warning, once per
parameter); constants and nested dicts pass through. One
:class:`~rlnas.strategies.reinforce.ReinforceStrategy` proposes batches of ``batch`` rows, ``suggest``
hands them to trials in turn, and a batch is told once all its trials have completed
(:class:`~rlnas.strategies.handout.Handout`), whatever order they complete in. With more trials
in flight than a batch holds, the next batch is asked before the last is told (rlnas's pipelining);
``tune.search.ConcurrencyLimiter(searcher, max_concurrent=4)`` keeps it to one batch at a time.

``mode="min"`` negates the metric (the controller maximizes). A trial that errors, or reports no
metric or NaN, is told as failed, with the worst reward seen so far. ``save``/``restore`` write the
handout's state and the list of asks and tells; ``restore`` replays them into a fresh strategy of
the same seed: the same controller, without TensorFlow checkpoints.

Ray Tune is the optional extra ``rlnas[tune]``.
"""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any

import numpy as np

from rlnas.errors import ConfigError
from rlnas.space import Decision, SearchSpace
from rlnas.space.grids import DEFAULT_POINTS, choice_decision, numeric_values
from rlnas.strategies.handout import Handout

try:
    from ray.tune.search import Searcher
    from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized
    from ray.tune.search.variant_generator import assign_value, parse_spec_vars
except ImportError:
    raise ImportError("rlnas.tune needs Ray Tune: pip install 'rlnas[tune]'") from None

__all__ = ["ReinforceSearcher", "to_decision"]


def to_decision(name: str, domain: Domain, points: int = DEFAULT_POINTS) -> tuple[Decision, bool]:
    """A Tune domain as an rlnas decision, and whether its range had to be discretized."""
    if isinstance(domain, Categorical):
        return choice_decision(name, tuple(domain.categories)), False
    if isinstance(domain, Integer | Float):
        sampler = domain.get_sampler()
        q = sampler.q if isinstance(sampler, Quantized) else None
        inner = sampler.get_sampler() if isinstance(sampler, Quantized) else sampler
        integer = isinstance(domain, Integer)
        high = domain.upper - 1 if integer and q is None else domain.upper  # randint's upper is exclusive
        grid = numeric_values(
            domain.lower, high, step=q, log=isinstance(inner, LogUniform), integer=integer, points=points
        )
        return Decision(name, grid.values, kind="int" if integer else "float"), grid.discretized
    raise ConfigError(f"parameter {name!r}: ReinforceSearcher cannot search {type(domain).__name__}")


class ReinforceSearcher(Searcher):
    """rlnas's default search (the LSTM controller, its reward model and imagined steps) for Ray Tune.

    Args:
        space: the parameter space (default: Tune's ``param_space``).
        metric, mode: what to optimize, as Tune's other searchers take them (or from ``TuneConfig``).
        seed: seeds the controller and its reward model.
        batch: rows per controller update (rlnas's ``archs_per_update``).
        settings: a :class:`rlnas.settings.ReinforceSettings` (default: rlnas's default search).
        grid_points: values a continuous range is searched on.
    """

    def __init__(
        self,
        space: dict | None = None,
        metric: str | None = None,
        mode: str | None = None,
        *,
        seed: int = 0,
        batch: int = 4,
        settings: Any = None,
        grid_points: int = DEFAULT_POINTS,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        super().__init__(metric=metric, mode=mode)
        self.seed, self.batch, self.settings, self.grid_points = seed, batch, settings, grid_points
        self._config: dict | None = None
        self._handout: Handout | None = None
        self._live: dict[str, tuple[int, int]] = {}  # trial id -> (batch, row)
        if space is not None:
            self._build(space)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        if self._handout is not None:
            return False  # a space of its own already
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        self._build(config)
        return True

    def _build(self, config: dict) -> None:
        _, domains, grids = parse_spec_vars(config)
        if grids:
            names = ", ".join("/".join(map(str, p)) for p, _ in grids)
            raise ConfigError(f"ReinforceSearcher cannot search tune.grid_search ({names}); use tune.choice")
        if not domains:
            raise ConfigError("ReinforceSearcher needs a param_space with at least one tune domain")
        decisions = []
        self._paths = [path for path, _ in domains]
        for path, domain in domains:
            name = "_".join(str(p) for p in path)
            name = name if name.isidentifier() else f"p_{len(decisions)}"
            decision, discretized = to_decision(name, domain, self.grid_points)
            decisions.append(decision)
            if discretized:
                warnings.warn(
                    f"ReinforceSearcher searches {'/'.join(map(str, path))!r} on {decision.size} values "
                    f"({', '.join(f'{v:.4g}' for v in decision.values[:3])}, ...): give it a q, "
                    "or grid_points=, to choose them",
                    stacklevel=3,
                )
        self._domains = [d for _, d in domains]
        self._space = SearchSpace(decisions, model="tune")
        self._config = config
        self._handout = Handout(self._make_strategy(), self.batch)

    def _make_strategy(self) -> Any:
        from rlnas.settings import ReinforceSettings
        from rlnas.strategies.reinforce import ReinforceStrategy

        settings = self.settings if self.settings is not None else ReinforceSettings()
        return ReinforceStrategy(self._space, settings, seed=self.seed)

    # -- Tune's searcher interface ---------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | None:
        if self._handout is None:
            raise ConfigError("ReinforceSearcher has no space: give space= or a Tuner param_space")
        b, r = self._handout.next_row(trial_id)
        self._live[trial_id] = (b, r)
        return self._config_of(self._handout.row(b, r))

    def _config_of(self, row: np.ndarray) -> dict:
        import copy

        config = copy.deepcopy(self._config)
        for path, domain, d, t in zip(self._paths, self._domains, self._space.decisions, row, strict=True):
            value = domain.categories[int(t)] if isinstance(domain, Categorical) else d.values[int(t)]
            assign_value(config, path, value)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._live or self._handout is None:
            return
        b, r = self._live.pop(trial_id)
        value = None if error or not result else result.get(self._metric)
        reward = None
        if isinstance(value, int | float) and math.isfinite(value):
            reward = float(value) if self._mode != "min" else -float(value)
        self._handout.finish(b, r, reward)
        self._handout.tell_ready()

    # -- save / restore --------------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        state = {
            "handout": None if self._handout is None else self._handout.state(),
            "config": self._config,
            "live": self._live,
            "metric": self._metric,
            "mode": self._mode,
            "seed": self.seed,
        }
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(state, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        self._metric, self._mode, self.seed = state["metric"], state["mode"], state["seed"]
        self._live = state["live"]
        if state["config"] is not None:
            self._build(state["config"])  # the space and a fresh strategy of the seed
            self._handout = Handout.replay(self._handout.strategy, state["handout"])  # type: ignore[union-attr]
