"""A process that ends with the process that started it: what every worker and template does.

An orphaned worker held ~830 MB for good. Linux's ``PR_SET_PDEATHSIG`` kills a process with its
parent (precisely: when the parent *thread* that started it ends); a watchdog thread that sees the
parent pid change ends it on other systems. A process forked from a template (:mod:`rlnas.exec.template`)
also watches a *life pipe* whose only write end the search process holds: the pipe reads EOF the
moment the search is gone, so a forked worker ends with the search itself, not only with its template.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` is gone, whatever this process is doing then."""
    set_death_signal(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="rlnas-parent-watch", daemon=True).start()


def set_death_signal(parent_pid: int) -> None:
    """:func:`die_with_parent` without the watchdog thread (a template must stay single-threaded to
    fork safely): Linux's ``PR_SET_PDEATHSIG`` only; exits at once if ``parent_pid`` is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # best effort: the watchdog remains
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect (then no signal ever comes): look now.
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with_pipe(life_fd: int) -> None:
    """End this process when ``life_fd`` (the read end of a pipe nobody writes to) reads EOF: when the
    last holder of its write end is gone. Watched by a daemon thread, blocked in ``select``."""
    threading.Thread(target=_watch_pipe, args=(life_fd,), name="rlnas-life-watch", daemon=True).start()


def pipe_closed(life_fd: int, timeout: float | None = 0.0) -> bool:
    """Whether the life pipe ``life_fd`` reads EOF (its writers are gone), waiting up to ``timeout``."""
    readable, _, _ = select.select([life_fd], [], [], timeout)
    return bool(readable)


def _watch_pipe(life_fd: int) -> None:
    while not pipe_closed(life_fd, None):  # nothing is ever written: readable means EOF
        pass
    os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    """The portable fallback: an orphan is re-parented, so its parent pid changes."""
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)
