"""Faults of the machine and of other processes: a disk that refuses writes, two writers of one run,
a replay of a run still being searched. Each ends in one line and a run that still resumes.

The searches here are the real command line (in this process, or in a subprocess through
:mod:`tests.fault_target`) with synthetic children and the random strategy, so that nothing trains
but the faults are the real ones: the real journal, checkpoint and TensorBoard writes, a real tmpfs
filled up (as root), real processes racing for the lock.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rlnas.exec.factory
from rlnas.cli import main
from rlnas.run.store import RunStore
from tests.conftest import SyntheticEvaluator

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 16
SEARCH = ["--strategy", "random", "--archs-per-update", "4", "--replay-top", "0", "--seed", "3", "--quiet"]
pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")


@pytest.fixture
def synthetic(monkeypatch):
    """The CLI's workers replaced by a synthetic evaluator that may act on its ``at``-th child."""

    def workers(config, space, **_):
        return [Acting(hook.get("at"), hook.get("act"))]

    hook: dict = {}
    monkeypatch.setattr(rlnas.exec.factory, "make_evaluators", workers)
    return hook


class Acting(SyntheticEvaluator):
    def __init__(self, at, act):
        super().__init__()
        self.at, self.act = at, act

    def evaluate(self, arch, seed):
        if len(self.calls) + 1 == self.at:
            self.act()
        return super().evaluate(arch, seed)


def _search(runs: Path, data: Path, *extra: str, trials: int = TRIALS) -> int:
    args = ["search", "--dataset", str(data), "--runs-dir", str(runs), "--trials", str(trials), *SEARCH]
    return main([*args, *extra])


def _resume(runs: Path, name: str, trials: int = TRIALS) -> int:
    return main(["search", "--resume", name, "--runs-dir", str(runs), "--trials", str(trials), "--quiet"])


def _keys(run: Path) -> list[str]:
    return [t.key for t in RunStore(run).trials()]


def _check_intact(run: Path) -> None:
    """Every line of the journal whole, every checkpoint readable, no lock left behind."""
    text = (run / "trials.jsonl").read_text() if (run / "trials.jsonl").exists() else ""
    assert text == "" or text.endswith("\n")
    for line in text.splitlines():
        json.loads(line)
    for name in ("random.json", "state.json", "config.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    assert not (run / "lock").exists()
    assert not list(run.glob("*.tmp"))


@pytest.fixture
def reference(tmp_path, tiny_npz, synthetic):
    assert _search(tmp_path / "ref", tiny_npz, "--name", "r") == 0
    return _keys(tmp_path / "ref" / "r")


def _refuse(monkeypatch, name: str, code: int, after: int) -> None:
    """``os.write`` to ``name`` (or its temporary) fails with ``code`` after ``after`` writes, having
    written half of what it was given, as a disk that fills mid-write does."""
    real, seen = os.write, [0]

    def write(fd, data):
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        except OSError:
            target = ""
        if target in (name, name + ".tmp"):
            seen[0] += 1
            if seen[0] > after:
                real(fd, bytes(data[: len(data) // 2]))
                raise OSError(code, os.strerror(code))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize(
    ("name", "code", "after"),
    [("trials.jsonl", errno.ENOSPC, 6), ("random.json", errno.EIO, 1), ("state.json", errno.EROFS, 2)],
)
def test_a_refused_write_stops_the_search_in_one_line_and_resume_continues(
    tmp_path, tiny_npz, synthetic, reference, monkeypatch, capsys, name, code, after
):
    runs = tmp_path / "runs"
    capsys.readouterr()
    with monkeypatch.context() as m:
        _refuse(m, name, code, after)
        assert _search(runs, tiny_npz, "--name", "x") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlnas: error: cannot write '{runs / 'x' / name}': {os.strerror(code)}"), err
    assert len(err.splitlines()) == 1 and "--resume" in err
    _check_intact(runs / "x")
    assert 0 < len(RunStore(runs / "x").trials()) < TRIALS
    assert _resume(runs, "x") == 0
    assert _keys(runs / "x") == reference  # nothing lost, nothing twice, the same search


# -- a real full disk (root only: mount a small tmpfs) ----------------------------------------------
@pytest.fixture
def tmpfs():
    """Mount a small tmpfs at the given path; unmounted at the end. Skips unless root may mount."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> None:
    """Write a file on ``disk`` until the disk is full."""
    with (disk / "filler").open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_full_tmpfs_stops_the_search_in_one_line_and_resume_continues_once_space_is_back(
    tmp_path, tiny_npz, synthetic, reference, tmpfs, capsys
):
    disk = tmpfs(tmp_path / "disk", "1m")
    synthetic.update(at=7, act=lambda: _fill(disk))
    capsys.readouterr()
    assert _search(disk, tiny_npz, "--name", "x") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlnas: error: cannot write '{disk / 'x'}") and "No space left on device" in err
    assert len(err.splitlines()) == 1, err
    _check_intact(disk / "x")
    (disk / "filler").unlink()  # space is back
    synthetic.clear()
    assert _resume(disk, "x") == 0
    assert _keys(disk / "x") == reference


def test_a_full_disk_under_tensorboard_stops_the_search_and_resume_continues(
    tmp_path, tiny_npz, synthetic, reference, tmpfs, capsys
):
    """TensorBoard's events go through TensorFlow's C++ writer: its refusal is an OpError at the flush,
    and the same one line."""
    runs = tmp_path / "runs"
    assert _search(runs, tiny_npz, "--name", "x", trials=8) == 0
    tb = tmpfs(runs / "x" / "tb", "64k")  # over the run's tb/: only TensorBoard's writes fill up
    _fill(tb)
    capsys.readouterr()
    assert _resume(runs, "x") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlnas: error: cannot write '{tb}") and "No space left on device" in err, err
    assert len(err.splitlines()) == 1, err
    _check_intact(runs / "x")
    subprocess.run(["umount", "-l", str(tb)], check=True)
    assert _resume(runs, "x") == 0
    assert _keys(runs / "x") == reference


# -- two processes ------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _target(*args: str, delay: float = 0.0, go: Path | None = None) -> subprocess.Popen:
    own = ["--delay", str(delay)] + (["--go", str(go)] if go else [])
    command = [sys.executable, "-m", "tests.fault_target", *own, "--", *args]
    return subprocess.Popen(
        command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_resumes_started_together_one_proceeds_the_other_names_it(
    tmp_path, tiny_npz, synthetic, reference
):
    runs = tmp_path / "runs"
    assert _search(runs, tiny_npz, "--name", "x", trials=8) == 0
    go = tmp_path / "go"
    resume = ["search", "--resume", "x", "--runs-dir", str(runs), "--trials", str(TRIALS), "--quiet"]
    procs = [_target(*resume, delay=0.02, go=go) for _ in range(2)]
    while len(list(tmp_path.glob("go.*.ready"))) < 2 and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()  # both are past their imports: they race for the run within milliseconds
    outcomes = {p.pid: (p.wait(), p.communicate()[1]) for p in procs}
    codes = sorted(code for code, _ in outcomes.values())
    assert codes == [0, 2], outcomes
    (winner,) = [pid for pid, (code, _) in outcomes.items() if code == 0]
    (loser_err,) = [err.strip() for code, err in outcomes.values() if code == 2]
    assert loser_err == (
        f"rlnas: error: run '{runs / 'x'}' is being written by process {winner}; "
        "wait for it to finish or stop it first"
    )
    _check_intact(runs / "x")
    assert _keys(runs / "x") == reference


@pytest.mark.slow  # a search in a subprocess and a real replay in this one: ~30 s on 2 busy cores
def test_replay_of_a_run_still_being_searched_reads_a_whole_prefix_and_says_so(tmp_path, tiny_npz, capsys):
    runs = tmp_path / "runs"
    args = ["search", "--dataset", str(tiny_npz), "--runs-dir", str(runs), "--trials", "400", *SEARCH]
    search = _target(*args, "--name", "live", delay=0.02)
    journal = runs / "live" / "trials.jsonl"
    try:
        while search.poll() is None and (not journal.exists() or len(journal.read_bytes().splitlines()) < 4):
            time.sleep(0.05)
        assert search.poll() is None, search.communicate()
        capsys.readouterr()
        assert main(["replay", str(runs / "live"), "--epochs", "1"]) == 0
        err = capsys.readouterr().err
        assert search.poll() is None, "the search went on while the replay ran"
    finally:
        _, search_err = search.communicate()
    assert search.returncode == 0, search_err
    (line,) = [x for x in err.splitlines() if "still being searched" in x]
    assert line.startswith(
        f"run {runs / 'live'} is still being searched by process {search.pid}: replaying from"
    )
    assert "torn" not in err
    _check_intact(runs / "live")
    assert [t.index for t in RunStore(runs / "live").trials()] == list(range(400))
    assert (
        json.loads((runs / "live" / "replay" / "1" / "replay.json").read_text())["results"][0]["status"]
        == "ok"
    )
