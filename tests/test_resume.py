"""Resume: an interrupted search continues from its last consistent state, losing and repeating nothing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from rlnas.cli import main
from rlnas.config import SearchConfig
from rlnas.errors import RunError
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space
from tests.conftest import Interrupting, SyntheticEvaluator

CONFIG = SearchConfig(trials=24, archs_per_update=8, seed=5)


def _store(tmp_path, name, config=CONFIG):
    store = RunStore.create(tmp_path / name)
    store.write_config(config, default_space())
    return store


def _keys(store):
    return [t.key for t in store.trials()]


@pytest.fixture
def uninterrupted(tmp_path):
    store = _store(tmp_path, "whole")
    run_search(CONFIG, default_space(), store, evaluator=SyntheticEvaluator())
    return _keys(store)


def test_resume_at_an_update_boundary_samples_what_an_uninterrupted_run_samples(tmp_path, uninterrupted):
    store = _store(tmp_path, "split")
    run_search(dataclasses.replace(CONFIG, trials=16), default_space(), store, evaluator=SyntheticEvaluator())
    second = SyntheticEvaluator()
    result = run_search(CONFIG, default_space(), store, evaluator=second, resume=True)
    assert _keys(store) == uninterrupted
    assert len(second.calls) == 8  # only the new children were trained
    assert [t.index for t in result.trials] == list(range(24))


def test_resume_mid_batch_reuses_finished_children_and_retries_the_interrupted_one(tmp_path, uninterrupted):
    store = _store(tmp_path, "ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, default_space(), store, evaluator=Interrupting(at=12))
    assert len(store.trials()) == 11  # children 1..11 finished; the 12th was in flight
    second = SyntheticEvaluator()
    run_search(CONFIG, default_space(), store, evaluator=second, resume=True)
    trials = store.trials()
    assert [t.index for t in trials] == list(range(24))  # nothing lost, nothing twice
    assert _keys(store) == uninterrupted
    assert len(second.calls) == 24 - 11


def test_resume_of_a_run_without_checkpoint_starts_the_controller_afresh(tmp_path, uninterrupted):
    store = _store(tmp_path, "early")
    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, default_space(), store, evaluator=Interrupting(at=4))
    assert not store.controller_path.exists()
    run_search(CONFIG, default_space(), store, evaluator=SyntheticEvaluator(), resume=True)
    assert _keys(store) == uninterrupted


def test_a_journal_that_disagrees_with_the_checkpoint_is_refused(tmp_path):
    store = _store(tmp_path, "edited")
    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, default_space(), store, evaluator=Interrupting(at=12))
    lines = (store.path / "trials.jsonl").read_text().splitlines()
    lines[9] = lines[9].replace('"tokens": [', '"tokens": [9, ', 1)
    (store.path / "trials.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match="resume diverged at trial 9"):
        run_search(CONFIG, default_space(), store, evaluator=SyntheticEvaluator(), resume=True)


def test_lock_names_the_live_holder_and_a_stale_lock_is_taken_over(tmp_path):
    store = _store(tmp_path, "locked")
    holder = rf"being written by process {os.getpid()}"
    with store.locked(), pytest.raises(RunError, match=holder), store.locked():
        pass
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (store.path / "lock").write_text(gone.stdout.strip())  # left by a process that no longer exists
    with store.locked():
        assert (store.path / "lock").read_text() == str(os.getpid())
    assert not (store.path / "lock").exists()


def test_cli_resume_may_extend_the_budget_but_not_change_the_search(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = _store(tmp_path / "runs", "r")
    assert main(["search", "--resume", "r", "--epochs", "5"]) == 2
    assert "--resume cannot change epochs (the run used 2)" in capsys.readouterr().err
    assert main(["search", "--resume", "r", "--name", "x"]) == 2
    assert "drop --config, --name, --overwrite and --model" in capsys.readouterr().err
    assert main(["search", "--resume", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert store.read_json("config.json")["search"]["epochs"] == 2  # untouched by the refusals


def test_a_torn_last_line_is_dropped_with_a_warning_and_the_journal_stays_line_complete(
    tmp_path, uninterrupted, capsys
):
    store = _store(tmp_path, "torn")
    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, default_space(), store, evaluator=Interrupting(at=12))
    journal = store.path / "trials.jsonl"
    with journal.open("a") as fh:
        fh.write('{"index": 11, "key": "0-1')  # the crash hit mid-write
    run_search(CONFIG, default_space(), store, evaluator=SyntheticEvaluator(), resume=True)
    assert "dropped a torn last line" in capsys.readouterr().err
    assert _keys(store) == uninterrupted
    assert journal.read_text().endswith("\n") and len(journal.read_text().splitlines()) == 24


def test_a_complete_last_record_missing_only_its_newline_is_kept(tmp_path, uninterrupted):
    store = _store(tmp_path, "no-newline")
    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, default_space(), store, evaluator=Interrupting(at=12))
    journal = store.path / "trials.jsonl"
    journal.write_text(journal.read_text().rstrip("\n"))
    second = SyntheticEvaluator()
    run_search(CONFIG, default_space(), store, evaluator=second, resume=True)
    assert _keys(store) == uninterrupted and len(second.calls) == 13


def _count_lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


# 3 kills in the default suite, 8 under slow: each start costs a process and TensorFlow's import.
@pytest.mark.parametrize("planned", [3, pytest.param(8, marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_then_resume_loses_and_repeats_nothing(tmp_path, planned):
    """Fault injection: kill a real search process with SIGKILL several times, resume each time.

    Each start is killed a random moment within 0.5 s of its first new journal line (8 updates of 4
    children of 20 ms: a kill lands in a child, a journal write, an update or a checkpoint write
    alike), ``planned`` times; then one start runs to the end. Each start costs a process and
    TensorFlow's import; more kills add no new kind of moment.
    """
    import json
    import random
    import signal
    import time

    from tests.crash_target import CONFIG as CRASH_CONFIG

    reference = _store(tmp_path, "reference", CRASH_CONFIG)
    run_search(CRASH_CONFIG, default_space(), reference, evaluator=SyntheticEvaluator())
    run_dir = tmp_path / "killed"
    rng = random.Random(7)
    kills = 0
    command = [sys.executable, "-m", "tests.crash_target", str(run_dir)]
    journal = run_dir / "trials.jsonl"
    for _ in range(planned):
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        before = _count_lines(journal)
        while proc.poll() is None and _count_lines(journal) == before:  # this start has written
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:  # finished before its kill: nothing left to interrupt
            assert proc.returncode == 0, proc.stderr.read()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        lines = journal.read_text().splitlines()
        for line in lines[:-1]:
            json.loads(line)  # every line but a torn last one is a whole record
    else:  # the last start runs to the end
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert kills >= 3
    store = RunStore(run_dir)
    trials = store.trials()
    assert [t.index for t in trials] == list(range(CRASH_CONFIG.trials))
    assert [t.key for t in trials] == _keys(reference)  # the same search as never interrupted
    assert not (run_dir / "lock").exists()


def _start_cli_search(tmp_path, tiny_npz, name):
    import time

    run = tmp_path / "runs" / name
    command = [
        sys.executable, "-m", "rlnas.cli", "search", "--dataset", str(tiny_npz), "--trials", "40",
        "--archs-per-update", "4", "--epochs", "30", "--batch-size", "16", "--replay-top", "0",
        "--name", name, "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and _count_lines(run / "trials.jsonl") < 2:
        time.sleep(0.05)
    return proc, run


def test_first_ctrl_c_finishes_the_child_in_training_then_stops_cleanly(tmp_path, tiny_npz):
    import signal

    proc, run = _start_cli_search(tmp_path, tiny_npz, "once")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "stopping after the child in training" in err and "--resume" in err
    assert "Traceback" not in err
    trials = RunStore(run).trials()
    assert len(trials) >= 3  # the child in training when Ctrl-C came was finished and kept
    assert [t.index for t in trials] == list(range(len(trials)))
    assert not (run / "lock").exists()


@pytest.mark.slow  # a second real search in this process; the first Ctrl-C test stays in the default suite
def test_second_ctrl_c_stops_at_once_and_the_run_still_resumes(tmp_path, tiny_npz):
    import signal
    import time

    proc, run = _start_cli_search(tmp_path, tiny_npz, "twice")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    kept = len(RunStore(run).trials())
    assert not (run / "lock").exists()
    assert main(["search", "--resume", str(run), "--trials", str(kept + 1), "--replay-top", "0"]) == 0
    assert [t.index for t in RunStore(run).trials()] == list(range(kept + 1))


def test_cli_resume_of_a_run_from_an_incompatible_config_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = _store(tmp_path / "runs", "old")
    stored = store.read_json("config.json")
    stored["search"]["warmup_epochs"] = 3  # a setting this rlnas does not know
    store.write_json("config.json", stored)
    assert main(["search", "--resume", "old"]) == 2
    err = capsys.readouterr().err
    assert "was made by an incompatible rlnas" in err and "warmup_epochs" in err


def _run_processes(run_dir) -> list[int]:
    """Live processes whose worker marker names ``run_dir`` (``RLNAS_WORKER_OF=<pid>:<run>``), found by
    scanning /proc, not by name: what a leaked worker cannot hide from."""
    from pathlib import Path

    from rlnas.exec.worker import MARKER

    needle, found = f"{MARKER}=".encode(), []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] if environ else "Z"
        except OSError:  # gone, or not ours to read
            continue
        marks = [v[len(needle) :].decode() for v in environ if v.startswith(needle)]
        if state != "Z" and any(m.split(":", 1)[-1] == str(run_dir) for m in marks):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="scans /proc")
def test_sigkill_of_a_real_search_training_real_children_five_times(tmp_path, tiny_npz):
    """A real ``rlnas search`` with 2 workers training real Keras children (tiny data, 1 epoch) is
    SIGKILLed at 5 random moments and resumed: after each kill no process of the run is left 10 s
    later; at the end every index is in the journal once, no line is torn, and the architectures are
    those of an uninterrupted run with the same seed."""
    import json
    import random
    import signal
    import time

    runs, trials = tmp_path / "runs", 30
    settings = [
        "--dataset", str(tiny_npz), "--trials", str(trials), "--archs-per-update", "2", "--epochs", "1",
        "--batch-size", "16", "--replay-top", "0", "--workers", "2", "--seed", "4", "--quiet",
        "--runs-dir", str(runs),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [sys.executable, "-m", "rlnas.cli", "search"]
    whole = subprocess.run([*cli, *settings, "--name", "whole"], env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    run, journal, rng, kills = runs / "killed", runs / "killed" / "trials.jsonl", random.Random(3), 0
    while kills < 5:
        again = ["--resume", "killed", "--runs-dir", str(runs)] if journal.exists() else None
        proc = subprocess.Popen(
            [*cli, *(again or [*settings, "--name", "killed"])], env=env, stderr=subprocess.PIPE, text=True
        )
        before = _count_lines(journal)
        while proc.poll() is None and _count_lines(journal) == before:  # its workers are training
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 3.0))  # mid-child, mid-update, mid-write: wherever it lands
        assert proc.poll() is None, f"finished before kill {kills + 1}: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        end = time.monotonic() + 10
        while _run_processes(run) and time.monotonic() < end:
            time.sleep(0.2)
        assert not _run_processes(run), f"kill {kills}: processes of the run left: {_run_processes(run)}"
    done = subprocess.run(
        [*cli, "--resume", "killed", "--runs-dir", str(runs)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = journal.read_text().splitlines()
    assert journal.read_text().endswith("\n") and all(json.loads(line) for line in lines)
    killed = RunStore(run).trials()
    assert sorted(t.index for t in killed) == list(range(trials)) and len(lines) == trials
    assert [t.key for t in killed] == [t.key for t in RunStore(runs / "whole").trials()]
    assert all(t.ok for t in killed)
