"""One worker process seen from the process that starts it: launch, wait until ready, ask, end.

:class:`Worker` is the conversation (two pipes of its own, length-framed cloudpickle messages, see
:mod:`rlnas.exec.worker`), whoever made the process; :class:`WorkerProcess` is a fresh one, which runs
:mod:`rlnas.exec.worker` (an entry point of rlnas, not the parent's ``__main__``), and
:class:`rlnas.exec.fork_server.ForkedWorker` one forked from a template. Every launch happens on one
long-lived launcher thread: Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that started a
process ends, not the process, and the search starts standby workers from its pool threads, which
come and go.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cloudpickle

from rlnas import data, devices
from rlnas.exec.worker import MARKER

STOP_WAIT = 5.0
"""Seconds :meth:`Worker.stop` waits for an exit before it kills."""


class WorkerDied(Exception):
    """The worker process ended (crash, out of memory, killed) or could not start."""


class Worker:
    """A worker process behind two pipes: ``requests`` (ours to write) and ``replies`` (to read).

    Subclasses say how the process is watched: :meth:`alive`, :meth:`kill`, :meth:`wait` and
    :meth:`exit_text`.
    """

    def __init__(self, requests: Connection, replies: Connection) -> None:
        self._requests, self._replies = requests, replies
        self._ready = False

    def alive(self) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; whether it did."""
        raise NotImplementedError

    def exit_text(self) -> str:
        """How the process ended (waits a moment for it), e.g. ``killed by signal SIGKILL``."""
        raise NotImplementedError

    def wait_ready(self) -> None:
        """Block until the worker has loaded TensorFlow and the data.

        Raises:
            WorkerDied: it ended first.
        """
        if not self._ready:
            kind, value = self._receive(None)
            if kind != "ready":
                raise WorkerDied(f"could not start: {value}")
            self._ready = True

    def ask(self, request: tuple[Any, ...], timeout: float | None) -> tuple[str, Any]:
        """Send one request (cloudpickled: functions travel by value) and wait for its reply.

        Raises:
            WorkerDied: the worker ended before it replied.
            TimeoutError: no reply within ``timeout`` seconds.
        """
        payload = cloudpickle.dumps(request)
        try:
            self._requests.send_bytes(payload)
        except OSError as exc:
            raise WorkerDied(str(exc)) from None
        return self._receive(timeout)

    def _receive(self, timeout: float | None) -> tuple[str, Any]:
        try:
            replied = self._replies.poll(timeout)  # true at EOF too: recv_bytes then says so
            message = self._replies.recv_bytes() if replied else None
        except (EOFError, OSError):
            raise WorkerDied(self.exit_text()) from None
        if message is None:
            raise TimeoutError
        return cloudpickle.loads(message)

    def stop(self, *, wait: bool) -> None:
        """End the worker: EOF on its requests makes it exit at once (it holds nothing to save)."""
        for conn in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                conn.close()
        if wait and not self.wait(STOP_WAIT):  # mid-child: it reads its pipe only between children
            self.kill()
            self.wait(None)


class WorkerProcess(Worker):
    """A freshly started worker for ``spec`` with ``threads`` TensorFlow threads, marked with ``marker``,
    on ``device`` (a GPU's ``CUDA_VISIBLE_DEVICES`` entry, "" for none, None: as this process was started)."""

    def __init__(
        self, spec: data.DataSpec, *, threads: int | None = None, marker: str = "", device: str | None = None
    ) -> None:
        to_child, requests = pipe()
        replies, from_child = pipe()
        fds = (to_child.fileno(), from_child.fileno())
        try:
            self.proc = launch(
                args=[sys.executable, "-m", "rlnas.exec.worker", *map(str, (*fds, os.getpid()))],
                env=worker_env(threads, marker, device),
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
            )
        finally:  # only the child's copies stay open: its death is then an EOF here
            to_child.close()
            from_child.close()
        super().__init__(requests, replies)
        self.pid: int | None = self.proc.pid
        with contextlib.suppress(OSError):  # a worker dead at once: wait_ready() or alive() says so
            self._requests.send_bytes(cloudpickle.dumps((spec, list(sys.path))))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def exit_text(self) -> str:
        self.wait(1)
        return exit_text(self.proc.returncode)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()


def exit_text(code: int | None) -> str:
    """A process's end as its exit code (negative: a signal) says it."""
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def pipe() -> tuple[Connection, Connection]:
    """(read end, write end) of a new OS pipe, as connections that frame messages."""
    read, write = os.pipe()
    return Connection(read, writable=False), Connection(write, readable=False)


def worker_env(threads: int | None, marker: str, device: str | None) -> dict[str, str]:
    """The environment of a worker process: all TensorFlow reads at its import or its runtime's start."""
    env = devices.worker_environment(os.environ, device)  # never the search process's own GPU hiding
    env[MARKER] = marker
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # This copy of rlnas, even where it is on sys.path only by the parent's doing (a notebook).
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if threads:  # N workers on C cores: each gets C/N threads instead of all of them fighting over C
        # oneDNN's OpenMP pool does not follow TensorFlow's settings: without OMP_NUM_THREADS each of
        # N workers may start a pool as large as the machine (Ray sets it for its workers too).
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env[var] = str(threads)
    return env


_LAUNCHES: queue.SimpleQueue = queue.SimpleQueue()
_launcher: threading.Thread | None = None
_launcher_lock = threading.Lock()


def launch(**popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(**popen_kwargs)``, run on the launcher thread (which lives as long as
    this process), so that the worker's parent-death signal means this process's death."""
    global _launcher
    with _launcher_lock:
        if _launcher is None or not _launcher.is_alive():  # also after a fork
            _launcher = threading.Thread(target=_launch_forever, name="rlnas-launcher", daemon=True)
            _launcher.start()
    done: queue.SimpleQueue = queue.SimpleQueue()
    _LAUNCHES.put((popen_kwargs, done))
    ok, value = done.get()
    if not ok:
        raise value
    return value


def _launch_forever() -> None:
    while True:
        kwargs, done = _LAUNCHES.get()
        try:
            done.put((True, subprocess.Popen(**kwargs)))
        except BaseException as exc:  # handed to the caller, who raises it
            done.put((False, exc))
