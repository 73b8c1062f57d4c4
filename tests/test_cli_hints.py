"""What a new user meets on the way: each message names what works, and comes before TensorFlow loads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from rlnas.cli import main
from rlnas.cli.progress import Progress
from rlnas.run.trial import Trial
from rlnas.space import default_space

ARCH = {"num_layers": 1, "units_0": 32, "activation": "relu", "dropout": False, "lr": 0.001}


def _trial(index: int, acc: float | None) -> dict:
    """A journal line: a child that reached ``acc``, or a failed one (None)."""
    tokens = default_space().encode(ARCH)
    return {
        "index": index, "update": index // 2, "tokens": [max(t, 0) for t in tokens],
        "key": "-".join("x" if t < 0 else str(t) for t in tokens), "architecture": ARCH,
        "reward": 0.0 if acc is None else acc, "log_prob": -5.0, "status": "failed" if acc is None else "ok",
        "val_accuracy": acc or 0.0, "params": 1000, "error": "" if acc else "loss became NaN",
        "seed": 1, "elapsed": 2.0 * (index + 1),
    }  # fmt: skip


def _run_dir(root, trials: list[dict], budget: int = 4):
    """``root/runs/r``: a run's config and journal, built by hand (nothing trains)."""
    from rlnas.config import SearchConfig
    from rlnas.run.store import RunStore

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(120, 8, 8)).astype(np.uint8)
    np.savez(root / "tiny.npz", x=x, y=np.arange(120) % 3)
    config = SearchConfig(
        dataset=str(root / "tiny.npz"), trials=budget, archs_per_update=2, strategy="random"
    )
    store = RunStore.create(root / "runs" / "r")
    store.write_json("config.json", {"search": config.to_dict(), "space": default_space().to_dict()})
    if trials:
        (store.path / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    return store.path


def _main_in_a_subprocess(cwd, *argv: str) -> tuple[int, str, str, bool]:
    """``main(argv)`` in a fresh interpreter: its exit code, stdout, stderr, and whether TensorFlow
    was imported by then."""
    code = (
        "import sys; from rlnas.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow' in sys.modules, file=sys.stderr); sys.exit(code)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    *err, imported = r.stderr.splitlines()
    return r.returncode, r.stdout, "\n".join(err), imported == "True"


def test_version_is_the_installed_distributions():
    r = subprocess.run([sys.executable, "-m", "rlnas.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == f"rlnas {metadata.version('rlnas')}\n"


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["search", "--trails", "5"], "unrecognized arguments: --trails 5 (did you mean '--trials'?)"),
        (["search", "--epoks=2"], "unrecognized arguments: --epoks=2 (did you mean '--epochs'?)"),
        (["show", "r", "--topp", "3"], "(did you mean '--top'?)"),
        (["search", "--trials", "x"], "argument --trials: 'x' is not an int"),
        (["search", "--init-range", "x"], "argument --init-range: 'x' is not a float"),
    ],
)
def test_a_misspelled_flag_or_value_is_one_line_with_the_fix(capsys, argv, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("rlnas: error: ") and err.count("\n") == 1, err
    assert hint in err


def test_an_unknown_flag_far_from_any_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_replay_of_a_run_without_a_trained_child_is_one_line_before_tensorflow(tmp_path):
    _run_dir(tmp_path, [])
    code, out, err, imported = _main_in_a_subprocess(tmp_path, "replay", "r")
    assert code == 2 and out == "" and err.count("\n") == 0
    assert "has nothing to replay: it has no finished trial" in err
    assert "`rlnas search --resume runs/r` continues" in err
    assert not imported


def test_replay_of_a_run_whose_children_all_failed_says_so(capsys, tmp_path):
    run = _run_dir(tmp_path, [_trial(0, None), _trial(1, None)])
    assert main(["replay", str(run)]) == 2
    assert "none of its 2 trials trained successfully" in capsys.readouterr().err


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path):
    run = _run_dir(tmp_path, [_trial(i, 0.5 + i / 10) for i in range(4)])
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, out, err, imported = _main_in_a_subprocess(tmp_path, "search", "--resume", "r", "--trials", "3")
    assert code == 0, err
    assert out == (
        "run runs/r is finished: 4 of 3 trials done, nothing to resume; `rlnas replay runs/r` retrains "
        "its best, `--resume` with `--trials` above 4 searches on\n"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # no replay, the config as it was
    assert not imported


def _interrupt_before_any_trial(monkeypatch):
    """The search's first Ctrl-C, as the user pressed it before any child finished."""
    import rlnas.search.loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rlnas.search.loop, "run_search", interrupted)


def test_the_hint_after_ctrl_c_with_no_trial_done_names_only_resume(capsys, tmp_path, monkeypatch):
    """``rlnas replay`` needs a trained child: with none, the hint names only ``--resume``."""
    run = _run_dir(tmp_path, [])
    _interrupt_before_any_trial(monkeypatch)
    assert main(["search", "--resume", str(run), "--workers", "1", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: 0 finished trials kept in {run}; `rlnas search --resume {run}` continues\n" in err
    assert "rlnas replay" not in err


def test_progress_after_a_resume_shows_the_runs_best():
    earlier = [Trial.from_dict(_trial(0, 0.914)), Trial.from_dict(_trial(1, None))]
    plain = io.StringIO()
    show = Progress(4, earlier=earlier, stream=plain)
    show(Trial.from_dict(_trial(2, 0.884)))
    assert plain.getvalue().startswith("[3/4] trial 2: val_acc 0.8840  best 0.9140")

    live = io.StringIO()
    show = Progress(4, earlier=earlier, stream=live, live=True)
    show(Trial.from_dict(_trial(2, 0.95)))
    assert "3/4 done  best 0.9500  2 failed" not in live.getvalue()
    assert "3/4 done  best 0.9500  1 failed" in live.getvalue()


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nosuch:fn", "cannot import module 'nosuch' of model function 'nosuch:fn'"),
        ("nosuch.deeper:fn", "cannot import module 'nosuch.deeper'"),
        ("examples.keras_tuner_model:build_modle", "has no 'build_modle' (did you mean 'build_model'?)"),
    ],
)
def test_a_model_function_that_is_not_there_is_one_line_before_tensorflow(model, message):
    code, out, err, imported = _main_in_a_subprocess(REPO, "search", "--model", model)
    assert code == 2 and out == "" and err.startswith("rlnas: error: ") and err.count("\n") == 0, err
    assert message in err
    assert not imported
