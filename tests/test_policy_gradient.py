"""Tests for rlnas.policy.gradient: the REINFORCE loss and baseline by hand, one update, a learnt target."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from rlnas.config import SearchConfig, make_config
from rlnas.policy.controller import Controller
from rlnas.policy.gradient import Baseline, UpdateStats, prepare, reinforce_loss, update
from rlnas.space import SearchSpace, default_space
from rlnas.strategies.reinforce import make_controller

SMALL = {"units": 8, "layers": 1}


def weights(c: Controller) -> list[np.ndarray]:
    return [v.numpy().copy() for v in c.trainable_variables]


def seq_log_prob(c: Controller, tokens: np.ndarray) -> float:
    return float(c.log_prob(np.asarray(tokens)[None])[0][0])


# -- the loss --------------------------------------------------------------------------------------
def test_reinforce_loss_by_hand() -> None:
    logp = tf.constant([-1.0, -2.0, -0.5])
    ent = tf.constant([0.5, 1.5, 1.0])
    adv = tf.constant([1.0, -1.0, 2.0])
    # -mean(1*-1, -1*-2, 2*-0.5) = -mean(-1, 2, -1) = 0;  - 0.1 * mean(0.5, 1.5, 1.0) = -0.1
    assert float(reinforce_loss(logp, ent, adv, 0.1)) == pytest.approx(0.0 - 0.1)
    assert float(reinforce_loss(logp, ent, adv, 0.0)) == pytest.approx(0.0)
    # A positive advantage on a likely sequence: the loss is positive and shrinks as log p grows.
    one = reinforce_loss(tf.constant([-3.0]), tf.constant([0.0]), tf.constant([0.5]), 0.0)
    assert float(one) == pytest.approx(1.5)
    better = reinforce_loss(tf.constant([-1.0]), tf.constant([0.0]), tf.constant([0.5]), 0.0)
    assert float(better) == pytest.approx(0.5)


def test_reinforce_loss_gradients_by_hand() -> None:
    logp = tf.Variable([-1.0, -2.0, -0.5, -4.0])
    ent = tf.Variable([0.5, 1.5, 1.0, 2.0])
    adv = tf.Variable([1.0, -1.0, 2.0, 0.0])
    with tf.GradientTape() as tape:
        loss = reinforce_loss(logp, ent, adv, 0.2)
    g_logp, g_ent, g_adv = tape.gradient(loss, [logp, ent, adv])
    # Descending the loss raises log p where the advantage is positive and lowers it where negative.
    np.testing.assert_allclose(g_logp.numpy(), [-0.25, 0.25, -0.5, 0.0])
    np.testing.assert_allclose(g_ent.numpy(), [-0.05] * 4)
    assert g_adv is None  # the advantage is a constant of the surrogate


def test_reinforce_loss_casts_float64_advantages() -> None:
    loss = reinforce_loss(tf.constant([-2.0]), tf.constant([1.0]), np.array([0.25]), 0.5)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(0.5 - 0.5)


# -- the baseline ----------------------------------------------------------------------------------
def test_baseline_first_batch_uses_its_mean() -> None:
    b = Baseline(decay=0.9)
    assert b.value is None
    np.testing.assert_allclose(b.advantages(np.array([0.2, 0.4, 0.9])), [-0.3, -0.1, 0.4])
    assert b.value is None  # advantages() does not change the baseline
    b.update(np.array([0.2, 0.4, 0.9]))
    assert b.value == pytest.approx(0.5)


def test_baseline_then_follows_an_exponential_moving_average() -> None:
    b = Baseline(decay=0.9)
    b.update(np.array([0.2, 0.4, 0.9]))
    np.testing.assert_allclose(b.advantages(np.array([1.0, 0.0])), [0.5, -0.5])
    b.update(np.array([1.0, 0.0]))
    # 0.9 * 0.5 + 0.1 * 1.0 = 0.55, then 0.9 * 0.55 + 0.1 * 0.0 = 0.495
    assert b.value == pytest.approx(0.495)
    b.update(np.array([0.7]))
    assert b.value == pytest.approx(0.9 * 0.495 + 0.1 * 0.7)
    np.testing.assert_allclose(b.advantages([0.7]), [0.7 - (0.9 * 0.495 + 0.07)])


def test_baseline_decay_means_the_same_for_any_batch_size() -> None:
    one_batch, single = Baseline(decay=0.8, value=0.0), Baseline(decay=0.8, value=0.0)
    rewards = np.array([1.0, 0.5, 0.25, 1.0])
    one_batch.update(rewards)
    for r in rewards:
        single.update(np.array([r]))
    assert one_batch.value == pytest.approx(single.value)
    assert one_batch.value == pytest.approx(0.2 * (0.8**3 * 1.0 + 0.8**2 * 0.5 + 0.8 * 0.25 + 1.0))


def test_baseline_decay_zero_tracks_the_last_reward() -> None:
    b = Baseline(decay=0.0, value=0.3)
    b.update(np.array([0.1, 0.8]))
    assert b.value == pytest.approx(0.8)


def test_baseline_with_a_resumed_value() -> None:
    b = Baseline(decay=0.95, value=0.6)
    np.testing.assert_allclose(b.advantages(np.array([0.8, 0.4])), [0.2, -0.2])


def test_default_decay_matches_the_config() -> None:
    assert Baseline().decay == SearchConfig().reinforce.baseline_decay


# -- one update ------------------------------------------------------------------------------------
def test_update_changes_weights_and_reports_stats() -> None:
    c = Controller((3, 4, 2), seed=1, **SMALL)
    before = weights(c)
    s = c.sample(4)
    b = Baseline(decay=0.9)
    rewards = np.array([0.1, 0.9, 0.5, 0.3])
    stats = update(c, s.tokens, np.ones(s.tokens.shape, bool), rewards, b, entropy_weight=1e-3, grad_clip=5.0)
    assert isinstance(stats, UpdateStats)
    assert any(not np.array_equal(x, y) for x, y in zip(before, weights(c), strict=True))
    assert stats.baseline == b.value == pytest.approx(0.45)
    assert stats.advantage_mean == pytest.approx(0.0, abs=1e-12)
    assert stats.advantage_abs == pytest.approx(np.mean(np.abs(rewards - 0.45)))
    assert stats.grad_norm > 0
    assert stats.entropy == pytest.approx(s.entropies.sum(axis=1).mean(), abs=1e-5)
    assert np.isfinite(stats.loss)
    assert int(c.optimizer.iterations.numpy()) == 1


def test_update_reports_the_unclipped_gradient_norm() -> None:
    c = Controller((3, 4), seed=2, **SMALL)
    s = c.sample(4)
    mask = np.ones(s.tokens.shape, bool)
    rewards = np.array([1.0, 0.0, 0.0, 0.0])
    with tf.GradientTape() as tape:
        logp, ent = c.log_prob(s.tokens, mask)
        loss = reinforce_loss(logp, ent, rewards - rewards.mean(), 0.0)
    norm = float(tf.linalg.global_norm(tape.gradient(loss, c.trainable_variables)))
    stats = update(c, s.tokens, mask, rewards, Baseline(), entropy_weight=0.0, grad_clip=norm / 10)
    assert stats.grad_norm == pytest.approx(norm, rel=1e-5)
    assert stats.loss == pytest.approx(float(loss), rel=1e-5)


def test_positive_advantage_raises_the_log_prob_of_a_repeated_sequence() -> None:
    c = Controller((3, 16, 2), seed=3, **SMALL, learning_rate=0.02)
    seq = np.array([2, 11, 0])
    tokens = np.tile(seq, (4, 1))
    b = Baseline(decay=0.9, value=0.0)  # rewards of 1 against a baseline of 0: advantage +1
    history = [seq_log_prob(c, seq)]
    for _ in range(5):
        update(c, tokens, np.ones(tokens.shape, bool), np.ones(4), b, entropy_weight=0.0, grad_clip=5.0)
        history.append(seq_log_prob(c, seq))
    assert all(b > a for a, b in itertools.pairwise(history)), history
    assert history[-1] > history[0] + 0.5


def test_the_better_sequence_gains_and_the_worse_one_loses() -> None:
    c = Controller((3, 16, 2), seed=4, **SMALL)
    good, bad = np.array([0, 5, 1]), np.array([1, 9, 0])
    tokens = np.stack([good, bad, good, bad])
    before = seq_log_prob(c, good), seq_log_prob(c, bad)
    update(
        c,
        tokens,
        np.ones(tokens.shape, bool),
        np.array([1.0, 0.0, 1.0, 0.0]),
        Baseline(),
        entropy_weight=0.0,
        grad_clip=5.0,
    )
    assert seq_log_prob(c, good) > before[0]
    assert seq_log_prob(c, bad) < before[1]


def test_equal_rewards_and_no_entropy_bonus_change_nothing() -> None:
    c = Controller((3, 4), seed=5, **SMALL)
    before = weights(c)
    s = c.sample(4)
    stats = update(
        c,
        s.tokens,
        np.ones(s.tokens.shape, bool),
        np.full(4, 0.7),
        Baseline(),
        entropy_weight=0.0,
        grad_clip=5.0,
    )
    assert stats.grad_norm == 0
    for x, y in zip(before, weights(c), strict=True):
        np.testing.assert_array_equal(x, y)


def test_entropy_bonus_raises_entropy() -> None:
    c = Controller((5, 5), seed=6, init_range=1.0, **SMALL)
    s = c.sample(8)
    mask = np.ones(s.tokens.shape, bool)
    start = float(tf.reduce_mean(c.log_prob(s.tokens, mask)[1]))
    b = Baseline()
    for _ in range(5):  # equal rewards: the entropy term is the only signal
        update(c, s.tokens, mask, np.full(8, 0.5), b, entropy_weight=1.0, grad_clip=5.0)
    assert float(tf.reduce_mean(c.log_prob(s.tokens, mask)[1])) > start


def test_masked_decisions_get_no_gradient() -> None:
    c = Controller((3, 4, 6), seed=7, **SMALL)
    head = [v.numpy().copy() for v in c.heads[2].trainable_variables]
    active_head = [v.numpy().copy() for v in c.heads[1].trainable_variables]
    s = c.sample(4)
    mask = np.ones(s.tokens.shape, bool)
    mask[:, 2] = False  # the last decision is inactive everywhere: its head must not move
    update(c, s.tokens, mask, np.array([1.0, 0.0, 0.5, 0.2]), Baseline(), entropy_weight=1e-2, grad_clip=5.0)
    for before, v in zip(head, c.heads[2].trainable_variables, strict=True):
        np.testing.assert_array_equal(before, v.numpy())
    # ...while the heads of active decisions did move.
    assert any(
        not np.array_equal(before, v.numpy())
        for before, v in zip(active_head, c.heads[1].trainable_variables, strict=True)
    )


def test_update_is_reproducible() -> None:
    def run() -> list[np.ndarray]:
        c = Controller((3, 4, 2), seed=8, **SMALL)
        b = Baseline()
        for _ in range(3):
            s = c.sample(4)
            r = s.tokens[:, 0] / 2.0
            update(c, s.tokens, np.ones(s.tokens.shape, bool), r, b, entropy_weight=1e-3, grad_clip=5.0)
        return weights(c)

    for x, y in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(x, y)


# -- the learning test -----------------------------------------------------------------------------
def target_probability(controller: Controller, space: SearchSpace, target: list[int]) -> float:
    """Probability that the controller samples exactly ``target`` (its active decisions)."""
    p = 1.0
    for i, active in enumerate(space.active_mask(target)):
        if active:
            p *= float(controller.probabilities(i, np.array(target))[target[i]])
    return p


def match_rewards(tokens: np.ndarray, masks: np.ndarray, target: list[int]) -> np.ndarray:
    """Fraction of the target's tokens that a sequence matches (a decision it lacks is a miss).

    Counting over the target's decisions, not the sample's, keeps the reward free of a deceptive
    optimum: scored over its own active decisions, a 1-layer net with everything else right (4/5)
    outscores every 3-layer net whose units are still random, and REINFORCE rightly settles there.
    """
    hits = (tokens == np.array(target)) & masks
    return hits.sum(axis=1) / len(target)


def learn(seed: int, samples: int = 400, controller: str = "lstm") -> tuple[float, float, list[float]]:
    """REINFORCE with the library's defaults towards a hidden 3-layer target; returns p0, p1, rewards."""
    cfg = make_config(seed=seed, controller=controller)
    space = default_space()
    # exactly what `rlnas search` builds (traced)
    controller = make_controller(cfg.reinforce, space, seed=cfg.seed, compiled=True)
    rng = np.random.default_rng(1000 + seed)
    target = [int(rng.integers(v)) for v in space.vocab_sizes]
    target[0] = space["num_layers"].index(3)  # every decision active, so every head has to learn
    p0 = target_probability(controller, space, target)
    baseline = Baseline(decay=cfg.reinforce.baseline_decay)
    batch_rewards = []
    for _ in range(samples // cfg.archs_per_update):
        s = controller.sample(cfg.archs_per_update)
        masks = np.array([space.active_mask(t) for t in s.tokens])
        rewards = match_rewards(s.tokens, masks, target)
        batch_rewards.append(float(rewards.mean()))
        update(
            controller,
            s.tokens,
            masks,
            rewards,
            baseline,
            entropy_weight=cfg.reinforce.entropy_weight,
            grad_clip=cfg.reinforce.grad_clip,
        )
    return p0, target_probability(controller, space, target), batch_rewards


def test_match_rewards() -> None:
    space = default_space()
    target = [2, 1, 2, 3, 0, 1, 4]
    tokens = np.array([[2, 1, 2, 3, 0, 1, 4], [0, 1, 9, 9, 1, 1, 4], [1, 0, 2, 3, 1, 0, 0]])
    masks = np.array([space.active_mask(t) for t in tokens])
    np.testing.assert_allclose(match_rewards(tokens, masks, target), [1.0, 3 / 7, 1 / 7])


@pytest.mark.parametrize("controller", ["lstm", "factorized"])
# seeds 0 and 2: slow (100 updates each); seed 1 keeps both controllers in the default suite
@pytest.mark.parametrize(
    "seed", [pytest.param(0, marks=pytest.mark.slow), 1, pytest.param(2, marks=pytest.mark.slow)]
)
def test_controller_learns_a_hidden_target(seed: int, controller: str) -> None:
    p0, p1, rewards = learn(seed, controller=controller)
    # Measured with the defaults (m 4, controller_lr 0.005, baseline decay 0.8, tanh_constant 2.5) on
    # seeds 0..11: 12 of 12 pass (the earlier m 8, lr 0.01, decay 0.95 passed 22 of 24). Without the
    # tanh bound, lr 0.02 passed 4 of 12 (the policy collapses on a wrong units_2 before it is active
    # often enough to learn) and 0.01 passed 10 of 12.
    assert p1 >= 100 * p0, f"target probability {p0:.3g} -> {p1:.3g}"
    assert np.mean(rewards[-5:]) > rewards[0] + 0.2, f"reward {rewards[0]:.3f} -> {np.mean(rewards[-5:]):.3f}"


# -- compiled vs eager -----------------------------------------------------------------------------
def skip_like_space() -> SearchSpace:
    """Two skip decisions, one of them inactive unless depth is 3, between ordinary decisions."""
    from rlnas.space import Decision

    return SearchSpace(
        [
            Decision("depth", (1, 2, 3), "int"),
            Decision("skip_1_0", (False, True), "bool"),
            Decision("skip_2_0", (False, True), "bool", {"depth": (3,)}),
            Decision("act", ("relu", "tanh")),
        ]
    )


def run_updates(compiled: bool, space: SearchSpace, **kw) -> tuple[Controller, list[UpdateStats]]:
    from rlnas.policy.penalties import skip_positions

    c = Controller(space.vocab_sizes, seed=9, compiled=compiled, tanh_constant=2.5, **SMALL)
    b, stats = Baseline(), []
    for n in (8, 2, 5):  # batches cut short by a budget must not change the numbers (nor retrace)
        s = c.sample(n)
        masks = np.array([space.active_mask(t) for t in s.tokens])
        rewards = s.tokens[:, 0] / 3.0
        stats.append(update(c, s.tokens, masks, rewards, b, grad_clip=1.0, skips=skip_positions(space), **kw))
    return c, stats


@pytest.mark.parametrize("skip_weight", [0.0, 0.5])
def test_compiled_update_matches_the_eager_update(skip_weight: float) -> None:
    space = skip_like_space()
    kw = {"entropy_weight": 1e-2, "skip_weight": skip_weight, "skip_target": 0.2}
    (eager, s_eager), (compiled, s_compiled) = run_updates(False, space, **kw), run_updates(True, space, **kw)
    for a, b in zip(s_eager, s_compiled, strict=True):
        for name, x in vars(a).items():
            assert getattr(b, name) == pytest.approx(x, rel=1e-5, abs=1e-7), name
    assert (s_compiled[0].skip_penalty > 0) == (skip_weight > 0)
    for a, b in zip(eager.trainable_variables, compiled.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    for a, b in zip(eager.optimizer.variables, compiled.optimizer.variables, strict=True):  # Adam slots
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-9)
    assert int(compiled.optimizer.iterations.numpy()) == 3
    assert not eager.compiled_steps
    (step,) = compiled.compiled_steps.values()
    assert step.experimental_get_tracing_count() == 1  # batch sizes 8, 2 and 5: one trace


@pytest.mark.parametrize("importance", [False, True])
def test_prepare_warms_the_step_without_changing_the_controller(importance: bool) -> None:
    """prepare runs the compiled step once (the first call is slow): every weight, Adam slot and the
    step counter stay exactly as they were, and the updates after it are those of a fresh controller."""

    def state(c: Controller) -> list[np.ndarray]:
        return weights(c) + [v.numpy().copy() for v in c.optimizer.variables]

    def updates(c: Controller) -> list[np.ndarray]:
        b = Baseline()
        for k in range(3):
            s = c.sample(4)
            old = s.log_probs.sum(axis=1) if importance else None
            update(c, s.tokens, np.ones(s.tokens.shape, bool), s.tokens[:, 0] / (k + 2.0), b,
                   entropy_weight=1e-3, grad_clip=5.0, old_log_probs=old)  # fmt: skip
        return state(c)

    warmed, fresh = Controller((3, 4, 2), seed=8, **SMALL), Controller((3, 4, 2), seed=8, **SMALL)
    before = state(warmed)
    prepare(warmed, importance=importance, skips=[(1, 1)], skip_weight=0.0)
    for x, y in zip(before, state(warmed), strict=True):
        np.testing.assert_array_equal(x, y)
    (step,) = warmed.compiled_steps.values()
    assert step.experimental_get_tracing_count() == 1
    for x, y in zip(updates(warmed), updates(fresh), strict=True):
        np.testing.assert_array_equal(x, y)
    assert step.experimental_get_tracing_count() == 1  # the updates used the warmed trace


# -- the skip penalty ------------------------------------------------------------------------------
def skip_update(skip_weight: float, skips: list | None = None) -> tuple[UpdateStats, list[np.ndarray]]:
    from rlnas.policy.penalties import skip_positions

    space = skip_like_space()
    c = Controller(space.vocab_sizes, seed=10, compiled=False, **SMALL)  # the loss, not the trace
    s = c.sample(6)
    masks = np.array([space.active_mask(t) for t in s.tokens])
    skips = skip_positions(space) if skips is None else skips
    stats = update(
        c,
        s.tokens,
        masks,
        np.linspace(0, 1, 6),
        Baseline(),
        entropy_weight=1e-3,
        grad_clip=5.0,
        skips=skips,
        skip_weight=skip_weight,
        skip_target=0.1,
    )
    return stats, weights(c)


def test_skip_weight_zero_leaves_the_update_unchanged() -> None:
    with_skips, w_skips = skip_update(0.0)
    without, w_without = skip_update(0.0, skips=[])
    assert with_skips == without
    assert with_skips.skip_penalty == 0.0
    for a, b in zip(w_skips, w_without, strict=True):
        np.testing.assert_array_equal(a, b)


def test_skip_penalty_adds_its_weighted_kl_to_the_loss() -> None:
    base, _ = skip_update(0.0)
    penalised, w = skip_update(2.0)
    # A fresh controller says True with probability 0.45..0.55: KL(p || 0.1) in 0.41..0.63 (0.51 at 0.5).
    assert 0.41 < penalised.skip_penalty < 0.63
    assert penalised.loss == pytest.approx(base.loss + 2.0 * penalised.skip_penalty, rel=1e-5)
    assert penalised.grad_norm != pytest.approx(base.grad_norm)
    assert any(not np.array_equal(a, b) for a, b in zip(w, skip_update(0.0)[1], strict=True))


def test_skip_penalty_without_skip_decisions_is_zero() -> None:
    stats, _ = skip_update(2.0, skips=[])
    assert stats.skip_penalty == 0.0
