"""The NAS environment: one architecture decision per step, a trained child's accuracy as the reward."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlnas.data import DataSpec
from rlnas.errors import ConfigError, InvalidActionError
from rlnas.exec.evaluator import Evaluator, LocalEvaluator, as_evaluator
from rlnas.exec.factory import ExecConfig, make_evaluators
from rlnas.models import standard_space
from rlnas.models.child import ChildResult, TrainSpec, check_space
from rlnas.models.objectives import Objective, parse_objective
from rlnas.space import INACTIVE, SearchSpace, default_space
from rlnas.space.toml import space_from_dict


class MaskedDiscrete(spaces.Discrete):
    """``Discrete`` whose plain ``sample()`` draws only actions legal for the env's current decision.

    Decisions have different numbers of values, so the action space is as wide as the widest one;
    an agent that ignores ``info["action_mask"]`` would otherwise pick illegal values. Passing
    ``mask=`` explicitly behaves exactly as in ``Discrete``.
    """

    def __init__(self, n: int, seed: int | None = None) -> None:
        super().__init__(n, seed=seed)
        self.current_mask: np.ndarray = np.ones(n, np.int8)

    def sample(self, mask: np.ndarray | None = None, probability: np.ndarray | None = None) -> np.int64:
        if mask is None and probability is None and self.current_mask.any():
            mask = self.current_mask
        return super().sample(mask=mask, probability=probability)


@dataclass(frozen=True)
class Episode:
    """The end of the last episode, typed: what ``info`` shows as plain values (``metrics`` is
    ``result.to_dict()``), kept for the search loop, which builds its trial from it."""

    tokens: list[int]
    key: str
    architecture: dict[str, Any]
    child_seed: int
    result: ChildResult
    reward: float


class NasEnv(gym.Env):
    """Build a neural network one decision at a time; the reward is its validation accuracy (or objective).

    ## Action space
    ``Discrete(V)``, V the largest number of values of any decision. At each step only the first
    ``size`` actions of the current decision are legal: ``info["action_mask"]`` (int8, shape (V,))
    marks them, ``action_space.sample()`` draws only among them, and an illegal action raises
    :class:`rlnas.errors.InvalidActionError`.

    ## Observation space
    ``MultiDiscrete([D + 1, V + 1])``: ``[decision index, previous token + 1]``, with 0 as the previous
    token on the first step and decision index D once the episode has ended. Decisions that do not
    exist for the choices so far (``units_2`` when ``num_layers`` is 2) are skipped, never asked.

    ## Rewards
    0 on every step but the last. On the last decision the tokens are decoded, a Keras child is
    built, trained on the train split and evaluated on the validation split; the reward is
    ``objective``'s value of its metrics: by default its validation accuracy (see
    :mod:`rlnas.models.objectives`). A child that failed to build or train gets ``failed_reward``.

    ## Episode end
    ``terminated=True`` after the last active decision; never truncated. ``info`` then holds
    ``architecture`` (name -> value), ``key``, ``tokens`` and ``metrics`` (``ChildResult`` fields;
    timings are wall-clock, so the env is registered as nondeterministic). The same, typed (the
    child's :class:`~rlnas.models.child.ChildResult` itself), is :attr:`last`, an :class:`Episode`.

    ## Reset options
    ``options={"log_dir": DIR}`` writes the child's training curves to DIR (TensorBoard).

    ## Arguments
    space: a ``SearchSpace`` or its ``to_dict()`` form (default: the MLP space).
    config: a :class:`rlnas.config.SearchConfig`: children are then trained exactly as ``rlnas search``
        trains them with it (its data splits, :func:`rlnas.models.child.train_spec`, its worker processes
        or Ray), and ``failed_reward`` and ``objective`` default to its own.
    dataset, data_dir, train_fraction: without ``config``, which data the children train on
        (default: bundled mnist_5k), in this process.
    epochs, batch_size, max_params: without ``config``, how each child is trained (default 2, 128, none).
    failed_reward: reward of a child that fails (default 0).
    objective: how a trained child's metrics become its reward: an :class:`rlnas.models.objectives.Objective`
        or its text (``val_accuracy``, ``val_loss:min``, ``accuracy_cubed``, ``mnas:target=100000``).
    evaluator: anything with ``evaluate(arch, seed) -> ChildResult`` and ``close()`` (see
        :class:`rlnas.exec.evaluator.Evaluator`); overrides ``config`` and the data arguments (the
        search passes its worker-process evaluator; tests pass cheap synthetic ones).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any] | None = None,
        *,
        config: EnvConfig | None = None,
        dataset: str | None = None,
        data_dir: str | None = None,
        train_fraction: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        max_params: int | None = None,
        failed_reward: float | None = None,
        evaluator: Evaluator | None = None,
        objective: str | Objective | None = None,
    ) -> None:
        if space is None:
            space = default_space()
        elif not isinstance(space, SearchSpace):
            space = space_from_dict(space, standard_space=standard_space)
        check_space(space)
        self.space = space
        training = {"dataset": dataset, "data_dir": data_dir, "train_fraction": train_fraction}
        training |= {"epochs": epochs, "batch_size": batch_size, "max_params": max_params}
        training = {k: v for k, v in training.items() if v is not None}
        if config is not None and training:
            raise ConfigError(
                f"NasEnv got both config and {', '.join(training)}: set them in the config instead"
            )
        if failed_reward is None:
            failed_reward = config.failed_reward if config is not None else 0.0
        self.failed_reward = failed_reward
        if objective is None:
            objective = config.objective if config is not None else "val_accuracy"
        self.objective = objective if isinstance(objective, Objective) else parse_objective(objective)
        self.evaluator: Evaluator = (
            as_evaluator(evaluator) if evaluator is not None else _default_evaluator(space, config, training)
        )
        self.last: Episode | None = None
        self._width = max(space.vocab_sizes)
        self.action_space = MaskedDiscrete(self._width)
        self.observation_space = spaces.MultiDiscrete([len(space) + 1, self._width + 1])
        self._tokens: list[int] = []
        self._done = True
        self._log_dir: str | None = None

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._tokens, self._done, self._prev = [], False, -1
        self._log_dir = (options or {}).get("log_dir")
        self._skip_inactive()
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise InvalidActionError("the episode has ended; call reset() before step()")
        decision = self.space.decisions[len(self._tokens)]
        a = int(action)
        if not 0 <= a < decision.size:
            raise InvalidActionError(
                f"action {a} is illegal for decision {decision.name!r}: "
                f"legal actions are 0..{decision.size - 1} (see info['action_mask'])"
            )
        self._tokens.append(a)
        self._prev = a
        self._skip_inactive()
        if len(self._tokens) < len(self.space):
            return self._obs(), 0.0, False, False, self._info()
        self._done = True
        return self._obs(), *self._finish()

    # -- helpers ---------------------------------------------------------------------------------
    def _skip_inactive(self) -> None:
        """Append INACTIVE for every upcoming decision that does not exist given the choices so far."""
        while len(self._tokens) < len(self.space):
            padded = self._tokens + [0] * (len(self.space) - len(self._tokens))
            if self.space.active_mask(padded)[len(self._tokens)]:
                return
            self._tokens.append(INACTIVE)

    def _finish(self) -> tuple[float, bool, bool, dict[str, Any]]:
        arch = self.space.decode(self._tokens)
        child_seed = int(self.np_random.integers(2**31 - 1))
        # Only pass log_dir when asked, so that evaluators written without it keep working.
        extra = {"log_dir": str(self._log_dir)} if self._log_dir else {}
        result: ChildResult = self.evaluator.evaluate(arch, child_seed, **extra)
        reward = self.objective.reward(result) if result.ok else self.failed_reward
        key = self.space.key(self._tokens)
        self.last = last = Episode(list(self._tokens), key, arch, child_seed, result, float(reward))
        info = self._info() | {
            "architecture": last.architecture,
            "key": last.key,
            "tokens": list(last.tokens),
            "child_seed": child_seed,
            "metrics": result.reported(),
        }
        return last.reward, True, False, info

    def _obs(self) -> np.ndarray:
        return np.array([len(self._tokens), self._prev + 1], dtype=np.int64)

    def _info(self) -> dict[str, Any]:
        mask = np.zeros(self._width, np.int8)
        if not self._done:
            mask[: self.space.decisions[len(self._tokens)].size] = 1
        self.action_space.current_mask = mask
        return {"action_mask": mask.copy()}

    def close(self) -> None:
        self.evaluator.close()


class EnvConfig(ExecConfig, Protocol):
    """What the env reads of a :class:`rlnas.config.SearchConfig` (a protocol: no import upward)."""

    failed_reward: float
    objective: str


def _default_evaluator(space: SearchSpace, config: EnvConfig | None, training: dict[str, Any]) -> Evaluator:
    """The search's own evaluator for ``config`` (one of its workers: the same splits, the same
    :func:`rlnas.models.child.train_spec`, its time limit and its share of the cores), or without a config
    an in-process one from the data and training arguments (constructing it loads nothing)."""
    if config is None:
        data = {k: training[k] for k in ("dataset", "data_dir", "train_fraction") if k in training}
        data["name"] = data.pop("dataset", "mnist_5k")
        train = {k: training[k] for k in ("epochs", "batch_size", "max_params") if k in training}
        return LocalEvaluator(DataSpec(**data), TrainSpec(**train, model=space.model))
    return make_evaluators(config, space, count=1, start=False)[0]
