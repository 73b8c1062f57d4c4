"""The worker process: ``python -m rlnas.exec.worker IN_FD OUT_FD PARENT_PID``, started by
:class:`rlnas.exec.evaluator.WorkerEvaluator` and never by ``multiprocessing``; or forked, ready in a
fraction of a second, from a template process, ``python -m rlnas.exec.worker --template ...``
(:mod:`rlnas.exec.template`), which serves the same protocol from then on.

multiprocessing's "spawn" re-imports the parent's ``__main__`` in every worker, so a keras-tuner
script without ``if __name__ == "__main__":`` searched again in each of them, and a model function
defined in that script (or a notebook cell, or a closure) could not be named in a worker at all.
This entry point imports rlnas only; the model function arrives by value (cloudpickle, as loky and
Ray ship functions) inside each request.

Protocol, over two pipes (fd 1 stays the user's: a model function may print): length-framed
cloudpickle messages. The parent sends ``(data_spec, sys_path)`` once; the worker loads the data,
then answers ``("ready", pid)``. Each request ``(train, arch, seed, log_dir, fit_kwargs)`` gets
``("ok", ChildResult)`` or ``("error", text)``. EOF on the request pipe ends the worker.

A worker never outlives the process that started it, mid-child too (:mod:`rlnas.exec.lifeline`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

from rlnas.exec.lifeline import die_with_parent

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

MARKER = "RLNAS_WORKER_OF"
"""Environment variable every worker carries, ``<pid of its starter>:<run directory>``: how a test
(or an operator) finds the processes of one run in ``/proc/*/environ``."""


FOLLOW_ENV = "RLNAS_DIE_WITH"
"""Set to a pid in the environment of an ``rlnas`` command that rlnas itself starts (the replay on a
GPU after a search): that command then ends with the process of that pid, as a worker does."""


def follow_parent_from_env() -> None:
    """:func:`die_with_parent` for the pid in :data:`FOLLOW_ENV`, if set; the variable is removed so
    that what this process starts in turn follows this process, not its parent."""
    pid = os.environ.pop(FOLLOW_ENV, "")
    if pid.isdigit():
        die_with_parent(int(pid))


def _serve(requests: Connection, replies: Connection) -> None:
    import cloudpickle  # here, not at the top: rlnas.cli imports this module for follow_parent_from_env

    from rlnas import data
    from rlnas.quiet import quiet_tensorflow

    try:
        spec, path = cloudpickle.loads(requests.recv_bytes())
        sys.path[:] = path  # the parent's: its script's directory, so its modules import here too
        quiet_tensorflow()  # TensorFlow's import is most of a start-up: paid before "ready", not by a child
        dataset = data.load(spec)
    except Exception as exc:  # said to the parent, whose child then fails with it
        replies.send_bytes(cloudpickle.dumps(("error", f"{type(exc).__name__}: {exc}"[:500])))
        return
    serve(requests, replies, dataset)


def serve(requests: Connection, replies: Connection, dataset: Any) -> None:
    """Say ``("ready", pid)``, then train each request's child on ``dataset`` until EOF on ``requests``
    (a fresh worker and a worker forked from a template, :mod:`rlnas.exec.template`, both end here)."""
    import cloudpickle

    from rlnas.models.child import train_and_evaluate

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
    if argv[:1] == ["--template"]:  # a template process: what returns is a worker forked from it
        from rlnas.exec.template import main as template_main

        with contextlib.suppress(EOFError, BrokenPipeError):
            serve(*template_main(argv[1:]))
        finish()
    from multiprocessing.connection import Connection

    in_fd, out_fd, parent_pid = (int(a) for a in argv)
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the search decides what it means (finish this child
    # and stop, or stop now and kill the worker), not the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(EOFError, BrokenPipeError):  # the parent went away mid-message
        _serve(Connection(in_fd, writable=False), Connection(out_fd, readable=False))
    finish()


def finish() -> NoReturn:
    """Flush and end this worker now."""
    sys.stdout.flush()
    sys.stderr.flush()
    # Finalising TensorFlow's leftovers after a hundred children took seconds, for nothing.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
