"""``rlnas tensorboard RUN``: TensorBoard on the run's ``tb/``, opening on the search itself, and quiet.

Why not plain ``tensorboard --logdir``: TensorBoard's HParams plugin reads one session per run, so every
trained child is a run (``children/<index>``), and with more than 40 runs the Scalars, Text and Time
Series dashboards enable none of them by default: the search's own charts and text would open blank
until the user finds and ticks ".". Here every plugin but HParams sees the run without those session
runs (``/data/runs`` lists the search's own), while HParams still sees, and lists, every child.

Run as ``python -m rlnas.cli.tensorboard --logdir DIR [tensorboard flags]``: the command replaces its
process by this module, so that TensorBoard's flags and Ctrl-C behave as TensorBoard's own.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
from collections.abc import Callable
from typing import Any

SESSION_RUN = re.compile(r"children/\d+")
"""An HParams session run (``children/<index>``); its ``--child-logs`` curves (``children/<index>/train``)
are runs of their own and stay visible."""

_BY_RUN = ("list_scalars", "read_scalars", "read_last_scalars", "list_tensors", "read_tensors")
_BY_RUN += ("list_blob_sequences", "read_blob_sequences")
"""The DataProvider methods that answer ``{run: ...}``."""


def is_session_run(name: str) -> bool:
    return SESSION_RUN.fullmatch(name) is not None


def _without_sessions(method: Callable[..., Any]) -> Callable[..., Any]:
    def filtered(*args: Any, **kwargs: Any) -> Any:
        return {run: v for run, v in method(*args, **kwargs).items() if not is_session_run(run)}

    return filtered


class HideSessions:
    """A TensorBoard DataProvider that answers as ``inner`` does, less the HParams session runs.

    Delegates by attribute rather than subclassing ``DataProvider``, whose methods would otherwise
    answer "nothing" for every method not overridden here.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        return _without_sessions(method) if name in _BY_RUN else method

    def list_runs(self, ctx: Any = None, *, experiment_id: str) -> list[Any]:
        runs = self.inner.list_runs(ctx, experiment_id=experiment_id)
        return [r for r in runs if not is_session_run(r.run_name)]


def _loader_seeing_everything(plugin_class: type) -> Any:
    """A loader that gives ``plugin_class`` (HParams) the data provider with every run."""
    from tensorboard.plugins import base_plugin

    class SeesEverything(base_plugin.TBLoader):
        def load(self, context: Any) -> Any:
            context = copy.copy(context)
            context.data_provider = context.data_provider.inner
            return plugin_class(context)

    return SeesEverything()


def _board() -> Any:
    from tensorboard import default, program
    from tensorboard.plugins.hparams import hparams_plugin

    class Board(program.TensorBoard):
        def _make_data_provider(self) -> tuple[Any, Any]:  # TensorBoard's own hook, private but stable
            provider, multiplexer = super()._make_data_provider()
            return HideSessions(provider), multiplexer

    plugins = [
        _loader_seeing_everything(p) if p is hparams_plugin.HParamsPlugin else p
        for p in default.get_plugins()
    ]
    return Board(plugins=plugins)


def _import_tensorflow_quietly() -> None:
    """TensorBoard imports TensorFlow when it is installed, which prints its start-up and CUDA lines
    straight to file descriptor 2: import it here with fd 2 on /dev/null (TensorBoard's own messages,
    the address to open among them, come later and stay)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # TensorBoard needs no GPU: no cuInit attempt
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with contextlib.suppress(ImportError):  # TensorBoard runs without it
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run_main() -> None:
    """TensorBoard's own main (its flags, its serving message), with our board."""
    _import_tensorflow_quietly()
    from absl import app
    from tensorboard import main_lib
    from tensorboard.plugins import base_plugin

    main_lib.global_init()
    board = _board()
    try:
        app.run(board.main, flags_parser=board.configure)
    except base_plugin.FlagsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main()
