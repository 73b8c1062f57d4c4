"""The search's I/O-free bookkeeping: batches in order, the reward cache, repeats, pipeline, resume."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.errors import RunError
from rlnas.models.child import Status
from rlnas.run.trial import Trial
from rlnas.search.schedule import DONE, WAIT, Job, Kind, Schedule, consecutive_failures, mean_reward
from rlnas.strategies.base import Proposal


def _key(tokens: np.ndarray) -> str:
    return "-".join(map(str, tokens.tolist()))


def _proposal(*rows: int) -> Proposal:
    return Proposal(np.array([[r] for r in rows], np.int64), np.log(np.full(len(rows), 0.5)))


def _trial(job: Job, reward: float = 1.0, *, ok: bool = True) -> Trial:
    return Trial(
        index=job.index,
        update=0,
        tokens=tuple(int(t) for t in job.tokens),
        key=_key(job.tokens),
        architecture={},
        reward=reward,
        status=Status.OK if ok else Status.FAILED,
    )


def test_positions_are_handed_out_in_order_and_a_batch_completes_when_all_are_in() -> None:
    book = Schedule(_key, trials=10, m=2, pipeline=1)
    book.push(_proposal(1, 2), stale=False)
    jobs = [book.next_job(), book.next_job()]
    assert [(j.kind, j.index) for j in jobs] == [(Kind.TRAIN, 0), (Kind.TRAIN, 1)]
    assert book.next_job() is WAIT  # the next batch waits for this one's update
    book.accept(jobs[1], _trial(jobs[1], 0.5))
    assert not book.head_complete
    book.accept(jobs[0], _trial(jobs[0], 0.25))
    batch = book.pop_complete()
    tokens, rewards, log_probs, statuses = batch.told()
    assert tokens.tolist() == [[1], [2]] and rewards.tolist() == [0.25, 0.5] and log_probs is None
    assert statuses == [Status.OK, Status.OK]
    assert book.next_index == 2 and book.wants_proposal


def test_the_last_batch_is_cut_at_the_budget() -> None:
    book = Schedule(_key, trials=3, m=2, pipeline=1)
    book.next_index = 2
    batch = book.push(_proposal(1, 2), stale=False)
    assert batch.limit == 1
    job = book.next_job()
    assert book.next_job() is DONE
    book.accept(job, _trial(job))
    assert book.pop_complete().end == 3


def test_a_repeat_reuses_the_cache_and_waits_for_its_first_evaluation() -> None:
    book = Schedule(_key, trials=10, m=3, pipeline=1)
    book.push(_proposal(7, 7, 8), stale=False)
    first = book.next_job()
    third = book.next_job()  # the repeat of 7 waits; 8 trains
    assert third.index == 2 and book.next_job() is WAIT
    book.accept(first, _trial(first, 0.75))
    (waiter,) = book.release(first)
    assert waiter.kind is Kind.CACHED and book.cached(waiter).index == 0
    later = Schedule(_key, trials=10, m=1, pipeline=1)
    later.cache = dict(book.cache)
    later.push(_proposal(7), stale=False)
    assert later.next_job().kind is Kind.CACHED


def test_a_failed_first_evaluation_sends_its_repeats_back_to_train() -> None:
    book = Schedule(_key, trials=10, m=2, pipeline=1)
    book.push(_proposal(7, 7), stale=False)
    first = book.next_job()
    assert book.next_job() is WAIT
    book.accept(first, _trial(first, -1.0, ok=False))
    assert book.release(first) == []
    again = book.next_job()
    assert again.kind is Kind.TRAIN and again.index == 1


def test_without_reuse_every_repeat_trains() -> None:
    book = Schedule(_key, trials=10, m=2, pipeline=1, reuse=False)
    book.push(_proposal(7, 7), stale=False)
    assert [book.next_job().kind, book.next_job().kind] == [Kind.TRAIN, Kind.TRAIN]


def test_pipeline_two_hands_out_the_next_batch_before_the_first_is_told() -> None:
    book = Schedule(_key, trials=10, m=1, pipeline=2)
    book.push(_proposal(1), stale=True)
    assert book.wants_proposal
    book.push(_proposal(2), stale=True)
    a, b = book.next_job(), book.next_job()
    assert (a.index, b.index) == (0, 1)
    book.accept(b, _trial(b))
    assert not book.head_complete  # batches are told in order
    book.accept(a, _trial(a))
    assert book.pop_complete().start == 0 and book.pop_complete().start == 1


def test_resume_reuses_journal_trials_past_the_checkpoint_and_checks_them() -> None:
    book = Schedule(_key, trials=10, m=2, pipeline=1)
    done = Trial(index=0, update=0, tokens=(5,), key="5", architecture={}, reward=1.0, status=Status.OK)
    after = Trial(index=2, update=1, tokens=(6,), key="6", architecture={}, reward=0.5, status=Status.OK)
    book.restore([done, after], next_index=2)
    assert book.trials == [done] and "5" in book.cache
    book.push(_proposal(6, 9), stale=False)
    job = book.next_job()
    assert job.kind is Kind.RESUMED and book.resumed(job) is after
    wrong = Schedule(_key, trials=10, m=1, pipeline=1)
    wrong.restore([after], next_index=2)
    wrong.push(_proposal(4), stale=False)
    with pytest.raises(RunError, match="resume diverged at trial 2"):
        wrong.resumed(wrong.next_job())
    with pytest.raises(RunError, match="repeats a trial index"):
        Schedule.check_journal([done, done], "trials.jsonl")


def test_mean_reward_and_failure_streaks() -> None:
    evals = [
        Trial(index=0, update=0, tokens=(1,), key="1", architecture={}, reward=0.5, status=Status.OK),
        Trial(0, 0, (1,), "1", {}, 0.6, Status.OK, evaluation_reward=0.7),
    ]
    assert mean_reward(evals, 0.3) == pytest.approx((0.5 + 0.7 + 0.3) / 3)
    failed = Trial(0, 0, (1,), "1", {}, -1.0, Status.FAILED)
    assert consecutive_failures([evals[0], failed, failed], 2)
    assert not consecutive_failures([failed, evals[0]], 2) and not consecutive_failures([failed], 2)
