"""A keras-tuner model function that records where it runs: ``--model tests.gpu_probe:build_model``.

Each call appends ``<pid> <CUDA_VISIBLE_DEVICES or -> <TF_FORCE_GPU_ALLOW_GROWTH or ->`` to the file
``$RLNAS_PROBE``: the search process calls it once to read the space, every worker for each child,
and the replay for its model, so tests/test_devices.py sees what each of them was started with.
"""

from __future__ import annotations

import os

import keras


def build_model(hp):
    with open(os.environ["RLNAS_PROBE"], "a") as out:
        seen = (os.environ.get(k, "-") or '""' for k in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH"))
        out.write(f"{os.getpid()} {' '.join(seen)}\n")
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(hp.Int("units", 4, 32, step=4))])
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
