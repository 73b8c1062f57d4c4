"""Equal-time races on full Fashion-MNIST: rlnas against keras-tuner and Optuna, same wall clock each.

What it measures
    Each contender gets the same wall-clock budget (``--budget`` seconds, counted from the launch of
    its process: imports, data load and start-up are inside it) on the same machine, one contender at
    a time, the order rotated from seed to seed. All search the tutorial's MLP space
    (``examples/keras_tuner_model.py``'s ``build_model(hp)``, unchanged), train each child on the
    same train split for the same ``--epochs`` with batch size 128, and score it on the same
    validation split (``rlnas.data.load`` of ``fashion_mnist``: 60,000 training images split into
    train and validation, the 10,000 test images kept apart):

    * ``rlnas``: ``rlnas search --model examples.keras_tuner_model:build_model`` with the default
      settings (default controller, workers, strategy) and ``--max-minutes`` set to the budget.
    * ``random``, ``bayesian``, ``hyperband``: keras-tuner's ``RandomSearch``,
      ``BayesianOptimization`` and ``Hyperband`` (``max_epochs = --epochs``, ``factor=3``), with
      ``max_trials`` (Hyperband: iterations) too large to end before the budget.
    * ``tpe``: Optuna's ``TPESampler`` with its ``MedianPruner`` fed the validation accuracy after
      every epoch (pruned trials stop early, as that is what the pruner is for).

    The script polls each contender's record of finished children (rlnas's ``trials.jsonl``; a
    JSON line a child for the others, written when the tool ends the trial) every 0.2 s and stamps
    each child with the seconds since launch; at the budget it kills the contender's whole process
    group. Only children stamped within the budget count.

    After all races, outside any budget, the best architecture of every (contender, seed) by
    validation accuracy after its last epoch is replayed the same way for all: ``build_model`` with
    those values, trained on train + validation for ``--replay-epochs`` (batch 128), scored once on
    the test split, once for each of ``--replay-seeds``; a run's replayed test accuracy is the mean
    over those seeds (one replay's test accuracy moves by up to 0.008 with the seed alone, more than
    the contenders' best validation accuracies differ). ``--replay-from race.json`` replays the
    runs of a finished race again (other seeds or epochs) without racing them again.

How to read it
    ``best val`` is the highest validation accuracy after a child's last epoch among the children
    the tool itself would report as a result (Optuna: complete trials; pruned ones are not its
    results; keras-tuner's Hyperband: every trial, whatever its epochs). The anytime curve is the
    mean over seeds of the best so far at each second. ``to reach random's final`` is, per seed,
    the first second at which the contender's best reached keras-tuner RandomSearch's best at the
    end of its budget, divided by the budget (the target for rlnas: <= 0.5). The lr differs
    slightly: keras-tuner and Optuna sample it continuously on a log scale, rlnas from its 7-point
    log grid over the same range.

How to run
    .venv/bin/pip install -e '.[bench]'   # keras-tuner, Optuna, matplotlib
    apt-get install dataset-fashion-mnist
    .venv/bin/python benchmarks/race.py --budget 300 --seeds 3
    .venv/bin/python benchmarks/race.py --replay-seeds 0,1,2 \\
        --replay-from benchmarks/results/races/fashion_mnist_300s.json
    Results: benchmarks/results/races/fashion_mnist_300s.{json,md} and docs/images/race.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import emit, parser, table

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("rlnas", "random", "bayesian", "hyperband", "tpe")
NAMES = {
    "rlnas": "rlnas search (default)",
    "random": "keras-tuner RandomSearch",
    "bayesian": "keras-tuner BayesianOptimization",
    "hyperband": "keras-tuner Hyperband",
    "tpe": "Optuna TPE + median pruner",
}
DATASET = "fashion_mnist"
BATCH = 128
POLL = 0.2
PLOT = ROOT / "docs" / "images" / "race.png"


# -- in the contender's process -----------------------------------------------------------------
def _data() -> Any:
    """rlnas's splits of the dataset, labels one-hot for the tutorial's categorical_crossentropy."""
    from rlnas.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from rlnas import data
    from rlnas.config import SearchConfig

    ds = data.load(SearchConfig(dataset=DATASET).data_spec())
    onehot = {
        s: keras.utils.to_categorical(getattr(ds, f"y_{s}"), ds.num_classes) for s in ("train", "val", "test")
    }
    return ds, onehot


def _build_model() -> Callable[[Any], Any]:
    sys.path.insert(0, str(ROOT / "examples"))
    from keras_tuner_model import build_model

    return build_model


def _writer(log: Path) -> Callable[[dict[str, Any]], None]:
    out = log.open("a", encoding="utf-8", buffering=1)

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    return write


def keras_tuner_child(kind: str, seed: int, epochs: int, log: Path, workdir: Path) -> None:
    """Run one keras-tuner tuner until killed; a line per finished trial."""
    ds, y = _data()
    import keras_tuner

    write = _writer(log)
    cls = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }[kind]

    class Logged(cls):  # type: ignore[misc, valid-type]
        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            values = dict(trial.hyperparameters.values)
            last = trial.metrics.get_last_value("val_accuracy")
            write({
                "status": str(trial.status).lower(),
                "val_accuracy": None if last is None else float(last),
                "epochs": values.get("tuner/epochs", epochs),
                "architecture": {k: v for k, v in values.items() if not k.startswith("tuner/")},
            })  # fmt: skip

    size = {"hyperband_iterations": 1000} if kind == "hyperband" else {"max_trials": 100_000}
    extra = {"max_epochs": epochs, "factor": 3} if kind == "hyperband" else {}
    tuner = Logged(
        _build_model(), objective="val_accuracy", seed=seed, directory=str(workdir),
        project_name=kind, overwrite=True, **size, **extra,
    )  # fmt: skip
    tuner.search(
        ds.x_train,
        y["train"],
        epochs=epochs,
        batch_size=BATCH,
        validation_data=(ds.x_val, y["val"]),
        verbose=0,
    )


class _OptunaHP:
    """keras-tuner's hp interface over an Optuna trial, so the tutorial's build_model runs unchanged."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def Int(self, name: str, min_value: int, max_value: int, step: int = 1, **_: Any) -> int:
        return self.trial.suggest_int(name, min_value, max_value, step=step)

    def Float(
        self, name: str, min_value: float, max_value: float, sampling: str = "linear", **_: Any
    ) -> float:
        return self.trial.suggest_float(name, min_value, max_value, log=sampling == "log")

    def Choice(self, name: str, values: list[Any], **_: Any) -> Any:
        return self.trial.suggest_categorical(name, values)

    def Boolean(self, name: str, **_: Any) -> bool:
        return self.trial.suggest_categorical(name, [False, True])


def optuna_child(seed: int, epochs: int, log: Path) -> None:
    """Optuna's TPE with its median pruner on per-epoch validation accuracy, until killed."""
    ds, y = _data()
    import keras
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write = _writer(log)
    build_model = _build_model()

    class Prune(keras.callbacks.Callback):
        def __init__(self, trial: Any) -> None:
            super().__init__()
            self.trial, self.last, self.epochs = trial, None, 0

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.last, self.epochs = float((logs or {})["val_accuracy"]), epoch + 1
            self.trial.report(self.last, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned

    def objective(trial: Any) -> float:
        keras.backend.clear_session()
        model = build_model(_OptunaHP(trial))
        prune = Prune(trial)
        record = {"epochs": epochs, "architecture": trial.params}
        try:
            model.fit(ds.x_train, y["train"], epochs=epochs, batch_size=BATCH,
                      validation_data=(ds.x_val, y["val"]), callbacks=[prune], verbose=0)  # fmt: skip
        except optuna.TrialPruned:
            write(record | {"status": "pruned", "val_accuracy": prune.last, "epochs": prune.epochs})
            raise
        write(record | {"status": "completed", "val_accuracy": prune.last})
        return prune.last

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, n_trials=100_000)


def replay_child(jobs: Path, epochs: int, seeds: list[int], out: Path) -> None:
    """Retrain each job's architecture on train + validation once per seed, score each once on test;
    the same for all."""
    import numpy as np

    ds, y = _data()
    import keras

    from rlnas.models.function_model import build_from_function

    build_model = _build_model()
    write = _writer(out)
    x = np.concatenate([ds.x_train, ds.x_val])
    yy = np.concatenate([y["train"], y["val"]])
    for job in json.loads(jobs.read_text()):
        for seed in seeds:
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            model = build_from_function(build_model, job["architecture"])  # what `rlnas replay` builds
            model.fit(x, yy, epochs=epochs, batch_size=BATCH, verbose=0)
            _, acc = model.evaluate(ds.x_test, y["test"], batch_size=1024, verbose=0)
            write(job | {"replay_seed": seed, "test_accuracy": float(acc)})


# -- the parent: launching, stamping, killing -----------------------------------------------------
def command(contender: str, seed: int, args: argparse.Namespace, tmp: Path) -> tuple[list[str], Path]:
    """The contender's command line and the file its finished children appear in."""
    if contender == "rlnas":
        rlnas = str(Path(sys.executable).with_name("rlnas"))
        cmd = [rlnas, "search", "--model", "examples.keras_tuner_model:build_model", "--dataset", DATASET]
        cmd += ["--epochs", str(args.epochs), "--trials", "100000", "--seed", str(seed), "--replay-top", "0"]
        cmd += [
            "--max-minutes",
            f"{args.budget / 60:.4f}",
            "--quiet",
            "--runs-dir",
            str(tmp),
            "--name",
            "run",
        ]
        return cmd, tmp / "run" / "trials.jsonl"
    log = tmp / "children.jsonl"
    cmd = [sys.executable, __file__, "--child", contender, "--seed", str(seed), "--epochs", str(args.epochs)]
    return [*cmd, "--log", str(log), "--workdir", str(tmp)], log


def race(contender: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One contender, one seed, one budget: its children stamped with seconds since launch."""
    with tempfile.TemporaryDirectory(prefix=f"rlnas-race-{contender}-") as tmp:
        cmd, log = command(contender, seed, args, Path(tmp))
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        with (Path(tmp) / "stderr.txt").open("w") as err:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err
            )
        children: list[dict[str, Any]] = []
        seen = 0
        while (now := time.monotonic() - t0) < args.budget:
            if log.exists():
                lines = log.read_text(encoding="utf-8").split("\n")
                for line in lines[seen : len(lines) - 1]:  # the last piece may be half-written
                    children.append(json.loads(line) | {"t": now})
                seen = max(seen, len(lines) - 1)
            if proc.poll() is not None:
                break
            time.sleep(POLL)
        exited = proc.poll()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stderr = (Path(tmp) / "stderr.txt").read_text(errors="replace")[-2000:]
    time.sleep(args.settle)  # the killed group's memory and the load settle before the next
    if exited is not None and exited != 0 and not children:
        raise RuntimeError(f"{contender} seed {seed} exited {exited} before its budget:\n{stderr}")
    return {
        "contender": contender,
        "seed": seed,
        "children": [normalise(contender, c) for c in children],
        "exited_early": exited,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


def normalise(contender: str, c: dict[str, Any]) -> dict[str, Any]:
    """One finished child as {t, val_accuracy, counts, architecture, epochs}."""
    if contender == "rlnas":
        ok = c["status"] == "ok" and not c.get("cached")
        return {"t": c["t"], "val_accuracy": c.get("val_accuracy"), "counts": ok,
                "cached": bool(c.get("cached")), "architecture": c["architecture"],
                "epochs": c.get("epochs_run")}  # fmt: skip
    counts = c["status"] not in ("pruned", "failed", "invalid") and c["val_accuracy"] is not None
    return {"t": c["t"], "val_accuracy": c["val_accuracy"], "counts": counts, "cached": False,
            "architecture": c["architecture"], "epochs": c["epochs"], "status": c["status"]}  # fmt: skip


def best_curve(run: dict[str, Any], budget: float, step: float = 1.0) -> list[float | None]:
    """The best validation accuracy so far at every ``step`` seconds from 0 to the budget."""
    out: list[float | None] = []
    results = sorted((c["t"], c["val_accuracy"]) for c in run["children"] if c["counts"])
    best, i = None, 0
    for k in range(int(budget / step) + 1):
        while i < len(results) and results[i][0] <= k * step:
            best = results[i][1] if best is None else max(best, results[i][1])
            i += 1
        out.append(best)
    return out


def best_child(run: dict[str, Any]) -> dict[str, Any] | None:
    done = [c for c in run["children"] if c["counts"]]
    return max(done, key=lambda c: c["val_accuracy"]) if done else None


def time_to_reach(run: dict[str, Any], target: float) -> float:
    """Seconds from launch until the run's best reached ``target`` (inf if it never did)."""
    hits = [c["t"] for c in run["children"] if c["counts"] and c["val_accuracy"] >= target]
    return min(hits) if hits else float("inf")


def replay(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Replay every run's best architecture the same way (in one process, outside any budget)."""
    with tempfile.TemporaryDirectory(prefix="rlnas-race-replay-") as tmp:
        jobs = [{"contender": r["contender"], "seed": r["seed"], "architecture": b["architecture"]}
                for r in runs if (b := best_child(r))]  # fmt: skip
        (Path(tmp) / "jobs.json").write_text(json.dumps(jobs))
        out = Path(tmp) / "replays.jsonl"
        cmd = [sys.executable, __file__, "--replay-child", str(Path(tmp) / "jobs.json"), "--log", str(out)]
        cmd += ["--epochs", str(args.replay_epochs), "--replay-seeds", ",".join(map(str, args.replay_seeds))]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        done = [json.loads(line) for line in out.read_text().splitlines()]
    for r in runs:
        accs = [
            d["test_accuracy"] for d in done if d["contender"] == r["contender"] and d["seed"] == r["seed"]
        ]
        r["replay_test_accuracies"] = accs
        r["replay_test_accuracy"] = statistics.mean(accs) if accs else None


def summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    contenders = [c for c in args.contenders if any(r["contender"] == c for r in runs)]
    by = {c: sorted((r for r in runs if r["contender"] == c), key=lambda r: r["seed"]) for c in contenders}
    rs_final = {r["seed"]: best_curve(r, args.budget)[-1] for r in by.get("random", [])}
    rows, figures = [], {}
    for c in contenders:
        rr = by[c]
        finals = [best_curve(r, args.budget)[-1] for r in rr]
        tests = [r["replay_test_accuracy"] for r in rr if r["replay_test_accuracy"] is not None]
        reach = [
            time_to_reach(r, rs_final[r["seed"]]) / args.budget
            for r in rr
            if rs_final.get(r["seed"]) is not None
        ]
        trained = [sum(1 for ch in r["children"] if not ch["cached"]) for r in rr]
        f = {
            "seeds": [r["seed"] for r in rr],
            "children_trained": trained,
            "best_val": finals,
            "replay_test": tests,
            "to_reach_random_final_over_budget": reach,
        }
        figures[c] = f
        rows.append((
            NAMES[c], len(rr), statistics.mean(trained), _mean(finals), _spread(finals), _mean(tests),
            _spread(tests), statistics.median(reach) if reach else "-",
            ", ".join("never" if x == float("inf") else f"{x:.2f}" for x in reach),
        ))  # fmt: skip
    headers = ["contender", "seeds", "children (mean)", "best val (mean)", "best val (min-max)",
               "replayed test (mean)", "test (min-max)", "to reach random's final / budget (median)",
               "per seed"]  # fmt: skip
    tests = {c: _mean(f["replay_test"]) for c, f in figures.items()}
    best_test = max((v for v in tests.values() if v is not None), default=None)
    rl = figures.get("rlnas", {})
    reach = rl.get("to_reach_random_final_over_budget", [])
    median_reach = statistics.median(reach) if reach else None
    verdicts = [
        f"rlnas has the highest mean replayed test accuracy: **{tests.get('rlnas') == best_test}** "
        f"(rlnas {tests.get('rlnas')}, best {best_test}).",
        f"rlnas reaches RandomSearch's final best validation accuracy in at most half its time: "
        f"**{median_reach is not None and median_reach <= 0.5}** (median {median_reach} of the budget).",
    ]
    head = (f"### Equal-time races: full Fashion-MNIST, tutorial MLP space, {args.budget:g} s each, "
            f"{args.epochs} epochs a child, replay {args.replay_epochs} epochs on train+validation "
            f"(mean over replay seeds {', '.join(map(str, args.replay_seeds))}), "
            f"{os.cpu_count()} CPUs")  # fmt: skip
    loads = ", ".join(f"{r['contender']}/{r['seed']}: {r['load_before']:.1f}" for r in runs)
    md = "\n\n".join([head, table(headers, rows), *verdicts, f"1-minute load at each launch: {loads}."])
    return md, figures


def _mean(xs: list[float]) -> float | None:
    return statistics.mean(xs) if xs else None


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.4f}-{max(xs):.4f}" if xs else "-"


def plot(runs: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    """One chart, every contender: the mean over seeds of the best validation accuracy so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in args.contenders:
        curves = [best_curve(r, args.budget) for r in runs if r["contender"] == c]
        if not curves:
            continue
        xs, ys = [], []
        for k in range(len(curves[0])):
            vals = [cv[k] for cv in curves]
            if all(v is not None for v in vals):  # the mean only once every seed has a result
                xs.append(k)
                ys.append(statistics.mean(vals))
        ax.step(
            xs, ys, where="post", label=f"{NAMES[c]} ({len(curves)} seeds)", lw=2 if c == "rlnas" else 1.2
        )
    ax.set_xlabel("seconds since launch (imports and start-up included)")
    ax.set_ylabel("best validation accuracy so far (mean over seeds)")
    ax.set_title(f"Equal-time race, full Fashion-MNIST, {args.epochs} epochs a child, 2 CPUs")
    ax.set_xlim(0, args.budget)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    lows = [v for r in runs for v in best_curve(r, args.budget)[-1:] if v is not None]
    if lows:
        ax.set_ylim(min(lows) - 0.02, max(lows) + 0.005)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _arguments() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = parser("race", __doc__, "races/fashion_mnist_300s.json")
    p.add_argument("--budget", type=float, default=300.0, help="seconds each contender gets (default 300)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per contender (default 3)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3, help="epochs of each child (Hyperband's max; default 3)")
    p.add_argument("--replay-epochs", type=int, default=10, help="epochs of the replay (default 10)")
    p.add_argument(
        "--replay-seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2],
        help="seeds of the replay, comma-separated; a run's test accuracy is their mean (default 0,1,2)",
    )  # fmt: skip
    p.add_argument("--replay-from", type=Path, help="replay the runs of this finished race.json again")
    p.add_argument("--settle", type=float, default=5.0, help="seconds of rest between contenders")
    p.add_argument("--contenders", type=lambda s: s.split(","), default=list(CONTENDERS))
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--child", choices=CONTENDERS[1:], help=argparse.SUPPRESS)
    p.add_argument("--replay-child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return p, p.parse_args()


def _runs_so_far(args: argparse.Namespace, partial: Path | None) -> list[dict[str, Any]]:
    """The races already run: those of ``--replay-from`` (only replayed anew), or an interrupted
    invocation's partial file."""
    if args.replay_from:
        done = json.loads(args.replay_from.read_text())["results"]
        runs, args.budget, args.epochs = done["runs"], done["budget"], done["epochs"]
        args.contenders = [c for c in CONTENDERS if any(r["contender"] == c for r in runs)]
        args.seeds = 0
        return runs
    return json.loads(partial.read_text()) if partial is not None and partial.exists() else []


def _race_all(runs: list[dict[str, Any]], args: argparse.Namespace, partial: Path | None) -> None:
    """Race every contender and seed not yet in ``runs``, the order rotated from seed to seed."""
    for i, seed in enumerate(range(args.first_seed, args.first_seed + args.seeds)):
        order = args.contenders[i % len(args.contenders) :] + args.contenders[: i % len(args.contenders)]
        for c in order:
            if any(r["contender"] == c and r["seed"] == seed for r in runs):
                continue  # done in an earlier, interrupted invocation
            runs.append(race(c, seed, args))
            n = sum(1 for ch in runs[-1]["children"] if not ch["cached"])
            print(
                f"{c} seed {seed}: {n} children, best {best_curve(runs[-1], args.budget)[-1]}",
                file=sys.stderr,
            )
            if partial is not None:
                partial.write_text(json.dumps(runs))


def main() -> None:
    p, args = _arguments()
    if args.child == "tpe":
        return optuna_child(args.seed, args.epochs, args.log)
    if args.child:
        return keras_tuner_child(args.child, args.seed, args.epochs, args.log, args.workdir)
    if args.replay_child:
        return replay_child(args.replay_child, args.epochs, args.replay_seeds, args.log)
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    out = args.out
    # replaying a finished race neither reads nor removes an interrupted race's partial file
    partial = None if args.replay_from else out.with_suffix(".partial.json")
    runs = _runs_so_far(args, partial)
    _race_all(runs, args, partial)
    replay(runs, args)
    md, figures = summarise(runs, args)
    plot(runs, args, args.plot)
    md += f"\n\n![anytime curves]({os.path.relpath(args.plot, ROOT)})"
    numbers = {"figures": figures, "runs": runs, "budget": args.budget, "epochs": args.epochs,
               "replay_epochs": args.replay_epochs, "replay_seeds": args.replay_seeds}  # fmt: skip
    emit(out, "race", md, numbers)
    out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
    if partial is not None:
        partial.unlink()


if __name__ == "__main__":
    main()
