"""A screen of variants against a base variant on the tuning tables, paired by seed.

Each seed of ``benchmarks/field_tables.py`` draws the same evaluation noise for every variant, so a
variant and the base can be compared seed by seed: per table, the mean paired difference of the
score at ``--budget`` evaluations with its 95% Student-t interval, and the median evaluations to the
table's top 0.1%; then, over the tables, Stouffer's combination of the per-table paired t statistics
(each turned into a normal quantile): read a variant as better than the base when that combined z
is below -1.96 at 100 seeds, never on one table's gap alone.

Reads the files ``--save-runs`` wrote (TABLE.VARIANT.FIRSTSEED.json, seeds split over files joined,
as ``field_summary.py`` does); only the tuning tables unless ``--held-out`` (never for a choice).

    python benchmarks/field_tables.py --table nb201:cifar10 --seeds 50 --budget 50 --budgets 50 \
        --variants default "mixed=reinforce:model_select=mixed" --save-runs RUNS/nb201_cifar10.x.0.json
    python benchmarks/field_paired.py RUNS --base default --budget 50
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parser, table
from field_summary import ORDER, runs_of, score
from field_tables import evals_to_top, load_table
from scipy import stats

from rlnas.stats import mean_ci
from rlnas.tables.hpo import HELD_OUT


def paired(x: np.ndarray, base: np.ndarray) -> tuple[float, float, float, float]:
    """(mean difference, 95% interval low, high, t statistic) of ``x - base``, seed by seed."""
    d = np.asarray(x, np.float64) - np.asarray(base, np.float64)
    mean, lo, hi = mean_ci(d)
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    return mean, lo, hi, mean / se if se > 0 else 0.0


def stouffer(t_values: list[float], seeds: list[int]) -> float:
    """The per-table t statistics, each mapped to the normal quantile of its t probability, summed
    and divided by sqrt(tables): one z over all tables (negative: the variant's scores are lower)."""
    z = [float(stats.norm.ppf(stats.t.cdf(t, n - 1))) for t, n in zip(t_values, seeds, strict=True)]
    return sum(z) / math.sqrt(len(z))


def compare(folder: Path, base: str, budget: int, tables: tuple[str, ...]) -> tuple[str, dict]:
    rows, numbers, ts = [], {}, {}
    for name in tables:
        runs, first = runs_of(folder, name)
        if base not in runs:
            continue
        if any(first[v] for v in runs):
            raise SystemExit(f"field_paired: {name}'s runs must start at seed 0 (paired seed by seed)")
        tab = load_table(name)
        scores = {v: np.array([score(tab, r, budget) for r in rs]) for v, rs in runs.items()}
        tops = {v: np.array([evals_to_top(tab, r["true"], 0.001) for r in rs]) for v, rs in runs.items()}
        numbers[name] = {}
        for v in (v for v in runs if v != base):
            n = min(len(scores[v]), len(scores[base]))
            d, lo, hi, t = paired(scores[v][:n], scores[base][:n])
            top = {u: float(np.median(tops[u][:n])) for u in (base, v)}  # on the same seeds
            ts.setdefault(v, []).append((t, n))
            numbers[name][v] = {"diff": d, "low": lo, "high": hi, "t": t, "seeds": n, "top": top[v]}
            rows.append(
                [name, v, n, f"{scores[base][:n].mean():.4g}", f"{scores[v][:n].mean():.4g}",
                 f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]", f"{top[base]:g} / {top[v]:g}"]
            )  # fmt: skip
    combined = {v: stouffer([t for t, _ in x], [n for _, n in x]) for v, x in ts.items()}
    headers = [
        "table",
        "variant",
        "seeds",
        base,
        "variant's",
        "variant − base (paired)",
        "top 0.1% (base / variant)",
    ]
    lines = [
        table(headers, rows),
        "",
        f"Stouffer's z over the tables (score at {budget}; below -1.96: lower):",
    ]
    lines += [f"- {v}: {z:+.2f} over {len(ts[v])} tables" for v, z in combined.items()]
    return "\n".join(lines), {"tables": numbers, "stouffer": combined, "budget": budget, "base": base}


def main(argv: list[str] | None = None) -> None:
    p = parser("field_paired", __doc__, "field/paired.json")
    p.add_argument("runs", type=Path, help="folder of --save-runs files named TABLE.VARIANT.FIRSTSEED.json")
    p.add_argument("--base", default="default", help="the variant the others are compared with")
    p.add_argument("--budget", type=int, default=50, help="score after this many evaluations")
    p.add_argument("--held-out", action="store_true", help="include the held-out tables (report only)")
    args = p.parse_args(argv)
    tables = tuple(t for t in ORDER if args.held_out or t not in HELD_OUT)
    md, numbers = compare(args.runs, args.base, args.budget, tables)
    emit(args.out, "field_paired", md, numbers)


if __name__ == "__main__":
    main()
