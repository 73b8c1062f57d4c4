"""Hide TensorFlow's start-up noise (oneDNN, CUDA and absl lines written straight to file descriptor 2).

``TF_CPP_MIN_LOG_LEVEL`` does not silence the lines TensorFlow prints before absl logging starts, so
the CLI points fd 2 at /dev/null while TensorFlow loads and makes its first device, then restores it.
"""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras and initialise the CPU device with stderr muted; idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.constant(0.0) + 1.0  # first op: creates the device, which prints the second batch
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
