"""The worker process: ``python -m rlnas.worker IN_FD OUT_FD PARENT_PID``, started by
:class:`rlnas.evaluator.WorkerEvaluator` and never by ``multiprocessing``.

multiprocessing's "spawn" re-imports the parent's ``__main__`` in every worker, so a keras-tuner
script without ``if __name__ == "__main__":`` searched again in each of them, and a model function
defined in that script (or a notebook cell, or a closure) could not be named in a worker at all.
This entry point imports rlnas only; the model function arrives by value (cloudpickle, as loky and
Ray ship functions) inside each request.

Protocol, over two pipes (fd 1 stays the user's: a model function may print): length-framed
cloudpickle messages. The parent sends ``(data_spec, sys_path)`` once; the worker loads the data,
then answers ``("ready", pid)``. Each request ``(train, arch, seed, log_dir, fit_kwargs)`` gets
``("ok", ChildResult)`` or ``("error", text)``. EOF on the request pipe ends the worker.

A worker never outlives the process that started it (an orphaned worker held ~830 MB for good):
Linux's ``PR_SET_PDEATHSIG`` kills it with its parent, and a watchdog thread that sees the parent
change ends it on other systems, mid-child too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

MARKER = "RLNAS_WORKER_OF"
"""Environment variable every worker carries, ``<pid of its starter>:<run directory>``: how a test
(or an operator) finds the processes of one run in ``/proc/*/environ``."""
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as ``parent_pid`` is gone, whatever this process is doing then."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # best effort: the watchdog remains
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect (then no signal ever comes): look now.
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="rlnas-parent-watch", daemon=True).start()


FOLLOW_ENV = "RLNAS_DIE_WITH"
"""Set to a pid in the environment of an ``rlnas`` command that rlnas itself starts (the replay on a
GPU after a search): that command then ends with the process of that pid, as a worker does."""


def follow_parent_from_env() -> None:
    """:func:`die_with_parent` for the pid in :data:`FOLLOW_ENV`, if set; the variable is removed so
    that what this process starts in turn follows this process, not its parent."""
    pid = os.environ.pop(FOLLOW_ENV, "")
    if pid.isdigit():
        die_with_parent(int(pid))


def _watch_parent(parent_pid: int) -> None:
    """The portable fallback: an orphan is re-parented, so its parent pid changes."""
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def _serve(requests: Connection, replies: Connection) -> None:
    import cloudpickle  # here, not at the top: rlnas.cli imports this module for follow_parent_from_env

    from rlnas import data
    from rlnas.child import train_and_evaluate
    from rlnas.quiet import quiet_tensorflow

    try:
        spec, path = cloudpickle.loads(requests.recv_bytes())
        sys.path[:] = path  # the parent's: its script's directory, so its modules import here too
        quiet_tensorflow()  # TensorFlow's import is most of a start-up: paid before "ready", not by a child
        dataset = data.load(spec)
    except Exception as exc:  # said to the parent, whose child then fails with it
        replies.send_bytes(cloudpickle.dumps(("error", f"{type(exc).__name__}: {exc}"[:500])))
        return
    replies.send_bytes(cloudpickle.dumps(("ready", os.getpid())))
    while True:
        try:
            message = requests.recv_bytes()
        except EOFError:  # the evaluator retired this worker (or its process ended)
            return
        try:
            train, arch, seed, log_dir, fit_kwargs = cloudpickle.loads(message)
            result = train_and_evaluate(
                arch, dataset, train, seed=seed, log_dir=log_dir, fit_kwargs=fit_kwargs
            )
            reply: tuple[str, Any] = ("ok", result)
        except Exception:  # e.g. a function that does not unpickle here: one failed child
            reply = ("error", traceback.format_exc(limit=4)[-2000:])
        replies.send_bytes(cloudpickle.dumps(reply))


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    in_fd, out_fd, parent_pid = (int(a) for a in argv)
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the search decides what it means (finish this child
    # and stop, or stop now and kill the worker), not the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(EOFError, BrokenPipeError):  # the parent went away mid-message
        _serve(Connection(in_fd, writable=False), Connection(out_fd, readable=False))
    sys.stdout.flush()
    sys.stderr.flush()
    # Finalising TensorFlow's leftovers after a hundred children took seconds, for nothing.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
