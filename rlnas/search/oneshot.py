"""The one-shot search loop (ENAS, DARTS), readable top to bottom: epochs of minibatches, one strategy
step each, then the best architectures under the shared weights, journaled for the usual replay.

    for each epoch (its own shuffle of the train split, seeded by the run and the epoch):
        for each training minibatch (and a validation minibatch beside it):
            strategy.step      shared weights: SGD through a path; the architecture's step
            TensorBoard        supernet/*, controller/* against one global step (minibatches so far)
        checkpoint             supernet/ in the run (weights, optimizer, controller, generators)
        TensorBoard            policy/* charts, sampled with a generator of their own
    strategy.candidates(k)     the best distinct architectures by shared-weight validation accuracy
    journal                    one Trial per candidate, reward = that accuracy, flagged shared_weights

The budget is the strategy's epochs (``enas_epochs``, ``darts_epochs``) or ``max_minutes``, whichever
ends first; either way the candidates are journaled. ``should_stop`` (the first Ctrl-C) checkpoints
at the current minibatch and stops without candidates, and ``resume`` continues exactly there: the
shuffles are functions of (seed, epoch), and every generator is in the checkpoint. The children are
never trained here: replay (:mod:`rlnas.search.replay`) retrains the journaled candidates from
scratch and scores them once on test; the search itself never sees the test split.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlnas import data
from rlnas.config import SearchConfig
from rlnas.errors import ConfigError, DataError, RlnasError
from rlnas.models import get_model
from rlnas.models.child import ChildResult, Status
from rlnas.run.monitor import Monitor
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, best, build_trial
from rlnas.search.loop import POLICY_SAMPLES, SearchResult
from rlnas.settings import ONESHOT
from rlnas.space import SearchSpace
from rlnas.strategies import make_oneshot
from rlnas.strategies.oneshot import Candidate, OneShotStrategy

CHECKPOINT_DIR = "supernet"
"""The run's one-shot checkpoint: ``<run>/supernet/`` (:mod:`rlnas.run.snapshots`)."""
EPOCHS = {"enas": "enas_epochs", "darts": "darts_epochs"}
"""The setting that holds each one-shot strategy's budget in epochs."""
TOP_K = {"enas": "enas_top_k"}
"""The setting that says how many candidates a strategy journals (otherwise ``replay_top``)."""
SHARED_FLAG = "shared_weights"
"""A journaled candidate's metric, True: its val_accuracy was measured with the supernet's shared
weights, not by a child trained on its own (``rlnas show`` labels the column so)."""
IGNORED = (
    "trials",
    "workers",
    "archs_per_update",
    "pipeline",
    "epochs",
    "early_stopping",
    "failed_reward",
    "max_params",
    "child_time_limit",
    "max_consecutive_failures",
    "children_per_worker",
    "reevaluate_repeats",
    "child_logs",
    "mixed_precision",
    "gpus",
    "cpus_per_child",
    "gpus_per_child",
    "address",
)
"""Settings of a search that trains children one by one; a one-shot search has none to apply them to."""


def check_oneshot(config: SearchConfig, space: SearchSpace, dataset: Any) -> None:
    """What a one-shot search refuses, each in one line, before a run directory is made: an objective
    other than validation accuracy, data that is not classes in arrays, a space the strategy's
    supernet cannot cover, Ray. Settings that do not apply are named on stderr, once.

    Raises:
        ConfigError, DataError: as above.
    """
    name = config.strategy
    if config.objective != "val_accuracy":
        raise ConfigError(
            f"{name} scores architectures by validation accuracy with shared weights; "
            f"objective {config.objective!r} is not supported, drop --objective"
        )
    if not isinstance(dataset, data.Dataset) or dataset.raw_input.__class__.__name__ == "TableInput":
        raise DataError(
            f"{name} trains its supernet on arrays in memory (a .npz, MNIST-format files, a folder of "
            "images); a .csv table or a saved tf.data dataset is not supported"
        )
    if dataset.task != "classification":
        raise DataError(f"{name} needs class labels; the targets of {dataset.name!r} are floats (regression)")
    if config.executor != "local":
        raise ConfigError(
            f"{name} trains one supernet in this process; --executor {config.executor} does not apply"
        )
    _check_space(name, space, dataset, config.batch_size)
    defaults = SearchConfig()
    ignored = [k for k in IGNORED if getattr(config, k) != getattr(defaults, k)]
    if ignored:
        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        print(f"rlnas: note: {name} trains no children one by one; ignoring {flags}", file=sys.stderr)


def _check_space(name: str, space: SearchSpace, dataset: data.Dataset, batch_size: int) -> None:
    """DARTS's check of per-edge operations; for ENAS the supernets' own: the space, then the memory
    estimate of its widest path at ``batch_size`` (the error names --batch-size)."""
    from rlnas.policy.supernet import check_memory, check_supported
    from rlnas.settings.darts import check_darts_space

    if name == "darts":
        check_darts_space(space)
        return
    check_supported(space)
    check_memory(space, dataset.input_shape, dataset.num_classes, batch_size)


def load_arrays(config: SearchConfig) -> data.Dataset:
    """The run's splits as arrays (what :func:`check_oneshot` accepted)."""
    ds = data.load(config.data_spec())
    if not isinstance(ds, data.Dataset):
        raise DataError(
            f"{config.strategy} needs the data as arrays; a saved tf.data dataset is not supported"
        )
    return ds


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full minibatches per epoch (a remainder is left out, a different one each epoch shuffled), or
    one minibatch of everything when the split is smaller than a minibatch."""
    return max(n_train // batch_size, 1)


@dataclass
class Position:
    """Where the search is: ``step`` minibatches into ``epoch``; ``global_step`` minibatches in all."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0


def run_oneshot(
    config: SearchConfig,
    space: SearchSpace,
    store: RunStore,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_trial: Callable[[Trial], None] | None = None,
    resume: bool = False,
    strategy: OneShotStrategy | None = None,
    dataset: data.Dataset | None = None,
) -> SearchResult:
    """Run the one-shot search into ``store``; returns the journaled candidates and the best of them.

    Args:
        should_stop: asked before each minibatch; True checkpoints there and stops (stopped_by
            "interrupted"), so that ``resume`` continues exactly there.
        on_trial: called with each journaled candidate.
        resume: continue from the run's checkpoint (``supernet/``); candidates already journaled are
            not journaled again.
        strategy, dataset: made from ``config`` when None (tests pass their own).

    Raises:
        ConfigError, DataError: see :func:`check_oneshot`.
    """
    if config.strategy not in ONESHOT:
        raise ConfigError(f"{config.strategy!r} is not a one-shot strategy ({', '.join(ONESHOT)})")
    ds = dataset if dataset is not None else load_arrays(config)
    steps = steps_per_epoch(len(ds.x_train), config.batch_size)
    if strategy is None:
        strategy = make_oneshot(config, space, ds.input_shape, ds.num_classes, steps_per_epoch=steps)
    loop = _OneShot(config, space, store, strategy, ds, steps)
    try:
        return loop.run(resume, should_stop, on_trial)
    finally:
        loop.monitor.close()


class _OneShot:
    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        store: RunStore,
        strategy: OneShotStrategy,
        ds: data.Dataset,
        steps: int,
    ) -> None:
        self.config, self.space, self.store, self.strategy, self.ds = config, space, store, strategy, ds
        self.steps, self.epochs = steps, int(config.setting(EPOCHS[config.strategy]))
        top = TOP_K.get(config.strategy)
        self.top_k = int(config.setting(top)) if top else max(config.replay_top, 1)
        self.checkpoint_dir = store.path / CHECKPOINT_DIR
        self.monitor = Monitor(store.tb_dir)
        self.start = time.monotonic()

    def run(
        self, resume: bool, should_stop: Callable[[], bool], on_trial: Callable[[Trial], None] | None
    ) -> SearchResult:
        """Epochs of minibatches until the budget ends; then the candidates, journaled."""
        at = self._restore() if resume else self._begin()
        deadline = self.start + self.config.max_minutes * 60 if self.config.max_minutes else None
        stopped_by = "epochs"
        while at.epoch < self.epochs and stopped_by == "epochs":
            train, val = self._shuffles(at.epoch)
            while at.step < self.steps:
                if should_stop():
                    self._checkpoint(at)
                    return self._result(self.store.trials(), "interrupted")
                if deadline is not None and time.monotonic() >= deadline:
                    stopped_by = "time"
                    break
                scalars = self.strategy.step(*self._minibatches(train, val, at.step))
                at.step, at.global_step = at.step + 1, at.global_step + 1
                self.monitor.scalars(
                    at.global_step, scalars | {"charts/epoch": at.epoch + at.step / self.steps}
                )
            if stopped_by == "epochs":
                at = Position(at.epoch + 1, 0, at.global_step)
            self._checkpoint(at)
            self._log_policy(at.global_step)
        return self._result(self._journal(at, on_trial), stopped_by)

    # -- data ------------------------------------------------------------------------------------
    def _shuffles(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's order of the train and the validation rows: a function of (seed, epoch) only,
        so a resumed epoch draws the very same minibatches."""
        rng = np.random.default_rng([self.config.seed, epoch])
        return rng.permutation(len(self.ds.x_train)), rng.permutation(len(self.ds.x_val))

    def _minibatches(self, train: np.ndarray, val: np.ndarray, step: int) -> tuple[np.ndarray, ...]:
        """Training minibatch ``step`` of the epoch, and the validation minibatch beside it (the
        validation rows in the epoch's order, wrapping around)."""
        b = self.config.batch_size
        rows = train[step * b : (step + 1) * b]
        v = val[np.arange(step * b, step * b + min(b, len(val))) % len(val)]
        ds = self.ds
        return ds.x_train[rows], ds.y_train[rows], ds.x_val[v], ds.y_val[v]

    # -- checkpoints and monitoring ------------------------------------------------------------
    def _begin(self) -> Position:
        self.monitor.text("config", f"```\n{self.config.to_text()}\n```")
        self.monitor.hparams_config(self.space, self.config.objective)
        self._log_policy(0)
        return Position()

    def _state(self, at: Position, *, finished: bool = False) -> dict[str, Any]:
        return {
            "strategy": self.config.strategy,
            "epoch": at.epoch,
            "step": at.step,
            "global_step": at.global_step,
            "elapsed": time.monotonic() - self.start,
            "finished": finished,
        }

    def _checkpoint(self, at: Position) -> None:
        """The strategy (supernet, architecture distribution, generators) at ``at``, then state.json."""
        state = self._state(at)
        self.strategy.save(self.checkpoint_dir, meta=state)
        self.store.write_json("state.json", state)

    def _restore(self) -> Position:
        self.store.repair_journal()
        if not (self.checkpoint_dir / "latest").exists():  # interrupted before its first checkpoint
            return self._begin()
        meta = self.strategy.restore(self.checkpoint_dir)
        self.start -= float(meta.get("elapsed", 0.0))
        return Position(int(meta["epoch"]), int(meta["step"]), int(meta["global_step"]))

    def _log_policy(self, step: int) -> None:
        """The policy's marginals from samples of a generator of their own (the search's must not move)."""
        probe = self.strategy.probe(POLICY_SAMPLES, np.random.default_rng([self.config.seed, step, 7]))
        if probe is not None:
            self.monitor.policy(step, self.space, probe)

    # -- the candidates ------------------------------------------------------------------------
    def _journal(self, at: Position, on_trial: Callable[[Trial], None] | None) -> list[Trial]:
        """The candidates as trials, appended to the journal (those a resumed run journaled before, by
        their index, are kept as they are); then state.json says the search is finished."""
        seconds = time.monotonic()
        found = self.strategy.candidates(self.top_k, self.ds.x_val, self.ds.y_val)
        each = (time.monotonic() - seconds) / max(len(found), 1)
        done = {t.index: t for t in self.store.trials()}
        trials = []
        for index, c in enumerate(found):
            trial = done.get(index) or self._trial(index, c, at, each)
            if index not in done:
                self.store.append_trial(trial)
                self.monitor.child(trial)
                if on_trial is not None:
                    on_trial(trial)
            trials.append(trial)
        self.monitor.leaderboard(at.global_step, trials, self.config.objective)
        self.store.write_json("state.json", self._state(at, finished=True))
        return trials

    def _trial(self, index: int, c: Candidate, at: Position, seconds: float) -> Trial:
        arch = self.space.decode(c.tokens)
        child = ChildResult(
            Status.OK,
            val_accuracy=c.shared_accuracy,
            params=_params(self.space, arch, self.ds.input_shape, self.ds.num_classes),
            eval_seconds=seconds,
            child_seconds=seconds,
            metrics={SHARED_FLAG: True},
        )
        return build_trial(
            index=index,
            update=at.global_step,
            tokens=c.tokens,
            key=self.space.key(c.tokens),
            architecture=arch,
            reward=c.shared_accuracy,
            log_prob=None,
            child=child,
            seed=self.config.seed,
            elapsed=time.monotonic() - self.start,
        )

    def _result(self, trials: list[Trial], stopped_by: str) -> SearchResult:
        return SearchResult(
            trials, best(trials, self.config.objective), time.monotonic() - self.start, stopped_by
        )


def _params(space: SearchSpace, arch: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> int:
    """The stand-alone child's parameter count (what every view shows), from its Keras build."""
    return int(get_model(space.model).build(arch, tuple(input_shape), num_classes).count_params())


def is_finished(store: RunStore) -> bool:
    """Whether a one-shot run journaled its candidates (a resume then has nothing to do)."""
    try:
        return bool(store.read_json("state.json").get("finished"))
    except RlnasError:  # no state yet: interrupted before its first checkpoint
        return False
