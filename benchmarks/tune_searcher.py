"""rlnas's ReinforceSearcher against Ray Tune's default search (random: BasicVariantGenerator) in a
Tuner on a local Ray, on one of the field's tables.

Each seed runs ``--trials`` trials of each searcher (at most ``--concurrent`` at a time, through a
ConcurrencyLimiter for rlnas's searcher): every decision of the table is a ``tune.choice`` over its
values, and a trial reports one stored training seed of its architecture, drawn from a generator of
(seed, the architecture's row), so both searchers see the same noise for the same architecture. The
score is the regret of the best *observed* trial's true mean. Writes one JSON line per seed and
searcher; prints the mean regret of each and the paired difference with its 95% interval.

    python benchmarks/tune_searcher.py --table nb201:cifar10 --seeds 20 --trials 64 \
        --out benchmarks/results/tune/nb201_cifar10.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlnas.stats import diff_ci, mean_ci
from rlnas.tables.hpo import TABLES, load_table


def run_once(table_name: str, searcher_name: str, seed: int, trials: int, concurrent: int) -> dict:
    from ray import tune
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from rlnas.tune import ReinforceSearcher

    table = load_table(table_name)
    space = {d.name: tune.choice(list(d.values)) for d in table.space.decisions}

    def trainable(config: dict) -> dict:
        row = np.array(table.space.encode({d.name: config[d.name] for d in table.space.decisions}))
        index = int(table.index(row[None])[0])
        values, _ = table.evaluate(row[None], np.random.default_rng([seed, index]))
        return {"value": float(values[0]), "index": index}

    if searcher_name == "reinforce":
        search = ConcurrencyLimiter(ReinforceSearcher(seed=seed), max_concurrent=concurrent)
    else:
        search = BasicVariantGenerator(random_state=seed, max_concurrent=concurrent)
    with tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="value", mode="max" if table.maximize else "min", num_samples=trials, search_alg=search
            ),
            run_config=tune.RunConfig(storage_path=tmp, verbose=0),
        )
        results = tuner.fit()
        frame = [(r.metrics["value"], r.metrics["index"]) for r in results if r.metrics]
    observed = np.array([v for v, _ in frame])
    best = int(np.argmax(table.reward(observed)))
    return {
        "table": table.name,
        "searcher": searcher_name,
        "seed": seed,
        "trials": len(frame),
        "regret": float(table.regret(table.true[frame[best][1]])),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=64)
    p.add_argument("--concurrent", type=int, default=4)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="JSON lines, one per seed and searcher")
    args = p.parse_args(argv)
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in ("reinforce", "random"):
            row = run_once(args.table, name, seed, args.trials, args.concurrent)
            rows.append(row)
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    regret = {n: [r["regret"] for r in rows if r["searcher"] == n] for n in ("reinforce", "random")}
    for n, x in regret.items():
        print(f"{n}: regret@{args.trials} {mean_ci(x)}")
    print(f"reinforce - random: {diff_ci(regret['reinforce'], regret['random'])}")


if __name__ == "__main__":
    main()
