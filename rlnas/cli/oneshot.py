"""``rlnas search --strategy enas|darts``: the one-shot search (one supernet, no children trained one
by one), then the same replay as every search: the best candidates retrained from scratch and scored
once on test."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rlnas.cli._common import EXIT_INTERRUPTED, StopOnCtrlC, load_tensorflow
from rlnas.errors import RlnasError
from rlnas.text import format_arch

if TYPE_CHECKING:
    from rlnas.config import SearchConfig
    from rlnas.run.store import RunStore
    from rlnas.run.trial import Trial
    from rlnas.space import SearchSpace


def search_and_replay(
    args: argparse.Namespace, store: RunStore, config: SearchConfig, space: SearchSpace, replay: Any
) -> int:
    """The one-shot search with its Ctrl-C, then ``replay(store, top, epochs)`` (the CLI's own)."""
    from rlnas.search.oneshot import EPOCHS, run_oneshot

    _gpus_back()
    load_tensorflow(args.debug)
    epochs = config.setting(EPOCHS[config.strategy])
    resuming = " (resuming)" if args.resume is not None else ""
    plural = "" if epochs == 1 else "s"
    print(
        f"run {store.path}: {config.strategy}, {epochs} supernet epoch{plural} on {config.dataset}{resuming}"
    )
    stop = StopOnCtrlC(after="the current minibatch, with a checkpoint")
    try:
        with stop.installed():
            result = run_oneshot(
                config,
                space,
                store,
                should_stop=stop,
                on_trial=None if args.quiet else _show,
                resume=args.resume is not None,
            )
    except KeyboardInterrupt:
        result = None
    if result is None or result.stopped_by == "interrupted":
        print(
            f"interrupted: the supernet's checkpoint is in {store.path / 'supernet'}; "
            f"`rlnas search --resume {store.path}` continues",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"searched in {result.seconds:.0f}s; stopped by {result.stopped_by}")
    if result.best is None:
        raise RlnasError("the one-shot search found no candidate")
    best = result.best
    print(f"best shared-weight validation accuracy {best.reward:.4f}: {format_arch(best.architecture)}")
    return replay(store, config.replay_top, None) if config.replay_top else 0


def _gpus_back() -> None:
    """The supernet trains in this process: give it back the GPUs that ``rlnas search`` hid from itself
    for the controller (nothing has touched a device yet, so CUDA reads the user's setting)."""
    import os

    from rlnas.devices import VISIBLE, original_visible

    os.environ.pop(VISIBLE, None)
    if (visible := original_visible()) is not None:
        os.environ[VISIBLE] = visible


def _show(trial: Trial) -> None:
    arch = format_arch(trial.architecture)
    print(f"candidate {trial.index}: shared-weight val_acc {trial.reward:.4f}  {arch}", flush=True)
