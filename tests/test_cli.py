"""The command line: one real end-to-end subprocess run, and every bad input as a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.cli import main

RLNAS = [sys.executable, "-m", "rlnas.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*RLNAS, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_search_show_replay_end_to_end(tmp_path, tiny_npz):
    """A real search in a subprocess: trials, checkpoint, TensorBoard, replayed models that load."""
    search = _run(
        "search", "--dataset", str(tiny_npz), "--trials", "6", "--archs-per-update", "3",
        "--epochs", "2", "--batch-size", "32", "--replay-top", "2", "--replay-epochs", "2",
        "--name", "smoke", "--runs-dir", str(tmp_path / "runs"), "--child-logs", cwd=tmp_path,
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    assert search.stderr == ""  # TensorFlow's start-up noise is hidden
    out = search.stdout
    assert "[6/6]" in out and "best validation accuracy" in out and "test_acc" in out
    run = tmp_path / "runs" / "smoke"
    assert len((run / "trials.jsonl").read_text().splitlines()) == 6
    assert (run / "controller.npz").is_file() and list((run / "tb").glob("events.*"))
    for i in range(6):  # --child-logs: each child's curves next to its HParams session
        assert list((run / "tb" / "children" / f"{i:05d}" / "train").glob("events.*"))
        assert list((run / "tb" / "children" / f"{i:05d}" / "validation").glob("events.*"))
    models = sorted((run / "replay" / "1").glob("*.keras"))  # each replay in replay/<n>/
    assert len(models) == 2

    show = _run("show", "smoke", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert show.returncode == 0 and "rank" in show.stdout and "6 trials" in show.stdout

    import keras

    data = np.load(tiny_npz)
    model = keras.models.load_model(models[0])
    probs = model.predict(data["x"][:5].astype("float32") / 255, verbose=0)
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)

    replay = _run("replay", str(run), "--top", "1", "--epochs", "1", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "test_acc" in replay.stdout
    assert models == sorted((run / "replay" / "1").glob("*.keras"))  # the search's replay is kept
    assert len(list((run / "replay" / "2").glob("*.keras"))) == 1

    more = _run("search", "--resume", str(run), "--trials", "9", "--replay-top", "0", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert "resuming at trial 6 (6 done)" in more.stdout and "[9/9]" in more.stdout
    lines = (run / "trials.jsonl").read_text().splitlines()  # completion order: two workers by default
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(9))
    assert not (run / "lock").exists()


def test_bad_input_is_one_line_in_a_subprocess(tmp_path):
    r = _run("search", "--dataset", "mnits", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "unknown dataset" in r.stderr.lower() and "mnist" in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written for a rejected search


def _error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rlnas: error: ") and err.count("\n") == 1
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--trials", "0"], "trials must be positive, got 0"),
        (["search", "--epochs", "-1"], "epochs must be positive"),
        (["search", "--batch-size", "0"], "batch_size must be positive"),
        (["search", "--baseline-decay", "1.5"], r"baseline_decay must be in \[0, 1\)"),
        (["search", "--dataset", "nope.npz"], "nope.npz"),
        (["search", "--config", "missing.toml"], "does not exist"),
        (["replay", "no-such-run"], "no run 'no-such-run'"),
        (["show", "no-such-run"], "no run 'no-such-run'"),
        (["search", "--strategy", "evolutoin"], r"unknown strategy 'evolutoin'.*did you mean 'evolution'"),
        (["search", "--workers", "0"], "workers must be positive, got 0"),
        (["search", "--workers", "100000"], r"--workers 100000 is more than this machine can train"),
        (["search", "--seed", "-1"], r"seed must be a whole number in \[0, 4294967296\), got -1"),
        (["search", "--seed", "99999999999999999999"], r"seed must be a whole number in \[0, 4294967296\)"),
        (["search", "--objective", "val_acc:upward"], "objective"),
        (["search", "--objective", "params"], r"a failed child's reward 0 would beat every child.*-10"),
        (["search", "--model", "no_such_mod:f"], "cannot import module 'no_such_mod'"),
        (["search", "--model", "nocolon"], "module:function"),
        (["bench", "--table", "nope.csv"], "table 'nope.csv' does not exist"),
        (
            ["bench", "--table", "t.csv", "--strategies", "reinforce,randon"],
            r"'randon'.*did you mean 'random'",
        ),
        (["bench", "--table", "t.csv", "--seeds", "0"], "--seeds must be at least 1"),
        (["tabulate", "--out", "no/such/dir/t.csv"], "directory 'no/such/dir' does not exist"),
    ],
)
def test_bad_arguments(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    import re

    assert re.search(message, _error(capsys, *argv))
    assert not (tmp_path / "runs").exists()  # rejected before any run directory is made


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[search\ntrials = 3", "not valid TOML"),
        ("[search]\ntrails = 3", r"unknown setting 'trails'.*did you mean 'trials'"),
        ("[serach]\n", r"unknown table 'serach'.*did you mean 'search'"),
        ('[[space.decisions]]\nname = "a"\nvalues = []', "decision 'a' has no values"),
        (
            '[[space.decisions]]\nname = "num_layers"\nvalues = [1, 2]\n'
            '[[space.decisions]]\nname = "units_0"\nvalues = [8]\nwhen = { num_layer = [2] }',
            r"refers to 'num_layer'.*did you mean 'num_layers'",
        ),
        ('[[space.decisions]]\nname = "a"\nvalues = [1, 1]', "appears twice"),
        ('[[space.decisions]]\nname = "a"\nkind = "int"\nvalues = ["x"]', "not of kind 'int'"),
    ],
)
def test_bad_config_files(capsys, tmp_path, monkeypatch, toml, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(toml)
    import re

    assert re.search(message, _error(capsys, "search", "--config", "c.toml"))
    assert re.search(message, _error(capsys, "space", "c.toml"))


def test_existing_run_is_refused_and_left_untouched(capsys, tmp_path, monkeypatch, tiny_npz):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "keep"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "trials.jsonl").write_text('{"index": 0}\n')
    err = _error(capsys, "search", "--dataset", str(tiny_npz), "--name", "keep")
    assert "already exists" in err and "--overwrite" in err
    assert (run / "trials.jsonl").read_text() == '{"index": 0}\n'


def test_space_prints_decisions_and_exact_size(capsys):
    assert main(["space"]) == 0
    out = capsys.readouterr().out
    for name in ("num_layers", "units_0", "units_2", "activation", "dropout", "lr"):
        assert name in out
    assert "num_layers in {3}" in out and "122,304 distinct architectures" in out


def test_help_lists_every_setting(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--controller-lr" in out and "--archs-per-update" in out and "--max-minutes" in out


def test_help_groups_each_strategys_own_settings(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    body = out[out.index("search settings") :]  # past the usage line, which lists every flag
    order = ["--trials", "reinforce settings", "--model-steps", "evolution settings", "--population-size"]
    assert [body.index(x) for x in order] == sorted(body.index(x) for x in order)


def test_plain_reinforce_is_one_flag_and_a_flag_given_beside_it_wins():
    from rlnas.cli import build_parser
    from rlnas.cli._common import flag_values
    from rlnas.config import PLAIN_REINFORCE

    parse = build_parser().parse_args
    assert flag_values(parse(["search", "--plain-reinforce"])) == PLAIN_REINFORCE
    given = flag_values(parse(["search", "--plain-reinforce", "--model-steps", "2", "--trials", "8"]))
    assert given == {**PLAIN_REINFORCE, "model_steps": 2, "trials": 8}
    assert flag_values(parse(["search"])) == {}


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: (p / "corrupt.npz").write_bytes(b"not a zip") and str(p / "corrupt.npz"), "corrupt.npz"),
        (
            lambda p: _npz(p, "labels.npz", x=np.zeros((50, 4, 4), np.uint8), y=np.r_[np.arange(49) % 3, -1]),
            "labels",
        ),
        (
            lambda p: _npz(p, "shapes.npz", x=np.zeros((50, 4, 4), np.uint8), y=np.arange(40) % 3),
            "50 .*40|40 .*50",
        ),
        (lambda p: _npz(p, "two.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.arange(2)), "split is empty"),
    ],
    ids=["corrupt-file", "label-out-of-range", "shape-mismatch", "impossible-split"],
)
def test_bad_data_is_one_line_before_any_training(capsys, tmp_path, monkeypatch, make, message):
    import re

    monkeypatch.chdir(tmp_path)
    err = _error(capsys, "search", "--dataset", make(tmp_path))
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()  # rejected before a run directory was made


def test_unwritable_runs_dir_is_one_line(capsys, tmp_path, tiny_npz):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = _error(capsys, "search", "--dataset", str(tiny_npz), "--runs-dir", str(blocker))
    assert "cannot write run directory" in err


def test_validation_happens_before_tensorflow_is_imported():
    code = (
        "import sys; from rlnas.cli import main; code = main(['search', '--trials', '0']); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["2", "False"], r.stderr


def test_model_function_and_a_space_table_conflict(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('[space]\nmodel = "mlp"\n')
    model = "examples.keras_tuner_model:build_model"
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    err = _error(capsys, "search", "--model", model, "--config", "c.toml")
    assert "declares the search space; remove the [space] table" in err


def test_image_model_on_flat_data_is_one_line_before_training(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x=rng.random((60, 16)).astype("float32"), y=np.arange(60) % 3)
    (tmp_path / "c.toml").write_text('[space]\nmodel = "conv"\n')
    err = _error(capsys, "search", "--config", "c.toml", "--dataset", "flat.npz", "--runs-dir", "runs")
    assert "conv" in err and "image" in err.lower()
    assert not (tmp_path / "runs").exists()


# -- the flag sweep: every flag, each class of bad value, one line before anything is written ------------
def _config_flags(kinds: tuple[str, ...]) -> list[str]:
    """The settings of these types: the shared ones and each strategy's own (each is a flag)."""
    from dataclasses import fields

    from rlnas.config import SearchConfig
    from rlnas.settings.evolution import EvolutionSettings
    from rlnas.settings.reinforce import ReinforceSettings

    every = [*fields(SearchConfig), *fields(ReinforceSettings), *fields(EvolutionSettings)]
    return [f.name for f in every if str(f.type).split(" ")[0] in kinds]


NUMBERS = _config_flags(("int", "float"))
FLOATS = _config_flags(("float",))
ZERO_ALLOWED = {
    "seed", "importance_clip", "entropy_weight", "skip_weight", "baseline_decay", "tanh_constant",
    "model_steps", "model_bonus", "explore_mix", "risk_seeking", "failed_reward", "gpus_per_child",
    "replay_top", "mutant_share", "pqt_k", "model_linear",
}  # fmt: skip
"""Settings where 0 is a meaning (off, none, the first seed), not a mistake."""
CHOICES = [
    "strategy", "controller", "executor", "objective", "replay_schedule", "dataset", "address",
    "model_select",
]  # fmt: skip
COMMANDS = {
    "search": ["search"],
    "tabulate": ["tabulate", "--out", "t.csv"],
    "bench": ["bench", "--table", "t.csv"],
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _settings(value: str, names: list[str], every: int = 1, more: tuple = ()) -> list[list[str]]:
    """``--<setting> value`` for each setting under ``rlnas search``; for tabulate and bench (the same
    flags, the same checks) every ``every``-th one, to keep the sweep quick."""
    out = [[*COMMANDS["search"], _flag(n), value] for n in names]
    for command in ("tabulate", "bench"):
        out += [[*COMMANDS[command], _flag(n), value] for n in names[::every]]
    return out + list(more)


SWEEP = {
    "negative": _settings("-1", [n for n in NUMBERS if n != "failed_reward"], 8, more=(
        ["replay", "r", "--top", "-1"], ["replay", "r", "--epochs", "-1"], ["show", "r", "--top", "-1"],
        ["bench", "--table", "t.csv", "--budget", "-1"], ["bench", "--table", "t.csv", "--seeds", "-1"],
        ["bench", "--benchmark", "nb201:cifar10", "--budget-seconds", "-1"],
    )),
    "zero": _settings("0", [n for n in NUMBERS if n not in ZERO_ALLOWED], 8, more=(
        ["replay", "r", "--top", "0"], ["replay", "r", "--epochs", "0"], ["show", "r", "--top", "0"],
        ["bench", "--table", "t.csv", "--budget", "0"], ["bench", "--table", "t.csv", "--seeds", "0"],
        ["bench", "--benchmark", "nb201:cifar10", "--budget-seconds", "0"],
    )),
    "huge": _settings("99999999999999999999999", NUMBERS, 8, more=(
        ["replay", "r", "--top", "99999999999999999999999"], ["replay", "r", "--epochs", "99999999999"],
        ["bench", "--table", "t.csv", "--budget", "9999999999"],
        ["bench", "--table", "t.csv", "--seeds", "9999999999"],
        ["search", "--lstm-units", "100000"], ["search", "--archs-per-update", "1000000"],
        ["search", "--init-range", "1e30"], ["search", "--strategy", "evolution", "--tournament-size", "30"],
    )),
    "not-finite": [*_settings("nan", FLOATS, 4), *_settings("inf", FLOATS, 4), ["search", "--seed", "-inf"]],
    "wrong-type": _settings("abc", [*NUMBERS, *CHOICES], 8, more=(
        ["search", "--trials", "1.5"], ["search", "--seed", "0x10"], ["replay", "r", "--top", "one"],
        ["bench", "--table", "t.csv", "--budget", "2.5"],
        ["bench", "--table", "t.csv", "--strategies", "greedy"],
    )),
    "empty": _settings("", [*NUMBERS, *CHOICES, "data_dir", "target", "image_size", "color_mode"], 8, more=(
        ["search", "--name", ""], ["search", "--runs-dir", ""], ["search", "--config", ""],
        ["search", "--model", ""], ["search", "--resume", ""], ["replay", ""], ["show", ""], ["report", ""],
        ["export", "r", "--out", ""], ["tabulate", "--out", ""], ["bench", "--table", ""],
        ["bench", "--benchmark", ""], ["bench", "--table", "t.csv", "--strategies", ""],
        ["bench", "--table", "t.csv", "--plot", ""], ["bench", "--table", "t.csv", "--json", ""],
    )),
    "no-such-path": [
        ["search", "--config", "/no/such/c.toml"], ["search", "--dataset", "/no/such/d.npz"],
        ["search", "--data", "/no/such/folder"], ["search", "--data", "/no/such/t.csv", "--target", "y"],
        ["search", "--data-dir", "/no/such/dir"], ["search", "--model", "/no/such/m.py"],
        ["search", "--resume", "/no/such/run"], ["replay", "/no/such/run"], ["show", "/no/such/run"],
        ["export", "/no/such/run"], ["report", "/no/such/run"], ["replay", "r", "--runs-dir", "/no/such"],
        ["tabulate", "--out", "/no/such/t.csv"],
        ["tabulate", "--out", "t.csv", "--config", "/no/such/c.toml"],
        ["bench", "--table", "/no/such/t.csv"], ["bench", "--table", "t.csv", "--config", "/no/such/c.toml"],
        ["bench", "--table", "t.csv", "--plot", "/no/such/p.png"],
        ["bench", "--table", "t.csv", "--json", "/no/such/r.json"],
    ],
}  # fmt: skip
"""Each class of bad value, with every flag that must refuse it (``r`` is a small finished run)."""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A directory with a run ``runs/r`` (its config; the flags are refused before its trials are read)
    and the tiny data ``tiny.npz``."""
    from rlnas.config import SearchConfig
    from rlnas.run.store import RunStore
    from rlnas.space import default_space

    root = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    np.savez(
        root / "tiny.npz", x=rng.integers(0, 255, size=(120, 8, 8)).astype(np.uint8), y=np.arange(120) % 3
    )
    config = SearchConfig(dataset=str(root / "tiny.npz"), trials=4, archs_per_update=2, strategy="random")
    store = RunStore.create(root / "runs" / "r")
    store.write_config(config, default_space())
    return root


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("kind", "argv"),
    [(kind, argv) for kind, cases in SWEEP.items() for argv in cases],
    ids=[f"{kind}:{' '.join(argv)}" for kind, cases in SWEEP.items() for argv in cases],
)
def test_flag_sweep_each_class_of_bad_value_is_one_line_before_anything_is_written(
    capsys, monkeypatch, sweep_dir, kind, argv
):
    """Negative, zero, huge, not finite, the wrong type, empty, a path that does not exist: exit 2,
    one line ``rlnas: error: ...``, no traceback and nothing written (no run directory, no file)."""
    monkeypatch.chdir(sweep_dir)
    before = _listing(sweep_dir)
    if argv[0] == "search" and not {"--dataset", "--data", "--resume"} & set(argv):
        argv = [*argv, "--dataset", "tiny.npz"]  # the data is fine: the flag is the fault
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own checks (a number that is not one) exit right there
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rlnas: error: ") and err.count("\n") == 1, err
    assert _listing(sweep_dir) == before
