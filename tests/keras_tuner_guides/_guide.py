"""What the guide cases share: the tuner class (the one line a user changes), a run directory, tiny data.

``GUIDE_TUNER=kt`` gives keras-tuner's ``RandomSearch``; anything else rlnas's ``ReinforceSearch``,
in this process (``GUIDE_WORKERS`` unset) or with that many worker processes. Each case prints one
``RESULT {json}`` line that tests/test_keras_tuner_guides.py reads.
"""

import json
import os
from pathlib import Path

import numpy as np

DIRECTORY = os.environ.get("GUIDE_DIR", "guide_runs")

if os.environ.get("GUIDE_TUNER") == "kt":
    import keras_tuner

    Tuner = keras_tuner.RandomSearch
else:
    import rlnas

    _workers = int(os.environ.get("GUIDE_WORKERS") or 0)
    _extra = {"workers": _workers} if _workers else {"in_process": True}

    class Tuner(rlnas.ReinforceSearch):
        """rlnas's tuner with the harness's choice of where the children train."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**_extra, **kwargs})


def mnist(n_train=300, n_val=100, flat=False):
    """A seeded sample of rlnas's bundled MNIST subset, scaled to [0, 1]."""
    data = np.load(Path(__file__).resolve().parents[2] / "rlnas" / "bundled" / "mnist_5k.npz")
    pick = np.random.default_rng(0).permutation(len(data["y"]))[
        : n_train + n_val
    ]  # the file is sorted by class
    x = data["x"][pick].astype("float32") / 255.0
    y = data["y"][pick].astype("int64")
    if flat:
        x = x.reshape(len(x), -1)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def regression(n_train=300, n_val=100, features=8, seed=0):
    """A smooth regression target of random features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_val, features)).astype("float32")
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.1 * rng.normal(size=len(x))).astype("float32")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def report(**values):
    """The line the harness reads."""
    print("RESULT " + json.dumps(values, default=float), flush=True)
