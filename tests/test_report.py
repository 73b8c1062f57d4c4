"""The report and export: pure computations on hand-made data, and the CLI on a run built by hand."""

from __future__ import annotations

import csv
import io
import json
import math
import sys

import pytest

from rlnas.cli import main
from rlnas.cli.progress import Progress
from rlnas.config import SearchConfig
from rlnas.report import EXPORT_COLUMNS, batch_means, batch_shares, best_so_far, pareto_front
from rlnas.run.trial import Trial
from rlnas.space import default_space
from rlnas.text import format_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_front_keeps_only_non_dominated_points():
    points = [(100, 0.5), (200, 0.7), (150, 0.4), (300, 0.7), (50, 0.3), (400, 0.9), (200, 0.7)]
    # (150, 0.4) is beaten by (100, 0.5); (300, 0.7) and the duplicate (200, 0.7) by the first (200, 0.7)
    assert pareto_front(points) == [4, 0, 1, 5]
    assert pareto_front([]) == []


def test_best_so_far_skips_failed_children():
    assert best_so_far([None, 0.2, 0.1, None, 0.5, 0.4]) == [None, 0.2, 0.2, 0.2, 0.5, 0.5]


def _trial(index, update, arch, *, status="ok", acc=0.5, params=1000):
    space = default_space()
    tokens = space.encode(arch)
    return {
        "index": index,
        "update": update,
        "tokens": [max(t, 0) for t in tokens],
        "key": "-".join("x" if t < 0 else str(t) for t in tokens),
        "architecture": arch,
        "reward": acc if status == "ok" else -1.0,
        "log_prob": -5.0,
        "status": status,
        "val_accuracy": acc if status == "ok" else 0.0,
        "val_loss": 0.7 if status == "ok" else None,
        "train_loss": 0.6,
        "params": params,
        "fit_seconds": 1.5,
        "eval_seconds": 0.1,
        "child_seconds": 1.7,
        "error": "" if status == "ok" else "loss became NaN",
        "seed": 123,
        "elapsed": 2.0 * (index + 1),
    }


def _arch(layers, act="relu", dropout=False, lr=0.001):
    units = {f"units_{i}": 32 * (i + 1) for i in range(layers)}
    return {"num_layers": layers, **units, "activation": act, "dropout": dropout, "lr": lr}


RECORDS = [  # as the journal holds them
    _trial(0, 0, _arch(1), acc=0.6, params=500),
    _trial(1, 0, _arch(2, "tanh"), acc=0.7, params=900),
    _trial(2, 0, _arch(3), status="failed"),
    _trial(3, 1, _arch(1, "tanh", True), acc=0.8, params=400),
    _trial(4, 1, _arch(1, "tanh"), acc=0.75, params=450),
]
TRIALS = [Trial.from_dict(r) for r in RECORDS]


def test_batch_means_and_shares():
    assert batch_means(TRIALS) == ([0, 1], [pytest.approx((0.6 + 0.7 - 1.0) / 3), pytest.approx(0.775)])
    updates, shares = batch_shares(TRIALS, default_space())
    assert updates == [0, 1]
    assert shares["num_layers"] == [pytest.approx([1 / 3] * 3), [1.0, 0.0, 0.0]]
    assert shares["activation"] == [pytest.approx([2 / 3, 1 / 3]), [0.0, 1.0]]
    assert shares["dropout"][1] == [0.5, 0.5]
    # units_1 exists in two architectures of batch 0 (both 64), in none of batch 1
    assert shares["units_1"][0][1] == 1.0 and sum(shares["units_1"][0]) == 1.0
    assert all(math.isnan(s) for s in shares["units_1"][1])


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "hand-made"
    run.mkdir()
    config = {"search": SearchConfig().to_dict(), "space": default_space().to_dict()}
    (run / "config.json").write_text(json.dumps(config))
    (run / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in RECORDS))
    replayed = {"rank": 1, "key": TRIALS[3].key, "architecture": TRIALS[3].architecture, "params": 400}
    replayed |= {"val_accuracy": 0.8, "test_accuracy": 0.78, "status": "ok", "model_path": "", "error": ""}
    (run / "replay.json").write_text(json.dumps([replayed]))
    return run


def test_report_and_export_from_the_cli(run, tmp_path, capsys):
    assert main(["report", str(run)]) == 0
    printed = capsys.readouterr().out.split()
    names = {"rewards.png", "policy.png", "pareto.png", "replay.png", "report.md"}
    assert {p.rsplit("/", 1)[-1] for p in printed} == names
    for name in names - {"report.md"}:
        assert (run / "report" / name).read_bytes()[:8] == PNG_MAGIC
    md = (run / "report" / "report.md").read_text()
    assert "5 trials" in md and "1 failed" in md and "](policy.png)" in md and "0.7800" in md

    out = tmp_path / "trials.csv"
    assert main(["export", str(run), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    names = default_space().names
    assert list(rows[0]) == [*EXPORT_COLUMNS, *names]
    assert len(rows) == 5 and rows[0]["units_0"] == "32" and rows[0]["units_1"] == rows[0]["units_2"] == ""
    assert rows[2]["status"] == "failed" and rows[2]["val_loss"] == "" and rows[2]["units_2"] == "96"

    assert main(["export", str(run), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["units_1"] is None and data[3]["dropout"] is True


def test_report_and_export_do_not_import_tensorflow(run):
    import subprocess

    code = (
        "import sys; from rlnas.cli import main; "
        f"assert main(['export', {str(run)!r}]) == 0; assert main(['report', {str(run)!r}]) == 0; "
        "print('tensorflow' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_bad_run_is_one_line(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    assert main([command, "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlnas: error: no run 'nope'") and err.count("\n") == 1


def test_a_bad_format_is_one_line(capsys, run):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run), "--format", "xml"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("rlnas: error: ") and err.count("\n") == 1
    assert "invalid choice: 'xml'" in err


def test_progress_plain_lines_and_live_bar():
    plain = io.StringIO()
    show = Progress(5, stream=plain)  # not a terminal: one line per trial
    for t in TRIALS:
        show(t)
    show.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("[5/5] trial 4: ") and "best 0.8000" in lines[-1]
    assert "FAILED loss became NaN" in lines[2]

    live = io.StringIO()
    show = Progress(5, stream=live, live=True)
    for t in TRIALS:
        show(t)
    show.close()
    text = live.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "5/5 done" in text and "best 0.8000" in text and "1 failed" in text


def test_quiet_and_verbose_exclude_each_other(capsys):
    from rlnas.cli import build_parser

    assert build_parser().parse_args(["search", "--verbose"]).verbose
    with pytest.raises(SystemExit):
        main(["search", "--quiet", "--verbose"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_tensorboard_command_runs_tensorboard_on_the_run(tmp_path, monkeypatch):
    import os
    import sys

    from rlnas.cli import main
    from rlnas.run.store import RunStore

    store = RunStore.create(tmp_path / "runs" / "r")
    store.write_json("config.json", {})
    calls = []
    monkeypatch.setattr(os, "execv", lambda exe, argv: calls.append(argv))
    main(["tensorboard", "r", "--runs-dir", str(tmp_path / "runs"), "--port", "6007"])
    assert calls == [
        [sys.executable, "-m", "rlnas.cli.tensorboard", "--logdir", str(store.tb_dir), "--port", "6007"]
    ]


def _repeat_of(original, index):
    return original | {"index": index, "cached": True, "cached_from": original["index"], "fit_seconds": 0.0}


def test_export_has_the_cache_columns(run, capsys):
    with (run / "trials.jsonl").open("a") as fh:
        fh.write(json.dumps(_repeat_of(RECORDS[3], 5)) + "\n")
    assert main(["export", str(run)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    cache = [(r["index"], r["cached"], r["cached_from"]) for r in rows[-2:]]
    assert cache == [("4", "False", ""), ("5", "True", "3")]


def test_progress_names_trials_by_their_journal_index():
    plain = io.StringIO()
    show = Progress(7, stream=plain)
    repeat = Trial.from_dict(_repeat_of(RECORDS[1], 6))
    for t in [TRIALS[1], TRIALS[0], repeat]:  # out of order, as workers finish
        show(t)
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("[1/7] trial 1: ") and lines[1].startswith("[2/7] trial 0: ")
    assert lines[2].startswith("[3/7] trial 6: ") and "(repeat of trial 1, not retrained)" in lines[2]


def test_policy_plot_names_every_value_of_every_decision(tmp_path):
    from rlnas.report import _plot_policy

    fig = _plot_policy(TRIALS, default_space())
    space = default_space()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_visible()]
    assert len(legends) == len(space.decisions)
    for legend, d in zip(legends, space.decisions, strict=True):
        labels = [t.get_text() for t in legend.get_texts()]
        assert sorted(labels) == sorted(format_value(v) for v in d.values), d.name
        colours = {tuple(h.get_facecolor()) for h in legend.legend_handles}
        assert len(colours) == len(d.values), d.name  # every value its own colour
