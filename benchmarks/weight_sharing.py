"""Weight sharing against stand-alone training, on a lookup table: Kendall tau and regret over seeds.

A one-shot strategy (ENAS, DARTS) ranks architectures by their accuracy with shared weights; the
question is whether that ranking is the stand-alone one, and whether its pick beats random search
given the same CPU time. A lookup table (``rlnas tabulate``) holds every architecture's stand-alone
validation accuracy and training seconds, so both can be answered exactly.

For each seed, the strategy is built by ``rlnas.strategies.make_oneshot`` on the table's own data
(the dataset, fractions and split seed of the table's ``[search]``, loaded as ``rlnas tabulate``
loads them: the supernet trains on the table's train split and is scored on its val split), then
trained as ``rlnas search`` trains it (the strategy's epochs setting, ``enas_epochs`` or
``darts_epochs``, of full minibatches of ``batch_size``, each with a validation minibatch, in the
one-shot loop's order), counting the CPU seconds of this process (every thread) and of any process
it waited for, from building the strategy to its pick. Then:

- tau: Kendall's tau-b between every architecture's accuracy with the shared weights on the whole
  val split (``strategy.evaluate``; ``--tau-rows N``: its first N rows, to save time) and its
  stand-alone val accuracy in the table;
- regret: the table's best accuracy minus the table accuracy of the strategy's pick
  (``candidates(1)[0]``);
- random: random search given the same CPU seconds: architectures drawn uniformly from the table,
  each charged its cost, until the next would go over the budget; the regret of the best one drawn.
  Same seeds; the paired difference is per seed. The cost (``--child-cpu``): by default the CPU
  seconds of a stand-alone child, measured here before the seeds by training ``--cpu-probes``
  architectures of the table as ``rlnas tabulate`` did (same data, epochs, threads), the same for
  every architecture; ``fit`` charges each its recorded ``fit_seconds`` instead, which are wall
  seconds and grow with whatever else loaded the machine while the table was built; a number
  charges that many seconds each.

Each ``--variant "LABEL:key=value,key=value"`` adds settings (names as ``rlnas search`` takes them,
e.g. the strategy's own) to those of ``--settings``; the summary compares each variant with the
first, seed by seed. This is how the mitigations are measured (warm-up of the shared weights, the
controller's entropy bonus, path dropout), without this script knowing their names:

    python benchmarks/weight_sharing.py --table benchmarks/tables/cell_small_fashion.csv \\
        --config benchmarks/tables/cell_small_fashion.toml --strategy enas --seeds 10 \\
        --settings enas_epochs=5
    python benchmarks/weight_sharing.py ... --strategy enas --settings enas_epochs=5 \\
        --variant default --variant "warm-up:enas_warmup=200" --variant "no entropy:enas_entropy=0" \\
        --variant "path dropout:enas_path_dropout=0.3"
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, emit, parser, quiet, table

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace
from rlnas.stats import mean_ci
from rlnas.tables import lookup

Strategy = Any  # an rlnas.strategies.oneshot.OneShotStrategy
MakeStrategy = Callable[[int, dict[str, Any]], Strategy]  # (seed, settings) -> a fresh strategy
EPOCHS = {"enas": "enas_epochs", "darts": "darts_epochs"}  # each strategy's budget setting


@dataclass(frozen=True)
class TableData:
    """Every architecture of the space, in ``space.architectures()`` order, with its stand-alone
    val accuracy (mean over the table's rows for it; NaN if it failed) and its training seconds."""

    space: SearchSpace
    tokens: np.ndarray  # (n, len(space)) int64, 0 at inactive decisions (in range everywhere)
    accuracy: np.ndarray  # (n,)
    cost: np.ndarray  # (n,) mean fit_seconds

    @property
    def best(self) -> float:
        return float(np.nanmax(self.accuracy))

    def accuracy_of(self, tokens: Sequence[int]) -> float:
        key = self.space.key([int(t) for t in tokens])
        return float(self.accuracy[self._index[key]])

    @cached_property
    def _index(self) -> dict[str, int]:
        return {self.space.key(list(t)): i for i, t in enumerate(self.tokens.tolist())}


def read_table(path: str | Path, space: SearchSpace) -> TableData:
    """The table at ``path`` for ``space`` (ConfigError if it lacks an architecture or a column)."""
    accuracy = lookup.load_table(path, space).accuracy
    names, rows = lookup.read_rows(path)
    if "fit_seconds" not in names:
        raise ConfigError(f"table {str(path)!r} lacks column fit_seconds; build it with `rlnas tabulate`")
    seconds: dict[str, list[float]] = {}
    for line, row in enumerate(rows, start=2):
        key = space.key(lookup.row_tokens(space, row, line))
        cell = (row["fit_seconds"] or "").strip()
        seconds.setdefault(key, []).append(float(cell) if cell else math.nan)
    archs = [list(t) for t in space.architectures()]
    keys = [space.key(t) for t in archs]
    cost = np.array([np.nanmean(seconds[k]) if not np.isnan(seconds[k]).all() else 0.0 for k in keys])
    tokens = np.maximum(np.array(archs, np.int64), 0)  # INACTIVE (-1) -> 0: the space ignores it
    return TableData(space, tokens, np.array([accuracy[k] for k in keys], np.float64), cost)


def kendall_tau(shared: Sequence[float], standalone: Sequence[float]) -> float:
    """Kendall's tau-b between the two rankings, over the architectures scored in both (ties count
    as tau-b counts them: a supernet that scores many architectures alike gets a lower tau). A
    supernet that scores them all alike has collapsed: tau-b is 0/0 there, counted as 0 (no
    ranking at all), never left out of the mean."""
    from scipy.stats import kendalltau

    a, b = np.asarray(shared, np.float64), np.asarray(standalone, np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 2:
        return math.nan
    if np.ptp(a[ok]) == 0:
        return 0.0
    return float(kendalltau(a[ok], b[ok], variant="b").statistic)


def random_at_cost(
    accuracy: np.ndarray, cost: np.ndarray, budget: float, rng: np.random.Generator
) -> tuple[float, int]:
    """Random search on the table with ``budget`` seconds: draw architectures uniformly (repeats
    allowed, as random search makes them), charge each its ``cost``, and stop before the first that
    would go over; (the best accuracy drawn, NaN if none fitted; evaluations made)."""
    spent, best, n = 0.0, math.nan, 0
    while True:
        i = int(rng.integers(len(accuracy)))
        if spent + cost[i] > budget:
            return best, n
        spent += cost[i]
        n += 1
        if not math.isnan(accuracy[i]) and not accuracy[i] <= best:
            best = float(accuracy[i])


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of the processes it has waited for."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Data:
    """The table's splits (train for the shared weights, val for the controller, tau and the pick)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def train(
    strategy: Strategy, data: Data, *, epochs: int, steps_per_epoch: int, batch_size: int, seed: int
) -> None:
    """The one-shot search's training (rlnas.search.oneshot): per epoch a shuffle of the train and the
    validation rows seeded by (seed, epoch), ``steps_per_epoch`` training minibatches in that order,
    each with the validation minibatch beside it (the validation rows in order, wrapping around)."""
    b = batch_size
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch])
        order, vorder = rng.permutation(len(data.y_train)), rng.permutation(len(data.y_val))
        for step in range(steps_per_epoch):
            rows = order[step * b : (step + 1) * b]
            v = vorder[np.arange(step * b, step * b + min(b, len(vorder))) % len(vorder)]
            strategy.step(data.x_train[rows], data.y_train[rows], data.x_val[v], data.y_val[v])


def measure_seed(
    make: MakeStrategy,
    settings: dict[str, Any],
    data: Data,
    tab: TableData,
    *,
    seed: int,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    cost: np.ndarray | None = None,
    tau_rows: int | None = None,
    clock: Callable[[], float] = cpu_seconds,
) -> dict[str, Any]:
    """One seed: build and train the strategy, take its pick, then tau and random search at its cost
    (``cost``: random search's seconds per architecture, default the table's fit_seconds; ``tau_rows``:
    score the shared weights for tau on the first that many validation rows only, to save time)."""
    cpu0, wall0 = clock(), time.perf_counter()
    strategy = make(seed, settings)
    train(strategy, data, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed)
    pick = np.asarray(strategy.candidates(1, data.x_val, data.y_val)[0].tokens)
    cpu, wall = clock() - cpu0, time.perf_counter() - wall0
    n = len(data.y_val) if tau_rows is None else tau_rows
    shared = np.asarray(strategy.evaluate(tab.tokens, data.x_val[:n], data.y_val[:n]), np.float64)
    found, evals = random_at_cost(
        tab.accuracy, tab.cost if cost is None else cost, cpu, np.random.default_rng([seed, 23])
    )
    regret = tab.best - tab.accuracy_of(pick)
    return {
        "seed": seed,
        "settings": settings,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "tau": kendall_tau(shared, tab.accuracy),
        "shared_min": float(np.nanmin(shared)),
        "shared_max": float(np.nanmax(shared)),
        "pick": tab.space.decode([int(t) for t in pick]),
        "pick_accuracy": tab.accuracy_of(pick),
        "regret": regret,
        "random_evaluations": evals,
        "random_regret": tab.best - found,
        "regret_minus_random": regret - (tab.best - found),
    }


def _ci(values: Sequence[float], digits: int = 4) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "-"
    m, lo, hi = mean_ci(v)
    f = f"{{:.{digits}f}}"
    return f.format(m) if math.isnan(lo) else f"{f.format(m)} [{f.format(lo)}, {f.format(hi)}]"


def summarize(
    strategy: str,
    tab: TableData,
    runs: dict[str, list[dict[str, Any]]],
    *,
    cost_note: str = "each architecture's recorded fit_seconds",
) -> str:
    """Markdown: per variant, means with 95% Student-t intervals over seeds; then each variant minus
    the first, paired by seed."""
    lines = [
        f"{strategy} on a table of {len(tab.accuracy)} architectures (best stand-alone val accuracy "
        f"{tab.best:.4f}, median {float(np.nanmedian(tab.accuracy)):.4f}); mean [95% t-interval] "
        "over seeds.",
        "tau: Kendall tau-b of shared-weight val accuracy against stand-alone val accuracy, every "
        "architecture; regret: table best minus the stand-alone accuracy of the pick; random: random "
        f"search with the strategy's CPU seconds, a child costing {cost_note}; diff: regret minus "
        "random's, seed by seed (negative: the strategy's pick is better); shared acc range: the lowest "
        "and highest shared-weight accuracy (a narrow range is a collapsed ranking).",
        "",
    ]
    rows = [
        [
            label,
            len(rs),
            _ci([r["tau"] for r in rs]),
            _ci([r["regret"] for r in rs]),
            _ci([r["random_regret"] for r in rs]),
            _ci([r["regret_minus_random"] for r in rs]),
            f"{np.mean([r['cpu_seconds'] for r in rs]):.0f}",
            f"{np.mean([r['random_evaluations'] for r in rs]):.1f}",
            f"{np.mean([r['shared_min'] for r in rs]):.3f}-{np.mean([r['shared_max'] for r in rs]):.3f}",
        ]
        for label, rs in runs.items()
    ]
    headers = ["variant", "seeds", "Kendall tau", "regret", "random regret", "diff", "CPU s", "random evals"]
    lines.append(table([*headers, "shared acc range"], rows))
    labels = list(runs)
    if len(labels) > 1:
        base = {r["seed"]: r for r in runs[labels[0]]}
        lines += ["", f"each variant minus {labels[0]!r}, paired by seed", ""]
        diffs = []
        for label in labels[1:]:
            pairs = [(r, base[r["seed"]]) for r in runs[label] if r["seed"] in base]
            diffs.append(
                [
                    label,
                    len(pairs),
                    _ci([a["tau"] - b["tau"] for a, b in pairs]),
                    _ci([a["regret"] - b["regret"] for a, b in pairs]),
                ]
            )
        lines.append(table(["variant", "seeds", "tau difference", "regret difference"], diffs))
    return "\n".join(lines)


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` items, each value read as a TOML value (``0``, ``0.5``, ``true``, ``"x"``) or
    else as a bare string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"setting {item!r} is not key=value")
        try:
            out[key.strip()] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text.strip()
    return out


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``LABEL`` or ``LABEL:key=value,key=value``."""
    label, _, rest = text.partition(":")
    if not label.strip():
        raise ConfigError(f"variant {text!r} has no label; write LABEL:key=value,...")
    return label.strip(), parse_settings([s for s in rest.split(",") if s.strip()])


def child_cpu_seconds(config: Any, tab: TableData, probes: int, seed: int = 0) -> float:
    """Mean CPU seconds of training ``probes`` architectures of the table (drawn with ``seed``) in this
    process, as ``rlnas tabulate``'s one worker trained them: the same data, epochs and threads."""
    from rlnas.data import load
    from rlnas.models.child import train_and_evaluate, train_spec
    from rlnas.resources import threads_per_worker

    ds = load(config.data_spec())
    spec = train_spec(config, tab.space.model, threads=threads_per_worker(1))
    rng, spent = np.random.default_rng(seed), []
    for i in rng.choice(len(tab.tokens), size=probes, replace=False):
        start = cpu_seconds()
        train_and_evaluate(tab.space.decode(tab.tokens[i].tolist()), ds, spec, seed=int(i))
        spent.append(cpu_seconds() - start)
    return float(np.mean(spent))


def _check_child_cpu(text: str) -> None:
    if text in ("measure", "fit"):
        return
    try:
        ok = float(text) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"--child-cpu {text!r} is invalid; use measure, fit or a number of seconds > 0")


def _costs(args: argparse.Namespace, config: Any, tab: TableData) -> tuple[np.ndarray, str]:
    """Random search's cost per architecture, and how it was obtained (for the summary)."""
    if args.child_cpu == "fit":
        return tab.cost, "each architecture's recorded fit_seconds (wall seconds)"
    if args.child_cpu == "measure":
        cpu = child_cpu_seconds(config, tab, args.cpu_probes)
        return np.full(len(tab.cost), cpu), f"{cpu:.1f} CPU s each (mean of {args.cpu_probes} measured)"
    cpu = float(args.child_cpu)
    return np.full(len(tab.cost), cpu), f"{cpu:.1f} CPU s each (given)"


def budget(config: Any, n_train: int) -> tuple[int, int, int]:
    """(epochs, steps per epoch, minibatch) as the one-shot search takes them from ``config``."""
    batch = int(config.batch_size)
    return int(config.setting(EPOCHS[config.strategy])), max(n_train // batch, 1), batch


def _oneshot_factory(config: Any, space: SearchSpace, ds: Any) -> MakeStrategy:
    """Strategies made as ``rlnas search`` makes them, from the table's config plus the settings."""
    import keras

    from rlnas.strategies import make_oneshot

    def make(seed: int, settings: dict[str, Any]) -> Strategy:
        keras.utils.set_random_seed(seed)
        c = config.with_settings(**settings, seed=seed)
        _, steps, _ = budget(c, len(ds.y_train))
        return make_oneshot(c, space, ds.input_shape, ds.num_classes, steps_per_epoch=steps)

    return make


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = parser("weight_sharing", __doc__, "weight_sharing/STRATEGY_TABLE.json")
    p.add_argument("--table", type=Path, required=True, help="the lookup table (CSV of rlnas tabulate)")
    p.add_argument("--config", type=Path, required=True, help="the table's TOML: its space and data")
    p.add_argument("--strategy", required=True, choices=("enas", "darts"))
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    p.add_argument(
        "--settings",
        nargs="*",
        default=[],
        help="key=value for every variant, as rlnas search takes them (enas_epochs=5, batch_size=64)",
    )
    p.add_argument("--variant", action="append", default=[], help="LABEL[:key=value,...] (repeatable)")
    p.add_argument(
        "--child-cpu",
        default="measure",
        help="random search's cost of a child: measure (default), fit (the table's fit_seconds) or seconds",
    )
    p.add_argument("--cpu-probes", type=int, default=3, help="children trained to measure (default 3)")
    p.add_argument(
        "--tau-rows",
        type=int,
        default=None,
        help="score every architecture for tau on the first N validation rows (default: all)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _args(argv)
    from rlnas.config import load_config

    try:
        if args.seeds < 1 or args.cpu_probes < 1 or (args.tau_rows is not None and args.tau_rows < 1):
            raise ConfigError(
                f"--seeds {args.seeds}, --cpu-probes {args.cpu_probes} and --tau-rows {args.tau_rows} "
                "must be positive"
            )
        _check_child_cpu(args.child_cpu)
        config, space, _ = load_config(args.config)
        base = {**parse_settings(args.settings), "strategy": args.strategy}
        variants = dict(parse_variant(v) for v in args.variant) or {"default": {}}
        configs = {label: config.with_settings(**base, **extra) for label, extra in variants.items()}
        tab = read_table(args.table, space)
    except ConfigError as exc:
        raise SystemExit(f"weight_sharing: {exc}") from None
    if args.out == RESULTS_DIR / "weight_sharing/STRATEGY_TABLE.json":
        args.out = RESULTS_DIR / "weight_sharing" / f"{args.strategy}_{args.table.stem}.json"
    quiet()
    from rlnas.data import load

    ds = load(config.data_spec())
    data = Data(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
    cost, cost_note = _costs(args, config, tab)
    make = _oneshot_factory(config, space, ds)
    runs: dict[str, list[dict[str, Any]]] = {}
    partial = args.out.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for label, extra in variants.items():
        epochs, steps, batch = budget(configs[label], len(ds.y_train))
        for seed in range(args.seeds):
            r = measure_seed(
                make,
                base | extra,
                data,
                tab,
                seed=seed,
                epochs=epochs,
                steps_per_epoch=steps,
                batch_size=batch,
                cost=cost,
                tau_rows=args.tau_rows,
            )
            runs.setdefault(label, []).append(r | {"epochs": epochs, "steps": epochs * steps, "batch": batch})
            print(
                f"{label} seed {seed}: tau {r['tau']:.3f} regret {r['regret']:.4f} random "
                f"{r['random_regret']:.4f} cpu {r['cpu_seconds']:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            partial.write_text(json.dumps(runs, indent=1, default=str))
    results = {
        "table": str(args.table),
        "random_cost": cost_note,
        "random_cost_seconds": cost.tolist(),
        "runs": runs,
    }
    text = summarize(args.strategy, tab, runs, cost_note=cost_note)
    emit(args.out, "weight_sharing", text, results)
    args.out.with_suffix(".md").write_text(text + "\n")
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
