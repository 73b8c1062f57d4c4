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
    python benchmarks/optuna_sampler.py --timing 500 --table nb201:cifar10   # time per trial
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
        start = time.perf_counter()
        arch = {d.name: trial.suggest_categorical(d.name, d.values) for d in table.space.decisions}
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=(*TABLES, *PROJECT_TABLES))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--samplers", nargs="+", default=["reinforce", "tpe"])
    p.add_argument("--save-runs", type=Path, help="per-seed runs in field_tables.py's --save-runs format")
    p.add_argument("--held-out", action="store_true")
    args = p.parse_args(argv)
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
