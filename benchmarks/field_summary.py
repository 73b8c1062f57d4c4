"""The field's scoreboard: the default against TPE and regularized evolution on all nine tables.

Reads the raw runs that ``benchmarks/field_tables.py --save-runs`` wrote (one file per table, variant
and first seed; seeds split over files are joined), and prints, per table and budget, each variant's
mean regret with its 95% Student-t interval, the default's difference from TPE and from evolution
with Welch's interval, and whether that interval excludes 0; then the median evaluations to the
table's top 0.1%; then the tally against the targets. Regret is in the metric's units on the
accuracy tables and as log10 on the HPOLib (MSE) tables, as the field compares them.

    python benchmarks/field_summary.py RUNS_DIR --out benchmarks/results/field/summary.json

Tables named in ``rlnas.tables.hpo.HELD_OUT`` are marked held out: they are run to report, never to
choose a setting, which is chosen on the other five.

``--prior`` joins an earlier report's per-seed scores (its ``--out`` JSON) for the variants of a
table that the folder has no runs of, so that fresh seeds of one variant need not rerun its peers;
and where a variant's runs start past seed 0 (files ``TABLE.VARIANT.50.json``...), they continue
the prior's seeds 0-49 of it, which must all be there. A median cannot be joined: where the prior
kept only its median evaluations to the top 0.1% (reports before ``evals_to_top_0.1%`` was written),
the two parts' medians are shown apart.

    python benchmarks/field_summary.py RUNS_DIR --prior benchmarks/results/field/peers.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parser, table
from field_tables import PROJECT_TABLES, evals_to_top, load_table, merge_runs

from rlnas.stats import diff_ci, mean_ci
from rlnas.tables.hpo import HELD_OUT, TABLES

ORDER = (
    "nb201:cifar10", "hpolib:naval_propulsion", "hpolib:parkinsons_telemonitoring", *PROJECT_TABLES,
    "nb201:cifar100", "nb201:imagenet", "hpolib:protein_structure", "hpolib:slice_localization",
)  # fmt: skip
MAIN = "default"
PEERS = ("tpe", "evolution")


def runs_of(folder: Path, name: str, max_seeds: int | None = None) -> tuple[dict, dict]:
    """Every saved run of table ``name``, per variant, in seed order (files TABLE.VARIANT.FIRST.json),
    the first ``max_seeds`` of each variant if given; and each variant's first seed."""
    stem = name.replace(":", "_")
    named = sorted(
        (f.name.split(".")[1], int(f.name.split(".")[2]), f) for f in folder.glob(f"{stem}.*.json")
    )
    runs, _ = merge_runs([f for _, _, f in named])
    first: dict[str, int] = {}
    for variant, seed, _ in named:
        first.setdefault(variant, seed)  # files sorted by (variant, first seed): the lowest
    return {v: rs[:max_seeds] for v, rs in runs.items()}, first


def score(tab, run: dict, k: int) -> float:
    value = run["true"][k - 1]
    return float(tab.log10_regret(value) if not tab.maximize else tab.regret(value))


def _fmt(m: float, lo: float, hi: float, sign: bool = False) -> str:
    f = "{:+.3g}" if sign else "{:.3g}"
    return f"{f.format(m)} [{f.format(lo)}, {f.format(hi)}]"


TOP, TOP_SEEDS = "median_evals_to_top_0.1%", "evals_to_top_0.1%"


def _head(prior_list: list | None, n: int, what: str) -> list:
    """The prior's seeds 0..n-1 that runs starting at seed ``n`` continue; they must all be there."""
    if prior_list is None or len(prior_list) != n:
        raise SystemExit(
            f"field_summary: {what} starts at seed {n}, but --prior does not hold seeds 0-{n - 1}"
        )
    return list(prior_list)


def _scores(tab, runs: dict, first: dict, prior: dict, variants: tuple[str, ...], key: str, k: int) -> dict:
    """Each variant's per-seed scores at ``k``: from its runs (after the prior's seeds when the runs
    start past seed 0), else from the prior report."""
    s = {}
    for v in (v for v in variants if v in runs):
        head = _head(prior.get(key, {}).get(v), first[v], f"{v} ({key})") if first[v] else []
        s[v] = head + [score(tab, r, k) for r in runs[v]]
    return s | {v: prior[key][v] for v in variants if v not in s and v in prior.get(key, {})}


def _evals_to_top(
    tab, runs: dict, first: dict, prior: dict, variants: tuple[str, ...]
) -> tuple[dict, dict, dict]:
    """(median, per-seed list, cell text) of the evaluations to the top 0.1%, from the runs or the
    prior. Where the runs continue a prior that kept only its median, the two medians are shown apart
    (a median cannot be joined)."""
    per_seed, cells = {}, {}
    for v in (v for v in variants if v in runs):
        own = [evals_to_top(tab, r["true"], 0.001) for r in runs[v]]
        n = first[v]
        if n and len(prior.get(TOP_SEEDS, {}).get(v, [])) != n:
            old = prior.get(TOP, {}).get(v)
            end = n + len(own) - 1
            cells[v] = f"{old:g} / {np.median(own):g} (seeds 0-{n - 1} / {n}-{end})"
            continue
        per_seed[v] = (prior[TOP_SEEDS][v] if n else []) + own
    per_seed |= {v: xs for v, xs in prior.get(TOP_SEEDS, {}).items() if v in variants and v not in per_seed}
    median = {v: float(np.median(xs)) for v, xs in per_seed.items()}
    median |= {
        v: m for v, m in prior.get(TOP, {}).items() if v in variants and v not in median and v not in cells
    }
    cells |= {v: f"{m:g}" for v, m in median.items() if v not in cells}
    return median, per_seed, cells


def summarise(
    folder: Path,
    budgets: tuple[int, ...],
    variants: tuple[str, ...],
    max_seeds: int | None = None,
    tables: tuple[str, ...] = ORDER,
    prior: dict | None = None,
) -> tuple[str, dict]:
    rows, numbers, top_cells, tally = [], {}, {}, defaultdict(lambda: defaultdict(int))
    for name in tables:
        if name not in TABLES and name not in PROJECT_TABLES:
            continue
        runs, first = runs_of(folder, name, max_seeds)
        before = (prior or {}).get(name, {})
        if MAIN not in runs and not before:
            continue
        tab = load_table(name)
        scale = "log10 regret" if not tab.maximize else "regret"
        label = f"{name}{' (held out)' if name in HELD_OUT else ''}"
        numbers[name] = {}
        for k in budgets:
            s = _scores(tab, runs, first, before, variants, f"{scale}@{k}", k)
            cells = [label, f"{scale}@{k}"]
            cells += [f"{_fmt(*mean_ci(s[v]))} ({len(s[v])})" if v in s else "" for v in variants]
            for peer in PEERS:
                if peer not in s:
                    cells.append("")
                    continue
                d, lo, hi = diff_ci(s[MAIN], s[peer])
                verdict = "better" if hi < 0 else "worse" if lo > 0 else "tie"
                tally[(peer, k)][verdict] += 1
                cells.append(f"{_fmt(d, lo, hi, sign=True)} **{verdict}**")
            rows.append(cells)
            numbers[name][f"{scale}@{k}"] = s
        numbers[name][TOP], numbers[name][TOP_SEEDS], top_cells[name] = _evals_to_top(
            tab, runs, first, before, variants
        )
    headers = ["table", "score", *variants, f"{MAIN} − tpe", f"{MAIN} − evolution"]
    text = [table(headers, rows), ""]
    top_rows = [[n, *(top_cells[n].get(v, "") for v in variants)] for n in numbers]
    text += ["Median evaluations until the incumbent is in the table's top 0.1% (budget + 1: never)", ""]
    text += [table(["table", *variants], top_rows), ""]
    for (peer, k), counts in sorted(tally.items(), key=lambda x: (x[0][1], x[0][0])):
        text.append(
            f"- at {k} evaluations, {MAIN} vs {peer}: better on {counts['better']}, tie on {counts['tie']}, "
            f"worse on {counts['worse']} of {sum(counts.values())} tables (95% interval of the difference)"
        )
    return "\n".join(text), {"tables": numbers, "tally": {f"{p}@{k}": dict(c) for (p, k), c in tally.items()}}


def main(argv: list[str] | None = None) -> None:
    p = parser("field_summary", __doc__, "field/summary.json")
    p.add_argument("runs", type=Path, help="folder of --save-runs files named TABLE.VARIANT.FIRSTSEED.json")
    p.add_argument("--budgets", type=int, nargs="+", default=[50, 200])
    p.add_argument("--variants", nargs="+", default=[MAIN, "tpe", "evolution", "random"])
    p.add_argument(
        "--max-seeds", type=int, help="only each variant's first N seeds (an ablation at equal seeds)"
    )
    p.add_argument("--tables", nargs="+", help="only these tables")
    p.add_argument(
        "--prior",
        type=Path,
        help="an earlier --out JSON: variants not run here, seeds before the runs' first",
    )
    args = p.parse_args(argv)
    tables = tuple(args.tables or ORDER)
    prior = json.loads(args.prior.read_text())["results"]["tables"] if args.prior else None
    md, numbers = summarise(
        args.runs, tuple(args.budgets), tuple(args.variants), args.max_seeds, tables, prior
    )
    emit(args.out, "field_summary", md, numbers)


if __name__ == "__main__":
    main()
