"""The run directory: everything a search leaves behind, written so that a crash loses nothing finished.

``runs/<name>/``
    ``config.json``      the resolved search config, space and data spec (written once, atomically)
    ``trials.jsonl``     one JSON line per finished child, appended and flushed as it finishes
    ``controller.npz``   controller weights, optimizer slots and sampler RNG (atomic replace)
    ``state.json``       baseline, update count, trials done (atomic replace)
    ``tb/``              TensorBoard event files
    ``replay/<n>/``      replay number n (1, 2, ...): its retrained models (``.keras``) and ``replay.json``
                         (settings and results); runs replayed by older versions hold one flat replay
                         in ``replay/`` itself, which stays readable
    ``replay.json``      the latest replay's results (what ``rlnas report`` reads)
    ``lock``             pid of the process writing the run, which holds an exclusive ``flock`` on it
                         (the kernel releases it when that process dies, even by SIGKILL)

Every write here either completes or leaves the previous content: a write the disk refuses (ENOSPC, EIO,
a read-only remount) is a RunError naming the file and the cause (:func:`write_failed`), and the run
resumes once the cause is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Protocol

from rlnas.errors import RunError
from rlnas.run import lock as run_lock
from rlnas.run.durable import atomic_path, atomic_write_bytes, atomic_write_text, write_all, write_failed
from rlnas.run.trial import Trial
from rlnas.space import SearchSpace

__all__ = ["RunStore", "atomic_path", "atomic_write_bytes", "atomic_write_text", "resolve_run"]

DEFAULT_RUNS_DIR = "runs"


def resolve_run(run: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """A run given as its directory or as its name under ``runs_dir``; RunError if neither exists."""
    for candidate in (Path(run), Path(runs_dir) / run):
        if (candidate / "config.json").is_file():
            return candidate
    available = sorted(p.name for p in Path(runs_dir).glob("*/config.json") for p in [p.parent])
    hint = f"; runs in {str(runs_dir)!r}: {', '.join(available)}" if available else ""
    raise RunError(f"no run {run!r} (neither a run directory nor a name under {str(runs_dir)!r}){hint}")


class StoredConfig(Protocol):
    """What :meth:`RunStore.write_config` needs of a search config (:class:`rlnas.config.SearchConfig`
    has it): a protocol, so that the run directory imports nothing from the settings above it."""

    def to_dict(self) -> dict[str, Any]: ...


def _finite(value: Any) -> Any:
    """NaN and infinities (a failed child's loss) become null: strict JSON that every reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class RunStore:
    """Reads and writes one run directory. Construct with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False) -> RunStore:
        """Make a new run directory; refuse to touch an existing run unless ``overwrite``."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise RunError(
                    f"run directory {str(path)!r} already exists; continue it with --resume, "
                    "choose another --name or pass --overwrite"
                )
            if not (path / "config.json").is_file():
                raise RunError(f"{str(path)!r} is not empty and not an rlnas run; refusing to overwrite it")
            if (holder := cls(path).holder()) is not None:
                raise RunError(f"run {str(path)!r} is being written by process {holder}; stop it first")
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunError(f"cannot write run directory {str(path)!r}: {exc.strerror or exc}") from None
        return cls(path)

    @classmethod
    def open(cls, run: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> RunStore:
        return cls(resolve_run(run, runs_dir))

    # -- files -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def controller_path(self) -> Path:
        return self.path / "controller.npz"

    def checkpoint_path(self, strategy: str) -> Path:
        """The search strategy's state: the controller for REINFORCE, a JSON file for the others."""
        return self.controller_path if strategy == "reinforce" else self.path / f"{strategy}.json"

    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def replay_dir(self) -> Path:
        """``replay/``: one numbered subdirectory per replay (see :meth:`new_replay_dir`)."""
        return self.path / "replay"

    def replay_numbers(self) -> list[int]:
        """The numbers of the run's replays in ``replay/<n>/``, in order."""
        if not self.replay_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.replay_dir.iterdir() if p.name.isdigit() and p.is_dir())

    def new_replay_dir(self, *, overwrite: bool = False) -> Path:
        """The directory of the next replay: ``replay/<last + 1>/``, so that no replay replaces another;
        with ``overwrite``, the last replay's directory, emptied (``replay/1`` when there is none).

        A flat replay of an older version (``replay.json`` at the run's root, its models in ``replay/``)
        first gets its record copied next to its models, ``replay/replay.json``: the root record is
        about to become the new replay's.
        """
        numbers = self.replay_numbers()
        legacy = self.path / "replay.json"
        if not numbers and legacy.is_file() and not (self.replay_dir / "replay.json").exists():
            self.replay_dir.mkdir(exist_ok=True)
            atomic_write_bytes(self.replay_dir / "replay.json", legacy.read_bytes())
        number = (numbers[-1] if overwrite else numbers[-1] + 1) if numbers else 1
        path = self.replay_dir / str(number)
        if overwrite and path.exists():
            shutil.rmtree(path)
        try:
            while True:
                try:
                    path.mkdir(parents=True, exist_ok=overwrite)
                    return path
                except FileExistsError:  # another replay of the run (the search's own) took it just now
                    number += 1
                    path = self.replay_dir / str(number)
        except OSError as exc:
            raise write_failed(path, exc) from None

    def replays(self) -> list[dict[str, Any]]:
        """Every replay of the run, oldest first, each its record with ``replay`` (its number, 0 for an
        older version's flat replay) and ``path`` (its directory); a flat replay has only ``results``."""
        out = []
        flat = self.replay_dir / "replay.json"
        if not flat.is_file() and not self.replay_numbers() and (self.path / "replay.json").is_file():
            flat = self.path / "replay.json"  # an older version's only replay, never moved
        if flat.is_file():
            out.append({"results": self._read(flat), "replay": 0, "path": str(self.replay_dir)})
        for n in self.replay_numbers():
            record = self.replay_dir / str(n) / "replay.json"
            if record.is_file():  # a replay still under way (or killed) has none yet
                out.append(self._read(record) | {"replay": n, "path": str(record.parent)})
        return out

    def write_config(self, config: StoredConfig, space: SearchSpace) -> None:
        """``config.json``: the resolved settings and the space, all that resume, replay, show and the
        report need to read the run again; the one place it is written."""
        self.write_json("config.json", {"search": config.to_dict(), "space": space.to_dict()})

    def write_json(self, name: str, data: Any) -> None:
        text = json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False)
        atomic_write_text(self.path / name, text + "\n")

    def read_json(self, name: str) -> Any:
        return self._read(self.path / name)

    def _read(self, p: Path) -> Any:
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"run {str(self.path)!r} has no {p.relative_to(self.path)}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(f"cannot read {str(p)!r}: {exc}") from None

    # -- the lock --------------------------------------------------------------------------------
    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold ``lock`` (an exclusive ``flock``, our pid inside) while writing the run: of two
        processes that start together exactly one proceeds; the other gets a RunError naming the
        holder. A lock left by a killed process is free (the kernel released it)."""
        return run_lock.hold(self.path / "lock", self.path)

    def holder(self) -> int | None:
        """The pid of the process writing the run now (a search in progress), or None."""
        return run_lock.holder(self.path / "lock")

    # -- the trial journal -----------------------------------------------------------------------
    def append_trial(self, trial: Trial) -> None:
        """Append one finished trial as a complete line, flushed to disk before returning.

        Raises:
            RunError: the disk refused the write; the journal is cut back to its last whole line.
        """
        line = (json.dumps(_finite(trial.to_dict()), allow_nan=False) + "\n").encode("utf-8")
        path = self.path / "trials.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_failed(path, exc) from None
        try:
            end = os.fstat(fd).st_size
            write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # a half-written line goes; repair_journal cuts it if not
                os.ftruncate(fd, end)
            raise write_failed(path, exc) from None
        finally:
            os.close(fd)

    def repair_journal(self) -> None:
        """Make ``trials.jsonl`` end at a line boundary before appending to it again.

        A crash mid-write can leave a partial last line; appending after it would glue the next
        record onto it. A complete record that only lacks its newline gets one; a torn one is cut.
        """
        p = self.path / "trials.jsonl"
        if not p.exists():
            return
        raw = p.read_bytes()
        if not raw or raw.endswith(b"\n"):
            return
        head, _, tail = raw.rpartition(b"\n")
        try:
            json.loads(tail)
            fixed = raw + b"\n"
        except ValueError:
            print(f"warning: dropped a torn last line of {p} (a crash mid-write)", file=sys.stderr)
            fixed = head + b"\n" if head else b""
        atomic_write_bytes(p, fixed)

    def trials(self, *, warn: bool = True) -> list[Trial]:
        """Every complete trial, in index order. A torn last line (a crash mid-write, or a line being
        appended as this reads a run still being searched) is dropped, with a warning if ``warn``:
        what is read is always a whole-line prefix of the journal."""
        p = self.path / "trials.jsonl"
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
        lines = raw.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break
            try:
                out.append(Trial.from_dict(json.loads(line)))
            except ValueError:  # bad JSON, or bytes cut inside a UTF-8 character
                if last:  # no newline yet: not yet (or never) written in full
                    if warn:
                        print(f"warning: dropped a torn last line of {p}", file=sys.stderr)
                    continue
                raise RunError(f"{str(p)!r} line {i + 1} is corrupt") from None
        return sorted(out, key=lambda t: t.index)  # several workers finish out of order
