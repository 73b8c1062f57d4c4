"""Children per minute: Ray tasks (``--executor ray``, a local Ray) against the local worker processes.

What it measures
    The same search four times: mnist_5k, ``--trials`` 24 children, 1 epoch each, the random strategy
    with one seed (so every executor trains the very same 24 architectures), ``archs_per_update`` 8.
    Executors: the local worker processes with 1 and 2 workers, and a local Ray on every core with 1 and
    2 children at once. The cores are split the same way for both: N children each get cores/N
    TensorFlow threads (Ray: ``cpus_per_child`` = cores/N).

Why
    Ray adds a scheduler, an object store and task round trips; this shows what they cost on one
    machine, where the local executor is the alternative. (On a cluster the point is more machines.)

How to read it
    ``setup s``: before the loop (Ray: starting Ray and putting the dataset in its object store; local:
    nothing, the worker processes start while the strategy is built). ``search s``: ``run_search``'s
    wall time, including each worker's TensorFlow import on its first child. ``children/min``:
    trials / search s. ``steady children/min``: after the first child finished (no start-up), from
    the trials' ``elapsed``. ``mean child s``: the children's own training time (``child_seconds``):
    if it grows with N, the children compete for the cores. Run it on an idle machine.
"""

from __future__ import annotations

import os
import time
from typing import Any

from _common import emit, parser, quiet, table, temp_store


def measure(executor: str, workers: int, trials: int, seed: int) -> dict[str, Any]:
    """One search; its setup and search times and the rates derived from them."""
    from rlnas.config import SearchConfig
    from rlnas.exec.evaluator import TrainSpec
    from rlnas.exec.ray_evaluator import RayCluster
    from rlnas.resources import cpu_count, threads_per_worker
    from rlnas.search.loop import run_search
    from rlnas.space import default_space

    config = SearchConfig(trials=trials, epochs=1, strategy="random", seed=seed, workers=workers)
    space, cores = default_space(), cpu_count()
    train = TrainSpec(epochs=1, batch_size=config.batch_size, threads=threads_per_worker(workers, cores))
    t0 = time.perf_counter()
    if executor == "ray":
        cluster = RayCluster(config.data_spec(), train, cpus_per_child=cores / workers, num_cpus=cores)
        evaluators: Any = cluster.evaluators(workers)
    else:
        evaluators = None  # run_search's default: `workers` worker processes, cores/workers threads each
    setup = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    with temp_store() as store:
        t1 = time.perf_counter()
        result = run_search(config, space, store, evaluator=evaluators)
        search = time.perf_counter() - t1
    trials_ = result.trials
    assert all(t.ok for t in trials_), [t.error for t in trials_ if not t.ok]
    elapsed = sorted(t.elapsed for t in trials_)
    steady = (len(elapsed) - 1) / (elapsed[-1] - elapsed[0]) * 60 if len(elapsed) > 1 else float("nan")
    return {
        "executor": executor,
        "workers": workers,
        "threads_per_child": train.threads,
        "setup_s": setup,
        "search_s": search,
        "children_per_min": len(trials_) / search * 60,
        "steady_children_per_min": steady,
        "mean_child_s": sum(t.child_seconds for t in trials_) / len(trials_),
        "load_1min": (load_before + os.getloadavg()[0]) / 2,  # other work on the machine skews the rates
        "keys": [t.key for t in trials_],
    }


def main() -> None:
    p = parser("ray_throughput", __doc__, "ray/throughput.json")
    p.add_argument("--trials", type=int, default=24, help="children per search (default 24)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--order",
        default="local,ray",
        help="executors in the order they run (default local,ray): "
        "ray,local checks that the order (other load on the machine) does not decide the result",
    )
    args = p.parse_args()
    quiet()
    runs = [measure(ex, n, args.trials, args.seed) for ex in args.order.split(",") for n in (1, 2)]
    assert len({tuple(r["keys"]) for r in runs}) == 1, "the executors trained different architectures"
    columns = {
        "executor": "executor",
        "workers": "children at once",
        "threads_per_child": "threads each",
        "setup_s": "setup s",
        "search_s": "search s",
        "children_per_min": "children/min",
        "steady_children_per_min": "steady children/min",
        "mean_child_s": "mean child s",
        "load_1min": "load avg",
    }
    rows = [[r[k] for k in columns] for r in runs]
    markdown = (
        f"mnist_5k, {args.trials} children (the same architectures for every executor), 1 epoch each\n\n"
        + table(list(columns.values()), rows)
    )
    emit(
        args.out,
        "ray_throughput",
        markdown,
        {"runs": [{k: v for k, v in r.items() if k != "keys"} for r in runs]},
    )


if __name__ == "__main__":
    main()
