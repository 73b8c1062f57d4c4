"""What every ``rlnas`` command shares: exit codes, the argument parser, the SearchConfig flags,
Ctrl-C handling, muting TensorFlow's start-up, and the checks a search makes before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # annotations only: the CLI imports modules lazily to start fast
    from rlnas.config import SearchConfig
    from rlnas.data import Dataset
    from rlnas.space import SearchSpace

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix, like every other rlnas error."""

    commands: dict[str, Parser]
    """The parser of each command (``rlnas``'s own parser only): its flags name the closest one."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"rlnas: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_ERROR)

    def unrecognized(self, extra: list[str]) -> NoReturn:
        """argparse's "unrecognized arguments", with the closest flag to the first unknown one: a
        misspelled ``--trails`` names ``--trials``."""
        from rlnas.errors import did_you_mean

        flags = [s for action in self._actions for s in action.option_strings]
        unknown = next((e.split("=")[0] for e in extra if e.startswith("--")), "")
        hint = did_you_mean(unknown, flags) if unknown else ""
        self.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def typed(kind: type) -> Any:
    """An argparse ``type=`` whose error names the expected kind (``'x' is not an int``)."""
    from rlnas.text import with_article

    expected = with_article(kind.__name__)

    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None

    parse.__name__ = kind.__name__
    return parse


FLAG_ALIASES = {"dataset": ("--data",)}
"""Other spellings of a setting's flag: ``--data DIR`` reads as keras-tuner users say it."""


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting (CleanRL's single-dataclass style): the shared ones, then each
    strategy's own in a group of its own, with ``--plain-reinforce`` among reinforce's."""
    from rlnas.config import SHARED_FIELDS
    from rlnas.settings import SETTINGS

    _add_fields(p.add_argument_group("search settings (override the config file)"), SHARED_FIELDS)
    for name, kind in SETTINGS.items():
        group = p.add_argument_group(f"{name} settings (override [search.{name}] of the config file)")
        if name == "reinforce":
            group.add_argument(
                "--plain-reinforce",
                action="store_true",
                help="Zoph & Le's REINFORCE alone: no reward model, novelty filter or mixed-in candidates "
                "(--no-novel-only --model-steps 0 --explore-mix 0; those flags, given, win)",
            )
        _add_fields(group, fields(kind))


def _add_fields(group: Any, settings: Any) -> None:
    for f in settings:
        if f.type == "bool":  # --x means True, --no-x False; absent leaves the config file's value
            group.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, action=argparse.BooleanOptionalAction,
                default=None, help=_flag_help(f),
            )  # fmt: skip
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            *FLAG_ALIASES.get(f.name, ()),
            dest=f.name,
            type=typed(kind),
            default=None,
            metavar=f.name.upper(),
            help=_flag_help(f),
        )


def _flag_help(f: Any) -> str:
    """A field's help with its default, unless the help already says it (a default that depends)."""
    text = f.metadata["help"]
    return text if "(default:" in text else f"{text} (default: {f.default})"


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line by flat name (argparse leaves the others None);
    ``--plain-reinforce`` stands for :data:`rlnas.config.PLAIN_REINFORCE`, under any flag given."""
    from rlnas.config import FIELD_TYPES, PLAIN_REINFORCE

    given = {k: getattr(args, k) for k in FIELD_TYPES if getattr(args, k) is not None}
    return PLAIN_REINFORCE | given if getattr(args, "plain_reinforce", False) else given


def resolve_search(args: argparse.Namespace) -> tuple[SearchConfig, SearchSpace]:
    """Config file, then flags; the space and the dataset are checked before TensorFlow loads."""
    config, space, _ = resolve_search_data(args)
    return config, space


def resolve_search_data(args: argparse.Namespace) -> tuple[SearchConfig, SearchSpace, Dataset]:
    """:func:`resolve_search`, and the dataset it read and checked."""
    from rlnas.resolve import resolve

    config, space = resolve(
        args.config,
        flag_values(args),
        model=getattr(args, "model", None),
        before_model=lambda: _before_model(args),
    )
    config, ds = check_before_tensorflow(config, space, args.debug)
    return config, space, ds


def _before_model(args: argparse.Namespace) -> None:
    """The model function's module imports Keras: first a missing module or function is one line
    at once, then TensorFlow loads with its start-up lines muted."""
    from rlnas.cli.model_lookup import check_model_function

    check_model_function(args.model)
    load_tensorflow(args.debug)


def check_before_tensorflow(
    config: SearchConfig, space: SearchSpace, debug: bool
) -> tuple[SearchConfig, Dataset]:
    """The space, Ray and the data, each a one-line error now rather than N failed children later;
    a downloadable dataset that is missing is fetched here, and a folder of images decoded (once:
    :mod:`rlnas.data.folder` caches it for the workers). Returns the config fitted to the data
    (:func:`rlnas.resolve.fit_to_data`: a regression target's objective and failed reward) and the
    dataset."""
    from rlnas import data
    from rlnas.errors import DataError
    from rlnas.models.child import check_space
    from rlnas.resolve import fit_to_data

    check_space(space)
    _check_workers(config)
    _check_gpus(config, space)
    if config.executor == "ray":  # one line naming the install command, before anything starts
        from rlnas.exec.ray_evaluator import require_ray

        require_ray()
    spec = config.data_spec()
    try:
        kind = data.check_spec(spec)
    except DataError:
        if not data.is_downloadable(spec):
            raise
        print(f"{spec.name} is not on this machine; fetching it with keras.datasets ...", file=sys.stderr)
        load_tensorflow(debug)
        data.download(spec)
        kind = data.check_spec(spec)
    if kind == "folder":
        load_tensorflow(debug)  # the first read decodes the images with Keras
    ds = data.load(spec)  # reads and checks the arrays (shapes, labels, splits) here, not in every worker
    if kind == "table":  # only the mlp reads a table's columns: one line, not N failed children
        from rlnas.models.table import check_table_model

        check_table_model(space.model)
    elif ":" not in space.model:  # a built-in image model given flat vectors: one line, not N failed children
        from rlnas.models import check_input_shape

        check_input_shape(space.model, ds.input_shape)
    return fit_to_data(config, ds), ds


WORKERS_PER_CORE = 4
"""More local workers than this per core only thrash: each imports TensorFlow (~0.8 GB) and trains."""


def _check_workers(config: SearchConfig) -> None:
    """Local workers are processes on this machine: refuse a count it cannot hold, before any starts."""
    from rlnas.errors import ConfigError
    from rlnas.resources import cpu_count

    limit = WORKERS_PER_CORE * cpu_count()
    if config.executor == "local" and config.workers is not None and config.workers > limit:
        raise ConfigError(
            f"--workers {config.workers} is more than this machine can train at once ({cpu_count()} cores, "
            f"at most {limit} local workers); use --executor ray for a cluster"
        )


def _check_gpus(config: SearchConfig, space: SearchSpace) -> None:
    """``--gpus`` names GPUs this machine has; ``--mixed-precision`` fits the model (and says that
    it does not pay on the CPU)."""
    from rlnas.devices import choose_gpus, visible_gpus
    from rlnas.models.child import check_mixed_precision

    gpus = choose_gpus(config.gpus, visible_gpus()) if config.executor == "local" else None
    if config.mixed_precision:
        check_mixed_precision(space.model)
        if not gpus and (config.executor == "local" or not config.gpus_per_child):
            print("rlnas: note: --mixed-precision without a GPU: no speed-up on the CPU", file=sys.stderr)


class StopOnCtrlC:
    """First Ctrl-C: finish the child in training, save, stop. Second: stop now (KeyboardInterrupt).

    Either way the journal and the checkpoint stay consistent (both are written atomically), so
    ``--resume`` continues; the first way also keeps the child that was training.
    """

    def __init__(self, *, after: str = "the child in training") -> None:
        self.requested = False
        self.after = after

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            f"\nstopping after {self.after} (Ctrl-C again to stop now) ...",
            file=sys.stderr,
            flush=True,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def load_tensorflow(debug: bool) -> None:
    """Import TensorFlow with its start-up lines muted (``--debug`` shows them)."""
    if debug:
        return
    from rlnas.quiet import quiet_tensorflow

    quiet_tensorflow()
