"""rlnas against keras-tuner's RandomSearch: the same space, data, epochs and number of children.

What it measures
    In one run of this script, one after the other on the same machine:

    * keras-tuner: ``RandomSearch`` over the getting-started ``build_model(hp)`` of
      ``examples/keras_tuner_model.py`` (unchanged; labels are one-hot encoded for its
      ``categorical_crossentropy``), ``max_trials=--children``, ``executions_per_trial=1``,
      ``--epochs``, batch size 128 (rlnas's default), ``validation_data`` = rlnas's validation split,
      a fresh directory with ``overwrite=True``. It runs in a subprocess of this script, so its wall
      time includes the Python start, the TensorFlow and keras-tuner imports and the data load,
      as rlnas's does.
    * rlnas: the CLI users run, ``rlnas search --dataset D --trials N --epochs E --replay-top 0
      --quiet --runs-dir <tmp>``, once per ``--workers-list`` entry (``default`` passes no
      ``--workers``; on 2 cores the default resolves to 1, see rlnas/search/pool.py). Wall clock of the
      whole process.

    Both train on exactly the arrays ``rlnas.data.load(SearchConfig(dataset=D).data_spec())`` returns
    (x_train/y_train) and score on its x_val/y_val.

How to run
    .venv/bin/pip install -e '.[bench]'         # keras-tuner; not a runtime or test dependency
    .venv/bin/python benchmarks/vs_keras_tuner.py --dataset mnist_5k --children 32 --epochs 2
    .venv/bin/python benchmarks/vs_keras_tuner.py --dataset fashion_mnist --children 16 --epochs 2
    Results: benchmarks/results/keras_tuner/<dataset>_<children>children_seed<seed>.{json,md}.

How to read it
    ``ratio`` = rlnas wall / keras-tuner wall (the target: <= 0.7 at equal children on 2
    cores, with a best validation accuracy at least as high). ``best val_acc`` is the accuracy after
    the last epoch for both (rlnas evaluates once after fit; for keras-tuner it is each trial's last
    ``val_accuracy`` observation); keras-tuner's own score (best epoch) is listed as well.
    Children are counted honestly: keras-tuner de-duplicates its samples and so trains every one of
    its N trials; rlnas's controller may propose an architecture again, which its reward cache
    answers without training, so ``trained`` can be below N and ``children/min`` counts trained
    children only. The spaces match except for ``lr``: keras-tuner samples it continuously on a log
    scale, rlnas's default space uses a 7-point log grid over the same range. keras-tuner also scores
    the validation data after every epoch (it needs ``val_accuracy`` per epoch); rlnas only once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, emit, parser, table, timed

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.7


# -- the keras-tuner side (runs in its own process) -----------------------------------------------
def keras_tuner_search(dataset: str, children: int, epochs: int, seed: int, workdir: Path) -> dict[str, Any]:
    """RandomSearch of the tutorial model on rlnas's splits; a summary of its trials."""
    from rlnas.quiet import quiet_tensorflow

    quiet_tensorflow()  # the same start-up muting the rlnas CLI does
    import keras
    import keras_tuner

    from rlnas import data
    from rlnas.config import SearchConfig

    sys.path.insert(0, str(ROOT / "examples"))
    from keras_tuner_model import build_model

    config = SearchConfig(dataset=dataset)
    ds = data.load(config.data_spec())
    y_train = keras.utils.to_categorical(ds.y_train, ds.num_classes)
    y_val = keras.utils.to_categorical(ds.y_val, ds.num_classes)
    tuner = keras_tuner.RandomSearch(
        build_model,
        objective="val_accuracy",
        max_trials=children,
        executions_per_trial=1,
        seed=seed,
        directory=str(workdir),
        project_name="kt",
        overwrite=True,
    )
    t0 = time.perf_counter()
    tuner.search(
        ds.x_train,
        y_train,
        epochs=epochs,
        batch_size=config.batch_size,
        validation_data=(ds.x_val, y_val),
        verbose=0,
    )
    search_seconds = time.perf_counter() - t0
    trials = list(tuner.oracle.trials.values())
    done = [t for t in trials if t.status == "COMPLETED"]
    return {
        "trials": len(trials),
        "trained": len(done),
        "failed": len(trials) - len(done),
        "best_val_accuracy": max(t.metrics.get_last_value("val_accuracy") for t in done),
        "best_score_best_epoch": max(t.score for t in done),
        "search_seconds": search_seconds,
        "best_hyperparameters": tuner.get_best_hyperparameters(1)[0].values,
    }


# -- the parent: timing processes -------------------------------------------------------------------
def run_keras_tuner(dataset: str, children: int, epochs: int, seed: int, tmp: Path) -> dict[str, Any]:
    summary = tmp / "kt.json"
    cmd = [sys.executable, __file__, "--keras-tuner-child", str(summary)]
    cmd += ["--dataset", dataset, "--children", str(children), "--epochs", str(epochs), "--seed", str(seed)]
    times, _ = timed(cmd)
    return {"name": "keras-tuner RandomSearch"} | times | json.loads(summary.read_text())


def resolved_workers(workers: int | None) -> tuple[int, int]:
    """(workers, TF threads per worker) as rlnas/search/loop.py resolves them on this machine."""
    from rlnas.resources import default_workers, threads_per_worker

    n = workers or default_workers()
    return n, threads_per_worker(n)


def run_rlnas(
    dataset: str,
    children: int,
    epochs: int,
    workers: int | None,
    seed: int,
    runs_dir: Path,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """Time one ``rlnas search`` process (``extra``: more flags) and summarise its trials.jsonl."""
    name = f"w{workers or 'default'}-{time.monotonic_ns()}"
    cmd = [str(Path(sys.executable).with_name("rlnas")), "search", "--dataset", dataset]
    cmd += ["--trials", str(children), "--epochs", str(epochs), "--seed", str(seed), "--replay-top", "0"]
    cmd += ["--quiet", "--runs-dir", str(runs_dir), "--name", name]
    cmd += ["--workers", str(workers)] if workers else []
    cmd += extra or []
    times, out = timed(cmd)
    wall = times["wall_seconds"]
    lines = (runs_dir / name / "trials.jsonl").read_text().splitlines()
    trials = [json.loads(line) for line in lines if line.strip()]
    trained = [t for t in trials if not t.get("cached")]
    ok = [t for t in trials if t["status"] == "ok"]
    n, threads = resolved_workers(workers)
    fit_eval = sum(t["fit_seconds"] + t["eval_seconds"] for t in trained)
    return {
        "name": f"rlnas search --workers {workers}" if workers else "rlnas search (default workers)",
        "workers": n,
        "threads_per_worker": threads,
        **times,
        "search_loop_seconds": max(t["elapsed"] for t in trials),
        "trials": len(trials),
        "trained": len(trained),
        "cached": len(trials) - len(trained),
        "failed": len(trials) - len(ok),
        "best_val_accuracy": max(t["val_accuracy"] for t in ok),
        "sum_fit_eval_seconds": fit_eval,
        "sum_child_seconds": sum(t["child_seconds"] for t in trained),
        "wall_over_fit_eval": wall / fit_eval,
        "loop_over_fit_eval": max(t["elapsed"] for t in trials) / fit_eval,
        "stdout_tail": out.strip().splitlines()[-2:],
    }


def per_minute(r: dict[str, Any]) -> float:
    """Trained children per minute of wall time."""
    return 60 * r["trained"] / r["wall_seconds"]


def load_text(r: dict[str, Any]) -> str:
    return "{:.1f} / {:.1f}".format(*r["load_before_after"])


def report(args: argparse.Namespace, kt: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    rows = [
        (kt["name"], "1 process", kt["wall_seconds"], 1.0, kt["cpu_seconds"], 1.0, kt["trials"],
         kt["trained"], per_minute(kt), kt["best_val_accuracy"], "-", load_text(kt)),
    ]  # fmt: skip
    for r in runs:
        ratio = r["wall_seconds"] / kt["wall_seconds"]
        met = ratio <= TARGET_RATIO and r["best_val_accuracy"] >= kt["best_val_accuracy"]
        rows.append(
            (r["name"], f"{r['workers']} x {r['threads_per_worker']} threads", r["wall_seconds"], ratio,
             r["cpu_seconds"], r["cpu_seconds"] / kt["cpu_seconds"], r["trials"], r["trained"],
             per_minute(r), r["best_val_accuracy"], met, load_text(r))
        )  # fmt: skip
    head = (
        f"### rlnas vs keras-tuner RandomSearch: {args.dataset}, {args.children} children, "
        f"epochs={args.epochs}, {os.cpu_count()} CPUs"
    )
    notes = [
        f"keras-tuner's own best score (best epoch's val_accuracy): {kt['best_score_best_epoch']:.4f}; "
        f"best hyperparameters {kt['best_hyperparameters']}; its search() took "
        f"{kt['search_seconds']:.1f}s of its {kt['wall_seconds']:.1f}s wall.",
        "rlnas: search loop seconds (trials.jsonl `elapsed`) / wall: "
        + ", ".join(f"{r['name']}: {r['search_loop_seconds']:.1f} / {r['wall_seconds']:.1f}" for r in runs)
        + "; cached repeats: "
        + ", ".join(str(r["cached"]) for r in runs)
        + ".",
        "CPU = user + system seconds of the process and its workers; load = 1-minute load average "
        f"before / after the run (above {os.cpu_count()}, other jobs shared the machine and wall "
        "times are inflated).",
    ]
    headers = ["contender", "workers", "wall (s)", "ratio", "CPU (s)", "CPU ratio", "trials", "trained",
               "children/min", "best val_acc", f"target (ratio <= {TARGET_RATIO}, acc >=)",
               "load"]  # fmt: skip
    return "\n\n".join([head, table(headers, rows), *notes])


def main() -> None:
    p = parser("vs_keras_tuner", __doc__, "keras_tuner/unused.json")
    p.set_defaults(out=None)  # default: results/keras_tuner/<dataset>_<children>children_seed<seed>.json
    p.add_argument("--dataset", default="mnist_5k", help="mnist_5k or fashion_mnist (default mnist_5k)")
    p.add_argument("--children", type=int, default=32, help="children each side trains (default 32)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each child (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers-list", default="default,1,2", help="rlnas runs: 'default' or a number each")
    p.add_argument("--keras-tuner-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlnas-vs-kt-") as tmp:
        if args.keras_tuner_child:  # the subprocess: run keras-tuner, write its summary, exit
            summary = keras_tuner_search(args.dataset, args.children, args.epochs, args.seed, Path(tmp))
            args.keras_tuner_child.write_text(json.dumps(summary))
            return
        kt = run_keras_tuner(args.dataset, args.children, args.epochs, args.seed, Path(tmp))
        print(f"keras-tuner: {kt['wall_seconds']:.1f}s", file=sys.stderr)
        runs = []
        for w in args.workers_list.split(","):
            workers = None if w == "default" else int(w)
            runs.append(run_rlnas(args.dataset, args.children, args.epochs, workers, args.seed, Path(tmp)))
            print(f"{runs[-1]['name']}: {runs[-1]['wall_seconds']:.1f}s", file=sys.stderr)
    out = (
        args.out
        or RESULTS_DIR / "keras_tuner" / f"{args.dataset}_{args.children}children_seed{args.seed}.json"
    )
    md = report(args, kt, runs)
    emit(out, "vs_keras_tuner", md, {"keras_tuner": kt, "rlnas": runs, "target_ratio": TARGET_RATIO})
    out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
