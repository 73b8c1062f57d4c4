"""The run's lock: one writer per run directory, the others refused with the holder's pid.

An exclusive ``flock`` on ``RUN/lock``, which holds the holder's pid. The kernel releases a ``flock``
when its holder dies, SIGKILL included, so there is no stale lock to take over and no window in which
two processes that start together both believe they hold it (a pid file made with ``O_EXCL`` has
one: between a killed holder's file being judged stale and removed, another process may have
replaced it). POSIX only (``fcntl``), as the worker processes are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from rlnas.errors import RunError
from rlnas.run.durable import write_all, write_failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _pid_in(path: Path) -> int | None:
    """The live pid a held lock file names. Its holder writes it just after locking (over a killed
    holder's pid), so a reader that comes in between waits a moment for it."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            if _alive(pid):
                return pid
        time.sleep(0.05)
    return None


LOCK_TRIES = 20
"""Tries, 50 ms apart, to take a run's lock: a reader (``holder``) holds it shared for an instant."""


def _try_lock(path: Path, mode: int = fcntl.LOCK_EX, create: bool = True) -> int | None:
    """An open descriptor of ``path`` holding a ``flock`` (exclusive by default), or None if another
    process holds it exclusively. The kernel drops the lock when its holder dies (SIGKILL included):
    no stale locks.

    A holder unlinks the file as it finishes; a lock won on that unlinked file would be no lock, so
    the file must still be the one at ``path`` once locked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # won on a file its holder had just removed: try the new one


def _lock(path: Path) -> int | None:
    """:func:`_try_lock`, retried for a moment, so that a reader's instant does not refuse a writer."""
    for _ in range(LOCK_TRIES):
        if (fd := _try_lock(path)) is not None:
            return fd
        time.sleep(0.05)
    return None


@contextlib.contextmanager
def hold(path: Path, run: Path) -> Iterator[None]:
    """Hold the lock ``path`` of ``run`` (our pid inside) for the block.

    Raises:
        RunError: another live process holds it (named), or the disk refuses the lock file.
    """
    try:
        fd = _lock(path)
    except OSError as exc:
        raise write_failed(path, exc) from None
    if fd is None:
        pid = _pid_in(path)
        who = f"process {pid}" if pid is not None else "another process"
        raise RunError(f"run {str(run)!r} is being written by {who}; wait for it to finish or stop it first")
    try:
        os.ftruncate(fd, 0)
        write_all(fd, str(os.getpid()).encode())
    except OSError as exc:
        os.close(fd)
        raise write_failed(path, exc) from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: the next writer makes a fresh one
        os.close(fd)


def holder(path: Path) -> int | None:
    """The pid of the process holding the lock ``path`` now, or None; -1 when it cannot be told.
    Asks with a shared lock held for an instant, never the writer's lock."""
    if not path.exists():
        return None
    try:
        fd = _try_lock(path, fcntl.LOCK_SH, create=False)  # a reader never leaves a lock file
    except OSError:  # gone just now, unreadable or read-only: nobody is writing it
        return None
    if fd is None:
        return _pid_in(path) or -1
    os.close(fd)
    return None
