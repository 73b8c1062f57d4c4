"""rlnas's ReinforceSampler against Optuna's TPESampler (and GPSampler where torch installs) in Optuna's
own loop, on the field's tables.

Each seed s runs ``study.optimize`` for ``--budget`` trials: the objective suggests every decision of
the table as a categorical over its values (the table's grid; a table has no other values), draws one
stored training seed from its own generator of seed s (the same noise as ``field_tables.py`` gives
seed s), and returns the metric in the table's direction. The sampler takes the space from the study
(the first trial is random, as with any relative sampler). Saved per seed in ``field_tables.py``'s
``--save-runs`` format, so ``field_tables.py --table T --merge FILE...`` reports regret at 50 and 200
beside the other strategies' runs; ``batch_seconds`` holds the sampler's own seconds per trial
(the trial's time minus the objective's).

    python benchmarks/optuna_sampler.py --table nb201:cifar10 --seeds 10 --budget 50 \
        --samplers reinforce tpe --save-runs runs.json
    python benchmarks/optuna_sampler.py --table nb201:cifar10 --seeds 1 --budget 500 \\
        --samplers tpe reinforce --save-runs timing.json        # the sampler's time per trial
    python benchmarks/optuna_sampler.py --table hpolib:naval_propulsion --budget 40 --same-as-bench
    python benchmarks/optuna_sampler.py --budget 50 --report runs.json   # beside rlnas bench's 100 seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna
from field_tables import PROJECT_TABLES, _incumbent_index, load_table

from rlnas.optuna import ReinforceSampler
from rlnas.stats import diff_ci, mean_ci
from rlnas.tables.hpo import HELD_OUT, TABLES

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "reinforce":
        return ReinforceSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)  # needs torch
    raise SystemExit(f"unknown sampler {name!r}; allowed: reinforce, tpe, gp")


def run_once(table, sampler_name: str, seed: int, budget: int) -> dict:
    noise = np.random.default_rng(seed)
    keys, observed, seconds, objective_s, trial_s = [], [], [], [], []

    def objective(trial: optuna.Trial) -> float:
        arch = {d.name: trial.suggest_categorical(d.name, d.values) for d in table.space.decisions}
        start = time.perf_counter()  # the sampler works inside the suggests: only this is the user's
        row = np.array(table.space.encode(arch))
        values, train = table.evaluate(row[None], noise)
        keys.append(table.space.key(row))
        observed.append(float(table.reward(values)[0]))
        seconds.append(float(train[0]))
        objective_s.append(time.perf_counter() - start)
        return float(values[0])

    def callback(study, trial) -> None:
        trial_s.append(time.perf_counter())

    study = optuna.create_study(direction=table.direction, sampler=make_sampler(sampler_name, seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=budget, callbacks=[callback])
    ends = np.array([start, *trial_s])
    own = np.diff(ends) - np.array(objective_s)  # the sampler's (and Optuna's) seconds per trial
    tokens = np.array([[int(x) for x in k.split("-")] for k in keys])
    true = table.true_value(tokens)[_incumbent_index(np.array(observed))]
    return {"true": true, "train_time": np.cumsum(seconds), "batch_seconds": own, "keys": keys}


def same_as_bench(table, seed: int, budget: int) -> tuple[int, int]:
    """How many of Optuna's loop's first ``budget`` architectures equal ``rlnas bench``'s (the default
    strategy, batches of 4, the same evaluation noise), with the space given from the first trial."""
    from field_tables import Runner
    from field_tables import run_once as bench_once

    bench = bench_once(table, Runner(table.space, "reinforce", {}).make(seed), seed, budget, 4)["keys"]
    space = {d.name: optuna.distributions.CategoricalDistribution(d.values) for d in table.space.decisions}
    noise, keys = np.random.default_rng(seed), []

    def objective(trial: optuna.Trial) -> float:
        arch = {d.name: trial.suggest_categorical(d.name, d.values) for d in table.space.decisions}
        row = np.array(table.space.encode(arch))
        keys.append(table.space.key(row))
        return float(table.evaluate(row[None], noise)[0][0])

    sampler = ReinforceSampler(seed=seed, search_space=space)
    optuna.create_study(direction=table.direction, sampler=sampler).optimize(objective, n_trials=budget)
    return sum(a == b for a, b in zip(keys, bench, strict=True)), budget


def report(paths: list[Path], reference: Path, budget: int) -> str:
    """Regret at ``budget`` of each saved Optuna sampler beside the reference's per-seed scores (a
    ``field_summary.py --out`` JSON: rlnas bench's default and its TPE), with the differences."""
    ref = json.loads(reference.read_text())["results"]["tables"]
    lines = []
    for path in paths:
        data = json.loads(path.read_text())
        table = load_table(data["table"])
        label, f = ("regret", table.regret) if table.maximize else ("log10 regret", table.log10_regret)
        scores = {n: [float(f(r["true"][budget - 1])) for r in rs] for n, rs in data["runs"].items()}
        scores |= {f"bench_{k}": v for k, v in ref[table.name].get(f"{label}@{budget}", {}).items()}
        lines.append(f"{table.name} {label}@{budget}")
        for name, x in scores.items():
            diffs = ""
            if name == "optuna_reinforce":
                for other in ("bench_default", "optuna_tpe", "bench_tpe"):
                    if other in scores:
                        m, lo, hi = diff_ci(x, scores[other])
                        diffs += f"  minus {other} {m:+.4g} [{lo:+.4g}, {hi:+.4g}]"
            m, lo, hi = mean_ci(x)
            lines.append(f"  {name:<18} {m:.4g} [{lo:.4g}, {hi:.4g}] ({len(x)}){diffs}")
        own = {n: np.mean([np.mean(r["batch_seconds"][1:]) for r in rs]) for n, rs in data["runs"].items()}
        lines.append("  sampler s/trial: " + ", ".join(f"{n} {s:.4f}" for n, s in own.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="nb201:cifar10", choices=(*TABLES, *PROJECT_TABLES))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--samplers", nargs="+", default=["reinforce", "tpe"])
    p.add_argument("--save-runs", type=Path, help="per-seed runs in field_tables.py's --save-runs format")
    p.add_argument("--held-out", action="store_true")
    p.add_argument("--same-as-bench", action="store_true", help="check the sequence against rlnas bench")
    p.add_argument("--report", type=Path, nargs="+", help="report on saved runs instead of running")
    p.add_argument("--reference", type=Path, default=Path(__file__).parent / "results/field/budget50.json")
    args = p.parse_args(argv)
    if args.same_as_bench:
        same, n = same_as_bench(load_table(args.table), args.first_seed, args.budget)
        print(f"{args.table} seed {args.first_seed}: {same} of {n} architectures equal rlnas bench's")
        return
    if args.report:
        print(report(args.report, args.reference, args.budget))
        return
    if args.table in HELD_OUT and not args.held_out:
        p.error(f"{args.table} is held out: --held-out for a final report")
    table = load_table(args.table)
    runs: dict[str, list] = {}
    for name in args.samplers:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = run_once(table, name, seed, args.budget)
            runs.setdefault(f"optuna_{name}", []).append(r)
            print(
                f"{table.name} {name} seed {seed}: regret@{args.budget} {table.regret(r['true'][-1]):.4g}, "
                f"sampler s/trial {r['batch_seconds'][1:].mean():.4f}",
                flush=True,
            )
            if args.save_runs:  # after every seed: a killed run keeps what it finished
                saved = {
                    n: [{k: np.asarray(v).tolist() for k, v in x.items()} for x in rs]
                    for n, rs in runs.items()
                }
                specs = {n: {"strategy": n} for n in runs}
                args.save_runs.write_text(json.dumps({"table": table.name, "specs": specs, "runs": saved}))


if __name__ == "__main__":
    main()
