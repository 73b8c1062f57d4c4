"""The frozen Trial (one journal line, read back as it was written) and the one ranking."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlnas.models.child import ChildResult, Status
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, build_trial, objective_name, objective_value, rank, repeat_of


def _trial(index: int, key: str, acc: float, *, ok: bool = True, reward: float | None = None) -> Trial:
    result = ChildResult(
        Status.OK if ok else Status.FAILED,
        val_accuracy=acc,
        val_loss=1 - acc,
        train_loss=0.1,
        params=10 * index,
    )
    return build_trial(
        index=index,
        update=index // 4,
        tokens=[index, 1],
        key=key,
        architecture={"num_layers": index},
        reward=(acc if reward is None else reward) if ok else -1.0,
        log_prob=-2.5,
        child=result,
        seed=7,
        elapsed=1.5,
    )


def test_a_trial_serializes_to_the_record_the_search_has_always_written() -> None:
    t = _trial(3, "k", 0.5)
    expected_keys = ["index", "update", "tokens", "key", "architecture", "reward", "log_prob"]
    expected_keys += [f.name for f in dataclasses.fields(ChildResult) if f.name != "metrics"] + [
        "seed",
        "elapsed",
    ]
    assert list(t.to_dict()) == expected_keys
    assert t.to_dict()["status"] == "ok" and t.to_dict()["tokens"] == [3, 1]
    assert Trial.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_a_repeat_copies_the_result_and_adds_cached_fields_at_the_end() -> None:
    first = _trial(0, "k", 0.5)
    again = repeat_of(first, index=5, update=1, tokens=[0, 1], log_prob=-1.0, elapsed=9.0)
    record = again.to_dict()
    assert list(record)[-2:] == ["cached", "cached_from"] and record["cached_from"] == 0
    assert again.cached and again.child_seconds == 0.0 and again.reward == first.reward
    assert Trial.from_dict(record) == again


def test_trials_are_frozen_records_read_by_attribute_not_as_dicts() -> None:
    t = _trial(1, "k", 0.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.reward = 1.0  # type: ignore[misc]
    assert t.metrics["val_accuracy"] == 0.25 and not t.cached and t.cached_from is None
    assert t.reported()["params"] == 10 and t.reported()["fit_seconds"] == 0.0
    with pytest.raises(TypeError, match="not subscriptable"):
        t["val_accuracy"]  # type: ignore[index]
    assert not hasattr(t, "get") and not hasattr(t, "keys")
    t.to_dict()["architecture"]["num_layers"] = 99  # a copy: the trial does not change
    assert t.architecture["num_layers"] == 1


def test_status_is_an_enum_that_equals_the_stored_string() -> None:
    assert _trial(0, "a", 0.1, ok=False).status is Status.FAILED
    assert Status.OK == "ok" and not _trial(0, "a", 0.1, ok=False).ok
    assert Trial.from_dict(_trial(0, "a", 0.1).to_dict()).status is Status.OK


def test_a_child_result_carries_the_enum_even_when_given_its_string() -> None:
    assert ChildResult(Status.OK).ok and ChildResult("ok").status is Status.OK  # type: ignore[arg-type]
    assert ChildResult(Status.FAILED, error="boom").status is Status.FAILED
    assert json.dumps(ChildResult(Status.FAILED).to_dict()["status"]) == '"failed"'
    with pytest.raises(ValueError, match="'done' is not a valid Status"):
        ChildResult("done")  # type: ignore[arg-type]


def test_rank_keeps_one_trial_per_architecture_best_first_earliest_on_ties() -> None:
    trials = [_trial(0, "a", 0.5), _trial(1, "b", 0.7), _trial(2, "a", 0.9), _trial(3, "c", 0.7)]
    trials.append(_trial(4, "d", 0.99, ok=False))
    assert [t.index for t in rank(trials)] == [2, 1, 3]
    assert [t.index for t in rank(trials, k=2)] == [2, 1]
    assert [t.index for t in rank(trials, "val_accuracy", 1)] == [2]


def test_rank_follows_the_reward_and_shows_the_objectives_own_value() -> None:
    # val_loss:min: the reward is -val_loss; the display shows val_loss itself
    trials = [_trial(i, str(i), acc, reward=-(1 - acc)) for i, acc in enumerate([0.2, 0.8, 0.5])]
    top = rank(trials, "val_loss:min", 1)[0]
    assert top.index == 1 and objective_name("val_loss:min") == "val_loss"
    assert objective_value(top, "val_loss:min") == pytest.approx(0.2)
    assert objective_name("mnas:target=100") == "mnas:target=100,w=-0.07"
    assert objective_value(top, "mnas:target=100") == top.reward


def test_the_store_writes_and_reads_trials(tmp_path) -> None:
    store = RunStore.create(tmp_path / "run")
    trials = [_trial(1, "b", 0.7), _trial(0, "a", 0.5, ok=False)]
    for t in trials:
        store.append_trial(t)
    lines = (store.path / "trials.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["val_loss"] == 0.5  # written exactly as the dict
    assert store.trials() == sorted(trials, key=lambda t: t.index)


def test_displays_name_and_show_the_objective() -> None:
    from rlnas.run.monitor import batch_scalars, best_tag, leaderboard_markdown

    assert best_tag() == "charts/best_val_accuracy" and best_tag("val_loss:min") == "charts/best_val_loss"
    assert best_tag("mnas:target=100") == "charts/best_mnas"
    trials = [_trial(i, str(i), acc, reward=-(1 - acc)) for i, acc in enumerate([0.2, 0.8, 0.5])]
    board = leaderboard_markdown(trials, "val_loss:min").splitlines()
    assert "val_loss" in board[0] and "0.2000" in board[2] and "val_accuracy" not in board[0]
    scalars = batch_scalars(trials, {}, trials, "val_loss:min")
    assert scalars["charts/best_val_loss"] == pytest.approx(0.2) and "charts/best_val_accuracy" not in scalars


def test_the_store_writes_the_config_and_space_it_reads_back(tmp_path) -> None:
    from rlnas.config import SearchConfig
    from rlnas.resolve import resolve
    from rlnas.space import default_space

    store = RunStore.create(tmp_path / "run")
    config, space = SearchConfig(trials=7, seed=3), default_space()
    store.write_config(config, space)
    stored = store.read_json("config.json")
    assert stored == {"search": config.to_dict(), "space": space.to_dict()}
    assert resolve(resume_from=stored) == (config, space)
