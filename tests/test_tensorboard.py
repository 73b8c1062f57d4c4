"""``rlnas tensorboard``: the session runs kept out of every dashboard but HParams (a fake provider),
and, marked slow, a real TensorBoard on a finished search asked through its own HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import pytest

from rlnas.cli.tensorboard import HideSessions, is_session_run


class FakeProvider:
    def list_runs(self, ctx=None, *, experiment_id):
        return [SimpleNamespace(run_name=n) for n in (".", "children/00001", "children/00001/train")]

    def list_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        return {".": {"charts/reward_mean": 1}, "children/00001": {"val_accuracy": 2}}

    def data_location(self, ctx=None, *, experiment_id):
        return "/logdir"


def test_session_runs_are_hidden_and_everything_else_passes_through():
    assert is_session_run("children/00001") and not is_session_run("children/00001/train")
    assert not is_session_run(".") and not is_session_run("children")
    hidden = HideSessions(FakeProvider())
    assert [r.run_name for r in hidden.list_runs(experiment_id="")] == [".", "children/00001/train"]
    assert hidden.list_scalars(experiment_id="", plugin_name="scalars") == {".": {"charts/reward_mean": 1}}
    assert hidden.data_location(experiment_id="") == "/logdir"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://localhost:{port}{path}", data=data)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def _start(runs, port: int) -> subprocess.Popen:
    """``rlnas tensorboard r --port PORT`` (an extra argument, passed on), once it answers."""
    command = [sys.executable, "-m", "rlnas.cli", "tensorboard", "r", "--runs-dir", str(runs)]
    board = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    for _ in range(240):  # TensorBoard's start and first load take a while on two busy cores
        try:
            if _get(port, "/data/runs"):
                return board
        except OSError:
            pass
        time.sleep(0.5)
    board.terminate()
    raise AssertionError(f"TensorBoard did not answer: {board.communicate(timeout=30)[1]}")


def _stop(board: subprocess.Popen) -> str:
    board.terminate()
    return board.communicate(timeout=30)[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A finished synthetic search of 48 children (so more than 40 sessions) under TensorBoard."""
    from rlnas.config import SearchConfig
    from rlnas.space import default_space
    from tests.conftest import SyntheticEvaluator, search_in

    runs = tmp_path_factory.mktemp("tb")
    config = SearchConfig(trials=48, archs_per_update=4, seed=0)
    store, result = search_in(runs, "r", config, default_space(), SyntheticEvaluator())
    port = _free_port()
    board = _start(runs, port)
    try:
        yield port, store, result
    finally:
        _stop(board)


@pytest.mark.slow
def test_tensorboard_serves_the_search_within_the_default_enabled_runs(served):
    port, store, result = served
    trained = [t for t in result.trials if not t.cached]
    assert len(list((store.tb_dir / "children").iterdir())) == len(trained) > 40  # on disk: a run each
    runs = _get(port, "/data/runs")
    assert runs == ["."] and len(runs) <= 40  # the legacy dashboards enable every run up to 40
    scalars = _get(port, "/data/plugin/scalars/tags")
    assert list(scalars) == ["."]
    assert {"charts/reward_mean", "charts/best_val_accuracy", "policy/units_1/96"} <= set(scalars["."])
    assert {run: sorted(tags) for run, tags in _get(port, "/data/plugin/text/tags").items()} == {
        ".": ["config", "leaderboard"]
    }
    layout = _get(port, "/data/plugin/custom_scalars/layout")
    policy = layout["category"][1]["chart"]
    assert [c["title"] for c in policy] == ["num_layers", "units_0", "units_1", "units_2", "activation",
                                            "dropout", "lr"]  # fmt: skip
    cards = _get(port, "/data/plugin/timeseries/tags")["scalars"]["runTagInfo"]
    assert list(cards) == ["."] and "charts/reward_mean" in cards["."]
    assert not {"val_accuracy", "params", "fit_seconds"} & set(cards["."])  # no per-child cards


@pytest.mark.slow
def test_hparams_lists_every_trained_child_with_every_decision(served):
    port, _, result = served
    experiment = _get(port, "/data/plugin/hparams/experiment", {"experimentName": ""})
    names = [h["name"] for h in experiment["hparamInfos"]]
    assert names == ["activation", "dropout", "lr", "num_layers", "units", "units_0", "units_1", "units_2"]
    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    request = {"experimentName": "", "allowedStatuses": statuses, "startIndex": 0, "sliceSize": 1000}
    groups = _get(port, "/data/plugin/hparams/session_groups", request | {"colParams": []})["sessionGroups"]
    trained = {f"{t.index:05d}": t for t in result.trials if not t.cached}
    assert sorted(g["name"] for g in groups) == sorted(trained)  # the trial numbers every view shows
    for g in groups:
        t = trained[g["name"]]
        assert {
            k: v.strip() if isinstance(v, str) else v for k, v in g["hparams"].items() if k != "units"
        } == {
            k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in t.architecture.items()
        }
        accuracy = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}["val_accuracy"]
        assert accuracy == pytest.approx(t.metrics["val_accuracy"])


@pytest.mark.slow
def test_tensorboard_start_is_quiet(served):
    _, store, _ = served
    port = _free_port()
    err = _stop(_start(store.path.parent, port))
    assert f"http://localhost:{port}/" in err  # TensorBoard's own message stays
    for noise in ("cuInit", "cuda", "absl::InitializeLog", "cpu_feature_guard", "oneDNN"):
        assert noise not in err, err
