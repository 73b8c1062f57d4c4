"""Tests for rlnas.policy.controller: sampling, log-probabilities, seeding and checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlnas.errors import RunError
from rlnas.policy.controller import Controller, Sample
from rlnas.space import default_space

VOCAB = default_space().vocab_sizes  # (3, 16, 16, 16, 2, 2, 7)
SMALL = {"units": 8, "layers": 1}  # fast, for tests that do not depend on the network's size


def small(vocab=VOCAB, **kw) -> Controller:
    return Controller(vocab, **(SMALL | kw))


def entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p)).sum())


def weights(c: Controller) -> list[np.ndarray]:
    return [v.numpy().copy() for v in c.trainable_variables]


def assert_same_sample(a: Sample, b: Sample) -> None:
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.log_probs, b.log_probs)
    np.testing.assert_array_equal(a.entropies, b.entropies)


# -- sampling --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 8, 33])
def test_sample_shapes_and_ranges(n: int) -> None:
    c = Controller(VOCAB, seed=3)
    s = c.sample(n)
    assert isinstance(s, Sample)
    for a in (s.tokens, s.log_probs, s.entropies):
        assert a.shape == (n, len(VOCAB))
    assert np.issubdtype(s.tokens.dtype, np.integer)
    for i, v in enumerate(VOCAB):
        assert s.tokens[:, i].min() >= 0
        assert s.tokens[:, i].max() < v
        assert np.all(s.entropies[:, i] >= 0)
        assert np.all(s.entropies[:, i] <= np.log(v) + 1e-6)
    assert np.all(s.log_probs <= 0)
    assert np.all(np.isfinite(s.log_probs))


def test_every_sampled_token_is_valid_for_the_space() -> None:
    space = default_space()
    s = small(seed=4).sample(200)
    for tokens in s.tokens:
        space.decode(tokens)  # raises on an out-of-range active token


def test_a_fresh_controller_is_close_to_uniform() -> None:
    # init_range 0.08 keeps the initial logits small: every decision starts near maximum entropy.
    s = Controller(VOCAB, seed=0).sample(16)
    np.testing.assert_allclose(s.entropies, np.broadcast_to(np.log(VOCAB), s.entropies.shape), rtol=0.02)


def test_same_seed_gives_the_same_sequence_of_samples() -> None:
    a, b = small(seed=11), small(seed=11)
    for n in (5, 1, 12):
        assert_same_sample(a.sample(n), b.sample(n))
    for va, vb in zip(a.trainable_variables, b.trainable_variables, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_successive_samples_differ() -> None:
    c = small(seed=11)
    assert not np.array_equal(c.sample(20).tokens, c.sample(20).tokens)


def test_different_seeds_give_different_samples_and_weights() -> None:
    a, b = small(seed=1), small(seed=2)
    assert not np.array_equal(a.sample(20).tokens, b.sample(20).tokens)
    assert any(
        not np.array_equal(va.numpy(), vb.numpy())
        for va, vb in zip(a.trainable_variables, b.trainable_variables, strict=True)
    )


def test_sampling_is_not_argmax() -> None:
    c = Controller((3, 2), seed=5)
    tokens = c.sample(500).tokens
    counts = np.bincount(tokens[:, 0], minlength=3)
    assert np.all(counts > 0), counts
    # The first decision does not depend on earlier tokens: frequencies follow its softmax.
    np.testing.assert_allclose(counts / 500, c.probabilities(0, np.array([])), atol=0.07)
    assert set(np.unique(tokens[:, 1])) == {0, 1}


def test_sampling_follows_a_peaked_policy() -> None:
    # With large initial weights the policy is far from uniform; samples still follow it, not argmax.
    c = Controller((4,), seed=2, init_range=1.0, units=8, layers=1)
    p = c.probabilities(0, np.array([]))
    assert p.max() > 1.8 * p.min(), p
    counts = np.bincount(c.sample(2000).tokens[:, 0], minlength=4)
    np.testing.assert_allclose(counts / 2000, p, atol=0.04)
    assert (counts > 0).sum() >= 3


def test_factorized_controller_samples_each_decision_independently() -> None:
    c = Controller(VOCAB, kind="factorized", seed=3)
    assert [tuple(v.shape) for v in c.trainable_variables] == [(1, v) for v in VOCAB]  # logits, no LSTM
    s = c.sample(64)
    assert s.tokens.shape == (64, len(VOCAB)) and np.all(s.tokens < np.array(VOCAB))
    np.testing.assert_allclose(s.entropies, np.broadcast_to(np.log(VOCAB), s.entropies.shape), rtol=0.02)
    for i in range(len(VOCAB)):  # decision i's policy ignores the tokens before it
        np.testing.assert_array_equal(
            c.probabilities(i, np.zeros(i, int)), c.probabilities(i, s.tokens[0, :i])
        )
    logp, _ = c.log_prob(s.tokens)
    np.testing.assert_allclose(logp.numpy(), s.log_probs.sum(axis=1), atol=1e-5)
    with pytest.raises(ValueError, match="controller kind must be one of"):
        Controller(VOCAB, kind="gru")


def test_factorized_checkpoint_round_trip_and_reset(tmp_path: Path) -> None:
    a = Controller(VOCAB, kind="factorized", seed=5, init_range=1.0)
    a.save(tmp_path / "c.npz", meta={"step": 1})
    b = Controller(VOCAB, kind="factorized", seed=6, init_range=1.0)
    assert b.restore(tmp_path / "c.npz") == {"step": 1}
    assert_same_sample(a.sample(9), b.sample(9))
    b.reset(5)
    assert b.kind == "factorized"
    assert_same_sample(Controller(VOCAB, kind="factorized", seed=5, init_range=1.0).sample(4), b.sample(4))
    with pytest.raises(RunError, match="cannot read controller checkpoint"):
        small(seed=1).restore(tmp_path / "c.npz")  # an LSTM cannot take a factorized checkpoint


# -- log-probabilities -----------------------------------------------------------------------------
def test_log_prob_equals_the_sampled_log_probs_summed_over_the_mask() -> None:
    space = default_space()
    c = Controller(VOCAB, seed=7)
    s = c.sample(32)
    mask = np.array([space.active_mask(t) for t in s.tokens])
    assert not mask.all() and mask.any()
    logp, ent = c.log_prob(s.tokens, mask)
    assert logp.shape == (32,) and ent.shape == (32,)
    np.testing.assert_allclose(logp.numpy(), (s.log_probs * mask).sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), (s.entropies * mask).sum(axis=1), atol=1e-5)


def test_log_prob_without_mask_sums_every_decision() -> None:
    c = small(seed=7)
    s = c.sample(10)
    logp, ent = c.log_prob(s.tokens)
    np.testing.assert_allclose(logp.numpy(), s.log_probs.sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), s.entropies.sum(axis=1), atol=1e-5)
    all_on = np.ones(s.tokens.shape, bool)
    np.testing.assert_allclose(c.log_prob(s.tokens, all_on)[0].numpy(), logp.numpy(), atol=1e-6)


def test_dropping_decisions_from_the_mask_removes_exactly_their_terms() -> None:
    c = small(seed=8)
    s = c.sample(6)
    full, full_ent = c.log_prob(s.tokens, np.ones(s.tokens.shape, bool))
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random(s.tokens.shape) < 0.5
        logp, ent = c.log_prob(s.tokens, mask)
        dropped = (s.log_probs * ~mask).sum(axis=1)
        np.testing.assert_allclose(full.numpy() - logp.numpy(), dropped, atol=1e-5)
        np.testing.assert_allclose(
            full_ent.numpy() - ent.numpy(), (s.entropies * ~mask).sum(axis=1), atol=1e-5
        )
    assert np.all(c.log_prob(s.tokens, np.zeros(s.tokens.shape, bool))[0].numpy() == 0)


def test_masked_tokens_still_condition_later_decisions() -> None:
    # An inactive token is still fed to the next step, so it changes later decisions' log-probs
    # (which is why callers pass the sampled tokens, not the canonical ones).
    c = Controller((3, 4, 5), seed=2, init_range=0.5, units=8, layers=1)
    a = np.array([[0, 0, 1]])
    b = np.array([[0, 3, 1]])
    mask = np.array([[True, False, True]])
    la, lb = c.log_prob(a, mask)[0].numpy(), c.log_prob(b, mask)[0].numpy()
    assert la != pytest.approx(lb, abs=1e-6)
    # ...but the masked decision's own term is gone: changing only the last, masked token changes nothing.
    last_masked = np.array([[True, True, False]])
    np.testing.assert_allclose(
        c.log_prob(np.array([[1, 2, 0]]), last_masked)[0].numpy(),
        c.log_prob(np.array([[1, 2, 4]]), last_masked)[0].numpy(),
        atol=0,
    )


def test_log_prob_is_differentiable() -> None:
    import tensorflow as tf

    c = small(seed=1)
    s = c.sample(4)
    with tf.GradientTape() as tape:
        logp, _ = c.log_prob(s.tokens)
        total = tf.reduce_sum(logp)
    grads = tape.gradient(total, c.trainable_variables)
    assert all(g is not None for g in grads)
    assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


# -- probabilities ---------------------------------------------------------------------------------
def test_probabilities_sum_to_one_and_match_sampled_log_probs() -> None:
    c = Controller(VOCAB, seed=9)
    s = c.sample(3)
    for k in range(3):
        for i, v in enumerate(VOCAB):
            p = c.probabilities(i, s.tokens[k])
            assert p.shape == (v,)
            assert np.all(p > 0)
            assert p.sum() == pytest.approx(1.0, abs=1e-5)
            assert np.log(p[s.tokens[k, i]]) == pytest.approx(s.log_probs[k, i], abs=1e-5)
            assert entropy(p.astype(np.float64)) == pytest.approx(s.entropies[k, i], abs=1e-4)


def test_probabilities_depend_only_on_the_prefix() -> None:
    c = small(seed=3, init_range=0.5)
    base = c.probabilities(2, np.array([1, 2, 0, 0]))
    np.testing.assert_allclose(c.probabilities(2, np.array([1, 2, 5, 5])), base, atol=1e-7)
    np.testing.assert_allclose(c.probabilities(2, np.array([1, 2])), base, atol=1e-7)
    assert not np.allclose(c.probabilities(2, np.array([1, 3])), base, atol=1e-4)


def test_probabilities_do_not_consume_randomness() -> None:
    a, b = small(seed=6), small(seed=6)
    a.probabilities(3, np.zeros(7, int))
    assert_same_sample(a.sample(5), b.sample(5))


# -- temperature and tanh --------------------------------------------------------------------------
def test_temperature_divides_the_logits() -> None:
    prefix = np.array([2, 5, 1, 0, 1, 0])
    cold = Controller(VOCAB, seed=4, init_range=0.5, temperature=1.0)
    hot = Controller(VOCAB, seed=4, init_range=0.5, temperature=3.0)
    for i in (0, 1, 6):
        p1, p3 = cold.probabilities(i, prefix), hot.probabilities(i, prefix)
        # softmax(z / T) is proportional to softmax(z) ** (1 / T).
        expected = p1.astype(np.float64) ** (1 / 3)
        np.testing.assert_allclose(p3, expected / expected.sum(), rtol=1e-4)
        assert entropy(p3) > entropy(p1)


def test_higher_temperature_gives_higher_sampled_entropy() -> None:
    ents = [
        Controller(VOCAB, seed=4, init_range=0.5, temperature=t).sample(20).entropies.mean()
        for t in (0.5, 1, 4)
    ]
    assert ents[0] < ents[1] < ents[2]


def test_tanh_constant_bounds_the_logits() -> None:
    c_free = Controller((16,), seed=4, init_range=1.0, units=8, layers=1)
    c_tanh = Controller((16,), seed=4, init_range=1.0, units=8, layers=1, tanh_constant=0.5)
    free, bounded = c_free.probabilities(0, np.array([])), c_tanh.probabilities(0, np.array([]))
    assert free.max() / free.min() > np.e
    # logits in [-C, C] bound the ratio of any two probabilities by exp(2C).
    assert bounded.max() / bounded.min() <= np.exp(1.0) + 1e-5
    assert entropy(bounded) > entropy(free)
    s = c_tanh.sample(4)
    np.testing.assert_allclose(np.log(bounded)[s.tokens[:, 0]], s.log_probs[:, 0], atol=1e-5)


def test_tanh_constant_applies_after_temperature() -> None:
    a = Controller((6,), seed=4, init_range=1.0, units=8, layers=1, tanh_constant=2.0, temperature=1.0)
    b = Controller((6,), seed=4, init_range=1.0, units=8, layers=1, tanh_constant=2.0, temperature=50.0)
    free = Controller((6,), seed=4, init_range=1.0, units=8, layers=1)
    # With T large, C * tanh(z / T) ~ C * z / T: close to the free policy at temperature T / C.
    pa, pb, pf = (x.probabilities(0, np.array([])) for x in (a, b, free))
    expected = pf.astype(np.float64) ** (2.0 / 50.0)
    np.testing.assert_allclose(pb, expected / expected.sum(), rtol=1e-3)
    assert entropy(pb) > entropy(pa)


# -- checkpoints -----------------------------------------------------------------------------------
def trained(seed: int) -> Controller:
    """A controller whose weights, Adam slots and RNG have all moved away from their initial state."""
    from rlnas.policy.gradient import Baseline, update

    c = small(seed=seed)
    b = Baseline()
    for _ in range(2):
        s = c.sample(4)
        update(
            c, s.tokens, np.ones(s.tokens.shape, bool), np.arange(4.0), b, entropy_weight=0.0, grad_clip=5.0
        )
    return c


def test_get_state_contents() -> None:
    c = small(seed=1)
    state = c.get_state()
    assert tuple(state["vocab"].tolist()) == VOCAB
    assert "rng" in state
    assert sum(k.startswith("w") for k in state) == len(c.trainable_variables)
    assert sum(k.startswith("o") for k in state) == len(c.optimizer.variables)
    assert state["rng"].dtype == np.uint8


def test_set_state_round_trip_reproduces_sampling_and_training() -> None:
    from rlnas.policy.gradient import Baseline, update

    original = trained(seed=1)
    state = original.get_state()
    copy = small(seed=99)
    copy.set_state(state)
    for a, b in zip(weights(original), weights(copy), strict=True):
        np.testing.assert_array_equal(a, b)
    for _ in range(3):
        assert_same_sample(original.sample(5), copy.sample(5))
    # The Adam slots came along too: the same update moves both to the same weights.
    s = original.sample(4)
    copy.sample(4)
    mask = np.ones(s.tokens.shape, bool)
    for c in (original, copy):
        update(c, s.tokens, mask, np.array([1.0, 0, 0, 0]), Baseline(), entropy_weight=0.0, grad_clip=5.0)
    for a, b in zip(weights(original), weights(copy), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_get_state_is_a_snapshot() -> None:
    c = small(seed=2)
    state = c.get_state()
    first = c.sample(6)
    c.set_state(state)
    assert_same_sample(c.sample(6), first)


def test_save_restore_round_trip(tmp_path: Path) -> None:
    original = trained(seed=3)
    path = tmp_path / "controller.npz"
    original.save(path)
    assert path.exists()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    other = small(seed=5)
    other.restore(path)
    for a, b in zip(weights(original), weights(other), strict=True):
        np.testing.assert_array_equal(a, b)
    for _ in range(3):
        assert_same_sample(original.sample(7), other.sample(7))


def test_save_overwrites_an_earlier_checkpoint(tmp_path: Path) -> None:
    c = small(seed=3)
    path = tmp_path / "controller.npz"
    c.save(path)
    c.sample(10)
    c.save(path)
    expected = c.sample(4)
    restored = small(seed=3)
    restored.restore(path)
    assert_same_sample(restored.sample(4), expected)


def test_restore_with_different_vocabularies_raises(tmp_path: Path) -> None:
    path = tmp_path / "controller.npz"
    small(seed=1).save(path)
    other = small(vocab=(3, 16, 16, 2, 2, 7), seed=1)
    msg = (
        r"^controller checkpoint is for vocabularies \(3, 16, 16, 16, 2, 2, 7\), "
        r"this space has \(3, 16, 16, 2, 2, 7\)$"
    )
    with pytest.raises(RunError, match=msg):
        other.restore(path)
    with pytest.raises(RunError, match=msg):
        other.set_state(small(seed=1).get_state())


def test_restore_missing_or_corrupt_checkpoint(tmp_path: Path) -> None:
    c = small(seed=1)
    missing = tmp_path / "missing.npz"
    with pytest.raises(RunError, match=r"^cannot read controller checkpoint '.*missing\.npz': "):
        c.restore(missing)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not an npz file")
    with pytest.raises(RunError, match=r"^cannot read controller checkpoint '.*corrupt\.npz': "):
        c.restore(corrupt)
    partial = tmp_path / "partial.npz"
    np.savez(partial, vocab=np.array(VOCAB))
    with pytest.raises(RunError, match=r"^cannot read controller checkpoint '.*partial\.npz': "):
        c.restore(partial)


# -- compiled vs eager, watched probabilities, reset -----------------------------------------------
def test_compiled_sampling_matches_eager_sampling() -> None:
    eager, compiled = small(seed=12, compiled=False), small(seed=12)
    assert compiled.compiled and not eager.compiled
    for n in (8, 2, 33, 1):  # a batch cut short by the budget reuses the same trace
        a, b = eager.sample(n), compiled.sample(n)
        np.testing.assert_array_equal(a.tokens, b.tokens)
        assert b.tokens.dtype == np.int64
        np.testing.assert_allclose(a.log_probs, b.log_probs, atol=1e-6)
        np.testing.assert_allclose(a.entropies, b.entropies, atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_sampling_uses_one_uniform_per_decision_and_row(compiled: bool) -> None:
    # The generator advances exactly as n draws per decision, decision after decision, always did:
    # checkpoints of earlier runs resume onto the same stream.
    c = small(seed=13, compiled=compiled)
    reference = np.random.default_rng(13)
    for n in (5, 3):
        c.sample(n)
        for _ in VOCAB:
            reference.random(n)
        assert c.rng.bit_generator.state == reference.bit_generator.state


def test_sampling_inverts_the_cdf_of_each_softmax() -> None:
    # The first decision sees no earlier token: its token is where u * total falls in the CDF.
    c = Controller((5,), seed=14, init_range=1.0, units=8, layers=1)
    u = np.random.default_rng(14).random(50)
    cdf = np.cumsum(c.probabilities(0, np.array([])).astype(np.float64))
    expected = np.minimum((cdf[None] <= (u * cdf[-1])[:, None]).sum(axis=1), 4)
    np.testing.assert_array_equal(c.sample(50).tokens[:, 0], expected)


def test_policy_watches_the_probability_of_chosen_tokens() -> None:
    c = small(seed=15, init_range=0.5)
    s = c.sample(6)
    mask = np.ones(s.tokens.shape, bool)
    mask[:, 5] = False  # watched probabilities do not depend on the mask
    watch = [(4, 1), (0, 2), (5, 0)]
    out = c.policy(s.tokens, mask, watch=watch)
    logp, ent = c.log_prob(s.tokens, mask)
    np.testing.assert_array_equal(out.log_prob.numpy(), logp.numpy())
    np.testing.assert_array_equal(out.entropy.numpy(), ent.numpy())
    assert out.watched.shape == (6, 3)
    for k in range(6):
        for j, (d, t) in enumerate(watch):
            assert float(out.watched[k, j]) == pytest.approx(c.probabilities(d, s.tokens[k])[t], abs=1e-6)
    assert c.policy(s.tokens).watched.shape == (6, 0)


def test_policy_rejects_a_watch_outside_the_vocabularies() -> None:
    c = small(vocab=(3, 2), seed=1)
    with pytest.raises(
        ValueError, match=r"watched \(decision, token\) \(1, 2\) is outside vocabularies \(3, 2\)"
    ):
        c.policy(np.zeros((1, 2), int), watch=[(1, 2)])
    with pytest.raises(ValueError, match=r"watched \(decision, token\) \(2, 0\) is outside"):
        c.policy(np.zeros((1, 2), int), watch=[(2, 0)])


@pytest.mark.slow  # two traced controllers
def test_reset_makes_the_controller_a_fresh_one_of_that_seed() -> None:
    used = trained(seed=16)
    used.reset(17)
    fresh = small(seed=17)
    for a, b in zip(weights(used), weights(fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(used.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert_same_sample(used.sample(5), fresh.sample(5))
