"""The template process: ``python -m rlnas.exec.worker --template CONTROL_FD LIFE_FD PARENT_PID``.

A fresh worker pays TensorFlow's import and the data load (5-8 s) before its first child, at every
start and every recycling. A template pays them once: it imports TensorFlow, Keras and the child
builders and loads the dataset, but runs no TensorFlow op, so TensorFlow's runtime (its eager
context, its thread pools) does not exist yet and the process has one thread (two or more only if a
BLAS pool was allowed more threads; OpenBLAS shuts its pool down around a fork). Each worker is then
``os.fork()``-ed from it and starts the runtime itself, ready in a fraction of a second. Forking a
process that holds running threads or an initialised CUDA is unsafe, which is why the template runs
no op and :mod:`rlnas.exec.fork_server` uses templates only for workers that see no GPU, on Linux.

The forked worker inherits the template's environment, which is the worker's environment of today
(:func:`rlnas.exec.worker_process.worker_env`: threads, device, marker, all read by TensorFlow at import
or at its runtime's start): a template serves one such environment, so the search starts one
template per distinct environment (in practice one per search).

Protocol over a ``SOCK_SEQPACKET`` Unix socket (one message per send; a worker's two pipe ends travel
with it as ``SCM_RIGHTS``): the search sends ``(data_spec, sys_path)``; the template answers
``("ready", pid, threads)`` or ``("error", text)`` and exits. Each ``("fork", token, sys_path)``
is answered with ``("forked", token, pid)``; when a forked worker ends, ``("exit", pid, code)`` follows
(``os.waitstatus_to_exitcode``: negative for a signal), as only its parent can wait for it. EOF on the
socket or on the life pipe (:mod:`rlnas.exec.lifeline`) ends the template, and its workers die with it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

from rlnas.exec.lifeline import die_with_pipe, set_death_signal

MAX_MESSAGE = 1 << 16
"""Bytes of one control message (a data spec and a ``sys.path``)."""

Forked = tuple[list[int], list[str]]
"""In a newly forked worker: its two pipe ends (requests, replies) and the search's sys.path."""


def main(argv: list[str]) -> tuple[Connection, Connection, Any]:
    """Serve as a template; returns only in a forked worker: its (requests, replies, dataset).

    The template itself ends inside (``os._exit``) once the search is done with it.
    """
    control_fd, life_fd, parent_pid = (int(a) for a in argv)
    set_death_signal(parent_pid)  # no watchdog thread: the life pipe is in the select below
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search's to decide (rlnas.exec.worker)
    control = socket.socket(fileno=control_fd)
    dataset = _prepare(control)
    template_pid = os.getpid()
    fds, path = _fork_on_request(control, life_fd)
    # From here on this is a worker: it ends with its template and with the search.
    control.close()
    set_death_signal(template_pid)
    die_with_pipe(life_fd)
    sys.path[:] = path
    for fd in fds:
        os.set_inheritable(fd, False)
    from rlnas.quiet import first_op, muted_stderr

    with muted_stderr():
        import tensorflow as tf

        first_op(tf)  # TensorFlow's runtime starts here, in the worker, with the worker's settings
    return Connection(fds[0], writable=False), Connection(fds[1], readable=False), dataset


def _prepare(control: socket.socket) -> Any:
    """Import what a child needs and load the data, without running a TensorFlow op; say ready."""
    import cloudpickle

    from rlnas import data
    from rlnas.quiet import muted_stderr

    try:
        spec, path = cloudpickle.loads(control.recv(MAX_MESSAGE))
        sys.path[:] = path
        dataset = data.load(spec)  # before the imports: a bad file is said in a moment
        with muted_stderr():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401

            import rlnas.models.child  # noqa: F401  (the builders, and the Keras modules they import)
        if runtime_started():
            raise RuntimeError("TensorFlow's runtime started in the template: forking it is unsafe")
    except Exception as exc:  # said to the search, whose workers then fail with it
        with contextlib.suppress(OSError):
            control.send(cloudpickle.dumps(("error", f"{type(exc).__name__}: {exc}"[:500])))
        os._exit(1)
    # The collector would write to every inherited object's header, copying the template's pages
    # into each worker (time at its first child, and memory): frozen objects are never collected.
    gc.collect()
    gc.freeze()
    control.send(cloudpickle.dumps(("ready", os.getpid(), thread_count())))
    return dataset


def runtime_started() -> bool:
    """Whether TensorFlow's eager context exists in this process (a first op creates it)."""
    from tensorflow.python.eager import context

    return context.context()._context_handle is not None


def thread_count() -> int:
    """Threads of this process as the kernel counts them (Python's and native ones alike)."""
    with contextlib.suppress(OSError):
        return len(os.listdir("/proc/self/task"))
    import threading

    return threading.active_count()


def _fork_on_request(control: socket.socket, life_fd: int) -> Forked:
    """The template's loop: fork on each request, report each end; returns only in a forked worker."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)  # SIGCHLD wakes the select below; no thread needed
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready, _, _ = select.select([control, wake_r, life_fd], [], [])
        if life_fd in ready:  # the search is gone
            os._exit(1)
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            _reap(control)
        if control in ready:
            message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
            if not message:  # the search closed its end: no more workers from here
                os._exit(0)
            _, token, path = _loads(message)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                return fds, path
            for fd in fds:  # the worker's now: its end is then an EOF in the search
                os.close(fd)
            _send(control, ("forked", token, pid))


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(control, ("exit", pid, os.waitstatus_to_exitcode(status)))


def _loads(message: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(message)


def _send(control: socket.socket, message: tuple[Any, ...]) -> None:
    import cloudpickle

    try:
        control.send(cloudpickle.dumps(message))
    except OSError:  # the search is gone
        os._exit(1)
