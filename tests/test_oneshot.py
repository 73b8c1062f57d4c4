"""The one-shot search loop and its command line, with ENAS over the numpy supernet double."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.config import make_config
from rlnas.data import Dataset
from rlnas.run.store import RunStore
from rlnas.search import oneshot
from rlnas.search.oneshot import run_oneshot, steps_per_epoch
from rlnas.strategies.enas import EnasStrategy
from tests.supernet_double import DoubleSupernet, blobs, double_space

SPACE = double_space()
X, Y = blobs(96)
XV, YV = blobs(40, seed=1)
DATA = Dataset("arrays", X, Y, XV, YV, XV, YV, 3)
SETTINGS = {
    "strategy": "enas",
    "batch_size": 16,
    "enas_epochs": 3,
    "enas_paths": 3,
    "enas_controller_steps": 2,
    "enas_candidates": 12,
    "enas_top_k": 3,
}


def _strategy(config) -> EnasStrategy:
    net = DoubleSupernet(SPACE, (4, 4), 3, seed=config.seed)
    steps = steps_per_epoch(len(X), config.batch_size)
    return EnasStrategy(SPACE, config.enas, net, steps_per_epoch=steps, seed=config.seed)


def _run(path: Path, *, resume: bool = False, should_stop=lambda: False, **settings):
    config = make_config({**SETTINGS, **settings})
    store = RunStore(path) if resume else RunStore.create(path)
    result = run_oneshot(
        config, SPACE, store, strategy=_strategy(config), dataset=DATA, resume=resume, should_stop=should_stop
    )
    return store, result


def _rows(trials) -> list[tuple]:
    return [(t.index, t.tokens, t.reward) for t in trials]


def test_the_search_journals_its_candidates_as_shared_weight_trials(tmp_path):
    store, result = _run(tmp_path / "run")
    assert result.stopped_by == "epochs"
    journal = store.trials()
    assert _rows(journal) == _rows(result.trials) and 1 <= len(journal) <= 3
    rewards = [t.reward for t in journal]
    assert rewards == sorted(rewards, reverse=True) and result.best.index == journal[0].index
    for t in journal:
        assert t.ok and t.metrics["shared_weights"] is True and t.metrics["val_accuracy"] == t.reward
        assert t.metrics["params"] > 0 and t.architecture == SPACE.decode(t.tokens)
        assert t.architecture["lr"] == 1e-3  # the decision the supernet cannot judge: its fixed value
    state = store.read_json("state.json")
    assert (state["epoch"], state["step"], state["global_step"], state["finished"]) == (3, 0, 18, True)
    assert (store.path / "supernet" / "latest").is_file()


def test_tensorboard_gets_supernet_controller_and_policy_scalars_on_one_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store, _ = _run(tmp_path / "run")
    events = EventAccumulator(str(store.tb_dir), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"supernet/loss", "supernet/accuracy", "controller/reward", "controller/entropy", "config"} <= tags
    assert "policy/units_0/16" in tags
    assert [e.step for e in events.Tensors("supernet/loss")] == list(range(1, 19))  # 6 minibatches x 3
    assert len(events.Tensors("controller/reward")) == 2 * 3  # enas_controller_steps per epoch
    assert [e.step for e in events.Tensors("policy/units_0/16")] == [0, 6, 12, 18]


def test_a_stopped_search_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(tmp_path):
    _, whole = _run(tmp_path / "whole")
    asked = []
    store, stopped = _run(tmp_path / "cut", should_stop=lambda: asked.append(1) or len(asked) > 8)
    assert stopped.stopped_by == "interrupted" and store.trials() == []
    state = store.read_json("state.json")
    assert (state["epoch"], state["step"], state["global_step"], state["finished"]) == (1, 2, 8, False)
    assert not oneshot.is_finished(store)
    store, resumed = _run(tmp_path / "cut", resume=True)
    assert resumed.stopped_by == "epochs" and oneshot.is_finished(store)
    assert _rows(store.trials()) == _rows(whole.trials)


def test_a_resume_after_the_candidates_began_journals_none_twice(tmp_path):
    store, first = _run(tmp_path / "run")
    lines = (store.path / "trials.jsonl").read_text().splitlines()
    (store.path / "trials.jsonl").write_text(lines[0] + "\n")  # as if stopped after the first candidate
    store.write_json("state.json", store.read_json("state.json") | {"finished": False})
    _, again = _run(tmp_path / "run", resume=True)
    assert _rows(store.trials()) == _rows(first.trials) == _rows(again.trials)


def test_the_time_budget_ends_the_training_and_still_journals_candidates(tmp_path):
    store, result = _run(tmp_path / "run", max_minutes=1e-9)
    assert result.stopped_by == "time" and len(store.trials()) >= 1
    assert store.read_json("state.json")["global_step"] == 0


def test_run_oneshot_refuses_a_strategy_that_trains_children():
    from rlnas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^'reinforce' is not a one-shot strategy \(enas, darts\)$"):
        run_oneshot(make_config(), SPACE, RunStore(Path("unused")), dataset=DATA)


# -- the command line ---------------------------------------------------------------------------------
RLNAS = [sys.executable, "-m", "rlnas.cli"]


@pytest.fixture(scope="module")
def mlp_config(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    x, y = blobs(200)
    np.savez(tmp / "blobs.npz", x=(x - x.min()) / (x.max() - x.min()), y=y)
    (tmp / "mlp.toml").write_text(
        f'[search]\ndataset = "{tmp / "blobs.npz"}"\nbatch_size = 16\nreplay_epochs = 1\n\n'
        "[search.enas]\nenas_epochs = 2\nenas_candidates = 10\nenas_top_k = 2\n\n"
        '[space]\nmodel = "mlp"\n[[space.decisions]]\nname = "num_layers"\nkind = "int"\nvalues = [1, 2]\n'
        '[[space.decisions]]\nname = "units_0"\nkind = "int"\nvalues = [8, 16, 32]\n'
        '[[space.decisions]]\nname = "units_1"\nkind = "int"\nvalues = [8, 16]\nwhen = { num_layers = [2] }\n'
        '[[space.decisions]]\nname = "lr"\nkind = "float"\nvalues = [0.001, 0.01]\n'
    )
    return tmp / "mlp.toml"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--objective", "val_loss"],
            r"enas scores architectures by validation accuracy with shared weights; objective 'val_loss' is",
        ),
        (["--executor", "ray"], r"enas trains one supernet in this process; --executor ray does not apply"),
        (
            ["--strategy", "darts"],
            r"--strategy darts needs the cell space's per-edge operations; the 'mlp' space has none",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_run_directory(tmp_path, mlp_config, flags, message):
    runs = tmp_path / "runs"
    argv = [
        *RLNAS,
        "search",
        "--config",
        str(mlp_config),
        "--strategy",
        "enas",
        *flags,
        "--runs-dir",
        str(runs),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlnas: error: ")
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not runs.exists()


def test_a_table_dataset_is_refused_in_one_line(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    runs = tmp_path / "runs"
    argv = [*RLNAS, "search", "--strategy", "enas", "--data", str(table), "--target", "label"]
    out = subprocess.run([*argv, "--runs-dir", str(runs)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "enas trains its supernet on arrays in memory" in out.stderr and "a .csv table" in out.stderr
    assert not runs.exists()


def test_search_then_replay_then_show_from_the_command_line(tmp_path, mlp_config, monkeypatch, capsys):
    """In this process, so that the double stands in for the real supernet."""
    from rlnas.cli import main

    monkeypatch.setattr(
        oneshot, "make_oneshot", lambda config, space, shape, classes, **k: _double(config, space)
    )
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs)]
    assert main(["search", "--config", str(mlp_config), "--strategy", "enas", "--name", "e", *common]) == 0
    out = capsys.readouterr().out
    assert "enas, 2 supernet epochs" in out and "best shared-weight validation accuracy" in out
    assert "val_acc (shared weights)" in out and "test_acc" in out  # the replay, after the search
    run = runs / "e"
    assert json.loads((run / "replay.json").read_text())[0]["status"] == "ok"
    assert main(["replay", str(run)]) == 0  # replay of an ENAS run, again
    assert len(RunStore(run).replays()) == 2
    capsys.readouterr()
    assert main(["show", str(run)]) == 0
    assert "shared-weight val_acc" in capsys.readouterr().out
    assert main(["search", "--resume", str(run), *common]) == 0
    assert "is finished: its candidates are journaled" in capsys.readouterr().out


def _double(config, space) -> EnasStrategy:
    from rlnas.data import load

    ds = load(config.data_spec())
    net = DoubleSupernet(space, ds.input_shape, ds.num_classes, seed=config.seed)
    steps = steps_per_epoch(len(ds.x_train), config.batch_size)
    return EnasStrategy(space, config.enas, net, steps_per_epoch=steps, seed=config.seed)


DRIVER = """
import sys, time
from pathlib import Path
from rlnas.cli import main
from rlnas.search import oneshot
from tests.supernet_double import DoubleSupernet
from tests.test_oneshot import _double

marker = Path(sys.argv[1])

class Slow(DoubleSupernet):
    def train_step(self, x, y, tokens):
        if self.steps == 3:
            marker.write_text("training")
        time.sleep(0.3)
        return super().train_step(x, y, tokens)

def slow(config, space, shape, classes, **k):
    strategy = _double(config, space)
    strategy.supernet.__class__ = Slow
    return strategy

oneshot.make_oneshot = slow
sys.exit(main(sys.argv[2:]))
"""


def test_ctrl_c_checkpoints_at_the_minibatch_and_resume_finishes(tmp_path, mlp_config, monkeypatch, capsys):
    import os
    import signal
    import time

    (tmp_path / "driver.py").write_text(DRIVER)
    marker, run = tmp_path / "training", tmp_path / "runs" / "c"
    argv = ["search", "--config", str(mlp_config), "--strategy", "enas", "--enas-epochs", "6"]
    argv += ["--enas-controller-steps", "2"]
    argv += ["--name", "c", "--runs-dir", str(tmp_path / "runs")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(marker), *argv],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not marker.exists() and proc.poll() is None:
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "stopping after the current minibatch, with a checkpoint" in err and "--resume" in err
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] is False and state["global_step"] >= 4 and (run / "supernet" / "latest").exists()
    from rlnas.cli import main

    monkeypatch.setattr(
        oneshot, "make_oneshot", lambda config, space, shape, classes, **k: _double(config, space)
    )
    assert main(["search", "--resume", str(run), "--replay-top", "0"]) == 0
    assert json.loads((run / "state.json").read_text())["epoch"] == 6 and RunStore(run).trials()
