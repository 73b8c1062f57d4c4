"""GPUs for the local workers: which exist, which the user chose, which worker gets which, and the
search process's own hiding of them.

Pure functions over strings and environments, without TensorFlow: the search process must learn what
GPUs there are without initialising TensorFlow's CUDA runtime, which would take a CUDA context (and,
by TensorFlow's default, nearly all memory) on every GPU the children need. So GPUs are found with
``nvidia-smi -L``, else ``/proc/driver/nvidia/gpus``; ``RLNAS_FAKE_GPUS`` replaces both (tests, and
machines where neither works).

Numbers are CUDA's in the user's shell: with ``CUDA_VISIBLE_DEVICES=2,3`` set, ``--gpus 0`` is
physical GPU 2, as it is for TensorFlow there. Each worker is started with ``CUDA_VISIBLE_DEVICES``
naming its one GPU (so it sees it as ``/GPU:0``) and ``TF_FORCE_GPU_ALLOW_GROWTH=true``, so that a
standby worker (or two workers per GPU) fits next to the active one.

Not yet run on a machine with a GPU: what is tested is this logic, with faked device lists.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from rlnas.errors import ConfigError

FAKE_GPUS = "RLNAS_FAKE_GPUS"
"""Environment variable that replaces discovery: the machine's GPU numbers, comma-separated ("" for
none). For tests and machines where ``nvidia-smi`` is missing; children still train wherever
TensorFlow puts them."""
VISIBLE = "CUDA_VISIBLE_DEVICES"
WORKERS_PER_GPU = 1
"""Default local workers per GPU. Small children use a GPU poorly, so two per GPU may be faster;
not measured yet (no GPU was available): ``--workers`` sets any count, assigned round-robin."""
_PROC_GPUS = Path("/proc/driver/nvidia/gpus")
_hidden_from: list[str | None] = []
"""The search process's ``CUDA_VISIBLE_DEVICES`` before :func:`hide_gpus` (empty until then)."""


def found_gpus(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The machine's GPUs as numbers ("0", "1", ...), whatever ``CUDA_VISIBLE_DEVICES`` says."""
    environ = os.environ if environ is None else environ
    if FAKE_GPUS in environ:
        return tuple(t.strip() for t in environ[FAKE_GPUS].split(",") if t.strip())
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):  # a broken driver: no GPU to give
            return ()
        return tuple(m.group(1) for m in re.finditer(r"^GPU (\d+):", listing.stdout, re.MULTILINE))
    if _PROC_GPUS.is_dir():  # one entry per GPU, named by PCI bus id: their order is nvidia-smi's
        return tuple(str(i) for i in range(len(list(_PROC_GPUS.iterdir()))))
    return ()


def original_visible(environ: Mapping[str, str] | None = None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` as the user set it (None: unset), even after :func:`hide_gpus`."""
    if _hidden_from and environ is None:
        return _hidden_from[0]
    return (os.environ if environ is None else environ).get(VISIBLE)


def visible_gpus(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The GPUs CUDA shows this user, in CUDA's order, as ``CUDA_VISIBLE_DEVICES`` entries."""
    found = found_gpus(environ)
    restriction = original_visible(environ)
    if restriction is None:
        return found
    visible: list[str] = []
    for token in (t.strip() for t in restriction.split(",")):
        number = token.isdigit() and token in found and token not in visible
        if number or token.startswith(("GPU-", "MIG-")):  # a UUID: CUDA checks it when it starts
            visible.append(token)
        else:  # CUDA's rule: an invalid entry ("-1", "", a missing number) hides it and all after it
            break
    return tuple(visible)


def check_gpus_setting(value: str) -> None:
    """The syntax of a ``gpus`` setting: ``all``, ``none``, or distinct numbers ``0,1,...``.

    Raises:
        ConfigError: anything else, echoing the value.
    """
    if value in ("all", "none"):
        return
    listed = isinstance(value, str) and re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", value, re.ASCII)
    if not listed or len({int(n) for n in value.split(",")}) < len(value.split(",")):
        raise ConfigError(f"gpus must be all, none or distinct GPU numbers such as 0,1, got {value!r}")


def choose_gpus(value: str | None, visible: Sequence[str]) -> tuple[str, ...] | None:
    """The GPUs the local workers use, as ``CUDA_VISIBLE_DEVICES`` entries.

    Args:
        value: the ``gpus`` setting; None is automatic: all ``visible`` GPUs, if any.
        visible: what :func:`visible_gpus` found.

    Returns:
        the chosen GPUs; ``()`` for ``none`` (workers see no GPU); None when automatic found none
        (workers keep the user's environment: a GPU nothing found is not taken away).

    Raises:
        ConfigError: a bad value, or a number no visible GPU has.
    """
    if value is None:
        return tuple(visible) or None
    check_gpus_setting(value)
    if value in ("all", "none"):
        if value == "all" and not visible:
            raise ConfigError(f"--gpus all: no GPU found ({_how_found()}); use --gpus none")
        return tuple(visible) if value == "all" else ()
    numbers = [int(n) for n in value.split(",")]
    missing = [n for n in numbers if n >= len(visible)]
    if missing:
        have = f"GPUs 0-{len(visible) - 1}" if visible else "no GPU"
        raise ConfigError(f"--gpus {value}: there is no GPU {missing[0]}; this machine shows {have}")
    return tuple(visible[n] for n in numbers)


def _how_found() -> str:
    if FAKE_GPUS in os.environ:
        return f"{FAKE_GPUS} is {os.environ[FAKE_GPUS]!r}"
    return "nvidia-smi -L lists none" if shutil.which("nvidia-smi") else "no nvidia-smi, no NVIDIA driver"


def default_workers(chosen: tuple[str, ...] | None) -> int | None:
    """Workers when the user gives no count and GPUs are used: :data:`WORKERS_PER_GPU` per GPU;
    None without GPUs (the CPU rule of :func:`rlnas.resources.default_workers` applies)."""
    return WORKERS_PER_GPU * len(chosen) if chosen else None


def assign(chosen: tuple[str, ...] | None, workers: int) -> list[str | None]:
    """Each worker's device, round-robin over ``chosen``: ``"3"`` a GPU, ``""`` none, None the
    user's environment unchanged (see :func:`choose_gpus`)."""
    if not chosen:
        return [None if chosen is None else ""] * workers
    return [chosen[i % len(chosen)] for i in range(workers)]


def worker_environment(base: Mapping[str, str], device: str | None) -> dict[str, str]:
    """``base`` (this process's environment) as a worker with ``device`` (see :func:`assign`) gets it.

    The search process's own hiding never reaches a worker: its ``CUDA_VISIBLE_DEVICES`` is the
    device's, or the user's original.
    """
    env = dict(base)
    if device is None:
        original = original_visible()
        env.pop(VISIBLE, None)
        if original is not None:
            env[VISIBLE] = original
        return env
    env[VISIBLE] = device
    if device:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # a standby or a second worker shares the GPU
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's numbers, then, are nvidia-smi's
    return env


def hide_gpus() -> None:
    """Keep this process (the search: controller, strategies) off every GPU; idempotent.

    ``CUDA_VISIBLE_DEVICES=""`` is read once, when CUDA initialises, which TensorFlow does at its
    first op or device query, not at its import (the common advice; not yet seen on a GPU here): so
    it is set first, and ``rlnas search`` calls this before anything imports TensorFlow. Where
    TensorFlow is already imported, ``tf.config.set_visible_devices([], "GPU")`` is asked for too; it
    is refused once TensorFlow's devices exist, and then nothing more can be done here.
    """
    if not _hidden_from:
        _hidden_from.append(os.environ.get(VISIBLE))
    os.environ[VISIBLE] = ""
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        with contextlib.suppress(RuntimeError, ValueError, AttributeError):
            tf.config.set_visible_devices([], "GPU")


@contextlib.contextmanager
def user_visibility() -> Iterator[None]:
    """This process's ``CUDA_VISIBLE_DEVICES`` as the user set it, for the duration (a local Ray
    started here counts the GPUs it may give its tasks from it)."""
    if not _hidden_from:
        yield
        return
    hidden = os.environ.get(VISIBLE)
    restore = original_visible()
    os.environ.pop(VISIBLE, None)
    if restore is not None:
        os.environ[VISIBLE] = restore
    try:
        yield
    finally:
        os.environ.pop(VISIBLE, None)
        if hidden is not None:
            os.environ[VISIBLE] = hidden
