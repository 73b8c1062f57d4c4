"""rlnas's overhead against a hand-written Keras loop that trains the very same children.

What it measures
    In one run, one after the other on the same machine:

    1. ``rlnas search --trials N --workers 1 --replay-top 0 --quiet`` (the default search otherwise:
       mnist_5k, 2 epochs, the default controller), timed as a whole process.
    2. The hand-written baseline for that run: one plain Python process that imports Keras, loads
       the same arrays and, for every child the search trained (in journal order, repeats answered
       from the cache left out), does what a user would write by hand: ``clear_session``, seed with
       the trial's seed, build the MLP with ``keras.layers`` (Flatten, Dense x num_layers, optional
       Dropout(0.25), Dense softmax), compile with Adam(lr) and sparse categorical cross-entropy,
       ``fit`` for the same epochs and batch size, ``evaluate`` on the validation split. Timed as a
       whole process (interpreter start to exit).
    3. and 4. The same for ``rlnas search`` with its default workers.

    Each rlnas run is compared with the baseline of its own children (with two workers the
    rewards, and so the later architectures, can differ in the last bits). The loop checks that it
    reproduces the journal's validation accuracies (``max |diff|`` in the table).

Targets
    * one worker: wall of the whole command / sum of the children's whole cost (``child_seconds``:
      clear_session, build, compile, fit, evaluate) <= 1.05;
    * ``--workers 1`` wall <= 1.03 x the baseline's wall;
    * the default workers' wall <= 0.6 x the baseline's wall.

How to run
    .venv/bin/python benchmarks/baseline.py --trials 96
    Results: benchmarks/results/overhead/against_keras_loop.{json,md}.
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

from _common import emit, parser, table, timed

TARGETS = {"whole / children": 1.05, "workers 1 / baseline": 1.03, "default / baseline": 0.6}


def hand_written(children: Path, dataset: str, epochs: int, batch_size: int, out: Path) -> None:
    """The baseline process: a plain Keras loop over the children, nothing of rlnas but the data."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from rlnas.data import DataSpec, load

    ds = load(DataSpec(dataset))
    results = []
    for child in json.loads(children.read_text()):
        a = child["architecture"]
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(child["seed"])
        inputs = keras.Input(shape=ds.x_train.shape[1:])
        x = keras.layers.Flatten()(inputs)
        for i in range(int(a.get("num_layers", 1))):
            x = keras.layers.Dense(int(a[f"units_{i}"]), activation=a.get("activation", "relu"))(x)
        if a.get("dropout"):
            x = keras.layers.Dropout(0.25)(x)
        model = keras.Model(inputs, keras.layers.Dense(ds.num_classes, activation="softmax")(x))
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=float(a.get("lr", 1e-3))),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(ds.x_train, ds.y_train, epochs=epochs, batch_size=batch_size, verbose=0)
        _, acc = model.evaluate(ds.x_val, ds.y_val, batch_size=batch_size, verbose=0)
        results.append(float(acc))
    out.write_text(json.dumps(results))


def one(workers: int | None, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """An rlnas search, then the baseline over the children it trained."""
    from rlnas.config import SearchConfig

    name = f"w{workers or 'default'}"
    cmd = [str(Path(sys.executable).with_name("rlnas")), "search", "--trials", str(args.trials)]
    cmd += ["--seed", str(args.seed), "--replay-top", "0", "--quiet", "--runs-dir", str(tmp), "--name", name]
    cmd += ["--workers", str(workers)] if workers else []
    load0 = os.getloadavg()[0]
    wall = timed(cmd)[0]["wall_seconds"]
    trials = [
        json.loads(line) for line in (tmp / name / "trials.jsonl").read_text().splitlines() if line.strip()
    ]
    search = SearchConfig()  # the default search: what the command above ran
    trained = [t for t in trials if not t.get("cached") and t["status"] == "ok"]
    children = tmp / f"{name}.children.json"
    children.write_text(json.dumps([{"architecture": t["architecture"], "seed": t["seed"]} for t in trained]))
    accs = tmp / f"{name}.accs.json"
    base_cmd = [sys.executable, __file__, "--hand-written", str(children), "--dataset", search.dataset]
    base_cmd += ["--epochs", str(search.epochs), "--batch-size", str(search.batch_size), "--accs", str(accs)]
    time.sleep(args.settle)
    load1 = os.getloadavg()[0]
    base = timed(base_cmd)[0]["wall_seconds"]
    diffs = [abs(a - t["val_accuracy"]) for a, t in zip(json.loads(accs.read_text()), trained, strict=True)]
    child = sum(t["child_seconds"] for t in trained)
    return {
        "workers": workers or "default",
        "wall_seconds": wall,
        "trials": len(trials),
        "trained": len(trained),
        "sum_child_seconds": child,
        "sum_fit_eval_seconds": sum(t["fit_seconds"] + t["eval_seconds"] for t in trained),
        "baseline_wall_seconds": base,
        "wall_over_children": wall / child,
        "wall_over_baseline": wall / base,
        "max_abs_val_accuracy_diff": max(diffs),
        "load_before": [load0, load1],
    }


def main() -> None:
    p = parser("baseline", __doc__, "overhead/against_keras_loop.json")
    p.add_argument("--trials", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settle", type=float, default=5.0, help="seconds of rest between the processes")
    p.add_argument("--hand-written", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--dataset", default="mnist_5k", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--accs", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hand_written:
        return hand_written(args.hand_written, args.dataset, args.epochs, args.batch_size, args.accs)
    with tempfile.TemporaryDirectory(prefix="rlnas-baseline-") as tmp:
        runs = [one(1, args, Path(tmp))]
        time.sleep(args.settle)
        runs.append(one(None, args, Path(tmp)))
    w1, dflt = runs
    rows = []
    for r in runs:
        rows.append((f"rlnas search --workers {r['workers']}", r["trained"], r["wall_seconds"],
                     r["sum_child_seconds"], r["wall_over_children"], r["baseline_wall_seconds"],
                     r["wall_over_baseline"], r["max_abs_val_accuracy_diff"],
                     "{:.1f} / {:.1f}".format(*r["load_before"])))  # fmt: skip
    figures = {
        "whole / children": w1["wall_over_children"],
        "workers 1 / baseline": w1["wall_over_baseline"],
        "default / baseline": dflt["wall_over_baseline"],
    }
    verdicts = [f"{k}: {v:.3f} (target <= {TARGETS[k]}): **{v <= TARGETS[k]}**" for k, v in figures.items()]
    head = (
        f"### rlnas against a hand-written Keras loop: mnist_5k, {args.trials} trials, {os.cpu_count()} CPUs"
    )
    headers = ["command", "children trained", "wall (s)", "sum child (s)", "wall / sum child",
               "baseline wall (s)", "wall / baseline", "max |val acc diff|",
               "load (rlnas / baseline)"]  # fmt: skip
    md = "\n\n".join([head, table(headers, rows), *("- " + v for v in verdicts)])
    out = args.out
    emit(out, "baseline", md, {"runs": runs, "targets": TARGETS})
    out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
