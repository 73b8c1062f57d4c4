"""Random search, regularized evolution, TPE and REINFORCE variants on one of the field's tables
(NAS-Bench-201, HPOLib) or one of the project's own (``project:mnist_5k_mlp``, ``project:fashion_mlp_small``).

Each strategy runs ``--seeds`` times (strategy seed s; the evaluation noise from its own generator of
seed s, the same for every strategy) with a plain ask/tell loop: batches of ``--batch``, each
evaluation one stored training seed of the table, the last batch cut at the budget. The score after k
evaluations is the regret of the incumbent (the architecture with the best *observed* reward so far)
measured on its true mean over seeds, in the metric's units (and as log10 for MSE). Printed per
budget: the mean and its 95% Student-t interval, and each strategy's difference from TPE with
Welch's interval; then the median evaluations until the incumbent is in the table's top 0.1% (true
value; a seed that never gets there counts as budget + 1), the simulated training time of the
evaluations, and each strategy's own time per proposal.

    python benchmarks/field_tables.py --table nb201:cifar10 --seeds 10
    python benchmarks/field_tables.py --table nb201:cifar10 --variants random fm \
        "mine=reinforce:controller=factorized,model_steps=5"

A variant is a name of :data:`VARIANTS` or ``name=strategy:field=value,...`` (SearchConfig fields).
Besides regret, each variant reports its distinct architectures per 50 evaluations (does the policy
collapse?) and its controller seconds per batch (ask + tell: everything but the evaluation).

Held-out tables (NB201 cifar100/imagenet, HPOLib protein_structure/slice_localization)
are refused unless ``--held-out`` is given: they are for the final report, never for tuning.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlnas.config import PLAIN_REINFORCE, load_config, make_config
from rlnas.stats import diff_ci, mean_ci
from rlnas.strategies import make_strategy
from rlnas.tables import lookup as lookup_table
from rlnas.tables.hpo import HELD_OUT, TABLES, HpoTable
from rlnas.tables.hpo import load_table as load_hpo_table

TABLE_DIR = Path(__file__).resolve().parent / "tables"
PROJECT_TABLES = ("project:mnist_5k_mlp", "project:fashion_mlp_small")
_PROJECT_CONFIGS = {"mnist_5k_mlp": "mlp_coarse.toml", "fashion_mlp_small": "mlp_small_fashion.toml"}
PLAIN = {"controller": "lstm", **PLAIN_REINFORCE}
UCB_MODEL = {"novel_only": True, "model_steps": 5, "explore_mix": 0.25, "model_trees": 8, "model_pool": 512}
UCB_MODEL |= {"model_select": "ucb", "mutant_share": 0.5}  # the reward model with UCB selection
VARIANTS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "tpe": ("tpe", {}),
    "default": ("reinforce", {}),  # the default: LSTM + reward model, --model-select mixed
    "thompson": (
        "reinforce",
        {"model_select": "thompson"},
    ),  # --model-select thompson: a drawn tree in every slot
    "reinforce": ("reinforce", PLAIN),  # Zoph & Le: the LSTM, one step per real batch
    "factorized": ("reinforce", {**PLAIN, "controller": "factorized"}),
    "fdefault": ("reinforce", {"controller": "factorized"}),  # the default with the factorized policy
    "novel": ("reinforce", {**PLAIN, "novel_only": True}),
    "model": ("reinforce", UCB_MODEL),
    "model_risk": ("reinforce", {**UCB_MODEL, "risk_seeking": 0.1}),
    "default_risk": ("reinforce", {"risk_seeking": 0.1}),
    "default_pqt": ("reinforce", {"pqt_k": 4}),
    "risk": ("reinforce", {**PLAIN, "risk_seeking": 0.1}),
    "fmodel": ("reinforce", {**UCB_MODEL, "controller": "factorized"}),
    "fmodel_risk": ("reinforce", {**UCB_MODEL, "controller": "factorized", "risk_seeking": 0.1}),
}
"""Built-in variants: the peers, and the ablation (plain REINFORCE, + reward model, + risk-seeking,
factorized policy, the default)."""
DEFAULT_VARIANTS = ("random", "evolution", "tpe")


def load_table(name: str) -> HpoTable:
    """A field table, or a project table (``benchmarks/tables``) as an HpoTable without noise.

    A project space is conditional; the table gets a row for every token combination (inactive
    positions included, each answering its architecture's value), so ``HpoTable.index`` still works.
    A child that failed when the table was built scores 0, the search's failed reward.
    """
    if not name.startswith("project:"):
        return load_hpo_table(name)
    stem = name.split(":", 1)[1]
    _, space, _ = load_config(TABLE_DIR / _PROJECT_CONFIGS[stem])
    table = lookup_table.load_table(TABLE_DIR / f"{stem}.csv", space)
    combos = itertools.product(*(range(v) for v in space.vocab_sizes))
    true = np.nan_to_num(np.array([table.val_accuracy(t) for t in combos]), nan=0.0)
    ones = np.ones((true.size, 1))
    return HpoTable(
        name, space, "val_accuracy", "maximize", true[:, None], ones[:, 0].astype(np.int64), ones, true
    )


def parse_variant(spec: str) -> tuple[str, str, dict]:
    """``name`` of :data:`VARIANTS`, or ``name=strategy:field=value,...`` -> (name, strategy, fields)."""
    if "=" not in spec.split(":")[0]:
        return (spec, *VARIANTS[spec])
    name, rest = spec.split("=", 1)
    strategy, _, settings = rest.partition(":")
    fields = {}
    for item in filter(None, settings.split(",")):
        k, v = item.split("=", 1)
        fields[k] = json.loads(v.lower()) if v.lower() in ("true", "false") else _number(v)
    return name, strategy, fields


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Runner:
    """Makes a variant's strategy for each seed; a REINFORCE one is built once and ``reset`` (its
    traces cost more than a lookup-table run spends on everything else)."""

    def __init__(self, space, strategy: str, fields: dict) -> None:
        self.space, self.strategy, self.fields = space, strategy, fields
        self._kept = None

    def make(self, seed: int):
        if self.strategy == "reinforce":
            if self._kept is None:
                config = make_config(strategy="reinforce", seed=seed, **self.fields)
                self._kept = make_strategy(config, self.space)
            self._kept.reset(seed)
            return self._kept
        return make_strategy(make_config(strategy=self.strategy, seed=seed, **self.fields), self.space)


def run_once(table: HpoTable, strategy, seed: int, budget: int, batch: int) -> dict[str, np.ndarray]:
    """One run: per evaluation the incumbent's true value, the train time charged, the canonical
    key, and per batch the strategy's seconds (ask + tell)."""
    noise = np.random.default_rng(seed)
    tokens, rewards, seconds_per_batch = [], [], []
    while len(rewards) < budget:
        start = time.perf_counter()
        asked = strategy.ask(batch).tokens[: budget - len(rewards)]
        spent = time.perf_counter() - start
        values, seconds = table.evaluate(asked, noise)
        start = time.perf_counter()
        strategy.tell(asked, table.reward(values))
        seconds_per_batch.append(spent + time.perf_counter() - start)
        tokens.extend(asked)
        rewards.extend(zip(table.reward(values), seconds, strict=True))
    reward = np.array([r for r, _ in rewards])
    true = table.true_value(np.array(tokens))[_incumbent_index(reward)]
    return {
        "true": true,
        "train_time": np.cumsum([s for _, s in rewards]),
        "batch_seconds": np.array(seconds_per_batch),
        "keys": [table.space.key(t) for t in tokens],
    }


def distinct_per(keys: list[str], window: int = 50) -> list[int]:
    """Distinct architectures in each window of ``window`` consecutive evaluations."""
    return [len(set(keys[i : i + window])) for i in range(0, len(keys), window)]


def _incumbent_index(reward: np.ndarray) -> np.ndarray:
    """Index of the best observed reward so far after each evaluation (the earliest on a tie)."""
    best = np.maximum.accumulate(reward)
    new = np.flatnonzero(np.r_[True, best[1:] > best[:-1]])
    return new[np.searchsorted(new, np.arange(reward.size), side="right") - 1]


def evals_to_top(table: HpoTable, true: np.ndarray, fraction: float) -> int:
    """Evaluations until the incumbent's true value is in the table's top ``fraction`` (budget + 1 if
    never)."""
    q = np.quantile(table.true, 1 - fraction if table.maximize else fraction)
    inside = true >= q if table.maximize else true <= q
    return int(np.argmax(inside)) + 1 if inside.any() else true.size + 1


def fmt(m: float, lo: float, hi: float) -> str:
    return f"{m:.4g} [{lo:.4g}, {hi:.4g}]"


def report(table: HpoTable, runs: dict[str, list[dict]], budgets: list[int]) -> tuple[str, dict]:
    """The text report and its numbers (JSON-able)."""
    names = list(runs)
    n_seeds = len(runs[names[0]])
    lines = [f"{table.name}: {table.metric} ({table.direction}), best true {table.best:.6g}, {n_seeds} seeds"]
    numbers: dict = {"table": table.name, "seeds": n_seeds, "scores": {}, "variants": {}}
    scales = [("regret", table.regret)]
    if not table.maximize:
        scales.append(("log10 regret", table.log10_regret))
    refs = [r for r in ("tpe", "evolution") if r in runs]
    for label, f in scales:
        for k in budgets:
            lines.append(f"  {label} at {k}:")
            score = {name: [float(f(r["true"][k - 1])) for r in rs] for name, rs in runs.items()}
            numbers["scores"][f"{label}@{k}"] = score
            for name, x in score.items():
                d = "".join(f"   minus {ref} {fmt(*diff_ci(x, score[ref]))}" for ref in refs if ref != name)
                lines.append(f"    {name:<12} {fmt(*mean_ci(x))}{d}")
    budget = len(runs[names[0]][0]["true"])
    for name, rs in runs.items():
        top = float(np.median([evals_to_top(table, r["true"], 0.001) for r in rs]))
        hours = float(np.mean([r["train_time"][-1] for r in rs]) / 3600)
        batch_s = float(np.mean([r["batch_seconds"][1:].mean() for r in rs]))
        distinct = np.array([distinct_per(r["keys"]) for r in rs])
        numbers["variants"][name] = {
            "median_evals_to_top_0.1%": top,
            "batch_seconds": batch_s,
            "distinct_per_50_mean": distinct.mean(axis=0).tolist(),
            "distinct_per_50_min": distinct.min(axis=0).tolist(),
            "evals_to_top": [evals_to_top(table, r["true"], 0.001) for r in rs],
        }
        lines.append(
            f"  {name:<12} ({len(rs)} seeds) median evals to top 0.1%: {top:g} (of {budget});  "
            f"train time {hours:.1f} h;  "
            f"controller s/batch {batch_s:.3f};  distinct per 50 (mean) {_slash(distinct.mean(axis=0))} "
            f"(min {_slash(distinct.min(axis=0))})"
        )
    return "\n".join(lines), numbers


def run_variants(table: HpoTable, args: argparse.Namespace) -> tuple[dict, dict]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs, specs = {}, {}
    for spec in args.variants:
        name, strategy, fields = parse_variant(spec)
        runner = Runner(table.space, strategy, fields)
        runs[name] = [run_once(table, runner.make(s), s, args.budget, args.batch) for s in seeds]
        specs[name] = {"strategy": strategy, **fields}
    return runs, specs


def merge_runs(paths: list[Path]) -> tuple[dict, dict]:
    """Runs saved by ``--save-runs`` (one file per variant, say, run side by side), in file order."""
    runs, specs = {}, {}
    for path in paths:
        data = json.loads(path.read_text())
        specs |= data["specs"]
        for name, rs in data["runs"].items():
            loaded = [{k: v if k == "keys" else np.asarray(v) for k, v in r.items()} for r in rs]
            runs.setdefault(name, []).extend(loaded)  # seeds split over files are joined
    return runs, specs


def _slash(values: np.ndarray) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=(*TABLES, *PROJECT_TABLES))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--batch", type=int, default=4, help="proposals per ask (rlnas's archs_per_update)")
    p.add_argument("--budgets", type=int, nargs="+", default=[50, 200])
    p.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="names or name=strategy:k=v,..."
    )
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument("--save-runs", type=Path, help="write the raw runs here (to --merge them later)")
    p.add_argument("--merge", type=Path, nargs="+", help="report on runs saved by --save-runs instead")
    p.add_argument("--held-out", action="store_true", help="allow a held-out table (final reports only)")
    args = p.parse_args(argv)
    if args.table in HELD_OUT and not args.held_out:
        p.error(f"{args.table} is held out: never tune on it; --held-out for a final report")
    table = load_table(args.table)
    start = time.perf_counter()
    if args.merge:
        runs, specs = merge_runs(args.merge)
    else:
        runs, specs = run_variants(table, args)
    if args.save_runs:
        saved = {n: [{k: np.asarray(v).tolist() for k, v in r.items()} for r in rs] for n, rs in runs.items()}
        args.save_runs.write_text(json.dumps({"table": table.name, "specs": specs, "runs": saved}))
    text, numbers = report(table, runs, [k for k in args.budgets if k <= args.budget])
    print(text)
    print(f"  ({time.perf_counter() - start:.1f} s)")
    if args.json:
        numbers["specs"] = specs
        args.json.write_text(json.dumps(numbers))


if __name__ == "__main__":
    main()
