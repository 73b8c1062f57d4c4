"""``rlnas search | replay | space | show | export | tensorboard | report``: the commands on a run."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlnas.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    StopOnCtrlC,
    add_config_flags,
    flag_values,
    load_tensorflow,
    resolve_search_data,
    typed,
)
from rlnas.errors import ConfigError, RlnasError, RunError
from rlnas.settings import ONESHOT
from rlnas.text import format_arch, format_table

if TYPE_CHECKING:  # annotations only: the CLI imports modules lazily to start fast
    from rlnas.cli.progress import Progress
    from rlnas.config import SearchConfig
    from rlnas.run.store import RunStore
    from rlnas.run.trial import Trial
    from rlnas.search.loop import SearchResult
    from rlnas.space import SearchSpace


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("search", help="run a search, then retrain the best architecture")
    s.add_argument("--config", help="TOML file with [search] settings and/or a [space]")
    s.add_argument(
        "--model",
        metavar="MODULE:FUNCTION",
        help="search the space a keras-tuner model function declares (def build_model(hp)); "
        "the config file may then hold [search] settings but no [space]",
    )
    s.add_argument("--name", help="run name (default: search-<date>-<time>)")
    s.add_argument("--runs-dir", default="runs", help="where runs are written (default: runs)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing run of that name")
    s.add_argument("--resume", metavar="RUN", help="continue an interrupted run (its directory or name)")
    shown = s.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no per-trial progress")
    shown.add_argument(
        "--verbose", action="store_true", help="one line per child even on a terminal (default: a live bar)"
    )
    add_config_flags(s)
    _add_run_parsers(sub)


def _add_run_parsers(sub: Any) -> None:
    """The commands that read a run: replay, show, export, tensorboard, report (and space)."""
    r = sub.add_parser("replay", help="retrain a run's best architectures and score them on test")
    r.add_argument("run", help="run directory or name")
    r.add_argument("--top", type=typed(int), default=1, help="how many architectures (default 1)")
    r.add_argument("--epochs", type=typed(int), help="training epochs (default: the run's replay_epochs)")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run's last replay (default: keep every replay, each in replay/<n>/)",
    )
    r.add_argument("--runs-dir", default="runs")

    sp = sub.add_parser("space", help="print a search space and its exact size")
    sp.add_argument("config", nargs="?", help="TOML config (default: the built-in MLP space)")

    sh = sub.add_parser("show", help="print a run's leaderboard")
    sh.add_argument("run", help="run directory or name")
    sh.add_argument("--top", type=typed(int), default=10)
    sh.add_argument("--runs-dir", default="runs")

    ex = sub.add_parser("export", help="write every trial of a run as a flat CSV or JSON table")
    ex.add_argument("run", help="run directory or name")
    ex.add_argument("--format", choices=("csv", "json"), default="csv", help="(default: csv)")
    ex.add_argument("--out", metavar="FILE", help="output file (default: stdout)")
    ex.add_argument("--runs-dir", default="runs")

    tb = sub.add_parser("tensorboard", help="start TensorBoard on a run (extra arguments go to TensorBoard)")
    tb.add_argument("run", help="run directory or name")
    tb.add_argument("--runs-dir", default="runs")

    rp = sub.add_parser("report", help="plots and a summary of a run, written to RUN/report/")
    rp.add_argument("run", help="run directory or name")
    rp.add_argument("--runs-dir", default="runs")


# -- commands ----------------------------------------------------------------------------------------
def cmd_space(args: argparse.Namespace) -> int:
    from rlnas.models.child import check_space
    from rlnas.resolve import resolve

    space = resolve(args.config).space
    check_space(space)
    print(space.summary())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """The run's lock is taken before anything of it is written (its config included) and held to the
    end: of two ``--resume`` of one run started together, one proceeds and the other is one line."""
    from rlnas.devices import hide_gpus

    hide_gpus()  # first: the controller stays on the CPU and holds no GPU memory the children need
    with contextlib.ExitStack() as held:
        opened = _resume_run(args, held) if args.resume is not None else _new_run(args, held)
        if opened is None:  # a finished run: said so, nothing to do
            return 0
        store, config, space = opened
        if config.strategy in ONESHOT:  # one supernet in this process: no workers to start
            from rlnas.cli.oneshot import search_and_replay

            return search_and_replay(args, store, config, space, _replay_and_print)
        from rlnas.exec.factory import make_evaluators

        # Workers first: their TensorFlow import and data load overlap ours and the controller's trace
        # (Ray starts its own workers: run_search makes its evaluators).
        workers = make_evaluators(config, space, run_dir=store.path) if config.executor == "local" else None
        try:
            return _search_and_replay(args, store, config, space, workers)
        finally:
            for w in workers or ():
                w.close()  # idempotent: run_search closes them too; this covers a failure before it does


def _search_and_replay(
    args: argparse.Namespace, store: Any, config: SearchConfig, space: SearchSpace, workers: list | None
) -> int:
    load_tensorflow(args.debug)
    earlier = store.trials() if args.resume is not None else []
    done = len(earlier)
    budget = f"{config.trials} trials of {space.size():,} architectures on {config.dataset}"
    resuming = f", resuming at trial {done} ({done} done)" if args.resume is not None else ""
    print(f"run {store.path}: {budget}{resuming}")
    result = _search(args, store, config, space, workers, earlier)
    if result is None or result.stopped_by == "interrupted":
        return _interrupted(store)
    ok = [t for t in result.trials if t.ok]
    print(
        f"searched {len(result.trials)} architectures in {result.seconds:.0f}s "
        f"({len(result.trials) - len(ok)} failed); stopped by {result.stopped_by}"
    )
    if result.best is None:
        raise RlnasError("no child trained successfully; see the error column of trials.jsonl")
    from rlnas.run.trial import objective_name, objective_value

    best, objective = result.best, config.objective
    name = objective_name(objective).replace("val_accuracy", "validation accuracy")
    print(f"best {name} {objective_value(best, objective):.4f}: {format_arch(best.architecture)}")
    if config.replay_top:
        elsewhere = _replay_on_a_gpu(store, config, args.debug)
        return _replay_and_print(store, config.replay_top, None) if elsewhere is None else elsewhere
    return 0


def _search(
    args: argparse.Namespace,
    store: Any,
    config: SearchConfig,
    space: SearchSpace,
    workers: list | None,
    earlier: list[Trial],
) -> SearchResult | None:
    """The search with its progress lines and the first Ctrl-C as a stop; None: a second Ctrl-C."""
    from rlnas.search.loop import run_search

    show = _progress(args, config, earlier)
    stop = StopOnCtrlC()
    try:
        with stop.installed():
            try:
                resume = args.resume is not None
                return run_search(
                    config, space, store, evaluator=workers, on_trial=show, resume=resume, should_stop=stop
                )
            finally:
                if show is not None:
                    show.close()
    except KeyboardInterrupt:
        return None


def _progress(args: argparse.Namespace, config: SearchConfig, earlier: list[Trial]) -> Progress | None:
    """The per-trial progress (None with ``--quiet``), going on from the trials before a resume: its
    count and its best are the run's, not this process's."""
    if args.quiet:
        return None
    from rlnas.cli.progress import Progress

    live = False if args.verbose else None
    return Progress(config.trials, earlier=earlier, live=live, objective=config.objective)


def _replay_on_a_gpu(store: Any, config: SearchConfig, debug: bool) -> int | None:
    """``rlnas replay`` in a process of its own on the search's first GPU, when its workers had GPUs
    (this process hid them from itself, cmd_search); its exit status, or None: no GPU to use."""
    import subprocess

    from rlnas.devices import choose_gpus, visible_gpus, worker_environment

    chosen = choose_gpus(config.gpus, visible_gpus()) if config.executor == "local" else None
    if not chosen:
        return None
    debugging = ["--debug"] if debug else []
    argv = [
        sys.executable,
        "-m",
        "rlnas.cli",
        *debugging,
        "replay",
        str(store.path),
        "--top",
        str(config.replay_top),
    ]
    from rlnas.exec.worker import FOLLOW_ENV

    env = worker_environment(os.environ, chosen[0]) | {FOLLOW_ENV: str(os.getpid())}  # dies with us
    proc = subprocess.Popen(argv, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the replay had the Ctrl-C too: it says what was kept, then ends
            continue


def _interrupted(store: RunStore) -> int:
    """What was kept, and only the commands that work on it: ``rlnas replay`` needs a trained child."""
    trials = store.trials()
    replay = f", `rlnas replay {store.path}` retrains the best" if any(t.ok for t in trials) else ""
    print(
        f"interrupted: {len(trials)} finished trials kept in {store.path}; "
        f"`rlnas search --resume {store.path}` continues{replay}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def _new_run(
    args: argparse.Namespace, held: contextlib.ExitStack
) -> tuple[RunStore, SearchConfig, SearchSpace]:
    from rlnas.run.store import RunStore

    name = args.name if args.name is not None else time.strftime("search-%Y%m%d-%H%M%S")
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ConfigError(f"run name {name!r} must be a plain directory name")
    if not args.runs_dir:
        raise ConfigError("--runs-dir is empty; give a directory (default: runs)")
    config, space, dataset = resolve_search_data(args)
    if config.strategy in ONESHOT:
        from rlnas.search.oneshot import check_oneshot

        check_oneshot(config, space, dataset)
    store = RunStore.create(Path(args.runs_dir) / name, overwrite=args.overwrite)
    held.enter_context(store.locked())
    store.write_config(config, space)
    if dataset.raw_input is not None:  # a folder's classes, a table's columns and encoders: the record
        from rlnas.data import describe

        store.write_json("data.json", describe(dataset))
    return store, config, space


def _resume_run(
    args: argparse.Namespace, held: contextlib.ExitStack
) -> tuple[RunStore, SearchConfig, SearchSpace] | None:
    """The run's own config and space, with only the budget open to change (rlnas.resolve.RESUMABLE);
    the run locked before its config is written again. None for a run whose budget is spent: it is
    left as it is (its config unchanged, no replay), with one line saying how to go on."""
    from rlnas.data import load as load_data
    from rlnas.models.child import check_space
    from rlnas.resolve import resolve
    from rlnas.run.store import RunStore

    if args.config or args.name or args.overwrite or args.model:
        raise ConfigError(
            "--resume continues a run with its own settings; drop --config, --name, --overwrite and --model"
        )
    if not args.resume:
        raise ConfigError("--resume needs a run: its directory or its name under --runs-dir")
    store = RunStore.open(args.resume, args.runs_dir)
    config, space = resolve(
        flags=flag_values(args), resume_from=store.read_json("config.json"), run=str(store.path)
    )
    check_space(space)
    load_data(config.data_spec())  # the data must still be there and intact
    held.enter_context(store.locked())
    if _finished(store, config):
        return None
    store.write_config(config, space)
    return store, config, space


def _finished(store: RunStore, config: SearchConfig) -> bool:
    """Whether the run has all the trials of its budget; if so, say so, and what the user can do."""
    if config.strategy in ONESHOT:
        from rlnas.search.oneshot import is_finished

        if is_finished(store):
            print(f"run {store.path} is finished: its candidates are journaled; `rlnas replay {store.path}` "
                  "retrains the best")  # fmt: skip
        return is_finished(store)
    done = len(store.trials())
    if done < config.trials:
        return False
    print(
        f"run {store.path} is finished: {done} of {config.trials} trials done, nothing to resume; "
        f"`rlnas replay {store.path}` retrains its best, `--resume` with `--trials` above {done} searches on"
    )
    return True


def cmd_replay(args: argparse.Namespace) -> int:
    from rlnas.run.store import RunStore
    from rlnas.settings.bounds import INT_LIMIT

    for flag, value in (("--top", args.top), ("--epochs", args.epochs)):
        if value is not None and not 1 <= value <= INT_LIMIT:
            raise ConfigError(f"{flag} must be a whole number in [1, {INT_LIMIT}], got {value}")
    if not args.run:
        raise ConfigError("no run given: its directory or its name under --runs-dir")
    store = RunStore.open(args.run, args.runs_dir)
    holder = store.holder()  # asked, never taken: the search goes on undisturbed
    if holder is not None:
        who = f"process {holder}" if holder > 0 else "another process"
        print(
            f"run {store.path} is still being searched by {who}: replaying from the "
            f"{len(store.trials(warn=False))} trials journaled so far",
            file=sys.stderr,
            flush=True,
        )
    _check_replayable(store, live=holder is not None)
    load_tensorflow(args.debug)
    return _replay_and_print(store, args.top, args.epochs, overwrite=args.overwrite)


def _check_replayable(store: RunStore, *, live: bool) -> None:
    """A run without a trained child is one line before TensorFlow loads, naming what works instead."""
    trials = store.trials(warn=not live)
    if any(t.ok for t in trials):
        return
    done = f"none of its {len(trials)} trials trained successfully" if trials else "it has no finished trial"
    raise RunError(
        f"run {str(store.path)!r} has nothing to replay: {done}; "
        f"`rlnas search --resume {store.path}` continues its search"
    )


def cmd_show(args: argparse.Namespace) -> int:
    from rlnas.run.store import RunStore
    from rlnas.run.trial import objective_name, objective_value, rank

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    store = RunStore.open(args.run, args.runs_dir)
    trials = store.trials()
    objective = store.read_json("config.json").get("search", {}).get("objective")
    ok = [t for t in trials if t.ok]
    print(f"run {store.path}: {len(trials)} trials, {len(trials) - len(ok)} failed")
    rows = [
        (
            str(i),
            f"{objective_value(t, objective):.4f}",
            f"{t.metrics['params']:,}",
            str(t.index),
            format_arch(t.architecture),
        )
        for i, t in enumerate(rank(trials, objective, args.top), start=1)
    ]
    name = "val_acc" if objective_name(objective) == "val_accuracy" else objective_name(objective)
    if any(t.metrics.get("shared_weights") for t in trials):  # a one-shot run: no child trained alone
        name = f"shared-weight {name}"
    print(format_table(("rank", name, "params", "trial", "architecture"), rows))
    _print_replays(store)
    return 0


def _print_replays(store: RunStore) -> None:
    """Every replay of the run, oldest first (the last one is the run's replay.json)."""
    from rlnas.models.child import Status

    replays = store.replays()
    if not replays:
        return
    print(f"\n{len(replays)} replay(s), retrained on train+validation and scored once on test (latest last):")
    from rlnas.run.trial import scores, short

    rows, metrics = [], set()
    for r in replays:
        number = str(r["replay"]) if r["replay"] else "(flat)"  # an older version's single replay
        for x in r["results"]:
            metric, _, test_score = scores(x)
            metrics.add(metric)
            test = f"{test_score:.4f}" if Status(x["status"]) is Status.OK else "failed"
            trial = "-" if x.get("trial") is None else str(x["trial"])
            epochs = str(r.get("epochs", "-"))
            rows.append((number, epochs, str(x["rank"]), trial, test, x["model_path"] or "-"))
    shown = f"test_{short(metrics.pop())}" if len(metrics) == 1 else "test"
    print(format_table(("replay", "epochs", "rank", "trial", shown, "model"), rows))


def cmd_export(args: argparse.Namespace) -> int:
    from rlnas.report import export_text
    from rlnas.run.store import RunStore

    text = export_text(RunStore.open(args.run, args.runs_dir), args.format)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RunError(f"cannot write {args.out!r}: {exc.strerror or exc}") from None
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """Replace this process by TensorBoard on the run's ``tb/`` (scalars, policy, HParams, text), as
    :mod:`rlnas.cli.tensorboard` serves it: the search's own runs first, TensorFlow's noise hidden."""
    from rlnas.run.store import RunStore

    logdir = RunStore.open(args.run, args.runs_dir).tb_dir
    command = [sys.executable, "-m", "rlnas.cli.tensorboard", "--logdir", str(logdir), *args.extra]
    print(f"tensorboard --logdir {logdir} {' '.join(args.extra)}".rstrip(), file=sys.stderr, flush=True)
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def cmd_report(args: argparse.Namespace) -> int:
    from rlnas.report import write_report
    from rlnas.run.store import RunStore

    for path in write_report(RunStore.open(args.run, args.runs_dir)):
        print(path)
    return 0


def _replay_and_print(store: Any, top: int, epochs: int | None, *, overwrite: bool = False) -> int:
    from rlnas.run.trial import short
    from rlnas.search.replay import replay

    print(f"retraining the top {top} on train+validation, scoring once on test ...", flush=True)
    start = time.monotonic()

    def done(r: Any) -> None:  # one line per model: replays are few and long
        outcome = f"test_{short(r.metric)} {r.test_score:.4f}" if r.ok else f"FAILED {r.error[:60]}"
        print(
            f"[{r.rank}/{top}] {outcome}  {time.monotonic() - start:.0f}s  {format_arch(r.architecture)}",
            flush=True,
        )

    results = replay(store, top=top, epochs=epochs, on_result=done, overwrite=overwrite)
    rows = [
        (
            str(r.rank),
            str(r.trial),
            f"{r.val_score:.4f}",
            f"{r.test_score:.4f}" if r.ok else "failed",
            f"{r.params:,}",
            format_arch(r.architecture),
        )
        for r in results
    ]
    metric = short(results[0].metric if results else "accuracy")
    oneshot = store.read_json("config.json").get("search", {}).get("strategy") in ONESHOT
    searched = f"val_{metric} (shared weights)" if oneshot else f"val_{metric} (search)"
    header = ("rank", "trial", searched, f"test_{metric}", "params", "architecture")
    print(format_table(header, rows))
    saved = [r.model_path for r in results if r.model_path]
    if saved:
        where = Path(saved[0]).parent
        print(f"saved {len(saved)} model(s) under {where} (keras.models.load_model loads them)")
    return 0 if saved else EXIT_ERROR
