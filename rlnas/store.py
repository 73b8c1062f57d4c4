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
    ``lock``             pid of the process writing the run
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlnas.errors import RunError
from rlnas.trial import Trial

DEFAULT_RUNS_DIR = "runs"


@contextlib.contextmanager
def atomic_path(path: str | Path, partial: str | None = None) -> Iterator[Path]:
    """The one atomic write: yield a temporary path next to ``path`` to write in full; on success it
    replaces ``path`` by a rename, so readers (and a crash) see the old file or the new one, never half.

    Args:
        partial: the temporary file's name (default ``<name>.tmp``), for writers that insist on a
            suffix (Keras saves only to ``*.keras``).
    """
    path = Path(path)
    tmp = path.with_name(partial or path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, synced to disk before the rename."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def resolve_run(run: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """A run given as its directory or as its name under ``runs_dir``; RunError if neither exists."""
    for candidate in (Path(run), Path(runs_dir) / run):
        if (candidate / "config.json").is_file():
            return candidate
    available = sorted(p.name for p in Path(runs_dir).glob("*/config.json") for p in [p.parent])
    hint = f"; runs in {str(runs_dir)!r}: {', '.join(available)}" if available else ""
    raise RunError(f"no run {run!r} (neither a run directory nor a name under {str(runs_dir)!r}){hint}")


def _finite(value: Any) -> Any:
    """NaN and infinities (a failed child's loss) become null: strict JSON that every reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _lock_holder(path: Path) -> int | None:
    """The pid in a lock file if that process is alive, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return pid  # exists, owned by someone else
    except OSError:
        return None
    return pid


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
        path.mkdir(parents=True, exist_ok=False)
        return path

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

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_text(self.path / name, json.dumps(data, indent=2, sort_keys=False) + "\n")

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
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``lock`` (our pid) while writing the run; a second writer gets a clear RunError.

        A lock left by a process that no longer exists (killed with SIGKILL) is taken over.
        """
        path = self.path / "lock"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                holder = _lock_holder(path)
                if holder is not None:
                    raise RunError(
                        f"run {str(self.path)!r} is being written by process {holder}; "
                        "wait for it to finish or stop it first"
                    ) from None
                path.unlink(missing_ok=True)  # stale: its process is gone
        else:  # pragma: no cover - another process won the race twice
            raise RunError(f"could not lock run {str(self.path)!r}")
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    # -- the trial journal -----------------------------------------------------------------------
    def append_trial(self, trial: Trial) -> None:
        """Append one finished trial as a complete line, flushed to disk before returning."""
        line = json.dumps(_finite(trial.to_dict()), allow_nan=False) + "\n"
        with (self.path / "trials.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

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

    def trials(self) -> list[Trial]:
        """Every complete trial, in index order; a torn last line (a crash mid-write) is dropped with a
        warning."""
        p = self.path / "trials.jsonl"
        if not p.exists():
            return []
        lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
        out = []
        for i, line in enumerate(lines):
            try:
                out.append(Trial.from_dict(json.loads(line)))
            except json.JSONDecodeError:
                if i == len(lines) - 1 and not line.endswith("\n"):
                    print(f"warning: dropped a torn last line of {p}", file=sys.stderr)
                    continue
                raise RunError(f"{str(p)!r} line {i + 1} is corrupt") from None
        return sorted(out, key=lambda t: t.index)  # several workers finish out of order
