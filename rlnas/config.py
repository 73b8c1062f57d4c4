"""The search configuration: one frozen dataclass, read from TOML and overridden by CLI flags.

Everything here is validated before TensorFlow is imported, so a typo costs the user a one-line
error, not ten seconds of start-up noise and a traceback. Each field's rule is one row of
``_RULES``; :func:`rlnas.resolve.resolve` is where file, flags and a resumed run are merged. The
config holds what every strategy shares; each strategy's own settings are a dataclass of their own
(:mod:`rlnas.settings`), held here as one field per strategy.

A config file has two optional tables::

    [search]            # any shared field of SearchConfig
    trials = 64
    epochs = 2
    [search.reinforce]  # the reinforce strategy's own settings (flat in [search] works too)
    model_steps = 0

    [space]             # omit for the default MLP space; see rlnas.space.toml
    model = "mlp"
    [[space.decisions]]
    name = "num_layers"
    values = [1, 2, 3]
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlnas.data import DataSpec
from rlnas.data.folder import parse_image_size
from rlnas.devices import check_gpus_setting
from rlnas.errors import ConfigError, did_you_mean
from rlnas.models import standard_space
from rlnas.policy.controller_kinds import CONTROLLER_LR, CONTROLLERS
from rlnas.settings import (
    OWNER,
    PLAIN_REINFORCE,
    SETTINGS,
    STRATEGIES,
    DartsSettings,
    EnasSettings,
    EvolutionSettings,
    ReinforceSettings,
)
from rlnas.settings.bounds import check_bounds
from rlnas.settings.rules import (
    Check,
    check_all,
    finite_number,
    flag,
    must,
    one_of,
    optional,
    positive,
    whole,
)
from rlnas.settings.rules import setting as _f
from rlnas.space import SearchSpace
from rlnas.space import toml as space_toml

SEED_LIMIT = 2**32
"""Seeds are numpy's and TensorFlow's: non-negative, and below 2**32 so that every derived seed fits."""
EXECUTORS = ("local", "ray")
SCHEDULES = ("cosine", "constant")
"""Learning-rate schedules of the replay (rlnas.models.child.cosine_decay)."""
PIPELINES = (1, 2)
"""Batches in flight at once: 1 is synchronous; 2 proposes the next batch before the current one's update."""
__all__ = [
    "CONTROLLERS",
    "CONTROLLER_LR",
    "PLAIN_REINFORCE",
    "STRATEGIES",
    "SearchConfig",
    "load_config",
    "make_config",
    "space_from_dict",
]


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of a search: the settings every strategy shares, each also a ``--flag`` of ``rlnas
    search``, and each strategy's own settings object (``reinforce``, ``evolution``), whose fields
    are flags too. Build one from flat names or tables with :func:`make_config`."""

    dataset: str = _f(
        "mnist_5k",
        "mnist_5k (bundled), mnist, fashion_mnist, a path to a .npz file, a folder of class subfolders "
        "of images, or a .csv table (with --target); --data is the same flag",
    )
    data_dir: str | None = _f(None, "directory holding MNIST-format IDX files (e.g. Debian's fashion-mnist)")
    target: str | None = _f(
        None, "a .csv table's column to predict: integers or text are classes, other numbers regression"
    )
    image_size: str | None = _f(
        None, "a folder of images: HEIGHTxWIDTH every image is resized to (default: 64x64)"
    )
    color_mode: str | None = _f(None, "a folder of images: grayscale, rgb or rgba (default: rgb)")
    trials: int = _f(96, "architectures the controller samples; a repeat is answered from the cache")
    max_minutes: float | None = _f(None, "time budget of the search phase; stops after the current batch")
    epochs: int = _f(2, "training epochs of each child during the search")
    batch_size: int = _f(128, "minibatch size of child training")
    train_fraction: float = _f(1.0, "fraction of the train split each child trains on (low fidelity)")
    val_fraction: float = _f(0.2, "fraction of the data held out for validation (the reward)")
    test_fraction: float = _f(0.2, "fraction held out for the final test score (never seen by the search)")
    seed: int = _f(0, "seed of the controller, the sampling and the children; same seed, same run")
    strategy: str = _f(
        "reinforce",
        "search strategy: reinforce (the LSTM REINFORCE controller plus a reward model), random, "
        "evolution, "
        "tpe (Optuna's TPE sampler; needs the bench extra), "
        "or the one-shot enas and darts (one shared-weight supernet; docs/weight-sharing.md)",
    )
    workers: int | None = _f(None, "children trained at once, each in its own worker process (default: auto)")
    archs_per_update: int = _f(4, "architectures sampled per REINFORCE update (m)")
    pipeline: int = _f(
        1, "batches in flight: 1 = update, then train the next batch; 2 = the next batch trains during it"
    )
    early_stopping: int | None = _f(None, "stop a child after this many epochs without val-loss gain")
    objective: str = _f(
        "val_accuracy", "reward: val_accuracy, <metric>[:min|max], accuracy_cubed, mnas:target=N"
    )
    failed_reward: float = _f(0.0, "reward given to a child that fails to build or train")
    max_params: int | None = _f(None, "a child with more parameters fails without training")
    child_time_limit: float | None = _f(None, "seconds a child may train before it is stopped and failed")
    max_consecutive_failures: int = _f(10, "stop the search after this many failed children in a row")
    executor: str = _f("local", "where children train: local (worker processes) or ray (Ray tasks)")
    address: str | None = _f(
        None, "Ray cluster to join: auto, or ray://HOST:PORT (default: start a local Ray)"
    )
    cpus_per_child: float = _f(1.0, "Ray: CPUs reserved by each child (its TensorFlow threads)")
    gpus_per_child: float = _f(0.0, "Ray: GPUs reserved by each child (fractions share a GPU)")
    gpus: str | None = _f(
        None, "local workers' GPUs: all, none or numbers 0,1,... (default: all GPUs found, else none)"
    )
    mixed_precision: bool = _f(
        False, "conv, skip and cell children train in float16 with float32 weights (fast on GPUs only)"
    )
    children_per_worker: int = _f(100, "children a worker process trains before it is replaced")
    reevaluate_repeats: bool = _f(False, "train a repeated architecture again; its reward is the mean")
    child_logs: bool = _f(False, "write each child's training curves to TensorBoard (tb/children/<index>)")
    replay_top: int = _f(1, "after the search, retrain this many best architectures (0: skip)")
    replay_epochs: int = _f(10, "training epochs of each replayed architecture")
    replay_schedule: str = _f(
        "cosine", "learning rate over the replay's epochs: cosine (decays to ~0) or constant"
    )
    reinforce: ReinforceSettings = field(
        default_factory=ReinforceSettings, metadata={"help": "the reinforce strategy's own settings"}
    )
    evolution: EvolutionSettings = field(
        default_factory=EvolutionSettings, metadata={"help": "the evolution strategy's own settings"}
    )
    enas: EnasSettings = field(default_factory=EnasSettings, metadata={"help": "ENAS's own settings"})
    darts: DartsSettings = field(default_factory=DartsSettings, metadata={"help": "DARTS's own settings"})

    def __post_init__(self) -> None:
        check_all(self, _RULES)
        for name, kind in SETTINGS.items():
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be {kind.__name__} (make_config reads a table or flat keys)")
        check_bounds(self)
        if self.strategy == "evolution":
            self.evolution.check_tournament()
        self.data_spec()  # validates the split fractions now, not when the data is first loaded
        if self.gpus is not None and self.executor != "local":
            raise ConfigError(f"gpus={self.gpus!r} is for local workers; Ray children take --gpus-per-child")

    def to_dict(self) -> dict[str, Any]:
        """The shared settings, and each strategy's own under its name (``config.json``)."""
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        """One ``name = value`` line per setting, the shared ones first, then each strategy's table
        (TensorBoard's text tab)."""
        data = self.to_dict()
        own = {name: data.pop(name) for name in SETTINGS}
        lines = [f"{k} = {v!r}" for k, v in data.items()]
        for name, values in own.items():
            lines += ["", f"[search.{name}]", *(f"{k} = {v!r}" for k, v in values.items())]
        return "\n".join(lines)

    def setting(self, name: str) -> Any:
        """The value of any setting by its flat name, shared or a strategy's own."""
        owner = OWNER.get(name)
        return getattr(getattr(self, owner) if owner else self, name)

    def with_settings(self, **values: Any) -> SearchConfig:
        """This config with some settings changed, by flat name or by strategy table (validated)."""
        return _build(flatten(values), base=self)

    def data_spec(self) -> DataSpec:
        """The dataset description shared by the search, its workers and replay."""
        size = self.image_size
        return DataSpec(
            name=self.dataset,
            data_dir=self.data_dir,
            target=self.target,
            image_size=parse_image_size(size) if size is not None else None,
            color_mode=self.color_mode,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            train_fraction=self.train_fraction,
        )


# -- validation: one rule per shared field ---------------------------------------------------------
def _objective(name: str, value: Any) -> None:
    from rlnas.models.objectives import parse_objective  # its ConfigError says what is wrong

    parse_objective(value)


_RULES: dict[str, Check] = {
    "trials": whole,
    "max_minutes": optional(positive),
    "epochs": whole,
    "batch_size": whole,
    "train_fraction": must(lambda v: 0 < v <= 1, "in (0, 1]"),
    "seed": must(lambda v: type(v) is int and 0 <= v < SEED_LIMIT, f"a whole number in [0, {SEED_LIMIT})"),
    "strategy": one_of(STRATEGIES),
    "workers": optional(whole),
    "archs_per_update": whole,
    "pipeline": must(
        lambda v: type(v) is int and v in PIPELINES,
        "1 (synchronous) or 2 (the next batch trains during the update)",
    ),
    "early_stopping": optional(whole),
    "objective": _objective,
    "max_params": optional(whole),
    "child_time_limit": optional(positive),
    "max_consecutive_failures": whole,
    "executor": one_of(EXECUTORS),
    "address": optional(
        must(lambda v: v in ("auto", "local") or ":" in v, "auto, local, ray://HOST:PORT or HOST:PORT")
    ),
    "cpus_per_child": positive,
    "gpus_per_child": must(finite_number, ">= 0"),
    "gpus": optional(lambda name, value: check_gpus_setting(value)),
    "mixed_precision": flag,
    "children_per_worker": whole,
    "reevaluate_repeats": flag,
    "child_logs": flag,
    "replay_top": must(lambda v: not v < 0, ">= 0"),
    "replay_epochs": whole,
    "replay_schedule": one_of(SCHEDULES),
}
"""The rule of every field that has one, in field order (the first bad field is the one reported);
dataset, data_dir, val/test fractions and the rest are checked by :meth:`SearchConfig.data_spec`
or need no check."""


SHARED_FIELDS = tuple(f for f in fields(SearchConfig) if f.name not in SETTINGS)
"""The settings every strategy shares (a strategy's own settings are one field per strategy)."""
FIELD_TYPES: dict[str, Any] = {
    f.name: f.type for f in (*SHARED_FIELDS, *(g for kind in SETTINGS.values() for g in fields(kind)))
}
"""Every setting by its flat name (a ``--flag``, a key of ``[search]``), shared or a strategy's own."""


def check_keys(values: Mapping[str, Any]) -> None:
    """Reject a key that is no setting (nor a strategy's table), with a suggestion."""
    for key in values:
        if key not in FIELD_TYPES and key not in STRATEGIES:
            raise ConfigError(
                f"unknown setting {key!r} in [search]"
                + did_you_mean(key, [*FIELD_TYPES, *STRATEGIES])
                + "; run `rlnas search --help` for the list"
            )


def flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """``[search]`` with its strategy tables (``[search.reinforce]``) lifted to flat names, so that a
    file, flags and a stored config merge key by key. A key under the wrong strategy's table, or given
    both flat and in its table, is an error."""
    check_keys(values)
    flat = {k: v for k, v in values.items() if k not in STRATEGIES}
    for table in (k for k in values if k in STRATEGIES):
        for key, value in _table(table, values[table]).items():
            _check_owner(table, key)
            if key in flat:
                raise ConfigError(f"{key} is given twice, in [search] and in [search.{table}]; keep one")
            flat[key] = value
    return flat


def _table(name: str, value: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(value) and isinstance(value, SETTINGS.get(name, ())):
        return dataclasses.asdict(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"[search.{name}] must be a table of {name}'s settings, got {value!r}")
    return value


def _check_owner(table: str, key: str) -> None:
    owner = OWNER.get(key)
    if owner == table:
        return
    if owner is not None:
        raise ConfigError(f"{key} is a setting of {owner}, not of {table}: move it to [search.{owner}]")
    if key in FIELD_TYPES:
        raise ConfigError(f"{key} is shared by every strategy: move it from [search.{table}] to [search]")
    own = [f.name for f in fields(SETTINGS[table])] if table in SETTINGS else []
    hint = did_you_mean(key, own) or did_you_mean(key, FIELD_TYPES)
    if not own:
        hint += f"; {table} has no settings of its own"
    raise ConfigError(f"unknown setting {key!r} in [search.{table}]" + hint)


def _build(flat: Mapping[str, Any], base: SearchConfig | None = None) -> SearchConfig:
    """A config from flat names: each strategy's own settings into its dataclass, the rest shared."""
    base = base if base is not None else SearchConfig()
    own = {
        name: dataclasses.replace(
            getattr(base, name), **{k: v for k, v in flat.items() if OWNER.get(k) == name}
        )
        for name in SETTINGS
    }
    shared = {k: v for k, v in flat.items() if k not in OWNER}
    return dataclasses.replace(base, **shared, **own)


def make_config(values: Mapping[str, Any] | None = None, /, **more: Any) -> SearchConfig:
    """A SearchConfig from settings by flat name or by strategy table (``{"reinforce": {...}}``),
    rejecting unknown keys with a suggestion."""
    return _build(flatten({**(values or {}), **more}))


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or bad TOML is a one-line ConfigError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    unknown = set(data) - {"search", "space"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"unknown table {key!r} in {str(p)!r}; allowed: [search], [space]"
            + did_you_mean(key, ["search", "space"])
        )
    return data


def tables(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``[search]`` and ``[space]`` tables of a read config file (each empty when absent)."""
    search = data.get("search", {})
    if not isinstance(search, dict):
        raise ConfigError("[search] must be a table")
    space = data.get("space", {})
    if not isinstance(space, dict):
        raise ConfigError("[space] must be a table")
    return search, space


def load_config(path: str | Path | None) -> tuple[SearchConfig, SearchSpace, dict[str, Any]]:
    """Read a config file (or nothing) into (config, space, raw [search] table for overrides)."""
    search, space = tables(read_toml(path) if path is not None else {})
    return make_config(search), space_from_dict(space), search


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """The ``[space]`` table (or a stored ``to_dict()``) as a SearchSpace; a table that names only a
    built-in model gets its standard space (:func:`rlnas.space.toml.space_from_dict`)."""
    return space_toml.space_from_dict(data, standard_space=standard_space)
