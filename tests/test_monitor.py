"""TensorBoard monitoring of a search: the policy over time, the HParams dashboard and the leaderboard,
read back from the event files as TensorBoard would."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.config import SearchConfig
from rlnas.run.monitor import (
    custom_scalars_layout,
    hparam_value,
    leaderboard_markdown,
    policy_axis,
    policy_marginals,
)
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space
from rlnas.strategies import make_strategy
from rlnas.strategies.reinforce import make_controller
from rlnas.text import format_value
from tests.conftest import SyntheticEvaluator

CONFIG = SearchConfig(trials=16, archs_per_update=8, seed=3)


def _search(path, config=CONFIG):
    store = RunStore.create(path)
    store.write_config(config, default_space())
    result = run_search(config, default_space(), store, evaluator=SyntheticEvaluator())
    return store, result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _search(tmp_path_factory.mktemp("monitor") / "run")


def _events(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path), size_guidance={"tensors": 0})
    events.Reload()
    return events


def _value(event) -> float:
    from tensorboard.util import tensor_util

    return float(tensor_util.make_ndarray(event.tensor_proto))


def _plugin_content(events, tag: str) -> bytes:
    return events.SummaryMetadata(tag).plugin_data.content


def test_policy_is_logged_for_every_decision_and_value_at_every_update(run):
    store, _ = run
    events = _events(store.tb_dir)
    tags = set(events.Tags()["tensors"])
    for d in default_space().decisions:
        per_value = [events.Tensors(f"policy/{d.name}/{format_value(v)}") for v in d.values]
        for series in per_value:
            assert [e.step for e in series] == [0, 8, 16]  # before the first update, then after each
        for step_events in zip(*per_value, strict=True):
            assert sum(_value(e) for e in step_events) == pytest.approx(1.0, abs=1e-6), d.name
    assert "policy/lr/0.001" in tags and "policy/dropout/True" in tags


def test_policy_marginals_count_a_decision_only_where_it_is_active():
    space = default_space()
    one_layer = space.encode(
        {"num_layers": 1, "units_0": 64, "activation": "relu", "dropout": False, "lr": 1e-3}
    )
    two_layers = space.encode(
        {"num_layers": 2, "units_0": 32, "units_1": 96, "activation": "tanh", "dropout": True, "lr": 1e-3}
    )
    tokens = np.array([[max(t, 0) for t in one_layer], [max(t, 0) for t in two_layers]])
    p = policy_marginals(space, tokens)
    assert p["policy/num_layers/1"] == p["policy/num_layers/2"] == 0.5
    assert p["policy/units_1/96"] == 1.0  # only the 2-layer sample has units_1
    assert sum(v for k, v in p.items() if k.startswith("policy/units_2/")) == 0.0  # never active


def test_hparams_experiment_lists_every_decision_with_its_domain(run):
    from tensorboard.plugins.hparams import api_pb2, metadata

    store, _ = run
    events = _events(store.tb_dir)
    experiment = metadata.parse_experiment_plugin_data(_plugin_content(events, metadata.EXPERIMENT_TAG))
    infos = {h.name: h for h in experiment.hparam_infos}
    space = default_space()
    assert list(infos) == [*space.names, "units"]  # units_0..2 also as one column: 5 fit at first open
    for d in space.decisions:
        domain = list(infos[d.name].domain_discrete)  # a protobuf ListValue of plain values
        assert domain == [hparam_value(v) for v in d.values], d.name
    assert infos["activation"].type == api_pb2.DATA_TYPE_STRING
    assert infos["dropout"].type == api_pb2.DATA_TYPE_BOOL
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64
    # integers as right-aligned text: shown as integers, sorted in numeric order as text
    units = list(infos["units_0"].domain_discrete)
    assert infos["units_0"].type == api_pb2.DATA_TYPE_STRING and units == sorted(units)
    assert [u.strip() for u in units[:3]] == ["32", "64", "96"]
    assert [m.name.tag for m in experiment.metric_infos] == ["val_accuracy", "params", "fit_seconds"]


def test_one_hparams_session_per_trial_with_its_architecture_and_metrics(run):
    from tensorboard.plugins.hparams import metadata

    store, result = run
    children = sorted((store.tb_dir / "children").iterdir())
    assert [c.name for c in children] == [f"{t.index:05d}" for t in result.trials]
    for trial, child in zip(result.trials, children, strict=True):
        events = _events(child)
        info = metadata.parse_session_start_info_plugin_data(
            _plugin_content(events, metadata.SESSION_START_INFO_TAG)
        )
        values = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
        arch = trial.architecture
        units = " ".join(hparam_value(arch[f"units_{i}"]) for i in range(arch["num_layers"]))
        assert values == {k: hparam_value(v) for k, v in arch.items()} | {"units": units}  # inactive omitted
        assert int(values["units_0"]) == arch["units_0"]
        assert info.group_name == child.name
        (accuracy,) = events.Tensors("val_accuracy")
        assert accuracy.step == 1
        assert _value(accuracy) == pytest.approx(trial.metrics["val_accuracy"])


def test_leaderboard_is_written_after_every_update(run):
    store, result = run
    events = _events(store.tb_dir)
    boards = events.Tensors("leaderboard")
    assert [e.step for e in boards] == [8, 16]
    from tensorboard.util import tensor_util

    text = tensor_util.make_ndarray(boards[-1].tensor_proto).item().decode()
    assert text == leaderboard_markdown(result.trials)
    lines = text.splitlines()
    assert lines[0].startswith("| rank | val_accuracy | params |")
    assert len(lines) == 2 + min(10, sum(t.ok for t in result.trials))
    assert lines[2].startswith(f"| 1 | {result.best.metrics['val_accuracy']:.4f} |")


def test_monitoring_does_not_consume_the_search_sampler(run, tmp_path):
    _, result = run
    # The first batch is what a fresh strategy asks for: the step-0 policy probe drew nothing from it.
    first = make_strategy(CONFIG, default_space()).ask(CONFIG.archs_per_update).tokens
    assert [list(t.tokens) for t in result.trials[:8]] == first.tolist()
    _, again = _search(tmp_path / "again")
    assert [t.key for t in again.trials] == [t.key for t in result.trials]


def test_sampling_with_another_generator_leaves_the_controller_generator_alone():
    controller = make_controller(CONFIG.reinforce, default_space(), seed=CONFIG.seed)
    before = controller.rng.bit_generator.state
    controller.sample(16, rng=np.random.default_rng(0))
    assert controller.rng.bit_generator.state == before


def test_hparam_values_integers_as_padded_text_others_as_they_are():
    assert hparam_value(416) == "     416" and hparam_value(32) < hparam_value(416) < hparam_value(1024)
    assert hparam_value(True) is True and hparam_value(0.001) == 0.001 and hparam_value("relu") == "relu"


def test_custom_scalars_layout_has_one_multiline_chart_per_decision(run):
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    store, _ = run
    events = _events(store.tb_dir)
    layout = layout_pb2.Layout.FromString(
        events.Tensors(metadata.CONFIG_SUMMARY_TAG)[0].tensor_proto.string_val[0]
    )
    assert layout == custom_scalars_layout(default_space())
    search, policy = layout.category
    assert [c.title for c in policy.chart] == list(default_space().names)
    tags = set(events.Tags()["tensors"])
    axis_lines = set(policy_axis(default_space()))
    for chart, d in zip(policy.chart, default_space().decisions, strict=True):
        pattern, axis = chart.multiline.tag
        matched = {t for t in tags if re.fullmatch(pattern, t)}
        assert matched == {f"policy/{d.name}/{format_value(v)}" for v in d.values}
        assert {t for t in tags if re.fullmatch(axis, t)} == axis_lines
    for chart in search.chart:  # every chart of the search draws something
        assert any(re.fullmatch(p, t) for p in chart.multiline.tag for t in tags), chart.title


def _tensorboard_scale(points: list[float], outlier_share: float = 0.05) -> tuple[float, float]:
    """The y range TensorBoard's Custom Scalars draws with "ignore outliers" (its default): the
    5th to the 95th percentile of all the chart's points (d3.quantile's linear interpolation)."""
    ranked = np.sort(points)
    return tuple(float(np.quantile(ranked, q)) for q in (outlier_share, 1 - outlier_share))


def test_policy_charts_span_0_to_1_under_tensorboards_outlier_cut(run):
    """A winning value, far above the others, stays on its chart: the axis lines hold 0 and 1."""
    import re

    store, _ = run
    events = _events(store.tb_dir)
    tags = events.Tags()["tensors"]
    for chart in custom_scalars_layout(default_space()).category[1].chart:
        drawn = [t for t in tags if any(re.fullmatch(p, t) for p in chart.multiline.tag)]
        points = [_value(e) for t in drawn for e in events.Tensors(t)]
        assert _tensorboard_scale(points) == (0.0, 1.0), chart.title
    skewed = [1.0] + [0.0] * 15  # one value has won units_0: TensorBoard would cut it off alone
    axis = policy_axis(default_space())
    assert _tensorboard_scale(skewed)[1] < 1.0
    assert _tensorboard_scale(skewed + list(axis.values())) == (0.0, 1.0)
