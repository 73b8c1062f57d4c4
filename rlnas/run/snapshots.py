"""A checkpoint that is a directory (a supernet's weights, its optimizer, the controller), replaced
atomically: a crash at any moment leaves the previous checkpoint or the new one, never a mix.

A directory cannot be renamed over a non-empty one, so each checkpoint is written into a fresh
numbered subdirectory and then made current by atomically rewriting one small pointer file,
``<directory>/latest``; older subdirectories are removed after that. A reader follows the pointer
only, so a half-written subdirectory (a crash mid-save) is never read, and is removed by the next save.

    <directory>/
        latest      the name of the current checkpoint ("3")
        3/          the current checkpoint, as the writer laid it out
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from rlnas.errors import RunError
from rlnas.run.durable import atomic_write_text, write_failed

POINTER = "latest"


def save_snapshot(directory: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(path)`` on a fresh, empty subdirectory of ``directory``, then make it the current
    checkpoint and remove the others. Returns the new checkpoint's path.

    Raises:
        RunError: the disk refused a write; the previous checkpoint is still the current one.
    """
    directory = Path(directory)
    current = latest_snapshot(directory)
    number = int(current.name) + 1 if current is not None else 1
    path = directory / str(number)
    try:
        if path.exists():  # a save that crashed before its pointer was written
            shutil.rmtree(path)
        path.mkdir(parents=True)
    except OSError as exc:
        raise write_failed(path, exc) from None
    write(path)
    atomic_write_text(directory / POINTER, f"{number}\n")
    for old in directory.iterdir():
        if old.is_dir() and old.name != path.name:
            shutil.rmtree(old, ignore_errors=True)
    return path


def latest_snapshot(directory: str | Path) -> Path | None:
    """The current checkpoint's directory, or None when none was ever completed.

    Raises:
        RunError: the pointer names a checkpoint that is not there (the directory was edited by hand).
    """
    pointer = Path(directory) / POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"cannot read {str(pointer)!r}: {exc}") from None
    path = Path(directory) / name
    if not name.isdigit() or not path.is_dir():
        raise RunError(f"{str(pointer)!r} names checkpoint {name!r}, which is not in {str(directory)!r}")
    return path
