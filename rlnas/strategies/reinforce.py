"""The default strategy: the LSTM REINFORCE controller (Zoph & Le 2017) plus a learned reward model.

By default ``ask`` picks each batch from a pool of the controller's samples mixed with mutants and
uniform draws, novel architectures only, by the reward model's optimistic prediction, and ``think``
takes imagined steps on that model (:mod:`rlnas.strategies.dyna`). With
:data:`rlnas.settings.PLAIN_REINFORCE` it is Zoph & Le's REINFORCE alone: ``ask`` samples from the
softmax (never argmax) with the controller's checkpointed generator.

``tell`` is one policy-gradient step on the evaluated rows against the moving-average baseline. Given
the rows' log-probabilities under the policy that proposed them (a pipelined batch, one update
stale), each row is weighted by ``min(importance_clip, pi_now / pi_then)``
(``rlnas.policy.gradient``). The checkpoint is the controller's own ``.npz`` (weights, Adam slots,
sampler state) with the baseline in its meta, under the key ``baseline`` as the search loop wrote it
before strategies existed, so those run directories still resume.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlnas.models.child import Status
from rlnas.policy import gradient as policy_gradient
from rlnas.policy.controller import Controller
from rlnas.policy.penalties import skip_positions
from rlnas.policy.reward_model import RewardModel
from rlnas.settings import ReinforceSettings
from rlnas.space import SearchSpace
from rlnas.strategies import dyna
from rlnas.strategies.base import Proposal, active_masks, check_ask, check_batch

BASELINE_KEY = "baseline"
"""Key of the baseline in the checkpoint's meta; reserved: ``restore`` returns the meta without it."""
HISTORY_KEY = "reinforce_history"
"""Key of the evaluated rows in the meta, written only when a history setting uses them (so a
default run's checkpoint is what it always was); reserved likewise."""


EAGER_ENV = "RLNAS_EAGER_CONTROLLER"
"""Set (to anything but "" or "0"), controllers are built eager: no trace. A trace plus its first run
costs seconds once per controller and saves a quarter of a second per update afterwards, so it pays
off from about 20 updates on (the default search has 24); a tiny search, or a test suite that makes
hundreds of controllers, is faster eager. Both give the same tokens (tests/test_golden.py runs
compiled, the rest of the suite eager)."""


def eager_by_default() -> bool:
    """Whether :data:`EAGER_ENV` asks for eager controllers."""
    return os.environ.get(EAGER_ENV, "") not in ("", "0")


def make_controller(
    settings: ReinforceSettings, space: SearchSpace, *, seed: int = 0, compiled: bool | None = None
) -> Controller:
    """The controller the settings describe, for ``space``'s vocabularies (``compiled=False``: eager;
    None: compiled unless :data:`EAGER_ENV` is set)."""
    if compiled is None:
        compiled = not eager_by_default()
    return Controller(
        space.vocab_sizes,
        kind=settings.controller,
        units=settings.lstm_units,
        layers=settings.lstm_layers,
        init_range=settings.init_range,
        learning_rate=settings.policy_lr,
        temperature=settings.temperature,
        tanh_constant=settings.tanh_constant,
        seed=seed,
        compiled=compiled,
    )


class ReinforceStrategy:
    """The RNN controller trained by REINFORCE with a moving-average baseline, plus the reward model.

    Args:
        space: the search space (for the active masks; the controller sees only vocabulary sizes).
        settings: the controller, its update and the reward model around it (``importance_clip`` 0:
            stale rows unweighted; ``skip_weight``/``skip_target`` for a space with ``skip_<i>_<j>``
            decisions).
        seed: seeds the controller's weights and sampler and the reward model.
        pipeline: batches the search keeps in flight; above 1 the update is traced with importance
            weights (unless ``importance_clip`` is 0).
    """

    name = "reinforce"

    def __init__(
        self, space: SearchSpace, settings: ReinforceSettings, *, seed: int = 0, pipeline: int = 1
    ) -> None:
        self.space = space
        self.settings = settings
        self.seed = seed
        self.pipeline = pipeline
        self.controller = make_controller(settings, space, seed=seed)
        self.baseline = policy_gradient.Baseline(decay=settings.baseline_decay)
        self.skips = skip_positions(space) if settings.skip_weight > 0 else []
        self.history = dyna.History()
        self.model = self._make_model()
        self._imagine_pending = False
        # The update is traced now, in this thread, not inside the first update while every worker
        # waits: the search starts its workers first, and their start-up (TensorFlow's import, the
        # data) takes longer than the trace. Not on a thread of its own beside the first batch, as it
        # was: TensorFlow segfaulted when the sampler (or an in-process child's fit) was traced
        # on another thread at the same moment (seen in a golden test under CI).
        self._prepare()

    def _prepare(self) -> None:
        policy_gradient.prepare(
            self.controller,
            skips=self.skips,
            skip_weight=self.settings.skip_weight,
            skip_target=self.settings.skip_target,
            importance=self.pipeline > 1 and self.settings.importance_clip > 0,
        )

    def _make_model(self) -> RewardModel | None:
        c = self.settings
        if c.model_steps == 0:
            return None
        return RewardModel(
            self.space, trees=c.model_trees, seed=self.seed, ordinal=c.model_ordinal, linear=c.model_linear
        )

    @property
    def uses_history(self) -> bool:
        """Whether a history setting is on (novel proposals, reward model, risk-seeking, mixing)."""
        return self.settings.uses_history

    def ask(self, n: int) -> Proposal:
        check_ask(n)
        c = self.settings
        if c.novel_only or self.model is not None or c.explore_mix > 0:
            tokens, log_probs = dyna.choose(self.controller, self.space, self.history, n, c, self.model)
            return Proposal(tokens, log_probs)
        sample = self.controller.sample(n)
        mask = active_masks(self.space, sample.tokens)
        return Proposal(sample.tokens, (sample.log_probs * mask).sum(axis=1))

    def tell(
        self,
        tokens: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray | None = None,
        statuses: Sequence[Status] | None = None,
    ) -> dict[str, float]:
        """One update on the evaluated rows (a failed row teaches by its failed reward: ``statuses``
        are only checked).

        Args:
            log_probs: the rows' log-probabilities under the policy that proposed them; None for rows
                this controller just proposed (on-policy, weight 1 exactly).
        """
        tokens, rewards = check_batch(self.space, tokens, rewards, log_probs, statuses)
        imagined = self.think()  # the last batch's imagined steps, if the loop gave no time for them
        if self.settings.importance_clip == 0:
            log_probs = None  # weights off: the plain (stale) gradient
        if not len(tokens):
            return {}
        stats = self._update(tokens, rewards, log_probs)
        scalars = self._scalars(stats, stale=log_probs is not None)
        if self.uses_history:
            self.history.add(self.space, tokens, rewards)
        if self.settings.pqt_k > 0:
            scalars["losses/imitation_entropy"] = dyna.imitate_best(
                self.controller, self.space, self.history, self.settings.pqt_k,
                entropy_weight=self.settings.entropy_weight, grad_clip=self.settings.grad_clip,
            )  # fmt: skip
        if imagined is not None:
            scalars["losses/imagined_entropy"] = imagined
        if self.model is not None:
            self._imagine_pending = dyna.fit(
                self.model, self.space, self.history, min_fit=self.settings.model_min_fit
            )
        return scalars

    def _update(
        self, tokens: np.ndarray, rewards: np.ndarray, log_probs: np.ndarray | None
    ) -> policy_gradient.UpdateStats:
        """The policy-gradient step: against the baseline, or the risk-seeking quantile of the recent
        rewards; importance-weighted when the rows' ``log_probs`` are given."""
        c = self.settings
        advantages = None
        if c.risk_seeking > 0:
            memory = np.r_[self.history.rewards[-c.risk_memory :], rewards]
            advantages = policy_gradient.risk_seeking_advantages(rewards, memory, c.risk_seeking)
        return policy_gradient.update(
            self.controller,
            tokens,
            active_masks(self.space, tokens),
            rewards,
            self.baseline,
            entropy_weight=c.entropy_weight,
            grad_clip=c.grad_clip,
            skips=self.skips,
            skip_weight=c.skip_weight,
            skip_target=c.skip_target,
            old_log_probs=None if log_probs is None else np.asarray(log_probs, np.float64),
            importance_clip=c.importance_clip,
            advantages=advantages,
        )

    def think(self) -> float | None:
        """The reward model's imagined steps on the model fitted at the last ``tell``: work the search
        loop calls right after it starts the next batch's children, so that it runs while they train
        instead of between batches (``tell`` refits the model, which is what ``ask`` needs; these
        steps only shape the policy's later samples). If the loop never calls it, the next ``tell``
        does first, so a benchmark and the search propose the same batches either way. Returns the
        last imagined step's mean entropy, or None when there was nothing to do."""
        if not self._imagine_pending:
            return None
        self._imagine_pending = False
        return self._imagine()

    def _scalars(self, stats: policy_gradient.UpdateStats, *, stale: bool) -> dict[str, float]:
        """The update's TensorBoard scalars; the importance and skip terms only where they are in
        the loss (a stale batch; a space with skip decisions)."""
        scalars = {
            "losses/loss": stats.loss,
            "losses/entropy": stats.entropy,
            "losses/grad_norm": stats.grad_norm,
            "losses/advantage_abs": stats.advantage_abs,
            "charts/baseline": stats.baseline,
        }
        if stale:
            scalars["losses/importance_weight"] = stats.importance_weight
            scalars["losses/importance_clipped"] = stats.importance_clipped
        if self.skips:
            scalars["losses/skip_penalty"] = stats.skip_penalty
        return scalars

    def _imagine(self) -> float:
        c = self.settings
        return dyna.imagine(
            self.controller,
            self.space,
            self.model,  # type: ignore[arg-type]
            steps=c.model_steps,
            batch=c.model_batch,
            bonus=c.model_bonus,
            risk_epsilon=c.risk_seeking,
            entropy_weight=c.entropy_weight,
            grad_clip=c.grad_clip,
        )

    def reset(self, seed: int) -> None:
        """Become the strategy ``seed`` would make (controller, baseline), keeping the controller's traces.

        A fresh controller costs a trace of a second or two, more than a lookup-table run of 25 updates
        spends on everything else; a benchmark of many seeds can reset one strategy instead.
        """
        self.seed = seed
        self.controller.reset(seed)
        self.baseline = policy_gradient.Baseline(decay=self.settings.baseline_decay)
        self.history = dyna.History()
        self.model = self._make_model()
        self._imagine_pending = False

    def save(self, path: Path, meta: dict) -> None:
        meta = {**meta, BASELINE_KEY: self.baseline.value}
        if self.uses_history:
            meta[HISTORY_KEY] = {**self.history.to_meta(), "imagine_pending": self._imagine_pending}
        self.controller.save(path, meta=meta)

    def restore(self, path: Path) -> dict:
        meta = self.controller.restore(path)
        self.baseline.value = meta.pop(BASELINE_KEY, None)
        saved = meta.pop(HISTORY_KEY, None)
        self.history = dyna.History.from_meta(saved)
        self.model = self._make_model()
        fitted = self.model is not None and dyna.fit(
            self.model, self.space, self.history, min_fit=self.settings.model_min_fit
        )  # the same model
        # The loop checkpoints after a tell, before its think: the imagined steps may be still to do.
        self._imagine_pending = fitted and bool((saved or {}).get("imagine_pending", True))
        return meta

    def probe(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.controller.sample(n, rng=rng).tokens
