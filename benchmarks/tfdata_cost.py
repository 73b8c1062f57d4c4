"""What a tf.data pipeline given to ``ReinforceSearch.search`` costs: written once per search, and the
share of a child's time that is data loading.

What it measures
    A 60,000-image training pipeline (Fashion-MNIST's train set when it is on the machine, else
    60,000 synthetic 28x28 uint8 images of 10 classes: the JSON says which) plus 10,000 for
    validation, given as ``tf.data`` pipelines of batches of 128, three ways: scaled to float32 in
    [0, 1] in a ``map``; cast to float32 pixels 0-255, as ``image_dataset_from_directory`` yields
    them (rlnas stores whole-number pixels as bytes and casts them back as a child reads them); and
    left uint8 (both for a model that scales them itself, ``Rescaling``: the saved copy is then a
    quarter of the bytes of the first). The pipeline is a generator of batches that counts its passes,
    so the count of times the user's pipeline ran is exact. A search of ``--trials`` children (1
    epoch each, ``--workers`` worker processes) runs on it; afterwards the run's files are counted.

    Then, in this process, one child of the best architecture is trained with the same seed on the
    in-memory batches (``cache()``d and warmed: no loading at all) and on the run's saved copy as
    every child reads it (``tf.data.Dataset.load``, lazily from disk), alternately, five times
    each; the fastest of each counts (the first fit of a process pays more). The saved copy is
    also read alone (no model) to time opening and reading it.

Why
    The target: the dataset is written once per search and not once per child, and a child's data
    loading is at most 5% of its time.

How to read it
    ``pipeline passes``: how many times the user's pipeline was read (1: by the save). ``run's
    data/``: what it holds after all the children; ``last write``: when the last byte of it was
    written (during the save, before the first child). ``loading share`` = (fit on the saved copy -
    fit in memory) / fit on the saved copy, in wall seconds and in this process's CPU seconds (all
    its threads, the reading included; CPU moves less than wall when other jobs share the machine).
    ``open + read alone``: one epoch read without a model (an upper bound of the loading: in
    ``fit`` it overlaps the training through ``prefetch``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import emit, parser, quiet, table

N_TRAIN, N_VAL, BATCH = 60_000, 10_000, 128
REPEATS = 5


def images() -> tuple[str, tuple]:
    """(source, ((x_train, y_train), (x_val, y_val))) as uint8 images and integer labels."""
    import numpy as np

    from rlnas import data
    from rlnas.errors import DataError

    try:
        ds = data.load(data.DataSpec("fashion_mnist", val_fraction=0.1))
        x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
        y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
        x = (x * 255).round().astype(np.uint8)
        return "fashion_mnist", (
            (x[:N_TRAIN], y[:N_TRAIN]),
            (x[N_TRAIN : N_TRAIN + N_VAL], y[N_TRAIN : N_TRAIN + N_VAL]),
        )
    except DataError:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, N_TRAIN + N_VAL)
        x = rng.integers(0, 60, (N_TRAIN + N_VAL, 28, 28), dtype=np.uint8)
        for c in range(10):  # a learnable class signal: a bright row per class
            x[y == c, 2 + 2 * c, :] = 200
        return "synthetic", ((x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:]))


def pipeline(x, y, passes: list[int], *, scale: str):
    """The user's pipeline: batches from a generator (counting its passes), as ``scale`` says:
    ``"scaled"`` to float32 in [0, 1] in a map, ``"pixels"`` cast to float32 0-255 (what
    ``image_dataset_from_directory`` yields), ``"uint8"`` left as bytes."""
    import tensorflow as tf

    def batches():
        passes[0] += 1
        for i in range(0, len(x), BATCH):
            yield x[i : i + BATCH], y[i : i + BATCH]

    signature = (tf.TensorSpec((None, 28, 28), tf.uint8), tf.TensorSpec((None,), tf.int64))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)

    def scaled(a, b):
        return tf.cast(a, tf.float32) / 255, b

    def pixels(a, b):
        return tf.cast(a, tf.float32), b

    if scale != "uint8":
        ds = ds.map(scaled if scale == "scaled" else pixels)
    return ds.prefetch(tf.data.AUTOTUNE)


def model_function(rescale: bool):
    """A small MLP; ``rescale``: it scales 0-255 pixels itself (``Rescaling``)."""

    def build(hp):
        import keras

        scaling = [keras.layers.Rescaling(1 / 255)] if rescale else []
        model = keras.Sequential(
            [
                keras.Input((28, 28)),
                *scaling,
                keras.layers.Flatten(),
                keras.layers.Dense(hp.Choice("units", [64, 128, 256]), activation="relu"),
                keras.layers.Dropout(hp.Choice("dropout", [0.0, 0.2])),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build


def fit_seconds(build, arch: dict, seed: int, train) -> tuple[float, float]:
    """(wall, CPU) seconds of one epoch's fit of a fresh child: CPU is every thread of this process,
    the reading included, and moves less than wall when other jobs share the machine."""
    import keras

    from rlnas import HyperParameters

    keras.utils.set_random_seed(seed)
    model = build(HyperParameters(arch))
    t, c = time.perf_counter(), time.process_time()
    model.fit(train, epochs=1, verbose=0)
    return time.perf_counter() - t, time.process_time() - c


def measure(name: str, scale: str, arrays: tuple, trials: int, workers: int) -> dict:
    """One variant: search on its pipeline, count the run's data files, time the fits."""
    import tensorflow as tf

    from rlnas import ReinforceSearch
    from rlnas.data import saved

    (x, y), (xv, yv) = arrays
    build = model_function(rescale=scale != "scaled")
    passes, val_passes = [0], [0]
    with tempfile.TemporaryDirectory(prefix="rlnas-tfdata-") as tmp:
        tuner = ReinforceSearch(
            build,
            max_trials=trials,
            archs_per_update=2,
            workers=workers,
            directory=tmp,
            project_name="run",
            seed=0,
        )
        t0, started = time.perf_counter(), time.time()
        val = pipeline(xv, yv, val_passes, scale=scale)
        tuner.search(pipeline(x, y, passes, scale=scale), validation_data=val, epochs=1, verbose=0)
        wall = time.perf_counter() - t0
        run = Path(tmp) / "run"
        files = [f for f in (run / "data").rglob("*") if f.is_file()]
        written = max(f.stat().st_mtime for f in files) - started  # the last write into data/
        trials_done = tuner._trials
        best = max((t for t in trials_done if t.ok), key=lambda t: t.metrics["val_accuracy"])
        dataset = saved.read(run / "data")
        in_memory = {"scaled": x.astype("float32") / 255, "pixels": x.astype("float32"), "uint8": x}[scale]
        memory = tf.data.Dataset.from_tensor_slices((in_memory, y))
        memory = memory.batch(BATCH).cache()
        for _ in memory:  # warm the cache: no loading left in this fit
            pass
        fits: dict[str, list[list[float]]] = {"memory": [], "disk": []}
        for _ in range(REPEATS):  # alternated, the fastest of each: the first fit of a process pays more
            fits["memory"].append(list(fit_seconds(build, best.architecture, best.seed, memory)))
            fits["disk"].append(
                list(fit_seconds(build, best.architecture, best.seed, dataset.split("train")))
            )
        t = time.perf_counter()
        for _ in dataset.split("train"):
            pass
        read_alone = time.perf_counter() - t
        mem_wall, mem_cpu = (min(f[i] for f in fits["memory"]) for i in (0, 1))
        disk_wall, disk_cpu = (min(f[i] for f in fits["disk"]) for i in (0, 1))
        return {
            "variant": name,
            "trials": len(trials_done),
            "search_wall_seconds": wall,
            "pipeline_passes": {"train": passes[0], "val": val_passes[0]},
            "data_files": len(files),
            "data_bytes": sum(f.stat().st_size for f in files),
            "data_last_written_seconds_after_start": written,
            "mean_child_seconds": sum(t.child_seconds for t in trials_done) / len(trials_done),
            "mean_child_fit_seconds": sum(t.fit_seconds for t in trials_done) / len(trials_done),
            "fits_wall_cpu_seconds": fits,
            "loading_share_wall": (disk_wall - mem_wall) / disk_wall,
            "loading_share_cpu": (disk_cpu - mem_cpu) / disk_cpu,
            "open_and_read_alone_seconds": read_alone,
            "open_and_read_share": read_alone / disk_wall,
            "fit_memory_wall_cpu": [mem_wall, mem_cpu],
            "fit_disk_wall_cpu": [disk_wall, disk_cpu],
        }


VARIANTS = {
    "float32 scaled to [0, 1] in a map": "scaled",
    "float32 pixels 0-255 (as image_dataset_from_directory yields them; stored as bytes)": "pixels",
    "uint8 (scaled in the model)": "uint8",
}


def main() -> None:
    p = parser("tfdata_cost", __doc__, "tfdata/cost.json")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    quiet()
    source, arrays = images()
    results = [measure(name, scale, arrays, args.trials, args.workers) for name, scale in VARIANTS.items()]
    load = os.getloadavg()
    headers = [
        "pipeline yields",
        "search",
        "pipeline passes (train, val)",
        "run's data/",
        "last write into data/",
        "fit in memory: wall / CPU",
        "fit on the saved copy: wall / CPU",
        "loading share: wall / CPU",
        "open + read alone",
    ]
    rows = [
        [
            r["variant"],
            f"{r['trials']} children, {r['search_wall_seconds']:.0f} s",
            f"{r['pipeline_passes']['train']}, {r['pipeline_passes']['val']}",
            f"{r['data_files']} files, {r['data_bytes'] / 2**20:.0f} MiB",
            f"{r['data_last_written_seconds_after_start']:.1f} s after the start",
            "{:.2f} s / {:.2f} s".format(*r["fit_memory_wall_cpu"]),
            "{:.2f} s / {:.2f} s".format(*r["fit_disk_wall_cpu"]),
            f"{100 * r['loading_share_wall']:.1f}% / {100 * r['loading_share_cpu']:.1f}%",
            f"{r['open_and_read_alone_seconds']:.2f} s",
        ]
        for r in results
    ]
    markdown = (
        f"{source} images: {N_TRAIN:,} train + {N_VAL:,} val, 28x28, batches of {BATCH}; "
        f"1 epoch, {args.workers} worker(s); load average {load[0]:.1f} at the end\n\n" + table(headers, rows)
    )
    emit(args.out, "tfdata_cost", markdown, {"source": source, "load_average": load, "variants": results})
    args.out.with_suffix(".md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
