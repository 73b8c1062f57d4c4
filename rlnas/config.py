"""The search configuration: one frozen dataclass, read from TOML and overridden by CLI flags.

Everything here is validated before TensorFlow is imported, so a typo costs the user a one-line
error, not ten seconds of start-up noise and a traceback.

A config file has two optional tables::

    [search]            # any field of SearchConfig
    trials = 64
    epochs = 2

    [space]             # omit for the default MLP space
    model = "mlp"
    [[space.decisions]]
    name = "num_layers"
    kind = "int"
    values = [1, 2, 3]
    [[space.decisions]]
    name = "units_1"
    kind = "int"
    range = [32, 512, 32]          # first, last (inclusive), step
    when = { num_layers = [2, 3] }  # exists only for these values of an earlier decision
    [[space.decisions]]
    name = "lr"
    kind = "float"
    log_range = [1e-4, 1e-2, 7]    # low, high, number of grid points
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlnas.data import DataSpec
from rlnas.errors import ConfigError, did_you_mean
from rlnas.space import Decision, SearchSpace, cell_space, conv_space, default_space, log_grid, skip_space

STRATEGIES = ("reinforce", "random", "evolution", "tpe")
CONTROLLERS = ("lstm", "factorized")
"""reinforce's policy (rlnas.controller.Controller's ``kind``): Zoph & Le's autoregressive LSTM, or one
free logit vector per decision."""
CONTROLLER_LR = {"lstm": 0.005, "factorized": 0.02}
"""Default Adam step per policy: a free logit vector needs a larger step than the LSTM's weights to move
the policy as far (both chosen on two lookup tables, BENCHMARKS.md)."""
EXECUTORS = ("local", "ray")
SCHEDULES = ("cosine", "constant")
"""Learning-rate schedules of the replay (rlnas.child.cosine_decay)."""
PIPELINES = (1, 2)
"""Batches in flight at once: 1 is synchronous; 2 proposes the next batch before the current one's update."""


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of a search; each field is also a ``--flag`` of ``rlnas search``."""

    dataset: str = _f("mnist_5k", "mnist_5k (bundled), mnist, fashion_mnist, or a path to a .npz file")
    data_dir: str | None = _f(None, "directory holding MNIST-format IDX files (e.g. Debian's fashion-mnist)")
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
        "search strategy: reinforce (a policy trained by REINFORCE; see controller), random, or evolution",
    )
    workers: int | None = _f(None, "children trained at once, each in its own worker process (default: auto)")
    archs_per_update: int = _f(4, "architectures sampled per REINFORCE update (m)")
    pipeline: int = _f(
        1, "batches in flight: 1 = update, then train the next batch; 2 = the next batch trains during it"
    )
    importance_clip: float = _f(
        1.0,
        "pipeline 2: cap c of the importance weight min(c, pi_new/pi_old); 0: no weights (stale gradient)",
    )
    controller: str = _f(
        "lstm",
        "reinforce's policy: lstm (Zoph & Le's RNN) or factorized (one free logit vector per decision)",
    )
    controller_lr: float | None = _f(
        None, "Adam learning rate of the controller (default: 0.005 for lstm, 0.02 for factorized)"
    )
    entropy_weight: float = _f(1e-3, "weight of the entropy bonus in the REINFORCE loss")
    skip_weight: float = _f(0.0, "weight of the ENAS skip-density KL penalty in the REINFORCE loss (0: off)")
    skip_target: float = _f(0.4, "skip density (probability of each skip_<i>_<j>) the penalty pulls towards")
    baseline_decay: float = _f(0.8, "decay of the exponential moving-average reward baseline")
    grad_clip: float = _f(5.0, "global-norm clipping of the controller gradient")
    temperature: float = _f(1.0, "softmax temperature of the controller's logits while sampling")
    tanh_constant: float | None = _f(2.5, "logits = C * tanh(logits / temperature) (ENAS); 0 turns it off")
    lstm_units: int = _f(35, "units in each LSTM layer of the controller")
    lstm_layers: int = _f(2, "LSTM layers of the controller")
    init_range: float = _f(0.08, "controller weights start uniform in [-r, r]")
    population_size: int = _f(20, "evolution: architectures kept alive (the oldest is aged out)")
    tournament_size: int = _f(5, "evolution: random members compared to pick each parent")
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
    children_per_worker: int = _f(100, "children a worker process trains before it is replaced")
    reevaluate_repeats: bool = _f(False, "train a repeated architecture again; its reward is the mean")
    child_logs: bool = _f(False, "write each child's training curves to TensorBoard (tb/children/<index>)")
    replay_top: int = _f(1, "after the search, retrain this many best architectures (0: skip)")
    replay_epochs: int = _f(10, "training epochs of each replayed architecture")
    replay_schedule: str = _f(
        "cosine", "learning rate over the replay's epochs: cosine (decays to ~0) or constant"
    )

    def __post_init__(self) -> None:
        for name in (
            "trials",
            "epochs",
            "batch_size",
            "archs_per_update",
            "lstm_units",
            "lstm_layers",
            "children_per_worker",
            "replay_epochs",
            "max_consecutive_failures",
            "population_size",
            "tournament_size",
        ):
            _positive(name, getattr(self, name), integer=True)
        for name in ("temperature", "init_range", "grad_clip"):
            _positive(name, getattr(self, name))
        if self.controller_lr is not None:
            _positive("controller_lr", self.controller_lr)
        if type(self.pipeline) is not int or self.pipeline not in PIPELINES:
            raise ConfigError(
                f"pipeline must be 1 (synchronous) or 2 (the next batch trains during the update), "
                f"got {self.pipeline!r}"
            )
        if isinstance(self.importance_clip, bool) or not (
            isinstance(self.importance_clip, int | float) and 0 <= self.importance_clip < math.inf
        ):
            raise ConfigError(
                f"importance_clip must be >= 0 (0 turns the weights off), got {self.importance_clip!r}"
            )
        for name, allowed in (
            ("replay_schedule", SCHEDULES),
            ("strategy", STRATEGIES),
            ("controller", CONTROLLERS),
            ("executor", EXECUTORS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"unknown {name} {value!r}; allowed: {', '.join(allowed)}"
                    + did_you_mean(str(value), allowed)
                )
        if self.replay_top < 0:
            raise ConfigError(f"replay_top must be >= 0, got {self.replay_top!r}")
        if not self.entropy_weight >= 0:
            raise ConfigError(f"entropy_weight must be >= 0, got {self.entropy_weight!r}")
        if not self.skip_weight >= 0:
            raise ConfigError(f"skip_weight must be >= 0, got {self.skip_weight!r}")
        if not 0 < self.skip_target < 1:
            raise ConfigError(f"skip_target must be in (0, 1), got {self.skip_target!r}")
        if not 0 <= self.baseline_decay < 1:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")
        for name in ("max_minutes", "child_time_limit"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name in ("child_logs", "reevaluate_repeats"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        from rlnas.objectives import parse_objective

        parse_objective(self.objective)
        _positive("cpus_per_child", self.cpus_per_child)
        if isinstance(self.gpus_per_child, bool) or not (
            isinstance(self.gpus_per_child, int | float) and 0 <= self.gpus_per_child < math.inf
        ):
            raise ConfigError(f"gpus_per_child must be >= 0, got {self.gpus_per_child!r}")
        for name in ("workers", "early_stopping"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name), integer=True)
        if self.max_params is not None:
            _positive("max_params", self.max_params, integer=True)
        if self.tanh_constant is not None and not (
            isinstance(self.tanh_constant, int | float) and 0 <= self.tanh_constant < math.inf
        ):
            raise ConfigError(f"tanh_constant must be >= 0 (0 turns it off), got {self.tanh_constant!r}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction!r}")
        self.data_spec()  # validates the split fractions now, not when the data is first loaded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def policy_lr(self) -> float:
        """The controller's Adam step: ``controller_lr``, or the default of its ``controller``."""
        return self.controller_lr if self.controller_lr is not None else CONTROLLER_LR[self.controller]

    def data_spec(self) -> DataSpec:
        """The dataset description shared by the search, its workers and replay."""
        return DataSpec(
            name=self.dataset,
            data_dir=self.data_dir,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            train_fraction=self.train_fraction,
        )


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be a {'whole ' if integer else ''}number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be positive, got {value!r}")


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in fields(SearchConfig)}


def make_config(values: Mapping[str, Any]) -> SearchConfig:
    """Build a SearchConfig from a mapping, rejecting unknown keys with a suggestion."""
    for key in values:
        if key not in FIELD_TYPES:
            raise ConfigError(
                f"unknown setting {key!r} in [search]"
                + did_you_mean(key, FIELD_TYPES)
                + "; run `rlnas search --help` for the list"
            )
    try:
        return SearchConfig(**values)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(str(exc)) from None


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


def load_config(path: str | Path | None) -> tuple[SearchConfig, SearchSpace, dict[str, Any]]:
    """Read a config file (or nothing) into (config, space, raw [search] table for overrides)."""
    data = read_toml(path) if path is not None else {}
    search = data.get("search", {})
    if not isinstance(search, dict):
        raise ConfigError("[search] must be a table")
    space = data.get("space", {})
    if not isinstance(space, dict):
        raise ConfigError("[space] must be a table")
    return make_config(search), space_from_dict(space), search


_DECISION_KEYS = ("name", "kind", "values", "range", "log_range", "when")


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """Build a SearchSpace from the ``[space]`` table (see the module docstring)."""
    unknown = set(data) - {"model", "decisions", "lr_grid"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"unknown key {key!r} in [space]" + did_you_mean(key, ["model", "decisions", "lr_grid"])
        )
    model = data.get("model", "mlp")
    lr_grid = data.get("lr_grid")
    if lr_grid is not None and (isinstance(lr_grid, bool) or not isinstance(lr_grid, int)):
        raise ConfigError(f"[space] lr_grid must be a whole number of grid points, got {lr_grid!r}")
    if "decisions" not in data:
        if isinstance(model, str) and ":" in model:  # a keras-tuner model function declares its space
            from rlnas.hyperparameters import space_from_function

            return space_from_function(model)
        return _factory_space(model, lr_grid)
    raw = data["decisions"]
    if not isinstance(raw, list):
        raise ConfigError("[space] decisions must be an array of tables ([[space.decisions]])")
    return SearchSpace([_decision(d, i) for i, d in enumerate(raw)], model=model)


_FACTORIES = {"mlp": default_space, "conv": conv_space, "skip": skip_space, "cell": cell_space}
"""Models whose standard space ``[space] model = "..."`` alone selects (see docs/spaces.md)."""


def _factory_space(model: str, lr_grid: int | None) -> SearchSpace:
    """The standard space of a built-in model (each keeps its own lr grid unless ``lr_grid`` is given)."""
    if model not in _FACTORIES:
        raise ConfigError(f"[space] model {model!r} needs its decisions listed in [[space.decisions]]")
    return _FACTORIES[model](**({"lr_grid": lr_grid} if lr_grid is not None else {}))


def _decision(d: Any, i: int) -> Decision:
    if not isinstance(d, dict):
        raise ConfigError(f"decision #{i + 1} must be a table, got {d!r}")
    for key in d:
        if key not in _DECISION_KEYS:
            raise ConfigError(f"decision #{i + 1}: unknown key {key!r}" + did_you_mean(key, _DECISION_KEYS))
    name = d.get("name")
    if not name:
        raise ConfigError(f"decision #{i + 1} has no name")
    given = [k for k in ("values", "range", "log_range") if k in d]
    if len(given) != 1:
        raise ConfigError(f"decision {name!r}: give exactly one of values, range, log_range")
    kind = d.get("kind") or _guess_kind(d)
    values = d.get("values")
    if "range" in d:
        values = _int_range(name, d["range"])
    elif "log_range" in d:
        r = d["log_range"]
        if not (isinstance(r, list) and len(r) == 3 and all(_is_number(x) for x in r) and _is_int(r[2])):
            raise ConfigError(f"decision {name!r}: log_range is [low, high, count], got {r!r}")
        values = list(log_grid(float(r[0]), float(r[1]), int(r[2])))
    when = d.get("when", {})
    if not isinstance(when, dict):
        raise ConfigError(f"decision {name!r}: when must be a table like {{ num_layers = [2, 3] }}")
    return Decision(name, values, kind, when)


def _int_range(name: str, r: Any) -> list[int]:
    if not (isinstance(r, list) and len(r) in (2, 3) and all(_is_int(x) for x in r)):
        raise ConfigError(f"decision {name!r}: range is [first, last] or [first, last, step], got {r!r}")
    step = r[2] if len(r) == 3 else 1
    if step <= 0 or r[1] < r[0]:
        raise ConfigError(f"decision {name!r}: range {r!r} is empty; need first <= last, step > 0")
    return list(range(r[0], r[1] + 1, step))


def _guess_kind(d: Mapping[str, Any]) -> str:
    if "range" in d:
        return "int"
    if "log_range" in d:
        return "float"
    vals = d["values"] if isinstance(d["values"], list) else []
    for kind, typ in (("bool", bool), ("int", int), ("float", float)):
        if vals and all(type(v) is typ for v in vals):
            return kind
    if vals and all(_is_number(v) for v in vals):  # [0, 0.5]: TOML reads 0 as an int
        return "float"
    return "choice"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
