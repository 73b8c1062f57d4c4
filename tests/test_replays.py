"""Replays are kept: numbered directories, the latest in the run's replay.json, an older version's flat
replay still listed; ``show`` lists them all (no training: the records are written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlnas.cli import main
from rlnas.run.store import RunStore


def _result(rank, test, path, trial=3):
    return {"rank": rank, "key": "k", "architecture": {"num_layers": 1}, "val_accuracy": 0.9,
            "test_accuracy": test, "params": 10, "status": "ok", "model_path": path, "error": "",
            "trial": trial}  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = RunStore.create(tmp_path / "runs" / "r")
    s.write_json("config.json", {"search": {}, "space": {}})
    return s


def test_each_replay_gets_a_new_directory_and_overwrite_replaces_only_the_last(store):
    first = store.new_replay_dir()
    (first / "rank1-k.keras").write_text("model 1")
    second = store.new_replay_dir()
    assert (first.name, second.name) == ("1", "2") and (first / "rank1-k.keras").is_file()
    (second / "rank1-k.keras").write_text("model 2")
    again = store.new_replay_dir(overwrite=True)
    assert again == second and not list(again.iterdir())  # the last one, emptied
    assert (first / "rank1-k.keras").read_text() == "model 1"  # the others untouched
    assert store.replay_numbers() == [1, 2]


def test_an_older_flat_replay_is_listed_and_kept_when_replaying_again(store):
    (store.replay_dir).mkdir()
    (store.replay_dir / "rank1-k.keras").write_text("old")
    store.write_json("replay.json", [_result(1, 0.948, str(store.replay_dir / "rank1-k.keras"))])
    (flat,) = store.replays()
    assert flat["replay"] == 0 and flat["results"][0]["test_accuracy"] == 0.948
    new = store.new_replay_dir()
    record = {"replay": 1, "epochs": 2, "results": [_result(1, 0.928, "m")]}
    store.write_json(f"replay/{new.name}/replay.json", record)
    store.write_json("replay.json", [_result(1, 0.928, "m")])  # as replay() does: the latest at the root
    assert [r["replay"] for r in store.replays()] == [0, 1]
    assert store.replays()[0]["results"][0]["test_accuracy"] == 0.948  # the old record was kept
    assert json.loads((store.replay_dir / "replay.json").read_text())[0]["test_accuracy"] == 0.948


def test_a_replay_without_its_record_yet_is_not_listed(store):
    store.new_replay_dir()  # under way: models may be there, replay.json not yet
    assert store.replays() == []


def test_show_lists_every_replay(store, capsys):
    for number, test in ((1, 0.948), (2, 0.928)):
        d = store.new_replay_dir()
        results = [_result(1, test, f"{d}/m.keras")]
        record = {"replay": number, "epochs": 12 - 5 * number, "top": 1, "results": results}
        store.write_json(f"replay/{d.name}/replay.json", record)
    assert main(["show", "r", "--runs-dir", str(store.path.parent)]) == 0
    out = capsys.readouterr().out
    assert "2 replay(s)" in out
    lines = [line.split() for line in out.splitlines() if line.endswith("m.keras")]
    assert [(x[0], x[1], x[3], x[4]) for x in lines] == [("1", "7", "3", "0.9480"), ("2", "2", "3", "0.9280")]


def test_replay_keeps_each_replay_and_overwrite_replaces_the_last(store, monkeypatch, capsys):
    """replay() itself, with the training replaced: a model file that says which replay wrote it."""
    from types import SimpleNamespace

    import rlnas.search.replay
    from rlnas.models.child import ChildResult, Status
    from rlnas.run.trial import Trial

    trial = {"index": 4, "update": 0, "tokens": [0], "key": "k0", "architecture": {"num_layers": 1},
             "reward": 0.9, "log_prob": -1.0, "status": "ok", "val_accuracy": 0.9}  # fmt: skip
    monkeypatch.setattr(store, "trials", lambda **_: [Trial.from_dict(trial)])
    store.write_json("config.json", {"search": {"seed": 0}, "space": {}})
    tests = iter([0.948, 0.928, 0.931])

    def fake_train(arch, ds, spec, *, seed, on_model):
        on_model(SimpleNamespace(save=lambda path: Path(path).write_text(f"epochs {spec.epochs}")))
        return ChildResult(Status.OK, val_accuracy=next(tests), params=10)

    monkeypatch.setattr(
        rlnas.search.replay,
        "_final_training",
        lambda s, c, e: (SimpleNamespace(raw_input=None), SimpleNamespace(epochs=e or 10)),
    )  # arrays used as given: the child itself is saved
    monkeypatch.setattr(rlnas.search.replay, "train_and_evaluate", fake_train)
    rlnas.search.replay.replay(store)
    rlnas.search.replay.replay(store, epochs=2)
    assert [r["epochs"] for r in store.replays()] == [10, 2]
    assert (store.replay_dir / "1" / "rank1-k0.keras").read_text() == "epochs 10"  # not overwritten
    rlnas.search.replay.replay(store, epochs=3, overwrite=True)
    assert [(r["replay"], r["epochs"]) for r in store.replays()] == [(1, 10), (2, 3)]
    assert [r["test_accuracy"] for r in store.read_json("replay.json")] == [0.931]  # the latest
    assert store.replays()[0]["results"][0]["trial"] == 4
