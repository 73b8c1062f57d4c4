"""Workers forked from a template process (:mod:`rlnas.exec.template`), seen from the search.

A fresh worker costs seconds (TensorFlow's import, the data); one forked from a template that has
paid them is ready in a fraction of a second, so workers can be recycled often, which bounds their
memory. :func:`lease` decides whether a worker may be forked and hands out a :class:`TemplateLease`;
:class:`ForkedWorker` is then the same conversation as a fresh
:class:`rlnas.exec.worker_process.WorkerProcess`, with the same guarantees: the model function arrives by
cloudpickle in each request, fd 1 stays the user's, the marker (:data:`rlnas.exec.worker.MARKER`) is in
the worker's environment (the template's, which it inherits), and the worker dies with the search
(its template dies with the search by ``PR_SET_PDEATHSIG``, the worker with its template likewise,
and with the search itself through the life pipe, :mod:`rlnas.exec.lifeline`).

Workers are forked only where that is safe, and started afresh otherwise: on Linux (fork, file
descriptors over a Unix socket, ``PR_SET_PDEATHSIG``; macOS's frameworks are not fork-safe), when the
worker sees no GPU (a GPU's driver state must not be forked; GPU workers differ by device anyway),
and unless ``RLNAS_FORK_WORKERS=0`` asks for fresh workers (benchmarks compare both). Templates
are shared by every evaluator of the same data and worker environment, and end when the last
evaluator that leased one closes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from rlnas import data, devices
from rlnas.exec.template import MAX_MESSAGE
from rlnas.exec.worker_process import STOP_WAIT, Worker, exit_text, launch, pipe, worker_env

SWITCH = "RLNAS_FORK_WORKERS"
"""Environment variable: ``0`` starts every worker afresh, as before templates existed."""


def forking_possible(env: Mapping[str, str]) -> bool:
    """Whether a worker with environment ``env`` may be forked from a template (module docstring)."""
    if os.environ.get(SWITCH, "1").strip() == "0":
        return False
    if not sys.platform.startswith("linux") or not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return False
    return not devices.visible_gpus(env)


class Template:
    """One template process: started at once, forks a worker per :meth:`fork`, reports their ends."""

    def __init__(self, spec: data.DataSpec, env: Mapping[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        life = _life_pipe()
        try:
            args = ["--template", str(theirs.fileno()), str(life), str(os.getpid())]
            self.proc = launch(
                args=[sys.executable, "-m", "rlnas.exec.worker", *args],
                env=dict(env),
                pass_fds=(theirs.fileno(), life),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._control = ours
        self._changed = threading.Condition()
        self._pids: dict[int, int] = {}  # token -> pid of the forked worker
        self._exits: dict[int, int] = {}  # pid -> exit code
        self.ready: tuple[int, int] | None = None  # (pid, threads) once it has loaded
        self.error = ""
        self.gone = False
        with contextlib.suppress(OSError):  # dead at once: its workers' EOF says so
            ours.send(cloudpickle.dumps((spec, list(sys.path))))
        threading.Thread(target=self._listen, name="rlnas-template", daemon=True).start()

    def fork(self) -> ForkedWorker:
        """A worker forked from this template, asked for now (it is ready once ``wait_ready`` returns)."""
        requests_r, requests = pipe()
        replies, replies_w = pipe()
        token = next(_TOKENS)
        message = cloudpickle.dumps(("fork", token, list(sys.path)))
        try:
            socket.send_fds(self._control, [message], [requests_r.fileno(), replies_w.fileno()])
        except OSError:  # a dead template: the worker's EOF says so, with the template's end
            pass
        finally:  # the template's copies (in flight) stay open: the worker's end is an EOF here
            requests_r.close()
            replies_w.close()
        return ForkedWorker(self, token, requests, replies)

    def alive(self) -> bool:
        return not self.gone and self.proc.poll() is None

    def pid_of(self, token: int, timeout: float | None = 0) -> int | None:
        """The pid of worker ``token``, waiting up to ``timeout`` s for the fork (None: not forked)."""
        with self._changed:
            self._changed.wait_for(lambda: self.gone or token in self._pids, timeout)
            return self._pids.get(token)

    def ended(self, token: int, timeout: float | None) -> tuple[bool, int | None]:
        """Wait up to ``timeout`` s for worker ``token`` to end: (ended, its exit code if known)."""

        def known() -> bool:
            pid = self._pids.get(token)
            return self.gone or (pid is not None and pid in self._exits)

        with self._changed:
            done = self._changed.wait_for(known, timeout)
            pid = self._pids.get(token)
            return done, self._exits.get(pid) if pid is not None else None

    def close(self) -> None:
        """End the template (EOF on its socket); a worker still forked from it ends with it."""
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_WAIT)

    def _listen(self) -> None:
        while True:
            message = _receive(self._control)
            with self._changed:
                if not message:
                    self.gone = True
                    self._changed.notify_all()
                    return
                kind, *values = cloudpickle.loads(message)
                if kind == "ready":
                    self.ready = (values[0], values[1])
                elif kind == "error":
                    self.error = values[0]
                elif kind == "forked":
                    self._pids[values[0]] = values[1]
                elif kind == "exit":
                    self._exits[values[0]] = values[1]
                self._changed.notify_all()


class ForkedWorker(Worker):
    """A worker forked from ``template``, known there by ``token``; watched through the template."""

    def __init__(self, template: Template, token: int, requests: Connection, replies: Connection) -> None:
        super().__init__(requests, replies)
        self.template, self.token = template, token

    @property
    def pid(self) -> int | None:
        """Its process id, as a fresh worker's is known once started: waits for the template to fork
        it (seconds, the first time: the template imports TensorFlow first); None if it never did."""
        return self.template.pid_of(self.token, None)

    def alive(self) -> bool:
        if not self.template.alive():  # its workers die with it
            return False
        return not self.template.ended(self.token, 0)[0]

    def wait(self, timeout: float | None) -> bool:
        return self.template.ended(self.token, timeout)[0]

    def exit_text(self) -> str:
        _, code = self.template.ended(self.token, 1)
        if self.template.error:
            return f"could not start: {self.template.error}"
        if code is None and not self.template.alive():
            return f"its template process ended ({exit_text(self.template.proc.poll())})"
        return exit_text(code)

    def kill(self) -> None:
        pid = self.template.pid_of(self.token)  # not waiting: one not forked yet ends at its EOF
        if pid is not None and self.alive():  # not yet reaped by the template: the pid is still its
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class TemplateLease:
    """An evaluator's use of the template for its data and worker environment; :meth:`release` it."""

    def __init__(self, spec: data.DataSpec, env: Mapping[str, str]) -> None:
        self.spec, self.env = spec, dict(env)
        self._key = (spec, tuple(sorted(self.env.items())))
        with _LOCK:
            _registry()[1][self._key] = _registry()[1].get(self._key, 0) + 1

    def worker(self) -> ForkedWorker:
        """A worker forked from the live template (started now if there is none, or it died)."""
        with _LOCK:
            templates = _registry()[0]
            template = templates.get(self._key)
            if template is None or not template.alive():
                template = templates[self._key] = Template(self.spec, self.env)
        return template.fork()

    def release(self) -> None:
        """This evaluator is done (its workers stopped): the last release ends the template."""
        with _LOCK:
            templates, users = _registry()
            users[self._key] = users.get(self._key, 1) - 1
            template = templates.pop(self._key, None) if users[self._key] <= 0 else None
        if template is not None:
            template.close()


def lease(
    spec: data.DataSpec, *, threads: int | None, marker: str, device: str | None
) -> TemplateLease | None:
    """A lease on the template for these workers, or None where they must be started afresh."""
    env = worker_env(threads, marker, device)
    return TemplateLease(spec, env) if forking_possible(env) else None


_TOKENS = itertools.count()
_LOCK = threading.Lock()
_REGISTRY: dict[int, tuple[dict[Any, Template], dict[Any, int]]] = {}
_LIFE: dict[int, tuple[int, int]] = {}


def _receive(control: socket.socket) -> bytes:
    """The template's next message, or b"" once it has ended.

    A template that exits with a request of ours unread in its queue (a fork asked for while it
    failed to load the data) makes Linux report ``ECONNRESET`` on our next ``recv``, ahead of the
    messages it sent before exiting (its error among them), which still follow, then EOF: a reset
    is read past once (the kernel reports it once), not taken as the end.
    """
    for _ in range(2):
        try:
            return control.recv(MAX_MESSAGE)
        except ConnectionResetError:
            continue
        except OSError:
            break
    return b""


def _registry() -> tuple[dict[Any, Template], dict[Any, int]]:
    """This process's templates and lease counts (a forked copy of the search starts its own)."""
    return _REGISTRY.setdefault(os.getpid(), ({}, {}))


def _life_pipe() -> int:
    """The read end of this process's life pipe; the write end stays here, unwritten, until it exits."""
    if os.getpid() not in _LIFE:
        _LIFE[os.getpid()] = os.pipe()
    return _LIFE[os.getpid()][0]
