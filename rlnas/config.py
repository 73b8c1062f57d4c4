"""The search configuration: one frozen dataclass, read from TOML and overridden by CLI flags.

Everything here is validated before TensorFlow is imported, so a typo costs the user a one-line
error, not ten seconds of start-up noise and a traceback. Each field's rule is one row of
``_RULES``; :func:`rlnas.resolve.resolve` is where file, flags and a resumed run are merged. (A little
over 300 lines: one line per setting, twice, in the dataclass and in the rule table; the bounds
every setting shares are :mod:`rlnas.bounds`.)

A config file has two optional tables::

    [search]            # any field of SearchConfig
    trials = 64
    epochs = 2

    [space]             # omit for the default MLP space; see rlnas.space.toml
    model = "mlp"
    [[space.decisions]]
    name = "num_layers"
    values = [1, 2, 3]
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlnas.bounds import check_bounds
from rlnas.data import DataSpec
from rlnas.devices import check_gpus_setting
from rlnas.errors import ConfigError, did_you_mean
from rlnas.models import standard_space
from rlnas.policy.controller_kinds import CONTROLLER_LR, CONTROLLERS
from rlnas.space import SearchSpace
from rlnas.space import toml as space_toml

SEED_LIMIT = 2**32
"""Seeds are numpy's and TensorFlow's: non-negative, and below 2**32 so that every derived seed fits."""
STRATEGIES = ("reinforce", "random", "evolution", "tpe")
EXECUTORS = ("local", "ray")
SCHEDULES = ("cosine", "constant")
"""Learning-rate schedules of the replay (rlnas.models.child.cosine_decay)."""
PIPELINES = (1, 2)
"""Batches in flight at once: 1 is synchronous; 2 proposes the next batch before the current one's update."""
MODEL_SELECTS = ("ucb", "thompson", "mixed")
"""How the reinforce strategy picks its real batch from the pool (rlnas.strategies.dyna.choose)."""
PLAIN_REINFORCE: dict[str, Any] = {"novel_only": False, "model_steps": 0, "explore_mix": 0.0}
"""The settings that turn the reinforce strategy back into Zoph & Le's: one policy-gradient step per
real batch, no reward model, no novelty filter, no mixed-in candidates (the ablation's baseline;
``--no-novel-only --model-steps 0 --explore-mix 0`` on the command line)."""
__all__ = ["CONTROLLERS", "CONTROLLER_LR", "SearchConfig", "load_config", "make_config", "space_from_dict"]


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
        "search strategy: reinforce (a policy trained by REINFORCE; see controller), random, evolution, "
        "or tpe (Optuna's TPE sampler; needs the bench extra)",
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
    novel_only: bool = _f(True, "reinforce: propose only architectures not yet evaluated while any remain")
    model_steps: int = _f(
        5, "reinforce: Dyna steps on a learned reward model's predictions per real batch (0: no model)"
    )
    model_batch: int = _f(32, "reinforce: architectures sampled in each imagined (reward-model) step")
    model_pool: int = _f(
        512, "reinforce: controller samples the real batch is chosen from (novel_only/model)"
    )
    model_bonus: float = _f(1.0, "reinforce: optimism, predicted reward + bonus * ensemble spread")
    model_trees: int = _f(8, "reinforce: extra-trees in the reward model's ensemble")
    explore_mix: float = _f(0.5, "reinforce: fraction of the pool replaced by mutants and uniform draws")
    risk_seeking: float = _f(
        0.0, "reinforce: learn only from rewards above the (1 - eps) quantile (Petersen 2021); 0: off"
    )
    risk_memory: int = _f(32, "reinforce: recent rewards the risk-seeking quantile is taken over")
    model_select: str = _f(
        "mixed",
        "reinforce: how the real batch is picked from the pool: ucb (mean + bonus * spread), thompson, "
        "mixed (the best predicted mean, then thompson)",
    )
    mutant_share: float = _f(
        0.75, "reinforce: share of the explore_mix rows that are mutants (the rest uniform)"
    )
    model_linear: int = _f(
        0, "reinforce: bootstrap ridge (additive) members in the reward model beside its trees (0: none)"
    )
    model_min_fit: int = _f(8, "reinforce: evaluations before the reward model is fitted and trusted (>= 2)")
    mutant_parents: int = _f(5, "reinforce: best evaluated rows the explore_mix mutants are drawn from")
    model_ordinal: bool = _f(False, "reinforce: the reward model also sees each numeric decision's rank")
    pqt_k: int = _f(
        0, "reinforce: priority-queue training, imitate the k best found so far each batch (0: off)"
    )
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

    def __post_init__(self) -> None:
        for name, check in _RULES.items():
            check(name, getattr(self, name))
        check_bounds(self)
        self.data_spec()  # validates the split fractions now, not when the data is first loaded
        if self.gpus is not None and self.executor != "local":
            raise ConfigError(f"gpus={self.gpus!r} is for local workers; Ray children take --gpus-per-child")

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


# -- validation: one rule per field -----------------------------------------------------------------
Check = Callable[[str, Any], None]
"""``check(name, value)`` raises ConfigError naming the field and echoing the bad value."""


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be a {'whole ' if integer else ''}number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be positive, got {value!r}")


def _whole(name: str, value: Any) -> None:
    _positive(name, value, integer=True)


def _optional(check: Check) -> Check:
    """None allowed (the setting is off or automatic), anything else checked."""

    def run(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)

    return run


def _must(ok: Callable[[Any], bool], rule: str) -> Check:
    """A value ``ok`` accepts, else "<name> must be <rule>, got <value>" (also for a wrong type)."""

    def run(name: str, value: Any) -> None:
        try:
            accepted = ok(value)
        except TypeError:  # "x" < 0: the wrong type is as bad as the wrong value
            accepted = False
        if not accepted:
            raise ConfigError(f"{name} must be {rule}, got {value!r}")

    return run


def _one_of(allowed: tuple[str, ...]) -> Check:
    def run(name: str, value: Any) -> None:
        if value not in allowed:
            raise ConfigError(
                f"unknown {name} {value!r}; allowed: {', '.join(allowed)}" + did_you_mean(str(value), allowed)
            )

    return run


def _objective(name: str, value: Any) -> None:
    from rlnas.models.objectives import parse_objective  # its ConfigError says what is wrong

    parse_objective(value)


def _finite_number(value: Any, low: float = 0) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and low <= value < math.inf


_RULES: dict[str, Check] = {
    "trials": _whole,
    "max_minutes": _optional(_positive),
    "epochs": _whole,
    "batch_size": _whole,
    "train_fraction": _must(lambda v: 0 < v <= 1, "in (0, 1]"),
    "seed": _must(lambda v: type(v) is int and 0 <= v < SEED_LIMIT, f"a whole number in [0, {SEED_LIMIT})"),
    "strategy": _one_of(STRATEGIES),
    "workers": _optional(_whole),
    "archs_per_update": _whole,
    "pipeline": _must(
        lambda v: type(v) is int and v in PIPELINES,
        "1 (synchronous) or 2 (the next batch trains during the update)",
    ),
    "importance_clip": _must(_finite_number, ">= 0 (0 turns the weights off)"),
    "controller": _one_of(CONTROLLERS),
    "controller_lr": _optional(_positive),
    "entropy_weight": _must(lambda v: v >= 0, ">= 0"),
    "skip_weight": _must(lambda v: v >= 0, ">= 0"),
    "skip_target": _must(lambda v: 0 < v < 1, "in (0, 1)"),
    "baseline_decay": _must(lambda v: 0 <= v < 1, "in [0, 1)"),
    "grad_clip": _positive,
    "temperature": _positive,
    "tanh_constant": _optional(
        _must(lambda v: isinstance(v, int | float) and 0 <= v < math.inf, ">= 0 (0 turns it off)")
    ),
    "novel_only": _must(lambda v: isinstance(v, bool), "true or false"),
    "model_steps": _must(lambda v: type(v) is int and v >= 0, "a whole number >= 0 (0: no model)"),
    "model_batch": _whole,
    "model_pool": _whole,
    "model_bonus": _must(_finite_number, ">= 0"),
    "model_trees": _whole,
    "explore_mix": _must(lambda v: _finite_number(v) and v <= 1, "in [0, 1]"),
    "risk_seeking": _must(lambda v: _finite_number(v) and v < 1, "in [0, 1) (0: off)"),
    "risk_memory": _whole,
    "model_select": _must(lambda v: v in MODEL_SELECTS, "ucb, thompson or mixed"),
    "mutant_share": _must(lambda v: _finite_number(v) and v <= 1, "in [0, 1]"),
    "model_linear": _must(lambda v: type(v) is int and v >= 0, "a whole number >= 0 (0: none)"),
    "model_min_fit": _must(lambda v: type(v) is int and v >= 2, "a whole number >= 2"),
    "mutant_parents": _whole,
    "model_ordinal": _must(lambda v: isinstance(v, bool), "true or false"),
    "pqt_k": _must(lambda v: type(v) is int and v >= 0, "a whole number >= 0 (0: off)"),
    "lstm_units": _whole,
    "lstm_layers": _whole,
    "init_range": _positive,
    "population_size": _whole,
    "tournament_size": _whole,
    "early_stopping": _optional(_whole),
    "objective": _objective,
    "max_params": _optional(_whole),
    "child_time_limit": _optional(_positive),
    "max_consecutive_failures": _whole,
    "executor": _one_of(EXECUTORS),
    "address": _optional(
        _must(lambda v: v in ("auto", "local") or ":" in v, "auto, local, ray://HOST:PORT or HOST:PORT")
    ),
    "cpus_per_child": _positive,
    "gpus_per_child": _must(_finite_number, ">= 0"),
    "gpus": _optional(lambda name, value: check_gpus_setting(value)),
    "mixed_precision": _must(lambda v: isinstance(v, bool), "true or false"),
    "children_per_worker": _whole,
    "reevaluate_repeats": _must(lambda v: isinstance(v, bool), "true or false"),
    "child_logs": _must(lambda v: isinstance(v, bool), "true or false"),
    "replay_top": _must(lambda v: not v < 0, ">= 0"),
    "replay_epochs": _whole,
    "replay_schedule": _one_of(SCHEDULES),
}
"""The rule of every field that has one, in field order (the first bad field is the one reported);
dataset, data_dir, val/test fractions and the rest are checked by :meth:`SearchConfig.data_spec`
or need no check."""


FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in fields(SearchConfig)}


def check_keys(values: Mapping[str, Any]) -> None:
    """Reject a key that is no SearchConfig field, with a suggestion."""
    for key in values:
        if key not in FIELD_TYPES:
            raise ConfigError(
                f"unknown setting {key!r} in [search]"
                + did_you_mean(key, FIELD_TYPES)
                + "; run `rlnas search --help` for the list"
            )


def make_config(values: Mapping[str, Any]) -> SearchConfig:
    """Build a SearchConfig from a mapping, rejecting unknown keys with a suggestion."""
    check_keys(values)
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
