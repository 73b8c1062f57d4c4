"""Durable writes: each either completes or leaves the file as it was, and a write the disk refuses
(ENOSPC, EIO, a read-only remount) is one RunError naming the file and the cause.

Descriptor-level ``os.write`` rather than Python's buffered files: a buffered file can report a failed
write only at ``close``, after it wrote part of the data; here every write's failure is seen where it
happens, and the caller knows exactly what reached the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rlnas.errors import RunError


def write_failed(path: str | Path, exc: OSError) -> RunError:
    """The one-line error of a write the disk refused: the path, the cause, and that what was written
    before is intact, so the run resumes once the cause is gone."""
    return RunError(
        f"cannot write {str(path)!r}: {exc.strerror or exc}; what was written before is intact: "
        "free space (or fix the disk), then continue with `rlnas search --resume`"
    )


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (a write may take fewer bytes than it was given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    """Write ``data`` to ``path`` atomically, synced to disk before the rename.

    Raises:
        RunError: the disk refused the write; ``path`` still holds its previous content.
    """
    try:
        with atomic_path(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise write_failed(path, exc) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
