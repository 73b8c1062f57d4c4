"""Hide TensorFlow's start-up noise (oneDNN, CUDA and absl lines written straight to file descriptor 2).

``TF_CPP_MIN_LOG_LEVEL`` does not silence the lines TensorFlow prints before absl logging starts, so
the CLI points fd 2 at /dev/null while TensorFlow loads and makes its first device, then restores it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras and initialise the CPU device with stderr muted; idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with muted_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        first_op(tf)


def first_op(tf: object) -> None:
    """Run TensorFlow's first op, which starts its runtime and creates the CPU device (and prints the
    second batch of start-up lines): what a template process (:mod:`rlnas.exec.template`) must not do."""
    tf.constant(0.0) + 1.0  # type: ignore[attr-defined]


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the duration (TensorFlow writes to it from C++)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
